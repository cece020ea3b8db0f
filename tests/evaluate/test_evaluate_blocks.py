"""``rsmamba evaluate`` reads block by block: the same scores whatever the block, and never a raster whole."""

from __future__ import annotations

import json
import tracemalloc
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from shapely.geometry import box

from rsmamba.cli import main
from rsmamba.evaluate import evaluate_rasters
from tests.helpers.rasters import write_raster

H, W = 300, 517  # odd sizes: the last blocks of each row and column are partial
ORIGIN = (500000.0, 5000000.0)


def _classes(h: int, w: int, seed: int) -> np.ndarray:
    """Regions of classes 0..5 (boundaries for --erode) with some speckle."""
    rng = np.random.default_rng(seed)
    ids = (np.arange(w)[None, :] // 37 + np.arange(h)[:, None] // 29) % 6
    return np.where(rng.random((h, w)) < 0.05, rng.integers(0, 6, (h, w)), ids).astype(np.uint8)


def _prediction(tmp_path: Path) -> Path:
    pred = _classes(H, W, 1)
    pred[:, 400:410] = 254  # nodata
    pred[10:20, 30:40] = 7  # an id the class table has not: not scored, and said
    path = write_raster(tmp_path / "pred.tif", pred, nodata=254, origin=ORIGIN)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(CLASSES=json.dumps([{"id": i, "name": f"c{i}", "color": [40 * i, 0, 0]} for i in range(6)]))
    return path


def _reference(tmp_path: Path, kind: str) -> Path:
    ref = _classes(H, W, 2)
    ref[250:, :100] = 255  # unlabelled
    if kind == "raster":
        return write_raster(tmp_path / "ref.tif", ref, nodata=255, origin=ORIGIN)
    if kind == "reprojected":  # another CRS and pixel size, with an internal mask: resampled onto the prediction
        left, bottom, right, top = transform_bounds("EPSG:32632", "EPSG:32633", ORIGIN[0], ORIGIN[1] - H,
                                                    ORIGIN[0] + W, ORIGIN[1])
        h, w = int((top - bottom) / 0.9) + 20, int((right - left) / 0.9) + 20
        path = tmp_path / "ref.tif"
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
                path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs="EPSG:32633",
                transform=from_origin(left - 9, top + 9, 0.9, 0.9)) as dst:
            dst.write(_classes(h, w, 3), 1)
            mask = np.full((h, w), 255, np.uint8)
            mask[:, 100:130] = 0
            dst.write_mask(mask)
        return path
    # a vector reference: boxes of classes over part of the scene (the rest not scored)
    boxes = [(box(ORIGIN[0] + c, ORIGIN[1] - r - 45.5, ORIGIN[0] + c + 61.25, ORIGIN[1] - r), (r + c) // 10 % 6)
             for r in range(0, H, 50) for c in range(0, W, 70)]
    layer = gpd.GeoDataFrame({"class": [v for _, v in boxes]}, geometry=[g for g, _ in boxes], crs="EPSG:32632")
    layer.to_file(tmp_path / "ref.gpkg")
    return tmp_path / "ref.gpkg"


def _outputs(out: Path) -> tuple[str, str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(out.with_name(out.stem + "_panels.png")) as src:
            panels = src.read()
    return out.read_text(), out.with_suffix(".csv").read_text(), panels


@pytest.mark.parametrize("kind", ["raster", "reprojected", "vector"])
def test_scores_are_the_same_whatever_the_block(tmp_path: Path, kind: str) -> None:
    """Blocks of 64 px (partial ones at the edges, a halo for --erode, a reference resampled or burnt per block)
    score exactly as one block of the whole scene: the counts are integers, and so equal by construction."""
    pred, ref = _prediction(tmp_path), _reference(tmp_path, kind)
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "64" / "m.json"), "--erode", "3", "--exclude",
                 "5", "--image", str(pred), "--block-size", "64"]) == 0
    evaluate_rasters(pred, ref, tmp_path / str(10**6) / "m.json", erode=3, exclude=[5], image=pred, block_size=10**6)
    outputs = [_outputs(tmp_path / str(block) / "m.json") for block in (64, 10**6)]
    (json_small, csv_small, panels_small), (json_whole, csv_whole, panels_whole) = outputs
    assert json_small.replace("/64/", "/") == json_whole.replace(f"/{10**6}/", "/")
    assert csv_small == csv_whole
    np.testing.assert_array_equal(panels_small, panels_whole)
    said = " ".join(json.loads(json_whole).get("warnings", []))
    assert "ids no class of the table has (7)" in said  # the table's check is counted over the blocks too
    assert json.loads(json_whole)["pixels"] > 0


