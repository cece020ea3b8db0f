"""Ground units of a raster's CRS: how long a CRS unit and a pixel are in metres.

Users and models think in metres: a minimum polygon area of 4 m², a model trained on 0.2-0.6 m
pixels. The CRS says how long one of its units is; a geographic CRS (degrees) has no such length,
and a Mercator CRS (Web Mercator, EPSG:3857) has a "metre" only cos(latitude) ground metres long.
"""

from __future__ import annotations

import math

from typing import Any

__all__ = ["SCALE_TOLERANCE", "is_mercator", "metres_per_unit", "pixel_size_m", "scale_at", "torn", "utm_zone"]


def _pyproj(crs: Any) -> Any:
    """A pyproj CRS of a pyproj or rasterio CRS (or anything pyproj reads)."""
    from pyproj import CRS

    return CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") and not isinstance(crs, CRS) else crs)


def metres_per_unit(crs: Any) -> float:
    """Length of one CRS unit in metres (1 for UTM, 0.3048 for feet); a geographic CRS has none.

    ``crs``: a pyproj or rasterio CRS.
    """
    crs = _pyproj(crs)
    if crs.is_geographic:
        raise ValueError(f"{crs.to_string()} is geographic (degrees): no ground unit")
    axis = crs.axis_info[0] if crs.axis_info else None
    factor = getattr(axis, "unit_conversion_factor", None)
    return float(factor) if factor else 1.0


def pixel_size_m(crs: Any, transform: Any, width: int = 1, height: int = 1) -> float | None:
    """The mean of a raster's pixel width and height in metres; None without a CRS.

    A geographic CRS (degrees) measures the pixel at the raster's centre (``width`` x ``height``) on
    its ellipsoid: a Landsat scene warped to EPSG:4326 was no size at all, and no check warned."""
    sides = pixel_sides_m(crs, transform, width, height)
    return None if sides is None else (sides[0] + sides[1]) / 2


def pixel_sides_m(crs: Any, transform: Any, width: int = 1, height: int = 1) -> tuple[float, float] | None:
    """A raster's pixel (across, down) in metres at its centre, as :func:`pixel_size_m` measures them; None
    without a CRS."""
    if crs is None or transform is None:
        return None
    try:
        unit = metres_per_unit(crs)
    except ValueError:
        return _geodesic_pixel_sides(crs, transform, width / 2, height / 2)
    if is_mercator(crs):  # its metre is cos(latitude) ground metres: 0.25 units at 69.8 N are 0.086 m
        return _geodesic_pixel_sides(crs, transform, width / 2, height / 2)
    # the lengths of a pixel's two sides: a rotated grid keeps part of them in b and d
    across, down = math.hypot(transform.a, transform.d) * unit, math.hypot(transform.b, transform.e) * unit
    scale = scale_at(crs, crs, *(transform * (width / 2, height / 2)))  # polar stereographic: a grid metre is no metre
    scale = scale if abs(scale * scale - 1) > SCALE_TOLERANCE else 1.0
    across, down = float(across / scale), float(down / scale)
    return (across, down) if across > 0 and down > 0 else None


def _geodesic_pixel_sides(crs: Any, transform: Any, col: float, row: float) -> tuple[float, float] | None:
    """The sides of the pixel at (``col``, ``row``) of a grid in degrees (or in a Mercator projection,
    whose corners are taken to degrees first), in metres on its ellipsoid."""
    from pyproj import Geod, Transformer

    try:
        full = _pyproj(crs)
        geod = Geod(a=full.ellipsoid.semi_major_metre, rf=full.ellipsoid.inverse_flattening or 0.0)
        # GDAL (as rasterio sets it) keeps x = longitude, whatever the CRS's official axis order
        corners = [transform * (col + dc, row + dr) for dc, dr in ((0, 0), (1, 0), (0, 1))]
        if not full.is_geographic:
            to_degrees = Transformer.from_crs(full, full.geodetic_crs, always_xy=True)
            corners = [to_degrees.transform(x, y) for x, y in corners]
        (x0, y0), (x1, y1), (x2, y2) = corners
        across = geod.inv(x0, y0, x1, y1)[2]
        down = geod.inv(x0, y0, x2, y2)[2]
    except Exception:  # noqa: BLE001 - no usable ellipsoid or coordinates: size unknown
        return None
    ok = all(math.isfinite(v) and v > 0 for v in (across, down))
    return (float(across), float(down)) if ok else None


SCALE_TOLERANCE = 0.01  # areal: a grid area within 1 % of the ground's (UTM: 0.08-0.2 %) is taken as it is


