"""``rsmamba vectorize``: class or change rasters to GIS polygon layers.

Pipeline: check every input problem first (one error listing them all), polygonize block by
block with an exact seam merge (:mod:`.polygonize`), map pixel polygons to the raster CRS (or
reproject), fill small holes, drop small polygons, simplify as a coverage or regularise
buildings, attach attributes, and write the layer atomically.

Memory: one block row of pixels plus the polygons still open across the next seam and a batch of
finished ones (:data:`.polygonize.BATCH_PIECES`, or a block's). The layer is streamed to disk batch by
batch for GeoPackage, GeoJSON and FlatGeobuf output (the last two through a staging GeoPackage) without
``--simplify``; coverage simplification, Parquet and the options that judge the polygons together
hold the finished polygons (not pixels) until the end.

Coverage simplification assumes the polygons form a coverage (no overlaps): combined with
``fill_holes`` a filled hole overlaps the polygon inside it, and a polygon whose simplified
shape would be invalid keeps its unsimplified shape. Raster conventions (class names, model
id, change bands, probability bands) are documented in :mod:`rsmamba.vectorize.attributes`; several scenes on one
grid are vectorized as one mosaic by :mod:`rsmamba.vectorize.mosaic`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyogrio
import rasterio
import shapely
from pyproj import CRS, Transformer
from rasterio import features
from rasterio.windows import Window

from rsmamba.atomic import publish, settle_inputs
from rsmamba.classes import name_key
from rsmamba.errors import InputError, ProblemCollector, typed_arguments
from rsmamba.paths import input_problem, sql_fold, vector_path_problem
from rsmamba.raster import gdal_cache_capped
from rsmamba.runlog import warn_once
from rsmamba.raster.source import bands_valid, data_bands, same_grid, unwrap_longitudes
from rsmamba.raster.validate import beyond_int32, class_raster_problem, is_change_raster
from rsmamba.raster.windows import footprint
from rsmamba.vectorize import attributes as attrs
from rsmamba.vectorize.polygonize import Piece, _polygons_from_geojson, first_pixels, polygonize_blocks
from rsmamba.vectorize.regularize import regularized
from rsmamba.vectorize.simplify import fill_small_holes, simplify_coverage
from rsmamba.raster.ground import SCALE_TOLERANCE, is_mercator, metres_per_unit, scale_at, torn, utm_zone
from rsmamba.vectorize.units import parse_area, parse_length

if TYPE_CHECKING:
    from rsmamba.vectorize.mosaic import Mosaic

log = logging.getLogger(__name__)

FORMATS = {"gpkg": "GPKG", "geojson": "GeoJSON", "fgb": "FlatGeobuf", "parquet": "parquet"}
_SUFFIXES = {".gpkg": "gpkg", ".geojson": "geojson", ".json": "geojson", ".fgb": "fgb", ".parquet": "parquet"}
CHANGE_KEY_BASE = 256  # change key = from_class * 256 + to_class


def _not_change_problem(src, raster: Path) -> str | None:
    """Why a raster given ``--change`` is no change raster, or None: its class table names other classes, or band 1
    holds values beyond change 0/1. A class raster read as change writes its class-1 pixels (building) as change
    polygons and drops every other class, without a word."""
    from rsmamba.raster.windows import CHECK_PER_AXIS, sample_windows

    if src.count == 1 and attrs.has_class_names(src):  # (a semantic change raster's table is its from/to classes')
        names = attrs.class_names(src)
        if {i: n.lower() for i, n in names.items()} != {0: "no_change", 1: "change"}:
            shown = ", ".join(f"{i} {n}" for i, n in sorted(names.items())[:6]) + (", ..." if len(names) > 6 else "")
            return (f"{raster}: --change, but it is a class raster ({shown}): its class 1 would be written as change; "
                    "drop --change")
    nodata = src.nodata
    seen: set[int] = set()
    for window in sample_windows(src.width, src.height, 1 << 20, min_per_axis=CHECK_PER_AXIS):
        seen.update(int(v) for v in np.unique(src.read(1, window=window)) if nodata is None or v != nodata)
    beyond = sorted(seen - {0, 1})
    if beyond:
        return (f"{raster}: --change, but band 1 holds {', '.join(map(str, beyond[:6]))}{', ...' if len(beyond) > 6 else ''}"
                " beside 0/1: not a change mask; drop --change, or recode it to 0 (no change) / 1 (change)")
    return None


@dataclass
class VectorizeSummary:
    output: Path
    polygons: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    calibrated_min_area: float | None = None  # m²: the change raster's own --min-area, when none was given
    semantic: bool = False  # a semantic change raster: polygons counted by their to_class, areas per change region
    grid_scale: float = 1.0  # areas and lengths were divided by this scale of the output CRS (1: taken as they are)
    crs_name: str = ""
    regularized: int = 0  # outlines --regularize fitted or tried to
    unsquared: int = 0  # of them, those that kept their simplified shape (the right-angle fit failed its IoU check)

    def describe(self) -> str:
        classes = ", ".join(f"{k}: {v}" for k, v in sorted(self.per_class.items())) or "none"
        by = "to_class " if self.semantic else ""  # 'building: 2' read as two buildings beside 38 demolished ones
        line = (f"{self.output}: {self.polygons} polygon{'s' * (self.polygons != 1)} ({by}{classes}) in "
                f"{self.seconds:.1f} s")
        if self.calibrated_min_area is not None:
            line += (f"; {'change regions' if self.semantic else 'polygons'} under {self.calibrated_min_area:g} m2 "
                     "dropped (calibrated with the change model; --min-area overrides)")
        if self.unsquared:
            line += (f"; {self.unsquared} of {self.regularized} outlines kept their simplified shape, not right angles "
                     "(a right-angle fit would move them too far from their pixels: check them)")
        if self.grid_scale != 1.0:
            line += (f"; areas and lengths in ground metres: {self.crs_name}'s grid is {self.grid_scale:.4f} x the "
                     f"ground here ({(self.grid_scale ** 2 - 1) * 100:+.1f} % in area)")
        return line


@dataclass
class _Plan:
    """Everything checked and resolved before any work starts."""

    raster: Path
    output: Path
    fmt: str
    width: int
    height: int
    transform: rasterio.Affine
    crs: CRS
    out_crs: CRS
    names: dict[int, str]
    selected: set[int]
    skip: set[int]
    change: bool
    semantic: bool
    model_id: str
    unit_m: float
    min_area: float
    fill_holes: float
    simplify: float
    probabilities: Path | None
    calibrated_min_area: float | None = None  # min_area came from the change raster's calibration tag
    scenes: Mosaic | None = None  # set when ``raster`` is the VRT mosaic of several scenes
    instances: bool = False  # split regions into buildings (:mod:`rsmamba.vectorize.instances`)
    grid_scale: float = 1.0  # out_crs's linear scale at the raster, when its areas are over 1 % off the ground's
    model_id_given: bool = False  # by the caller: every polygon's, not each scene's own


def _resolve_format(output: Path, output_format: str | None, problems: ProblemCollector) -> str:
    fmt = (output_format or _SUFFIXES.get(output.suffix.lower(), "")).lower()
    problem = vector_path_problem(output, "output")
    if problem:
        problems.add(problem)
    implied = _SUFFIXES.get(output.suffix.lower())
    if output_format and implied and fmt in FORMATS and implied != fmt:  # x.gpkg holding GeoJSON misleads every reader
        problems.add(f"{output}: --format {output_format} contradicts the {output.suffix} suffix "
                     f"({implied}); drop --format or change the suffix")
    if fmt not in FORMATS:
        problems.add(f"{output}: unknown output format {output_format or output.suffix!r} (use gpkg, geojson, parquet or fgb)")
    elif fmt == "fgb" and output.suffix.lower() != ".fgb":  # GDAL's FlatGeobuf driver writes a folder then
        problems.add(f"{output}: a FlatGeobuf file's name ends in .fgb (GDAL makes any other name a folder of "
                     f".fgb files, which --overwrite then cannot replace); name it {output.stem}.fgb")
    elif fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        problems.add("parquet output needs pyarrow (pip install pyarrow)")
    return fmt


def _plan(
    raster: Path, output: Path, *, classes, min_area, simplify, fill_holes, output_format,
    probabilities, reproject_to, model_id, change,
) -> _Plan:
    problems = ProblemCollector()
    fmt = _resolve_format(output, output_format, problems)
    from rsmamba.paths import output_problem

    problem = output_problem(output, [raster, probabilities], "output")
    if problem:
        problems.add(problem)
    thresholds = {}
    for name, text, parse in (("--min-area", min_area, parse_area), ("--fill-holes", fill_holes, parse_area),
                              ("--simplify", simplify, parse_length)):
        try:
            thresholds[name] = parse(text, name) or 0.0
        except ValueError as exc:
            problems.add(str(exc))
    out_crs = None
    if reproject_to is not None:
        try:
            out_crs = CRS.from_user_input(reproject_to)
        except Exception:  # pyproj raises CRSError on anything unreadable
            problems.add(f"--reproject {reproject_to}: not a CRS")
        else:
            if out_crs.is_geographic:
                problems.add(f"--reproject {reproject_to}: must be a projected CRS (metres), not geographic")
            elif is_mercator(out_crs):
                problems.add(f"--reproject {reproject_to}: Mercator units are not ground metres (areas too large "
                             "by 1/cos² of the latitude); choose a local projected CRS such as the UTM zone")
    # stat only, before GDAL opens anything: opening a named pipe waits for a writer for ever
    for role, path in (("raster", raster), ("--probabilities", probabilities)):
        if path is not None and (problem := input_problem(path, role)):
            problems.add(problem)
    if input_problem(raster, "raster"):
        problems.raise_if_any()
    try:
        with warnings.catch_warnings():  # no geotransform: refused below in one line, not GDAL's warning
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            src = rasterio.open(raster)
    except rasterio.errors.RasterioIOError as exc:
        problems.add(f"raster {raster}: not a readable raster ({str(exc).splitlines()[0]})")
        problems.raise_if_any()
    with src:
        crs = CRS.from_user_input(src.crs) if src.crs else None
        if src.transform.is_identity:  # GDAL's default: no geotransform, the polygons would be in pixels
            how = ("georeferenced by GCPs only: warp it onto a grid first (gdalwarp)" if src.gcps[0] else
                   "no geotransform (pixel coordinates only): georeference it first")
            problems.add(f"{raster}: {how}")
        if crs is None:
            if not (src.transform.is_identity and src.gcps[0]):  # GCPs carry their CRS: 'GCPs only' says it all
                problems.add(f"{raster}: no CRS; polygons would have no place on the ground")
        elif (crs.is_geographic or is_mercator(crs)) and out_crs is None:
            what = (f"geographic CRS ({crs.to_string()})" if crs.is_geographic else
                    f"Mercator CRS ({crs.to_string()}), whose metres shrink with latitude")
            utm = "EPSG:xxxx (a projected CRS in ground metres)"
            if not src.transform.is_identity:
                utm = f"{utm_zone(crs, *(src.transform * (src.width / 2, src.height / 2)))} (its UTM zone)"
            problems.add(f"{raster}: {what}: areas and thresholds need ground metres; pass --reproject {utm}")
        if src.width == 0 or src.height == 0:
            problems.add(f"{raster}: empty raster ({src.width} x {src.height} pixels)")
        elif thresholds.get("--simplify") and crs is not None and not src.transform.is_identity:
            from rsmamba.raster.ground import pixel_size_m

            across = (pixel_size_m(crs, src.transform, src.width, src.height) or 0.0) * max(src.width, src.height)
            if across and thresholds["--simplify"] > across:  # 1e308 m: GEOS overflowed, said as a RuntimeWarning
                problems.add(f"--simplify {simplify}: more than the raster's {across:,.0f} m across; a tolerance of a "
                             "pixel or a few (e.g. 0.5m)")
        is_change = is_change_raster(src) if change is None else change
        if change and not is_change_raster(src):  # forced: a change raster that lost its band description, else refused
            not_change = _not_change_problem(src, raster)
            if not_change:
                problems.add(not_change)
                problems.raise_if_any()
        calibrated = attrs.calibrated_min_area(src) if min_area is None and is_change else None
        if calibrated is not None:
            thresholds["--min-area"] = calibrated  # calibrated with the change model
        # A class band with an alpha band (its mask) is a class raster too.
        problem = class_raster_problem(src, str(raster), allow_multiband=is_change or len(data_bands(src)) == 1)
        if problem:  # not a class raster: nothing below (class table, nodata, probabilities) applies
            problems.add(problem)
            problems.raise_if_any()
        semantic = is_change and attrs.has_semantic_change(src)
        try:
            names = attrs.class_names(src)
        except InputError as exc:  # an unreadable class table: reported with what was found so far
            for problem in exc.problems:
                problems.add(problem)
            problems.raise_if_any()
        skip = attrs.never_vectorized(src)
        declared = attrs.has_class_names(src)
        selected: set[int] = set()
        if classes and is_change and not semantic:  # else accepted and ignored: every change polygon written
            problems.add(f"--classes picks from/to classes of a semantic change raster ('rsmamba change --semantic'); "
                         f"{raster.name} is a binary change raster (band 1 change 0/1): drop --classes")
        elif classes is not None and not any(str(t).strip() for item in ([classes] if isinstance(classes, (str, int))
                                                                          else classes) for t in str(item).split(",")):
            problems.add("--classes names no class (an empty list: every class was vectorized); name them, or drop "
                         "--classes for every class")
        elif classes:
            for item in classes:
                whole = str(item).strip()
                if "," in whole and whole in names.values():  # a class named 'Boden, offen' (tile takes it)
                    selected.update(i for i, n in names.items() if n == whole)
                    continue
                for token in str(item).split(","):
                    token = token.strip()
                    if not token:
                        continue
                    if token.isdigit() and (int(token) in names or not declared):  # undeclared: ISPRS names a guess
                        selected.add(int(token))
                    elif token in names.values():
                        selected.update(i for i, n in names.items() if n == token)
                    elif any(name_key(n) == name_key(token) for n in names.values()):  # 'Building' (tile's rule)
                        selected.update(i for i, n in names.items() if name_key(n) == name_key(token))
                    else:
                        problems.add(f"class {token!r} is not in {raster.name}'s class table "
                                     f"({', '.join(f'{i}={n}' for i, n in sorted(names.items()))})")
        if probabilities is not None:
            probabilities = Path(probabilities)
            prob = None
            try:
                if not input_problem(probabilities, "--probabilities"):  # that problem is said above
                    prob = rasterio.open(probabilities)
            except rasterio.errors.RasterioIOError as exc:
                problems.add(f"--probabilities {probabilities}: not a readable raster ({str(exc).splitlines()[0]})")
            if prob is not None:
                with prob:
                    if prob.crs != src.crs:
                        theirs = prob.crs.to_string() if prob.crs else "no CRS"
                        problems.add(f"{probabilities}: CRS {theirs} differs from {raster.name}'s {src.crs}: "
                                     "not on its grid")
                    elif not same_grid(prob, src):
                        problems.add(f"{probabilities}: not on the grid of {raster.name}")
                    # the classes whose polygons read it (an untagged raster's ISPRS table may name more)
                    vectorized = selected or ({k for k in names if k not in skip} if attrs.has_class_names(src)
                                              else set())
                    for problem in attrs.probability_problems(prob, src, names, vectorized, is_change):
                        problems.add(problem)
        if crs is not None:
            targets = ([("--reproject " + str(reproject_to), out_crs)] if out_crs is not None else []) + (
                [("GeoJSON (RFC 7946: WGS 84)", CRS.from_epsg(4326))] if fmt == "geojson" else [])
            for what, target in targets:  # a site grid (LOCAL_CS) has no way to the globe: 'NULL pointer error'
                if not _transformable(crs, target):
                    problems.add(f"{raster}: its CRS ({_crs_name(crs)}) cannot be transformed to {what}; "
                                 + ("write --format gpkg, fgb or parquet, which keep it" if what.startswith("GeoJSON")
                                    else "drop --reproject, or georeference the raster in a CRS with a datum"))
                    continue
                if (lacking := _missing_grids(crs, target)) is not None:
                    warn_once(log, f"{raster.name}: the best transformation from {_crs_name(crs)} to {what} needs "
                                   f"PROJ grids this machine lacks ({lacking[0]}); PROJ uses one accurate to about "
                                   f"{lacking[1]} instead (projsync --file {lacking[0].split(', ')[0]}, or "
                                   "PROJ_NETWORK=ON, fetches the grid)")
                if target is out_crs and not src.transform.is_identity \
                        and torn(crs, src.transform, src.width, src.height, out_crs):
                    utm = utm_zone(crs, *(src.transform * (src.width / 2, src.height / 2)))
                    other = ("drop --reproject (the raster's own CRS is in metres)"
                             if not (crs.is_geographic or is_mercator(crs)) else f"e.g. its UTM zone {utm}")
                    problems.add(f"{what}: that CRS's edge (its antimeridian or a pole) runs through {raster.name}: "
                                 f"polygons across it would come out inside out; choose a CRS centred on the raster, "
                                 f"{other}")
        problems.raise_if_any()
        out_crs = out_crs or crs
        # a grid far from its projection's standard lines is no ground metre (polar stereographic: 4-9 % in area)
        scale = scale_at(out_crs, crs, *(src.transform * (src.width / 2, src.height / 2)))
        scale = scale if abs(scale * scale - 1) > SCALE_TOLERANCE else 1.0
        return _Plan(
            raster=raster, output=output, fmt=fmt, width=src.width, height=src.height, transform=src.transform,
            crs=crs, out_crs=out_crs, names=names, selected=selected, skip=skip, change=is_change,
            semantic=semantic, model_id=model_id if model_id is not None else attrs.model_id(src),
            model_id_given=model_id is not None,
            unit_m=metres_per_unit(out_crs) / scale, grid_scale=scale, min_area=thresholds["--min-area"],
            fill_holes=thresholds["--fill-holes"], simplify=thresholds["--simplify"], probabilities=probabilities,
            calibrated_min_area=calibrated,
        )


class _Reader:
    """Reads (keys, mask) for a window, and notes whether any valid pixel exists at all."""

    def __init__(self, src: rasterio.io.DatasetReader, plan: _Plan):
        self.src, self.plan, self.any_valid = src, plan, False
        self.selected = np.array(sorted(plan.selected), dtype="int64")
        self.masked = attrs.has_mask_band(src)

    def __call__(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        plan = self.plan
        if plan.scenes is not None and not plan.scenes.covers(window):  # a gap between scenes: all nodata
            shape = (int(window.height), int(window.width))
            return np.zeros(shape, dtype="uint8"), np.zeros(shape, dtype=bool)
        keys, valid, keep = self._read(window)
        if self.masked:  # masked pixels (internal mask, alpha) are no data, whatever value they hold
            valid &= bands_valid(self.src, [1], window)
        self.any_valid |= bool(valid.any())
        return _int32_keys(keys, valid & keep, window, self.plan.raster), valid & keep

    def no_data(self, window: Window) -> np.ndarray:
        """Where ``window`` holds no class: nodata, ignore, masked, a gap between scenes (not: another class)."""
        shape = (int(window.height), int(window.width))
        if self.plan.scenes is not None and not self.plan.scenes.covers(window):
            return np.ones(shape, dtype=bool)
        _, valid, _ = self._read(window)
        if self.masked:
            valid &= bands_valid(self.src, [1], window)
        return ~np.broadcast_to(valid, shape)

    def _read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray | bool]:
        """Keys, where they hold a class (not nodata or ignore), and which of them to polygonize."""
        plan = self.plan
        if plan.change:
            change = self.src.read(1, window=window)
            valid = ~np.isin(change, list(plan.skip))
            keep = change == 1
            if plan.semantic:
                t1 = self.src.read(2, window=window).astype("int32")
                t2 = self.src.read(3, window=window).astype("int32")
                keep &= ~np.isin(t1, list(plan.skip)) & ~np.isin(t2, list(plan.skip))
                if len(self.selected):
                    keep &= np.isin(t1, self.selected) | np.isin(t2, self.selected)
                keys = t1 * CHANGE_KEY_BASE + t2
            else:
                keys = change.astype("int32")
            return keys.astype("int32"), valid, keep
        band = self.src.read(1, window=window)
        if band.dtype.name in ("uint8", "uint16"):  # a lookup table is ~10x faster than np.isin
            valid_lut = np.ones(np.iinfo(band.dtype).max + 1, dtype=bool)
            valid_lut[[v for v in plan.skip if 0 <= v < len(valid_lut)]] = False
            if len(self.selected):
                keep_lut = np.zeros_like(valid_lut)
                keep_lut[self.selected[(self.selected >= 0) & (self.selected < len(keep_lut))]] = True
                return band, valid_lut[band], keep_lut[band]
            return band, valid_lut[band], True
        valid = ~np.isin(band, list(plan.skip))
        keep = np.isin(band, self.selected) if len(self.selected) else True
        return band, valid, keep


def _int32_keys(band: np.ndarray, drawn: np.ndarray, window: Window, raster: Path) -> np.ndarray:
    """A block's ids as keys rasterio polygonizes (int32 at most). A value beyond int32 where a polygon would be
    drawn is refused, said as it is: cast, a uint32 4294967295 was written as class -1 and an int64 2**32 + 1
    merged into class 1's polygon. (The range checked in the band's own type: no int64 copy of a block.)"""
    if band.dtype.name in ("uint8", "uint16", "int16", "int32"):
        return band
    beyond = beyond_int32(band)
    if beyond is not None:
        beyond &= drawn
        if beyond.any():
            values = np.unique(band[beyond])
            shown = ", ".join(map(str, values[:6].tolist())) + (", ..." if values.size > 6 else "")
            raise InputError(f"{raster}: {band.dtype} values {shown} (in the block at row {int(window.row_off)}, "
                             f"column {int(window.col_off)}) are beyond the class ids vectorize writes "
                             f"(-2147483648..2147483647); if one marks no data, declare it (gdal_edit.py -a_nodata "
                             f"{values[0]}), else recode the ids")
    return band.astype("int32")  # (a value beyond int32 is left here only where nothing is drawn)


def _value_reader(prob: rasterio.io.DatasetReader, change: bool):
    """Per-pixel probability in 0-1: band 1, or the band of each pixel's class when one band per class.

    predict and change store p as uint8 with a ``SCALE=1/254`` tag; the values are scaled back. Keys
    past the class bands (pixels never polygonized, such as nodata) are clipped; :func:`_check_values`
    refuses a polygon of such a class.
    """
    scale = attrs.probability_scale(prob)
    n = attrs.class_bands(prob)

    def read(window: Window, keys: np.ndarray) -> np.ndarray:
        if n == 1 or change:
            return prob.read(1, window=window).astype("float64") * scale
        stack = prob.read(list(range(1, n + 1)), window=window)
        idx = np.clip(keys.astype("int64"), 0, n - 1)[None]
        return np.take_along_axis(stack, idx, axis=0)[0].astype("float64") * scale

    return read


def _check_values(pieces: list[Piece], prob: rasterio.io.DatasetReader, plan: _Plan) -> None:
    """Refuse polygons whose probabilities would be garbage: a class past the class bands (it would read
    another class's band), or values outside 0-1 (a float raster of something else, nodata under them)."""
    n = attrs.class_bands(prob)
    if not plan.change and n > 1:
        beyond = sorted({p.key for p in pieces if p.key >= n})
        if beyond:
            k = beyond[-1]
            raise InputError(f"--probabilities {prob.name}: {n} class bands, but {plan.raster.name} holds class {k} "
                             f"({plan.names.get(k, k)}), which needs band {k + 1}; not its probabilities")
    for p in pieces:  # 1e-6: a float32 softmax may pass 1 by a rounding
        if p.pixels and not (np.isfinite(p.value_sum) and p.value_sum >= 0 and p.value_max <= 1 + 1e-6):
            what = "change" if plan.change else plan.names.get(p.key, p.key)
            if np.isnan(p.value_sum):  # 'max nan, mean nan' read as numbers gone wrong
                raise InputError(f"--probabilities {prob.name}: no data (NaN) under a {what} polygon of "
                                 f"{plan.raster.name}: not the probabilities of this class raster, or not all of them")
            raise InputError(f"--probabilities {prob.name}: values outside 0-1 (max {p.value_max:g}, mean "
                             f"{p.value_sum / p.pixels:g}) under a {what} polygon: not probabilities (float 0-1, "
                             "or uint8 tagged SCALE=1/254), or no data there")


def _to_world(geoms: np.ndarray, transform: rasterio.Affine, reproject: Transformer | None) -> np.ndarray:
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def affine(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        out = np.column_stack([a * x + b * y + c, d * x + e * y + f])
        if reproject is not None:
            out = np.column_stack(reproject.transform(out[:, 0], out[:, 1]))
        return out

    # Exterior rings counter-clockwise, holes clockwise, whatever the pixel-to-CRS flip did.
    return shapely.orient_polygons(shapely.transform(geoms, affine))


_FILLED = "filled holes"  # a column of _records' that is not written: each polygon's filled holes, or None
_UNFIT = "not squared"  # nor this one: whether --regularize kept the outline's simplified shape (no right-angle fit)
_FIRST = "first pixel"  # nor this one (--instances): the row-major index of each polygon's first pixel, its id's order


def _records(pieces: list[Piece], plan: _Plan, reproject: Transformer | None, pixel_size: float,
             regularize: bool, allow_45: bool, with_values: bool,
             unregularized: list | None = None, no_data=None) -> tuple[list, dict[str, list]]:
    """Finished pieces -> world geometries and attribute columns, after holes/min-area/regularise
    (``unregularized`` collects each part as it was before, for :func:`_without_overlaps`; ``no_data``: a window's
    pixels of no class, which regularised outlines are cut back from, :func:`_within_data`)."""
    m2 = plan.unit_m**2
    pixel_geoms = np.array([p.geometry for p in pieces], dtype=object)
    filled = np.zeros(len(pieces), dtype="int64")  # pixels of each piece's filled holes
    holes = np.full(len(pieces), None, dtype=object)  # and those holes, in the output CRS
    if plan.fill_holes:  # in pixels, so that the pixels filled are counted exactly; measured on the ground
        def ground(polygons: np.ndarray) -> np.ndarray:
            return shapely.area(_to_world(polygons, plan.transform, reproject))

        for i in np.nonzero(shapely.get_num_interior_rings(pixel_geoms) > 0)[0]:
            pixel_geoms[i], gone = fill_small_holes(pixel_geoms[i], plan.fill_holes / m2, ground)
            if len(gone):
                filled[i] = round(float(shapely.area(gone).sum()))
                holes[i] = shapely.multipolygons(_to_world(gone, plan.transform, reproject))
    geoms = _to_world(pixel_geoms, plan.transform, reproject)
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():  # a guard: reprojection can bend a pixel outline into an invalid one
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    parts, owner = shapely.get_parts(geoms, return_index=True)
    keep = shapely.get_type_id(parts) == 3  # polygons only (make_valid may add lines)
    parts, owner = parts[keep], owner[keep]
    if plan.min_area and not plan.semantic:  # semantic change: by whole change region, at the end
        big = shapely.area(parts) * m2 >= plan.min_area
        parts, owner = parts[big], owner[big]
    if regularize:
        # Diagonal walls need a coarser first simplification (2 px) to lose their staircase.
        tolerance = max(plan.simplify / plan.unit_m, pixel_size * (2 if allow_45 else 1))
        if unregularized is not None:
            unregularized.extend(parts)
        fits = [regularized(g, tolerance=tolerance, allow_45=allow_45) for g in parts]
        before = parts
        parts = _within_raster(np.array([g for g, _ in fits], dtype=object), plan, reproject)
        if no_data is not None:
            parts = _within_data(parts, before, plan, reproject, no_data)
    cols = _attributes([pieces[i] for i in owner], parts, plan, with_values)
    if regularize:
        cols[_UNFIT] = [not fit for _, fit in fits]
    cols["pixel_count"] = (np.array(cols["pixel_count"], dtype="int64") + filled[owner]).tolist()
    if plan.fill_holes:
        cols[_FILLED] = holes[owner].tolist()
    if plan.instances:
        cols[_FIRST] = first_pixels(np.array([p.geometry for p in pieces], dtype=object), plan.width)[owner].tolist()
    return list(parts), cols


def _absorbed(geoms: list, pixel_counts: list, holes: list) -> set[int]:
    """The polygons that lie in a filled hole of another (``--fill-holes``): absorbed into it, so that the layer
    stays a coverage (a courtyard patch stayed stacked inside the filled building: two buildings counted, 26 m2 of
    area for 22 of pixels). A filled hole's pixels are already in its polygon's ``pixel_count`` (``holes``: each
    polygon's filled holes, or None); a polygon swallowed otherwise (by a neighbour's straightened outline) adds
    its own (in place)."""
    parts = np.array(geoms, dtype=object)
    inner, outer = shapely.STRtree(parts).query(parts, predicate="within")
    absorbed: dict[int, int] = {}
    for i, j in zip(inner.tolist(), outer.tolist()):
        if i != j and (i not in absorbed or shapely.area(parts[j]) < shapely.area(parts[absorbed[i]])):
            absorbed[i] = j  # the smallest polygon holding it
    for i, j in absorbed.items():
        point = shapely.point_on_surface(parts[i])
        counted = holes[j] is not None and shapely.covers(holes[j], point)
        seen = {i}
        while j in absorbed and j not in seen:  # nested: to the outermost that stays
            seen.add(j)
            j = absorbed[j]
            counted = counted or (holes[j] is not None and shapely.covers(holes[j], point))
        if not counted:
            pixel_counts[j] += pixel_counts[i]
    return set(absorbed)


def _large_regions(geoms: list, min_area: float) -> list[bool]:
    """Which pieces of a semantic change layer belong to a change region (pieces that touch, whatever their
    from/to classes) of at least ``min_area`` (CRS units): a 45 m2 change cut into 12 from/to pieces, each
    under the calibrated 44 m2, vanished from the semantic layer while the plain one kept it."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    parts = np.array(geoms, dtype=object)
    left, right = shapely.STRtree(parts).query(parts, predicate="intersects")
    # pieces sharing an edge, as the plain layer's regions are 4-connected pixels: two blocks meeting at one
    # corner are two regions there (both dropped under the area) and were one here (both kept)
    edge = (left == right) | (shapely.length(shapely.intersection(parts[left], parts[right])) > 0)
    left, right = left[edge], right[edge]
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(len(parts), len(parts)))
    _, region = connected_components(graph, directed=False)
    area = np.bincount(region, weights=shapely.area(parts))
    return (area[region] >= min_area).tolist()


def _no_buildings(plan: _Plan) -> list[str]:
    """The selected classes (none selected: every class vectorized) whose names say no building."""
    chosen = sorted(plan.selected) or sorted(k for k in plan.names if k not in plan.skip)
    return [plan.names.get(k, str(k)) for k in chosen if "building" not in str(plan.names.get(k, "")).lower()]


def _within_raster(parts: np.ndarray, plan: _Plan, reproject: Transformer | None) -> np.ndarray:
    """Regularised outlines clipped to the raster's extent: a building cut by the edge had its cut side turned to
    the building's direction, 4.2 m beyond the raster (30 m2 of its area_m2 outside it; neighbouring tiles'
    footprints overlapped). The extent's sides run along the pixel grid, so a clipped side keeps its right angles."""
    frame = shapely.segmentize(shapely.box(0, 0, plan.width, plan.height), max(plan.width, plan.height) / 64)
    extent = _to_world(np.array([frame], dtype=object), plan.transform, reproject)[0]
    out = parts.copy()
    for i in np.nonzero(~shapely.covers(extent, parts))[0]:
        inside = [g for g in shapely.get_parts(shapely.intersection(parts[i], extent)) if shapely.get_type_id(g) == 3]
        if inside:
            out[i] = max(inside, key=shapely.area)
    return out


def _within_data(parts: np.ndarray, before: np.ndarray, plan: _Plan, reproject: Transformer | None,
                 no_data) -> np.ndarray:
    """Regularised outlines cut back from the pixels of no data around them (``no_data(window)``): a building at a
    scene's nodata edge (an ortho's collar, a mosaic's gap) had its cut side turned to the building's direction, up
    to metres into the nodata (QA: 6.5 m2 of a building at a 13 degree angle). Each outline's pixel window is read;
    the data edge runs along the pixel grid, so the cut side follows it, as at the raster's extent. No data the
    outline held ``before`` (a nodata hole --fill-holes filled, its pixels counted) stays in it."""
    out = parts.copy()
    beyond = ~shapely.covers(before, parts)  # an outline within its pixels (a square house) reaches no nodata
    back = (lambda x, y: reproject.transform(x, y, direction="INVERSE")) if reproject is not None else None
    inverse = ~plan.transform
    for i in np.nonzero(beyond)[0]:
        part = parts[i]
        xy = shapely.get_coordinates(part)
        x, y = (back(xy[:, 0], xy[:, 1]) if back is not None else (xy[:, 0], xy[:, 1]))
        col, row = inverse * (np.asarray(x), np.asarray(y))
        if not (np.isfinite(col).all() and np.isfinite(row).all()):
            continue
        c0, r0 = max(int(np.floor(col.min())) - 1, 0), max(int(np.floor(row.min())) - 1, 0)
        c1, r1 = min(int(np.ceil(col.max())) + 1, plan.width), min(int(np.ceil(row.max())) + 1, plan.height)
        if c1 <= c0 or r1 <= r0:
            continue
        empty = no_data(Window(c0, r0, c1 - c0, r1 - r0))
        if not empty.any():
            continue
        found = features.shapes(empty.astype("uint8"), mask=empty, connectivity=4,
                                transform=rasterio.Affine(1.0, 0.0, float(c0), 0.0, 1.0, float(r0)))
        empty_world = _to_world(_polygons_from_geojson([g for g, _ in found]), plan.transform, reproject)
        rest = shapely.difference(part, shapely.difference(shapely.union_all(empty_world), before[i]))
        inside = [g for g in shapely.get_parts(rest) if shapely.get_type_id(g) == 3]
        if inside:
            out[i] = max(inside, key=shapely.area)
    return out


def _without_overlaps(parts: np.ndarray, raw: np.ndarray, grid: float) -> np.ndarray:
    """Regularised polygons that overlap cut apart (houses each straightened on its own: 37 of 48 party walls of
    a terrace overlapped, up to 1.2 m2; so did a change region's from/to pieces): the overlap goes to the house (piece) whose pixels hold more of it, so
    neighbours meet along one line, as QGIS's topology checks want and summed areas count each wall once
    (to floating-point rounding: 1e-9 of a pixel's area; a grid snap would leave slivers of a grid cell).
    Overlaps under ``grid`` squared (a thousandth of a pixel, squared) are rounding, left as they are."""
    out = parts.copy()
    # 'intersects', not 'overlaps': DE-9IM's overlaps is false where one piece lies wholly inside the other (1-2 px
    # from/to pieces inside a neighbour's straightened outline were left there)
    left, right = shapely.STRtree(out).query(out, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist()):
        if i >= j:
            continue
        shared = shapely.intersection(out[i], out[j])
        if shapely.area(shared) <= grid * grid:
            continue
        keep, cut = (i, j) if shapely.area(shapely.intersection(raw[i], shared)) >= \
            shapely.area(shapely.intersection(raw[j], shared)) else (j, i)
        rest = shapely.make_valid(shapely.difference(out[cut], out[keep]))
        polygons = [g for g in shapely.get_parts(rest) if shapely.get_type_id(g) == 3]
        if polygons:  # one polygon per house: the largest piece (a sliver beyond the neighbour is dropped)
            out[cut] = max(polygons, key=shapely.area)
    return out


def _columns(plan: _Plan, with_values: bool) -> list[str]:
    cols = ["building_id", "class_id", "class_name"] if plan.instances else ["class_id", "class_name"]
    if plan.change:
        cols = ["change", "from_class", "to_class", "from_name", "to_name"] if plan.semantic else ["change"]
    cols += ["area_m2", "perimeter_m", "pixel_count"]
    if with_values:
        cols += ["mean_prob", "max_prob"]
    return cols + ["source", "model_id"]


def _attributes(owners: list[Piece], parts: np.ndarray, plan: _Plan, with_values: bool) -> dict[str, list]:
    """Attribute columns for ``parts``, each cut from the piece in ``owners`` at the same index."""
    n = len(owners)
    keys = np.array([p.key for p in owners], dtype="int64")
    pixels = np.array([p.pixels for p in owners], dtype="int64")
    cols: dict[str, list] = {}
    if plan.change:
        cols["change"] = [1] * n
        if plan.semantic:
            t1, t2 = np.divmod(keys, CHANGE_KEY_BASE)
            cols["from_class"], cols["to_class"] = t1.tolist(), t2.tolist()
            cols["from_name"] = [plan.names.get(k, str(k)) for k in cols["from_class"]]
            cols["to_name"] = [plan.names.get(k, str(k)) for k in cols["to_class"]]
    else:
        cols["class_id"] = keys.tolist()
        cols["class_name"] = [plan.names.get(k, str(k)) for k in cols["class_id"]]
    cols["area_m2"] = (shapely.area(parts) * plan.unit_m**2).tolist() if n else []
    cols["perimeter_m"] = (shapely.length(parts) * plan.unit_m).tolist() if n else []
    cols["pixel_count"] = pixels.tolist()
    if with_values:
        sums = np.array([p.value_sum for p in owners], dtype="float64")
        cols["mean_prob"] = np.divide(sums, pixels, out=np.full(n, np.nan), where=pixels > 0).tolist()
        cols["max_prob"] = [p.value_max for p in owners]
    if plan.scenes is not None and n:
        at = plan.scenes.scenes_at(shapely.point_on_surface([p.geometry for p in owners]))
        cols["source"] = [plan.scenes.scene_names[i] for i in at]
        cols["model_id"] = [plan.model_id if plan.model_id_given else plan.scenes.model_ids[i] for i in at]
    else:
        cols["source"] = [plan.raster.name] * n
        cols["model_id"] = [plan.model_id] * n
    return cols


# One type per attribute, so an empty layer has the same schema as a full one (pandas would make
# every column of an empty frame float, and a later --append would turn names into 0.0).
_FIELD_TYPES = {
    "building_id": "int64", "class_id": "int64", "class_name": "str", "change": "int64", "from_class": "int64",
    "to_class": "int64", "from_name": "str", "to_name": "str", "area_m2": "float64", "perimeter_m": "float64",
    "pixel_count": "int64", "mean_prob": "float64", "max_prob": "float64", "source": "str", "model_id": "str",
}
_OGR_TYPES = {"int64": "int64", "float64": "float64", "str": "object"}  # as pyogrio.read_info reports them


def _frame(geoms: list, cols: dict[str, list], crs: CRS):
    """The layer's rows with the fixed attribute types of :data:`_FIELD_TYPES`, whatever their number."""
    import geopandas as gpd
    import pandas as pd

    data = {k: pd.Series(v, dtype=_FIELD_TYPES[k]) for k, v in cols.items()}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)


