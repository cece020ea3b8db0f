"""Ground-unit thresholds and the raster conventions vectorize reads."""

from __future__ import annotations

import json

import numpy as np
import pyogrio
import pytest
import rasterio
from pyproj import CRS

from rsmamba.vectorize import vectorize_raster
from rsmamba.vectorize.attributes import class_names
from rsmamba.vectorize.units import parse_area, parse_length
from tests.helpers.rasters import write_raster


def test_parse_ground_units():
    assert parse_area("4m2", "a") == 4.0
    assert parse_area("0.5 ha", "a") == 5000.0
    assert parse_area(3, "a") == 3.0
    assert parse_length("50cm", "s") == pytest.approx(0.5)
    assert parse_length(None, "s") is None
    for bad in ("4 apples", "-1m", "m2"):
        with pytest.raises(ValueError):
            parse_area(bad, "a")
    for negative, parse in (("-5m2", parse_area), ("-1m", parse_length)):  # 'cannot read' it said (QA)
        with pytest.raises(ValueError, match=f"must be a finite number >= 0, got '{negative}'"):
            parse(negative, "a")


def test_min_area_in_square_metres_on_a_feet_crs(tmp_path):
    a = np.zeros((20, 20), dtype="uint8")
    a[2:4, 2:4] = 1     # 4 px of 1 ft^2 = 0.37 m2
    a[10:18, 10:18] = 1  # 64 px = 5.9 m2
    src = write_raster(tmp_path / "ft.tif", a, crs="EPSG:2263", origin=(1000000, 200000))
    out = tmp_path / "b.gpkg"
    vectorize_raster(src, out, classes=["building"], min_area="1m2")
    df = pyogrio.read_dataframe(out)
    assert len(df) == 1 and df.area_m2[0] == pytest.approx(64 * 0.3048006**2, rel=1e-6)


def test_class_name_tag_forms(tmp_path):
    src = write_raster(tmp_path / "c.tif", np.zeros((4, 4), dtype="uint8"))
    for tag, expected in (
        (["a", "b"], {0: "a", 1: "b"}),
        ({"3": "roof", "7": "pool"}, {3: "roof", 7: "pool"}),
        ([{"id": 2, "name": "x"}], {2: "x"}),
    ):
        with rasterio.open(src, "r+") as ds:
            ds.update_tags(1, class_names=json.dumps(tag))
        with rasterio.open(src) as ds:
            assert class_names(ds) == expected


def test_class_names_as_predict_writes_them(tmp_path):
    """predict writes a dataset tag CLASS_NAMES (upper case); GDAL keys ignore case, so do we."""
    src = write_raster(tmp_path / "c.tif", np.zeros((4, 4), dtype="uint8"))
    with rasterio.open(src, "r+") as ds:
        ds.update_tags(CLASS_NAMES=json.dumps(["road", "house"]))
    with rasterio.open(src) as ds:
        assert class_names(ds) == {0: "road", 1: "house"}


def test_absent_class_writes_an_empty_layer(tmp_path):
    a = np.zeros((10, 10), dtype="uint8")
    src = write_raster(tmp_path / "c.tif", a)
    out = tmp_path / "cars.gpkg"
    summary = vectorize_raster(src, out, classes=["car"])
    assert summary.polygons == 0
    info = pyogrio.read_info(out)
    assert info["features"] == 0 and "class_name" in info["fields"] and "32632" in info["crs"]


def test_polar_stereographic_areas_are_ground_areas(tmp_path):
    """EPSG:3031's grid is 1.5 % longer than the ground 2600 km from the pole (65.6 S): a 100 x 100 m square of
    the grid is 9702 m2 on the ellipsoid; the grid's 10000 m2 were reported as ground metres, unflagged."""
    from pyproj import Geod

    a = np.zeros((200, 200), dtype="uint8")
    a[50:150, 50:150] = 1
    src = write_raster(tmp_path / "polar.tif", a, crs="EPSG:3031", origin=(0, -2.6e6), res=1.0)
    out = tmp_path / "b.gpkg"
    summary = vectorize_raster(src, out, classes=["building"], min_area="9800m2")  # 9702 m2 on the ground: dropped
    assert summary.polygons == 0 and "EPSG:3031's grid is 1.0152 x the ground" in summary.describe()
    vectorize_raster(src, out, classes=["building"], overwrite=True)
    df = pyogrio.read_dataframe(out)
    area, perimeter = Geod(ellps="WGS84").geometry_area_perimeter(df.to_crs(4326).geometry.iloc[0])
    assert df.area_m2[0] == pytest.approx(abs(area), rel=1e-6) and df.perimeter_m[0] == pytest.approx(perimeter, rel=1e-6)


def test_utm_areas_stay_grid_areas(tmp_path):
    """UTM's scale (0.9996 on the central meridian) is within the 1 % taken as ground: areas are the grid's."""
    a = np.zeros((20, 20), dtype="uint8")
    a[5:15, 5:15] = 1
    src = write_raster(tmp_path / "utm.tif", a, crs="EPSG:32632", origin=(500000, 5000000), res=1.0)
    summary = vectorize_raster(src, tmp_path / "b.gpkg", classes=["building"])
    assert pyogrio.read_dataframe(tmp_path / "b.gpkg").area_m2.tolist() == [100.0]
    assert "ground metres" not in summary.describe()
