"""Checks of an input against what a model was trained on, before any compute (no silent garbage).

A network fed values of another scale still returns a confident-looking map: a uint16 or a 0-1
float ortho through a model trained on 8-bit imagery, a DSM that is nodata almost everywhere
(every window masked: a 100 % nodata map) or far above the heights a model z-scores. Each check
samples the raster on a lattice of windows spread over the whole scene (``CHECK_PER_AXIS`` a side)
and refuses such inputs with a one-line hint, or warns where the data may still be right.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.windows import Window

from rsmamba.errors import InputError
from rsmamba.paths import shell_word
from rsmamba.raster.windows import CHECK_PER_AXIS, area_sample_windows, sample_windows

if TYPE_CHECKING:
    from rsmamba.classes import ClassInfo
    from rsmamba.raster.source import AlignedSource

log = logging.getLogger(__name__)

SAMPLE_PIXELS = 262_144  # enough for per-band statistics, cheap on any scene
MIN_DSM_COVERAGE = 0.5  # share of the image's valid pixels that must have DSM data
MAX_SHIFT_IN_STDS = 4.0  # input mean this many training stds away: another value scale
MAX_STD_RATIO = 8.0  # input spread this many times wider or narrower than in training
# Pixel sizes more than this many times finer or coarser than any a model was trained at draw a warning.
# The shipped image-only model (trained on 0.2-0.6 m), building IoU on a suburban / overcast scene: 0.89 /
# 0.88 at 0.3 m, 0.59 / 0.43 at 0.15 m, 0.17 at 0.1 m, 0.76 / 0.68 at 0.8 m, 0.59 / 0.51 at 1 m
# (bench/results/gsd-range.json).
GSD_TOLERANCE = 1.25


def _sample(src: AlignedSource, read, read_valid=None) -> tuple[list[np.ndarray], float]:
    """Per band, the finite valid values of a sample; and the image's valid fraction of the sample
    (valid by ``read_valid``, by default the image's own validity)."""
    values: list[list[np.ndarray]] = [[] for _ in range(src.count)]
    total = valid_n = 0
    for window in sample_windows(src.width, src.height, SAMPLE_PIXELS, min_per_axis=CHECK_PER_AXIS):
        valid = (read_valid or src.read_image_valid)(window)
        data = read(window)
        total += valid.size
        valid_n += int(valid.sum())
        for b in range(src.count):
            v = data[b][valid].astype(np.float64)
            values[b].append(v[np.isfinite(v)])
    return [np.concatenate(v) if v else np.zeros(0) for v in values], valid_n / max(total, 1)


def check_some_valid(src: AlignedSource, what: str, rows: int = 256) -> None:
    """Refuse an image without a valid pixel (all nodata, alpha 0 or NaN): it was mapped as an all-nodata
    raster and 'done'. The sample windows answer for almost any image; where they find none (a thin corridor
    of data in a large canvas) every row band is read until one holds a valid pixel."""
    windows = sample_windows(src.width, src.height, SAMPLE_PIXELS, min_per_axis=CHECK_PER_AXIS)
    if any(src.read_image_valid(window).any() for window in windows):
        return
    for top in range(0, src.height, rows):
        if src.read_image_valid(Window(0, top, src.width, min(rows, src.height - top))).any():
            return
    raise InputError(f"{what}: no valid pixel (all nodata, alpha 0 or NaN?): nothing to map")


def check_value_range(src: AlignedSource, norm: dict[str, Any] | None, what: str, model_source: str,
                      read=None, read_valid=None, dtype: str | None = None) -> list[str]:
    """Refuse an image whose values are on another scale than the training data's; warnings to show.

    ``norm`` is the checkpoint's image normalisation: ``mean``/``std`` per band (every checkpoint),
    and ``dtype``/``minimum``/``maximum`` (checkpoints since they were recorded). Without a recorded
    dtype only the statistics are compared.
    """
    if not _has_scale(norm):
        return []
    warnings: list[str] = []
    trained = norm.get("dtype")
    dtype = dtype or src.dtype  # a second epoch's own (read/read_valid: its reader and mask)
    if trained and np.dtype(trained) != np.dtype(dtype):
        warnings.append(f"{what}: {dtype} pixels, model {model_source} was trained on {trained}")
    values, _ = _sample(src, read or src.read_image, read_valid)
    bands = [(float(v.mean()), float(v.std()), float(v.max()), v.size) if v.size else None for v in values]
    problems = scale_problems(bands, dtype, norm)
    if problems:
        declared = sorted({so for so in src.image_unscale if so != (1.0, 0.0)}) if read is None else []
        raise scale_error(what, dtype, model_source, problems, trained, declared)
    for w in warnings:
        log.warning(w)
    return warnings


def _has_scale(norm: dict[str, Any] | None) -> bool:
    """Whether ``norm`` records a training scale to compare with (the identity, raw values, records none)."""
    if not norm or not norm.get("mean"):
        return False
    return bool(norm.get("dtype")) or not (all(float(m) == 0 for m in norm["mean"]) and all(
        float(s) == 1 for s in norm.get("std", [])))


def scale_problems(bands: list[tuple[float, float, float, int] | None], dtype: str, norm: dict[str, Any] | None
                   ) -> list[str]:
    """Which bands of some data, each ``(mean, std, max, number of values)`` (None: no value), lie on another
    scale than the training data's (``norm``, as :func:`check_value_range` takes it): one phrase per band."""
    if not _has_scale(norm):
        return []
    assert norm is not None
    trained = norm.get("dtype")
    lows, highs = norm.get("minimum") or [], norm.get("maximum") or []
    problems = []
    for b, (band, mean, std) in enumerate(zip(bands, norm["mean"], norm["std"]), start=1):
        if band is None:
            continue
        v_mean, v_std, v_max, n = band
        std = float(std) or 1.0
        shift = abs(v_mean - float(mean)) / std
        ratio = (v_std or 1e-12) / std
        # A narrow spread alone is no proof (a calm sea is uniform): only 0-1 scaled data for a model
        # trained on larger values, another dtype than in training, or values all in the bottom eighth of the
        # training range (12-bit data in UInt16 for a model of 16-bit data: mIoU 0.20 for 0.78, unsaid) count.
        unit_scaled = np.dtype(dtype).kind == "f" and v_max <= 1.5 and float(mean) > 2
        other_dtype = bool(trained) and np.dtype(trained) != np.dtype(dtype)
        span = float(highs[b - 1]) - float(lows[b - 1]) if b <= min(len(lows), len(highs)) else 0.0
        bottom = span > 0 and v_max < float(lows[b - 1]) + span / MAX_STD_RATIO
        narrow = ratio < 1 / MAX_STD_RATIO and (unit_scaled or other_dtype or bottom)
        wide = ratio > MAX_STD_RATIO and n >= 64
        if shift > MAX_SHIFT_IN_STDS or narrow or wide:
            problems.append(f"band {b} mean {v_mean:.4g} std {v_std:.4g} vs {float(mean):.4g} / {std:.4g}")
    return problems


def scale_error(what: str, dtype: str, model_source: str, problems: list[str], trained: str | None,
                declared: list[tuple[float, float]] | None = None) -> InputError:
    """The one line refusing data on another scale (:func:`scale_problems`), with what to do about it."""
    if declared:  # the file says how its values map to what they measure: -scale would stretch, not unscale
        scale, offset = declared[0]
        hint = (f"the image declares a GDAL scale {scale:g} and offset {offset:g}: unscale it "
                f"(gdal_translate -unscale -ot {_gdal_type(trained)} IN OUT) if that gives the training range, "
                "or use a model trained on such data")
    else:
        hint = (f"the model was trained on {trained} data; " if trained else "") + (
            f"rescale the image to the training range (e.g. gdal_translate -ot {_gdal_type(trained)} -scale) "
            "or use a model trained on such data")
    return InputError(f"{what} ({dtype}): values on another scale than model {model_source} was trained on "
                      f"({'; '.join(problems)}); {hint}")


def _gdal_type(dtype: str | None) -> str:
    """GDAL's name of a numpy dtype for -ot (uint8: Byte), Byte when unknown."""
    names = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
             "float32": "Float32", "float64": "Float64"}
    return names.get(str(np.dtype(dtype)) if dtype else "", "Byte")