def scale_at(crs: Any, point_crs: Any, x: float, y: float) -> float:
    """The linear scale of projected ``crs`` (grid length over ground length, the square root of its areal
    scale) at point ``x, y`` of ``point_crs``; 1.0 where pyproj cannot tell.

    A conformal projection keeps its scale near 1 only near its standard lines: polar stereographic
    (EPSG:3031, 3413) grids are 4-9 % off in area over much of the ice, so its grid areas are not
    ground m² (measured: 6-8 % too large at 60-65 degrees south in EPSG:3031).
    """
    from pyproj import Proj, Transformer

    try:
        full = _pyproj(crs)
        if full.is_compound and full.sub_crs_list:
            full = full.sub_crs_list[0]
        where = _pyproj(point_crs)
        if full.is_geographic or not full.is_projected:
            return 1.0
        lon, lat = Transformer.from_crs(where, full.geodetic_crs, always_xy=True).transform(x, y)
        areal = float(Proj(full).get_factors(lon, lat).areal_scale)
    except Exception:  # noqa: BLE001 - no datum, no inverse, a point off the projection: scale unknown
        return 1.0
    return math.sqrt(areal) if math.isfinite(areal) and areal > 0 else 1.0


def is_mercator(crs: Any) -> bool:
    """A (pseudo-)Mercator projection, e.g. Web Mercator EPSG:3857 or World Mercator EPSG:3395.

    Its unit is called metre but is cos(latitude) ground metres long (0.75 m at 41 degrees north:
    areas 1.75 times too large), so areas and thresholds in its units are not ground metres.
    Transverse and oblique Mercator (UTM, the Swiss grid) keep their scale near 1 and are not meant.
    """
    crs = _pyproj(crs)
    if crs.is_compound and crs.sub_crs_list:
        crs = crs.sub_crs_list[0]
    method = (crs.coordinate_operation.method_name if crs.coordinate_operation else "").lower()
    return "mercator" in method and "transverse" not in method and "oblique" not in method


def utm_zone(crs: Any, x: float, y: float) -> str:
    """The WGS 84 UTM zone (``EPSG:326zz`` north, ``EPSG:327zz`` south) of point ``x, y`` of ``crs``."""
    from pyproj import Transformer

    crs = _pyproj(crs)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


LATTICE_BLOWUP = 1e4  # a lattice cell this many times the median area: a singular point (polar stereo of 60-90 S: 4x)


def torn(source: Any, transform: Any, width: int, height: int, target: Any, samples: int = 256) -> bool:
    """Whether taking a raster's footprint from ``source`` to ``target`` tears it apart: the target's edge (the
    antimeridian of a world projection such as EPSG:6933, or its pole) runs through the raster, so polygons
    across it come out inside out (a Fiji block in EPSG:6933 became a band round the globe: area x 2600).

    The footprint's outline, ``samples`` points a side, is taken across; where two neighbours lie far apart
    their gap is halved 40 times: a smooth map shrinks it to nothing, a tear keeps it. A point the target cannot
    take (outside its domain) is a tear too, and so is a lattice cell over the raster blown up by a singular point
    inside it (EPSG:3413 of a South Pole raster: area_m2 1e-24 for 300,000 km2).
    """
    import numpy as np
    from pyproj import Transformer

    go = Transformer.from_crs(_pyproj(source), _pyproj(target), always_xy=True)
    t = np.linspace(0.0, 1.0, samples, endpoint=False)
    cols = np.concatenate([t * width, np.full(samples, float(width)), (1 - t) * width, np.zeros(samples)])
    rows = np.concatenate([np.zeros(samples), t * height, np.full(samples, float(height)), (1 - t) * height])

    def across(c: Any, r: Any) -> Any:
        x = transform.a * c + transform.b * r + transform.c
        y = transform.d * c + transform.e * r + transform.f
        return np.column_stack(go.transform(x, y, errcheck=False))

    points = across(cols, rows)
    if not np.isfinite(points).all():
        return True
    # a singular point inside the raster (the South Pole for EPSG:3413): cells of a lattice over it blow up
    k = np.linspace(0.0, 1.0, 17)
    grid = across(*(a.ravel() for a in np.meshgrid(k * width, k * height))).reshape(17, 17, 2)
    if not np.isfinite(grid).all():
        return True
    d1, d2 = grid[1:, 1:] - grid[:-1, :-1], grid[1:, :-1] - grid[:-1, 1:]
    cells = np.abs(d1[..., 0] * d2[..., 1] - d1[..., 1] * d2[..., 0]) / 2
    if cells.min() <= 0 or cells.max() > LATTICE_BLOWUP * np.median(cells):
        return True
    gaps = np.hypot(*(np.roll(points, -1, axis=0) - points).T)
    for i in np.argsort(gaps)[-4:]:
        j = (i + 1) % len(cols)
        a, b = np.array([cols[i], rows[i]]), np.array([cols[j], rows[j]])
        pa, pb = points[i], points[j]
        for _ in range(40):
            m = (a + b) / 2
            pm = across(np.array([m[0]]), np.array([m[1]]))[0]
            if not np.isfinite(pm).all():
                return True
            if np.hypot(*(pm - pa)) >= np.hypot(*(pb - pm)):
                b, pb = m, pm
            else:
                a, pa = m, pm
        if gaps[i] > 0 and np.hypot(*(pb - pa)) > 0.25 * gaps[i]:
            return True
    return False
