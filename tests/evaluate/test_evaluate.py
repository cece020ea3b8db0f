"""``rsmamba evaluate``: scores vs sklearn, grids, vectors, conventions, object F1, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box
from sklearn.metrics import cohen_kappa_score, jaccard_score

from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.classes import ISPRS_CLASSES
from rsmamba.evaluate import eroded_boundary_mask, evaluate_rasters, object_f1
from tests.helpers.rasters import write_raster, write_semantic_change


def _pair(tmp_path: Path, seed: int = 0) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 6, (40, 50)).astype(np.uint8)
    pred = np.where(rng.random(ref.shape) < 0.7, ref, rng.integers(0, 6, ref.shape)).astype(np.uint8)
    ref[:3] = 255  # ignore
    pred[-2:] = 254  # prediction nodata
    p = write_raster(tmp_path / "pred.tif", pred, nodata=254)
    r = write_raster(tmp_path / "ref.tif", ref, nodata=255)
    return p, r, pred, ref


def test_scores_match_sklearn_and_outputs_written(tmp_path: Path) -> None:
    p, r, pred, ref = _pair(tmp_path)
    result = evaluate_rasters(p, r, tmp_path / "out" / "metrics.json")
    keep = (ref != 255) & (pred != 254)
    assert result["pixels"] == keep.sum()
    assert result["miou"] == pytest.approx(jaccard_score(ref[keep], pred[keep], average="macro"))
    assert result["kappa"] == pytest.approx(cohen_kappa_score(ref[keep], pred[keep]))
    out = tmp_path / "out"
    assert json.loads((out / "metrics.json").read_text())["oa"] == pytest.approx((ref[keep] == pred[keep]).mean())
    assert (out / "metrics.csv").read_text().startswith("class,iou")
    for png in ("metrics_confusion.png", "metrics_panels.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_clutter_excluded_from_means_only(tmp_path: Path) -> None:
    p, r, pred, ref = _pair(tmp_path, 1)
    keep = (ref != 255) & (pred != 254)
    result = evaluate_rasters(p, r, tmp_path / "m.json", exclude=[5])
    ious = jaccard_score(ref[keep], pred[keep], average=None)
    assert result["miou"] == pytest.approx(ious[:5].mean())
    assert result["conventions"]["excluded_from_means"] == ["clutter"]


def test_eroded_boundaries() -> None:
    ref = np.zeros((10, 10), np.int64)
    ref[:, 5:] = 1
    m1, m2 = eroded_boundary_mask(ref, 1), eroded_boundary_mask(ref, 2)
    assert m1[:, 4:6].all() and not m1[:, :4].any() and not m1[:, 6:].any()
    assert m2[:, 3:7].all() and not m2[:, :3].any()


def test_eroded_boundaries_widen_with_a_disc() -> None:
    """A lone boundary pixel pair widened by radius 4: a disc of radius 3, not a 7 x 7 square."""
    ref = np.zeros((21, 21), np.int64)
    ref[10, 10] = 1
    edge = eroded_boundary_mask(ref, 1)
    band = eroded_boundary_mask(ref, 4)
    yy, xx = np.mgrid[:21, :21]
    near = np.zeros_like(band)
    for y, x in zip(*np.nonzero(edge)):
        near |= (yy - y) ** 2 + (xx - x) ** 2 <= 9
    np.testing.assert_array_equal(band, near)
    assert not band[7, 7]  # in a 7 x 7 square around the edge pixel (9, 10), 3.6 px from it


def test_a_wide_erosion_costs_what_a_narrow_one_does() -> None:
    """A (2r+1)^2 disc structure took 43 s at r = 100 on 256 px and ran out of memory at 10000: the band is a
    distance to the nearest boundary instead, the same pixels as the disc's dilation."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    ref = ndimage.zoom(rng.integers(0, 4, (8, 8)), 8, order=0)
    for radius in (2, 3, 6):
        r = radius - 1
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        disc = ndimage.binary_dilation(eroded_boundary_mask(ref, 1), structure=yy * yy + xx * xx <= r * r)
        np.testing.assert_array_equal(eroded_boundary_mask(ref, radius), disc)
    assert eroded_boundary_mask(ref, 10_000).all()  # every pixel within reach of a boundary, at once
    assert not eroded_boundary_mask(np.zeros((5, 5), np.int64), 50).any()  # no boundary, nothing masked


def test_reference_on_other_grid_is_resampled(tmp_path: Path) -> None:
    labels = np.zeros((20, 20), np.uint8)
    labels[:, 10:] = 1
    pred = write_raster(tmp_path / "p.tif", labels, res=1.0)
    # Reference at 0.5 m, same area: nearest resampling must give the same labels.
    fine = np.kron(labels, np.ones((2, 2), np.uint8))
    ref = write_raster(tmp_path / "r.tif", fine, res=0.5)
    result = evaluate_rasters(pred, ref, tmp_path / "m.json")
    assert result["oa"] == pytest.approx(1.0) and result["pixels"] == 400
    # said, on the CLI and in the scores' file: a 0.5 m reference moved building IoU 0.959 -> 0.923
    assert any("on another grid than the prediction (pixels 0.5 x 0.5; the prediction's 1 x 1): resampled "
               "(nearest)" in w for w in result["warnings"])
    same = evaluate_rasters(pred, write_raster(tmp_path / "r1.tif", labels), tmp_path / "m1.json")
    assert "warnings" not in same


