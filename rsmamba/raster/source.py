"""An image plus optional DSM and labels, all read on the image's pixel grid.

Orthophotos and DSMs rarely share a grid: different CRS definitions, resolutions, origins or
extents. Pairing their pixels by index silently shifts one against the other, so every
secondary layer whose grid differs is warped on the fly onto the image grid with
:class:`rasterio.vrt.WarpedVRT` (bilinear for the DSM, nearest for labels) and the user is told
what was resampled. Vector labels are rasterised window by window onto the same grid.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rsmamba.atomic import settle_inputs
from rsmamba.classes import IGNORE_INDEX, colour_layout, name_key
from rsmamba.runlog import warn_once
from rsmamba.errors import InputError, ProblemCollector
from rsmamba.paths import horizontal_crs, shell_word
from rsmamba.raster.ground import metres_per_unit
from rsmamba.raster.windows import CHECK_PER_AXIS, footprint, raster_extent, sample_windows, window_extent

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


# Heights a DSM can hold, in metres or feet (the Dead Sea shore, Everest in feet); beyond: a fill, or other units.
DSM_RANGE = (-1000.0, 30000.0)
# A fill the DSM does not declare (9999; a centimetre DSM's 65535) is a value no survey measures but software
# writes (see is_fill_value), far from the scene's heights: further than DSM_FAR_SPANS spans (1..99 %) of the
# other values beyond them, and DSM_FAR_FLOOR units at least. Normalised as a height, one such pixel poisons
# every window holding it. Refused when the start-up sample holds it (DSM_FILL_SHARE of the sampled pixels or
# more); elsewhere read as no data, pixel by pixel (the same in any window), with the pixels a resampled fill
# blends into. Any other value is a height, however far: a 600 m tower's flat roof, an integer DSM's summit.
DSM_FAR_SPANS = 10.0
DSM_FAR_FLOOR = 200.0  # DSM units: in a flat town (heights within a few metres) a 150 m tower is still a height
DSM_FILL_SHARE = 0.001
# A label layer leaving this share of the image outside every feature (buildings and trees, no ground) is said:
# that ground is burnt as the --background class.
OUTSIDE_WARN_SHARE = 0.05
OUTSIDE_BATCH = 4096  # features burnt at once in that check
DSM_ZERO_SHARE = 0.01  # this share of exact 0 under a gap below every other height: a fill, or the sea (said)


def is_fill_value(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Where ``raw`` (a raster's values in its file's own units, before GDAL's scale) holds a value software
    writes for "no data": 0, the dtype's limits (-32768, 32767, 65535), 9999-like and 10000-like numbers
    (-9999, 99999, -10000), 999 and -999, or a magnitude of 1e20 and more (-3.4e38). A surveyed height is none of
    them except by chance, and a chance 0 or 9999 is only taken for a fill far from the scene's heights."""
    values = [0.0, 999.0, -999.0, -32767.0]
    for k in range(4, 10):
        values += [10.0 ** k - 1, -(10.0 ** k - 1), 10.0 ** k, -(10.0 ** k)]
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(np.dtype(dtype))
        values += [float(info.min), float(info.max)]
    raw = np.asarray(raw, np.float64)
    return np.isin(raw, values) | (np.abs(raw) >= 1e20)


VECTOR_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".fgb", ".parquet", ".geoparquet", ".gml", ".kml", ".zip"}


def open_raster(path: PathLike, role: str, problems: ProblemCollector,
                pixel_grid: bool = False) -> rasterio.DatasetReader | None:
    """Open a raster, recording (not raising) what is wrong with it so all problems surface together.

    ``pixel_grid``: a raster with no georeferencing at all (no CRS, identity transform: benchmark tiles,
    PNGs) is accepted, to be read on its pixel grid (:func:`has_no_georeferencing`); half of one (a
    transform without a CRS) is still refused."""
    path = Path(path)
    if not path.exists():
        problems.add(f"{role} {path}: file not found")
        return None
    try:
        with warnings.catch_warnings():  # no georeferencing: refused below, or read on purpose (pixel_grid)
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        problems.add(f"{role} {path}: not a readable raster ({str(exc).splitlines()[0]})")
        return None
    if ds.width == 0 or ds.height == 0 or ds.count == 0:
        problems.add(f"{role} {path}: empty raster ({ds.width} x {ds.height} px, {ds.count} bands)")
    if ds.driver == "VRT":  # GDAL opens it and fails at the first read of a gone source, naming that file alone
        gone = [f for f in ds.files[1:] if "://" not in f and not f.startswith("/vsi") and not os.path.exists(f)]
        if gone:
            problems.add(f"{role} {path}: its source{'s' * (len(gone) > 1)} {', '.join(gone[:3])}"
                         f"{' (+%d more)' % (len(gone) - 3) if len(gone) > 3 else ''}: file not found")
    if ds.transform.is_identity and (ds.gcps[0] or ds.rpcs):  # it has a CRS, on its points: no grid to map on
        problems.add(f"{role} {path}: georeferenced by {'GCPs' if ds.gcps[0] else 'RPCs'} only: warp it onto a "
                     "grid first (gdalwarp)")
    elif has_no_georeferencing(ds):
        if not pixel_grid:
            problems.add(f"{role} {path}: no georeferencing (no CRS, identity transform); assign it (gdal_edit.py "
                         "-a_srs EPSG:32632 -a_ullr ULX ULY LRX LRY); a benchmark tile (Vaihingen, LoveDA, SECOND) "
                         "predict and change read on its pixel grid (--pixel-grid), and train reads the benchmark's "
                         "layout in place (data.layout), untiled")
    else:
        if ds.crs is None:
            problems.add(f"{role} {path}: no CRS; assign one first with its EPSG code, e.g. gdal_edit.py -a_srs EPSG:32632 for UTM 32N")
        if ds.transform.is_identity:
            problems.add(f"{role} {path}: no georeferencing (identity transform)")
    return ds


def oversized_blocks(ds: Any, what: str) -> str | None:
    """What to say of a compressed raster whose blocks are larger decompressed than GDAL's block cache, or None.

    Each window then decompresses its blocks again: a 4.7 MB GeoTIFF of 40000 px one-block bands took 1.5 s a
    512 px window, and a dry run had not finished its input checks after two minutes, without a word (QA)."""
    from rasterio.enums import Interleaving

    from rsmamba.raster import GDAL_CACHE_MB

    if not ds.compression or not ds.count:
        return None
    rows, cols = ds.block_shapes[0]
    per_block = rows * cols * np.dtype(ds.dtypes[0]).itemsize * (ds.count if ds.interleaving == Interleaving.pixel else 1)
    if per_block <= GDAL_CACHE_MB * 2**20:
        return None
    return (f"{what}: stored in compressed blocks of {cols} x {rows} px ({per_block / 2**20:,.0f} MiB each decompressed, "
            f"more than GDAL's {GDAL_CACHE_MB} MiB block cache): every window decompresses them again, very slowly; "
            f"tile it first (gdal_translate -co TILED=YES -co COMPRESS=DEFLATE {shell_word(str(ds.name))} tiled.tif)")