GPKG_RESERVED_PREFIXES = {"gpkg": "GeoPackage", "sqlite_": "SQLite"}  # layer names (any case) taken by their tables
GPKG_REFUSED_FIRST = "`~!@#$%^&*()+-={}|[]\\:\";'<>?,./"  # GDAL's GeoPackage driver: no layer name starts so
STAGED = ("gpkg", "geojson", "fgb")  # formats the polygons stream to (the last two through a GeoPackage)


def _convert(stage: Path, path: Path, fmt: str, layer: str) -> None:
    """The staged GeoPackage layer into ``fmt`` at ``path``, batch by batch (GDAL's Arrow streams): the layer
    held whole took about 1 KiB a polygon (348k polygons to GeoJSON: 689 MiB, 409 MiB to a GeoPackage)."""
    from pyogrio.raw import open_arrow, write_arrow

    info = pyogrio.read_info(stage, layer=layer) if fmt == "geojson" else None
    if info is not None and _across_180(info):
        batch = 65536  # our own cut at 180 (see _wgs84): GeoPandas frames of a batch each, not Arrow's stream
        total = info["features"]
        for start in range(0, max(total, 1), batch):
            frame = pyogrio.read_dataframe(stage, layer=layer, skip_features=start, max_features=batch)
            _write(frame, path, fmt, layer, append=start > 0)
        return
    with open_arrow(stage, layer=layer, batch_size=65536, use_pyarrow=False) as (meta, stream):
        crs = meta["crs"]
        if fmt == "geojson" and crs:  # GDAL took a compound CRS to WGS 84 in 3-D: EPSG:27700+5701 moved 1.67 m
            crs = _horizontal(crs)
        write_arrow(stream, path, layer=layer, driver=FORMATS[fmt], geometry_name=meta["geometry_name"] or "geom",
                    geometry_type="Polygon", crs=crs, layer_options=_layer_options(fmt))