def test_vector_reference_and_building_object_f1(tmp_path: Path) -> None:
    pred = np.zeros((40, 40), np.uint8)
    pred[5:15, 5:15] = 1  # matches building A
    pred[20:22, 20:22] = 1  # tiny blob: IoU with B < 0.5
    p = write_raster(tmp_path / "p.tif", pred, origin=(500000.0, 5000000.0))
    x0, y0 = 500000.0, 5000000.0
    a = box(x0 + 5, y0 - 15, x0 + 15, y0 - 5)
    b = box(x0 + 20, y0 - 30, x0 + 30, y0 - 20)
    gdf = gpd.GeoDataFrame({"class": [1, 1]}, geometry=[a, b], crs="EPSG:32632")
    gdf.to_file(tmp_path / "b.gpkg")
    result = evaluate_rasters(p, tmp_path / "b.gpkg", tmp_path / "m.json", buildings=tmp_path / "b.gpkg")
    assert result["pixels"] == 200  # only polygon pixels are labelled, the rest is ignore
    objects = result["buildings"]
    assert objects["tp"] == 1 and objects["predicted"] == 2 and objects["reference"] == 2
    assert objects["f1"] == pytest.approx(0.5)
    dropped = evaluate_rasters(p, tmp_path / "b.gpkg", tmp_path / "m.json", buildings=tmp_path / "b.gpkg", overwrite=True,
                               min_object_pixels=5)["buildings"]
    assert dropped["predicted"] == 1 and dropped["f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)
    for name in ("b.parquet", "b.geoparquet"):  # what vectorize writes; pyogrio's GDAL asked for libduckdb
        gdf.to_parquet(tmp_path / name)
        again = evaluate_rasters(p, tmp_path / name, tmp_path / name.replace(".", "_") / "m.json",
                                 buildings=tmp_path / name)
        assert again["pixels"] == 200 and again["buildings"]["f1"] == pytest.approx(0.5)


def test_object_f1_hand_case() -> None:
    ref = np.zeros((10, 10), np.int64)
    ref[0:4, 0:4] = 1
    ref[6:10, 6:10] = 2
    pred = np.zeros_like(ref)
    pred[0:4, 0:3] = 1  # IoU 12/16
    assert object_f1(pred, ref)["f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_building_objects_count_where_the_prediction_is_whatever_their_order(tmp_path: Path) -> None:
    """A building off the prediction's grid, or under its nodata, was a miss (the labels' own left half scored
    F1 0.67), and the count was the highest id burnt: the same polygons in another order gave F1 0.8 or 1.0."""
    x0, y0 = 500000.0, 5000000.0
    pred = np.full((40, 40), 255, np.uint8)
    pred[:, :20] = 0
    pred[5:15, 5:15] = 1  # house A, found
    p = write_raster(tmp_path / "p.tif", pred, origin=(x0, y0), nodata=255)  # right half: no data
    a = box(x0 + 5, y0 - 15, x0 + 15, y0 - 5)
    under_nodata = box(x0 + 25, y0 - 15, x0 + 35, y0 - 5)
    off_grid = box(x0 - 50, y0 + 40, x0 - 40, y0 + 50)
    for order in ([off_grid, a, under_nodata], [a, under_nodata, off_grid]):
        gpd.GeoDataFrame(geometry=order, crs="EPSG:32632").to_file(tmp_path / "b.gpkg")
        got = evaluate_rasters(p, tmp_path / "b.gpkg", tmp_path / "m.json", buildings=tmp_path / "b.gpkg",
                               burn=1, overwrite=True)["buildings"]
        assert (got["tp"], got["predicted"], got["reference"], got["f1"]) == (1, 1, 1, 1.0)
    ref = np.zeros((10, 10), np.int64)
    ref[0:4, 0:4] = 3  # ids 1 and 2 burnt nothing (covered, or too small)
    assert object_f1(ref.copy(), ref)["reference"] == 1 and object_f1(ref.copy(), ref)["f1"] == 1.0


def test_evaluate_cli(tmp_path: Path, capsys) -> None:
    p, r, _, _ = _pair(tmp_path, 2)
    assert main(["evaluate", str(p), str(r), "-o", str(tmp_path / "e" / "m.json"), "--exclude", "5", "--erode", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mIoU ")
    saved = json.loads((tmp_path / "e" / "m.json").read_text())
    assert f"({saved['pixels']:,} px scored: both valid, 1 px of each class boundary left out" in out  # --erode said
    assert "(means without clutter)" in out  # said where the numbers are read, not only in the JSON
    assert saved["conventions"] == {"excluded_from_means": ["clutter"], "eroded_boundary_radius": 1,
                                    "nodata_and_ignore_excluded": True}


def test_errors_are_collected_and_cli_exits_nonzero(tmp_path: Path, capsys) -> None:
    p = write_raster(tmp_path / "p.tif", np.zeros((8, 8), np.uint8))
    far = write_raster(tmp_path / "far.tif", np.zeros((8, 8), np.uint8), origin=(600000.0, 5000000.0))
    with pytest.raises(InputError, match="does not overlap"):
        evaluate_rasters(p, far, tmp_path / "m.json")
    nocrs = write_raster(tmp_path / "nocrs.tif", np.zeros((8, 8), np.uint8), crs=None, res=2.0)
    with pytest.raises(InputError, match="no CRS"):
        evaluate_rasters(p, nocrs, tmp_path / "m.json")
    code = main(["evaluate", str(tmp_path / "missing.tif"), str(tmp_path / "nope.tif"), "-o", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == 2 and "missing.tif" in err and "nope.tif" in err
    assert not (tmp_path / "m.json").exists()


def test_a_change_raster_is_scored_against_change_never_against_classes(tmp_path: Path) -> None:
    """Band 1 of 'rsmamba change' is 0/1 change: against class ids it scored 'impervious' and 'building'."""
    import rasterio

    rng = np.random.default_rng(5)
    change = (rng.random((30, 40)) < 0.2).astype(np.uint8)
    pred = write_raster(tmp_path / "change.tif", change, nodata=255)
    with rasterio.open(pred, "r+") as ds:
        ds.set_band_description(1, "change")
    classes = write_raster(tmp_path / "classes.tif", rng.integers(0, 6, (30, 40)).astype(np.uint8))
    with pytest.raises(InputError, match="is a change raster .* holds class ids up to 5"):
        evaluate_rasters(pred, classes, tmp_path / "bad" / "m.json")
    truth = write_raster(tmp_path / "truth.tif", change)
    result = evaluate_rasters(pred, truth, tmp_path / "ok" / "m.json")
    assert list(result["per_class"]) == ["no_change", "change"] and result["miou"] == 1.0
    # the other way round: a class map against a change reference scored mIoU 0.08 as impervious/building (QA)
    with pytest.raises(InputError, match=r"^reference .*change.tif is a change raster \(band 1: 0/1 change\) but "
                                         r"prediction .*classes.tif holds class ids up to 5; score a change raster"):
        evaluate_rasters(classes, pred, tmp_path / "rev" / "m.json")
    binary = evaluate_rasters(truth, pred, tmp_path / "bin" / "m.json")  # a 0/1 map of another tool: scored, said
    assert binary["miou"] == 1.0 and "its 0/1 are scored as the classes 0 (impervious) and 1 (building)" in \
        binary["warnings"][0]


def test_a_reference_nodata_that_is_a_class_is_said_in_the_metrics(tmp_path: Path) -> None:
    """GDAL habitually writes nodata 0; under the ISPRS table 0 is impervious, then never scored."""
    ref = np.random.default_rng(6).integers(0, 6, (20, 30)).astype(np.uint8)
    pred = write_raster(tmp_path / "pred.tif", ref)
    result = evaluate_rasters(pred, write_raster(tmp_path / "ref0.tif", ref, nodata=0), tmp_path / "a" / "m.json")
    assert result["warnings"] == [f"reference {tmp_path / 'ref0.tif'}: nodata 0 is also class 0 (impervious): its "
                                  "pixels are not scored and it leaves the means; unset it (gdal_edit.py -unsetnodata "
                                  f"{tmp_path / 'ref0.tif'}) if 0 is a class"]
    assert result["per_class"]["impervious"]["support"] == 0
    # a prediction of 0 where the reference holds another class: class 0 can only be wrong, so it leaves the means
    wrong = ref.copy()
    wrong[ref == 1] = 0
    other = evaluate_rasters(write_raster(tmp_path / "wrong.tif", wrong), tmp_path / "ref0.tif", tmp_path / "c" / "m.json")
    assert "impervious" in other["conventions"]["excluded_from_means"]
    ious = [v["iou"] for k, v in other["per_class"].items() if k != "impervious"]
    assert other["miou"] == pytest.approx(sum(ious) / len(ious))
    assert "warnings" not in evaluate_rasters(pred, write_raster(tmp_path / "ref.tif", ref, nodata=255),
                                              tmp_path / "b" / "m.json")


def test_a_prediction_nodata_that_is_a_class_is_said_too(tmp_path: Path) -> None:
    ref = np.random.default_rng(7).integers(0, 6, (20, 30)).astype(np.uint8)
    pred = write_raster(tmp_path / "pred0.tif", ref, nodata=0)
    result = evaluate_rasters(pred, write_raster(tmp_path / "ref.tif", ref), tmp_path / "a" / "m.json")
    assert result["warnings"] == [f"prediction {pred}: nodata 0 is also class 0 (impervious): its pixels are not "
                                  f"scored and it leaves the means; unset it (gdal_edit.py -unsetnodata {pred}) if 0 "
                                  "is a class"]


def test_vector_references_are_checked_like_tile_checks_label_layers(tmp_path: Path) -> None:
    """Class values, layers, overlap: every problem one line before any score is written."""
    p = write_raster(tmp_path / "p.tif", np.zeros((40, 40), np.uint8))
    x0, y0 = 500000.0, 5000000.0
    inside, far = box(x0 + 5, y0 - 15, x0 + 15, y0 - 5), box(x0 + 9000, y0 - 15, x0 + 9010, y0 - 5)
    cases = {"nan.gpkg": ([1.0, np.nan], r"is empty \(NULL\) in 1 feature \(row 1\)"),
             "half.gpkg": ([1.0, 1.5], "must hold integer class ids or the class table.s names \\(it holds 1.0, 1.5\\)"), "300.gpkg": ([1, 300], "0..254"),
             "neg.gpkg": ([-1, 2], "0..254")}
    for name, (values, needle) in cases.items():
        gpd.GeoDataFrame({"class": values}, geometry=[inside, inside], crs="EPSG:32632").to_file(tmp_path / name)
        with pytest.raises(InputError, match=needle):
            evaluate_rasters(p, tmp_path / name, tmp_path / name.replace(".", "_") / "m.json")
    named = tmp_path / "named.gpkg"  # a text class field: the prediction's table's names (ISPRS here)
    gpd.GeoDataFrame({"class": ["Building", "pool"]}, geometry=[inside, inside], crs="EPSG:32632").to_file(named)
    with pytest.raises(InputError, match=r"holds names no class of the prediction's table has \(pool; the table: impervious, building"):
        evaluate_rasters(p, named, tmp_path / "n1" / "m.json")
    gpd.GeoDataFrame({"class": ["Building"]}, geometry=[inside], crs="EPSG:32632").to_file(named)
    assert evaluate_rasters(p, named, tmp_path / "n2" / "m.json")["per_class"]["building"]["support"] == 100
    multi = tmp_path / "multi.gpkg"
    gpd.GeoDataFrame({"class": [5]}, geometry=[inside], crs="EPSG:32632").to_file(multi, layer="clutter")
    gpd.GeoDataFrame({"class": [1]}, geometry=[inside], crs="EPSG:32632").to_file(multi, layer="buildings")
    with pytest.raises(InputError, match=r"2 layers \(clutter, buildings\).*--reference-layer"):
        evaluate_rasters(p, multi, tmp_path / "m1" / "m.json")
    one = evaluate_rasters(p, multi, tmp_path / "m2" / "m.json", reference_layer="buildings")
    assert one["per_class"]["building"]["support"] == 100
    gpd.GeoDataFrame({"class": [1]}, geometry=[far], crs="EPSG:32632").to_file(tmp_path / "far.gpkg")
    with pytest.raises(InputError, match="buildings .*far.gpkg: does not overlap the prediction"):
        evaluate_rasters(p, multi, tmp_path / "m3" / "m.json", reference_layer="buildings",
                         buildings=tmp_path / "far.gpkg")
    (tmp_path / "not.gpkg").write_text("no vector")
    with pytest.raises(InputError, match="buildings .*not.gpkg: not a readable vector layer"):
        evaluate_rasters(p, multi, tmp_path / "m4" / "m.json", reference_layer="buildings",
                         buildings=tmp_path / "not.gpkg")
    with pytest.raises(InputError, match=r"^buildings .*p.tif: a raster, not a vector layer; give the buildings as "
                                         r"polygons"):  # (synth's instances_t1.tif: 'not recognized as ...'; QA)
        evaluate_rasters(p, multi, tmp_path / "m6" / "m.json", reference_layer="buildings", buildings=p)
    empty = tmp_path / "empty.geojson"  # an empty GeoJSON has no fields: it was said to lack 'class' (QA)
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match=r"^reference .*empty.geojson: the layer has no features with a geometry$"):
        evaluate_rasters(p, empty, tmp_path / "m5" / "m.json")


def test_a_south_up_prediction_is_scored_against_its_north_up_reference(tmp_path: Path) -> None:
    """Bounds of a south-up grid have top < bottom: the overlap check sorts them."""
    from affine import Affine

    ref = np.random.default_rng(8).integers(0, 6, (20, 30)).astype(np.uint8)
    north = write_raster(tmp_path / "ref.tif", ref, origin=(500000.0, 5000020.0))
    south = write_raster(tmp_path / "pred.tif", ref[::-1].copy(), transform=Affine(1, 0, 500000.0, 0, 1, 5000000.0))
    result = evaluate_rasters(south, north, tmp_path / "m" / "m.json")
    assert result["oa"] == 1.0 and result["pixels"] == ref.size


def test_a_vector_reference_without_burn_says_it_scores_only_inside_its_polygons(tmp_path: Path) -> None:
    p = write_raster(tmp_path / "p.tif", np.ones((40, 40), np.uint8))  # building everywhere
    x0, y0 = 500000.0, 5000000.0
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(x0 + 5, y0 - 15, x0 + 15, y0 - 5)],
                     crs="EPSG:32632").to_file(tmp_path / "b.gpkg")
    inside = evaluate_rasters(p, tmp_path / "b.gpkg", tmp_path / "a" / "m.json")
    assert inside["miou"] == 1.0 and "scores only the pixels inside its polygons (6.2% of the prediction)" in \
        inside["warnings"][0]
    burnt = evaluate_rasters(p, tmp_path / "b.gpkg", tmp_path / "b" / "m.json", burn=1)
    assert burnt["miou"] < 0.1 and "warnings" not in burnt
    with pytest.raises(InputError, match=r"--burn 1 scores every reference polygon as one class, --class-field "
                                         r"class reads each polygon's class: give one of them"):
        evaluate_rasters(p, tmp_path / "b.gpkg", tmp_path / "d" / "m.json", burn=1, class_field="class")
    for bad in (0, 255, 300, -1):  # 0 burnt the polygons as the background (mIoU 0.05, said as a class-field error)
        with pytest.raises(InputError, match=rf"--burn must be a class id in 1..254, got {bad}$"):
            evaluate_rasters(p, tmp_path / "b.gpkg", tmp_path / "d" / "m.json", burn=bad)
    with pytest.raises(InputError, match=r"no field 'landuse' \(fields: class\); use --class-field"):
        evaluate_rasters(p, tmp_path / "b.gpkg", tmp_path / "d" / "m.json", class_field="landuse")
    # a multi-class map against a footprint layer: its other classes are errors against background 0, said
    six = np.tile(np.arange(6, dtype=np.uint8), (40, 7))[:, :40]
    mixed = evaluate_rasters(write_raster(tmp_path / "six.tif", six), tmp_path / "b.gpkg", tmp_path / "c" / "m.json",
                             burn=1)
    assert any("--burn 1 names class 1 and background 0 only; the prediction's classes low_vegetation, tree, car, "
               "clutter count as errors against background impervious" in w for w in mixed["warnings"])


def test_layers_without_geometry_are_no_candidates_and_layer_names_match_without_case(tmp_path: Path) -> None:
    """QGIS saves styles into a GeoPackage as a 'layer_styles' table: the file still holds one layer."""
    import pandas as pd
    import pyogrio

    p = write_raster(tmp_path / "p.tif", np.ones((40, 40), np.uint8))
    x0, y0 = 500000.0, 5000000.0
    gpkg = tmp_path / "b.gpkg"
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(x0 + 5, y0 - 15, x0 + 15, y0 - 5)],
                     crs="EPSG:32632").to_file(gpkg, layer="buildings")
    pyogrio.write_dataframe(pd.DataFrame({"styleName": ["default"]}), gpkg, layer="layer_styles")
    result = evaluate_rasters(p, gpkg, tmp_path / "a" / "m.json", burn=1, buildings=gpkg)
    assert result["buildings"]["reference"] == 1
    again = evaluate_rasters(p, gpkg, tmp_path / "b" / "m.json", burn=1, reference_layer="BUILDINGS",
                             buildings=gpkg, buildings_layer="Buildings")
    assert again["buildings"]["reference"] == 1


def test_a_vector_reference_covering_the_prediction_draws_no_burn_advice(tmp_path: Path) -> None:
    p = write_raster(tmp_path / "p.tif", np.ones((10, 10), np.uint8))
    x0, y0 = 500000.0, 5000000.0
    gpd.GeoDataFrame({"class": [1, 0]}, geometry=[box(x0, y0 - 10, x0 + 5, y0), box(x0 + 5, y0 - 10, x0 + 10, y0)],
                     crs="EPSG:32632").to_file(tmp_path / "full.gpkg")
    assert "warnings" not in evaluate_rasters(p, tmp_path / "full.gpkg", tmp_path / "m" / "m.json")


def test_an_object_half_of_two_matches_one_of_them() -> None:
    """A terrace of two equal houses found as one building: IoU exactly 0.5 with each house, one match."""
    ref = np.zeros((4, 8), np.int32)
    ref[:, :4], ref[:, 4:] = 1, 2
    pred = (ref > 0).astype(np.int32)
    r = object_f1(pred, ref)
    assert (r["tp"], r["precision"], r["recall"]) == (1, 1.0, 0.5)
    r = object_f1(ref, pred)  # two halves predicted for one building
    assert (r["tp"], r["precision"], r["recall"]) == (1, 0.5, 1.0)


def test_a_change_rasters_summary_line_gives_the_change_class(tmp_path: Path, capsys) -> None:
    import rasterio

    change = np.zeros((10, 10), np.uint8)
    change[:4] = 1
    truth = change.copy()
    truth[:2] = 0  # recall 1, precision 0.5
    pred = write_raster(tmp_path / "change.tif", change, nodata=255)
    with rasterio.open(pred, "r+") as ds:
        ds.set_band_description(1, "change")
    ref = write_raster(tmp_path / "truth.tif", truth)
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "m.json")]) == 0
    line = capsys.readouterr().out
    assert line.startswith("change F1 0.6667  IoU 0.5000  precision 0.5000  recall 1.0000  OA 0.8000"), line