INT32 = np.iinfo(np.int32)


def beyond_int32(ids: np.ndarray) -> np.ndarray | None:
    """Where an id band holds values int32 cannot (which a cast would fold into other ids: 2**32 + 1 into 1,
    4294967295 into -1), or None where it holds none; compared in the band's own type, no int64 copy."""
    if np.can_cast(ids.dtype, np.int32) or ids.size == 0 or not (ids.min() < INT32.min or ids.max() > INT32.max):
        return None
    return (ids > INT32.max) if ids.dtype.kind == "u" else (ids > INT32.max) | (ids < INT32.min)


DSM_WARN_STDS = 4.0  # DSM heights this many training stds off: warned
DSM_REFUSE_STDS = 12.0  # and this many: refused (the shipped model: +100 m of ground gave 0.69 building IoU)


def check_dsm_heights(src: AlignedSource, norm: dict[str, Any] | None, what: str, model_source: str) -> list[str]:
    """Refuse a DSM whose heights are far from those a z-scoring model was trained on; warnings to show.

    A model that z-scores absolute heights with its training statistics reads a town 500 m above
    its training ground, a DSM in feet or an nDSM as other objects (the shipped image+DSM model:
    98 % building at +500 m), without a word. The median sampled height is compared with the
    training mean in training standard deviations. Other DSM modes are relative: nothing to compare.
    """
    if not src.has_dsm or not norm or norm.get("mode") != "zscore" or "mean" not in norm:
        return []
    values = []
    for window in sample_windows(src.width, src.height, SAMPLE_PIXELS, min_per_axis=CHECK_PER_AXIS):
        d = src.read_dsm(window)
        values.append(d[src.read_image_valid(window) & np.isfinite(d)])
    v = np.concatenate(values) if values else np.zeros(0)
    if v.size == 0:
        return []
    mean, std = float(norm["mean"]), float(norm.get("std") or 1.0)
    median = float(np.median(v))
    z = (median - mean) / std
    if abs(z) <= DSM_WARN_STDS:
        return []
    message = (f"{what}: heights around {median:.4g} (median), {abs(z):.1f} standard deviations from the "
               f"{mean:.4g} +- {std:.4g} model {model_source} was trained on (absolute heights, z-scored): "
               "another ground level, datum or unit (feet?), or an nDSM for a model trained on a DSM, reads as "
               "other objects")
    if abs(z) > DSM_REFUSE_STDS:
        raise InputError(f"{message}; give a DSM like the training one, or train a model on such data "
                         "(data.dsm_mode: ground-relative is independent of the ground level)")
    message += "; expect a weaker map"
    log.warning(message)
    return [message]


