"""A class raster's declared table: evaluate and vectorize read the same one from either tag."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from rsmamba.errors import InputError
from rsmamba.evaluate import evaluate_rasters
from rsmamba.raster.classtags import declared_classes
from rsmamba.vectorize.api import vectorize_raster
from tests.helpers.rasters import write_raster

NAMES = ["background", "house", "grass"]


def _classes(tmp_path, **tags):
    ids = np.zeros((32, 32), np.uint8)
    ids[4:12, 4:12] = 1
    ids[20:, :] = 2
    path = write_raster(tmp_path / "pred.tif", ids)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**tags)
    return path, write_raster(tmp_path / "ref.tif", ids)


@pytest.mark.parametrize("tags", [
    {"CLASS_NAMES": json.dumps(NAMES)},  # as an edited raster may carry it
    {"CLASSES": json.dumps([{"id": i, "name": n, "color": [i, i, i]} for i, n in enumerate(NAMES)])},
    {"class_names": json.dumps({str(i): n for i, n in enumerate(NAMES)})},
])
def test_evaluate_and_vectorize_read_one_table_from_either_tag(tmp_path, tags) -> None:
    """A raster tagged only CLASS_NAMES was scored under the ISPRS names (impervious, building, ...) while
    vectorize named its polygons background/house/grass; tagged only CLASSES, the other way round."""
    pred, ref = _classes(tmp_path, **tags)
    scores = evaluate_rasters(pred, ref, tmp_path / "m.json")
    assert list(scores["per_class"]) == NAMES
    vectorize_raster(pred, tmp_path / "v.gpkg", progress=False)
    assert sorted(set(gpd.read_file(tmp_path / "v.gpkg")["class_name"])) == sorted(NAMES)
    with rasterio.open(pred) as src:
        assert [(c.id, c.name) for c in declared_classes(src)] == list(enumerate(NAMES))


def test_a_class_names_table_takes_the_rasters_colours(tmp_path) -> None:
    pred, _ = _classes(tmp_path, CLASS_NAMES=json.dumps(NAMES))
    with rasterio.open(pred, "r+") as ds:
        ds.write_colormap(1, {0: (0, 0, 0, 255), 1: (200, 10, 10, 255), 2: (0, 90, 0, 255)})
    with rasterio.open(pred) as src:
        assert [c.color for c in declared_classes(src)] == [(0, 0, 0), (200, 10, 10), (0, 90, 0)]
    pred.unlink()
    pred, _ = _classes(tmp_path, CLASS_NAMES=json.dumps(NAMES))  # no colour table: grey
    with rasterio.open(pred) as src:
        assert {c.color for c in declared_classes(src)} == {(128, 128, 128)}


@pytest.mark.parametrize("tag, why", [
    ("[{\"id\": 0, \"name\": \"a\"", "Expecting"),  # cut short
    ("{\"0\": \"a\"}", "a JSON dict"),
    (json.dumps([{"id": 0, "name": "a", "color": [1, 2]}]), "color must be three integers"),
    (json.dumps([{"id": 0, "name": "a", "color": [1, 2, 3]}, {"id": 1, "name": "A", "color": [1, 2, 3]}]),
     "class name 'a' appears more than once"),
])
def test_a_classes_tag_that_is_no_table_is_refused_not_read_as_isprs(tmp_path, tag, why) -> None:
    """evaluate read an unreadable CLASSES tag as no table and scored the raster under the ISPRS names."""
    pred, ref = _classes(tmp_path, CLASSES=tag)
    with pytest.raises(InputError, match=f"pred.tif: its CLASSES tag .* is not a class table \\({why}"):
        evaluate_rasters(pred, ref, tmp_path / "m.json")
    with pytest.raises(InputError, match="its CLASSES tag"):
        vectorize_raster(pred, tmp_path / "v.gpkg", progress=False)
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "v.gpkg").exists()