def sidecar_georeferencing(ds: Any, what: str) -> str | None:
    """What to say when the raster's ``.aux.xml`` gives it another CRS, grid or nodata than its own tags, or None.

    GDAL reads the sidecar first: a GeoTIFF in EPSG:32632 beside an .aux.xml of EPSG:4326, 1 degree pixels and a
    nodata value was mapped in degrees, 1095 pixels nodata, exit 0 and unsaid (QA). Read as GDAL reads it, and
    said: a sidecar may be a deliberate fix (QGIS's georeferencer writes one) or a stale copy."""
    sidecar = f"{ds.name}.aux.xml"
    if ds.driver != "GTiff" or not os.path.isfile(sidecar):
        return None
    import rasterio

    try:
        with rasterio.Env(GDAL_GEOREF_SOURCES="INTERNAL,TABFILE,WORLDFILE", GDAL_PAM_ENABLED="NO"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(ds.name) as own:
                theirs = (own.crs, own.transform, own.nodatavals)
    except Exception:  # noqa: BLE001 - GDAL says what is wrong when the run reads it
        return None
    differ = [name for name, ours, tags in (("CRS", ds.crs, theirs[0]), ("grid", ds.transform, theirs[1]),
                                            ("nodata", ds.nodatavals, theirs[2]))
              if (ours != tags if name != "nodata" else repr(ours) != repr(tags))]
    if not differ:
        return None
    named = ", ".join(differ[:-1]) + " and " + differ[-1] if len(differ) > 1 else differ[0]
    return (f"{what}: its {Path(sidecar).name} gives it another {named} than the file's own tags "
            f"(CRS {ds.crs.to_string() if ds.crs else 'none'} vs {theirs[0].to_string() if theirs[0] else 'none'}, pixel "
            f"{abs(ds.transform.a):g} vs {abs(theirs[1].a):g}); read with the .aux.xml's, as GDAL does: remove it if "
            "it is stale")


def has_no_georeferencing(ds: Any) -> bool:
    """True for a raster that says nothing of where it lies: no CRS, an identity transform, no GCPs or RPCs."""
    return ds.crs is None and ds.transform.is_identity and not ds.gcps[0] and not ds.rpcs


def bands_valid(ds: Any, bands: Sequence[int], window: Window, alpha_is_data: bool = False) -> np.ndarray:
    """(h, w) bool: where ``bands`` of ``ds`` hold data, by GDAL's rule for a shared nodata value.

    When every band's mask is one nodata value, the same on all bands (the usual RGB ortho with
    nodata 0), a pixel is nodata only where *every* band holds it: a deep-shadow pixel (0, 3, 5) is
    data, as gdalwarp and rasterio's ``dataset_mask`` treat it, and as training reads chips
    (:mod:`rsmamba.datasets.chips`). Any other mask (internal mask, alpha, per-band nodata values)
    must hold on every band. ``alpha_is_data`` (:func:`alpha_holding_data`), or an alpha band among ``bands``: the
    band flagged alpha is imagery, so only a nodata value, by the rule above, marks nodata.
    """
    from rasterio.enums import MaskFlags

    interp = ds.colorinterp  # rasterio builds the whole tuple per access: once, not once per band
    # an alpha band ``bands`` names (--bands 1,2,3,4) is imagery: GDAL's alpha mask masked the pixels where it is 0,
    # as it did not when --bands 4 named it alone (QA)
    if alpha_is_data or any(interp[b - 1] == ColorInterp.alpha for b in bands):
        if ds.nodata is None:
            return np.ones((int(window.height), int(window.width)), bool)
        data = ds.read(list(bands), window=window)
        return ~np.all(data == ds.nodata, axis=0)
    masks = ds.read_masks(bands, window=window) > 0
    shared_value = len({repr(ds.nodatavals[b - 1]) for b in bands}) == 1
    if shared_value and all(list(ds.mask_flag_enums[b - 1]) == [MaskFlags.nodata] for b in bands):
        valid = np.any(masks, axis=0)
    else:
        valid = np.all(masks, axis=0)
    alpha = [b for b in range(1, ds.count + 1) if interp[b - 1] == ColorInterp.alpha and b not in bands]
    if alpha and MaskFlags.alpha not in ds.mask_flag_enums[bands[0] - 1]:
        valid &= ds.read(alpha[0], window=window) > 0  # GDAL serves only a last alpha band as the mask (not ARGB)
    return valid


def _rgb_sample(src: Any) -> np.ndarray | None:
    """Bands 1-3 of a raster of three or more uint8 bands that differ, sampled over it, as (3, N, 1); else None
    (fewer bands, another type, or grey: the same ids in every band)."""
    if src.count < 3 or src.dtypes[0] != "uint8":
        return None
    rgb = np.concatenate([src.read([1, 2, 3], window=w).reshape(3, -1)
                          for w in sample_windows(src.width, src.height, 1_000_000, min_per_axis=CHECK_PER_AXIS)], axis=1)[:, :, None]
    if (rgb[0] == rgb[1]).all() and (rgb[0] == rgb[2]).all():
        return None
    return rgb


def benchmark_colours(src: Any) -> str | None:
    """The benchmark (``isprs``, ``second``) whose colour coding the raster's bands 1-3 hold, or None: ISPRS results
    are submitted colour-coded as its labels are, and such a file's red band read as ids scored mIoU 0.01."""
    rgb = _rgb_sample(src)
    return None if rgb is None else colour_layout(rgb)


def colour_labels_problem(src: Any, what: str, decode_hint: str) -> str | None:
    """Why a label raster of three or more uint8 bands that differ is not class ids in band 1, or None.

    ISPRS and SECOND ship colour labels: their red band read as ids is garbage, without a word.
    ``decode_hint`` says how the caller decodes them; ``{layout}`` in it becomes the benchmark's name.
    """
    rgb = _rgb_sample(src)
    if rgb is None:
        return None
    layout = colour_layout(rgb)
    if layout is not None:
        name = "ISPRS" if layout == "isprs" else layout.upper()
        return f"{what}: {name} colour labels ({src.count} bands), not class ids; {decode_hint.format(layout=layout)}"
    return (f"{what}: {src.count} bands that differ (an image, or colour labels of no known benchmark); "
            "pass a single-band class raster")


def no_class_ids(labels: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Where the ``known`` (labelled) values of a label raster are no class id: below 0, above 255 (no label), or
    fractional (a float raster's 1.7 would become class 1, -9999 or 300 would vanish into "no label"), to be said."""
    return known & ((labels < 0) | (labels > IGNORE_INDEX) | (labels != np.floor(labels)))


def same_grid(a: Any, b: Any) -> bool:
    """True when two datasets share CRS, transform and shape: pixels can be paired by index. CRSs are compared
    by their horizontal part: a DSM in UTM + a vertical datum on the image's grid was 'resampled' onto it."""
    if not (a.transform.almost_equals(b.transform, precision=1e-9) and a.shape == b.shape):
        return False
    return same_crs(a.crs, b.crs)


def same_crs(a: Any, b: Any) -> bool:
    """Whether two CRSs place pixels alike: equal, or equal in their horizontal parts (a DSM in UTM + a vertical
    datum on the image's own grid was 'resampled' onto it, its half-pixel shift said as 'CRS definition')."""
    return a == b or (a is not None and b is not None and _horizontal(a) == _horizontal(b))


_horizontal = horizontal_crs


GRID_TOLERANCE_PX = 1e-3  # pixel corners this close are one grid (a raster written from a printed extent)


def pixels_coincide(theirs: Any, ours: Any, width: int, height: int) -> bool:
    """Whether the ``width`` x ``height`` grid ``ours`` has the pixels of transform ``theirs``: every corner within
    :data:`GRID_TOLERANCE_PX` of a pixel. affine's ``almost_equals`` (1e-5 units) is 4 pixels of a 0.25 m grid in
    degrees: a reference 3 px off was paired by index (mIoU 0.81 read 0.67), an instance raster written 3 px off."""
    m = ~theirs * ours  # our pixel coordinates in theirs
    corners = [(0, 0), (width, 0), (0, height), (width, height)]
    return all(abs(x - c) <= GRID_TOLERANCE_PX and abs(y - r) <= GRID_TOLERANCE_PX
               for c, r in corners for x, y in [m * (c, r)])


def lattice_window(ds: Any, crs: Any, transform: Any, width: int, height: int) -> Window | None:
    """The window of ``ds`` holding a grid (``crs``, ``transform``, ``width`` x ``height``) whose pixels are
    ``ds``'s own (same horizontal CRS, pixel size and turn; origins a whole number of pixels apart), or None.

    Such a grid is a crop of ``ds`` (a project-wide label raster and a predicted tile): its pixels are read,
    not resampled; the window may reach past ``ds`` (read it boundless). Rotated grids give None: a
    boundless read ignores the rotation (a perfect 5 deg tile scored OA 0.17)."""
    t = ds.transform
    if t.b or t.d or transform.b or transform.d:
        return None
    if not all(math.isclose(getattr(t, k), getattr(transform, k), rel_tol=1e-9, abs_tol=1e-12) for k in "abde") \
            or not same_crs(ds.crs, crs):  # (a compound CRS's vertical part moves no pixel)
        return None
    col, row = ~t * (transform.c, transform.f)
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return Window(round(col), round(row), width, height)


def _lattice_gaps(ds: Any, window: Window, image: Any, role: str) -> str:
    """The image's edge rows and columns a raster on its lattice (``ds``, holding the image at ``window``) does
    not reach, in words ('' when it reaches every edge).

    A DSM one row short gave a map whose last row was nodata, said only as 'another extent (size 1024x1023)'."""
    col, row = int(window.col_off), int(window.row_off)
    gaps = [(min(image.height, max(0, -row)), "first", "row"),
            (min(image.height, max(0, row + image.height - ds.height)), "last", "row"),
            (min(image.width, max(0, -col)), "first", "column"),
            (min(image.width, max(0, col + image.width - ds.width)), "last", "column")]
    said = [f"{which} {n} {unit}{'s' * (n != 1)}" for n, which, unit in gaps if n]
    if not said:
        return ""
    return f"; it does not reach the image's {' and '.join(said)} (no {role} data there)"


def _describe_grid_difference(image: Any, other: Any) -> str:
    diffs = []
    crs_alike = same_crs(image.crs, other.crs)  # a compound CRS's vertical datum moves no pixel
    if not crs_alike:  # two CRSs by name; one CRS written two ways (WKT variants) as a definition
        names = (other.crs.to_string(), image.crs.to_string())
        diffs.append(f"CRS {names[0]} vs {names[1]}" if names[0] != names[1] and max(map(len, names)) <= 40
                     else "CRS definition")
    if not np.allclose(image.res, other.res, rtol=1e-9):
        # each in its own CRS's unit, named where they differ (0.82 US survey feet read as a DSM 3.3x coarser)
        unit = lambda crs: "degree" if crs.is_geographic else crs.linear_units  # noqa: E731
        units = (f" {unit(other.crs)}", f" {unit(image.crs)}") if image.crs and other.crs and \
            unit(image.crs) != unit(other.crs) else ("", "")
        diffs.append(f"resolution {other.res[0]:g} x {other.res[1]:g}{units[0]} vs {image.res[0]:g} x "
                     f"{image.res[1]:g}{units[1]}")
    turn = lambda t: math.degrees(math.atan2(t.d, t.a))  # noqa: E731 - the grid's rotation, north up 0
    facing = lambda t: ("south up" if t.e > 0 else "north up") + (", mirrored" if t.a < 0 else "")  # noqa: E731
    reflected = lambda t: t.a * t.e - t.b * t.d > 0  # noqa: E731 - south up or mirrored: a flip, no turn
    if reflected(image.transform) != reflected(other.transform):  # (a mirrored grid read as 'rotation 180 deg')
        diffs.append(f"orientation {facing(other.transform)} vs {facing(image.transform)}")
    elif abs(turn(image.transform) - turn(other.transform)) > 1e-6:
        diffs.append(f"rotation {turn(other.transform):.4g} deg vs {turn(image.transform):.4g} deg")
    elif facing(image.transform) != facing(other.transform):
        diffs.append(f"orientation {facing(other.transform)} vs {facing(image.transform)}")
    # origins in CRS units: a relative tolerance at northings of 5e6 would hide a shift of 50 m; in two
    # CRSs the difference of their numbers means nothing (a UTM ortho and a Web Mercator DSM: "8e5 apart")
    offset = np.hypot(image.transform.c - other.transform.c, image.transform.f - other.transform.f)
    if crs_alike and offset > 1e-6 * min(abs(image.res[0]), abs(image.res[1])):
        # in the image's pixels: '0.1768 units apart' hid a shift of half a pixel each way (QA)
        col, row = ~image.transform * (other.transform.c, other.transform.f)
        unit = "degrees" if image.crs is not None and image.crs.is_geographic else (
            image.crs.linear_units if image.crs is not None and image.crs.linear_units not in ("", "unknown") else "units")
        diffs.append(f"origin {col:+.4g} px across, {row:+.4g} px down of the image's ({offset:.4g} {unit})")
    if image.shape != other.shape:
        diffs.append(f"size {other.width}x{other.height} vs {image.width}x{image.height}")
    return ", ".join(diffs) or "grid"


def _overlap_fraction(image: Any, other: Any) -> float:
    """Fraction of the image footprint covered by ``other``'s, both outlines in the image CRS (not
    bounding boxes: a rotated DSM covering a rotated image whole was "39.9 %")."""
    import shapely
    from rasterio.warp import transform as warp_points

    try:
        xs, ys = zip(*footprint(other.width, other.height, other.transform, steps=16))
        if other.crs != image.crs:
            xs, ys = warp_points(other.crs, image.crs, list(xs), list(ys))
        theirs = shapely.make_valid(shapely.Polygon(list(zip(xs, ys))))
    except Exception:  # noqa: BLE001 - an impossible transformation means no usable overlap
        return 0.0
    ours = shapely.Polygon(footprint(image.width, image.height, image.transform, steps=1))
    if not np.isfinite(shapely.get_coordinates(theirs)).all() or ours.area <= 0:
        return 0.0
    return float(min(1.0, ours.intersection(theirs).area / ours.area))


def grid_mirrors(transform: Any) -> tuple[bool, bool]:
    """(rows run south to north, columns run east to west) of a north-up-or-mirrored grid.

    A model learnt its scenes north up: a south-up raster (``e > 0``) or a mirrored one
    (``a < 0``) is turned back for the network and its answer turned again (``Predictor``).
    A rotated grid (``b`` or ``d`` non-zero) has no such mirror: (False, False). Nor has the identity transform
    of a raster without georeferencing (``--pixel-grid``): its rows run down the picture as stored, though
    ``e = +1`` reads as south up (a Vaihingen tile was predicted upside down).
    """
    if transform.b or transform.d or transform.is_identity:
        return False, False
    return transform.e > 0, transform.a < 0


def layer_in_grid_crs(layer: Any, crs: Any, transform: Affine, width: int, height: int) -> Any:
    """GeoDataFrame ``layer`` in the grid's ``crs``; on a grid in degrees, on the grid's side of the globe.

    A scene across the antimeridian keeps longitudes above 180 (GDAL's way); an RFC 7946 layer of it is cut at
    180 and its eastern pieces hold -179.99: burnt 360 degrees away, every pixel east of 180 was background
    (tile) or unscored (evaluate), with exit 0. See :func:`_on_the_grids_side`.
    """
    import shapely
    from pyproj import CRS as ProjCRS

    if layer.crs != crs and same_crs(layer.crs, crs):  # a compound CRS's vertical datum moves no feature
        layer = layer.set_crs(crs, allow_override=True)
    if len(layer) == 0:
        return layer.to_crs(crs) if layer.crs != crs else layer
    x0, _, x1, _ = layer.total_bounds
    in_degrees = layer.crs is not None and layer.crs.is_geographic
    # RFC 7946's pieces of one polygon, either side of 180, meet again on the grid: parts sharing an edge,
    # which shapely calls invalid ('repaired', said as if the file were at fault); they are joined back here
    cut = in_degrees and x0 <= -179.999 and x1 >= 179.999
    before = shapely.is_valid(layer.geometry.to_numpy()) if cut else None
    geographic = ProjCRS.from_user_input(crs).is_geographic
    if layer.crs != crs:  # only the features over the scene, with edges short enough to bend as the CRS does
        layer = _near_the_scene(layer, crs, transform, width, height)
    folded = geographic and layer.crs != crs
    if folded:  # short edges, so that the path of each ring can be followed in degrees (see _on_the_grids_side)
        step = 1.0 if in_degrees else FOLD_STEP_M / metres_per_unit(layer.crs)
        layer = layer.set_geometry(shapely.segmentize(layer.geometry.to_numpy(), step))
    out = layer.to_crs(crs) if layer.crs != crs else layer
    if geographic:
        left, right = sorted([(transform * (0, 0))[0], (transform * (width, height))[0]])
        out = _on_the_grids_side(out, (left, right), folded)
    if before is not None:
        geoms = out.geometry.to_numpy()
        rejoin = before & ~shapely.is_valid(geoms)
        if rejoin.any():
            geoms = geoms.copy()
            geoms[rejoin] = [shapely.union_all(shapely.get_parts(g)) for g in geoms[rejoin]]
            out = out.set_geometry(geoms)
    return out


def _near_the_scene(layer: Any, crs: Any, transform: Affine, width: int, height: int) -> Any:
    """``layer`` (in its own CRS) cut to the scene's footprint plus a margin, taken into the layer's CRS, and its
    edges there cut short (:func:`densify_step`); a feature missing the footprint is left empty, in its row.

    Reprojected vertex by vertex, a long edge stays straight in the new CRS while the line it stood for bends:
    a region polygon in degrees (lon 0..18) containing a UTM scene was burnt as missing it (its 18-degree
    southern edge cut the scene). Cut to the scene first, a world-wide polygon is a few edges there. Where the
    footprint cannot be drawn in the layer's CRS (a scene round a pole, outside the CRS's area), the layer is
    returned whole, as before.
    """
    import shapely

    region = _scene_in_layer_crs(layer.crs, crs, transform, width, height)
    if region is None:
        return layer
    geoms = layer.geometry.to_numpy()
    shapely.prepare(region)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    meets = present & shapely.intersects(region, geoms)
    inside = meets & shapely.contains_properly(region, geoms)
    out = geoms.copy()
    cut = meets & ~inside
    if cut.any():
        out[cut] = shapely.intersection(geoms[cut], region)
    out[present & ~meets] = shapely.Polygon()
    step = densify_step(layer.crs, crs, transform, width, height)
    out[meets] = shapely.segmentize(out[meets], step)
    return layer.set_geometry(out)


def densify_step(layer_crs: Any, crs: Any, transform: Affine, width: int, height: int) -> float:
    """The longest edge (in ``layer_crs`` units) that, taken to ``crs`` by its ends, lies within
    :data:`BEND_PX` of a pixel of the grid of the line it stands for.

    A line bends between CRSs by about its length squared times the curvature over 8; the curvature is taken
    as :data:`BEND_CURVATURE` over the Earth's radius (a parallel's is tan(latitude) / R: 16 up to 86 degrees).
    """
    _, metres = _bend_step_m(crs, transform, width, height)
    if layer_crs.is_geographic:
        return metres / METRES_PER_DEGREE
    return metres / metres_per_unit(layer_crs)


def _bend_step_m(crs: Any, transform: Affine, width: int, height: int) -> tuple[float, float]:
    """(the grid's pixel, the longest edge of :func:`densify_step`), in metres."""
    from rsmamba.raster.ground import pixel_size_m

    pixel = pixel_size_m(crs, transform, width, height) or 1.0
    return pixel, min(FOLD_STEP_M, math.sqrt(8 * BEND_PX * pixel * EARTH_RADIUS_M / BEND_CURVATURE))


BEND_PX = 0.05  # the most a cut edge may stray from the line it stands for, in pixels
BEND_CURVATURE = 16.0  # times 1 / EARTH_RADIUS_M: how sharply a straight line of one CRS bends in another
EARTH_RADIUS_M = 6_371_000.0
METRES_PER_DEGREE = 111_320.0  # along a meridian, about; along a parallel a degree is shorter (a shorter edge)
SCENE_MARGIN_PX = 16  # the footprint the features are cut to reaches this far (and 2 %) past the scene's edges


def _scene_in_layer_crs(layer_crs: Any, crs: Any, transform: Affine, width: int, height: int) -> Any:
    """The scene's footprint, widened by :data:`SCENE_MARGIN_PX` and 2 %, as an area of ``layer_crs``; in degrees with
    its copies a turn either side (a layer may write a place at -179 or at 181). None where it cannot be drawn
    there: a point of it PROJ cannot take, or an area that misses points of the scene (a ring round a pole)."""
    import shapely
    import shapely.affinity
    from pyproj import CRS as ProjCRS
    from pyproj import Transformer

    if layer_crs is None or crs is None:
        return None
    margin = SCENE_MARGIN_PX + 0.02 * max(width, height)
    wide = transform * Affine.translation(-margin, -margin)
    grid_crs = ProjCRS.from_user_input(crs)
    pixel_m, step_m = _bend_step_m(crs, transform, width, height)
    # the ring's edges no longer than the layer's will be: the cut follows the scene's edges as closely
    steps = int(min(4096, max(16, math.ceil((max(width, height) + 2 * margin) * pixel_m / step_m))))
    ring = np.asarray(footprint(int(round(width + 2 * margin)), int(round(height + 2 * margin)), wide, steps))
    lattice = np.asarray([transform * (c, r) for c in np.linspace(0, width, 9) for r in np.linspace(0, height, 9)])
    if grid_crs.is_geographic:
        ring[:, 1] = np.clip(ring[:, 1], -90.0, 90.0)
    try:
        move = Transformer.from_crs(grid_crs, layer_crs, always_xy=True)
        x, y = move.transform(ring[:, 0], ring[:, 1], errcheck=True)
        px, py = move.transform(lattice[:, 0], lattice[:, 1], errcheck=True)
    except Exception:  # noqa: BLE001 - PROJ's refusal of a point: no footprint there
        return None
    x, y, px, py = (np.asarray(v, float) for v in (x, y, px, py))
    if not all(np.isfinite(v).all() for v in (x, y, px, py)):
        return None
    area = shapely.Polygon(np.c_[x, y])
    if layer_crs.is_geographic:  # followed vertex to vertex across 180, as the grid's ring is continuous
        area = unwrap_longitudes(np.array([area], dtype=object), False)[0]
        area = shapely.union_all([shapely.affinity.translate(area, xoff=turn) for turn in (-360.0, 0.0, 360.0)])
    area = shapely.make_valid(area)
    points = shapely.points(np.c_[px, py])
    if layer_crs.is_geographic:
        points = np.concatenate([points, shapely.points(np.c_[px + 360.0, py]), shapely.points(np.c_[px - 360.0, py])])
        inside = shapely.covers(area, points).reshape(3, -1).any(axis=0)
    else:
        inside = shapely.covers(area, points)
    if area.is_empty or not inside.all():
        return None
    return area


# Edges of a label layer from another CRS are cut to this length (in metres; a degree for a layer in degrees)
# before it is taken to a grid in degrees: consecutive vertices then lie well within 180 degrees of each
# other, except within a few kilometres of a pole, so each ring's path can be followed across 180.
FOLD_STEP_M = 10_000.0


def _simple_parts(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every non-empty single part of ``geoms`` and the index of the geometry it belongs to, at any depth
    (a GeometryCollection holding a MultiPolygon: its polygons; one level deep it was moved as one piece)."""
    import shapely

    parts, owner = shapely.get_parts(geoms, return_index=True)
    while True:
        multi = shapely.get_type_id(parts) >= 4  # Multi* and GeometryCollection
        if not multi.any():
            break
        sub, index = shapely.get_parts(parts[multi], return_index=True)
        parts, owner = np.concatenate([parts[~multi], sub]), np.concatenate([owner[~multi], owner[multi][index]])
    keep = ~shapely.is_empty(parts)
    return parts[keep], owner[keep]


def unwrap_longitudes(parts: np.ndarray, z: bool) -> np.ndarray:
    """``parts`` (folded into -180..180 by PROJ) with each ring and line followed vertex to vertex across 180:
    no step between neighbours of more than 180 degrees. A ring whose path goes once round the globe holds a
    pole: it is closed through that pole (a polar cap from EPSG:3031 is lon 0..360 down to -90)."""
    import shapely
    import shapely.affinity

    poly = shapely.get_type_id(parts) == 3
    n_paths = np.where(poly, shapely.get_num_interior_rings(parts) + 1, 1)
    counts = np.empty(int(n_paths.sum()), np.int64)
    ring_path = np.repeat(poly, n_paths)
    if poly.any():
        counts[ring_path] = shapely.get_num_coordinates(shapely.get_rings(parts[poly]))
    counts[~ring_path] = shapely.get_num_coordinates(parts[~poly])
    coords = shapely.get_coordinates(parts, include_z=z)
    path = np.repeat(np.arange(len(counts)), counts)
    lon = coords[:, 0]
    jump = np.zeros(len(lon))
    same = path[1:] == path[:-1]
    jump[1:] = np.where(same, -360.0 * np.round(np.diff(lon) / 360.0), 0.0)
    total = np.cumsum(jump)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    base = np.zeros(len(counts))
    base[counts > 0] = total[first[counts > 0]]
    lon = lon + total - np.repeat(base, counts)
    last = first + counts - 1
    advance = np.zeros(len(counts))
    ok = counts > 1
    advance[ok] = lon[last[ok]] - lon[first[ok]]
    # holes (and a part's later rings) by whole turns beside their shell
    mid = np.zeros(len(counts))
    if len(lon):
        low, high = np.full(len(counts), np.inf), np.full(len(counts), -np.inf)
        np.minimum.at(low, path, lon)
        np.maximum.at(high, path, lon)
        mid = np.where(counts > 0, (low + high) / 2, 0.0)
    shell = np.repeat(np.concatenate([[0], np.cumsum(n_paths)[:-1]]), n_paths)
    lon = lon + np.repeat(360.0 * np.round((mid[shell] - mid) / 360.0), counts)
    coords = coords.copy()
    coords[:, 0] = lon
    round_pole = ring_path & (np.abs(advance) > 180)
    closed = coords.copy()  # (the rings round a pole are rebuilt below; closed for now, to set the rest)
    closed[last[round_pole], 0] = closed[first[round_pole], 0]
    out = shapely.set_coordinates(parts.copy(), closed)
    polar = np.unique(np.repeat(np.arange(len(parts)), n_paths)[round_pole])
    starts = np.concatenate([[0], np.cumsum(n_paths)])
    for k in polar:  # rare: rebuilt ring by ring, each ring an area of its own, the holes cut out of the shell
        areas = []
        for r in range(int(starts[k]), int(starts[k + 1])):
            xy = coords[first[r]:last[r] + 1]
            if abs(advance[r]) > 180:
                pole = 90.0 if np.mean(xy[:, 1]) > 0 else -90.0
                xy = np.vstack([xy, [[xy[-1, 0], pole, *xy[-1, 2:]], [xy[0, 0], pole, *xy[0, 2:]]], xy[:1]])
            areas.append(shapely.make_valid(shapely.Polygon(xy)))
        shell, holes = areas[0], areas[1:]
        if holes:  # a hole round the pole too (an annulus: made a cap of it, it filled the shell's hole), and each
            # hole with its copies a turn either way (a lake across the cap's first longitude was half filled)
            cut = shapely.union_all([shapely.affinity.translate(h, xoff=turn) for h in holes for turn in (-360, 0, 360)])
            shell = shell.difference(cut)
        out[k] = shell
    return out


def _on_the_grids_side(layer: Any, span: tuple[float, float], folded: bool = False) -> Any:
    """``layer`` (in degrees) with each part of each feature shifted by whole turns to lie nearest the grid's
    longitudes ``span``, plus its copy a turn away where that meets the grid too (a feature across the edge of a
    scene 360 degrees wide, a band round the globe over a scene across 180); the parts of a feature that meet
    again (RFC 7946's pieces either side of 180) are joined.

    A layer drawn in degrees is taken as drawn: a box from -100 to 100 is that box (made 'continuous' across 180
    it became 100..260), and a part far away in longitude stays far away (each vertex wrapped on its own made a
    box at lon -170..-160 a 350-degree band over a scene at lon 15). ``folded``: the layer came from another
    CRS, whose transform to degrees folds each vertex into -180..180, so a feature across 180 (UTM 60N, or a layer
    in WGS 84 above 180 for a NAD83 scene) came back the long way round the globe and was burnt inside out; each
    ring is first followed vertex to vertex (its edges were cut short before the transform), and one round a pole
    is closed through it. A layer needing none of this is returned untouched."""
    import shapely

    geoms = layer.geometry.to_numpy()
    bounds = shapely.bounds(geoms)
    left, right = span
    centre = (left + right) / 2
    if not folded and np.nanmin(bounds[:, 0]) >= max(centre - 180, right - 360) \
            and np.nanmax(bounds[:, 2]) <= min(centre + 180, left + 360):
        return layer  # every part on the grid's side, and no copy a turn away can meet the grid
    parts, owner = _simple_parts(geoms)
    if not len(parts):
        return layer
    z = bool(shapely.has_z(parts).any())  # a layer of 3-D polygons keeps its heights
    moved = unwrap_longitudes(parts, z) if folded else parts.copy()
    box = shapely.bounds(moved)
    turns = np.round((centre - (box[:, 0] + box[:, 2]) / 2) / 360)
    turns[~np.isfinite(turns)] = 0
    def turned(geom: Any, degrees: float) -> Any:
        offset = np.array([degrees, 0.0, 0.0][:3 if z else 2])
        return shapely.transform(geom, lambda xy: xy + offset, include_z=z)

    changed = turns != 0
    for k in np.flatnonzero(changed):
        moved[k] = turned(moved[k], 360.0 * turns[k])
    box[:, [0, 2]] += 360.0 * turns[:, None]
    for step in (-360.0, 360.0):  # the copy a turn away, where it meets the grid too
        meets = (box[:, 0] + step < right) & (box[:, 2] + step > left)
        for k in np.flatnonzero(meets):
            moved[k] = shapely.union(moved[k], turned(moved[k], step))
        changed |= meets
    if folded:
        changed |= ~shapely.equals_exact(moved, parts, tolerance=0.0)
    out = geoms.copy()
    for feature in np.unique(owner[changed]):
        mine = moved[owner == feature]
        if len(mine) == 1:
            out[feature] = mine[0]
        elif all(g.geom_type in ("Polygon", "MultiPolygon") for g in mine):
            out[feature] = shapely.union_all(mine)  # pieces cut at 180, side by side again: one polygon
        else:
            out[feature] = shapely.GeometryCollection(list(shapely.get_parts(mine)))
    return layer.set_geometry(out)


def repaired_areas(geoms: Any) -> tuple[Any, int]:
    """A layer's geometries with its invalid polygons made valid (GEOS's structure method: a ring traced twice
    is its area, a bowtie its two triangles), and how many there were. Burnt as they were, a doubled ring
    burnt nothing: a labelled building trained as background.

    A GeometryCollection is taken apart first, its empty members dropped (rasterio skipped a collection holding
    one, POINT EMPTY beside a polygon, whole): one of areas only becomes a MultiPolygon, an area as any other."""
    import shapely

    collection = (geoms.geom_type == "GeometryCollection").to_numpy()
    if collection.any():
        geoms = geoms.copy()
        for i in np.flatnonzero(collection):
            parts = _simple_parts(np.array([geoms.iloc[i]], dtype=object))[0]
            areas = [p for p in parts if p.geom_type == "Polygon"]
            geoms.iloc[i] = (shapely.MultiPolygon(areas) if len(areas) == len(parts) and areas else
                             shapely.GeometryCollection(list(parts)))
    bad = geoms.geom_type.isin(["Polygon", "MultiPolygon"]) & ~geoms.is_valid
    if not bad.any():
        return geoms, 0
    geoms = geoms.copy()
    geoms[bad] = shapely.make_valid(geoms[bad].to_numpy(), method="structure", keep_collapsed=False)
    return geoms, int(bad.sum())


def overlapping_pairs(geoms: Any, min_area: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (i < j) of a layer's polygons that share ``min_area`` or more (a pixel: neighbours that touch,
    or regularised ones a sliver apart, are no overlap), and the area each shares. Burnt in the layer's order,
    each pixel of such a pair is the later polygon's: what the earlier one was there is lost."""
    import shapely

    arr = np.asarray(geoms)
    if len(arr) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    a, b = shapely.STRtree(arr).query(arr, predicate="intersects")
    a, b = a[a < b], b[a < b]
    shared = shapely.area(shapely.intersection(arr[a], arr[b])) if len(a) else np.zeros(0)
    big = shared >= min_area
    return a[big], b[big], shared[big]


def class_ids_of_names(values: Any, names: dict[str, int]) -> tuple[Any, list[str]]:
    """A text class field (building, road, ...) as the class ids of ``names`` (case and spaces aside), and
    the names none of them is; numbers stored as text ("1") pass as they are."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) or values.isna().any():
        return values, []
    first: dict[str, tuple[str, int]] = {}
    for k, v in names.items():  # a received raster's table may hold 'Building' 1 and 'building' 2: the last won
        other, i = first.setdefault(name_key(k), (k, v))
        if i != v:
            raise InputError(f"the class table names {other!r} (id {i}) and {k!r} (id {v}), one name as a class "
                             "field is matched (case, spaces and separators aside); rename one")
    by_name = {key: v for key, (_, v) in first.items()}
    text = values.astype(str).str.strip()
    mapped = text.map(name_key).map(by_name)
    numeric = pd.to_numeric(text, errors="coerce")
    mapped = mapped.where(mapped.notna(), numeric)
    unknown = sorted(set(text[mapped.isna()]))
    return (mapped if not unknown else values), unknown


def class_field_problem(values: Any, where: str, class_field: str) -> str | None:
    """Why a vector layer's class field cannot be burnt as class ids (strings, nulls, fractions,
    ids outside 0..254), or None: truncated, 1.5 would become class 1; 300 or -1 would wrap."""
    import pandas as pd

    nulls = values.isna()
    if nulls.any():  # the field may well be integers: the empty values are the problem
        first = ", ".join(str(i) for i in values.index[nulls][:5])
        return (f"{where}: class field {class_field!r} is empty (NULL) in {int(nulls.sum())} feature"
                f"{'s' * (int(nulls.sum()) != 1)} (row {first}{' ...' if nulls.sum() > 5 else ''}); give each a class id")
    if (not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
            or (np.mod(values, 1) != 0).any()):
        found = ", ".join(map(str, list(dict.fromkeys(values.astype(str)))[:5]))
        return (f"{where}: class field {class_field!r} must hold integer class ids or the class table's names "
                f"(it holds {found}{', ...' if values.nunique() > 5 else ''})")
    if len(values) and (values.min() < 0 or values.max() >= IGNORE_INDEX):
        return f"{where}: class ids must be in 0..{IGNORE_INDEX - 1} (found {values.min():g}..{values.max():g})"
    return None


THIN_PX = 0.75  # area over perimeter (in pixels) below which a polygon may hold no pixel centre; above it a
# convex one holds a disc wider than a pixel's diagonal
THIN_CHECK_PX = 4_000_000  # a thin polygon's box larger than this many pixels is taken to burn some
THIN_BATCH_PX = 1_000_000  # pixel centres tested at once


def _burning_no_pixel(geoms: np.ndarray, values: np.ndarray, transform: Affine, width: int,
                      height: int) -> dict[int, int]:
    """How many areas over the grid burn no pixel, per class id: a pixel takes a polygon's class where its centre
    lies inside, so a strip 0.4 px wide or a car of 0.8 px left nothing of its class, unsaid. Only polygons thin
    for their size (:data:`THIN_PX`) are tested, against the pixel centres of their boxes; no-label features
    (255) are left out."""
    import shapely

    areas = np.isin(shapely.get_type_id(geoms), (3, 6)) & (values != IGNORE_INDEX)
    side = math.sqrt(abs(transform.determinant))
    thin = areas & (shapely.area(geoms) < THIN_PX * side * shapely.length(geoms))
    if not thin.any():
        return {}
    scene = shapely.Polygon(footprint(width, height, transform, steps=1))
    thin &= shapely.intersects(scene, geoms) & ~shapely.touches(scene, geoms)
    index = np.flatnonzero(thin)
    x0, y0, x1, y1 = shapely.bounds(geoms[index]).T
    inverse = ~transform
    corners = [inverse * (x, y) for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))]
    cols, rows = np.array([c for c, _ in corners]), np.array([r for _, r in corners])
    c0, c1 = np.maximum(0, np.floor(cols.min(0))), np.minimum(width, np.ceil(cols.max(0)))
    r0, r1 = np.maximum(0, np.floor(rows.min(0))), np.minimum(height, np.ceil(rows.max(0)))
    n_px = (np.maximum(c1 - c0, 0) * np.maximum(r1 - r0, 0)).astype(np.int64)
    burns = n_px > THIN_CHECK_PX  # (taken to burn some)
    todo = np.flatnonzero((n_px > 0) & ~burns)
    part = np.cumsum(n_px[todo]) // THIN_BATCH_PX
    for k in np.unique(part):  # batches of pixel centres, each paired with its polygon
        batch = todo[part == k]
        owner = np.repeat(np.arange(len(batch)), n_px[batch])
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(n_px[batch]) - n_px[batch], n_px[batch])
        w = (c1 - c0)[batch][owner]
        col, row = c0[batch][owner] + offset % w + 0.5, r0[batch][owner] + offset // w + 0.5
        x, y = transform * (col, row)
        hit = shapely.intersects_xy(geoms[index[batch]][owner], x, y)
        burns[batch] |= np.bincount(owner, weights=hit, minlength=len(batch)) > 0
    found: dict[int, int] = {}
    for value in values[index[~burns]]:
        found[int(value)] = found.get(int(value), 0) + 1
    return found


def _features_over(geoms: np.ndarray, width: int, height: int, transform: Affine) -> bool:
    """Whether any of ``geoms`` (in the grid's CRS) reaches inside the grid's footprint (touching its edge burns
    nothing)."""
    import shapely

    scene = shapely.Polygon(footprint(width, height, transform, steps=1))
    return bool((shapely.intersects(scene, geoms) & ~shapely.touches(scene, geoms)).any())


class _VectorLabels:
    """A label vector layer in the image CRS, rasterised per window through a spatial index."""

    def __init__(self, path: Path, class_field: str, image: Any, background: int, problems: ProblemCollector,
                 burn: int | None = None, layer: str | None = None, role: str = "labels",
                 class_names: dict[str, int] | None = None, ignore: int | None = None):
        """``ignore``: the class table's no-label value; a feature holding it is burnt as no label (255), as a
        label raster's pixels holding it are read (it was refused as 'class id 3 not in the class table')."""
        import pandas as pd

        from rsmamba.paths import read_vector, vector_path_problem

        crs = image.crs
        self.background = background
        self.ok = False
        problem = vector_path_problem(path, role)
        if problem:
            problems.add(problem)
            return
        try:
            option = {"labels": "--labels-layer", "labels-t2": "--labels-t2-layer", "change labels": "--change-labels-layer"}
            gdf = read_vector(path, layer, role, choose=f"{option[role]} NAME" if role in option else "",
                              near=(raster_extent(image.width, image.height, image.transform), crs)
                              if crs is not None else None)
        except InputError as exc:
            problems.add(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any reader error is an input problem
            problems.add(f"{role} {path}: not a readable vector layer ({str(exc).splitlines()[0]})")
            return
        if burn is not None:  # every polygon one class: no field needed
            gdf = gdf.assign(**{"__burn__": np.full(len(gdf), burn, np.int32)})
            class_field = "__burn__"
        if class_field not in gdf.columns:
            fields = ", ".join(c for c in gdf.columns if c != "geometry") or "none"
            problems.add(f"{role} {path}: no class field {class_field!r} (fields: {fields}); use --class-field")
            return
        if gdf.crs is None:
            problems.add(f"{role} {path}: vector layer has no CRS")
            return
        gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
        if len(gdf) == 0:  # every chip would be pure background: training data that teaches nothing true
            problems.add(f"{role} {path}: the layer has no features with a geometry; "
                         "label some polygons (or pass a raster) before tiling")
            return
        if class_names is not None:  # a survey layer's class names (building, road): the class table's ids
            ids, unknown = class_ids_of_names(gdf[class_field], class_names)
            if unknown:
                problems.add(f"{role} {path}: class field {class_field!r} holds names no class of the class table has "
                             f"({', '.join(repr(str(u)) for u in unknown[:8])}{', ...' if len(unknown) > 8 else ''}; "
                             "the table: "
                             f"{', '.join(class_names)}); add them to --class-table, or recode those features")
                return
            gdf = gdf.assign(**{class_field: ids})
        values = gdf[class_field]
        if ignore is not None and burn is None and pd.api.types.is_numeric_dtype(values) \
                and not pd.api.types.is_bool_dtype(values):
            unlabelled = values == ignore
            gdf = gdf.assign(**{class_field: values.where(~unlabelled, IGNORE_INDEX)})
            values = gdf[class_field][~unlabelled]
        problem = class_field_problem(values, f"{role} {path}", class_field)
        if problem:
            problems.add(problem)
            return
        geoms, self.repaired = repaired_areas(gdf.geometry)
        gdf = gdf.set_geometry(geoms)
        kinds = gdf.geom_type
        lines_points = kinds[~kinds.isin(["Polygon", "MultiPolygon"])]  # burnt as GDAL does, and said
        # (a collection left as one holds lines or points beside its areas, which burn as areas)
        self.not_areas = (len(lines_points), sorted({"lines or points in a GeometryCollection"
                                                     if k == "GeometryCollection" else k for k in lines_points}))
        if gdf.crs.is_geographic and len(gdf):
            x0, y0, x1, y1 = gdf.total_bounds
            # up to 360: a scene across the antimeridian is written with longitudes above 180 (GDAL's way)
            if x0 < -360 or x1 > 360 or y1 > 90 or y0 < -90:
                problems.add(f"{role} {path}: coordinates up to {max(abs(x0), abs(x1)):.0f} cannot be degrees of "
                             f"its CRS {gdf.crs.to_string()} (a GeoJSON without CRS is read as WGS84); set its CRS")
                return
        self.reprojected = not same_crs(gdf.crs, crs)  # (a compound CRS's vertical datum moves no feature)
        self.gdf = layer_in_grid_crs(gdf, crs, image.transform, image.width, image.height)
        left, bottom, right, top = raster_extent(image.width, image.height, image.transform)
        if not _features_over(self.gdf.geometry.to_numpy(), image.width, image.height, image.transform):
            # every chip would be pure background, with exit 0: a shifted or mislabelled CRS, or a layer of
            # features round the scene whose bounds span it (its bounds were compared, not its features)
            x0, y0, x1, y1 = self.gdf.total_bounds
            if not np.isfinite([x0, y0, x1, y1]).all():  # cut to the scene, nothing was left: the layer's own box
                from rasterio.warp import transform_bounds

                x0, y0, x1, y1 = transform_bounds(gdf.crs, crs, *gdf.total_bounds)
            n = 6 if CRS.from_user_input(crs).is_geographic else 1  # degrees: a scene at 0.1 printed as a point
            problems.add(f"{role} {path}: does not overlap the image (no feature reaches inside it; layer bounds {x0:.{n}f}, {y0:.{n}f}, {x1:.{n}f}, "
                         f"{y1:.{n}f} in the image CRS; image {left:.{n}f}, {bottom:.{n}f}, {right:.{n}f}, {top:.{n}f}); "
                         "check the layer's CRS")
            return
        self.values = self.gdf[class_field].to_numpy().astype(np.int32)
        a, b, _ = overlapping_pairs(self.gdf.geometry.to_numpy(), abs(image.transform.determinant))
        other = self.values[a] != self.values[b]  # one class over another: the later one's, by the layer's order
        self.overlaps = len(np.unique(np.r_[a[other], b[other]]))
        self.sindex = self.gdf.sindex
        self.outside = self._outside_share(image)
        self.unburnt = _burning_no_pixel(self.gdf.geometry.to_numpy(), self.values, image.transform, image.width,
                                         image.height)
        self.ok = True

    def _outside_share(self, image: Any, cells: int = 512) -> float:
        """Share of the image's valid pixels outside every feature (labelled the background), on a coarse
        lattice of at most ``cells`` x ``cells`` points: a layer of buildings and trees made 78 % of its chips
        the background class unsaid. Only the features over the image are drawn; a nodata collar is no ground."""
        from rasterio.enums import MaskFlags
        from rasterio.features import rasterize
        from shapely.geometry import box

        step = max(1, -(-max(image.width, image.height) // cells))
        shape = (-(-image.height // step), -(-image.width // step))
        near = np.sort(self.sindex.query(box(*raster_extent(image.width, image.height, image.transform))))
        hit = np.zeros(shape, np.uint8)
        geoms = self.gdf.geometry.to_numpy()
        # burnt a batch at a time into one array (each burns 1: the same lattice); 100,000 polygons burnt in one
        # call were held as as many OGR geometries at once
        for start in range(0, len(near), OUTSIDE_BATCH):
            rasterize(((g, 1) for g in geoms[near[start:start + OUTSIDE_BATCH]]), out=hit,
                      transform=image.transform * Affine.scale(step))
        if all(list(flags) == [MaskFlags.all_valid] for flags in image.mask_flag_enums):
            valid = np.ones(shape, bool)  # what the mask holds; reading it read the whole mosaic's pixels
        else:
            valid = image.dataset_mask(out_shape=shape) > 0
        return float((valid & (hit == 0)).sum() / max(int(valid.sum()), 1))

    def read(self, window: Window, transform: Any) -> np.ndarray:
        from rasterio.features import rasterize
        from shapely.geometry import box

        shape = (int(window.height), int(window.width))
        hits = self.sindex.query(box(*window_extent(window, transform)))
        if len(hits) == 0:
            return np.full(shape, self.background, dtype=np.uint8)
        hits.sort()  # later features drawn on top, as in the file's order
        geoms = self.gdf.geometry.to_numpy()[hits]
        return rasterize(
            zip(geoms, self.values[hits]), out_shape=shape, transform=window_transform(window, transform),
            fill=self.background, dtype="uint8",
        )




ALPHA_AS_DATA_SHARE = 0.5  # share of a flagged alpha band's sampled values neither 0 nor full: imagery


def alpha_holding_data(ds: Any) -> int | None:
    """The band GDAL flags as alpha when it holds imagery, else None.

    GDAL marks the 4th band of a 4-band Byte GeoTIFF written with its defaults as alpha, so an RGB +
    NIR ortho saved that way has its NIR band flagged alpha: read as the mask, every pixel with NIR 0
    (water) would become nodata and the NIR band would be left out. A true alpha holds transparent (0)
    and opaque (the dtype's maximum), with at most feathered seams between them; a band whose sampled
    values are mostly neither is imagery.
    """
    interp = ds.colorinterp  # one access: it is rebuilt for every band on each
    alpha = [b for b in range(1, ds.count + 1) if interp[b - 1] == ColorInterp.alpha]
    if not alpha or not np.issubdtype(np.dtype(ds.dtypes[alpha[0] - 1]), np.integer):
        return None
    full = np.iinfo(np.dtype(ds.dtypes[alpha[0] - 1])).max
    values = np.concatenate([ds.read(alpha[0], window=w).ravel() for w in sample_windows(ds.width, ds.height, 1 << 18, min_per_axis=CHECK_PER_AXIS)])
    between = np.count_nonzero((values != 0) & (values != full))
    return alpha[0] if between > ALPHA_AS_DATA_SHARE * values.size else None


RGB = ("red", "green", "blue")


def band_colours(ds: Any) -> list[str]:
    """GDAL's colour interpretation of every band, by name (``red``, ``blue``, ``gray``, ``undefined``, ...)."""
    return [c.name for c in ds.colorinterp]


US_SURVEY_FOOT = 1200 / 3937  # metres, exactly: the US survey foot's definition
# Heights' units as files spell them (GDAL's band unit type: "ft", "Foot_US", "us-ft", "cm"), in lower case with
# "_" and "-" as spaces -> metres per unit. A unit not here is refused, not read as metres: heights in
# centimetres made tile's DSM chips 100 times too tall, recorded as metres, unsaid.
HEIGHT_UNITS = {
    **dict.fromkeys(("m", "metre", "meter", "metres", "meters", "mètre", "mètres", "metro", "metros"), 1.0),
    **dict.fromkeys(("mm", "millimetre", "millimeter", "millimetres", "millimeters"), 0.001),
    **dict.fromkeys(("cm", "centimetre", "centimeter", "centimetres", "centimeters"), 0.01),
    **dict.fromkeys(("dm", "decimetre", "decimeter", "decimetres", "decimeters"), 0.1),
    **dict.fromkeys(("km", "kilometre", "kilometer", "kilometres", "kilometers"), 1000.0),
    **dict.fromkeys(("ft", "foot", "feet", "international foot", "international feet"), 0.3048),
    **dict.fromkeys(("us ft", "ftus", "ft us", "foot us", "feet us", "us foot", "us feet", "us survey foot",
                     "us survey feet", "survey foot", "survey feet"), US_SURVEY_FOOT),
}


# unit types that declare no unit (software writes them for "not set")
UNDECLARED_UNITS = frozenset({"unknown", "none", "n/a", "na", "undefined", "not specified", "unspecified", "null"})
# words before a unit that name the quantity, not another unit ("Height (m)", "linear_meter")
QUANTITY_WORDS = frozenset({"height", "heights", "elevation", "elevations", "altitude", "z", "h", "linear",
                            "vertical", "unit", "units", "in"})
# one-word spellings of a unit and its datum ("masl", "mAHD")
JOINED_UNITS = {"masl": 1.0, "mamsl": 1.0, "mahd": 1.0, "mnn": 1.0, "mnhn": 1.0, "mnap": 1.0, "mod": 1.0,
                "maod": 1.0}


def _metres_per(unit: str) -> float | None:
    """Metres per ``unit`` (a band's unit type), or None for a unit rsmamba does not convert.

    A known unit after words of the quantity ("Height (m)") and before any other words is that unit: what
    follows a unit is its datum or a note ("m EVRF2007", "m (WGS84 ellipsoid)", "metre."), except "US" or
    "survey" after feet (the US survey foot). A compound unit ("m/s", "km2") is none of these."""
    text = unit.lower().replace("u.s.", "us")
    first = text.split()[0] if text.split() else ""
    if any(c in text for c in "/^²³*") or any(c.isdigit() for c in first) \
            or re.search(r"[-⁻]\s*[123¹²³](?![0-9])|(^|\W)per(\W|$)", text):  # 'm s-1', 'm per s': rates
        return None
    words = "".join(c if c.isalnum() else " " for c in text).split()
    start = 0
    while start < len(words) and words[start] in QUANTITY_WORDS:
        start += 1
    if start == len(words):
        return None
    if start == len(words) - 1 and words[start] in JOINED_UNITS:
        return JOINED_UNITS[words[start]]
    for n in range(min(len(words), start + 4), start, -1):  # the longest known unit from there
        factor = HEIGHT_UNITS.get(" ".join(words[start:n]))
        if factor is not None:
            if factor == 0.3048 and {"us", "survey"} & set(words[n:]):
                return US_SURVEY_FOOT
            return factor
    return None


HEIGHT_WORDS = ("height", "elevation", "elev", "dsm", "dem", "ndsm", "z", "altitude", "hoehe", "höhe")


def height_band(ds: Any) -> int:
    """The 1-based band of a DSM's heights: band 1, or in a raster of several the one whose description names
    heights (a gridded point cloud's ``point_count`` band 1 beside its ``height`` band 2 was read as heights)."""
    if ds.count == 1:
        return 1
    words = [(d or "").strip().lower() for d in ds.descriptions]
    named = [i + 1 for i, d in enumerate(words) if d in HEIGHT_WORDS or any(w in d.split() for w in HEIGHT_WORDS[:3])]
    return named[0] if len(named) == 1 else 1


def vertical_unit(ds: Any) -> tuple[float | None, str] | None:
    """(metres per unit, the unit's name) of the heights of ``ds`` (its :func:`height_band`) as the file declares them (the band's
    unit type, else a compound CRS's vertical axis); None where it declares none (heights in metres); (None, name)
    for a unit rsmamba does not convert. A DSM in feet read as metres made every building 3.28 times taller
    (building IoU 0.85 for 0.93)."""
    unit = (ds.units[height_band(ds) - 1] or "").strip() if ds.units else ""
    if unit and unit.lower().strip(" .") not in UNDECLARED_UNITS:
        return _metres_per(unit), unit
    if ds.crs is not None:
        from pyproj import CRS

        try:
            crs = CRS.from_wkt(ds.crs.to_wkt())
        except Exception:  # noqa: BLE001 - a CRS pyproj cannot read declares nothing usable here
            return None
        if crs.is_compound and len(crs.sub_crs_list) > 1 and crs.sub_crs_list[1].axis_info:
            axis = crs.sub_crs_list[1].axis_info[0]
            return float(axis.unit_conversion_factor), axis.unit_name
    return None


def _not_heights(ds: Any) -> str | None:
    """Why a raster given as a DSM is not heights, or None: band 1 indexes a colour table (a class map: tile wrote
    class ids as DSM chips, unsaid), or red, green and blue bands (an ortho: red read as heights)."""
    # indices of a colour table: an integer band declaring no scale (a float band, or one scaled to heights, may
    # carry a display ramp and still hold heights)
    if ds.colorinterp[0] == ColorInterp.palette and ds.dtypes[0] in ("uint8", "uint16") \
            and (ds.scales[0] or 1.0, ds.offsets[0] or 0.0) == (1.0, 0.0):
        return "band 1 is a palette (indices into a colour table: a class or colour map), not heights"
    if {ColorInterp.red, ColorInterp.green, ColorInterp.blue} <= set(ds.colorinterp):
        return f"its bands are red, green and blue (an image, {ds.count} bands), not heights"
    return None


NO_COLOUR = frozenset({"undefined", "gray", "grey", "alpha", "palette"})  # say nothing of which band is which


def declared_colours(colours: Sequence[str]) -> dict[str, int]:
    """{colour: 1-based band} of every colour (red, green, blue, nir, ...) exactly one band declares.

    A delivery's own statement of its band order: a BGR ortho (OpenCV pipelines) or a NIR,R,G,B one
    read by position would feed a network blue as red, and nothing would say so."""
    return {name: i + 1 for i, name in enumerate(colours) if name not in NO_COLOUR and colours.count(name) == 1}


def declared_rgb(colours: Sequence[str]) -> dict[str, int] | None:
    """{red, green, blue: 1-based band} when each is declared by exactly one band, else None."""
    found = {name: band for name, band in declared_colours(colours).items() if name in RGB}
    return found if len(found) == len(RGB) else None


def learnt_colours(model: Sequence[str] | None) -> list[str] | None:
    """A model's band colours (checkpoint ``bands.colours``) where they say which band is which, else None: a
    model of no colours, or of a MINISBLACK raster's gray, undefined, learnt its bands by position."""
    return list(model) if model and any(c not in NO_COLOUR for c in model) else None


def colour_reading(model: Sequence[str] | None, chosen: Sequence[int], colours: Sequence[str]) -> list[int] | None:
    """The bands of an image (declaring ``colours``) to feed a model that learnt bands declaring ``model``, for
    ``chosen`` read by position; None where they conflict. By colour where the image declares every colour the
    model names (its unnamed bands from what is left, in order); ``chosen`` where no band read declares a colour
    other than the model's there (gray and undefined say nothing: read by position); None for a band read as a
    colour it does not declare (an IRRG ortho's red read as green), or, by a model of no colours, red, green and
    blue declared in another order than read (only the user knows which order it learnt)."""
    wanted, declared = learnt_colours(model), declared_colours(colours)
    stored = [colours[b - 1] for b in chosen]
    if wanted is not None and len(wanted) == len(chosen):
        named = {i: declared[name] for i, name in enumerate(wanted) if name in declared}
        if all(name in NO_COLOUR or name in declared for name in wanted):
            spare = [b for b in dict.fromkeys([*chosen, *range(1, len(colours) + 1)]) if b not in named.values()]
            return [named[i] if i in named else spare.pop(0) for i in range(len(wanted))]
    if wanted is not None and len(wanted) == len(stored) and any(
            name not in NO_COLOUR and name != want for name, want in zip(stored, wanted)):
        return None
    if (wanted is None and declared_rgb(colours) and len(chosen) == len(RGB) and stored != list(RGB)
            and set(stored) & set(RGB)):
        return None
    return list(chosen)


def matched_bands(bands: Sequence[int], colours: Sequence[str], other: Sequence[str]) -> list[int] | None:
    """The bands of another raster (declaring ``other``) holding the colours that ``bands`` of this one
    (declaring ``colours``) hold; None when some band's colour is not declared once on both."""
    mine, theirs = declared_colours(colours), declared_colours(other)
    names = [colours[b - 1] for b in bands]
    if not all(n in mine and n in theirs for n in names):
        return None
    return [theirs[n] for n in names]


def data_bands(ds: Any, alpha_is_data: bool = False) -> list[int]:
    """The 1-based bands that carry imagery: all but an alpha band (GDAL's ColorInterp.alpha),
    unless ``alpha_is_data`` (:func:`alpha_holding_data`).

    An RGBA orthophoto's alpha band says where the image is; GDAL serves it as the other bands'
    mask, so reading it as a fourth colour channel would train a model on a constant (and make
    a 3-band model refuse the ortho). ``--bands`` can still name it.
    """
    if alpha_is_data:
        return list(range(1, ds.count + 1))
    interp = ds.colorinterp  # one access: it is rebuilt for every band on each
    bands = [b for b in range(1, ds.count + 1) if interp[b - 1] != ColorInterp.alpha]
    return bands or list(range(1, ds.count + 1))


class AlignedSource:
    """Image + optional DSM + optional labels, all read on the image grid.

    Use as a context manager. Raises :class:`InputError` listing every problem found with the
    inputs (missing files, no CRS, no overlap, band selection out of range, ...).
    """

    def __init__(
        self,
        image: PathLike,
        dsm: PathLike | None = None,
        labels: PathLike | None = None,
        *,
        bands: Sequence[int] | None = None,
        class_field: str = "class",
        label_background: int = 0,
        allow_geographic_mix: bool = False,
        t2: PathLike | None = None,
        burn: int | None = None,
        label_ignore: int | None = None,
        labels_layer: str | None = None,
        labels_role: str = "labels",
        t2_bands: Sequence[int] | None = None,
        class_names: dict[str, int] | None = None,
        pixel_grid: bool = False,
        image_role: str | None = None,
    ) -> None:
        self._opened: list[Any] = []
        # how messages name the image: 'image', 't1' beside a t2, or what a caller probing one date calls it
        self._image_role = image_role or ("image" if t2 is None else "t1")
        self._pixel_grid = pixel_grid  # inputs without georeferencing accepted, paired pixel by pixel
        self._lattice_roles: set[str] = set()  # inputs on the image's pixel lattice, read through a crop (no blending)
        self.warnings: list[str] = []
        self.extent_coverage: dict[str, float] = {}  # share of the image an input's extent covers, by role (said)
        self._burn, self._label_ignore, self._labels_layer = burn, label_ignore, labels_layer
        self._class_names = class_names  # a label layer's text class field: these names' ids
        self._labels_role = labels_role  # how messages name the labels: labels, labels-t2, change labels
        self.bad_label_values: set[float] = set()  # label raster values that are no class id, seen by read_labels
        # outputs of an earlier run (synth's scene, predict's rasters) that a kill left between its renames:
        # finished first, so that tile, predict and change never pair one run's image with another's labels
        settle_inputs([image, dsm, labels, t2])
        self.image_path = Path(image)
        self._dsm_path = Path(dsm) if dsm is not None else None
        self._t2_path = Path(t2) if t2 is not None else None
        try:
            with self._reading(None):  # the start-up checks read samples of each input
                self._open(image, dsm, labels, bands, class_field, label_background, allow_geographic_mix, t2,
                           t2_bands)
        except BaseException:
            self.close()
            raise

    def _open(self, image, dsm, labels, bands, class_field, label_background, allow_geographic_mix, t2,
              t2_bands) -> None:
        problems = ProblemCollector()
        pg = self._pixel_grid
        img = open_raster(image, self._image_role, problems, pg)
        t2_ds = open_raster(t2, "t2", problems, pg) if t2 is not None else None
        dsm_ds = open_raster(dsm, "DSM", problems, pg) if dsm is not None else None
        labels_path = Path(labels) if labels is not None else None
        is_vector = labels_path is not None and labels_path.suffix.lower() in VECTOR_SUFFIXES
        role = self._labels_role
        lab_ds = open_raster(labels_path, role, problems, pg) if labels_path is not None and not is_vector else None
        colours = lab_ds is not None and colour_labels_problem(
            lab_ds, f"{role} {labels_path}", "convert them to one band of class ids (rsmamba train reads the "
            "benchmark's tiles in place: data.layout {layout})")
        if colours:
            problems.add(colours)
        for what, path, ds in ((self._image_role, image, img), ("t2", t2, t2_ds)):
            if ds is not None and ds.colorinterp[0] == ColorInterp.palette:  # indices into a colour table
                problems.add(f"{what} {path}: a palette image (band 1 holds indices into a colour table, not "
                             f"colours); expand it first: gdal_translate -expand rgb {shell_word(path)} "
                             f"{shell_word(Path(path).with_name(Path(path).stem + '_rgb.tif'))}")
        if dsm_ds is not None and (problem := _not_heights(dsm_ds)):  # a class map or an ortho given as --dsm
            problems.add(f"DSM {dsm}: {problem}; pass the digital surface model (one band of heights)")
        self._opened += [d for d in (img, t2_ds, dsm_ds, lab_ds) if d is not None]
        if img is None or problems:
            problems.raise_if_any()
        assert img is not None
        self.labels_path = labels_path
        self._img = img
        self.georeferenced = not has_no_georeferencing(img)
        if not self.georeferenced:
            self._warn("inputs without georeferencing (--pixel-grid): read on their pixel grid and paired pixel "
                       "by pixel; the outputs carry no georeferencing either")
            if is_vector:
                problems.add(f"{role} {labels_path}: a vector layer cannot be placed on an image without "
                             "georeferencing; pass a label raster of the image's size")
        for what, path, ds in ((self._image_role, image, img), ("t2", t2, t2_ds), ("DSM", dsm, dsm_ds),
                               (role, labels_path, lab_ds)):
            for said in (oversized_blocks(ds, f"{what} {path}"), sidecar_georeferencing(ds, f"{what} {path}")) \
                    if ds is not None else ():
                if said:
                    self._warn(said)
        alpha = alpha_holding_data(img)
        self._alpha_is_data = alpha is not None
        if alpha is not None:
            self._warn(f"{self._image_role} {image}: band {alpha} is flagged alpha but holds imagery (GDAL's default for a "
                       "4-band Byte GeoTIFF); read as a band, not as the image's mask")
        self.bands = list(bands) if bands else data_bands(img, alpha_is_data=self._alpha_is_data)
        bad = [b for b in self.bands if not 1 <= b <= img.count]
        if bad:
            problems.add(f"{self._image_role} {image}: bands {bad} out of range (it has {img.count} band{'s' * (img.count != 1)})")

        self._t2 = None
        self._t2_alpha_is_data = False
        self._t2_bands = list(self.bands)
        if t2_ds is not None and not bad:  # bands beyond t1 are said once, above
            t1_data = data_bands(img, alpha_is_data=self._alpha_is_data)
            t2_data = data_bands(t2_ds, alpha_is_data=alpha_holding_data(t2_ds) is not None)
            # the same image bands on each date, wherever its alpha band sits (RGB t1, ARGB t2, or ARGB t1 and
            # RGB t2: t1's bands 2, 3, 4 are t2's 1, 2, 3, once 'out of range' of a t2 holding all three)
            paired = ([t2_data[t1_data.index(b)] if b in t1_data else b for b in self.bands]
                      if len(t2_data) == len(t1_data) else [])
            # dates of other band counts (an RGBN t1, an RGB t2): the bands read from t1 found in t2 by the colours
            # both declare, else refused (by position, t2's band 3 would be taken for whatever t1's is)
            by_colour = (matched_bands(self.bands, band_colours(img), band_colours(t2_ds))
                         if len(t2_data) != len(t1_data) else None)
            if by_colour is not None:
                paired = by_colour
            beyond = [b for b in paired if b > t2_ds.count]
            if (len(t2_data) != len(t1_data) and by_colour is None) or beyond:
                # an alpha band on one date only (RGB t1, RGBA t2) is a mask, not a band
                chosen = ",".join(map(str, self.bands))
                fewer = min(len(t1_data), len(t2_data))  # the advice cuts the date of more bands to the other's
                more, more_path = ("t1", image) if len(t1_data) > len(t2_data) else ("t2", t2)
                cut = " ".join(f"-b {b}" for b in range(1, fewer + 1))
                problems.add(f"t2 {t2}: {len(t2_data)} image band{'s' * (len(t2_data) != 1)}, but t1 {image} has "
                             f"{len(t1_data)}, and the bands read from t1 ({chosen}) are not found in t2 by colours "
                             f"both declare; give dates of the same bands (cut {more} to the other's: gdal_translate "
                             f"{cut} {more_path} {Path(more_path).stem}_{fewer}b.tif, with a model of "
                             f"{fewer} band{'s' * (fewer != 1)}), or declare each band's colour "
                             "(gdal_edit.py -colorinterp_1 red ...)"
                             if len(t2_data) != len(t1_data) else
                             f"t2 {t2}: bands {beyond} out of range (it has {t2_ds.count} band{'s' * (t2_ds.count != 1)})")
            else:
                self._t2 = self._align(t2_ds, Path(t2), "t2", Resampling.bilinear, allow_geographic_mix, problems)
                self._t2_alpha_is_data = self._t2 is not None and alpha_holding_data(self._t2) is not None
                self._t2_bands = paired
                # each date says its order (RGB t1, BGR t2; --bands names t1's): t2 read in t1's colours
                by_colour = matched_bands(self.bands, band_colours(img), band_colours(t2_ds))
                if t2_bands is not None:  # the caller's (a model's colour order, where t1 declares none)
                    self._t2_bands = list(t2_bands)
                elif by_colour is not None and by_colour != self._t2_bands:
                    # each date's colours as its file declares them: t1's as read (a BGR t1 read 3,2,1 for a model)
                    # said 'declare red, green, blue, another order than t1's (red, green, blue)' of an RGB t2
                    self._warn(f"t2 {t2}: its bands declare the colours {', '.join(band_colours(t2_ds))}, another "
                               f"order than t1's ({', '.join(band_colours(img))}); read "
                               f"by colour, as t1's (bands {','.join(map(str, by_colour))})")
                    self._t2_bands = by_colour
        self._dsm = self._align(dsm_ds, Path(dsm) if dsm else None, "DSM", Resampling.bilinear,
                                allow_geographic_mix, problems)
        # GDAL's band scale and offset: an int16 DSM in decimetres (scale 0.1) holds metres once unscaled
        self._dsm_band = height_band(dsm_ds) if dsm_ds is not None else 1
        self._dsm_unscale = ((float(dsm_ds.scales[self._dsm_band - 1] or 1.0),
                              float(dsm_ds.offsets[self._dsm_band - 1] or 0.0)) if dsm_ds is not None else (1.0, 0.0))
        factor, name = (vertical_unit(dsm_ds) if dsm_ds is not None else None) or (1.0, "metre")
        if factor is None:
            problems.add(f"DSM {dsm}: heights declared in {name!r}, a unit rsmamba does not convert (it reads metres, "
                         "mm, cm, dm, km, feet and US survey feet); declare metres and the scale to them: "
                         f"gdal_edit.py -units m -scale <metres per {name}> {shell_word(dsm)}")
        elif factor != 1.0:  # heights in feet or centimetres, as the file declares: metres for every model
            self._dsm_unscale = (self._dsm_unscale[0] * factor, self._dsm_unscale[1] * factor)
            self._warn(f"DSM {dsm}: heights in {name} (declared); read as metres (x {factor:.7g})")
        self._dsm_plausible: tuple[float, float] | None = None  # set by the sentinel check, from the sample
        self._dsm_file = dsm_ds  # its own grid: where a fill is one exact value, before resampling blends it
        self._dsm_declared = dsm_ds.nodatavals[self._dsm_band - 1] if dsm_ds is not None else None
        self._dsm_far_said = False
        with self._reading("DSM"):  # (an image of the same file name in another folder: GDAL names it alike)
            sentinel = self._dsm_sentinel_problem(dsm) if self._dsm is not None and factor is not None else None
        if sentinel:
            problems.add(sentinel)
        self._labels_raster = self._align(lab_ds, labels_path, role, Resampling.nearest,
                                          allow_geographic_mix, problems)
        self.labels_nodata = lab_ds.nodata if lab_ds is not None else None  # the file's own, as declared
        self._labels_vector = None
        if is_vector and labels_path is not None and self.georeferenced:
            if not labels_path.exists():
                problems.add(f"{role} {labels_path}: file not found")
            else:
                vec = _VectorLabels(labels_path, class_field, img, label_background, problems, self._burn,
                                    self._labels_layer, role, self._class_names, ignore=self._label_ignore)
                if vec.ok:
                    self._labels_vector = vec
                    count, kinds = vec.not_areas
                    if count:  # centre-lines or survey points left in a label layer: stripes and dots of a class
                        self._warn(f"{role} {labels_path}: {count} feature{'s' * (count != 1)} of the layer "
                                   f"{'are' if count != 1 else 'is'} {'/'.join(kinds)}: burnt as 1-px lines and "
                                   "points, not areas")
                    if vec.repaired:
                        self._warn(f"{role} {labels_path}: {vec.repaired} invalid polygon{'s' * (vec.repaired != 1)} "
                                   "(self-intersecting, a ring traced twice) repaired before burning (shapely make_valid)")
                    if vec.overlaps:
                        self._warn(f"{role} {labels_path}: {vec.overlaps:,} polygons overlap one of another class by a "
                                   "pixel or more; each such pixel takes the class of the later polygon in the layer's "
                                   "order (reordering the layer changes the labels): check them")
                    if vec.reprojected:
                        self._warn(f"{role} {labels_path}: vector CRS differs from the image; reprojected")
                    if vec.unburnt:  # narrower than a pixel: a class of cars or power lines left no label
                        n = sum(vec.unburnt.values())
                        names = {i: name for name, i in (self._class_names or {}).items()}
                        per = ", ".join(f"class {c}{f' ({names[c]})' if c in names else ''}: {k}"
                                        for c, k in sorted(vec.unburnt.items()))
                        self._warn(f"{role} {labels_path}: {n} polygon{'s' * (n != 1)} over the image burn{'s' * (n == 1)} "
                                   f"no pixel ({per}): a pixel takes a polygon's class only where its centre lies "
                                   "inside, and these hold no pixel centre (narrower than a pixel); draw them wider or "
                                   "tile a finer image")
                    if self._burn is None and label_background != IGNORE_INDEX and vec.outside >= OUTSIDE_WARN_SHARE:
                        names = {i: n for n, i in (self._class_names or {}).items()}
                        name = f" ({names[label_background]})" if label_background in names else ""
                        self._warn(f"{role} {labels_path}: about {vec.outside:.0%} of the image lies outside every "
                                   f"feature: labelled class {label_background}{name} (--background); pass "
                                   f"--background {IGNORE_INDEX} to leave it unlabelled if it is not that class")
        problems.raise_if_any()

    def _align(self, ds, path, role, resampling, allow_geographic_mix, problems):
        """``ds`` as-is when it shares the image grid, else a WarpedVRT onto the image grid."""
        if ds is None:
            return None
        img = self._img
        if not self.georeferenced or has_no_georeferencing(ds):  # (only with pixel_grid: open_raster refused them)
            if self.georeferenced or not has_no_georeferencing(ds):
                which = ("it has no georeferencing and the image has" if self.georeferenced else
                         "it is georeferenced and the image is not")
                problems.add(f"{role} {path}: {which}: its pixels cannot be placed on the image's")
            elif ds.shape != img.shape:
                problems.add(f"{role} {path}: {ds.width} x {ds.height} px, the image {img.width} x {img.height} px: "
                             "without georeferencing, only inputs of the image's size can be paired with it")
            else:
                return ds
            return None
        if ds.crs is None:
            return None
        if ds.crs.is_geographic != img.crs.is_geographic and not allow_geographic_mix:
            kinds = ("geographic", "projected")
            problems.add(
                f"{role} {path}: {kinds[not ds.crs.is_geographic]} CRS with a {kinds[not img.crs.is_geographic]} image; "
                "pass --allow-geographic-mix to warp it anyway"
            )
            return None
        coverage = _overlap_fraction(img, ds)
        if coverage <= 0:
            problems.add(f"{role} {path}: does not overlap the image")
            return None
        self.extent_coverage[role] = coverage
        if role == "DSM" and ds.count != 1:
            band = height_band(ds)
            self._warn(f"DSM {path}: has {ds.count} bands; reading band {band}"
                       + (f" ({ds.descriptions[band - 1]!r}, by its description)" if band != 1 else
                          " (no other band described as heights: height, elevation, DSM, ...)"))
        if coverage < 0.5:
            self._warn(f"{role} {path}: covers only {coverage:.1%} of the image")
        if same_grid(img, ds):
            return ds
        lattice = lattice_window(ds, img.crs, img.transform, img.width, img.height)
        if lattice is not None:  # the image's own pixels, another extent: each pixel taken as it is (nearest at its centre)
            resampling = Resampling.nearest
        if role == "t2":  # imagery: keep every value usable, mark outside areas with an alpha band
            vrt = WarpedVRT(ds, crs=img.crs, transform=img.transform, width=img.width, height=img.height,
                            resampling=resampling, src_nodata=ds.nodata,
                            add_alpha=ds.nodata is None and ColorInterp.alpha not in ds.colorinterp)
            # (an RGBA t2 keeps its own alpha band, warped as the footprint; GDAL refuses a second one)
        else:
            vrt = WarpedVRT(
                ds, crs=img.crs, transform=img.transform, width=img.width, height=img.height,
                resampling=resampling, src_nodata=ds.nodata,
                nodata=ds.nodata if ds.nodata is not None else (np.nan if role == "DSM" else IGNORE_INDEX),
            )
        self._opened.append(vrt)
        covers = f"; it covers only {coverage:.1%} of the image" if 0.5 <= coverage < 0.995 else ""  # under 0.5: said
        if lattice is not None:
            self._lattice_roles.add(role)
            self._warn(f"{role} {path}: on the image's pixels with another extent ({_describe_grid_difference(img, ds)}); "
                       f"cropped to the image grid, no resampling{covers}{_lattice_gaps(ds, lattice, img, role)}")
        else:
            self._warn(f"{role} {path}: grid differs from the image ({_describe_grid_difference(img, ds)}); "
                       f"resampled ({resampling.name}) onto the image grid{covers}")
        return vrt

    def _dsm_sentinel_problem(self, path: PathLike) -> str | None:
        """Why the DSM holds heights no surface has (-9999, -32767, 3.4e38: a nodata value it does not
        declare; centimetres without a scale), or None. Normalised with the real heights, they would make its
        windows garbage. Sets the heights a fill must lie beyond (:meth:`read_dsm`).

        Sampled on the DSM's own grid under the image (resampling would blend a fill into a ring of values that
        widen the heights' range until the fill looks like one), every fill value judged, not only the commonest
        (an integer DSM's commonest value is a height)."""
        lo, hi = DSM_RANGE
        ds = self._dsm_file
        under = self._dsm_window(Window(0, 0, self.width, self.height), pad=False)
        if under is None:
            return None
        windows = sample_windows(int(under.width), int(under.height), 1 << 18, min_per_axis=CHECK_PER_AXIS)
        raw = np.concatenate([np.ma.filled(ds.read(self._dsm_band, window=Window(w.col_off + under.col_off, w.row_off + under.row_off,
                                                                     w.width, w.height), masked=True)
                                           .astype(np.float64), np.nan).ravel() for w in windows])
        raw = raw[np.isfinite(raw)]
        values = self._unscaled(raw)
        dtype = ds.dtypes[0]
        bad = (values < lo) | (values > hi)
        if bad.any():
            kinds, counts = np.unique(raw[bad], return_counts=True)
            mode = kinds[counts.argmax()]
            if is_fill_value(mode, dtype) or counts.max() * 2 >= bad.sum():  # one value: a fill
                if bad.mean() >= DSM_FILL_SHARE or not all(is_fill_value(kinds, dtype)):
                    return (f"DSM {path}: {int(bad.sum()):,} of its {bad.size:,} sampled pixels ({bad.mean():.1%}) hold "
                            f"heights outside {lo:g}..{hi:g} (mostly {mode:g}: a nodata value it does not declare?); "
                            + self._fill_advice(mode))
                raw, values = raw[~bad], values[~bad]  # a rare fill: no data where it lies (read_dsm), and said there
            else:
                return (f"DSM {path}: {bad.mean():.1%} of its sampled pixels hold heights outside {lo:g}..{hi:g} "
                        f"(metres or feet), {values[bad].min():.6g}..{values[bad].max():.6g}: in centimetres or "
                        f"millimetres? declare its scale (gdal_edit.py -scale 0.01 {shell_word(path)}, or 0.001) or convert it")
        if values.size < 64:
            return None
        candidate = is_fill_value(raw, dtype)
        heights = values[~candidate]  # the scene's heights: no fill value widens their range
        if heights.size == 0:
            return None
        p1, p99 = (float(v) for v in np.percentile(heights, [1, 99]))
        reach = max(DSM_FAR_SPANS * (p99 - p1), DSM_FAR_FLOOR)
        self._dsm_plausible = (p1 - reach, p99 + reach)  # reads: a fill value beyond is no data
        kinds, counts = np.unique(raw[candidate], return_counts=True)
        for value, count in sorted(zip(kinds.tolist(), counts.tolist()), key=lambda vc: -vc[1]):
            share, height = count / raw.size, float(self._unscaled(np.array([value]))[0])
            if share >= DSM_FILL_SHARE and not self._dsm_plausible[0] <= height <= self._dsm_plausible[1]:
                return (f"DSM {path}: {share:.1%} of its sampled pixels hold {value:g}, far from its other heights "
                        f"({p1:.4g}..{p99:.4g}): a nodata value it does not declare?; " + self._fill_advice(value))
            if value == 0 and share >= DSM_ZERO_SHARE and p1 - height > max(p99 - p1, 0.0) > 0:
                # 0 under a town 40 m up, nothing between: the fill of a tool that writes 0, or sea beside a cliff
                self._warn(f"DSM {path}: {share:.1%} of its sampled pixels hold exactly 0, {p1 - height:.4g} below "
                           f"all its other heights ({p1:.4g}..{p99:.4g}), read as heights: sea, or a nodata value "
                           "it does not declare? If no data: " + self._fill_advice(value))
        return None

    def _dsm_window(self, window: Window, pad: bool = True) -> Window | None:
        """The window of the DSM's own grid under image ``window`` (any CRS, orientation or rotation: its edges'
        points carried through both transforms), padded by a bilinear kernel with ``pad``; None off the DSM."""
        from rasterio.warp import transform as warp_transform

        ds, img = self._dsm_file, self._img
        t = np.linspace(0.0, 1.0, 21)
        c0, r0, w, h = float(window.col_off), float(window.row_off), float(window.width), float(window.height)
        cols = np.concatenate([c0 + w * t, c0 + w * t, np.full(21, c0), np.full(21, c0 + w)])
        rows = np.concatenate([np.full(21, r0), np.full(21, r0 + h), r0 + h * t, r0 + h * t])
        xs, ys = img.transform * (cols, rows)
        try:
            if img.crs != ds.crs:
                xs, ys = (np.asarray(v) for v in warp_transform(img.crs, ds.crs, xs, ys))
            cc, rr = ~ds.transform * (xs, ys)
            ok = np.isfinite(cc) & np.isfinite(rr)
            if not ok.any():
                raise ValueError("no point of the window carried over")
            box = [math.floor(cc[ok].min()), math.floor(rr[ok].min()), math.ceil(cc[ok].max()), math.ceil(rr[ok].max())]
        except Exception:  # noqa: BLE001 - a window PROJ cannot carry over: the whole DSM, never no check
            box = [0, 0, ds.width, ds.height]
        if pad:
            more = int(math.ceil(max((box[2] - box[0]) / max(w, 1.0), (box[3] - box[1]) / max(h, 1.0)))) + 2
            box = [box[0] - more, box[1] - more, box[2] + more, box[3] + more]
        box = [max(box[0], 0), max(box[1], 0), min(box[2], ds.width), min(box[3], ds.height)]
        return Window(box[0], box[1], box[2] - box[0], box[3] - box[1]) if box[2] > box[0] and box[3] > box[1] else None

    def _read_dsm_file_units(self, window: Window) -> np.ndarray:
        """The DSM on the image grid in its file's units (before GDAL's scale), float64, NaN where it declares no data."""
        return np.ma.filled(self._dsm.read(self._dsm_band, window=window, masked=True).astype(np.float64), np.nan)

    def _unscaled(self, raw: np.ndarray) -> np.ndarray:
        """File units to heights: GDAL's scale and offset (an int16 DSM in decimetres holds metres once unscaled)."""
        scale, offset = self._dsm_unscale
        return raw * scale + offset if (scale, offset) != (1.0, 0.0) else raw

    def _dsm_fills(self, raw: np.ndarray) -> np.ndarray:
        """Where file-unit values ``raw`` are fills: a fill value beyond the plausible heights, or beyond DSM_RANGE."""
        heights = self._unscaled(raw)
        lo, hi = self._dsm_plausible
        fill = (heights < lo) | (heights > hi)
        if fill.any():  # (most windows hold no far value: the value test only where one is)
            far = np.flatnonzero(fill)
            fill.flat[far] = (is_fill_value(raw.flat[far], self._dsm_file.dtypes[self._dsm_band - 1])
                              | (heights.flat[far] < DSM_RANGE[0]) | (heights.flat[far] > DSM_RANGE[1]))
        return fill

    def _resampled_fills(self, window: Window) -> tuple[np.ndarray, float] | None:
        """Image pixels of ``window`` that a fill pixel of a DSM on another grid blends into, and one fill value
        (file units), or None (no fill).

        Found on the DSM's own grid, where a fill is its exact value (bilinear resampling turns one 9999 pixel
        into a ring of 2536, 5018, ... no rule can tell from heights), and carried onto the image grid with the
        same warp: a pixel whose kernel touches a fill is no data. The DSM window around the image window is
        padded by a kernel, so a fill just outside the window is seen: the answer is the same in any window.
        """
        from rasterio.warp import reproject

        ds, img = self._dsm_file, self._img
        src = self._dsm_window(window)
        if src is None:
            return None
        raw = np.ma.filled(ds.read(self._dsm_band, window=src, masked=True).astype(np.float64), np.nan)
        fill = self._dsm_fills(raw)
        if not fill.any():
            return None
        # onto the window and a pixel around it, so that the pixel more below is the same in any window
        around = Window(window.col_off - 1, window.row_off - 1, window.width + 2, window.height + 2)
        onto = np.zeros((int(around.height), int(around.width)), np.float32)
        reproject(fill.astype(np.float32), onto, src_transform=window_transform(src, ds.transform), src_crs=ds.crs,
                  dst_transform=window_transform(around, img.transform), dst_crs=img.crs,
                  resampling=Resampling.bilinear)
        from scipy import ndimage

        # one pixel more: the VRT's warp approximates a reprojection to 1/8 px, so its kernels may sit a pixel over
        return ndimage.binary_dilation(onto > 0, structure=np.ones((3, 3), bool))[1:-1, 1:-1], float(raw[fill][0])

    def _fill_advice(self, value: float) -> str:
        """How to say which DSM pixels hold no height: declare the value, or (a DSM declaring another) use that one."""
        declared = self._dsm_declared  # the file's own (a warped DSM's VRT says NaN where the file says nothing)
        if declared is not None:  # re-declaring would un-declare the other (-9999 and 0 in one DSM)
            return (f"it declares {declared:g} as nodata already: set those pixels to it (gdal_calc.py -A {shell_word(self._dsm_path)} "
                    f"--calc=\"where(A=={value:g},{declared:g},A)\" --NoDataValue={declared:g} --outfile=...) or fix them")
        return f"declare it (gdal_edit.py -a_nodata {value:g} {shell_word(self._dsm_path)}) or fix those pixels"

    def _warn(self, message: str) -> None:
        """Record the warning for the summary; log it once per run (a run opens its inputs more than once)."""
        self.warnings.append(message)
        warn_once(log, message)

    # -- grid properties ---------------------------------------------------------------
    @property
    def width(self) -> int:
        return self._img.width

    @property
    def height(self) -> int:
        return self._img.height

    @property
    def crs(self) -> CRS:
        return self._img.crs

    @property
    def transform(self):  # noqa: ANN201 - affine.Affine
        return self._img.transform

    @property
    def count(self) -> int:
        return len(self.bands)

    @property
    def labels_background(self) -> int | None:
        """The class id burnt outside a label vector's polygons (``--background``), or None for label rasters."""
        return None if self._labels_vector is None else self._labels_vector.background

    @property
    def t2_dtype(self) -> str | None:
        """The second epoch's pixel type (it may differ from the image's), or None without one."""
        return None if self._t2 is None else self._t2.dtypes[self._t2_bands[0] - 1]

    @property
    def t2_bands(self) -> list[int]:
        """The second epoch's bands read, in the order of ``bands`` (by colour where both dates declare theirs)."""
        return list(self._t2_bands)

    @property
    def image_unscale(self) -> list[tuple[float, float]]:
        """GDAL (scale, offset) of each band read: read raw (a model's training scale is the raw one)."""
        return [(float(self._img.scales[b - 1] or 1.0), float(self._img.offsets[b - 1] or 0.0)) for b in self.bands]

    @property
    def colours(self) -> list[str]:
        """The colour interpretation of the bands read (``bands``), by name."""
        names = band_colours(self._img)
        return [names[b - 1] for b in self.bands]

    @property
    def file_colours(self) -> list[str]:
        """The colour interpretation of every band of the image file, by name."""
        return band_colours(self._img)

    @property
    def file_band_count(self) -> int:
        """Every band of the image file, an alpha band included (``count`` is those read)."""
        return self._img.count

    @property
    def dtype(self) -> str:
        return self._img.dtypes[self.bands[0] - 1]

    @property
    def nodata(self) -> float | None:
        return self._img.nodata

    @property
    def has_dsm(self) -> bool:
        return self._dsm is not None

    @property
    def has_t2(self) -> bool:
        return self._t2 is not None

    @property
    def has_labels(self) -> bool:
        return self._labels_raster is not None or self._labels_vector is not None

    @property
    def has_nodata(self) -> bool:
        """Whether the image declares nodata, an internal mask or alpha (windows can be invalid)."""
        from rasterio.enums import MaskFlags

        flags = self._img.mask_flag_enums[self.bands[0] - 1]
        return MaskFlags.all_valid not in flags or self.has_dsm or np.dtype(self.dtype).kind == "f"

    def profile(self) -> dict[str, Any]:
        """GeoTIFF profile of the image grid, the starting point for every output raster."""
        return {"driver": "GTiff", "crs": self.crs, "transform": self.transform,
                "width": self.width, "height": self.height}

    # -- reads -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self, role: str | None) -> Iterator[None]:
        """A block GDAL cannot read (a truncated copy, a damaged tile) as the input's fault, naming its role
        (None: the input whose file GDAL's message names): the run said 'dsm.tif, band 1: IReadBlock failed at
        X offset 1 ...', leaving which input and why unsaid."""
        try:
            yield
        except rasterio.errors.RasterioIOError as exc:
            cause = exc.__cause__ or exc.__context__
            said = cause if "See previous exception" in str(exc) and cause is not None else exc  # GDAL's words
            detail = " ".join(str(said).split())
            paths = {"image": self.image_path, "DSM": self._dsm_path, "t2": self._t2_path}
            if role is None:
                named = [r for r, p in paths.items()  # GDAL names the file by its path or its name alone
                         if p is not None and any(detail.startswith(f"{n}, band ") for n in (p, p.name))]
                if len(named) != 1:  # a VRT's member, or two inputs of one name: GDAL's words as they are
                    raise
                role = named[0]
            path = paths[role]
            role = self._image_role if role == "image" else role  # t1 in a change run
            if "cannot allocate" in detail:  # one block bigger than memory (a 65520 px tile was 'damaged', QA)
                raise InputError(f"{role} {path}: a block too large for memory, which GDAL cannot read (tile it: "
                                 f"gdal_translate -co TILED=YES -co COMPRESS=DEFLATE): {detail}") from exc
            raise InputError(f"{role} {path}: pixels GDAL cannot read, a truncated or damaged file "
                             f"(re-copy it; 'gdalinfo -checksum' finds the bad blocks): {detail}") from exc

    def read_image(self, window: Window) -> np.ndarray:
        """Selected image bands, (count, h, w), in the raw dtype."""
        with self._reading("image"):
            return self._img.read(self.bands, window=window)

    def read_dsm(self, window: Window) -> np.ndarray:
        """DSM on the image grid, (h, w) float32 heights (GDAL's scale and offset applied), NaN where it has no data."""
        if self._dsm is None:
            raise ValueError("no DSM was given")
        with self._reading("DSM"):
            raw = self._read_dsm_file_units(window)
        arr = self._unscaled(raw).astype(np.float32)
        if self._dsm_plausible is not None:  # the start-up check is done: fills it did not refuse go
            fill = self._dsm_fills(raw)  # pixel by pixel: the same in any window
            value = float(raw[fill][0]) if fill.any() else np.nan
            if self._dsm is not self._dsm_file and "DSM" not in self._lattice_roles:  # resampled: the fills of its own
                # grid and the pixels they blend into
                blended = self._resampled_fills(window)
                if blended is not None:
                    fill |= blended[0]
                    value = blended[1]
            if fill.any():
                if not self._dsm_far_said:
                    self._dsm_far_said = True
                    lo, hi = self._dsm_plausible
                    self._warn(f"DSM {self._dsm_path}: {value:g}, beyond {lo:.4g}..{hi:.4g} (far from the scene's "
                               "heights), read as no data there and where resampling blends it (a nodata value it "
                               "does not declare?); " + self._fill_advice(value))
                arr[fill] = np.nan
        return arr

    def read_labels(self, window: Window) -> np.ndarray:
        """Labels on the image grid, (h, w) uint8, ``IGNORE_INDEX`` where unlabelled."""
        if self._labels_vector is not None:
            return self._labels_vector.read(window, self.transform)
        if self._labels_raster is None:
            raise ValueError("no labels were given")
        arr = self._labels_raster.read(1, window=window, masked=True)
        known = ~np.ma.getmaskarray(arr)
        arr = np.ma.getdata(arr)
        if arr.dtype.kind == "f":
            known &= ~np.isnan(arr)  # NaN: no label, declared or not
            arr = np.where(known, arr, 0)
        if self._label_ignore is not None:  # the class table's "no label" value
            known &= arr != self._label_ignore
        bad = no_class_ids(arr, known)
        if bad.any():  # 300 or -1 would vanish into "no label", 1.7 would become class 1: said, not done
            self.bad_label_values.update(np.unique(arr[bad])[:8].tolist())
        if self._burn is not None:  # a raster mask: any labelled non-zero pixel is the burnt class; 255 no label
            known &= ~bad & (arr != IGNORE_INDEX)  # (255, -1, 65535 were burnt as the class, silently)
            return np.where(known, np.where(arr != 0, self._burn, 0), IGNORE_INDEX).astype(np.uint8)
        out = np.where(known & ~bad, arr, IGNORE_INDEX)
        return out.astype(np.uint8)

    def read_t2(self, window: Window) -> np.ndarray:
        """Second epoch on the first epoch's grid, (count, h, w), same bands as the image."""
        if self._t2 is None:
            raise ValueError("no second epoch was given")
        with self._reading("t2"):
            return self._t2.read(self._t2_bands, window=window)

    def read_t2_valid(self, window: Window) -> np.ndarray:
        """(h, w) bool: second epoch valid (its nodata / mask, and inside its footprint)."""
        if self._t2 is None:
            raise ValueError("no second epoch was given")
        with self._reading("t2"):
            valid = bands_valid(self._t2, self._t2_bands, window, alpha_is_data=self._t2_alpha_is_data)
            if np.dtype(self._t2.dtypes[self._t2_bands[0] - 1]).kind == "f":
                valid &= np.all(np.isfinite(self._t2.read(self._t2_bands, window=window)), axis=0)
        return valid

    @property
    def dsm_path(self) -> Path | None:
        return self._dsm_path

    @property
    def t2_path(self) -> Path | None:
        return self._t2_path

    def read_image_valid(self, window: Window) -> np.ndarray:
        """(h, w) bool: image valid (:func:`bands_valid`: nodata value, internal mask or alpha) and finite:
        NaN/inf pixels of a float image are nodata, not values that would spread through a network."""
        with self._reading("image"):
            valid = bands_valid(self._img, self.bands, window, alpha_is_data=self._alpha_is_data)
            if np.dtype(self.dtype).kind == "f":
                valid &= np.all(np.isfinite(self._img.read(self.bands, window=window)), axis=0)
        return valid

    def read_valid(self, window: Window, dsm: np.ndarray | None = None) -> np.ndarray:
        """(h, w) bool: image valid (nodata, internal mask or alpha) and, with a DSM, DSM valid.

        ``dsm``: this window's :meth:`read_dsm`, when the caller has read it (a warped DSM read once, not twice).
        """
        valid = self.read_image_valid(window)
        if self._dsm is not None:
            valid &= ~np.isnan(self.read_dsm(window) if dsm is None else dsm)
        if self._t2 is not None:
            valid &= self.read_t2_valid(window)
        return valid

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        for ds in reversed(self._opened):
            try:
                ds.close()
            except Exception:  # noqa: BLE001
                pass
        self._opened = []

    def __enter__(self) -> AlignedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
