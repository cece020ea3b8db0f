"""rsmamba tile refuses labels that would train on silent garbage: off-image layers, the wrong layer
of a GeoPackage, label values that are no class id, ids a sparse class table does not name."""

from __future__ import annotations

import geopandas as gpd
import rasterio
import numpy as np
import pytest
from shapely.geometry import box

from rsmamba.errors import InputError
from rsmamba.tile import tile_scene
from tests.helpers.rasters import write_raster
from tests.helpers.scenes import write_scene

X0, Y0 = 500000.0, 5000000.0  # write_scene's north-west corner (EPSG:32632, 0.5 m)


def _layer(path, classes, boxes, layer=None, crs="EPSG:32632"):
    gpd.GeoDataFrame({"class": classes}, geometry=boxes, crs=crs).to_file(path, layer=layer)
    return path


def test_a_label_layer_off_the_image_is_refused_not_tiled_as_background(tmp_path) -> None:
    scene = write_scene(tmp_path / "s", size=64)
    far = _layer(tmp_path / "far.gpkg", [1], [box(X0 + 10_000, Y0 - 20, X0 + 10_010, Y0 - 10)])
    with pytest.raises(InputError, match="does not overlap the image"):
        tile_scene(scene["image"], tmp_path / "o", labels=far, size=32)
    assert not (tmp_path / "o").exists()


def test_a_label_layer_round_the_image_but_not_on_it_is_refused(tmp_path) -> None:
    """Its bounds spanned the image, its features lay either side: every chip was class 0, exit 0. A layer in
    degrees off the image is still said with its bounds (cut to the scene, it had none left: 'nan')."""
    scene = write_scene(tmp_path / "s", size=64)
    around = _layer(tmp_path / "around.gpkg", [1, 2], [box(X0 - 100, Y0 - 100, X0 - 1, Y0),
                                                       box(X0 + 33, Y0 - 100, X0 + 100, Y0)])
    with pytest.raises(InputError, match=r"around.gpkg: does not overlap the image \(no feature reaches inside it"):
        tile_scene(scene["image"], tmp_path / "o", labels=around, size=32)
    edge = _layer(tmp_path / "edge.gpkg", [1], [box(X0 + 32, Y0 - 100, X0 + 100, Y0)])  # touching its east edge
    with pytest.raises(InputError, match="does not overlap the image"):
        tile_scene(scene["image"], tmp_path / "o", labels=edge, size=32)
    far = _layer(tmp_path / "far.gpkg", [1], [box(20.0, 40.0, 21.0, 41.0)], crs="EPSG:4326")
    with pytest.raises(InputError, match=r"layer bounds \d+\.\d, \d+\.\d, \d+\.\d, \d+\.\d in the image CRS"):
        tile_scene(scene["image"], tmp_path / "o", labels=far, size=32)
    assert not (tmp_path / "o").exists()


def test_a_geopackage_of_several_layers_needs_the_layer_named(tmp_path) -> None:
    scene = write_scene(tmp_path / "s", size=64)
    gpkg = tmp_path / "multi.gpkg"
    _layer(gpkg, [5], [box(X0, Y0 - 32, X0 + 32, Y0)], layer="aaa_clutter")  # GDAL's first layer
    _layer(gpkg, [1], [box(X0 + 4, Y0 - 8, X0 + 12, Y0 - 4)], layer="buildings")
    with pytest.raises(InputError, match=r"2 layers \(aaa_clutter, buildings\).*--labels-layer"):
        tile_scene(scene["image"], tmp_path / "o", labels=gpkg, size=32)
    with pytest.raises(InputError, match="no layer 'roads'"):
        tile_scene(scene["image"], tmp_path / "o", labels=gpkg, labels_layer="roads", size=32)
    summary = tile_scene(scene["image"], tmp_path / "o", labels=gpkg, labels_layer="buildings", size=32)
    hist = {}
    for name in (tmp_path / "o" / "labels").iterdir():
        import rasterio

        with rasterio.open(name) as src:
            for k, v in zip(*np.unique(src.read(1), return_counts=True)):
                hist[int(k)] = hist.get(int(k), 0) + int(v)
    assert set(hist) == {0, 1} and hist[1] == 16 * 8  # the buildings layer's one 8 x 4 m box at 0.5 m
    assert sum(summary.chips.values()) == 4


