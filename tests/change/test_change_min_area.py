"""The minimum change-polygon area calibrated with a change model: checkpoint -> change raster tag ->
``rsmamba vectorize``'s default ``--min-area``; and the one-vectorisation grid the calibration scores."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from rsmamba.change import detect_change
from rsmamba.change.evaluate import change_polygon_f1, change_polygon_scores
from rsmamba.checkpoint import load_checkpoint, save_checkpoint
from rsmamba.cli import main
from rsmamba.engine.model import DEMO_CHANGE_MODEL
from rsmamba.errors import InputError
from rsmamba.synth import write_scene
from rsmamba.vectorize import vectorize_raster

CRS = "EPSG:32632"


def _squares_raster(path, sides_px: list[int]) -> list:
    """A 1 m change raster with one changed square per side length, 4 px apart; their ground boxes."""
    band = np.zeros((20, 4 + sum(s + 4 for s in sides_px)), np.uint8)
    transform = Affine(1.0, 0, 500_000.0, 0, -1.0, 5_000_000.0)
    boxes, x = [], 4
    for side in sides_px:
        band[4:4 + side, x:x + side] = 1
        boxes.append(box(500_000.0 + x, 5_000_000.0 - 4 - side, 500_000.0 + x + side, 5_000_000.0 - 4))
        x += side + 4
    with rasterio.open(path, "w", driver="GTiff", width=band.shape[1], height=band.shape[0], count=1, dtype="uint8",
                       crs=CRS, transform=transform, nodata=255) as dst:
        dst.write(band, 1)
        dst.set_band_description(1, "change")
    return boxes


def test_one_vectorisation_scores_each_area_as_vectorize_at_that_area_would(tmp_path) -> None:
    boxes = _squares_raster(tmp_path / "c.tif", [3, 5, 7, 9])  # 9, 25, 49, 81 m2
    ref = tmp_path / "ref.gpkg"
    gpd.GeoDataFrame(geometry=[boxes[1], boxes[3], box(500_001, 4_999_981, 500_003, 4_999_983)], crs=CRS).to_file(ref)
    areas = (4.0, 20.0, 30.0, 60.0)
    grid = change_polygon_scores(tmp_path / "c.tif", ref, min_areas_m2=areas, work_dir=tmp_path / "grid")
    for area in areas:
        alone = change_polygon_f1(tmp_path / "c.tif", ref, min_area_m2=area, work_dir=tmp_path / f"a{area:g}")
        assert {k: grid[area][k] for k in ("tp", "predicted", "reference")} == \
            {k: alone[k] for k in ("tp", "predicted", "reference")}, area
    assert [grid[a]["predicted"] for a in areas] == [4, 3, 2, 1]
    assert [grid[a]["tp"] for a in areas] == [2, 2, 1, 1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_scene(tmp_path_factory.mktemp("pair"), size=256, seed=5, gsd=0.25)


def _with_min_area(tmp_path, value) -> str:
    ckpt = load_checkpoint(DEMO_CHANGE_MODEL)
    ckpt["calibration"] = {**ckpt["calibration"], "min_area_m2": value}
    return str(save_checkpoint(tmp_path / "m.pt", {k: v for k, v in ckpt.items() if k not in ("format", "created")}))


def test_the_calibrated_area_travels_to_vectorize(pair, tmp_path, capsys) -> None:
    model = _with_min_area(tmp_path, 200.0)
    out = tmp_path / "change.tif"
    summary = detect_change(pair["ortho_t1"], pair["ortho_t2"], out, model=model, semantic=True)
    assert summary.min_area_m2 == 200.0 and "under 200 m2 dropped" in summary.describe()
    with rasterio.open(out) as ds:
        assert ds.tags()["CHANGE_MIN_AREA_M2"] == "200"
    default = vectorize_raster(out, tmp_path / "default.gpkg")
    assert default.calibrated_min_area == 200.0 and "calibrated with the change model" in default.describe()
    everything = vectorize_raster(out, tmp_path / "all.gpkg", min_area="1m2")
    assert everything.calibrated_min_area is None
    areas = gpd.read_file(tmp_path / "all.gpkg").geometry.area
    assert (areas < 200).any()  # the tag decides: without --min-area those are gone
    assert default.polygons == everything.polygons - int((areas < 200).sum())
    assert main(["vectorize", str(out), "-o", str(tmp_path / "cli.gpkg")]) == 0
    said = capsys.readouterr().out
    assert "change regions under 200 m2 dropped" in said and "polygons (to_class " in said  # counted by to_class
    # a threshold of the user's was not calibrated with that area: no tag
    own = detect_change(pair["ortho_t1"], pair["ortho_t2"], tmp_path / "own.tif", model=model, change_threshold=0.5)
    assert own.min_area_m2 is None
    with rasterio.open(tmp_path / "own.tif") as ds:
        assert "CHANGE_MIN_AREA_M2" not in ds.tags()


def test_a_bad_calibrated_area_is_the_checkpoints_fault(pair, tmp_path) -> None:
    for bad in ("wide", -5):
        with pytest.raises(InputError, match="calibrated minimum change area"):
            detect_change(pair["ortho_t1"], pair["ortho_t2"], tmp_path / "c.tif", model=_with_min_area(tmp_path, bad))
        assert not (tmp_path / "c.tif").exists()


def test_the_shipped_change_model_carries_an_area_of_the_recipe_grid() -> None:
    from tests.helpers.scripts import load_script

    recipe = load_script("examples/make_demo_models.py", "make_demo_models")
    calibration = load_checkpoint(DEMO_CHANGE_MODEL)["calibration"]
    assert calibration["min_area_m2"] in recipe.CALIBRATION_MIN_AREAS
    chosen = calibration["pooled"][f"{calibration['change_threshold']:g}"][f"{calibration['min_area_m2']:g}"]
    assert all(row["f1"] <= chosen["f1"] for by_area in calibration["pooled"].values() for row in by_area.values())


def test_scores_without_a_work_folder_leave_no_folder_behind(tmp_path, monkeypatch) -> None:
    """Each call without ``work_dir`` left a /tmp/rsmamba-change-f1-* folder (its polygon layer) behind."""
    import tempfile

    boxes = _squares_raster(tmp_path / "c.tif", [3, 5])
    ref = tmp_path / "ref.gpkg"
    gpd.GeoDataFrame(geometry=[boxes[1]], crs=CRS).to_file(ref)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    kept = change_polygon_f1(tmp_path / "c.tif", ref, min_area_m2=4.0, work_dir=tmp_path / "w")
    gone = change_polygon_f1(tmp_path / "c.tif", ref, min_area_m2=4.0)
    assert list(scratch.iterdir()) == []
    assert gone["polygons"] is None and Path(kept["polygons"]).is_file()
    assert {k: gone[k] for k in ("tp", "predicted", "reference")} == {k: kept[k] for k in ("tp", "predicted", "reference")}
