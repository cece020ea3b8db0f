"""Ground units of a CRS: metres per unit and pixel size in metres (predict's GSD check, vectorize's thresholds)."""

from __future__ import annotations

import pytest
import rasterio.crs
from affine import Affine
from pyproj import CRS

from rsmamba.raster.ground import metres_per_unit, pixel_size_m


def test_metres_per_unit_from_crs():
    assert metres_per_unit(CRS("EPSG:32632")) == 1.0
    assert metres_per_unit(CRS("EPSG:2263")) == pytest.approx(0.3048006)  # US survey feet
    assert metres_per_unit(rasterio.crs.CRS.from_epsg(2263)) == pytest.approx(0.3048006)  # a rasterio CRS too
    with pytest.raises(ValueError):
        metres_per_unit(CRS("EPSG:4326"))


def test_pixel_size_in_metres():
    assert pixel_size_m(rasterio.crs.CRS.from_epsg(32632), Affine(0.25, 0, 5e5, 0, -0.25, 5e6)) == 0.25
    feet = pixel_size_m(rasterio.crs.CRS.from_epsg(2263), Affine(1.0, 0, 0, 0, -1.0, 0))
    assert feet == pytest.approx(0.3048006)
    # degrees: measured on the ellipsoid at the raster's centre (1e-5 deg is 1.11 m N-S, 1.11 m E-W at the
    # equator; at 60 N the E-W side is half as long), so a 4326 scene is checked against the model's GSD too
    wgs84 = rasterio.crs.CRS.from_epsg(4326)
    assert pixel_size_m(wgs84, Affine(1e-5, 0, 0, 0, -1e-5, 0)) == pytest.approx(1.1095, abs=1e-3)
    assert pixel_size_m(wgs84, Affine(1e-5, 0, 10, 0, -1e-5, 60.0), 2, 2) == pytest.approx((1.1169 + 0.5584) / 2,
                                                                                              abs=2e-3)
    assert pixel_size_m(None, Affine.identity()) is None


def test_a_rotated_grids_pixel_size_is_its_sides_length():
    utm = rasterio.crs.CRS.from_epsg(32632)
    for angle in (0, 10, 45, 90, 100, 180):
        rotated = Affine.translation(5e5, 5e6) * Affine.rotation(angle) * Affine.scale(0.25, -0.25)
        assert pixel_size_m(utm, rotated) == pytest.approx(0.25)


def test_a_web_mercator_pixel_is_measured_on_the_ground():
    """EPSG:3857's metre is cos(latitude) ground metres: 0.25 units at 69.8 N (0.086 m) passed the GSD
    check unwarned and went into tiling.json as 0.25."""
    import math

    from pyproj import Transformer

    merc = rasterio.crs.CRS.from_epsg(3857)
    for lat in (0.0, 52.0, 69.8):
        x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(10.0, lat)
        got = pixel_size_m(merc, Affine(0.25, 0, x, 0, -0.25, y))
        assert got == pytest.approx(0.25 * math.cos(math.radians(lat)), rel=0.01), lat


def test_polar_stereographic_pixel_is_measured_on_the_ground():
    """EPSG:3031's 1 m pixel 2600 km from the pole is 0.985 m of ground (scale 1.0152); UTM's 0.25 m stays 0.25."""
    polar = pixel_size_m(rasterio.crs.CRS.from_epsg(3031), Affine(1.0, 0, 0, 0, -1.0, -2.6e6), 200, 200)
    assert polar == pytest.approx(1 / 1.0152, rel=1e-4)