@pytest.mark.parametrize(("dtype", "value"), [("uint16", 300), ("float32", 1.7), ("int16", -1)])
def test_label_raster_values_that_are_no_class_id_are_refused(tmp_path, dtype, value) -> None:
    scene = write_scene(tmp_path / "s", size=64)
    import rasterio

    with rasterio.open(scene["labels"]) as src:
        labels = src.read(1).astype(dtype)
    labels[:5, :5] = value
    bad = write_raster(tmp_path / "bad.tif", labels, res=0.5)
    with pytest.raises(InputError, match=f"values {value:g} are no class id"):
        tile_scene(scene["image"], tmp_path / "o", labels=bad, size=32)
    assert not (tmp_path / "o").exists()
    # Declared as nodata, the same value is "no label" and the scene tiles.
    ok = write_raster(tmp_path / "ok.tif", labels, res=0.5, nodata=value if value != 1.7 else None)
    if value != 1.7:
        tile_scene(scene["image"], tmp_path / "o", labels=ok, size=32)


def test_a_sparse_class_table_still_refuses_ids_it_does_not_name(tmp_path) -> None:
    scene = write_scene(tmp_path / "s", size=64)  # labels hold ISPRS ids 0..5
    table = tmp_path / "classes.yaml"
    table.write_text("classes:\n  - {id: 0, name: background}\n  - {id: 1, name: building}\n"
                     "  - {id: 7, name: water}\n")
    with pytest.raises(InputError, match=r"class ids 2, 3.* not in the class table \(0 background, 1 building, "
                                         r"7 water\)"):
        tile_scene(scene["image"], tmp_path / "o", labels=scene["labels"], class_table=table, size=32)


def test_background_out_of_range_and_missing_inputs_are_said_with_the_option_problems(tmp_path) -> None:
    scene = write_scene(tmp_path / "s", size=64)
    with pytest.raises(InputError) as info:
        tile_scene(tmp_path / "nope.tif", tmp_path / "o", labels=tmp_path / "nope.gpkg", label_background=300,
                   split=(0, 0, 0))
    problems = info.value.problems
    assert any("--background" in p for p in problems) and any("--split" in p for p in problems)
    assert sum("file not found" in p for p in problems) == 2
    boxes = _layer(tmp_path / "b.gpkg", [1], [box(X0 + 4, Y0 - 8, X0 + 12, Y0 - 4)])
    tile_scene(scene["image"], tmp_path / "o", labels=boxes, label_background=255, size=32)  # 255: unlabelled