FILL_SHARE = 0.001  # of the sampled valid pixels: one exact value this common, far off the rest, is a fill
FILL_DISTANCE = 10.0  # in spans (1st..99th percentile) of the other values


def check_fill_values(src: AlignedSource, what: str, path: object, read=None, read_valid=None,
                      dtype: str | None = None) -> None:
    """Refuse an image band holding an undeclared fill value (-9999, 65535, -3.4e38) beside its imagery.

    Normalised by the image's own statistics (``change --epoch-norm per-epoch``), a fill that is
    common enough stretches the band's spread until the real pixels are all alike: a model reads
    change everywhere, silently. A fill is one exact value, frequent, and further from the other
    values than ten times their own 1..99 % range; bright or dark imagery is not, and a uint8 image
    (whose 0 and 255 are shadow and saturation, never far off) is not checked.
    """
    if np.dtype(dtype or src.dtype) == np.uint8:  # 0 and 255 are shadow and saturation, no value lies far off
        return
    values, _ = _sample(src, read or src.read_image, read_valid)
    for b, v in enumerate(values, start=1):
        if v.size < 64:
            continue
        kinds, counts = np.unique(v, return_counts=True)
        mode = kinds[counts.argmax()]
        if counts.max() < FILL_SHARE * v.size or counts.max() == v.size:
            continue
        others = v[v != mode]
        lo, hi = np.percentile(others, [1, 99])
        span = max(float(hi - lo), 1e-6)
        if mode < lo - FILL_DISTANCE * span or mode > hi + FILL_DISTANCE * span:
            raise InputError(f"{what}: band {b} holds {mode:g} in {counts.max() / v.size:.1%} of its sampled "
                             f"pixels, far outside its other values ({lo:.4g}..{hi:.4g}): a nodata value it does "
                             f"not declare?; declare it (gdal_edit.py -a_nodata {mode:g} {shell_word(path)}) or fix those pixels")