def _horizontal(crs: str) -> str:
    """A compound CRS's horizontal part (footprints are 2-D, as GeoPandas' ``to_crs`` takes them), else ``crs``."""
    full = CRS.from_user_input(crs)
    return full.sub_crs_list[0].to_wkt() if full.is_compound and full.sub_crs_list else crs


def _across_180(info: dict) -> bool:
    """Whether a layer (``pyogrio.read_info``) crosses the antimeridian or holds a pole in WGS 84: its bounding box
    torn apart on the way there (:func:`rsmamba.raster.ground.torn`)."""
    bounds = info.get("total_bounds")
    if info.get("crs") is None or bounds is None or not np.all(np.isfinite(bounds)):
        return False
    x0, y0, x1, y1 = bounds
    width, height = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
    return torn(CRS.from_user_input(info["crs"]), rasterio.Affine(width, 0, x0, 0, -height, y1), 1, 1,
                CRS.from_epsg(4326))


# GeoJSON edges are straight in degrees: edges are cut to this length (metres) before a layer across 180 or round
# a pole goes to WGS 84 (a 100 km block over the South Pole, taken corner by corner, was drawn 46 % larger)
GEOJSON_STEP_M = 1000.0


def _wgs84(frame):
    """``frame`` in WGS 84 as RFC 7946 wants it, cut at 180 by us and snapped to what GDAL writes: GDAL's own cut
    (``RFC7946=YES``) and snapping left a piece's ring touching itself on 180, an invalid polygon
    ('Self-intersection[180 -17.00076469]'). Each ring is followed vertex to vertex across 180, one round a pole
    closed through it (:func:`rsmamba.raster.source.unwrap_longitudes`), and cut at 180 into valid pieces."""
    wgs = frame.to_crs(4326)
    if len(frame) == 0 or not _across_180({"crs": frame.crs, "total_bounds": frame.total_bounds}):
        return wgs
    step = 0.01 if frame.crs.is_geographic else GEOJSON_STEP_M / metres_per_unit(frame.crs)
    dense = frame.set_geometry(shapely.segmentize(frame.geometry.to_numpy(), step)).to_crs(4326)
    geoms = unwrap_longitudes(dense.geometry.to_numpy(), z=False)

    def turned(g: np.ndarray, degrees: float) -> np.ndarray:
        return shapely.transform(g, lambda xy: np.column_stack([xy[:, 0] + degrees, xy[:, 1]]))

    west = turned(shapely.intersection(geoms, shapely.box(-540, -90, -180, 90)), 360.0)
    middle = shapely.intersection(geoms, shapely.box(-180, -90, 180, 90))
    east = turned(shapely.intersection(geoms, shapely.box(180, -90, 540, 90)), -360.0)
    pieces = [shapely.union_all([p for p in shapely.get_parts([w, m, e]) if p.geom_type in ("Polygon", "MultiPolygon")])
              for w, m, e in zip(west, middle, east)]
    # GDAL's writer moves a vertex within about 1e-7 degrees of 180 onto it and rounds to 8 decimals, which made a
    # piece's ring touch itself on 180; done here first, with shapely's snap rounding (valid by construction), it
    # finds nothing left to move
    def onto_180(xy: np.ndarray) -> np.ndarray:  # GDAL 3.10 moves 180 - 1.05e-7 onto 180, leaves 180 - 1.1e-7
        x = np.where(np.abs(np.abs(xy[:, 0]) - 180) < 1.1e-7, np.sign(xy[:, 0]) * 180, xy[:, 0])
        return np.column_stack([x, xy[:, 1]])

    return wgs.set_geometry(shapely.set_precision(shapely.transform(np.array(pieces, dtype=object), onto_180), 1e-8))