def test_a_background_the_class_table_lacks_is_refused_before_the_layer_is_read(tmp_path, capsys) -> None:
    """--background 7 (no ISPRS class) was first warned of ('labelled class 7'), then refused after the chips."""
    from rsmamba.cli import main

    scene = write_scene(tmp_path / "s", size=64)
    boxes = _layer(tmp_path / "b.gpkg", [1], [box(X0 + 4, Y0 - 8, X0 + 12, Y0 - 4)])
    assert main(["tile", str(scene["image"]), "--labels", str(boxes), "--background", "7", "-o",
                 str(tmp_path / "o"), "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: --background 7: class id 7 (the pixels outside the label polygons) is " \
        "not in the class table (0 impervious, 1 building, 2 low_vegetation, 3 tree, 4 car, 5 clutter); add " \
        "class 7 to the table, or --background 255" in err, err
    assert not (tmp_path / "o").exists()


def test_change_labels_are_zero_one_and_second_epoch_labels_answer_to_the_class_table(tmp_path) -> None:
    """--burn was applied to change labels too (chips of 0/2), and labels-t2 ids went unchecked until
    training indexed past the head; a change raster with nodata 0 ignored every unchanged pixel."""
    import rasterio

    scene = write_scene(tmp_path / "s", size=64)
    with rasterio.open(scene["labels"]) as src:
        labels = src.read(1)
    change = (labels == 1).astype(np.uint8)
    t2 = write_raster(tmp_path / "t2.tif", np.flip(rasterio.open(scene["image"]).read(), 2).copy(), res=0.5)
    ok = write_raster(tmp_path / "change.tif", change, res=0.5)
    common = {"t2": t2, "size": 32}
    layer = _layer(tmp_path / "b.gpkg", [1], [box(X0 + 4, Y0 - 8, X0 + 12, Y0 - 4)])
    tile_scene(scene["image"], tmp_path / "o1", labels=layer, burn=2, change=ok, labels_t2=layer, **common)
    values = set()
    for chip in (tmp_path / "o1" / "change").iterdir():
        with rasterio.open(chip) as src:
            values |= set(np.unique(src.read(1)).tolist())
    assert values <= {0, 1, 255} and 1 in values  # --burn 2 is the building class, not the change value
    with pytest.raises(InputError, match=r"change labels .*: values 2; change labels are 0 \(no change\) and 1"):
        tile_scene(scene["image"], tmp_path / "o2", labels=scene["labels"],
                   change=write_raster(tmp_path / "c012.tif", change * 2, res=0.5), **common)
    with pytest.raises(InputError, match="nodata 0 is 'no change'"):
        tile_scene(scene["image"], tmp_path / "o3", labels=scene["labels"],
                   change=write_raster(tmp_path / "cnd0.tif", change, res=0.5, nodata=0), **common)
    t2_labels = labels.copy()
    t2_labels[:4, :4] = 7
    with pytest.raises(InputError, match=r"labels-t2 .*: class ids 7 not in the class table"):
        tile_scene(scene["image"], tmp_path / "o4", labels=scene["labels"],
                   labels_t2=write_raster(tmp_path / "l7.tif", t2_labels, res=0.5), **common)


def test_instance_footprints_off_the_image_are_refused(tmp_path) -> None:
    scene = write_scene(tmp_path / "s", size=64)
    far = _layer(tmp_path / "far.gpkg", [1], [box(X0 + 10_000, Y0 - 20, X0 + 10_010, Y0 - 10)])
    with pytest.raises(InputError, match="no footprint overlaps the image"):
        tile_scene(scene["image"], tmp_path / "o", labels=scene["labels"], instance_targets=far, size=32)


def test_second_epoch_chips_carry_their_own_footprint(tmp_path) -> None:
    import rasterio

    scene = write_scene(tmp_path / "s", size=64)
    with rasterio.open(scene["image"]) as src:
        t2 = src.read()
    t2[:, :, :10] = 0
    t2_path = write_raster(tmp_path / "t2.tif", t2, res=0.5, nodata=0)
    tile_scene(scene["image"], tmp_path / "o", labels=scene["labels"], t2=t2_path, size=32, split=(1, 0, 0))
    with rasterio.open(tmp_path / "o" / "t2" / "r00_c00.tif") as chip:
        mask = chip.dataset_mask()
    assert (mask[:, :10] == 0).all() and (mask[:, 10:] == 255).all()


def test_second_epoch_and_change_layers_are_named_like_the_first(tmp_path) -> None:
    import rasterio

    scene = write_scene(tmp_path / "s", size=64)
    gpkg = tmp_path / "epochs.gpkg"
    _layer(gpkg, [1], [box(X0 + 4, Y0 - 8, X0 + 12, Y0 - 4)], layer="t1")
    _layer(gpkg, [1], [box(X0 + 4, Y0 - 8, X0 + 20, Y0 - 4)], layer="t2")
    _layer(gpkg, [1], [box(X0 + 12, Y0 - 8, X0 + 20, Y0 - 4)], layer="change")
    t2 = write_raster(tmp_path / "t2.tif", rasterio.open(scene["image"]).read(), res=0.5)
    common = {"labels": gpkg, "labels_layer": "t1", "t2": t2, "labels_t2": gpkg, "change": gpkg, "size": 64,
              "split": (1, 0, 0)}
    with pytest.raises(InputError, match=r"labels-t2 .*epochs.gpkg: holds 3 layers .*--labels-t2-layer NAME"):
        tile_scene(scene["image"], tmp_path / "o", **common)
    tile_scene(scene["image"], tmp_path / "o", labels_t2_layer="t2", change_layer="change", **common)
    counts = {}
    for sub in ("labels", "labels_t2", "change"):
        with rasterio.open(next((tmp_path / "o" / sub).iterdir())) as src:
            counts[sub] = int((src.read(1) == 1).sum())
    assert counts == {"labels": 16 * 8, "labels_t2": 32 * 8, "change": 16 * 8}


def test_a_text_class_field_reads_the_class_tables_names(tmp_path) -> None:
    """A survey layer's class field holds names (building, road): refused with 'must hold integer class ids',
    no word of what it held or of the table; an unknown id was told to pass the --class-table just passed."""
    import json

    scene = write_scene(tmp_path / "s", size=64)
    table = tmp_path / "classes.yaml"
    table.write_text("classes:\n  - {id: 0, name: background}\n  - {id: 1, name: building}\n  - {id: 2, name: Road}\n")
    boxes = [box(X0 + 2, Y0 - 10, X0 + 10, Y0 - 2), box(X0 + 14, Y0 - 30, X0 + 30, Y0 - 14)]
    layer = _layer(tmp_path / "named.gpkg", ["Building", " road"], boxes)
    tile_scene(scene["image"], tmp_path / "o", labels=layer, class_table=table, size=32, split=(1, 0, 0))
    hist = {}
    import csv

    with open(tmp_path / "o" / "manifest.csv") as fh:
        for row in csv.DictReader(fh):
            for k, v in json.loads(row["class_hist"]).items():
                hist[k] = hist.get(k, 0) + v
    assert hist["1"] == 16 * 16 and hist["2"] == 32 * 32  # 0.5 m pixels: 8 m and 16 m squares
    with pytest.raises(InputError, match=r"holds names no class of the class table has \('parking'; the table: "
                                         r"background, building, Road\)"):
        tile_scene(scene["image"], tmp_path / "o2", labels=_layer(tmp_path / "p.gpkg", ["building", "parking"], boxes),
                   class_table=table, size=32)
    with pytest.raises(InputError, match=r"class id 7 not in the class table \(0 background, 1 building, 2 Road\); "
                                         r"add them to the class table, or recode those labels"):
        tile_scene(scene["image"], tmp_path / "o3", labels=_layer(tmp_path / "7.gpkg", [1, 7], boxes),
                   class_table=table, size=32)


def test_a_geojson_class_field_of_ids_and_names_reads_without_pyogrios_note(tmp_path) -> None:
    """Class 1 beside "tree": pyogrio's 'Could not parse column 'class' as JSON; leaving as string' reached the
    user as a warning, though the field is read as meant (text; each value an id or a name)."""
    import json
    import warnings

    scene = write_scene(tmp_path / "s", size=64)
    layer = tmp_path / "mixed.geojson"
    feature = lambda c, g: {"type": "Feature", "properties": {"class": c}, "geometry": g.__geo_interface__}  # noqa: E731
    layer.write_text(json.dumps({"type": "FeatureCollection",
                                 "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32632"}},
                                 "features": [feature(1, box(X0 + 2, Y0 - 10, X0 + 10, Y0 - 2)),
                                              feature("tree", box(X0 + 20, Y0 - 30, X0 + 30, Y0 - 20))]}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tile_scene(scene["image"], tmp_path / "o", labels=layer, size=32, label_background=255)
    assert not [w for w in caught if "Could not parse" in str(w.message)], [str(w.message) for w in caught]
    hist = {}
    for name in (tmp_path / "o" / "labels").iterdir():
        with rasterio.open(name) as src:
            for k, v in zip(*np.unique(src.read(1), return_counts=True)):
                hist[int(k)] = hist.get(int(k), 0) + int(v)
    assert hist[1] == 16 * 16 and hist[3] == 20 * 20


def test_an_invalid_label_polygon_is_repaired_and_said(tmp_path, caplog) -> None:
    """A building's ring digitised twice over burnt nothing (trained as background), unsaid; evaluate the same."""
    import csv
    import json

    from shapely.geometry import Polygon

    from rsmamba.evaluate import evaluate_rasters

    scene = write_scene(tmp_path / "s", size=64)
    ring = [(X0 + 4, Y0 - 4), (X0 + 12, Y0 - 4), (X0 + 12, Y0 - 12), (X0 + 4, Y0 - 12)]
    layer = _layer(tmp_path / "twice.gpkg", [1], [Polygon(ring + ring)])
    with caplog.at_level("WARNING", logger="rsmamba"):
        tile_scene(scene["image"], tmp_path / "o", labels=layer, size=32, split=(1, 0, 0))
    with open(tmp_path / "o" / "manifest.csv") as fh:
        hist = [json.loads(r["class_hist"]) for r in csv.DictReader(fh) if r["chip_id"] == "r00_c00"][0]
    assert hist["1"] == 16 * 16
    assert any("1 invalid polygon (self-intersecting, a ring traced twice) repaired" in r.getMessage() for r in caplog.records)
    result = evaluate_rasters(scene["labels"], layer, tmp_path / "m.json")
    assert result["pixels"] == 16 * 16 and any("1 invalid polygon" in w for w in result["warnings"])


def test_labels_painted_with_another_table_are_told_they_are_read_as_isprs(tmp_path, caplog) -> None:
    """A firm's label raster (0 background, 1 building, 2 road, 3 tree in its own colour table) tiled without
    --class-table became the ISPRS classes end to end, unsaid: roads mapped and vectorised as low_vegetation."""
    scene = write_scene(tmp_path / "s", size=64)
    with rasterio.open(scene["labels"]) as ds:
        labels, profile = ds.read(1), ds.profile
    own = tmp_path / "own.tif"
    with rasterio.open(own, "w", **profile) as ds:
        ds.write(np.minimum(labels, 3), 1)
        ds.write_colormap(1, {0: (0, 0, 0, 255), 1: (255, 0, 0, 255), 2: (128, 128, 128, 255), 3: (0, 160, 0, 255)})
    with caplog.at_level("WARNING", logger="rsmamba"):
        tile_scene(scene["image"], tmp_path / "a", labels=scene["labels"], size=32)  # ISPRS colours: silent
        assert not [r for r in caplog.records if "ISPRS classes" in r.getMessage()]
        tile_scene(scene["image"], tmp_path / "b", labels=own, size=32)
    said = [r.getMessage() for r in caplog.records if "ISPRS classes" in r.getMessage()]
    assert len(said) == 1 and "its colour table paints 0 as (0, 0, 0), not ISPRS impervious's (255, 255, 255)" in said[0]


def test_burn_with_a_class_field_is_refused(tmp_path: Path) -> None:
    """A land-cover layer with --burn and --class-field: every polygon would be 'building', the field unread."""
    scene = write_scene(tmp_path / "s", size=64)
    layer = _layer(tmp_path / "b.gpkg", [1, 4], [box(X0 + 4, Y0 - 8, X0 + 12, Y0 - 4), box(X0 + 20, Y0 - 8, X0 + 28, Y0 - 4)])
    with pytest.raises(InputError, match=r"--burn 1 makes every label polygon one class, --class-field class reads "
                                         r"each polygon's class: give one of them"):
        tile_scene(scene["image"], tmp_path / "o", labels=layer, burn=1, class_field="class", size=32)
    assert not (tmp_path / "o").exists()
    tile_scene(scene["image"], tmp_path / "o", labels=layer, burn=1, size=32)  # without the field: burnt


def test_options_without_what_they_apply_to_are_refused_by_name(tmp_path) -> None:
    """--labels-layer, --contact-px and --burn-name without a label layer, instance targets or --burn, and
    --class-field / --background with raster labels, were accepted and ignored (evaluate refused --background)."""
    scene = write_scene(tmp_path / "s", size=64)
    with pytest.raises(InputError) as info:
        tile_scene(scene["image"], tmp_path / "o", labels_layer="foo", contact_px=5, burn_name="house", size=32)
    assert info.value.problems == [
        "--labels-layer foo: the layer of a vector --labels file; no --labels given",
        "--burn-name house: names the --burn class; give --burn",
        "--contact-px: a width of the instance target chips: give --instance-targets"]
    with pytest.raises(InputError) as info:
        tile_scene(scene["image"], tmp_path / "o", labels=scene["labels"], class_field="foo", label_background=7,
                   size=32)
    assert info.value.problems == [f"--class-field, --background: options of label polygons (a vector --labels or "
                                   f"--labels-t2); --labels {scene['labels']} is a raster"]
    # given at their default values they were taken silently (--contact-px 3: no instance targets, no word)
    with pytest.raises(InputError) as info:
        tile_scene(scene["image"], tmp_path / "o", labels=scene["labels"], contact_px=3, border_px=2,
                   burn_name="building", label_background=0, size=32)
    assert info.value.problems == [
        f"--background: an option of label polygons (a vector --labels or --labels-t2); --labels {scene['labels']} "
        "is a raster", "--burn-name building: names the --burn class; give --burn",
        "--border-px, --contact-px: widths of the instance target chips: give --instance-targets"]
    assert not (tmp_path / "o").exists()


def test_a_chip_overlap_past_the_size_names_the_options(tmp_path) -> None:
    scene = write_scene(tmp_path / "s", size=64)
    with pytest.raises(InputError, match=r"^--overlap 64: must be in \[0, --size 64\)$"):
        tile_scene(scene["image"], tmp_path / "o", size=64, overlap=64)