COLLAR_SHARES = {0: 0.01, "max": 0.05}  # black collars are common; a white one less so than overexposed roofs
COLLAR_EDGE_SHARE = 0.05  # of the raster's edge pixels: a collar or sheet gap reaches the edge
COLLAR_SOLID = 0.9  # of a sampled window's pixels: a missing sheet inside a mosaic is a solid block


def check_collar(src: AlignedSource, what: str, path: object, read=None, read_valid=None,
                 dtype: str | None = None) -> list[str]:
    """A warning (also logged) when many valid pixels of an integer image are 0 (or its top value) in
    *every* band: the collar of a mosaic, or the gaps between its sheets, with no nodata value, mask or
    alpha declared. Mapped as land cover (building along the seams) and, in change, as change; declared,
    they are nodata. A collar or a sheet gap reaches the raster's edge: the value must also hold a
    twentieth of the edge pixels, so snow, water or shadow inside a scene are not taken for one."""
    dt = np.dtype(dtype or src.dtype)
    if dt.kind not in "ui":  # float images: NaN and undeclared fills (check_fill_values)
        return []
    top = int(np.iinfo(dt).max) if dt == np.uint8 else None  # 12-bit data in uint16 never reach 65535
    read, read_valid = read or src.read_image, read_valid or src.read_image_valid
    seen = zeros = tops = 0
    solid = {0: False, top: False}  # a sampled window almost all of it: a block (a missing sheet), no shadow
    for window in sample_windows(src.width, src.height, SAMPLE_PIXELS, min_per_axis=CHECK_PER_AXIS):
        valid = read_valid(window)
        block = read(window)
        data = block[:, valid]
        seen += data.shape[1]
        for value in (0, top) if top is not None else (0,):
            hits = int((data == value).all(axis=0).sum())
            zeros, tops = (zeros + hits, tops) if value == 0 else (zeros, tops + hits)
            if value == 0 and hits and not solid[0]:  # black: a missing sheet; white blocks are overexposed roofs
                solid[0] = _has_solid_tile(valid & (block == 0).all(axis=0))
    edges = [Window(0, 0, src.width, 1), Window(0, src.height - 1, src.width, 1),
             Window(0, 0, 1, src.height), Window(src.width - 1, 0, 1, src.height)]
    edge = [(read(w)[:, read_valid(w)]) for w in edges]  # one-pixel lines: cheap on any scene
    on_edge = sum(e.shape[1] for e in edge)
    out = []
    for value, count, share in ((0, zeros, COLLAR_SHARES[0]), (top, tops, COLLAR_SHARES["max"])):
        if value is None or not seen or count < share * seen or not on_edge:
            continue
        on_value = sum(int((e == value).all(axis=0).sum()) for e in edge)
        if not solid[value] and on_value < COLLAR_EDGE_SHARE * on_edge:
            continue  # neither along the edge (a collar) nor a solid block (a missing sheet): imagery
        # where, not how much: the sample reaches both edges and over-weighs them, so its share of a 60 px collar
        # round an 8000 px mosaic (3 % of it) was said as '41.4% of its sampled pixels' (QA)
        where = " and ".join(([f"{on_value / on_edge:.0%} of its edge pixels"] if on_value else [])
                             + (["solid blocks"] if solid[value] else []))
        message = (f"{what}: pixels that are {value} in every band ({where}), with no nodata value, mask or alpha "
                   f"declared: a collar, or gaps between mosaic sheets? They would "
                   f"be mapped as land cover (and as change): declare it (gdal_edit.py -a_nodata {value} {shell_word(path)}); "
                   "if they are imagery (water, snow, shadow), ignore this")
        log.warning(message)
        out.append(message)
    return out