def test_ids_outside_a_declared_class_table_are_not_scored_and_said(tmp_path: Path) -> None:
    """A reference id 6 (no class in the table) or an undeclared prediction 255 is no extra class in the means."""
    import rasterio

    ref = np.zeros((10, 10), np.uint8)
    ref[:, 5:] = 1
    pred = ref.copy()
    pred[:2, :2] = 1  # 4 wrong pixels
    ref_odd = ref.copy()
    ref_odd[9] = 6  # a boundary code of another convention
    pred_odd = pred.copy()
    pred_odd[8] = 255  # undeclared no data
    p = write_raster(tmp_path / "p.tif", pred_odd)
    with rasterio.open(p, "r+") as ds:
        ds.update_tags(CLASSES=json.dumps([c.to_dict() for c in ISPRS_CLASSES[:2]]))
    r = write_raster(tmp_path / "r.tif", ref_odd)
    result = evaluate_rasters(p, r, tmp_path / "m.json")
    keep = np.ones((10, 10), bool)
    keep[8:] = False
    want = jaccard_score(ref[keep], pred[keep], average=None).mean()
    assert list(result["per_class"]) == ["impervious", "building"]
    assert result["miou"] == pytest.approx(want) and result["pixels"] == 80
    said = " ".join(result["warnings"])
    assert "reference" in said and "(6)" in said and "prediction" in said and "(255)" in said


def _semantic_change_raster(path: Path, change: np.ndarray, t1: np.ndarray, t2: np.ndarray, names: list[str]) -> Path:
    return write_semantic_change(path, change, t1, t2, {"class_names": json.dumps(names)})