def _write(frame, path: Path, fmt: str, layer: str, append: bool = False) -> None:
    if fmt == "parquet":
        frame.to_parquet(path)
        return
    if fmt == "geojson":
        frame = _wgs84(frame)
    # OVERWRITE: replace a GeoPackage layer whose name differs only in case (one layer to GDAL).
    options = {"OVERWRITE": "YES"} if fmt == "gpkg" and not append else _layer_options(fmt)
    pyogrio.write_dataframe(frame, path, driver=FORMATS[fmt], layer=layer, append=append,
                            promote_to_multi=False, geometry_type="Polygon", layer_options=options)


def _layer_options(fmt: str) -> dict[str, str]:
    """GeoJSON as RFC 7946 has it: WGS 84 longitude/latitude (GDAL reprojects), no ``crs`` member, at 8 decimals
    (RFC 7946's default of GDAL, 7, moved a 155 m2 footprint's edges by up to 1 cm: 0.4 m2). In the raster's
    own CRS it was the 2008 draft's, which web maps and GeoJSON libraries misplace or reject; the attributes
    (area_m2, perimeter_m) are measured before, in the raster's ground units."""
    return {"RFC7946": "YES", "COORDINATE_PRECISION": "8"} if fmt == "geojson" else {}  # 1e-8 degrees: 1 mm