def _has_solid_tile(mask: np.ndarray, side: int = 64) -> bool:
    """Whether some ``side`` x ``side`` tile of ``mask`` (a grid from its corner) is almost all True."""
    h, w = (mask.shape[0] // side) * side, (mask.shape[1] // side) * side
    if not h or not w:
        return False
    tiles = mask[:h, :w].reshape(h // side, side, w // side, side).mean(axis=(1, 3))
    return bool((tiles >= COLLAR_SOLID).any())


def check_gsd(src: AlignedSource, trained: tuple[float, float] | None, what: str, model_source: str) -> list[str]:
    """A warning (also logged) when the image's pixel size is far outside the model's training range.

    Objects at another scale look like other objects to a network: a 28.5 m Landsat scene through a
    model trained on 0.25 m orthophotos gives a confident map of nothing, and the shipped image-only
    model loses 0.1-0.45 building IoU a quarter to a third outside its range. Only a warning: the range is what the
    model saw, not all it can do. Silent when either size is unknown (no
    CRS, or a checkpoint that records none).
    """
    from rsmamba.raster.ground import pixel_size_m

    size = pixel_size_m(src.crs, src.transform, src.width, src.height)
    if size is None or not trained:
        return []
    lo, hi = trained
    if lo / GSD_TOLERANCE <= size <= hi * GSD_TOLERANCE:
        return []
    seen = f"{lo:g} m" if lo == hi else f"{lo:g}-{hi:g} m"
    message = (f"{what}: pixels of {size:.3g} m, outside the {seen} model {model_source} was trained at; "
               "expect a weaker map: resample the image to that pixel size (gdalwarp -tr) where it has the detail, "
               "or train a model on such data")
    log.warning(message)
    return [message]


# A pixel this many times longer on one side than on the other draws a warning: the models are trained on
# square pixels (a 0.25 x 0.75 m grid: 94.5 % of the shipped image+DSM model's pixels as labelled, 98.7 % square)
MAX_PIXEL_ASPECT = 1.5
# A DSM pixel this many times the image's draws a warning. The shipped image+DSM model on a synthetic 0.25 m
# scene, building IoU: 0.98 with the DSM at 0.25, 0.5 or 1 m, 0.93 at 2 m, 0.82 at 4 m, 0.57 at 8 m; 0.96
# without a DSM (the image-only model).
MAX_DSM_PIXEL_RATIO = 4.5


def check_pixel_shape(src: AlignedSource, what: str) -> list[str]:
    """A warning (also logged) when the image's ground pixels are far from square: a grid in degrees far from
    the equator (``gdalwarp -t_srs EPSG:4326`` of a scene at 70 N: 0.19 x 0.55 m), or a stretched grid. A
    network trained on square pixels sees every building squashed; no check said so (the pixel size is the
    mean of the sides)."""
    from rsmamba.raster.ground import pixel_sides_m

    sides = pixel_sides_m(src.crs, src.transform, src.width, src.height)
    if sides is None or max(sides) <= MAX_PIXEL_ASPECT * min(sides):
        return []
    across, down = sides
    message = (f"{what}: its pixels are {across:.3g} x {down:.3g} m on the ground ({max(sides) / min(sides):.1f}:1), "
               "the models are trained on square pixels, so buildings come out squashed; resample it to square "
               "pixels in a projected CRS (gdalwarp -t_srs EPSG:... -tr SIZE SIZE)")
    log.warning(message)
    return [message]


def check_dsm_resolution(src: AlignedSource, dsm_path: Any) -> list[str]:
    """A warning (also logged) when the DSM's pixels are much coarser than the image's: resampled onto the
    image grid, its buildings are blurred blocks, and a model trained with a DSM on the image's pixels maps
    worse than without it (an 8 m DSM under a 0.25 m ortho: building IoU 0.57, against 0.96 with no DSM)."""
    from rsmamba.raster.ground import pixel_size_m

    ours = pixel_size_m(src.crs, src.transform, src.width, src.height)
    with rasterio.open(dsm_path) as ds:
        theirs = pixel_size_m(ds.crs, ds.transform, ds.width, ds.height)
    if ours is None or theirs is None or theirs <= MAX_DSM_PIXEL_RATIO * ours:
        return []
    message = (f"DSM {dsm_path}: pixels of {theirs:.3g} m, {theirs / ours:.0f} x the image's {ours:.3g} m: resampled "
               "onto the image grid its buildings are blurred blocks, and a model trained with a DSM on the "
               "image's pixels may map worse than without --dsm (compare a run without it)")
    log.warning(message)
    return [message]


LOSSY = {"JPEG", "WEBP", "JXL", "LERC"}  # (LERC: lossy when given a MAX_Z_ERROR; said alike)


def check_lossy_nodata(src: AlignedSource, path: Any, what: str, read_valid=None) -> list[str]:
    """A warning (also logged) when a lossily compressed image marks its no-data area by a value: the
    compression smears that area's edge into values near it, read as imagery (a JPEG ortho's black collar
    left a 4 px fringe mapped as land cover, and 173 false change pixels). Masks and alpha bands are exact."""
    from rasterio.enums import MaskFlags

    with rasterio.open(path) as ds:
        compression = (ds.compression.name if ds.compression else "").upper()
        nodata = ds.nodata
        by_value = ds.count and list(ds.mask_flag_enums[0]) == [MaskFlags.nodata]
    if compression not in LOSSY or nodata is None or not by_value:
        return []
    read_valid = read_valid or src.read_image_valid
    if all(read_valid(w).all() for w in sample_windows(src.width, src.height, SAMPLE_PIXELS,
                                                                  min_per_axis=CHECK_PER_AXIS)):
        return []  # no no-data area to smear
    message = (f"{what}: {compression}-compressed with no-data value {nodata:g}: the compression leaves a fringe of "
               f"values near {nodata:g} along the no-data area, read as imagery (mapped as land cover, and as change); "
               f"mask it (GDAL's nearblack -setmask -near 15 -o masked.tif {path}) or use lossless compression")
    log.warning(message)
    return [message]


def check_dsm_coverage(src: AlignedSource, dsm_path: Any, minimum: float = MIN_DSM_COVERAGE) -> list[str]:
    """Warnings (also logged) when the DSM has data over part of the image's valid pixels only; InputError
    below ``minimum``.

    Predict masks pixels without DSM data, so a DSM that is nodata over most of the image would give a map
    that is mostly nodata: refused, with what the DSM covers. Above that, the share left nodata is said: a DSM
    covering 47 % of a scene gave a map 53 % nodata without a word. The share is estimated on windows standing
    for equal areas (:func:`area_sample_windows`), so it is said as "about".
    """
    covered, total = _covered(src, lambda window: np.isfinite(src.read_dsm(window)))
    share = covered / total if total else 0.0
    if share < minimum:
        what = "no data over the image" if covered == 0 else f"data over only about {share:.1%} of the image's valid pixels"
        raise InputError(f"DSM {dsm_path}: {what} (needs {minimum:.0%}; the rest would be nodata); "
                         "check its nodata value and extent, or crop the image to the DSM")
    if _said_already(src, "DSM", share):
        return []
    message = (f"DSM {dsm_path}: data over about {share:.1%} of the image's valid pixels; the map will be nodata "
               "where it has none (check its nodata value and extent)")
    log.warning(message)
    return [message]


def check_t2_coverage(src: AlignedSource, t1_path: Any, t2_path: Any) -> list[str]:
    """Warnings (also logged) when the second date has data over part of the first's valid pixels only;
    InputError when over none of them.

    A change map is nodata where either date is: t2 with data over 5 % of t1 gave a map 95 % nodata with no
    word but a co-registration warning, and dates with no valid pixel in common were refused as 't1: no valid
    pixels to compute statistics from', naming a t1 with data over half its scene. Estimated as the DSM's
    coverage is (:func:`check_dsm_coverage`).
    """
    covered, total = _covered(src, src.read_t2_valid)
    if total == 0:
        raise InputError(f"t1 {t1_path}: no valid pixels (every pixel nodata or masked); check its nodata value")
    if covered == 0:
        raise InputError(f"t2 {t2_path}: no data over t1's valid pixels (the dates share no valid pixel); check "
                         "t2's nodata value and extent, or pair the dates that cover the same ground")
    share = covered / total
    if _said_already(src, "t2", share):
        return []
    message = (f"t2 {t2_path}: data over about {share:.1%} of t1's valid pixels; the change map will be nodata "
               "where it has none (check its nodata value and extent)")
    log.warning(message)
    return [message]


def _covered(src: AlignedSource, other_valid) -> tuple[int, int]:
    """(image pixels valid where ``other_valid`` holds too, image pixels valid) on windows standing for equal
    areas (:func:`area_sample_windows`): the estimate a coverage is said by, as "about"."""
    covered = total = 0
    for window in area_sample_windows(src.width, src.height, SAMPLE_PIXELS, per_axis=DSM_COVERAGE_PER_AXIS):
        valid = src.read_image_valid(window)
        total += int(valid.sum())
        covered += int((valid & other_valid(window)).sum())
    return covered, total


def _said_already(src: AlignedSource, role: str, share: float) -> bool:
    """Whether an input's data ``share`` needs no word: nearly whole, or its extent's coverage (said when it
    was opened) accounts for it."""
    extent = src.extent_coverage.get(role, 1.0)
    return share >= DSM_COVERAGE_SAID or (extent < 0.995 and share >= extent - 0.05)


# windows along each axis: 2304 windows of 16 px, a hole's edge placed to 1/96 of the image, 0.2 s on a 2048 px
# scene (16 an axis put a 52 % DSM at 'about 50%' and a 48.5 % one at 52 %; 48 reads a 70.0 % ring as 69.4 %)
DSM_COVERAGE_PER_AXIS = 48
DSM_COVERAGE_SAID = 0.95  # below this share of DSM data, the nodata it leaves in the map is said


MAX_CLASSES_WITHOUT_TABLE = 64  # distinct values a class raster without a class table may hold


def class_raster_problem(src: Any, what: str, allow_multiband: bool = False, labels: bool = False) -> str | None:
    """Why the open dataset ``src`` is not a class (or change) raster, or None.

    A class raster holds integer ids in band 1: floats, several bands (an RGB ortho), or, without
    a class table (colour map or ``class_names`` tag), more distinct values than any class
    table has, are an image given by mistake: polygonizing or scoring it is garbage.

    ``labels``: a label raster (a reference), which may hold its ids as floats (NaN: no label), as tile reads
    labels; its reader checks that they are whole numbers. The hint then asks for labels, not predict's output.
    """
    hint = ("pass a class raster of reference labels (integer ids; NaN or nodata: no label)" if labels else
            "pass a class raster written by 'rsmamba predict' (or a change raster from 'rsmamba change')")
    if not src.dtypes[0].startswith(("uint", "int")) and not (labels and src.dtypes[0].startswith("float")):
        return f"{what}: band 1 is {src.dtypes[0]}, not integer class ids (an image?); {hint}"
    if src.count > 1 and not allow_multiband:
        return f"{what}: {src.count} bands, a class raster has one (an image?); {hint}"
    tags = {k.lower() for k in src.tags()} | {k.lower() for k in src.tags(1)}
    try:
        has_table = bool(src.colormap(1))
    except ValueError:  # no colour map
        has_table = False
    if has_table or "class_names" in tags:
        return None
    if "scale" in tags:  # predict's / change's --probabilities (p x 254): a small or flat one held few values and
        # was polygonized and scored as class ids, p(change) 1/254 as 'building' (QA)
        from rsmamba.raster.classtags import raster_tag

        return (f"{what}: a probability raster (SCALE {raster_tag(src, 'scale')}: scaled probabilities, as "
                f"--probabilities writes them), not class ids; {hint}")
    values: set[int] = set()
    for window in sample_windows(src.width, src.height, SAMPLE_PIXELS, min_per_axis=CHECK_PER_AXIS):
        values.update(np.unique(src.read(1, window=window)).tolist())
        if len(values) > MAX_CLASSES_WITHOUT_TABLE:
            return (f"{what}: more than {MAX_CLASSES_WITHOUT_TABLE} distinct values and no class table "
                    f"(an image?); {hint}")
    return None


def palette_conflicts(path: str | os.PathLike[str],
                      classes: Iterable[ClassInfo]) -> list[tuple[ClassInfo, tuple[int, ...]]]:
    """The classes whose id the colour table of label raster ``path`` paints in another colour, each with that
    colour ([] without a colour table): labels coded otherwise (their 0 a background, their 1 a road) say so in their
    palette, while their ids would be read as ``classes`` without a word."""
    try:
        with rasterio.open(path) as ds:
            table = ds.colormap(1)
    except (ValueError, rasterio.errors.RasterioError):  # no colour table: nothing says otherwise
        return []
    return [(c, tuple(table[c.id][:3])) for c in classes if c.id in table and tuple(table[c.id][:3]) != tuple(c.color)]


def is_change_raster(src: Any) -> bool:
    """A change raster of ``rsmamba change``: band 1 (0/1 change) described ``"change"``."""
    return (src.descriptions[0] or "").lower() == "change"