def test_second_label_pixels_of_no_class_are_not_scored_as_unchanged(tmp_path: Path) -> None:
    """SECOND labels with changed pixels of no colour of the layout (a lossy copy): the warning says they are
    ignored, as training ignores them; they were scored as unchanged, so the exact answer scored SeK 0.83."""
    import rasterio

    from rsmamba.classes import SECOND_COLOURS

    l1, l2 = np.zeros((16, 16), int), np.zeros((16, 16), int)
    l1[2:10, 2:12], l2[2:10, 2:12] = 3, 5
    l1[12:, :6], l2[12:, :6] = 1, 2
    second = ["water", "ground", "low_vegetation", "tree", "building", "playground"]
    exact = _semantic_change_raster(tmp_path / "change.tif", (l1 > 0).astype(np.uint8), np.maximum(l1 - 1, 0),
                                    np.maximum(l2 - 1, 0), second)
    colours = np.array(SECOND_COLOURS, np.uint8)
    for k, ids in ((1, l1), (2, l2)):
        rgb = colours[ids].transpose(2, 0, 1).copy()
        rgb[0, 3, 3:7] += 1  # 4 changed pixels one grey level off: no colour of the layout, at both dates
        with rasterio.open(tmp_path / f"label{k}.png", "w", driver="PNG", width=16, height=16, count=3,
                           dtype="uint8") as dst:
            dst.write(rgb)
    assert main(["evaluate", str(exact), str(tmp_path / "label1.png"), "--reference-t2", str(tmp_path / "label2.png"),
                 "--layout", "second", "-o", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["pixels"] == 256 - 4
    assert result["semantic_change"]["sek"] == 1.0 and result["per_class"]["change"]["precision"] == 1.0


def test_semantic_change_is_scored_as_second_scores_it(tmp_path: Path, capsys) -> None:
    """'change --semantic' output against SECOND's label1/label2: SeK, Fscd, mIoU and score as SCanNet's
    evaluation gives them, and the change class's binary scores."""
    import rasterio

    from rsmamba.classes import SECOND_COLOURS
    from rsmamba.metrics import semantic_change_scores_7class

    rng = np.random.default_rng(7)
    l1, l2 = np.zeros((16, 16), int), np.zeros((16, 16), int)  # SECOND ids: 0 unchanged, 1..6 land cover
    l1[2:10, 2:12], l2[2:10, 2:12] = 3, 5
    l1[12:, :6], l2[12:, :6] = 1, 2
    pred_change = ((l1 > 0) ^ (rng.random(l1.shape) < 0.1)).astype(np.uint8)
    t1 = np.where(rng.random(l1.shape) < 0.8, np.maximum(l1 - 1, 0), rng.integers(0, 6, l1.shape))
    t2 = np.where(rng.random(l1.shape) < 0.8, np.maximum(l2 - 1, 0), rng.integers(0, 6, l1.shape))
    second = ["water", "ground", "low_vegetation", "tree", "building", "playground"]  # as a SECOND model names them
    pred = _semantic_change_raster(tmp_path / "change.tif", pred_change, t1, t2, second)
    colours = np.array(SECOND_COLOURS, np.uint8)
    for k, ids in ((1, l1), (2, l2)):
        with rasterio.open(tmp_path / f"label{k}.png", "w", driver="PNG", width=16, height=16, count=3,
                           dtype="uint8") as dst:
            dst.write(colours[ids].transpose(2, 0, 1))
    assert main(["evaluate", str(pred), str(tmp_path / "label1.png"), "--reference-t2", str(tmp_path / "label2.png"),
                 "--layout", "second", "-o", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    want = semantic_change_scores_7class(t1, t2, pred_change, np.maximum(l1 - 1, 0), np.maximum(l2 - 1, 0), l1 > 0)
    got = result["semantic_change"]
    for key in ("sek", "fscd", "miou", "oa"):
        assert got[key] == pytest.approx(want[key]), key
    assert got["score"] == pytest.approx(0.3 * want["miou"] + 0.7 * want["sek"])
    changed = (l1 > 0).ravel()
    assert result["per_class"]["change"]["recall"] == pytest.approx((pred_change.ravel()[changed] == 1).mean())
    assert f"SeK {got['sek']:.4f}" in capsys.readouterr().out
    # a binary change raster against SECOND's land cover: told what it is (its no_change/change table is no
    # land-cover table to compare with the layout's)
    binary = write_raster(tmp_path / "binary.tif", pred_change, nodata=255)
    with rasterio.open(binary, "r+") as ds:
        ds.descriptions = ("change",)
        ds.update_tags(CLASS_NAMES=json.dumps(["no_change", "change"]))
    assert main(["evaluate", str(binary), str(tmp_path / "label1.png"), "--layout", "second",
                 "-o", str(tmp_path / "b.json")]) == 2
    assert "is a change raster (band 1: 0/1 change)" in capsys.readouterr().err


def test_semantic_change_against_one_dates_labels_points_to_reference_t2(tmp_path: Path, capsys, monkeypatch) -> None:
    """'change --semantic' output against SECOND's label1 alone was told 'score it against a change raster (0/1)',
    after the whole file was tallied (QA). It names --reference-t2 (with label2's path where it lies beside
    label1) and is said before any block is read."""
    import rasterio

    import rsmamba.evaluate as evaluate_module
    from rsmamba.classes import SECOND_COLOURS

    l1 = np.zeros((16, 16), int)
    l1[2:10, 2:12] = 3
    second = ["water", "ground", "low_vegetation", "tree", "building", "playground"]
    pred = _semantic_change_raster(tmp_path / "sec0.tif", (l1 > 0).astype(np.uint8), np.maximum(l1 - 1, 0),
                                   np.maximum(l1 - 1, 0), second)
    colours = np.array(SECOND_COLOURS, np.uint8)
    for sub in ("label1", "label2"):
        (tmp_path / "test" / sub).mkdir(parents=True)
        with rasterio.open(tmp_path / "test" / sub / "00000.png", "w", driver="PNG", width=16, height=16, count=3,
                           dtype="uint8") as dst:
            dst.write(colours[l1].transpose(2, 0, 1))

    def tallied(*args, **kwargs):
        raise AssertionError("tallied before the error")

    monkeypatch.setattr(evaluate_module, "_score_blocks", tallied)
    label1 = tmp_path / "test" / "label1" / "00000.png"
    assert main(["evaluate", str(pred), str(label1), "--layout", "second", "-o", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a semantic change raster" in err[0], err
    assert f"--reference-t2 {tmp_path / 'test' / 'label2' / '00000.png'}" in err[0]


def test_semantic_change_of_own_class_rasters_and_bad_inputs(tmp_path: Path) -> None:
    """Without a layout, the two dates' class rasters are changed where they differ; a plain change
    raster cannot be scored for semantic change."""
    from rsmamba.metrics import semantic_change_scores_7class

    rng = np.random.default_rng(8)
    r1 = rng.integers(0, 4, (12, 12))
    r2 = np.where(rng.random(r1.shape) < 0.3, rng.integers(0, 4, r1.shape), r1)
    pc = ((r1 != r2) ^ (rng.random(r1.shape) < 0.1)).astype(np.uint8)
    pred = _semantic_change_raster(tmp_path / "c.tif", pc, r1, np.where(pc == 1, r2, r1), list("abcd"))
    ref1 = write_raster(tmp_path / "r1.tif", r1.astype(np.uint8))
    ref2 = write_raster(tmp_path / "r2.tif", r2.astype(np.uint8))
    result = evaluate_rasters(pred, ref1, tmp_path / "m.json", reference_t2=ref2)
    assert result["reference_t2"] == str(ref2)  # the file of date 2's land cover, named as the others are
    want = semantic_change_scores_7class(r1, np.where(pc == 1, r2, r1), pc, r1, r2, num_landcover=4)
    assert result["semantic_change"]["sek"] == pytest.approx(want["sek"])
    assert result["semantic_change"]["fscd"] == pytest.approx(want["fscd"]) and 0 < want["fscd"] < 1
    plain = write_raster(tmp_path / "plain.tif", pc, nodata=255)
    with pytest.raises(InputError, match="change --semantic"):
        evaluate_rasters(plain, ref1, tmp_path / "n.json", reference_t2=ref2)
    # a received raster's class_names tag sizes the land-cover scores: more names than an 8-bit raster has ids
    many = _semantic_change_raster(tmp_path / "many.tif", pc, r1, r2, [f"c{i}" for i in range(300)])
    with pytest.raises(InputError, match=r"class_names tag .* is not a class table \(300 names; a class raster holds ids 0..254\)"):
        evaluate_rasters(many, ref1, tmp_path / "x.json", reference_t2=ref2)


def test_erode_with_reference_t2_leaves_the_same_pixels_out_of_every_score(tmp_path: Path) -> None:
    """--reference-t2 with --erode 2: the binary change scores and the pixel count were eroded, SeK, Fscd, SCD mIoU
    and semantic_change.iou_change were not (one file held change IoU 0.2311 and 0.3358 for the same pixels). Now
    every score leaves out the pixels within 2 px of a class boundary of either date's land cover."""
    from rsmamba.metrics import semantic_change_scores_7class

    rng = np.random.default_rng(9)
    r1 = np.repeat(np.repeat(rng.integers(0, 4, (6, 6)), 8, 0), 8, 1)  # 8 px regions: boundaries with insides
    r2 = np.where(np.repeat(np.repeat(rng.random((6, 6)) < 0.4, 8, 0), 8, 1),
                  np.repeat(np.repeat(rng.integers(0, 4, (6, 6)), 8, 0), 8, 1), r1)
    noisy = rng.random(r1.shape) < 0.05  # errors everywhere, more on the boundaries (as a model's are)
    noisy |= (eroded_boundary_mask(r1, 1) | eroded_boundary_mask(r2, 1)) & (rng.random(r1.shape) < 0.5)
    pc = ((r1 != r2) ^ noisy).astype(np.uint8)
    t1, t2 = np.where(noisy, (r1 + 1) % 4, r1), np.where(noisy, (r2 + 1) % 4, r2)
    pred = _semantic_change_raster(tmp_path / "c.tif", pc, t1, t2, list("abcd"))
    ref1 = write_raster(tmp_path / "r1.tif", r1.astype(np.uint8))
    ref2 = write_raster(tmp_path / "r2.tif", r2.astype(np.uint8))
    result = evaluate_rasters(pred, ref1, tmp_path / "m.json", reference_t2=ref2, erode=2)
    got = result["semantic_change"]
    assert got["iou_change"] == pytest.approx(result["per_class"]["change"]["iou"])  # one change IoU, not two
    kept = ~(eroded_boundary_mask(r1, 2) | eroded_boundary_mask(r2, 2))
    assert result["pixels"] == kept.sum() < r1.size
    want = semantic_change_scores_7class(t1[kept], t2[kept], pc[kept], r1[kept], r2[kept], num_landcover=4)
    for key in ("sek", "fscd", "miou", "oa", "iou_change"):
        assert got[key] == pytest.approx(want[key]), key
    changed = (r1 != r2)[kept]
    assert result["per_class"]["change"]["recall"] == pytest.approx((pc[kept][changed] == 1).mean())
    whole = evaluate_rasters(pred, ref1, tmp_path / "w.json", reference_t2=ref2)
    assert whole["pixels"] == r1.size and whole["semantic_change"]["sek"] != pytest.approx(got["sek"])


def test_object_scores_with_nothing_to_count_are_none() -> None:
    """No building predicted: precision 0/0 was reported 0.0; no building in the reference: recall 0/0."""
    ref = np.zeros((8, 8), np.int32)
    ref[2:4, 2:4] = 1
    none = object_f1(np.zeros_like(ref), ref)
    assert none["precision"] is None and none["recall"] == 0.0 and none["f1"] == 0.0
    spurious = object_f1(ref, np.zeros_like(ref))
    assert spurious["precision"] == 0.0 and spurious["recall"] is None and spurious["f1"] == 0.0
    assert object_f1(np.zeros_like(ref), np.zeros_like(ref))["f1"] is None


def test_object_matching_memory_follows_the_overlaps_not_the_object_count_squared() -> None:
    """20k buildings: a dense predicted x reference table would be 3.2 GB; the overlapping pairs are 20k."""
    import tracemalloc

    ids = np.arange(1, 20_001, dtype=np.int32).repeat(16).reshape(400, 800)
    tracemalloc.start()
    result = object_f1(ids, ids.copy())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result["tp"] == 20_000 and result["f1"] == 1.0
    assert peak < 50 * 2**20, peak


def test_ids_outside_0_254_without_a_class_table_are_refused_not_allocated(tmp_path: Path) -> None:
    """One stray uint16 pixel of 65534 sized the confusion matrix at 65535 x 65535 (32 GiB)."""
    ref = np.zeros((10, 10), np.uint16)
    pred = ref.copy()
    pred[0, 0] = 65534
    p = write_raster(tmp_path / "p.tif", pred)
    r = write_raster(tmp_path / "r.tif", ref)
    with pytest.raises(InputError, match="ids 65534 and no class table"):
        evaluate_rasters(p, r, tmp_path / "m.json")


@pytest.mark.parametrize(("dtype", "value"), [("int64", 2**32 + 1), ("uint32", 4294967295), ("uint64", 2**64 - 1)])
def test_ids_beyond_int32_are_said_as_they_are_never_wrapped_into_a_class(tmp_path: Path, dtype: str,
                                                                          value: int) -> None:
    """Ids went through int32: an int64 reference's 2**32 + 1 was scored as class 1 (a perfect score on pixels of
    no class), a uint32 4294967295 was said as 'id -1'."""
    import rasterio

    pred = np.zeros((20, 20), np.uint8)
    pred[:, 10:] = 1
    ref = np.zeros((20, 20), dtype)
    ref[:, 10:] = value
    p, r = write_raster(tmp_path / "p.tif", pred), write_raster(tmp_path / "r.tif", ref)
    with pytest.raises(InputError, match=f"ids {value} and no class table"):
        evaluate_rasters(p, r, tmp_path / "m.json")
    with pytest.raises(InputError, match=f"ids {value} and no class table"):  # the prediction's id alike
        evaluate_rasters(write_raster(tmp_path / "p2.tif", ref), p, tmp_path / "m.json")
    tagged = write_raster(tmp_path / "t.tif", ref)
    with rasterio.open(tagged, "r+") as ds:
        ds.update_tags(CLASSES=json.dumps([c.to_dict() for c in ISPRS_CLASSES]))
    result = evaluate_rasters(_tagged(tmp_path / "pt.tif", pred), r, tmp_path / "m2.json")  # a table: not scored
    assert result["pixels"] == 200 and result["oa"] == 1.0
    assert any(f"200 px hold ids no class of the table has ({value})" in w for w in result["warnings"])
    result = evaluate_rasters(tagged, write_raster(tmp_path / "r0.tif", pred), tmp_path / "m3.json")
    assert result["pixels"] == 200
    assert any(f"prediction {tagged}: 200 px hold ids no class of the table has ({value})" in w
               for w in result["warnings"])


def test_a_class_id_of_no_class_is_refused(tmp_path: Path) -> None:
    """--exclude 99 left nothing out of the means without a word; --building-class 99 reported F1 0."""
    labels = np.zeros((20, 20), np.uint8)
    labels[5:12, 5:12] = 1
    p, r = write_raster(tmp_path / "p.tif", labels), write_raster(tmp_path / "r.tif", labels)
    with pytest.raises(InputError, match=r"--exclude 99: no class of the prediction's table \(ids 0, 1, 2, 3, 4, 5\)"):
        evaluate_rasters(p, r, tmp_path / "m.json", exclude=[99])
    import geopandas as gpd
    from shapely.geometry import box

    gpd.GeoDataFrame(geometry=[box(500005, 4999988, 500012, 4999995)], crs="EPSG:32632").to_file(tmp_path / "b.gpkg")
    with pytest.raises(InputError, match="--building-class 99"):
        evaluate_rasters(p, r, tmp_path / "m.json", buildings=tmp_path / "b.gpkg", building_class=99)
    assert not (tmp_path / "m.json").exists()


def test_an_erosion_that_leaves_little_or_nothing_says_so(tmp_path: Path) -> None:
    """--erode 600 was refused as 'all nodata or ignore' (both rasters were fully valid); --erode 50 printed a
    perfect score over 0.4 % of the scene without a word."""
    labels = np.zeros((40, 50), np.uint8)
    labels[:, 25:] = 1
    p = write_raster(tmp_path / "pred.tif", labels)
    with pytest.raises(InputError, match=r"--erode 30: every pixel valid in both lies within 30 px of a class boundary"):
        evaluate_rasters(p, p, tmp_path / "m1.json", erode=30)
    result = evaluate_rasters(p, p, tmp_path / "m2.json", erode=23)
    assert result["pixels"] < 0.1 * labels.size
    assert any(w.startswith("--erode 23 leaves") and "the scores say little" in w for w in result["warnings"])
    assert "warnings" not in evaluate_rasters(p, p, tmp_path / "m3.json", erode=2)


def test_a_sparse_layer_of_several_classes_scores_its_outside_as_tile_read_it(tmp_path: Path) -> None:
    """tile trains a label layer's outside as --background 0; evaluate left it unscored and had no option: a map
    calling 99 % of a scene building scored building precision 0.47 instead of 0.011."""
    pred = np.ones((40, 50), np.uint8)  # building everywhere
    pred[0, 0] = 0
    p = write_raster(tmp_path / "pred.tif", pred)
    x0, y0 = 500000.0, 5000000.0
    gpd.GeoDataFrame({"class": [1, 2]}, geometry=[box(x0 + 5, y0 - 15, x0 + 15, y0 - 5), box(x0 + 30, y0 - 30, x0 + 40, y0 - 20)],
                     crs="EPSG:32632").to_file(tmp_path / "objects.gpkg")
    inside = evaluate_rasters(p, tmp_path / "objects.gpkg", tmp_path / "a.json")
    assert inside["pixels"] == 200 and any("--background ID scores the rest" in w for w in inside["warnings"])
    whole = evaluate_rasters(p, tmp_path / "objects.gpkg", tmp_path / "b.json", background=0)
    assert whole["pixels"] == 40 * 50 and "warnings" not in whole
    assert whole["per_class"]["building"]["precision"] == pytest.approx(100 / (40 * 50 - 1))
    # 255 is tile's "no label": here too, the outside not scored (the default), not refused
    assert evaluate_rasters(p, tmp_path / "objects.gpkg", tmp_path / "d.json", background=255)["pixels"] == 200
    with pytest.raises(InputError, match=r"--background must be a class id in 0..254 or 255 \(not scored\), got 256"):
        evaluate_rasters(p, tmp_path / "objects.gpkg", tmp_path / "e.json", background=256)
    with pytest.raises(InputError, match="--background 0: the class of a vector reference's outside"):
        evaluate_rasters(p, p, tmp_path / "c.json", background=0)


def test_a_tile_of_a_larger_reference_on_its_pixels_is_read_not_resampled(tmp_path: Path, caplog) -> None:
    """A predicted tile and the project's label raster on one pixel lattice: its pixels are the tile's, and
    the warning that resampling 'moves class edges by up to half a pixel' was untrue (and went into the JSON)."""
    rng = np.random.default_rng(3)
    big = rng.integers(0, 6, (60, 80)).astype(np.uint8)
    ref = write_raster(tmp_path / "ref.tif", big, res=0.5, origin=(500000.0, 5000000.0))
    tile = big[10:40, 50:80].copy()
    tile[rng.random(tile.shape) < 0.2] = 0
    x0, y0 = 500000.0 + 50 * 0.5, 5000000.0 - 10 * 0.5
    pred = write_raster(tmp_path / "pred.tif", tile, res=0.5, origin=(x0, y0))
    with caplog.at_level("WARNING", logger="rsmamba"):
        result = evaluate_rasters(pred, ref, tmp_path / "a" / "m.json")
    assert not [r for r in caplog.records if "another grid" in r.getMessage()] and "warnings" not in result
    assert result["pixels"] == tile.size and result["oa"] == pytest.approx((tile == big[10:40, 50:80]).mean())
    # a tile reaching past the reference: the pixels beyond are not scored
    past = write_raster(tmp_path / "past.tif", big[40:60, 60:80].copy().repeat(2, 0)[:30], res=0.5,
                        origin=(500000.0 + 60 * 0.5, 5000000.0 - 40 * 0.5))
    assert evaluate_rasters(past, ref, tmp_path / "b" / "m.json")["pixels"] == 20 * 20
    # half a pixel off the lattice: resampled, and said
    off = write_raster(tmp_path / "off.tif", tile, res=0.5, origin=(x0 + 0.25, y0))
    with caplog.at_level("WARNING", logger="rsmamba"):
        evaluate_rasters(off, ref, tmp_path / "c" / "m.json")
    assert [r for r in caplog.records if "another grid" in r.getMessage()]


@pytest.mark.parametrize("degrees", [5.0, 20.0])
def test_a_tile_of_a_rotated_reference_scores_its_own_pixels(tmp_path: Path, degrees: float) -> None:
    """A crop read of a rotated reference took other pixels (a boundless read ignores the rotation): a perfect
    tile on a 5 deg grid scored OA 0.17."""
    import rasterio
    from affine import Affine

    grid = Affine.translation(1000, 2000) * Affine.rotation(degrees) * Affine.scale(0.5, -0.5)
    ref = np.random.default_rng(0).integers(0, 6, (300, 300)).astype("uint8")
    kw = dict(driver="GTiff", count=1, dtype="uint8", crs="EPSG:32632", nodata=255)
    with rasterio.open(tmp_path / "ref.tif", "w", width=300, height=300, transform=grid, **kw) as out:
        out.write(ref, 1)
    with rasterio.open(tmp_path / "pred.tif", "w", width=120, height=100, transform=grid * Affine.translation(20, 10),
                       **kw) as out:
        out.write(ref[10:110, 20:140], 1)
    assert evaluate_rasters(tmp_path / "pred.tif", tmp_path / "ref.tif", tmp_path / "m" / "m.json")["oa"] == 1.0


def test_vector_references_of_change_rasters_are_read_by_their_names(tmp_path: Path, capsys) -> None:
    """A binary change raster's reference polygons named 'change' were refused and ones named 'building' scored as
    change (the land-cover table read their names); a semantic pair's t2 polygons were not read by name at all."""
    import geopandas as gpd
    from shapely.geometry import box

    from rsmamba.change.api import change_layer
    from rsmamba.classes import CHANGE_CLASSES, ClassInfo

    pc = np.zeros((12, 12), np.uint8)
    pc[2:6, 2:6] = 1
    table = (ClassInfo(0, "water", (0, 0, 255)), ClassInfo(1, "house", (255, 0, 0)), ClassInfo(2, "field", (0, 255, 0)))
    paths = {}
    for name, semantic, bands in (("bin", False, [pc]), ("sem", True, [pc, np.where(pc, 2, 0), np.where(pc, 1, 0)])):
        layer = change_layer(tmp_path / f"{name}.tif", table if semantic else CHANGE_CLASSES, semantic, "m")
        paths[name] = _semantic_change_raster(tmp_path / f"{name}.tif", pc, *bands[1:], []) if semantic else \
            write_raster(tmp_path / f"{name}.tif", pc, nodata=255)
        import rasterio

        with rasterio.open(paths[name], "r+") as ds:
            ds.update_tags(**layer.tags)
            ds.descriptions = tuple(layer.descriptions)
    square = box(500002, 4999994, 500006, 4999998)  # pixels [2:6, 2:6] of the 1 m grid
    for value, path in (("change", "c.gpkg"), ("building", "b.gpkg")):
        gpd.GeoDataFrame({"kind": [value]}, geometry=[square], crs="EPSG:32632").to_file(tmp_path / path)
    result = evaluate_rasters(paths["bin"], tmp_path / "c.gpkg", tmp_path / "m.json", class_field="kind", background=0)
    assert result["per_class"]["change"]["f1"] == 1.0
    with pytest.raises(InputError, match="no class of the prediction's table has .building; the table: no_change"):
        evaluate_rasters(paths["bin"], tmp_path / "b.gpkg", tmp_path / "n.json", class_field="kind", background=0)
    whole = box(500000, 4999988, 500012, 5000000)
    gpd.GeoDataFrame({"kind": ["water", "field"]}, geometry=[whole, square], crs="EPSG:32632").to_file(tmp_path / "t1.gpkg")
    gpd.GeoDataFrame({"kind": ["water", "house"]}, geometry=[whole, square], crs="EPSG:32632").to_file(tmp_path / "t2.gpkg")
    result = evaluate_rasters(paths["sem"], tmp_path / "t1.gpkg", tmp_path / "s.json", class_field="kind",
                              reference_t2=tmp_path / "t2.gpkg")
    assert result["semantic_change"]["fscd"] == pytest.approx(1.0)


def _panel_image(png: Path, width: int) -> np.ndarray:
    """The image panel (the first ``width`` columns) of an ``_panels.png``, as (3, h, width)."""
    import warnings

    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(png) as src:
            return src.read()[:, :, :width]


def test_the_image_panel_shows_the_predictions_ground_not_the_whole_file(tmp_path: Path) -> None:
    """An --image of 4x the prediction's area was squeezed into the panel beside it, silently; one of
    another place too. It is read on the prediction's grid, and one that does not reach it is refused."""
    labels = np.zeros((20, 20), np.uint8)
    labels[:, 10:] = 1
    p = write_raster(tmp_path / "p.tif", labels)
    quadrants = np.zeros((3, 40, 40), np.uint8)  # the prediction is its top-left quadrant, dark beside bright
    quadrants[:, :20, :10], quadrants[:, :20, 10:20] = 10, 200
    quadrants[:, 20:, :] = 250
    quadrants[:, :, 20:] = 250
    big = write_raster(tmp_path / "big.tif", quadrants)
    evaluate_rasters(p, p, tmp_path / "m.json", image=big)
    panel = _panel_image(tmp_path / "m_panels.png", 20)
    assert panel.shape == (3, 20, 20)
    assert (panel[:, :, :10] == 0).all() and (panel[:, :, 10:] == 255).all()  # dark | bright, no 250s squeezed in
    coarse = write_raster(tmp_path / "coarse.tif", quadrants[:, ::2, ::2], res=2.0)  # another pixel size
    evaluate_rasters(p, p, tmp_path / "c.json", image=coarse)
    assert (_panel_image(tmp_path / "c_panels.png", 20)[:, :, 10:] == 255).all()
    far = write_raster(tmp_path / "far.tif", quadrants, origin=(600000.0, 5000000.0))
    with pytest.raises(InputError, match=r"--image .*far.tif: does not overlap the prediction"):
        evaluate_rasters(p, p, tmp_path / "f.json", image=far)
    assert not (tmp_path / "f.json").exists()


def test_the_image_panel_shows_declared_colours_and_no_alpha(tmp_path: Path) -> None:
    """Bands 1, 2, 3 were shown as red, green, blue: a BGR ortho's blue as red, an ARGB one's alpha as red."""
    import rasterio
    from rasterio.enums import ColorInterp

    p = write_raster(tmp_path / "p.tif", np.zeros((20, 20), np.uint8))
    red, green, blue, alpha = (np.full((20, 20), v, np.uint8) for v in (200, 100, 10, 255))
    for name, bands, colours in (("rgb", [red, green, blue], ("red", "green", "blue")),
                                 ("bgr", [blue, green, red], ("blue", "green", "red")),
                                 ("argb", [alpha, red, green, blue], ("alpha", "red", "green", "blue"))):
        path = write_raster(tmp_path / f"{name}.tif", np.stack(bands))
        with rasterio.open(path, "r+") as ds:
            ds.colorinterp = [ColorInterp[c] for c in colours]
        evaluate_rasters(p, p, tmp_path / f"{name}.json", image=path)
        panel = _panel_image(tmp_path / f"{name}_panels.png", 20)
        assert [int(panel[i].mean()) for i in range(3)] == [255, 120, 0], name  # 2-98 % stretch of 10..200


def test_options_that_would_do_nothing_are_refused_by_name(tmp_path: Path, capsys) -> None:
    """--burn with a raster reference burnt nothing but warned that 'background 0' was scored; vector and
    building options without a vector reference or --buildings were accepted and ignored."""
    p, r, _, _ = _pair(tmp_path)
    out = tmp_path / "m.json"
    assert main(["evaluate", str(p), str(r), "-o", str(out), "--burn", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--burn: an option of a vector reference (polygons burnt onto the prediction's " \
        f"grid); {r} is a raster" in err and "names class" not in err
    for args, said in ((["--class-field", "c", "--reference-layer", "x"], "--class-field, --reference-layer: options "
                        "of a vector reference"),
                       (["--buildings-layer", "b", "--building-class", "1", "--min-object-pixels", "9"],
                        "--buildings-layer, --building-class, --min-object-pixels: options of the building scores: "
                        "give --buildings"),
                       (["--footprints-layer", "f"], "--footprints-layer: the layer of the --footprints file")):
        assert main(["evaluate", str(p), str(r), "-o", str(out), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, err
    assert not out.exists()


def test_the_panels_of_a_south_up_scene_are_drawn_north_up(tmp_path: Path) -> None:
    """A south-up raster (e > 0) was drawn as stored: its panels upside down, north at the bottom."""
    from rasterio.transform import Affine

    labels = np.zeros((20, 20), np.uint8)
    labels[:5] = 1  # the first stored rows: the south edge of a south-up raster
    image = np.zeros((3, 20, 20), np.uint8)
    image[:, :5] = 200
    up = Affine(1.0, 0.0, 500000.0, 0.0, 1.0, 4999980.0)  # rows run north
    p = write_raster(tmp_path / "p.tif", labels, transform=up)
    evaluate_rasters(p, p, tmp_path / "m.json", image=write_raster(tmp_path / "i.tif", image, transform=up))
    panel = _panel_image(tmp_path / "m_panels.png", 20)
    assert panel[:, 15:].min() > panel[:, :15].max()  # the bright south band at the bottom (stretched for display)


def _masked_copy(path: Path, array: np.ndarray, masked: np.ndarray, *, alpha: bool = False, **grid) -> Path:
    """``array`` with ``masked`` pixels marked by GDAL's internal mask (or an alpha band): no nodata value."""
    import rasterio
    from rasterio.enums import ColorInterp

    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK="YES"):
        with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0],
                           count=2 if alpha else 1, dtype="uint8", crs="EPSG:32632",
                           transform=rasterio.transform.from_origin(500000.0, 5000000.0, 1.0, 1.0)) as dst:
            dst.write(array, 1)
            if alpha:
                dst.write(np.where(masked, 0, 255).astype(np.uint8), 2)
                dst.colorinterp = [ColorInterp.gray, ColorInterp.alpha]
            else:
                dst.write_mask(np.where(masked, 0, 255).astype(np.uint8))
    return path


@pytest.mark.parametrize("alpha", [False, True])
def test_masked_pixels_of_the_reference_and_the_prediction_are_not_scored(tmp_path, alpha) -> None:
    """A mask band (or alpha) was ignored: the value stored under it was scored, and said 'both valid'
    (mIoU 0.84 read 0.46 for a label raster with class 0 under its mask)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, (40, 50)).astype(np.uint8)
    strip = np.zeros(truth.shape, bool)
    strip[:, :20] = True
    wrong = truth.copy()
    wrong[strip] = (truth[strip] + 1) % 3  # every masked pixel disagrees
    pred = write_raster(tmp_path / "pred.tif", truth)
    ref = _masked_copy(tmp_path / "ref.tif", wrong, strip, alpha=alpha)
    metrics = evaluate_rasters(pred, ref, tmp_path / "a.json")
    assert metrics["pixels"] == 40 * 30 and metrics["oa"] == 1.0
    masked_pred = _masked_copy(tmp_path / "mpred.tif", wrong, strip, alpha=alpha)
    metrics = evaluate_rasters(masked_pred, write_raster(tmp_path / "truth.tif", truth), tmp_path / "b.json")
    assert metrics["pixels"] == 40 * 30 and metrics["oa"] == 1.0


def test_a_reference_a_few_pixels_off_a_grid_in_degrees_is_read_on_the_prediction_pixels(tmp_path) -> None:
    """affine's default tolerance (1e-5 units) is 4 pixels of a 0.25 m grid in degrees: a reference 3 px east was
    paired by index with the prediction, each class 3 px off (mIoU 0.81 read 0.67), without a word."""
    from rasterio.transform import Affine

    step = 2.75e-6
    grid = Affine(step, 0, 9.0, 0, -step, 45.0)
    truth = np.random.default_rng(1).integers(0, 3, (30, 40)).astype(np.uint8)
    pred = write_raster(tmp_path / "pred.tif", truth, crs="EPSG:4326", transform=grid)
    shifted = np.full_like(truth, 255)
    shifted[:, :-3] = truth[:, 3:]  # the same labels on a grid 3 px east
    ref = write_raster(tmp_path / "ref.tif", shifted, crs="EPSG:4326", nodata=255,
                       transform=grid * Affine.translation(3, 0))
    metrics = evaluate_rasters(pred, ref, tmp_path / "m.json")
    assert metrics["oa"] == 1.0 and metrics["pixels"] == 30 * 37


def test_a_prediction_stored_south_up_scores_exactly_without_a_resampling_warning(tmp_path, caplog) -> None:
    """Its pixels are the reference's: the warning said nearest resampling 'moves class edges by up to half a
    pixel' between two grids of '1 x 1' pixels."""
    from rasterio.transform import Affine

    truth = np.random.default_rng(2).integers(0, 3, (30, 40)).astype(np.uint8)
    ref = write_raster(tmp_path / "ref.tif", truth)
    pred = write_raster(tmp_path / "pred.tif", truth[::-1].copy(), transform=Affine(1.0, 0, 500000.0, 0, 1.0, 5000000.0 - 30))
    metrics = evaluate_rasters(pred, ref, tmp_path / "m.json")
    assert metrics["oa"] == 1.0 and metrics["pixels"] == 30 * 40
    assert "resampled" not in caplog.text


def test_a_reference_a_millionth_of_a_metre_off_is_on_the_grid(tmp_path, caplog) -> None:
    """A reference written from a printed extent (1e-6 m off) was said to be resampled, 'which moves class edges
    by up to half a pixel', though its pixels are the prediction's."""
    from rasterio.transform import from_origin

    truth = np.random.default_rng(3).integers(0, 3, (30, 40)).astype(np.uint8)
    pred = write_raster(tmp_path / "pred.tif", truth, res=0.25)
    ref = write_raster(tmp_path / "ref.tif", truth, transform=from_origin(500000.0 + 1e-6, 5000000.0, 0.25, 0.25))
    metrics = evaluate_rasters(pred, ref, tmp_path / "m.json")
    assert metrics["oa"] == 1.0 and "resampled" not in caplog.text


def _tagged(path: Path, labels: np.ndarray, palette: dict[int, tuple[int, int, int]] | None = None) -> Path:
    """A class raster as predict writes it: ISPRS ids, its CLASSES tag and colour table (``palette``: another)."""
    import rasterio

    from rsmamba.classes import colormap

    write_raster(path, labels)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(CLASSES=json.dumps([c.to_dict() for c in ISPRS_CLASSES]))
        ds.write_colormap(1, {i: (*rgb, 255) for i, rgb in palette.items()} if palette else colormap(ISPRS_CLASSES))
    return path


def test_a_reference_whose_palette_paints_the_ids_otherwise_is_warned_about(tmp_path: Path, capsys) -> None:
    """A reference coded otherwise (its 0 building, its 1 impervious: its colour table paints them so) was scored
    silently, a good map at mIoU 0.52 for 0.84. tile warns about such labels; evaluate says it in the summary and
    the JSON's warnings, naming the prediction's class each colour is."""
    labels = np.random.default_rng(4).integers(0, 6, (30, 30)).astype(np.uint8)
    p = _tagged(tmp_path / "p.tif", labels)
    same = _tagged(tmp_path / "same.tif", labels)
    assert "warnings" not in evaluate_rasters(p, same, tmp_path / "same.json")  # the prediction's palette: silent
    short = {c.id: c.color for c in ISPRS_CLASSES[:3]} | {255: (255, 255, 255)}
    few = _tagged(tmp_path / "few.tif", np.minimum(labels, 2), short)
    assert "warnings" not in evaluate_rasters(p, few, tmp_path / "few.json")  # ids it lacks: GDAL's black gap, unread
    swapped = np.choose(np.minimum(labels, 2), [1, 0, labels]).astype(np.uint8)
    palette = {c.id: c.color for c in ISPRS_CLASSES} | {0: ISPRS_CLASSES[1].color, 1: ISPRS_CLASSES[0].color}
    other = _tagged(tmp_path / "other.tif", swapped, palette)
    assert main(["evaluate", str(p), str(other), "-o", str(tmp_path / "o.json")]) == 0
    warned = json.loads((tmp_path / "o.json").read_text())["warnings"]
    assert len(warned) == 1 and ("its colour table paints 2 of the prediction's class ids otherwise (0 as (0, 0, 255) "
                                 "(the prediction's 1 building), not impervious's (255, 255, 255); 1 as") in warned[0]
    out = capsys.readouterr()
    assert "1 warning above" in out.out and "recode it to the prediction's ids" in out.err


def test_a_reference_whose_class_table_names_the_ids_otherwise_is_warned_about(tmp_path: Path) -> None:
    """A reference raster that declares its classes (class_names: 0 building, 1 water) against a prediction whose
    table says 0 water, 1 building was scored id by id without a word: its buildings counted as water (QA). Said in
    the JSON's warnings, naming the prediction's id of each name; the same names (case aside) are silent."""
    import rasterio

    labels = np.random.default_rng(5).integers(0, 3, (20, 20)).astype(np.uint8)

    def named(path: Path, names: list[str]) -> Path:
        write_raster(path, labels)
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(class_names=json.dumps(names))
        return path

    p = named(tmp_path / "p.tif", ["water", "building", "grass"])
    same = named(tmp_path / "same.tif", ["Water", "building", "grass"])
    assert "warnings" not in evaluate_rasters(p, same, tmp_path / "same.json")
    swapped = named(tmp_path / "swapped.tif", ["building", "water", "grass"])
    warned = evaluate_rasters(p, swapped, tmp_path / "swapped.json")["warnings"]
    assert len(warned) == 1 and ("its class table names 2 of the prediction's class ids otherwise (0 named building "
                                 "(the prediction's 1), not water; 1 named water (the prediction's 0), not "
                                 "building)") in warned[0]
    # a prediction without a table is read with the ISPRS one, whose names the scores then carry: said too
    bare = write_raster(tmp_path / "bare.tif", labels)
    warned = evaluate_rasters(bare, swapped, tmp_path / "bare.json")["warnings"]
    assert len(warned) == 1 and ("its class table names 3 of the class ids otherwise than the ISPRS table the "
                                 "prediction, which declares none, is read with (0 named building (ISPRS 1), not "
                                 "impervious; 1 named water, not building; 2 named grass, not low_vegetation)") in warned[0]


def test_a_reference_with_the_isprs_official_class_names_is_not_warned_about(tmp_path: Path) -> None:
    """ISPRS's own names ('Impervious surfaces', 'Low vegetation', 'Clutter/background') of the ISPRS ids were
    warned about as naming the prediction's ids otherwise (QA): one class each; another name is still said."""
    import rasterio

    labels = (np.arange(36 * 36).reshape(36, 36) % 6).astype(np.uint8)
    official = ["Impervious surfaces", "Building", "Low vegetation", "Tree", "Car", "Clutter/background"]

    def named(path: Path, names: list[str] | None) -> Path:
        write_raster(path, labels)
        if names:
            with rasterio.open(path, "r+") as ds:
                ds.update_tags(class_names=json.dumps(names))
        return path

    ours = named(tmp_path / "ours.tif", [c.name for c in ISPRS_CLASSES])
    for prediction in (ours, named(tmp_path / "bare.tif", None)):  # a table of ISPRS's names, or none (read as ISPRS)
        ref = named(tmp_path / "official.tif", official)
        assert "warnings" not in evaluate_rasters(prediction, ref, tmp_path / f"{prediction.stem}.json")
    other = named(tmp_path / "other.tif", ["Road", *official[1:]])
    warned = evaluate_rasters(ours, other, tmp_path / "other.json")["warnings"]
    assert len(warned) == 1 and "(0 named Road, not impervious)" in warned[0]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # (the PNGs read back)
def test_ids_up_to_254_keep_the_confusion_png_small_and_a_lone_fill_id_is_said(tmp_path: Path) -> None:
    """Ids up to 254 (a prediction without a table, 254 its undeclared fill) drew a 6120 px confusion PNG through
    float64 temporaries: 2.2 GB resident for a 349 x 352 pair (QA). Its cells shrink to fit 2048 px; a table's
    few classes keep their 24 px cells."""
    import rasterio

    labels = np.random.default_rng(6).integers(0, 4, (12, 12)).astype(np.uint8)
    filled = labels.copy()
    filled[:, :2] = 254
    evaluate_rasters(write_raster(tmp_path / "p.tif", filled), write_raster(tmp_path / "r.tif", labels),
                     tmp_path / "m.json")
    with rasterio.open(tmp_path / "m_confusion.png") as png:
        assert (png.width, png.height) == (255 * 8, 255 * 8)
    few = evaluate_rasters(write_raster(tmp_path / "q.tif", labels), tmp_path / "r.tif", tmp_path / "few.json")
    with rasterio.open(tmp_path / "few_confusion.png") as png:
        assert (png.width, png.height) == (6 * 24, 6 * 24)
    # that 254, an id past the ISPRS classes in the prediction alone, was scored as class_254 without a word (QA)
    warned = json.loads((tmp_path / "m.json").read_text())["warnings"]
    assert len(warned) == 1 and ("no class table, and ids past the ISPRS classes that only one of the two maps holds "
                                 "(254: 24 px of the prediction, 0 of the reference) are scored as classes of their "
                                 f"own (class_ID), each pulling the means down; if one marks no data, declare it "
                                 f"(gdal_edit.py -a_nodata 254 {tmp_path / 'p.tif'})") in warned[0]
    assert "warnings" not in few


def test_a_float_reference_is_read_as_tile_reads_float_labels(tmp_path: Path) -> None:
    """A float32 reference of whole ids with NaN for no label (tile trains on it) was refused as 'an image?', with
    advice for a prediction. It scores as its integer copy; a fractional id is refused in words for a reference."""
    p, r, _, ref = _pair(tmp_path)
    as_float = ref.astype(np.float32)
    as_float[ref == 255] = np.nan
    f = write_raster(tmp_path / "f.tif", as_float)
    expected = evaluate_rasters(p, r, tmp_path / "int.json")
    got = evaluate_rasters(p, f, tmp_path / "float.json")
    assert (got["pixels"], got["miou"], got["confusion_matrix"]) == (expected["pixels"], expected["miou"],
                                                                     expected["confusion_matrix"])
    as_float[5, 5] = 1.5
    bad = write_raster(tmp_path / "bad.tif", as_float)
    with pytest.raises(InputError, match=r"^reference .*bad.tif: float32 values 1.5 are no class id \(integers 0..254; "
                                         r"NaN, nodata or 255: no label\); declare"):
        evaluate_rasters(p, bad, tmp_path / "bad.json")
    as_float[5, 5] = -9999
    filled = write_raster(tmp_path / "filled.tif", as_float, nodata=-9999)  # declared: no label
    assert evaluate_rasters(p, filled, tmp_path / "filled.json")["pixels"] == expected["pixels"] - (ref[5, 5] != 255)


def test_the_image_panel_of_a_float_image_with_nan_leaves_those_pixels_black(tmp_path: Path) -> None:
    """A float ortho with a NaN collar and no nodata tag drew an all-black panel and a raw numpy 'invalid value
    encountered in cast': its NaN pixels are not covered, the rest stretched as any image is."""
    import warnings

    labels = np.zeros((20, 20), np.uint8)
    p = write_raster(tmp_path / "p.tif", labels)
    image = np.zeros((3, 20, 20), np.float32)
    image[:, :, 10:] = 200.0
    image[:, :, :5] = np.nan  # collar
    f = write_raster(tmp_path / "f.tif", image)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        evaluate_rasters(p, p, tmp_path / "m.json", image=f)
    panel = _panel_image(tmp_path / "m_panels.png", 20)
    assert (panel[:, :, :10] == 0).all() and (panel[:, :, 10:] == 255).all()


def test_a_named_pipe_prediction_or_reference_is_refused_by_the_library_function(tmp_path) -> None:
    """Only the CLI checked: evaluate_rasters opened the FIFO with GDAL and waited for a writer for ever."""
    import os

    from tests.helpers.fifo import library_refusals

    write_raster(tmp_path / "labels.tif", np.zeros((1, 16, 16), np.uint8))
    os.mkfifo(tmp_path / "pipe.tif")
    call = "from rsmamba.evaluate import evaluate_rasters as f; f({!r}, {!r}, 'x.json')"
    got = library_refusals([call.format("pipe.tif", "labels.tif"), call.format("labels.tif", "pipe.tif")], tmp_path)
    assert got == [
        "InputError: prediction pipe.tif: not a regular file (a named pipe, socket or device); give the file itself",
        "InputError: reference pipe.tif: not a regular file (a named pipe, socket or device); give the file itself"]
    assert not (tmp_path / "x.json").exists()


def test_change_band_values_other_than_0_1_leave_every_score_alike(tmp_path: Path) -> None:
    """A received 'change --semantic' raster whose band 1 holds 2 at some pixels: the binary change scores left
    those pixels out (said), the semantic scores counted them as changed. Now every score leaves them out."""
    from rsmamba.metrics import semantic_change_scores_7class

    rng = np.random.default_rng(10)
    r1 = rng.integers(0, 4, (12, 12))
    r2 = np.where(rng.random(r1.shape) < 0.3, rng.integers(0, 4, r1.shape), r1)
    pc = (r1 != r2).astype(np.uint8)
    odd = np.zeros(r1.shape, bool)
    odd[:3, :] = True
    band1 = np.where(odd, 2, pc).astype(np.uint8)
    pred = _semantic_change_raster(tmp_path / "c.tif", band1, r1, r2, list("abcd"))
    ref1 = write_raster(tmp_path / "r1.tif", r1.astype(np.uint8))
    ref2 = write_raster(tmp_path / "r2.tif", r2.astype(np.uint8))
    result = evaluate_rasters(pred, ref1, tmp_path / "m.json", reference_t2=ref2)
    keep = ~odd
    assert result["pixels"] == keep.sum()
    want = semantic_change_scores_7class(r1[keep], r2[keep], pc[keep], r1[keep], r2[keep], num_landcover=4)
    got = result["semantic_change"]
    for key in ("sek", "fscd", "miou", "oa", "iou_change"):
        assert got[key] == pytest.approx(want[key]), key
    assert got["iou_change"] == pytest.approx(result["per_class"]["change"]["iou"])
    assert any("(2)" in w for w in result["warnings"])


def test_a_reference_in_degrees_far_from_the_prediction_is_refused(tmp_path: Path) -> None:
    """A layer from another CRS is cut to the scene before it is reprojected: one wholly elsewhere is left
    without a feature, and still refused as off the prediction (its bounds were NaN, compared as 'overlapping')."""
    pred = write_raster(tmp_path / "pred.tif", np.ones((32, 32), np.uint8))
    gpd.GeoDataFrame({"class": [1]}, geometry=[box(20.0, 40.0, 21.0, 41.0)], crs="EPSG:4326").to_file(tmp_path / "far.gpkg")
    with pytest.raises(InputError, match="far.gpkg: does not overlap the prediction"):
        evaluate_rasters(pred, tmp_path / "far.gpkg", tmp_path / "m" / "m.json")