def test_semantic_change_is_the_same_whatever_the_block(tmp_path: Path) -> None:
    """The semantic change scores (SeK, Fscd) are a histogram summed over the blocks."""
    t1, t2 = _classes(H, W, 4) % 4, _classes(H, W, 5) % 4
    t2[:150] = t1[:150]  # unchanged in the top half
    rng = np.random.default_rng(6)
    change = ((t1 != t2) ^ (rng.random((H, W)) < 0.05)).astype(np.uint8)
    pred = tmp_path / "change.tif"
    with rasterio.open(pred, "w", driver="GTiff", width=W, height=H, count=3, dtype="uint8", nodata=255,
                       crs="EPSG:32632", transform=from_origin(*ORIGIN, 1, 1)) as dst:
        dst.write(np.stack([change, t1, np.where(rng.random((H, W)) < 0.9, t2, (t2 + 1) % 4)]).astype(np.uint8))
        for b, name in enumerate(("change", "from_class", "to_class"), 1):
            dst.set_band_description(b, name)
        dst.update_tags(class_names=json.dumps(list("abcd")))
    r1 = write_raster(tmp_path / "t1.tif", t1, nodata=255, origin=ORIGIN)
    r2 = write_raster(tmp_path / "t2.tif", t2, nodata=255, origin=ORIGIN)
    results = [evaluate_rasters(pred, r1, tmp_path / f"{block}.json", reference_t2=r2, erode=2, block_size=block)
               for block in (64, 10**6)]
    assert results[0]["semantic_change"]["sek"] is not None
    assert json.dumps(results[0]).replace("64.json", "") == json.dumps(results[1]).replace(f"{10**6}.json", "")


