"""Issue #17, step 2: ``rsmamba tile --instance-targets`` writes interior/border/contact chips."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from rsmamba.cli import main
from rsmamba.instance_targets import targets_from_ids
from rsmamba.synth import write_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return write_scene(tmp_path_factory.mktemp("inst") / "s", size=256, seed=21, terraced=0.8, instances=True)


def test_targets_from_ids_two_touching_houses():
    ids = np.zeros((12, 20), np.int64)
    ids[2:10, 2:10] = 1
    ids[2:10, 10:18] = 2
    t = targets_from_ids(ids, border_px=1, contact_px=2)
    interior, border, contact = t.astype(bool)
    assert not (interior & (border | contact)).any()
    assert np.array_equal(interior | border | contact, ids > 0)
    # the party wall: columns 8..11 (two pixels each side) are contact, the outer sides are not
    assert contact[5, 8:12].all() and not contact[5, 3:7].any() and not contact[5, 13:17].any()
    assert border[5, 2] and border[5, 9] and border[5, 10] and interior[5, 5]


def _chips(folder):
    with open(folder / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for r in rows:
        with rasterio.open(folder / r["targets"]) as src:
            assert src.descriptions == ("interior", "border", "contact")
            out[r["chip_id"]] = (src.read(), int(r["row_off"]), int(r["col_off"]))
    return out


def test_tile_instance_targets_raster_and_vectors_agree(scene, tmp_path):
    base = ["tile", str(scene["ortho_t1"]), "--dsm", str(scene["dsm_t1"]), "--labels", str(scene["labels_t1"]),
            "--size", "64", "--overlap", "16", "--split-block", "64"]
    assert main([*base, "-o", str(tmp_path / "a"), "--instance-targets", str(scene["instances_t1"])]) == 0
    assert main([*base, "-o", str(tmp_path / "b"), "--instance-targets", str(scene["buildings_t1"])]) == 0
    a, b = _chips(tmp_path / "a"), _chips(tmp_path / "b")
    assert a.keys() == b.keys()
    meta = json.loads((tmp_path / "a" / "tiling.json").read_text())
    assert meta["instance_targets"]["channels"] == ["interior", "border", "contact"]
    with rasterio.open(scene["instances_t1"]) as src:
        ids = src.read(1).astype(np.int64)
    whole = targets_from_ids(ids)
    contact_pixels = 0
    for key, (t, r, c) in a.items():
        # vector polygons and the id raster give the same targets, and a chip equals the whole-scene targets
        assert np.array_equal(t, b[key][0])
        assert np.array_equal(t, whole[:, r:r + 64, c:c + 64])
        contact_pixels += int(t[2].sum())
    assert contact_pixels > 100


def test_tile_instance_targets_errors(scene, tmp_path, capsys):
    code = main(["tile", str(scene["ortho_t1"]), "-o", str(tmp_path / "x"), "--instance-targets",
                 str(tmp_path / "missing.tif")])
    assert code == 2 and "missing.tif" in capsys.readouterr().err
    # a raster on another grid is refused in one line
    other = write_scene(tmp_path / "o", size=128, seed=1, instances=True)
    code = main(["tile", str(scene["ortho_t1"]), "-o", str(tmp_path / "y"), "--instance-targets",
                  str(other["instances_t1"])])
    err = capsys.readouterr().err
    assert code == 2 and "image grid" in err and len(err.strip().splitlines()) == 1
    # a float raster on the grid (a DSM) is not building ids: refused, no chips written
    code = main(["tile", str(scene["ortho_t1"]), "-o", str(tmp_path / "z"), "--instance-targets",
                 str(scene["dsm_t1"])])
    err = capsys.readouterr().err
    assert code == 2 and "integer building ids" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "z").exists()


def test_footprint_ids_on_a_rotated_grid_reach_the_windows_corners(tmp_path) -> None:
    """The window's box was two of its corners: on a rotated grid buildings near a chip's corner got no
    interior or border target while the label chips said building."""
    import geopandas as gpd
    import numpy as np
    from affine import Affine
    from rasterio.features import rasterize
    from rasterio.windows import Window
    from shapely.geometry import box

    from rsmamba.instance_targets import FootprintIds

    transform = Affine.translation(500000, 5000000) * Affine.rotation(-20) * Affine.scale(1, -1)
    rng = np.random.default_rng(0)
    polygons = [box(x - 1.5, y - 1.5, x + 1.5, y + 1.5)
                for x, y in (transform * (c, r) for c, r in rng.uniform(2, 62, (40, 2)))]
    layer = tmp_path / "b.gpkg"
    gpd.GeoDataFrame(geometry=polygons, crs="EPSG:32632").to_file(layer)
    whole = rasterize(zip(polygons, range(1, 41)), out_shape=(64, 64), transform=transform, fill=0, dtype="int32")
    ids = FootprintIds(layer, crs="EPSG:32632", transform=transform, width=64, height=64)
    for r in (0, 32):
        for c in (0, 32):
            np.testing.assert_array_equal(ids.read(Window(c, r, 32, 32)), whole[r:r + 32, c:c + 32])


def test_an_instance_raster_off_the_grid_in_degrees_or_in_another_crs_is_refused(tmp_path) -> None:
    """affine's default tolerance (1e-5 units) took a raster 3 px off a 0.25 m grid in degrees as on it, and the
    CRS was not compared: the building targets were written 3 px off the labels."""
    from rasterio.transform import Affine

    from rsmamba.errors import InputError
    from rsmamba.instance_targets import FootprintIds
    from tests.helpers.rasters import write_raster

    step = 2.75e-6
    grid = Affine(step, 0, 9.0, 0, -step, 45.0)
    ids = np.zeros((32, 32), np.int32)
    FootprintIds(write_raster(tmp_path / "on.tif", ids, crs="EPSG:4326", transform=grid),
                 crs="EPSG:4326", transform=grid, width=32, height=32)
    for name, crs, transform in (("off.tif", "EPSG:4326", grid * Affine.translation(3, 0)),
                                 ("other.tif", "EPSG:4269", grid)):
        path = write_raster(tmp_path / name, ids, crs=crs, transform=transform)
        with pytest.raises(InputError, match="must be on the image grid"):
            FootprintIds(path, crs="EPSG:4326", transform=grid, width=32, height=32)


def test_an_instance_rasters_nodata_is_no_building_and_its_targets_are_not_trained_on(tmp_path) -> None:
    """A uint16 instance raster with a nodata collar of 65535 (gdalwarp's fill) read the collar as one building:
    interior and border targets over pixels of no data (QA). They are 255 there (not trained on), as off the image."""
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from rsmamba.instance_targets import TARGET_IGNORE, FootprintIds, TargetReader

    ids = np.zeros((24, 24), np.uint16)
    ids[4:12, 4:12] = 1
    ids[:, 18:] = 65535
    transform = from_origin(500000, 5000024, 1, 1)
    path = tmp_path / "inst.tif"
    with rasterio.open(path, "w", driver="GTiff", width=24, height=24, count=1, dtype="uint16", crs="EPSG:32632",
                       transform=transform, nodata=65535) as dst:
        dst.write(ids, 1)
    reader = TargetReader(FootprintIds(path, crs="EPSG:32632", transform=transform, width=24, height=24), 1, 2)
    t = reader(Window(0, 0, 24, 24))
    assert (t[:, :, 18:] == TARGET_IGNORE).all()
    assert np.array_equal(t[:, :, :18], targets_from_ids(ids[:, :18].astype(np.int64), 1, 2))  # the house as before