@dataclass
class _Target:
    """The layer features go to: its name, whether they follow existing ones, the next building_id."""

    layer: str
    append: bool = False
    next_id: int = 1


def _transformable(source: CRS, target: CRS) -> bool:
    """Whether PROJ can carry coordinates from ``source`` to ``target`` (an engineering CRS cannot)."""
    try:
        Transformer.from_crs(source, target, always_xy=True)
    except Exception:  # noqa: BLE001 - pyproj's ProjError, or a CRS it cannot read
        return False
    return True


def _missing_grids(source: CRS, target: CRS) -> tuple[str, str] | None:
    """(the grids, the accuracy PROJ falls back to) where the best transformation needs grids PROJ cannot find, else
    None. NAD27 or OSGB36 went to WGS 84 by a Helmert fallback (10-20 m, 2 m) unsaid, while the README's GeoJSON
    is 'at 8 decimals, a millimetre'; pyproj's own warning was hidden."""
    import warnings

    from pyproj.transformer import TransformerGroup

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyproj's UserWarning: said here, in one line
            group = TransformerGroup(source, target, always_xy=True)
    except Exception:  # noqa: BLE001 - pyproj's ProjError: _transformable has said it
        return None
    if group.best_available or not group.unavailable_operations:
        return None
    grids = sorted({g.short_name for op in group.unavailable_operations[:1] for g in op.grids if not g.available})
    accuracy = next((t.accuracy for t in group.transformers if t.accuracy is not None and t.accuracy >= 0), None)
    return ", ".join(grids) or "unknown", f"{accuracy:g} m" if accuracy is not None else "an unknown accuracy"


