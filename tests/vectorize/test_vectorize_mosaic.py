"""Many rasters into one layer: a mosaic of cut scenes gives exactly the polygons of the uncut raster."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.transform import from_origin

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.vectorize import check_common_grid, mosaic, vectorize_many, vectorize_raster, write_mosaic_vrt

ORIGIN = from_origin(500000.0, 5000000.0, 0.5, 0.5)
NAMES = ["road", "house", "grass", "forest", "car", "clutter"]
CUT_ROWS, CUT_COLS = 37, 53  # not on the 32-pixel blocks, so scene borders and block borders differ


def class_scene() -> np.ndarray:
    """Classes 0..3 (+ a nodata corner) with shapes straddling the cut lines and one corner contact."""
    a = np.zeros((90, 120), dtype="uint8")
    a[10:60, 40:70] = 1  # straddles both cut lines: one polygon in four scenes
    a[20:30, 50:60] = 0  # a hole in it, itself on the column cut
    a[50:80, 80:115] = 3
    a[65:88, 5:45] = 2
    a[5, 52] = a[6, 53] = 1  # pixels touching only at a corner across the column cut: two polygons
    a[0:4, 0:4] = 255
    return a


def write(path, array, transform=ORIGIN, *, crs="EPSG:32632", tags=None, descriptions=None, nodata=255):
    arr = array if array.ndim == 3 else array[None]
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype=arr.dtype.name, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(arr)
        dst.update_tags(**(tags if tags is not None else {"CLASS_NAMES": json.dumps(NAMES)}))
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return path


def cut(array, folder, prefix="scene", skip=(), **kw):
    """The 2 x 2 scenes of ``array`` (cut at CUT_ROWS/CUT_COLS), minus the ones in ``skip``."""
    paths = []
    for i, (r0, r1) in enumerate([(0, CUT_ROWS), (CUT_ROWS, array.shape[-2])]):
        for j, (c0, c1) in enumerate([(0, CUT_COLS), (CUT_COLS, array.shape[-1])]):
            if (i, j) in skip:
                continue
            paths.append(write(folder / f"{prefix}_{i}{j}.tif", array[..., r0:r1, c0:c1],
                               ORIGIN * Affine.translation(c0, r0), **kw))
    return paths


def shapes(path):
    df = pyogrio.read_dataframe(path)
    return df, sorted(shapely.normalize(g).wkb for g in df.geometry.values)


@pytest.mark.parametrize("block", [32, 2048])
def test_cut_scenes_give_the_polygons_of_the_uncut_raster(tmp_path, block):
    a = class_scene()
    whole = vectorize_raster(write(tmp_path / "whole.tif", a), tmp_path / "whole.gpkg", block_size=block)
    scenes = cut(a, tmp_path)
    many = vectorize_many(scenes[::-1], tmp_path / "many.gpkg", block_size=block)  # order does not matter
    assert many.polygons == whole.polygons and many.per_class == whole.per_class
    assert many.per_class["house"] == 3 and set(many.per_class) == {"road", "house", "grass", "forest"}
    df_whole, g_whole = shapes(tmp_path / "whole.gpkg")
    df_many, g_many = shapes(tmp_path / "many.gpkg")
    assert g_many == g_whole  # same polygons, vertex for vertex: nothing split at the scene borders
    big = df_many[df_many.class_name == "house"].sort_values("pixel_count").iloc[-1]
    assert big.pixel_count == (a[10:60, 40:70] == 1).sum() and len(big.geometry.interiors) == 1
    assert set(df_many.source) <= {p.name for p in scenes}
    assert sorted(df_many.pixel_count) == sorted(df_whole.pixel_count)


def test_a_missing_scene_is_a_gap_of_nodata(tmp_path):
    a = class_scene()
    scenes = cut(a, tmp_path, skip={(0, 1)})  # top-right scene missing
    gap = a.copy()
    gap[:CUT_ROWS, CUT_COLS:] = 255
    vectorize_raster(write(tmp_path / "gap.tif", gap), tmp_path / "gap.gpkg", block_size=32)
    summary = vectorize_many(scenes, tmp_path / "many.gpkg", block_size=32)
    assert shapes(tmp_path / "many.gpkg")[1] == shapes(tmp_path / "gap.gpkg")[1]
    assert summary.polygons == len(shapes(tmp_path / "gap.gpkg")[0])
    # Two diagonal scenes only: the union box is mostly gap, skipped without reading.
    diagonal = cut(a, tmp_path, prefix="diag", skip={(0, 1), (1, 0)})
    assert vectorize_many(diagonal, tmp_path / "diag.gpkg", block_size=16).polygons > 0


def test_grid_mismatches_are_reported_together(tmp_path):
    a = class_scene()[:30, :30]
    base = write(tmp_path / "base.tif", a)
    other_crs = write(tmp_path / "utm33.tif", a, ORIGIN * Affine.translation(30, 0), crs="EPSG:32633")
    half = write(tmp_path / "half.tif", a, ORIGIN * Affine.translation(30.5, 0))
    coarse = write(tmp_path / "coarse.tif", a, from_origin(500015.0, 5000000.0, 1.0, 1.0))
    bands = write(tmp_path / "bands.tif", np.stack([a, a]), ORIGIN * Affine.translation(0, 30))
    names = write(tmp_path / "names.tif", a, ORIGIN * Affine.translation(30, 30), tags={"CLASS_NAMES": '["a"]'})
    inputs = [base, other_crs, half, coarse, bands, names]
    problems = check_common_grid(inputs)
    assert len(problems) == 5, problems
    for needle in ("utm33.tif: CRS EPSG:32633 differs", "half.tif: origin is +0.500, +0.000 pixels off",
                   "coarse.tif: pixel size 1 x 1 differs from base.tif's 0.5 x 0.5", "bands.tif: 2 bands",
                   "names.tif: class table differs"):
        assert any(needle in p for p in problems), (needle, problems)
    with pytest.raises(InputError) as err:
        vectorize_many(inputs, tmp_path / "x.gpkg")
    assert err.value.problems == problems
    with pytest.raises(InputError, match="file not found"):
        write_mosaic_vrt([base, tmp_path / "missing.tif"], tmp_path / "m.vrt")
    assert not (tmp_path / "x.gpkg").exists() and not (tmp_path / "m.vrt").exists()
    # Errors found while vectorizing name the inputs, not the temporary VRT.
    with pytest.raises(InputError, match=r"not in mosaic of 2 rasters \(base.tif, right.tif\)'s class table"):
        vectorize_many([base, write(tmp_path / "right.tif", a, ORIGIN * Affine.translation(30, 0))],
                       tmp_path / "x.gpkg", classes=["lake"])


def test_overlapping_scenes_warn_and_the_later_one_wins(tmp_path, caplog):
    a = class_scene()
    left = write(tmp_path / "left.tif", a[:, :70])
    right = write(tmp_path / "right.tif", a[:, 50:], ORIGIN * Affine.translation(50, 0))
    with caplog.at_level(logging.WARNING, logger="rsmamba"):
        summary = vectorize_many([left, right], tmp_path / "o.gpkg", block_size=32)
    assert "1 pair of rasters overlap: left.tif / right.tif" in caplog.text
    vectorize_raster(write(tmp_path / "whole.tif", a), tmp_path / "whole.gpkg", block_size=32)
    assert shapes(tmp_path / "o.gpkg")[1] == shapes(tmp_path / "whole.gpkg")[1]  # they agree where they overlap
    assert summary.polygons == len(shapes(tmp_path / "whole.gpkg")[0])


def test_change_mosaic_keeps_the_change_convention(tmp_path):
    change = np.zeros((3, 90, 120), dtype="uint8")
    change[0, 20:70, 30:90] = 1
    change[1, 20:70, 30:90] = 2
    change[2, 20:70, 30:90] = 1
    change[2, 20:70, 60:90] = 3
    change[:, 85:, :] = 255
    tags = {"class_names": json.dumps(NAMES), "model_id": "mambafcs-test"}
    descriptions = ["change", "from_class", "to_class"]
    whole = write(tmp_path / "whole.tif", change, tags=tags, descriptions=descriptions)
    vectorize_raster(whole, tmp_path / "whole.gpkg", block_size=32)
    scenes = cut(change, tmp_path, tags=tags, descriptions=descriptions)
    summary = vectorize_many(scenes, tmp_path / "many.gpkg", block_size=32)
    df, geoms = shapes(tmp_path / "many.gpkg")
    assert geoms == shapes(tmp_path / "whole.gpkg")[1]
    assert summary.per_class == {"house": 1, "forest": 1}
    assert {"change", "from_class", "to_class", "from_name", "to_name"} <= set(df.columns)
    assert set(df.from_name) == {"grass"} and set(df.model_id) == {"mambafcs-test"}
    # rasters calibrated apart: the first one's minimum area passed for all (189 or 200 polygons by the order)
    first = write(tmp_path / "a.tif", change[:, :, :60], tags={**tags, "CHANGE_MIN_AREA_M2": "44"}, descriptions=descriptions)
    second = write(tmp_path / "b.tif", change[:, :, 60:], ORIGIN * Affine.translation(60, 0),
                   tags={**tags, "CHANGE_MIN_AREA_M2": "0"}, descriptions=descriptions)
    with pytest.raises(InputError, match=r"calibrated with other minimum polygon areas \(a.tif 44 m2, b.tif 0 m2\)"):
        vectorize_many([first, second], tmp_path / "ab.gpkg", block_size=32)
    vectorize_many([first, second], tmp_path / "ab.gpkg", block_size=32, min_area=0)


def test_cli_glob_into_one_layer(tmp_path, capsys):
    a = class_scene()
    cut(a, tmp_path)
    vectorize_raster(write(tmp_path / "whole.tif", a), tmp_path / "whole.gpkg", block_size=32)
    out = tmp_path / "map.gpkg"
    assert main(["vectorize", str(tmp_path / "scene_*.tif"), "-o", str(out), "--block-size", "32"]) == 0
    assert shapes(out)[1] == shapes(tmp_path / "whole.gpkg")[1]
    assert str(out) in capsys.readouterr().out
    listing = tmp_path / "scenes.txt"
    listing.write_text("scene_00.tif\nscene_11.tif\n")
    assert main(["vectorize", f"@{listing}", "-o", str(tmp_path / "two.gpkg"), "--classes", "house"]) == 0
    assert pyogrio.read_info(tmp_path / "two.gpkg")["features"] > 0
    assert main(["vectorize", str(tmp_path / "scene_*.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsmamba: error: 4 rasters") and "-o" in err[0]
    assert main(["vectorize", str(tmp_path / "scene_*.tif"), "-o", str(tmp_path / "p.gpkg"),
                 "--probabilities", str(tmp_path / "whole.tif")]) == 2
    assert "one raster at a time" in capsys.readouterr().err


def test_a_scene_stored_the_other_way_up_is_said_so(tmp_path):
    """A south-up tile of the same lattice was refused with 'pixel size 0.5 x 0.5 differs from ... 0.5 x 0.5'."""
    a = class_scene()[:30, :30]
    base = write(tmp_path / "base.tif", a)
    flipped = write(tmp_path / "flipped.tif", a[::-1].copy(), Affine(0.5, 0, 500015.0, 0, 0.5, 5000000.0 - 15.0))
    problems = check_common_grid([base, flipped])
    assert problems == ["flipped.tif: stored south up, base.tif north up: write them one way (gdalwarp) to mosaic them"] \
        or any("stored south up, base.tif north up" in p for p in problems), problems
    assert not any("pixel size" in p for p in problems)


def test_scenes_of_one_file_name_in_other_folders_are_told_apart_in_source(tmp_path):
    """Tiles written with --name-template '{relparent}/{stem}.tif' (r0/a.tif, r1/a.tif) all had source 'a.tif'."""
    a = class_scene()
    for i, (r0, r1) in enumerate([(0, CUT_ROWS), (CUT_ROWS, a.shape[0])]):
        (tmp_path / f"r{i}").mkdir()
        write(tmp_path / f"r{i}" / "a.tif", a[r0:r1], ORIGIN * Affine.translation(0, r0))
    vectorize_many([str(tmp_path / "r*" / "a.tif")], tmp_path / "m.gpkg", progress=False)
    df, _ = shapes(tmp_path / "m.gpkg")
    assert set(df["source"]) == {"r0/a.tif", "r1/a.tif"}


def test_each_polygon_names_the_model_of_its_own_scene(tmp_path):
    """Neighbours mapped by two models, merged: every polygon carried the first scene's model_id, those of the other
    scene too (QA). Each names its scene's; a model_id given by the caller is every polygon's."""
    a = class_scene()
    top = write(tmp_path / "top.tif", a[:CUT_ROWS], tags={"CLASS_NAMES": json.dumps(NAMES), "model_id": "dsm_model"})
    bottom = write(tmp_path / "bottom.tif", a[CUT_ROWS:], ORIGIN * Affine.translation(0, CUT_ROWS),
                   tags={"CLASS_NAMES": json.dumps(NAMES), "model_id": "image_model"})
    vectorize_many([str(top), str(bottom)], tmp_path / "m.gpkg", progress=False)
    df, _ = shapes(tmp_path / "m.gpkg")
    assert set(zip(df["source"], df["model_id"])) == {("top.tif", "dsm_model"), ("bottom.tif", "image_model")}
    vectorize_many([str(top), str(bottom)], tmp_path / "given.gpkg", progress=False, model_id="mine")
    assert set(shapes(tmp_path / "given.gpkg")[0]["model_id"]) == {"mine"}


@pytest.mark.parametrize("sample_block", [16, 512])  # the masks read in many windows, or one
def test_polygons_in_the_later_scenes_nodata_name_the_earlier_scene(tmp_path, monkeypatch, sample_block):
    """Two scenes of one area, the later with a nodata quadrant: the polygons there came from the earlier scene's
    pixels but named the later scene and its model (QA). Each names the last scene with data under it."""
    a = class_scene()
    holes = a.copy()
    holes[45:, 60:] = 255
    monkeypatch.setattr(mosaic, "SAMPLE_BLOCK", sample_block)
    full = write(tmp_path / "full.tif", a, tags={"CLASS_NAMES": json.dumps(NAMES), "model_id": "first_model"})
    later = write(tmp_path / "holes.tif", holes, tags={"CLASS_NAMES": json.dumps(NAMES), "model_id": "later_model"})
    vectorize_many([full, later], tmp_path / "m.gpkg", block_size=32, progress=False)
    df, _ = shapes(tmp_path / "m.gpkg")
    in_hole = df.geometry.within(shapely.box(500030.0, 4999955.0, 500060.0, 4999977.5))  # cols 60+, rows 45+
    assert in_hole.sum() >= 1 and (~in_hole).sum() >= 1
    assert set(zip(df[in_hole].source, df[in_hole].model_id)) == {("full.tif", "first_model")}
    assert set(zip(df[~in_hole].source, df[~in_hole].model_id)) == {("holes.tif", "later_model")}
