"""rsmamba tile refuses labels that would train on silent garbage: off-image layers, the wrong layer
of a GeoPackage, label values that are no class id, ids a sparse class table does not name."""

from __future__ import annotations

import geopandas as gpd
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