def _crs_name(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _written_as(layer_crs: CRS, ours: CRS) -> bool:
    """Whether a layer's CRS is ``ours``, or what GDAL's writers store for it: they label a CRS by the EPSG code
    it loosely matches, so a datum-less PROJ string's polygons (ellipsoid GRS80 alone) went into a layer of
    EPSG:2263 (NAD83), and their --append to that very layer was refused."""
    if layer_crs.equals(ours, ignore_axis_order=True):
        return True
    code = ours.to_epsg()
    return code is not None and layer_crs.to_epsg(min_confidence=100) == code and ours.to_epsg(min_confidence=100) is None


def _gpkg_geometry(blob: bytes | None):
    """A GeoPackage geometry blob (its header, an envelope, then WKB) as shapely; None for NULL."""
    if blob is None:
        return None
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get((blob[3] >> 1) & 7, 0)
    return shapely.from_wkb(bytes(blob[8 + envelope:]))


def _gpkg_bound(i: int):
    def bound(blob: bytes | None) -> float | None:
        geom = _gpkg_geometry(blob)
        return None if geom is None or geom.is_empty else float(geom.bounds[i])

    return bound


_GPKG_FUNCTIONS = {
    "ST_IsEmpty": lambda blob: None if blob is None else int(bool(blob[3] & 0x10)),  # the header's empty flag
    "ST_MinX": _gpkg_bound(0), "ST_MinY": _gpkg_bound(1), "ST_MaxX": _gpkg_bound(2), "ST_MaxY": _gpkg_bound(3),
}


def _number_buildings(gpkg: Path, layer: str, next_id: int) -> None:
    """Number the buildings streamed into ``layer`` of ``gpkg`` (those with ``building_id >= next_id``: the first
    pixel's index above ``next_id``) ``next_id``, ``next_id + 1``, ... in that order, on disk. They were numbered in
    the order the block rows finished them: the same building had another id at another --block-size (QA)."""
    import sqlite3

    table = '"' + layer.replace('"', '""') + '"'
    with contextlib.closing(sqlite3.connect(gpkg)) as db, db:
        for name, func in _GPKG_FUNCTIONS.items():  # the layer's R-tree triggers name them (GDAL's own SQL has them)
            db.create_function(name, 1, func, deterministic=True)
        db.execute("CREATE TEMP TABLE building_rank (id INTEGER PRIMARY KEY, rank INTEGER)")
        db.execute(f"INSERT INTO building_rank SELECT rowid, ROW_NUMBER() OVER (ORDER BY building_id, rowid) "
                   f"FROM {table} WHERE building_id >= ?", (next_id,))
        db.execute(f"UPDATE {table} SET building_id = ? - 1 + (SELECT rank FROM building_rank WHERE id = "
                   f"{table}.rowid) WHERE building_id >= ?", (next_id, next_id))


def _check_append(output: Path, layer: str, plan: _Plan, columns: list[str]) -> int:
    """Refuse appending rows another layer would misread (CRS, geometry type, fields); the next building_id."""
    info = pyogrio.read_info(output, layer=layer)
    where = f"layer {layer!r} of {output}"
    crs = CRS.from_user_input(info["crs"]) if info["crs"] else None
    if crs is None or not _written_as(crs, plan.out_crs):
        theirs, ours = _crs_name(crs) if crs is not None else "no CRS", _crs_name(plan.out_crs)
        if theirs == ours:  # 'is in EPSG:2263, these polygons in EPSG:2263': a code matched loosely
            theirs, ours = f"{theirs} (datum {crs.datum.name})", f"{ours} (datum {plan.out_crs.datum.name})"
        arg = _crs_name(crs) if crs is not None and crs.to_epsg() else f"'{crs.to_wkt()}'" if crs is not None else ""
        hint = f" (pass --reproject {arg} to append to it)" if crs is not None and not crs.is_geographic else ""
        raise InputError(f"{where} is in {theirs}, these polygons in {ours}{hint}")
    if info["geometry_type"] not in ("Polygon", "Unknown"):
        raise InputError(f"{where} holds {info['geometry_type']} geometries, not Polygon: append to another layer")
    have = dict(zip([str(f) for f in info["fields"]], [str(d) for d in info["dtypes"]]))
    want = {c: _OGR_TYPES[_FIELD_TYPES[c]] for c in columns}
    if have != want:
        diff = [f"no {c}" for c in want if c not in have] + [f"extra {c}" for c in have if c not in want]
        diff += [f"{c} is {have[c]}, not {want[c]}" for c in want if c in have and have[c] != want[c]]
        raise InputError(f"{where} has other fields ({', '.join(diff)}): append to a layer vectorize wrote "
                         "with the same options, or write another layer")
    if "building_id" not in want or not info["features"]:
        return 1
    ids = pyogrio.read_dataframe(output, layer=layer, columns=["building_id"], read_geometry=False)["building_id"]
    top = int(ids.max()) if ids.notna().any() else 0
    if top > INT64_MAX - plan.width * plan.height:  # each building is a pixel at least: its id must fit 64 bits
        raise InputError(f"{where}: its building_id reaches {top:,}, leaving no room below 2^63 (64-bit integers) "
                         "for this raster's buildings; write another layer")
    return top + 1


def _say_mapped_twice(output: Path, layer: str, plan: _Plan, src) -> int:
    """Warn when polygons of the layer appended to stand on this raster's data; how many do.

    The same raster appended twice (a script run again) doubled every polygon, exit 0 and unsaid (QA): a
    polygon counts when its interior point falls on a pixel with data (read on a grid of at most 2048 px a
    side), so neighbouring tiles, whose polygons meet at the shared edge, are not counted."""
    corners = np.array(footprint(plan.width, plan.height, plan.transform, steps=16), dtype=float)
    try:
        if plan.out_crs != plan.crs:  # its edges bend into the layer's CRS
            corners = np.column_stack(Transformer.from_crs(plan.crs, plan.out_crs, always_xy=True)
                                      .transform(corners[:, 0], corners[:, 1]))
        if not np.isfinite(corners).all():
            return 0
        bbox = (*corners.min(axis=0), *corners.max(axis=0))
        there = pyogrio.read_dataframe(output, layer=layer, columns=["source"], bbox=tuple(float(v) for v in bbox))
    except Exception:  # noqa: BLE001 - a layer or CRS this check cannot read: the append itself decides
        return 0
    geoms = there.geometry.values
    there = there[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]  # (no interior point to them)
    if not len(there):
        return 0
    points = shapely.get_coordinates(shapely.point_on_surface(there.geometry.values))
    x, y = points[:, 0], points[:, 1]
    if plan.out_crs != plan.crs:
        x, y = Transformer.from_crs(plan.out_crs, plan.crs, always_xy=True).transform(x, y)
    col, row = ~plan.transform * (np.asarray(x), np.asarray(y))
    inside = np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col < plan.width) & (row >= 0) & (row < plan.height)
    if not inside.any():
        return 0
    step = max(1, -(-max(plan.width, plan.height) // 2048))
    mask = src.dataset_mask(out_shape=(-(-plan.height // step), -(-plan.width // step)))
    r = np.minimum((row[inside] // step).astype(int), mask.shape[0] - 1)
    c = np.minimum((col[inside] // step).astype(int), mask.shape[1] - 1)
    on_data = mask[r, c] > 0
    count = int(on_data.sum())
    if count:
        sources = sorted({str(v) for v in there["source"].to_numpy()[inside][on_data]})
        named = ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
        log.warning("--append: layer %r of %s already holds %s polygon%s on this raster's data (source %s): that "
                    "ground is now mapped twice; append each raster once, or pass --overwrite to replace the layer",
                    layer, output, f"{count:,}", "s" * (count != 1), named)
    return count


INT64_MAX = 2**63 - 1  # the largest GeoPackage / OGR integer: a next id past it was an OverflowError traceback


def _sqlite_objects(path: Path) -> dict[str, tuple[str, str]]:
    """{:func:`sql_fold` of its name: (type, name)} of the tables, views and indexes of the SQLite file ``path``: one namespace
    (case aside) with a new layer's table, beyond the layers ``list_layers`` names (R-trees ``rtree_<layer>_geom``
    and their ``_node`` tables, another program's indexes). {} where SQLite cannot read it (GDAL says why)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view', 'index')").fetchall()
    except sqlite3.Error:
        return {}
    return {sql_fold(str(name)): (str(kind), str(name)) for kind, name in rows}



def _start_layer(output: Path, tmp: Path, plan: _Plan, layer: str, columns: list[str], *,
                 overwrite: bool, append: bool) -> _Target:
    """Prepare the scratch copy of an existing GeoPackage and say where and how features go."""
    if not output.exists():
        return _Target(layer)
    if plan.fmt != "gpkg":
        if not overwrite:
            raise InputError(f"output {output} exists (use --overwrite to replace it)")
        return _Target(layer)
    busy = [f"{output}{suffix}" for suffix in ("-wal", "-shm", "-journal") if Path(f"{output}{suffix}").exists()]
    if busy:  # SQLite's files of an open database: a copy without the -wal's pages, renamed over a file that
        # QGIS still writes through its -wal, is a corrupt GeoPackage
        raise InputError(f"output {output} is open in another program ({', '.join(Path(b).name for b in busy)} "
                         "beside it): close it there (QGIS: remove its layers) and run again; if no program has "
                         "it open, opening it once with ogrinfo finishes its pending changes")
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(output)]
    except Exception:  # pyogrio raises DataSourceError on anything unreadable
        raise InputError(f"output {output} exists and is not a GeoPackage; remove it or choose another -o") from None
    # GeoPackage layer names are case-insensitive: "B" is the layer "b".
    same = next((name for name in layers if sql_fold(name) == sql_fold(layer)), None)
    taken = _sqlite_objects(output).get(sql_fold(layer)) if same is None else None
    if taken is not None:  # GDAL's "table already exists", once every polygon was computed
        kind, name = taken
        raise InputError(f"layer name {layer!r} is taken in {output} by its {kind} {name!r}, which is not a layer "
                         "(a layer's spatial index, another program's index); pass --layer NAME for another")
    if same is not None and not (overwrite or append):
        raise InputError(f"layer {same!r} exists in {output} (use --overwrite to replace that layer, --append to "
                         "add to it, or --layer NAME for a new one)")
    if same is not None and append:
        next_id = _check_append(output, same, plan, columns)
        shutil.copy2(output, tmp)
        return _Target(same, append=True, next_id=next_id)
    if append:  # a typo in --layer made a second layer beside the one meant, unsaid (QA); ogr2ogr -append makes it too
        log.warning("--append: %s holds no layer %r (its layers: %s): a new layer is made", output, layer,
                    ", ".join(repr(n) for n in layers) or "none")
    shutil.copy2(output, tmp)
    return _Target(layer)


@typed_arguments
@gdal_cache_capped()
def vectorize_raster(
    raster: str | Path,
    output: str | Path,
    *,
    classes: str | int | Sequence[str | int] | None = None,
    min_area: str | float | None = None,
    simplify: str | float | None = None,
    regularize: bool = False,
    allow_45: bool = False,
    fill_holes: str | float | None = None,
    output_format: str | None = None,
    probabilities: str | Path | None = None,
    reproject_to: str | None = None,
    model_id: str | None = None,
    change: bool | None = None,
    block_size: int = 2048,
    progress: bool = False,
    scenes: Mosaic | None = None,
    overwrite: bool = False,
    layer: str | None = None,
    append: bool = False,
    instances: bool = False,
    seed_threshold: float | None = None,
    min_seed: str | float | None = None,
) -> VectorizeSummary:
    """Polygonize ``raster`` into a GIS layer at ``output``; see the module docstring.

    Thresholds take ground units: ``min_area="4m2"``, ``simplify="0.5m"``, ``fill_holes="2m2"``.
    ``regularize`` orthogonalises every output polygon (meant for ``classes=["building"]``);
    it replaces ``simplify`` for those polygons. ``change=None`` detects a change raster from
    band 1's description. ``scenes`` is set by :func:`~.many.vectorize_many` when ``raster`` is
    the VRT mosaic of several scenes: it names each polygon's source scene and skips gaps.

    Output policy (:func:`rsmamba.atomic.publish`): a GeoPackage holds layers, so a new ``layer``
    (default: the file's stem) is added to an existing one and its other layers are kept; an
    existing layer is refused unless ``overwrite`` (replace that layer only) or ``append`` (add
    features to it). Other formats hold one layer: an existing file needs ``overwrite``.

    ``instances`` splits each region into individual buildings along the predicted contacts
    (the ``p(interior)``/``p(contact)`` bands of ``probabilities``; :mod:`.instances`) before
    regularising; every polygon gets a ``building_id``. ``seed_threshold`` is the ``p(interior)``
    a watershed seed needs (0.5; higher: fewer, surer seeds, fewer false splits); seeds smaller than
    ``min_seed`` (ground area, ``"4m2"``) are dropped. None means not given, the default in brackets; given
    without ``instances`` they are refused, as ``allow_45`` without ``regularize`` (they would change nothing).
    """
    given = [name for name, value in (("--seed-threshold", seed_threshold), ("--min-seed", min_seed)) if value is not None]
    if given and not instances:  # they tune the building split: without it they would change nothing, silently
        raise InputError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only with --instances")
    if allow_45 and not regularize:  # an angle of the orthogonalised outlines: nothing to allow without them
        raise InputError("--allow-45 applies only with --regularize")
    seed_threshold = 0.5 if seed_threshold is None else seed_threshold
    min_seed = "4m2" if min_seed is None else min_seed
    start = time.perf_counter()
    raster, output = Path(raster), Path(output)
    # a class raster and its probabilities published together by a killed run are read together
    settle_inputs([raster, probabilities, *([r.path for r in scenes.rasters] if scenes is not None else [])])
    if isinstance(classes, (str, int)):  # one class: not its letters ("building" iterated b, u, i, ...)
        classes = [classes]
    plan = _plan(raster, output, classes=classes, min_area=min_area, simplify=simplify, fill_holes=fill_holes,
                 output_format=output_format, probabilities=probabilities, reproject_to=reproject_to,
                 model_id=model_id, change=change)
    plan.scenes = scenes
    plan.instances = instances
    if regularize and not plan.change:  # right angles suit buildings; a field or a road squared is garbage
        others = _no_buildings(plan)
        if others:
            log.warning("--regularize squares every selected class, here %s too (meant for buildings: "
                        "--classes building)", ", ".join(others[:6]))
    if not 0 < seed_threshold <= 1:
        raise InputError(f"--seed-threshold must be in (0, 1], got {seed_threshold}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise InputError(f"--block-size must be a whole number of pixels >= 1, got {block_size!r}")
    if instances and (plan.probabilities is None or plan.change):
        raise InputError("--instances splits building regions along predicted contacts: it needs a class raster "
                         "and --probabilities from a model with instance outputs")
    if instances and any("building" in str(n).lower() for n in plan.names.values()):  # (a table without: unknown)
        others = _no_buildings(plan)
        if others:  # trees and roads were 'split into buildings' and numbered as buildings, exit 0
            raise InputError(f"--instances splits building regions into buildings; {', '.join(others[:6])} "
                             f"{'is' if len(others) == 1 else 'are'} no building class: select the buildings "
                             "(--classes building)")
    label = scenes.label if scenes is not None else str(raster)
    reproject = None
    if not plan.out_crs.equals(plan.crs):
        reproject = Transformer.from_crs(plan.crs, plan.out_crs, always_xy=True)
    pixel_area = abs(plan.transform.a * plan.transform.e - plan.transform.b * plan.transform.d)
    pixel_size = float(np.sqrt(pixel_area))
    if reproject is not None:  # one pixel's size and area in the output CRS, measured at the raster centre
        col, row = plan.width / 2, plan.height / 2
        xs, ys = zip(*(plan.transform * (col + dc, row + dr) for dc, dr in ((0, 0), (1, 0), (0, 1))))
        (x0, x1, x2), (y0, y1, y2) = reproject.transform(list(xs), list(ys))
        pixel_size = float(np.hypot(x1 - x0, y1 - y0))
        # in the raster's units (degrees, feet) times the output's metres, --min-seed was 1e10 pixels from EPSG:4326
        pixel_area = abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0))
    # streamed to the GeoPackage batch by batch, unless the layer is finished whole: a coverage simplified
    # together, or regularised houses cut apart along their party walls (neighbours may lie in two batches)
    # regularised polygons that meet (houses along party walls, a change region's from/to pieces) are cut apart
    # at the end: each squared on its own, they overlapped (11 pairs, 6325 m2 counted twice, on a Landsat pair)
    cut_apart = regularize and (instances or plan.change)
    stream = (plan.fmt in STAGED and not (plan.simplify and not regularize) and not cut_apart
              and not (plan.semantic and plan.min_area)  # a change region's from/to pieces may lie in two batches
              and not plan.fill_holes)  # so may a filled polygon and the patches in its hole
    unregularized: list | None = [] if cut_apart else None
    with_values = plan.probabilities is not None
    summary = VectorizeSummary(output=output, calibrated_min_area=plan.calibrated_min_area, semantic=plan.semantic,
                               grid_scale=plan.grid_scale, crs_name=_crs_name(plan.out_crs))
    counts: Counter[str] = Counter()
    if layer is not None and not layer.strip():  # '' was the file's name without a word
        raise InputError("--layer '': an empty layer name; give one, or drop --layer for the file's name")
    layer_name = layer or output.stem
    if (layer is not None or append) and plan.fmt != "gpkg":
        raise InputError(f"--layer and --append need GeoPackage output, not {plan.fmt}")
    reserved = next((p for p in GPKG_RESERVED_PREFIXES if layer_name.lower().startswith(p)), None)
    if plan.fmt != "gpkg" and (layer_name[:1] in tuple(GPKG_REFUSED_FIRST) or reserved):
        # the staging GeoPackage's layer (and the GeoJSON's "name") for -roofs.geojson or gpkg_roofs.fgb
        layer_name = "_" + layer_name.lstrip(GPKG_REFUSED_FIRST) if layer_name.lstrip(GPKG_REFUSED_FIRST) else "polygons"
    if plan.fmt == "gpkg" and layer_name[:1] and layer_name[0] in GPKG_REFUSED_FIRST:  # GDAL's words blamed spaces
        raise InputError(f"layer name {layer_name!r} ({'--layer' if layer else 'the file name without .gpkg'}) starts "
                         f"with {layer_name[0]!r}, which GeoPackage layer names may not; pass --layer NAME")
    if plan.fmt == "gpkg" and reserved:  # GeoPackage's and SQLite's own tables (SQLite's words otherwise)
        raise InputError(f"layer name {layer_name!r} ({'--layer' if layer else 'the file name without .gpkg'}) starts "
                         f"with {reserved!r}, which {GPKG_RESERVED_PREFIXES[reserved]} keeps for its own tables; "
                         "pass --layer NAME")
    if append and overwrite:
        raise InputError("--append adds to a layer, --overwrite replaces it: pass one of them")
    inputs = [raster, plan.probabilities, *([r.path for r in scenes.rasters] if scenes is not None else [])]
    from tqdm import tqdm

    with rasterio.open(plan.raster) as src, publish([output], inputs=inputs,
                                                     overwrite=overwrite or plan.fmt == "gpkg") as pub:
        tmp = pub[0]
        # GeoJSON and FlatGeobuf cannot take features batch by batch: streamed into a GeoPackage beside the
        # scratch (a stale partial to the next run if this one is killed), converted as a stream at the end
        stage = tmp.with_name(f"{tmp.name}.stage.gpkg") if stream and plan.fmt != "gpkg" else None
        sink, sink_fmt = (stage, "gpkg") if stage is not None else (tmp, plan.fmt)
        columns = _columns(plan, with_values)
        target = _start_layer(output, tmp, plan, layer_name, columns, overwrite=overwrite, append=append)
        layer_name, written = target.layer, target.append
        if target.append:
            _say_mapped_twice(output, layer_name, plan, src)
        prob = rasterio.open(plan.probabilities) if with_values else None
        try:
            reader = _Reader(src, plan)
            splitter = None
            if instances:
                from rsmamba.vectorize.instances import InstanceSplitter

                try:
                    seed_m2 = parse_area(min_seed, "--min-seed") or 0.0
                except ValueError as exc:
                    raise InputError(str(exc)) from None
                pixel_m2 = pixel_area * plan.unit_m**2
                splitter = InstanceSplitter(prob, min_seed_px=max(1, int(round(seed_m2 / pixel_m2))),
                                            seed_threshold=seed_threshold)
            next_id = target.next_id  # after the building_ids of the layer appended to
            n_rows = -(-plan.height // block_size)
            # disable=None: the bar shows only on a terminal, so piped errors stay one line.
            bar = tqdm(total=n_rows, desc="vectorize", unit="block row", disable=None if progress else True)
            kept_geoms: list = []
            kept_cols: dict[str, list] = {k: [] for k in columns}
            kept_holes: list = []
            # --regularize: whether each kept polygon kept its simplified shape, filtered with the polygons, so the
            # summary counts those written (it said '172 of 183' of a layer of 160: before the min-area filter)
            kept_unfit: list[bool] = []
            unknown: set[int] = set()  # ids no class of the table has: written, named by their id, and said
            for batch in polygonize_blocks(plan.width, plan.height, reader, block_size=block_size,
                                           read_values=_value_reader(prob, plan.change) if prob else None,
                                           on_row=bar.update):
                if prob is not None:
                    _check_values(batch, prob, plan)
                if not plan.change:
                    unknown.update(p.key for p in batch if p.key not in plan.names)
                if splitter is not None:
                    batch = splitter(batch, _value_reader(prob, plan.change))
                geoms, cols = _records(batch, plan, reproject, pixel_size, regularize, allow_45, with_values,
                                       unregularized, no_data=reader.no_data)
                kept_holes.extend(cols.pop(_FILLED, []))  # --fill-holes: never streamed
                unfit = cols.pop(_UNFIT, [])
                first = cols.pop(_FIRST, [])
                if not geoms:
                    continue
                if instances:  # the first pixel's index for now; numbered in its order at the end (_number_buildings)
                    cols = {"building_id": [next_id + k for k in first], **cols}
                counts.update(cols["class_name"] if not plan.change else
                              (cols.get("to_name") or ["change"] * len(geoms)))
                if stream:
                    _write(_frame(geoms, cols, plan.out_crs), sink, sink_fmt, layer_name, append=written)
                    written = True
                    summary.regularized += len(unfit)  # written as they are: counted
                    summary.unsquared += sum(unfit)
                else:
                    kept_geoms.extend(geoms)
                    kept_unfit.extend(unfit)
                    for k, v in cols.items():
                        kept_cols[k].extend(v)
            bar.close()
            if not reader.any_valid:
                raise InputError(f"{label}: empty raster (every pixel is nodata or ignore); nothing to vectorize")
            if plan.fill_holes and len(kept_geoms) > 1:
                inside = _absorbed(kept_geoms, kept_cols["pixel_count"], kept_holes)
                kept_geoms = [g for i, g in enumerate(kept_geoms) if i not in inside]
                kept_unfit = [u for i, u in enumerate(kept_unfit) if i not in inside]
                if unregularized is not None:  # one entry per kept polygon
                    unregularized = [g for i, g in enumerate(unregularized) if i not in inside]
                kept_cols = {c: [v for i, v in enumerate(values) if i not in inside] for c, values in kept_cols.items()}
                counts = Counter(kept_cols["class_name"] if not plan.change else
                                 (kept_cols.get("to_name") or ["change"] * len(kept_geoms)))
            if plan.semantic and plan.min_area and kept_geoms:
                # regions of the pixels' pieces, not of squared ones (which may overlap a neighbour)
                keep = _large_regions(kept_geoms if unregularized is None else unregularized, plan.min_area / plan.unit_m**2)
                kept_geoms = [g for g, k in zip(kept_geoms, keep) if k]
                kept_unfit = [u for u, k in zip(kept_unfit, keep) if k]
                if unregularized is not None:
                    unregularized = [g for g, k in zip(unregularized, keep) if k]
                kept_cols = {c: [v for v, k in zip(values, keep) if k] for c, values in kept_cols.items()}
                counts = Counter(kept_cols.get("to_name") or ["change"] * len(kept_geoms))
            if unregularized and len(kept_geoms) > 1:  # regularised apart, neighbours overlap
                cut = _without_overlaps(np.array(kept_geoms, dtype=object), np.array(unregularized, dtype=object),
                                        grid=pixel_size / 1000)
                kept_geoms = list(shapely.orient_polygons(cut))  # the cut's rings run either way; the layer's one way
                kept_cols["area_m2"] = list(shapely.area(cut) * plan.unit_m**2)
                kept_cols["perimeter_m"] = list(shapely.length(cut) * plan.unit_m)
            if plan.simplify and not regularize and kept_geoms:
                simple = simplify_coverage(np.array(kept_geoms, dtype=object), plan.simplify / plan.unit_m)
                kept_geoms = list(shapely.orient_polygons(simple))  # exteriors counter-clockwise, as unsimplified
                kept_cols["area_m2"] = list(shapely.area(simple) * plan.unit_m**2)
                kept_cols["perimeter_m"] = list(shapely.length(simple) * plan.unit_m)
            if instances and kept_geoms:  # buildings numbered in the order of their first pixels
                order = np.argsort(np.asarray(kept_cols["building_id"], dtype="int64"), kind="stable")
                ids = np.empty(len(order), dtype="int64")
                ids[order] = np.arange(next_id, next_id + len(order))
                kept_cols["building_id"] = ids.tolist()
            if not stream or not written or kept_geoms:
                _write(_frame(kept_geoms, kept_cols, plan.out_crs), sink, sink_fmt, layer_name, append=written)
            elif instances:
                _number_buildings(sink, layer_name, next_id)
            if stage is not None:
                _convert(stage, tmp, plan.fmt, layer_name)
        finally:
            if prob is not None:
                prob.close()
            if stage is not None:
                stage.unlink(missing_ok=True)
    summary.polygons = sum(counts.values())
    summary.regularized += len(kept_unfit)
    summary.unsquared += sum(kept_unfit)
    summary.per_class = dict(counts)
    summary.seconds = time.perf_counter() - start
    if unknown:  # (an undeclared fill: 65535 of a uint16 raster, -5 of an int16)
        ids = sorted(unknown)
        log.warning("%s: polygons of id%s %s, which no class of its table has, are named by their id; "
                    "if one marks no data, declare it (gdal_edit.py -a_nodata %d)", label, "s" * (len(ids) > 1),
                    ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else ""), ids[-1])
    if summary.polygons == 0:
        log.warning("%s: no polygons of the selected classes%s; wrote an empty layer", label,
                    f" of {plan.min_area:g} m2 or more (--min-area)" if plan.min_area else "")
    return summary