def test_memory_stays_that_of_a_block(tmp_path: Path) -> None:
    """The numpy buffers held at once (tracemalloc sees them) are a block's and the panels', not the scene's: a
    pair of 4000 x 3000 took 183 MB (15 B a pixel) whole, and with --erode 3 a pair of 8000 x 8000 took 2.5 GB."""
    h, w = 4000, 6000
    ids = np.tile(_classes(400, 600, 7), (10, 10))  # (np.arange over the whole scene: 8 B a pixel in the test)
    pred = write_raster(tmp_path / "pred.tif", ids, nodata=254)
    ids[::7, ::5] = (ids[::7, ::5] + 1) % 6
    ref = write_raster(tmp_path / "ref.tif", ids, nodata=255)
    del ids
    tracemalloc.start()
    try:
        result = evaluate_rasters(pred, ref, tmp_path / "m.json", erode=2, block_size=256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["pixels"] > 0
    assert peak < h * w / 4, f"{peak / 1e6:.1f} MB held at once"  # a quarter of one 8-bit copy of the scene


def _whole_scene_objects(pred: np.ndarray, valid: np.ndarray, buildings: list, footprints: list | None,
                         min_object_pixels: int) -> dict:
    """The object scores as evaluate computed them before it read --buildings block by block: the prediction held
    whole, labelled (or the footprints burnt) and the reference burnt over the whole grid, then matched."""
    from rasterio.features import rasterize
    from scipy import ndimage

    from rsmamba.evaluate import merge_split_errors

    transform = from_origin(*ORIGIN, 1, 1)

    def burnt(polygons: list) -> np.ndarray:
        if not polygons:
            return np.zeros(pred.shape, np.int64)
        return rasterize([(g, i + 1) for i, g in enumerate(polygons)], out_shape=pred.shape, transform=transform,
                         fill=0, dtype="int32").astype(np.int64)

    ref_objects = np.where(valid, burnt(buildings), 0)
    pred_objects = burnt(footprints) if footprints is not None else ndimage.label((pred == 1) & valid)[0]
    pred_objects = np.where(valid, pred_objects, 0)
    sizes = np.bincount(pred_objects.ravel())
    pred_objects = np.where(sizes[pred_objects] >= min_object_pixels, pred_objects, 0)

    def present(objects: np.ndarray) -> np.ndarray:
        there = np.bincount(objects.ravel()) > 0
        there[0] = False
        return (np.cumsum(there) * there)[objects]

    pred_objects, ref_objects = present(pred_objects), present(ref_objects)
    n_pred, n_ref = int(pred_objects.max()), int(ref_objects.max())
    both = (pred_objects > 0) & (ref_objects > 0)
    keys, inter = np.unique(pred_objects[both] * (n_ref + 1) + ref_objects[both], return_counts=True)
    p_idx, r_idx = np.divmod(keys, n_ref + 1)
    area_p, area_r = np.bincount(pred_objects.ravel()), np.bincount(ref_objects.ravel())
    iou = inter / (area_p[p_idx] + area_r[r_idx] - inter)
    used_p, used_r, tp = set(), set(), 0
    for i in np.argsort(-iou, kind="stable").tolist():
        if iou[i] >= 0.5 and p_idx[i] not in used_p and r_idx[i] not in used_r:
            used_p.add(p_idx[i])
            used_r.add(r_idx[i])
            tp += 1
    precision, recall = tp / n_pred, tp / n_ref
    return {"tp": tp, "predicted": n_pred, "reference": n_ref, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if tp else 0.0, "iou_threshold": 0.5,
            **merge_split_errors(p_idx, r_idx, inter, area_p, area_r)}


def _boxes(cells: list[tuple[int, int, int, int]]) -> list:
    """Polygons of (row, col, height, width) pixel boxes on the test grid."""
    return [box(ORIGIN[0] + c, ORIGIN[1] - r - h, ORIGIN[0] + c + w, ORIGIN[1] - r) for r, c, h, w in cells]


def test_building_objects_are_the_same_whatever_the_block(tmp_path: Path) -> None:
    """--buildings is counted block by block, its regions joined across the seams: every building score is the
    whole scene's (labelled at once, as evaluate did holding the prediction whole) for any block size."""
    h, w = 120, 150
    rng = np.random.default_rng(8)
    pred = np.zeros((h, w), np.uint8)
    pred[3:40, 5:60] = 2
    pred[5:38, 5:58] = 1  # one building across seams both ways (7, 16 and 32 px blocks)
    pred[20:60, 70:73] = pred[20:60, 80:83] = 1  # a U, its arms joined only at rows 57..59, below the seams
    pred[57:60, 70:83] = 1
    pred[61:64, 61:64] = pred[64:67, 64:67] = 1  # touching at a corner only, across the 16- and 64-px seams
    pred[43:47, 20:28] = 1  # a terrace of two equal houses found as one: IoU exactly 0.5 with each
    pred[70:80, 10:30] = 1  # half under nodata: the rest scored alone
    pred[74:76, :] = 5
    cells = [(5, 5, 33, 53), (20, 70, 40, 13), (61, 61, 6, 6), (43, 20, 4, 4), (43, 24, 4, 4), (70, 10, 10, 20),
             (80, 0, 6, 50), (81, 2, 3, 3),  # a reference building under a later one: burnt over, not counted
             (0, 140, 30, 30)]  # off the grid in part
    for r, c in zip(rng.integers(0, h - 9, 60), rng.integers(0, w - 9, 60)):  # houses found, more or less well
        hh, ww = rng.integers(2, 9, 2)
        if not pred[max(r - 1, 0):r + hh + 1, max(c - 1, 0):c + ww + 1].any():
            pred[r:r + hh, c:c + ww] = 1
            cells.append((int(r + rng.integers(0, 2)), int(c), int(hh), int(ww + rng.integers(-1, 3))))
    pred[(rng.random((h, w)) < 0.01) & (pred == 0)] = 1  # speckle, dropped by --min-object-pixels
    pred[:, 40:43] = 254  # nodata across buildings: each side an object of its own
    valid = pred != 254
    path = write_raster(tmp_path / "pred.tif", pred, nodata=254, origin=ORIGIN)
    buildings = _boxes(cells)
    gpd.GeoDataFrame(geometry=buildings, crs="EPSG:32632").to_file(tmp_path / "b.gpkg")
    footprints = _boxes([(r + 1, c, hh, ww) for r, c, hh, ww in cells[::2]] + [(40, 38, 10, 10), (41, 39, 2, 2)])
    gpd.GeoDataFrame(geometry=footprints, crs="EPSG:32632").to_file(tmp_path / "f.gpkg")
    for min_pixels, given in ((0, None), (5, None), (0, footprints), (12, footprints)):
        expected = _whole_scene_objects(pred, valid, buildings, given, min_pixels)
        assert expected["tp"] > 10 and expected["merged"] and expected["predicted"] > 15, expected
        for block in (7, 16, 64, 100000):
            got = evaluate_rasters(path, path, tmp_path / f"{block}_{min_pixels}_{given is None}" / "m.json",
                                   buildings=tmp_path / "b.gpkg", min_object_pixels=min_pixels, block_size=block,
                                   footprints=None if given is None else tmp_path / "f.gpkg")["buildings"]
            assert {k: got[k] for k in expected} == expected, (block, min_pixels, given is None)


def test_overlapping_footprints_and_point_layers_are_said_not_scored_silently(tmp_path: Path, capsys) -> None:
    """A footprint layer written twice (28 polygons for 14 houses) scored precision 1.0 without a word; house
    centroids as --footprints scored F1 0, outlines as lines as --buildings recall 0, and points as a --burn
    reference a whole raster against background, each with exit 0."""
    from shapely.geometry import LineString, Point

    pred = np.zeros((60, 60), np.uint8)
    cells = [(r, c, 8, 8) for r in (5, 25, 45) for c in (5, 25, 45)]
    for r, c, hh, ww in cells:
        pred[r:r + hh, c:c + ww] = 1
    path = write_raster(tmp_path / "pred.tif", pred, nodata=254, origin=ORIGIN)
    houses = _boxes(cells)
    gpd.GeoDataFrame(geometry=houses, crs="EPSG:32632").to_file(tmp_path / "b.gpkg")
    gpd.GeoDataFrame(geometry=houses + houses[:4], crs="EPSG:32632").to_file(tmp_path / "twice.gpkg")
    got = evaluate_rasters(path, path, tmp_path / "m.json", buildings=tmp_path / "b.gpkg",
                           footprints=tmp_path / "twice.gpkg")
    assert got["buildings"]["precision"] == 1.0  # what shows of each: the scores cannot hold both copies ...
    said = [w for w in got["warnings"] if "overlap" in w]  # ... so they say so
    assert len(said) == 1 and "twice.gpkg: 8 polygons overlap others by a pixel or more (4 of them half covered" in said[0]
    neighbours = [box(*g.bounds).buffer(0.4, join_style="mitre") for g in houses]  # sharing under a pixel each
    gpd.GeoDataFrame(geometry=neighbours, crs="EPSG:32632").to_file(tmp_path / "near.gpkg")
    got = evaluate_rasters(path, path, tmp_path / "n.json", buildings=tmp_path / "b.gpkg",
                           footprints=tmp_path / "near.gpkg")
    assert not any("overlap" in w for w in got.get("warnings", []))
    capsys.readouterr()  # (the warnings above, where a CLI run in this process set up logging)
    gpd.GeoDataFrame(geometry=[g.centroid for g in houses], crs="EPSG:32632").to_file(tmp_path / "pts.gpkg")
    lines = [LineString(g.exterior.coords) for g in houses]  # (a LinearRing crashes pyogrio's writer)
    gpd.GeoDataFrame(geometry=lines, crs="EPSG:32632").to_file(tmp_path / "lines.gpkg")
    for args, needle in (
            (["--buildings", "b.gpkg", "--footprints", "pts.gpkg"], "footprints pts.gpkg: no polygons, only Point"),
            (["--buildings", "lines.gpkg"], "buildings lines.gpkg: no polygons, only LineString"),
            (["pts.gpkg", "--burn", "1"], "reference pts.gpkg: no polygons, only Point")):
        ref = [] if args[0] == "pts.gpkg" else ["pred.tif"]
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            assert main(["evaluate", "pred.tif", *ref, *args, "-o", "x.json"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
        assert not (tmp_path / "x.json").exists()
    mixed = gpd.GeoDataFrame(geometry=houses + [Point(ORIGIN[0] + 1, ORIGIN[1] - 1)], crs="EPSG:32632")
    mixed.to_file(tmp_path / "mixed.gpkg")
    got = evaluate_rasters(path, path, tmp_path / "p.json", buildings=tmp_path / "b.gpkg",
                           footprints=tmp_path / "mixed.gpkg")
    assert got["buildings"]["predicted"] == 9 and got["buildings"]["f1"] == 1.0
    assert any("mixed.gpkg: 1 feature of the layer is Point, not areas: left out of the object scores" in w
               for w in got["warnings"])
    # an empty footprint layer scores every building missed, as it should, and says so (F1 0 and exit 0 unsaid)
    gpd.GeoDataFrame(geometry=[], crs="EPSG:32632").to_file(tmp_path / "empty.gpkg")
    got = evaluate_rasters(path, path, tmp_path / "e.json", buildings=tmp_path / "b.gpkg",
                           footprints=tmp_path / "empty.gpkg")
    assert got["buildings"]["f1"] == 0.0
    assert any("empty.gpkg: the layer has no polygon: every reference building counts as missed" in w
               for w in got["warnings"])


def test_building_objects_memory_stays_that_of_a_block(tmp_path: Path) -> None:
    """--buildings held the prediction and its validity whole and burnt the buildings over the whole grid (about
    24 bytes a pixel: 1.06 GB resident for 6000 x 6000); now a block's and the objects' counts."""
    h, w = 4000, 6000
    ids = np.zeros((h, w), np.uint8)
    for r in range(0, h, 100):  # 2400 houses of 30 x 40 px
        for c in range(0, w, 100):
            ids[r + 10:r + 40, c + 20:c + 60] = 1
    pred = write_raster(tmp_path / "pred.tif", ids, nodata=254, origin=ORIGIN)
    del ids
    gpd.GeoDataFrame(geometry=_boxes([(r + 12, c + 20, 30, 40) for r in range(0, h, 100) for c in range(0, w, 100)]),
                     crs="EPSG:32632").to_file(tmp_path / "b.gpkg")
    evaluate_rasters(pred, pred, tmp_path / "warm.json", buildings=tmp_path / "b.gpkg")  # (the imports, once)
    tracemalloc.start()
    try:
        result = evaluate_rasters(pred, pred, tmp_path / "m.json", buildings=tmp_path / "b.gpkg", block_size=256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["buildings"]["tp"] == 2400
    assert peak < h * w / 4, f"{peak / 1e6:.1f} MB held at once"  # a quarter of one 8-bit copy of the scene
