"""``rsmamba evaluate``: score a class raster against a reference raster or vector layer.

The reference is brought onto the prediction's grid (nearest neighbour for rasters, burning for
vectors) so every score is over the pixels the user will actually get; nodata in the prediction
and ignore (255) in the reference are excluded. Benchmark conventions are options: classes left
out of the means (Clutter on Vaihingen/Potsdam) and boundaries eroded by a radius, as the ISPRS
"eroded" ground truth does. Ids the class table does not name are not scored, and said. A change
raster is scored as change; with the two dates' land cover (``reference_t2``) a ``change --semantic``
raster gets the semantic change scores of SECOND and Landsat-SCD (SeK, Fscd, mIoU, score).

The rasters are read block by block and every score is a count summed over the blocks, so a scene tens of
thousands of pixels wide is scored in the memory of a block, with the scores of the whole read at once.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from scipy import ndimage

from rsmamba.atomic import output_problems, publish, settle_inputs
from rsmamba.classes import CHANGE_CLASSES, IGNORE_INDEX, ISPRS_CLASSES, ClassInfo, class_of_nodata, name_key
from rsmamba.errors import InputError, ProblemCollector, first_line, typed_arguments
from rsmamba.paths import shell_word
from rsmamba.metrics import confusion_matrix, segmentation_scores
from rsmamba.raster import gdal_cache_capped
from rsmamba.raster.classtags import declared_classes, raster_tag
from rsmamba.raster.source import (GRID_TOLERANCE_PX, RGB, VECTOR_SUFFIXES, alpha_holding_data, band_colours,
                                   class_field_problem, class_ids_of_names, data_bands, declared_rgb, grid_mirrors,
                                   lattice_window, layer_in_grid_crs, overlapping_pairs, pixels_coincide,
                                   repaired_areas)
from rsmamba.raster.windows import raster_extent, window_extent
from rsmamba.raster.validate import beyond_int32, is_change_raster

log = logging.getLogger(__name__)

__all__ = ["eroded_boundary_mask", "evaluate_rasters", "merge_split_errors", "object_f1", "object_scores"]

ERODE_WARN_SHARE = 0.1  # --erode leaving less of the scorable pixels than this is said
UNREADABLE_REFUSED = 0.5  # a --layout reference with more of its pixels of no class is refused
CODED_255_SHARE = 0.001  # a change reference without change, this much of it 255: 255 likely its change (0/255)



@dataclass
class Grid:
    crs: Any
    transform: Any
    width: int
    height: int


BLOCK_SIZE = 1024  # side in pixels of the blocks read at a time (vectorize --block-size reads 2048)
WARP_TOLERANCE = 1e-9  # px: GDAL's approximate transformer, exact here (at 0.125 a pixel read in a block could
# fall otherwise than read whole: 22 of 242k px of a reference in another UTM zone)
HIST_PIXELS = 1 << 16  # pixels per confusion count: its int64 temporaries (~50 B a pixel) a slice at a time
RefBlock = tuple[np.ndarray, "np.ndarray | None"]  # ids (255: unknown), and a layout's pixels of no class
RefReader = Callable[[Window], RefBlock]


def _compact(ids: np.ndarray) -> np.ndarray:
    """Class ids as uint8 when they are, else int32 (a whole scene as int64 took 8 bytes a pixel per copy); a
    block holding a value beyond int32 keeps its own type, so the value is said as it is and never scored as
    another id (an int64 2**32 + 1 wrapped to class 1 and scored perfect, a uint32 4294967295 was said as -1)."""
    if ids.dtype == np.uint8:
        return ids
    return ids if beyond_int32(ids) is not None else ids.astype(np.int32)


def on_the_grid(src: Any, grid: Grid) -> bool:
    """Whether raster ``src`` is on ``grid`` pixel for pixel: the same CRS and shape, the same pixels."""
    return (src.crs == grid.crs and (src.width, src.height) == (grid.width, grid.height)
            and pixels_coincide(src.transform, grid.transform, grid.width, grid.height))


def _pixel_for_pixel(theirs: Any, ours: Any) -> bool:
    """Whether each pixel of grid ``ours`` is one pixel of grid ``theirs`` (one of them stored south up or east to
    west, origins whole pixels apart): nearest resampling then reads them exactly, moving no edge."""
    m = ~theirs * ours
    return (abs(abs(m.a) - 1) < 1e-9 and abs(abs(m.e) - 1) < 1e-9 and abs(m.b) < 1e-9 and abs(m.d) < 1e-9
            and abs(m.c - round(m.c)) <= GRID_TOLERANCE_PX and abs(m.f - round(m.f)) <= GRID_TOLERANCE_PX)


def _unreadable(rasters: dict[str, Any]) -> list[str]:
    """Each raster, role -> path, that GDAL cannot open, said with its role ('text.tif' not recognized as being in a
    supported file format, it said, of the prediction or the reference or --image alike)."""
    problems = []
    for role, path in rasters.items():
        if path is None or not Path(path).is_file():  # (missing, or no regular file: inputs_problems says so)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                rasterio.open(path).close()
        except rasterio.errors.RasterioIOError as exc:
            problems.append(f"{role} {path}: not a readable raster ({first_line(exc)})")
    return problems


def _prediction_grid(path: Path, layout: str | None) -> tuple[Grid, bool, str | None]:
    """The prediction's grid, whether it is a change raster, and the benchmark colours it is coded in (read with
    ``--layout`` of that benchmark, as its labels are); a raster that is no class raster is refused, and so is a
    colour-coded one without its ``--layout`` (its red band read as ids scored mIoU 0.01 for 0.66, exit 0)."""
    from rsmamba.raster.source import benchmark_colours, colour_labels_problem
    from rsmamba.raster.validate import class_raster_problem

    with rasterio.open(path) as src:
        problem = class_raster_problem(src, f"prediction {path}", allow_multiband=True)
        if problem:
            raise InputError(problem)
        change = is_change_raster(src)
        colours = None if change else benchmark_colours(src)
        if not change and (colours is None or colours != layout) and (problem := colour_labels_problem(
                src, f"prediction {path}", "pass --layout {layout} to read its colours (the reference's layout)")):
            raise InputError(problem)
        return Grid(src.crs, src.transform, src.width, src.height), change, colours


def _read_prediction(src: Any, window: Window, colours: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Band 1 of a window as ids, and where it is valid: GDAL's mask of band 1 (its nodata value, or the raster's
    mask band (internal, .msk) or alpha band, which were scored as whatever value lay under them: a masked strip's
    class 1 read mIoU 0.42 for 0.84). ``colours``: a benchmark's colour-coded result, decoded as its labels are
    (a colour of no class is not scored)."""
    valid = src.read_masks(1, window=window) > 0
    if colours is None:
        return _compact(src.read(1, window=window)), valid
    from rsmamba.datasets.layouts import decode_labels

    ids = decode_labels(src.read([1, 2, 3], window=window), colours)
    return _compact(ids), valid & (ids != IGNORE_INDEX)


def _nodata_warnings(path: Path, role: str, classes: list[ClassInfo], exclude: list[int] | None) -> list[str]:
    """A raster whose declared nodata is also a class (GDAL habitually writes nodata 0): that class is
    never scored, in the reference or the prediction, so it leaves the means too (``exclude`` gets it:
    scored on the other side only, it was IoU 0 by construction). Said (logged and kept in the metrics).

    ``exclude`` None: ``classes`` are a semantic change reference's land cover, which no mean is of (the means are
    change / no change's: its class 0 took no_change out of them), so its pixels are only not scored."""
    if path.suffix.lower() in VECTOR_SUFFIXES:
        return []
    with rasterio.open(path) as src:
        clash = class_of_nodata(src.nodata, classes)
    if clash is None:
        return []
    if exclude is None:
        message = (f"{role} {path}: nodata {clash.id} is also land-cover class {clash.id} ({clash.name}): its pixels "
                   f"are not scored (neither their change nor their land cover); unset it (gdal_edit.py -unsetnodata "
                   f"{shell_word(path)}) if {clash.id} is a class")
        log.warning(message)
        return [message]
    if clash.id not in exclude:
        exclude.append(clash.id)
    message = (f"{role} {path}: nodata {clash.id} is also class {clash.id} ({clash.name}): its pixels are not "
               f"scored and it leaves the means; unset it (gdal_edit.py -unsetnodata {shell_word(path)}) if {clash.id} is a class")
    log.warning(message)
    return [message]


def _change_coded_255(reference: Path, block_size: int) -> str | None:
    """A binary change reference whose labelled pixels hold no change but with 255 (no label) at
    :data:`CODED_255_SHARE` of its pixels or more is likely coded 0/255 as LEVIR-CD and WHU-CD are (255 change): its
    change was all left out, scoring F1 0 unsaid. Said, with the recoding; not refused (255 may be no data)."""
    from rsmamba.raster.windows import block_windows

    if reference.suffix.lower() in VECTOR_SUFFIXES:
        return None
    with rasterio.open(reference) as src:
        if src.dtypes[0] != "uint8":
            return None
        coded = sum(int((src.read(1, window=w) == IGNORE_INDEX).sum())
                    for w in block_windows(src.width, src.height, block_size))
        share, nodata = coded / (src.width * src.height), src.nodata
    if share < CODED_255_SHARE:
        return None
    return (f"reference {reference}: a change reference whose labelled pixels hold no change, and {share:.1%} of its "
            f"pixels {IGNORE_INDEX} (no label): if {IGNORE_INDEX} is its change (LEVIR-CD and WHU-CD code change "
            f"0/{IGNORE_INDEX}), every change pixel was left out and these scores are wrong; recode it to 0/1 "
            f"(gdal_calc.py -A {shell_word(reference)} --outfile change01.tif --calc \"A/{IGNORE_INDEX}\" --type Byte"
            f"{' --hideNoData' if nodata is not None else ''}) and score against that")


def _float_ids(ref: np.ndarray, masked: np.ndarray, nodata: float | None, path: Path) -> np.ndarray:
    """A float label raster's ids as uint8 (255 where NaN, nodata or masked), as tile reads such labels; a
    labelled value that is no class id (1.7, -9999 undeclared) is refused, never truncated into a class."""
    from rsmamba.raster.source import no_class_ids

    known = ~masked & ~np.isnan(ref) & (ref != nodata if nodata is not None else True)
    bad = no_class_ids(ref, known)
    if bad.any():
        values = ", ".join(f"{v:g}" for v in np.unique(ref[bad])[:8].tolist())
        raise InputError(f"reference {path}: {ref.dtype} values {values} are no class id (integers 0..254; NaN, "
                         "nodata or 255: no label); declare a no-label value as nodata (gdal_edit.py -a_nodata V), "
                         "or give the labels as integer ids, not a probability or a resampled (bilinear) raster")
    return np.where(known, ref, IGNORE_INDEX).astype(np.uint8)


def classes_of_raster(path: str | os.PathLike[str]) -> list[ClassInfo] | None:
    """The class table the prediction declares (its ``CLASSES`` or ``class_names`` tag,
    :func:`~rsmamba.raster.classtags.declared_classes`), or None: ISPRS ids, open-ended."""
    with rasterio.open(path) as src:
        table = declared_classes(src)
    return list(table) if table is not None else None


def _declares_colours(path: Path) -> bool:
    """The prediction's table carries the model's colours (predict's ``CLASSES`` tag), to compare a reference's
    palette against; a ``class_names`` table's are its colour table's, or none."""
    with rasterio.open(path) as src:
        return raster_tag(src, "CLASSES") is not None


def _declared_names(path: Path) -> dict[int, str] | None:
    """Class id -> name as the prediction declares them, or None: a raster without a table."""
    table = classes_of_raster(path)
    return {c.id: c.name for c in table if not c.filler} if table is not None else None


def _palette_warnings(reference: Path, table: list[ClassInfo], held: Any, role: str = "reference") -> list[str]:
    """A reference whose colour table paints the prediction's class ids it ``held`` in other colours (its 0 blue, the
    prediction's building) is almost surely coded otherwise: scored as it is, a good map read mIoU 0.52 for
    0.84, unsaid. Warned (logged and kept in the metrics), not refused: a palette may differ only in its style.
    Ids it does not hold are not compared: GDAL paints the gaps of a short table black."""
    from rsmamba.raster.validate import palette_conflicts

    differ = palette_conflicts(reference, [c for c in table if not c.filler and c.id in held])
    if not differ:
        return []
    by_colour = {tuple(c.color): c for c in table if not c.filler}

    def said(c: ClassInfo, colour: tuple[int, ...]) -> str:
        other = by_colour.get(colour)
        return (f"{c.id} as {colour}" + (f" (the prediction's {other.id} {other.name})" if other else "")
                + f", not {c.name}'s {c.color}")

    message = (f"{role} {reference}: its colour table paints {len(differ)} of the prediction's class ids otherwise "
               f"({'; '.join(said(c, colour) for c, colour in differ[:3])}{'; ...' if len(differ) > 3 else ''}): "
               "its ids are likely other classes, and then these scores are wrong; recode it to the prediction's ids "
               "(e.g. gdal_calc.py), or disregard this if only its colours differ")
    log.warning(message)
    return [message]


def _name_warnings(reference: Path, table: list[ClassInfo], held: Any, role: str = "reference",
                   guessed: bool = False) -> list[str]:
    """A reference raster that declares its own class table (a ``class_names`` or ``CLASSES`` tag: another model's
    map, an exported label raster) naming the ids it ``held`` otherwise than the prediction's table (its 0 building,
    the prediction's 0 water) is coded otherwise: scored id by id, every number of those classes was another class's,
    unsaid (QA). Warned (logged and kept in the metrics), as a palette that differs is; a tag that is no table is
    left alone (the reference is read by its ids). ``guessed``: ``table`` is the ISPRS table a prediction without
    one is read with, whose names the scores then carry (a reference naming 0 background had it scored as
    impervious)."""
    with rasterio.open(reference) as src:
        try:
            theirs = declared_classes(src)
        except InputError:
            return []
    if not theirs:
        return []

    ours = {c.id: c for c in table if not c.filler}
    by_name = {name_key(c.name): c for c in ours.values()}
    differ = [(ours[c.id], c.name) for c in theirs if c.id in held and c.id in ours
              and name_key(c.name) != name_key(ours[c.id].name)]
    if not differ:
        return []

    owner = "ISPRS" if guessed else "the prediction's"

    def said(c: ClassInfo, name: str) -> str:
        other = by_name.get(name_key(name))
        return f"{c.id} named {name}" + (f" ({owner} {other.id})" if other else "") + f", not {c.name}"

    shown = f"{'; '.join(said(c, name) for c, name in differ[:3])}{'; ...' if len(differ) > 3 else ''}"
    if guessed:
        message = (f"{role} {reference}: its class table names {len(differ)} of the class ids otherwise than the ISPRS "
                   f"table the prediction, which declares none, is read with ({shown}): the scores carry the ISPRS "
                   "names; give the prediction its classes (a class_names tag, e.g. gdal_edit.py -mo "
                   "'class_names=[\"background\", \"building\"]') to score under them")
    else:
        message = (f"{role} {reference}: its class table names {len(differ)} of the prediction's class ids otherwise "
                   f"({shown}): the ids are scored as the prediction's classes, so if they are other classes these "
                   "scores are wrong; recode it to the prediction's ids (e.g. gdal_calc.py), or disregard this if "
                   "only the names differ")
    log.warning(message)
    return [message]


def _check_layout_table(prediction: Path, layout: str, classes: list[ClassInfo]) -> None:
    """``--layout`` reads the reference with the layout's class table: a prediction that declares another
    (a LoveDA map scored as ISPRS, its background as impervious) is refused, not scored under those names."""
    declared = _declared_names(prediction)
    wanted = {c.id: c.name for c in classes if not c.filler}
    if declared is None or {i: name_key(n) for i, n in declared.items()} == {i: name_key(n) for i, n in wanted.items()}:
        return
    def said(table: dict[int, str]) -> str:
        return ", ".join(f"{i} {n}" for i, n in sorted(table.items()))

    raise InputError(f"prediction {prediction}: its classes ({said(declared)}) are not the {layout} layout's "
                     f"({said(wanted)}); score it against labels of its own classes, without --layout, or predict "
                     f"with a model trained on {layout}")


def _check_overlap(ref_crs, ref_bounds, grid: Grid, ref_path: Path | str) -> None:
    if grid.crs is None or ref_crs is None:
        raise InputError(f"{ref_path}: is on another grid than the prediction and one of them has no CRS; "
                         "cannot bring it onto the prediction grid")
    left, bottom, right, top = transform_bounds(ref_crs, grid.crs, *ref_bounds)  # min/max boxes
    pl, pb, pr, pt = raster_extent(grid.width, grid.height, grid.transform)
    if left >= pr or right <= pl or bottom >= pt or top <= pb:
        raise InputError(f"{ref_path}: does not overlap the prediction (check the CRS of both)")


def _layer_on_grid(layer: Any, grid: Grid, ref_path: Path | str) -> Any:
    """``layer`` in the prediction's CRS (longitudes on the grid's side of 180), refused if it misses the grid."""
    if grid.crs is None or layer.crs is None:
        raise InputError(f"{ref_path}: is on another grid than the prediction and one of them has no CRS; "
                         "cannot bring it onto the prediction grid")
    layer = layer_in_grid_crs(layer, grid.crs, grid.transform, grid.width, grid.height)
    if layer.geometry.is_empty.all():  # every feature off the scene (cut to it: no bounds left to compare)
        raise InputError(f"{ref_path}: does not overlap the prediction (check the CRS of both)")
    _check_overlap(grid.crs, layer.total_bounds, grid, ref_path)
    return layer


@contextlib.contextmanager
def reference_reader(reference: str | os.PathLike[str], grid: Grid, class_field: str = "class",
                     burn: int | None = None, layer_name: str | None = None,
                     notes: list[str] | None = None, class_names: dict[str, int] | None = None,
                     background: int | None = None) -> Iterator[RefReader]:
    """A reader of the reference labels on the prediction grid, window by window (uint8, or int32 for other
    integer rasters; 255 where unknown): a window's pixels are those of the whole reference read at once.

    ``layer_name``: the layer of a vector reference file that holds several.

    ``burn``: every polygon of a vector reference is that class, the rest of the grid background 0
    (a footprint layer, as ``rsmamba tile --burn`` reads it).

    ``class_names``: the ids of the names a text class field may hold (the prediction's class table).

    ``background``: the class of a vector reference's outside (``tile --background``'s reading of a layer of
    several classes); else 0 with ``burn``, else not scored.
    """
    ref_path = Path(reference)
    if ref_path.suffix.lower() in VECTOR_SUFFIXES:
        yield _vector_reader(ref_path, grid, class_field, burn, layer_name, notes, class_names, background)
        return
    from rasterio.vrt import WarpedVRT

    from rsmamba.raster.source import colour_labels_problem
    from rsmamba.raster.validate import class_raster_problem

    with rasterio.open(ref_path) as src:
        problem = (class_raster_problem(src, f"reference {ref_path}", allow_multiband=True, labels=True)
                   or colour_labels_problem(src, f"reference {ref_path}", "pass --layout {layout} to decode them"))
        if problem:
            raise InputError(problem)
        same = on_the_grid(src, grid)
        nodata = src.nodata
        fill = IGNORE_INDEX if nodata is None else nodata
        crop = None if same else lattice_window(src, grid.crs, grid.transform, grid.width, grid.height)
        # GDAL's mask of band 1 (nodata, a mask band, or alpha): masked pixels are not scored, as tile leaves them
        # unlabelled (class 0 under an internal mask was scored: mIoU 0.84 read 0.46, 'both valid')
        with contextlib.ExitStack() as stack:
            if same:
                def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
                    return src.read(1, window=window), src.read_masks(1, window=window) == 0
            elif crop is not None:  # the prediction's pixels are the reference's own (a tile of a larger label raster)
                _check_overlap(src.crs, raster_extent(src.width, src.height, src.transform), grid, ref_path)

                def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
                    theirs = Window(crop.col_off + window.col_off, crop.row_off + window.row_off, window.width,
                                    window.height)
                    return (src.read(1, window=theirs, boundless=True, fill_value=fill),
                            src.read_masks(1, window=theirs, boundless=True) == 0)
            else:
                _check_overlap(src.crs, raster_extent(src.width, src.height, src.transform), grid, ref_path)
                ours = f"{abs(grid.transform.a):g} x {abs(grid.transform.e):g}" if grid.transform.b == grid.transform.d == 0 \
                    else "rotated"
                message = (f"reference {ref_path}: on another grid than the prediction (pixels {src.res[0]:g} x "
                           f"{src.res[1]:g}{'' if src.crs == grid.crs else ', another CRS'}; the prediction's {ours}): "
                           "resampled (nearest) onto it, which moves class edges by up to half a pixel; for exact "
                           "scores predict on the reference's grid")
                if not (src.crs == grid.crs and _pixel_for_pixel(src.transform, grid.transform)):
                    log.warning(message)  # (stored the other way up, its pixels are the prediction's: read exactly)
                    if notes is not None:
                        notes.append(message)
                vrt = stack.enter_context(WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                                                    height=grid.height, resampling=Resampling.nearest, nodata=fill,
                                                    tolerance=WARP_TOLERANCE))

                def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
                    return vrt.read(1, window=window), vrt.read_masks(1, window=window) == 0

            def ids(window: Window) -> RefBlock:
                ref, masked = read(window)
                ref = _float_ids(ref, masked, nodata, ref_path) if ref.dtype.kind == "f" else _compact(ref)
                if nodata is not None:
                    ref[ref == nodata] = IGNORE_INDEX
                ref[masked] = IGNORE_INDEX
                return ref, None

            yield ids


def _vector_reader(ref_path: Path, grid: Grid, class_field: str, burn: int | None, layer_name: str | None,
                   notes: list[str] | None, class_names: dict[str, int] | None, background: int | None) -> RefReader:
    """:func:`reference_reader` of a vector layer: each window burns the polygons that reach it, in the layer's
    order, on the window's own transform (the pixels of the whole grid burnt at once)."""
    from rsmamba.paths import vector_path_problem

    problem = vector_path_problem(ref_path, "reference")
    if problem:
        raise InputError(problem)
    layer = _read_layer(ref_path, "reference", layer_name, "--reference-layer NAME")
    # (before its fields: an empty layer, whose GeoJSON has none, was said to lack the class field, 'use --class-field')
    layer = layer[~(layer.geometry.isna() | layer.geometry.is_empty)]
    if len(layer) == 0:
        raise InputError(f"reference {ref_path}: the layer has no features with a geometry")
    if burn is not None:
        layer = layer.assign(__burn__=burn)
        class_field = "__burn__"
    if class_field not in layer.columns:
        fields = [str(c) for c in layer.columns if c != layer.geometry.name]
        raise InputError(f"{ref_path}: no field {class_field!r} (fields: {', '.join(fields) or 'none'}); "
                         "use --class-field")
    if layer.crs is None:
        raise InputError(f"{ref_path}: layer has no CRS")
    layer = _areas_only(layer, f"reference {ref_path}", notes, objects=False)
    if class_names is not None:  # names (building, road): the prediction's class table's ids
        ids, unknown = class_ids_of_names(layer[class_field], class_names)
        if unknown:
            raise InputError(f"reference {ref_path}: class field {class_field!r} holds names no class of the "
                             f"prediction's table has ({', '.join(unknown[:8])}; the table: {', '.join(class_names)})")
        layer = layer.assign(**{class_field: ids})
    problem = class_field_problem(layer[class_field], f"reference {ref_path}", class_field)
    if problem:
        raise InputError(f"{problem}; choose another --class-field")
    layer = _layer_on_grid(layer, grid, ref_path)
    geoms, repaired = repaired_areas(layer.geometry)
    if repaired:
        message = (f"reference {ref_path}: {repaired} invalid polygon{'s' * (repaired != 1)} (self-intersecting, a "
                   "ring traced twice) repaired before burning (shapely make_valid)")
        log.warning(message)
        if notes is not None:
            notes.append(message)
    values = [int(v) for v in layer[class_field]]  # ids 0..254 (checked above)
    a, b, _ = overlapping_pairs(np.asarray(geoms), abs(grid.transform.determinant))
    other = np.asarray(values)[a] != np.asarray(values)[b] if len(a) else np.zeros(0, bool)
    if other.any():  # as tile says of a label layer: the same pixels scored by the later polygon's class
        n = len(np.unique(np.r_[a[other], b[other]]))
        message = (f"reference {ref_path}: {n:,} polygons overlap one of another class by a pixel or more; each such "
                   "pixel is scored as the later polygon's class in the layer's order")
        log.warning(message)
        if notes is not None:
            notes.append(message)
    fill = background if background is not None else IGNORE_INDEX if burn is None else 0
    burnt = _window_burner(geoms, values, grid, fill, "uint8")

    def read(window: Window) -> RefBlock:
        return burnt(window), None

    return read


def _window_burner(geoms: Any, values: list[int], grid: Grid, fill: int, dtype: str) -> Callable[[Window], np.ndarray]:
    """A burner of ``geoms`` (``values`` each) into any window of ``grid``, on the window's own transform: a
    window's pixels are those of the whole grid burnt at once, later polygons over earlier ones, so a layer is
    burnt in the memory of a block (and its polygons' index)."""
    import shapely
    from rasterio.features import rasterize
    from rasterio.windows import transform as window_transform

    geoms = np.asarray(geoms, dtype=object)
    tree = shapely.STRtree(geoms)

    def burn(window: Window) -> np.ndarray:
        # a polygon whose box misses the window's holds none of its pixel centres; later ones burn over earlier ones
        hits = np.sort(tree.query(shapely.box(*window_extent(window, grid.transform))))
        shape = (int(window.height), int(window.width))
        if hits.size == 0:
            return np.full(shape, fill, dtype)
        return rasterize([(geoms[i], values[i]) for i in hits.tolist()], out_shape=shape,
                         transform=window_transform(window, grid.transform), fill=fill, dtype=dtype)

    return burn


@contextlib.contextmanager
def _layout_reader(reference: Path, layout: str, grid: Grid) -> Iterator[tuple[RefReader, list[ClassInfo]]]:
    """A reader of a benchmark label file decoded to class ids, window by window, with the dataset's class table.
    Each window comes with its pixels of no class (255 but not by design: unknown, not SECOND's white unchanged),
    which :func:`_check_unreadable` judges over the whole file."""
    from rsmamba.classes import classes_from_dicts
    from rsmamba.datasets.benchmark import layout_classes
    from rsmamba.datasets.layouts import decode_labels, label_bands_problem, unlabelled_by_design

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(reference) as src:
            problem = label_bands_problem(src.count, layout)
            if problem:
                raise InputError(f"reference {reference}: {problem}")
            if (src.height, src.width) != (grid.height, grid.width):
                raise InputError(f"{reference}: {src.width}x{src.height} pixels, the prediction has "
                                 f"{grid.width}x{grid.height}; a benchmark label must match its image pixel for pixel")

            def read(window: Window) -> RefBlock:
                raw = src.read(window=window)
                ids = _compact(decode_labels(raw, layout))
                return ids, (ids == IGNORE_INDEX) & ~unlabelled_by_design(raw, layout)

            yield read, list(classes_from_dicts(layout_classes(layout)))


def _check_unreadable(reference: Path | str, layout: str, unreadable: int, pixels: int, notes: list[str]) -> None:
    """A benchmark label file of which more than :data:`UNREADABLE_REFUSED` is of no class is refused, and a share
    over the layouts' threshold warned about (into ``notes``) as training does: only the decodable pixels are
    scored, and 1,816 of 4,096 (a lossy copy), or 64 (the orthophoto given as the label), were scored unsaid."""
    from rsmamba.datasets.layouts import unreadable_warning

    share = unreadable / pixels if pixels else 0.0
    if share > UNREADABLE_REFUSED:
        raise InputError(f"reference {reference}: {share:.0%} of its pixels are of no class of the {layout} layout "
                         f"(refused over {UNREADABLE_REFUSED:.0%}: the rest scored alone says little); give the "
                         f"{layout} label file as published, not an image or a copy re-saved with lossy compression "
                         "or resampled")
    message = unreadable_warning(f"reference {reference}", share)
    if message:
        log.warning(message)
        notes.append(message)


def _semantic_classes(prediction: Path, change: bool, classes: list[ClassInfo] | None) -> int:
    """The number of land-cover classes of a ``change --semantic`` raster (``classes``, else its class_names tag);
    any other prediction is refused."""
    with rasterio.open(prediction) as src:
        if not change or src.count < 3:
            raise InputError(f"--reference-t2 scores semantic change: prediction {prediction} must be the output of "
                             "'rsmamba change --semantic' (bands change, from_class, to_class)")
        table = classes or declared_classes(src)
    if not table:
        raise InputError(f"prediction {prediction}: no class table (tag CLASSES or class_names); give --layout")
    return max(c.id for c in table) + 1


def _change_against_classes(prediction: Path, reference: Path, what: str) -> str:
    """Why a change raster is not scored against a land-cover reference, and what to give: a change raster (0/1),
    or for ``change --semantic`` output both dates' labels (the QA was pointed to a change raster only)."""
    with rasterio.open(prediction) as src:
        semantic = src.count >= 3
    head = f"prediction {prediction} is a {'semantic ' if semantic else ''}change raster (band 1: 0/1 change" + \
        (", bands 2/3 from_class, to_class)" if semantic else ")") + f" but reference {reference} {what}"
    if not semantic:
        return f"{head}; score it against a change raster (0/1)"
    parts = list(Path(reference).parts)
    guess = next((Path(*parts[:i], "label2", *parts[i + 1:]) for i in range(len(parts) - 1, -1, -1)
                  if parts[i] == "label1"), None)  # SECOND's folders of each date's labels
    t2 = shell_word(str(guess)) if guess is not None and guess.is_file() else "LABEL_T2"
    return (f"{head}; score its semantic change against both dates' land-cover labels: add --reference-t2 {t2} "
            "(date 2's labels), or score band 1 alone against a change raster (0/1)")


SEMANTIC_ROLES = ("reference", "reference t2", "prediction from_class", "prediction to_class")


def _semantic_block(bands: np.ndarray, valid: np.ndarray, ref1: RefBlock, ref2: RefBlock, layout: str | None,
                    k: int, core: tuple[slice, slice], tally: _Tally, kept: np.ndarray | None = None) -> np.ndarray:
    """SCanNet's semantic change counts of one block of a ``change --semantic`` raster (``bands``: change,
    from_class, to_class) against the two dates' land cover, added to ``tally``; returns the 0/1 change reference
    (255: not scored) of the references' window (the block and its ``core`` within), which the binary scores use.
    ``kept``: the block's pixels left by ``--erode`` (None: all), the same the binary scores count; the ids of the
    eroded ones are checked all the same.

    A benchmark layout's date-1 pixels of no class (not its unchanged) have no change label, as training has it
    (:func:`rsmamba.datasets.layouts.scd_targets`); a date-2 pixel of no class where date 1 changed is left out of
    date 2's histogram only."""
    from rsmamba.metrics import semantic_change_hist_7class

    (r1, unknown1), (r2, _) = ref1, ref2
    if layout in ("second", "landsat-scd"):  # land cover only where changed: unchanged is 255 in both
        # date 1 says changed or not (scd_targets); a pixel of no class was scored as unchanged, against the
        # warning that it is ignored: a perfect answer on labels with 3 % such pixels scored SeK 0.83
        scored = np.ones(r1.shape, bool) if unknown1 is None else ~unknown1
        changed = r1 != IGNORE_INDEX
    else:
        scored = (r1 != IGNORE_INDEX) & (r2 != IGNORE_INDEX)
        changed = r1 != r2
    pred_change, from_class, to_class = bands
    for held, r in zip(tally.landcover_held, (r1[core], r2[core])):  # each reference's palette is checked by them
        held.update(_ids_in(r[r != IGNORE_INDEX]))
    # band 1 other than 0/1 is no change answer: the binary scores leave it out (and say it), so these do too
    v, c = scored[core] & valid & (pred_change <= 1), changed[core]
    for i, (arr, ok) in enumerate(((r1[core], c), (r2[core], c), (from_class, pred_change == 1),
                                   (to_class, pred_change == 1))):
        # a reference's 255: of no class, left out; a predicted change's 255 (its bands' nodata, where band 1 is
        # valid and changed) is no land cover and refused as any id past the table: it dropped out of that date's
        # counts unsaid, SeK 0.42 read 0.38 (QA)
        top = int(arr[v & ok & ((arr != IGNORE_INDEX) | (i >= 2))].max(initial=0))
        tally.semantic_tops[i] = max(tally.semantic_tops[i], top)
    v = v if kept is None else v & kept
    hist = semantic_change_hist_7class(from_class[v], to_class[v], pred_change[v], r1[core][v], r2[core][v], c[v],
                                       num_landcover=k)
    tally.semantic_hist = hist if tally.semantic_hist is None else tally.semantic_hist + hist
    return np.where(scored, changed, IGNORE_INDEX).astype(np.uint8)


@dataclass
class _Tally:
    """What ``evaluate`` counts over the blocks: sums, maxima and sets of the blocks' own, so the whole scene's."""

    pixels: int = 0
    ref_top: int = 0  # the largest reference id (a change raster's reference must be 0/1)
    labelled: int = 0  # reference pixels of a class, before the table's check (a vector reference's coverage)
    pred_classes: set[int] = field(default_factory=set)  # the valid prediction's ids, before the table's check
    outside: dict[str, tuple[int, set[int]]] = field(default_factory=dict)  # role: pixels, ids the table lacks
    held: set[int] = field(default_factory=set)  # the reference's ids scored
    pred_ids: set[int] = field(default_factory=set)  # the valid prediction's ids scored
    both: int = 0  # pixels valid in both
    scored: int = 0  # of them, those not eroded
    hist: np.ndarray = field(default_factory=lambda: np.zeros((IGNORE_INDEX, IGNORE_INDEX), np.int64))
    unreadable: list[int] = field(default_factory=lambda: [0, 0])  # a layout's pixels of no class, per date
    semantic_tops: list[int] = field(default_factory=lambda: [0] * len(SEMANTIC_ROLES))
    landcover_held: list[set[int]] = field(default_factory=lambda: [set(), set()])  # each date's land-cover ids
    landcover_labelled: list[int] = field(default_factory=lambda: [0, 0])  # each date's pixels of a class
    semantic_hist: np.ndarray | None = None

    def add_outside(self, role: str, ids: np.ndarray) -> None:
        count, seen = self.outside.get(role, (0, set()))
        self.outside[role] = (count + ids.size, seen | set(_ids_in(ids)))


def _known_only(block: RefBlock, known: list[int], role: str, core: tuple[slice, slice], tally: _Tally) -> RefBlock:
    """A land-cover reference's block with the ids the land-cover table does not name made no label, counted for
    ``role`` (the core's): not scored and said, as plain evaluate does (an ISPRS boundary code 6 refused the run)."""
    ids, unknown = block
    outside = (ids != IGNORE_INDEX) & ~np.isin(ids, known)
    tally.add_outside(role, ids[core][outside[core]])
    return (np.where(outside, IGNORE_INDEX, ids).astype(ids.dtype) if outside.any() else ids), unknown


def _ids_in(a: np.ndarray) -> list[int]:
    """The distinct values of ``a``, rising (8-bit ids marked in a table of 256: no sort, no 8-byte copy)."""
    if a.dtype == np.uint8:
        present = np.zeros(256, bool)
        present[a] = True
        return np.flatnonzero(present).tolist()
    return np.unique(a).tolist()


@dataclass
class _Pass:
    """The product of :func:`_score_blocks` beyond the counts: the panels' samples."""

    tally: _Tally
    pred_panel: np.ndarray
    ref_panel: np.ndarray


def _score_blocks(prediction: Path, grid: Grid, read_ref: RefReader, read_ref2: RefReader | None, *,
                  layout: str | None, k: int | None, known: list[int] | None, erode: int, block_size: int,
                  step: int, pred_classes: bool, objects: _BuildingCounts | None = None,
                  landcover: list[int] | None = None, colours: str | None = None) -> _Pass:
    """Read the prediction and the reference(s) block by block and count all that ``evaluate`` scores and says.

    ``known``: the class table's ids (others are not scored); ``erode``: the boundary radius, read as a halo of
    that many pixels around each block, so each block's eroded mask is the whole reference's (with ``read_ref2``,
    the boundaries of either date's land cover, for the semantic and the binary scores alike); ``step``: the
    panels' subsampling (every ``step``-th pixel, as the whole raster's ``[::step, ::step]``);
    ``pred_classes``: note the prediction's ids before the table's check; ``objects``: the building objects' counts,
    given each block; ``landcover``: with ``read_ref2``, the land-cover table's ids (others are not scored)."""
    from rsmamba.raster.windows import block_windows

    halo = int(np.ceil(erode))
    size = max(block_size, 4 * halo)  # a block much smaller than its halo would read the halo over and over
    side = max([IGNORE_INDEX, *(i + 1 for i in known or [])])  # the confusion count of ids 0..254 and the table's
    tally = _Tally(hist=np.zeros((side, side), np.int64))
    shape = (-(-grid.height // step), -(-grid.width // step))
    out = _Pass(tally, np.zeros(shape, np.uint8), np.zeros(shape, np.uint8))  # ids as _colourise reads them
    with rasterio.open(prediction) as src:
        for w in block_windows(grid.width, grid.height, size):
            r0, c0, h, wd = w.row_off, w.col_off, w.height, w.width
            hr0, hc0 = max(0, r0 - halo), max(0, c0 - halo)
            around = Window(hc0, hr0, min(grid.width, c0 + wd + halo) - hc0, min(grid.height, r0 + h + halo) - hr0)
            core = (slice(r0 - hr0, r0 - hr0 + h), slice(c0 - hc0, c0 - hc0 + wd))
            pred, valid = _read_prediction(src, w, colours)
            ref1 = read_ref(around)
            if ref1[1] is not None:
                tally.unreadable[0] += int(ref1[1][core].sum())
            near = None  # within erode px of a reference's class boundary: no pixel of it is scored
            if read_ref2 is not None:
                ref2 = read_ref2(around)
                for i, r in enumerate((ref1[0], ref2[0])):  # each date's coverage, said of its own file
                    tally.landcover_labelled[i] += int((r[core] != IGNORE_INDEX).sum())
                if landcover is not None:  # (before the boundaries: those of the scored ids, as below)
                    ref1, ref2 = (_known_only(r, landcover, role, core, tally)
                                  for r, role in zip((ref1, ref2), SEMANTIC_ROLES))
                if ref2[1] is not None:
                    tally.unreadable[1] += int(ref2[1][core].sum())
                if erode:  # the ISPRS convention for each date's land cover, one mask for every score
                    near = eroded_boundary_mask(ref1[0], erode) | eroded_boundary_mask(ref2[0], erode)
                ref = _semantic_block(src.read([1, 2, 3], window=w), valid, ref1, ref2, layout, k, core, tally,
                                      None if near is None else ~near[core])
            else:
                ref = ref1[0]
            labelled = ref[core] != IGNORE_INDEX
            tally.pixels += labelled.size
            tally.labelled += int(labelled.sum())
            tally.ref_top = max(tally.ref_top, int(ref[core][labelled].max(initial=0)))
            if pred_classes:
                tally.pred_classes.update(_ids_in(pred[valid]))
            if known is not None:  # ids the table does not name are no classes: not scored, and said
                outside = (ref != IGNORE_INDEX) & ~np.isin(ref, known)
                tally.add_outside("reference", ref[core][outside[core]])
                ref[outside] = IGNORE_INDEX  # (in the halo too: the eroded boundaries are those of the scored ids)
                outside = valid & ~np.isin(pred, known)
                tally.add_outside("prediction", pred[outside])
                valid[outside] = False
            labelled = ref[core] != IGNORE_INDEX
            tally.held.update(_ids_in(ref[core][labelled]))
            tally.pred_ids.update(_ids_in(pred[valid]))
            both = valid & labelled
            if erode and near is None:
                near = eroded_boundary_mask(ref, erode)
            scored = both if near is None else both & ~near[core]
            tally.both += int(both.sum())
            tally.scored += int(scored.sum())
            # ids outside the table's and 0..254 are left out here, and refused (no table) or not scored (a table)
            r, p = ref[core][scored], pred[scored]
            for i in range(0, r.size, HIST_PIXELS):
                tally.hist += confusion_matrix(r[i:i + HIST_PIXELS], p[i:i + HIST_PIXELS], side, ignore_index=None)
            rows, cols = slice((-r0) % step, None, step), slice((-c0) % step, None, step)
            p, r = np.where(valid, pred, 0)[rows, cols], ref[core][rows, cols]
            pr, pc = -(-r0 // step), -(-c0 // step)
            out.pred_panel[pr:pr + p.shape[0], pc:pc + p.shape[1]] = np.clip(p, 0, 255)
            out.ref_panel[pr:pr + p.shape[0], pc:pc + p.shape[1]] = np.clip(r, 0, 255)
            if objects is not None:
                objects.add(w, pred, valid)
    return out


def eroded_boundary_mask(ref: np.ndarray, radius: int) -> np.ndarray:
    """True within ``radius`` pixels of a class boundary in the reference (ISPRS "eroded" convention).

    Radius 1 is the pixels on either side of a boundary; a larger radius widens that band with a
    circular disc (ISPRS: "eroded by a circular disc"), not a square, which masks more on diagonals.
    """
    if radius <= 0:
        return np.zeros(ref.shape, bool)
    edge = np.zeros(ref.shape, bool)
    edge[:, 1:] |= ref[:, 1:] != ref[:, :-1]
    edge[:, :-1] |= ref[:, 1:] != ref[:, :-1]
    edge[1:, :] |= ref[1:, :] != ref[:-1, :]
    edge[:-1, :] |= ref[1:, :] != ref[:-1, :]
    if radius == 1 or not edge.any():
        return edge
    # the dilation by a disc of radius r, as a distance to the nearest edge pixel: linear in the pixels
    # whatever r (a (2r+1)^2 structure took 43 s at r = 100 on 256 px and ran out of memory at 10000)
    return ndimage.distance_transform_edt(~edge) <= radius - 1


def object_f1(pred_objects: np.ndarray, ref_objects: np.ndarray, iou_threshold: float = 0.5) -> dict[str, Any]:
    """Object-level precision/recall/F1 of two object rasters (labelled ids > 0): :func:`object_scores` of their
    overlaps and areas."""
    pred_objects, ref_objects = pred_objects.ravel(), ref_objects.ravel()
    both = (pred_objects > 0) & (ref_objects > 0)
    pairs = _overlaps(pred_objects[both], ref_objects[both], int(ref_objects.max(initial=0)))
    return object_scores(*pairs, np.bincount(pred_objects), np.bincount(ref_objects), iou_threshold)


def _overlaps(pred: np.ndarray, ref: np.ndarray, top_ref: int,
              weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (predicted id, reference id) pairs of ``pred`` / ``ref`` (reference ids up to ``top_ref``), in
    rising order, and their pixels (each pair counted once, or summed ``weights``). The overlapping pairs only: a
    dense (n_pred x n_ref) table was 13 GiB for 42k buildings."""
    keys, inverse = np.unique(pred.astype(np.int64) * (top_ref + 1) + ref, return_inverse=True)
    inter = np.bincount(inverse.ravel(), weights=weights, minlength=keys.size).astype(np.int64)
    p_idx, r_idx = np.divmod(keys, top_ref + 1)
    return p_idx, r_idx, inter


def object_scores(p_idx: np.ndarray, r_idx: np.ndarray, inter: np.ndarray, area_p: np.ndarray, area_r: np.ndarray,
                  iou_threshold: float = 0.5, min_pred_pixels: int = 1) -> dict[str, Any]:
    """Object-level precision/recall/F1 from counts: objects matched one-to-one at IoU >= threshold.

    ``p_idx``, ``r_idx``, ``inter``: the overlapping (predicted, reference) id pairs, each once, and their pixels;
    ``area_p``, ``area_r``: each id's pixels (index 0: no object). Counts, so a scene is scored block by block.
    Predicted objects under ``min_pred_pixels`` are dropped (speckle is not a building).

    Pairs are matched greedily by falling IoU, each object once (ties in the order of the ids): above 0.5 a
    match is unique anyway, but at exactly 0.5 one object can be half of two (a terrace of two equal houses
    found as one), and counting pairs would give a precision of 2.

    The objects counted are the ids present: a polygon off the grid (or burnt over by a later one) had an id
    below the highest and was counted as missed, so the same polygons in another order scored F1 0.8 or 1.0.
    """
    keep_p = np.asarray(area_p) >= max(min_pred_pixels, 1)
    keep_r = np.asarray(area_r) > 0
    keep_p[:1] = keep_r[:1] = False
    n_pred, n_ref = int(keep_p.sum()), int(keep_r.sum())
    if n_pred == 0 or n_ref == 0:  # a precision with nothing predicted, a recall with nothing to find: 0/0, None
        return {"tp": 0, "predicted": n_pred, "reference": n_ref, "precision": 0.0 if n_pred else None,
                "recall": 0.0 if n_ref else None, "f1": 0.0 if n_pred or n_ref else None,
                "iou_threshold": iou_threshold, "merged": 0, "merged_buildings": 0, "split": 0, "split_parts": 0}
    # the ids present renumbered 1..n in their order
    new_p, new_r = np.cumsum(keep_p) * keep_p, np.cumsum(keep_r) * keep_r
    area_p = np.r_[0, np.asarray(area_p, np.int64)[keep_p]]
    area_r = np.r_[0, np.asarray(area_r, np.int64)[keep_r]]
    kept = keep_p[p_idx] & keep_r[r_idx]
    p_idx, r_idx, inter = new_p[p_idx[kept]], new_r[r_idx[kept]], np.asarray(inter, np.int64)[kept]
    order = np.lexsort((r_idx, p_idx))
    p_idx, r_idx, inter = p_idx[order], r_idx[order], inter[order]
    iou = inter / (area_p[p_idx] + area_r[r_idx] - inter)
    tp = _one_to_one(p_idx, r_idx, iou, iou_threshold)
    precision, recall = tp / n_pred, tp / n_ref
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"tp": tp, "predicted": n_pred, "reference": n_ref, "precision": precision, "recall": recall, "f1": f1,
            "iou_threshold": iou_threshold, **merge_split_errors(p_idx, r_idx, inter, area_p, area_r)}


def _one_to_one(p_idx: np.ndarray, r_idx: np.ndarray, iou: np.ndarray, threshold: float) -> int:
    """How many (predicted, reference) pairs at IoU >= ``threshold`` match, each object at most once."""
    keep = iou >= threshold
    order = np.argsort(-iou[keep], kind="stable")
    used_p, used_r, tp = set(), set(), 0
    for p, r in zip(p_idx[keep][order].tolist(), r_idx[keep][order].tolist()):
        if p not in used_p and r not in used_r:
            used_p.add(p)
            used_r.add(r)
            tp += 1
    return tp


def merge_split_errors(p_idx: np.ndarray, r_idx: np.ndarray, inter: np.ndarray, area_p: np.ndarray,
                       area_r: np.ndarray) -> dict[str, int]:
    """Merged and split errors from the overlapping (predicted, reference) object pairs.

    Merged: a predicted object holding most (>= 50 %) of each of two or more reference buildings
    (a terrace found as one block). Split: a reference building holding most of each of two or
    more predicted objects. ``*_buildings`` / ``*_parts`` count the objects involved.
    """
    covers_ref = inter * 2 >= area_r[r_idx]
    per_pred = np.bincount(p_idx[covers_ref], minlength=len(area_p))
    inside_ref = inter * 2 >= area_p[p_idx]
    per_ref = np.bincount(r_idx[inside_ref], minlength=len(area_r))
    return {"merged": int((per_pred >= 2).sum()), "merged_buildings": int(per_pred[per_pred >= 2].sum()),
            "split": int((per_ref >= 2).sum()), "split_parts": int(per_ref[per_ref >= 2].sum())}


def _read_layer(path: Path, role: str, layer: str | None = None, choose: str = "") -> Any:
    """A vector input as a GeoDataFrame; a file GDAL cannot read is one line naming its role."""
    from rsmamba.paths import read_vector

    try:
        return read_vector(path, layer, role, choose)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error is an input problem
        if not _unreadable({role: path}):  # a raster (synth's instances_t1.tif): said as one, not as unreadable
            raise InputError(f"{role} {path}: a raster, not a vector layer; give the buildings as polygons (e.g. "
                             f"gdal_polygonize.py of an instance raster, or 'rsmamba vectorize')") from None
        raise InputError(f"{role} {path}: not a readable vector layer ({str(exc).splitlines()[0]})") from exc


AREA_TYPES = ("Polygon", "MultiPolygon", "GeometryCollection")  # (a collection's areas: repaired_areas)


def _areas_only(layer: Any, what: str, notes: list[str] | None, objects: bool) -> Any:
    """A layer's areas: a layer of points or lines (house centroids, outlines as lines) scored F1 0 or a whole
    raster against background, exit 0. None at all is refused; some are said, and left out of the object
    scores (``objects``) or burnt as 1-px lines and points, as ``tile`` burns a label layer's."""
    kinds = layer.geom_type
    areas = kinds.isin(AREA_TYPES).to_numpy()
    if not areas.any():
        raise InputError(f"{what}: no polygons, only {'/'.join(sorted(set(kinds)))} features; give a layer of "
                         f"{'building outlines as polygons' if objects else 'areas'}")
    if areas.all():
        return layer
    count = int((~areas).sum())
    said = (f"{what}: {count} feature{'s' * (count != 1)} of the layer {'are' if count != 1 else 'is'} "
            f"{'/'.join(sorted(set(kinds[~areas])))}, not areas: "
            + ("left out of the object scores" if objects else "burnt as 1-px lines and points"))
    log.warning(said)
    if notes is not None:
        notes.append(said)
    return layer[areas] if objects else layer


def _overlap_note(geoms: Any, grid: Grid, what: str) -> str | None:
    """What a layer's overlapping polygons do to object scores, or None: burnt in the layer's order, each pixel
    is the last polygon's, so a polygon under later ones is scored by what shows of it, and one that shows
    nothing is not counted (a layer appended twice scored precision 1.0 with each house twice)."""
    import shapely

    a, b, shared = overlapping_pairs(geoms, abs(grid.transform.determinant))
    if not len(a):
        return None
    covered = np.zeros(len(geoms))
    np.add.at(covered, a, shared)  # the earlier of a pair is burnt over by the later
    mostly = int((covered >= 0.5 * shapely.area(np.asarray(geoms))).sum())
    overlapping = len(np.unique(np.r_[a, b]))
    return (f"{what}: {overlapping:,} polygons overlap others by a pixel or more ({mostly:,} of them half covered or "
            "more by later ones: duplicates, or a layer written twice?); each pixel is burnt for the last polygon, so "
            "a covered one is scored by what shows of it and one that shows nothing is not counted")


def _building_burner(path: Path, grid: Grid, role: str = "buildings", layer_name: str | None = None,
                     notes: list[str] | None = None) -> tuple[Callable[[Window], np.ndarray], int]:
    """Each polygon of the layer one object id (1..n, in the layer's order) on the prediction grid: a burner of
    any window of it, and n. What would make the scores wrong unsaid (points, lines, overlaps) goes to ``notes``."""
    layer = _read_layer(path, role, layer_name, f"--{role}-layer NAME")
    if layer.crs is None:
        raise InputError(f"{role} {path}: layer has no CRS")
    layer = layer[~(layer.geometry.isna() | layer.geometry.is_empty)]
    if len(layer) == 0 and role == "buildings":  # object F1 against no reference object means nothing
        raise InputError(f"{role} {path}: the layer has no features with a geometry")
    if len(layer) == 0:  # no predicted footprint: every reference building is missed, as scored; said (F1 0,
        # exit 0, for a layer that may be the wrong file or layer)
        said = (f"{role} {path}: the layer has no polygon: every reference building counts as missed (the "
                "right file and --footprints-layer?)")
        log.warning(said)
        if notes is not None:
            notes.append(said)
        return lambda window: np.zeros((int(window.height), int(window.width)), np.int32), 0
    if (mixed := _other_classes(layer, f"{role} {path}")) is not None:
        log.warning(mixed)
        if notes is not None:
            notes.append(mixed)
    layer = _areas_only(layer, f"{role} {path}", notes, objects=True)
    layer = _layer_on_grid(layer, grid, f"{role} {path}")
    geoms, repaired = repaired_areas(layer.geometry)  # a ring traced twice burnt nothing: a building missed
    if repaired:
        log.warning(f"{role} {path}: {repaired} invalid polygon{'s' * (repaired != 1)} (self-intersecting, a ring "
                    "traced twice) repaired before burning (shapely make_valid)")
    overlap = _overlap_note(geoms, grid, f"{role} {path}")
    if overlap:
        log.warning(overlap)
        if notes is not None:
            notes.append(overlap)
    return _window_burner(geoms, list(range(1, len(geoms) + 1)), grid, 0, "int32"), len(geoms)


def _other_classes(layer: Any, what: str) -> str | None:
    """A layer of objects whose ``class`` field, or ``class_name`` (``rsmamba vectorize``'s: its polygons of every class
    given as --footprints scored the background's as a predicted building; QA), any case, names more than buildings:
    every polygon of it is scored as a building (a land-cover layer given as --buildings: 8 reference objects, 4 of
    them water and vegetation, unsaid; QA). Said with the values and how to keep the buildings alone."""
    for field in (c for name in ("class", "class_name") for c in layer.columns if str(c).lower() == name):
        values = sorted({str(v) for v in layer[field].dropna()})
        others = [v for v in values if v.strip().lower() not in ("building", "buildings", "1")]
        if len(values) >= 2 and others:
            break
    else:
        return None
    shown = ", ".join(repr(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
    # a field of numbers is compared as one (class = 'building' matches none of 0..3: ogr2ogr wrote an empty layer)
    import pandas as pd

    value = "BUILDING_ID" if pd.api.types.is_numeric_dtype(layer[field]) else "'building'"
    return (f"{what}: its field {field!r} holds {len(values)} values ({shown}), and every polygon of the layer counts "
            f"as a building; keep the buildings alone (ogr2ogr -where \"{field} = {value}\" buildings.gpkg ...)"
            + ("; 'rsmamba vectorize --classes building' writes them alone" if str(field).lower() == "class_name" else ""))


class _BuildingCounts:
    """What the object scores count, block by block (memory: a block's, and the objects'): each object's pixels and
    the pixels of each (predicted, reference) pair, where the prediction is valid (a building under its nodata, or
    off its grid, is no miss).

    The predicted objects are the 4-connected building regions of the prediction (``building_class``), labelled in
    each block and joined across the seams; their ids are those of one labelling of the whole scene (in the order
    of their first pixel, row by row), so ties in the matching fall alike. Or with ``footprints`` its polygons."""

    def __init__(self, grid: Grid, buildings: tuple[Callable[[Window], np.ndarray], int],
                 footprints: tuple[Callable[[Window], np.ndarray], int] | None, building_class: int | None) -> None:
        self.width, self.building_class = grid.width, building_class
        (self.read_ref, self.n_ref), self.footprints = buildings, footprints
        self.area_r = np.zeros(self.n_ref + 1, np.int64)
        self.area_p: list[np.ndarray] = [np.zeros(footprints[1] + 1, np.int64)] if footprints else []
        self.pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.labels = 0  # the blocks' regions so far: region i + 1 of the scene is block-wide id i
        self.first: list[np.ndarray] = []  # per region, the scene's flat index of its first pixel
        self.seams: list[tuple[np.ndarray, np.ndarray]] = []  # regions touching across a block's edge
        self.above = np.zeros(grid.width, np.int64)  # the regions of the row above the block row read
        self.left = np.zeros(grid.height, np.int64)  # ... and of the column left of the block read

    def add(self, window: Window, pred: np.ndarray, valid: np.ndarray) -> None:
        """Count the block ``window`` of the prediction (``pred``, ``valid``): blocks row by row, as
        :func:`rsmamba.raster.windows.block_windows` gives them."""
        r0, c0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
        ref = np.where(valid, self.read_ref(window), 0)
        if self.footprints is not None:
            ids = np.where(valid, self.footprints[0](window), 0)
            _add_counts(self.area_p[0], ids)
        else:
            local, n = ndimage.label((pred == self.building_class) & valid)  # 4-connected, as whole
            ids = np.where(local > 0, local.astype(np.int64) + self.labels, 0)
            self.area_p.append(np.bincount(local.ravel(), minlength=n + 1)[1:])
            at = np.flatnonzero(local)
            _, first = np.unique(local.ravel()[at], return_index=True)  # (row by row in a block: as in the scene)
            self.first.append((r0 + at[first] // w) * self.width + c0 + at[first] % w)
            for before, edge in ((self.above[c0:c0 + w], ids[0]), (self.left[r0:r0 + h], ids[:, 0])):
                touch = (before > 0) & (edge > 0)
                self.seams.append((before[touch], edge[touch]))
            self.above[c0:c0 + w], self.left[r0:r0 + h] = ids[-1], ids[:, -1]
            self.labels += n
        _add_counts(self.area_r, ref)
        both = (ids > 0) & (ref > 0)
        self.pairs.append(_overlaps(ids[both], ref[both], self.n_ref))

    def scores(self, min_object_pixels: int) -> dict[str, Any]:
        """:func:`object_scores` of the scene's objects (the blocks' regions joined into the scene's)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        if self.footprints is not None:
            region, area_p = np.arange(self.footprints[1] + 1), self.area_p[0]
        elif self.labels == 0:
            region, area_p = np.zeros(1, np.int64), np.zeros(1, np.int64)
        else:
            n = self.labels
            a, b = (np.concatenate([s[i] for s in self.seams]).astype(np.int64) - 1 for i in (0, 1))
            count, joined = connected_components(coo_matrix((np.ones(a.size, bool), (a, b)), shape=(n, n)),
                                                 directed=False)
            first = np.full(count, np.iinfo(np.int64).max)
            np.minimum.at(first, joined, np.concatenate([np.zeros(0, np.int64), *self.first]))
            rank = np.empty(count, np.int64)
            rank[np.argsort(first)] = np.arange(1, count + 1)  # the whole scene's labelling
            region = np.r_[0, rank[joined]]
            area_p = np.bincount(region, weights=np.r_[0, *self.area_p], minlength=count + 1).astype(np.int64)
        p_idx, r_idx, inter = (np.concatenate([pair[i] for pair in self.pairs]) for i in range(3))
        pairs = _overlaps(region[p_idx], r_idx, self.n_ref, weights=inter)
        return object_scores(*pairs, area_p, self.area_r, 0.5, min_object_pixels)


def _add_counts(areas: np.ndarray, ids: np.ndarray) -> None:
    """Add the pixels of each id > 0 of ``ids`` to ``areas`` (indexed by id)."""
    present, counts = np.unique(ids[ids > 0], return_counts=True)
    areas[present] += counts


def _write_png(tmp: Path, rgb: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", driver="PNG", width=rgb.shape[2], height=rgb.shape[1], count=3,
                           dtype="uint8") as dst:
            dst.write(rgb)
        with contextlib.suppress(FileNotFoundError):
            (tmp.parent / (tmp.name + ".aux.xml")).unlink()


CONFUSION_PNG_SIDE = 2048  # px: the confusion PNG's cells shrink to fit (ids up to 254 drew 6120 px, 2.2 GB resident)


def _confusion_png(hist: np.ndarray, cell: int = 24) -> np.ndarray:
    """Row-normalised confusion matrix as a white-to-blue heat map (rows: reference, columns: prediction), ``cell`` px
    a class, fewer where that would pass :data:`CONFUSION_PNG_SIDE`; coloured per cell, then enlarged as uint8."""
    rows = hist.sum(1, keepdims=True)
    share = np.divide(hist, rows, out=np.zeros(hist.shape, float), where=rows > 0)
    cell = max(2, min(cell, CONFUSION_PNG_SIDE // max(hist.shape[0], 1)))
    rgb = np.stack([255 * (1 - share), 255 * (1 - share), 255 * (1 - 0.3 * share)]).astype(np.uint8)
    rgb = rgb.repeat(cell, axis=1).repeat(cell, axis=2)
    rgb[:, ::cell, :] = 128
    rgb[:, :, ::cell] = 128
    return rgb


def _colourise(labels: np.ndarray, classes: list[ClassInfo]) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    for c in classes:
        if 0 <= c.id < 256:
            lut[c.id] = c.color
    return lut[np.clip(labels, 0, 255)].transpose(2, 0, 1)


def _panel_step(shape: tuple[int, ...], max_side: int = 512) -> int:
    """The subsampling of the panels: at most ``max_side`` pixels on their longer side."""
    return max(1, int(np.ceil(max(shape) / max_side)))


def _image_on_grid(image: Path, grid: Grid, step: int) -> np.ndarray:
    """The --image panel: the image's pixels on the prediction's grid, subsampled by ``step`` as the panels
    are (3 x h x w uint8, stretched 2-98 %), black where the image does not reach or has no data.

    Read where the prediction lies (as the reference is), never its whole file squeezed into the panel:
    another scene, or one of 4x the area, was shown beside the prediction as if it were its ground."""
    from affine import Affine
    from rasterio.vrt import WarpedVRT

    shape = (-(-grid.height // step), -(-grid.width // step))  # as pred[::step, ::step]
    with rasterio.open(image) as src:
        # its red, green, blue as declared (a BGR ortho's blue was shown as red, an ARGB one's alpha as red), else
        # its first three image bands (an alpha band is its mask, not a colour)
        rgb = declared_rgb(band_colours(src))
        shown = data_bands(src, alpha_is_data=alpha_holding_data(src) is not None)
        bands = [rgb[c] for c in RGB] if rgb else shown[:3] if len(shown) >= 3 else [shown[0]] * 3
        same = on_the_grid(src, grid)
        if same:  # its own pixels (also two rasters without georeferencing, of one size)
            img = src.read(bands, out_shape=(3, *shape), resampling=Resampling.nearest, masked=True)
        else:
            _check_overlap(src.crs, raster_extent(src.width, src.height, src.transform), grid, f"--image {image}")
            # pixel i of the panel is the prediction's pixel i * step: the same centre
            shift = 0.5 - 0.5 * step
            transform = grid.transform * Affine.translation(shift, shift) * Affine.scale(step)
            with WarpedVRT(src, crs=grid.crs, transform=transform, width=shape[1], height=shape[0],
                           resampling=Resampling.nearest) as vrt:
                img = vrt.read(bands, masked=True)
    data = np.asarray(img.filled(0), dtype=np.float32)
    finite = np.isfinite(data)  # a float image's NaN (declared or not) is not covered, as predict and tile read it
    covered = ~np.ma.getmaskarray(img).any(axis=0) & finite.all(axis=0)
    data[~finite] = 0
    lo, hi = np.percentile(data[:, covered], [2, 98]) if covered.any() else (0.0, 1.0)
    out = np.clip((data - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    out[:, ~covered] = 0
    return out


def _panels(pred: np.ndarray, ref: np.ndarray, classes: list[ClassInfo], image: np.ndarray | None,
            mirrors: tuple[bool, bool] = (False, False)) -> np.ndarray:
    """Image | reference | prediction side by side (``pred`` and ``ref``: every :func:`_panel_step`-th pixel, the
    prediction 0 where it is not valid), each turned north up (``mirrors``:
    :func:`rsmamba.raster.source.grid_mirrors` of the grid; a south-up scene's panels were upside down)."""
    parts = [] if image is None else [image]
    parts += [_colourise(ref, classes), _colourise(pred, classes)]
    up_down, left_right = mirrors
    parts = [part[:, ::-1 if up_down else 1, ::-1 if left_right else 1] for part in parts]
    gap = np.full((3, pred.shape[0], 4), 255, np.uint8)
    out = [parts[0]]
    for part in parts[1:]:
        out += [gap, part]
    return np.concatenate(out, axis=2)


@typed_arguments
@gdal_cache_capped()
def evaluate_rasters(
    prediction: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    class_field: str | None = None,
    classes: list[ClassInfo] | None = None,
    exclude: list[int] | tuple[int, ...] = (),
    erode: int = 0,
    buildings: str | os.PathLike[str] | None = None,
    building_class: int | None = None,
    image: str | os.PathLike[str] | None = None,
    min_object_pixels: int = 0,
    overwrite: bool = False,
    layout: str | None = None,
    burn: int | None = None,
    background: int | None = None,
    footprints: str | os.PathLike[str] | None = None,
    reference_layer: str | None = None,
    buildings_layer: str | None = None,
    footprints_layer: str | None = None,
    reference_t2: str | os.PathLike[str] | None = None,
    block_size: int = BLOCK_SIZE,
) -> dict[str, Any]:
    """Score ``prediction`` against ``reference``; write ``out`` (JSON) plus ``.csv``, ``_confusion.png``
    and ``_panels.png`` beside it, and return the metrics dict.

    ``class_field`` (None: ``class``) names a vector reference's class attribute (ids or class names).
    ``buildings`` (reference polygons) adds object-level building F1 at IoU 0.5 for ``building_class`` (None:
    the prediction's class named building; refused when none is);
    predicted objects smaller than ``min_object_pixels`` are dropped first (speckle is not a building).
    The predicted objects are the connected building regions of ``prediction``, or with
    ``footprints`` the polygons of that layer, each one building (``vectorize --instances``): then
    the scores are per individual building. Merged and split errors are counted beside them.
    The four files are published together (:func:`rsmamba.atomic.publish`): none may be an input,
    and existing ones are refused unless ``overwrite``.

    ``reference_layer`` (``buildings_layer``, ``footprints_layer``) names the layer of a vector file
    that holds several.

    ``layout`` (isprs, loveda, second, landsat-scd) reads ``reference`` as that benchmark's label
    file, pixel for pixel with the prediction (benchmark tiles are often not georeferenced), with
    the dataset's class table; for ``isprs`` Clutter (5) leaves the means unless ``exclude`` is given.

    ``reference_t2`` scores semantic change: ``prediction`` is ``rsmamba change --semantic`` output
    (change, from_class, to_class), ``reference`` and ``reference_t2`` the land cover of the two
    dates (SECOND's ``label1``/``label2`` with ``layout``, else class rasters, changed where they
    differ). The metrics are the change class's, plus ``semantic_change``: SeK, Fscd, mIoU, OA and
    score = 0.3 mIoU + 0.7 SeK as SCanNet's evaluation (Mamba-FCS, SECOND, Landsat-SCD) computes them. ``erode``
    then leaves out the pixels near a class boundary of either date, from every score alike (the benchmarks erode
    nothing: mixing eroded and whole-scene numbers in one file misled).

    The rasters are read ``block_size`` pixels square at a time (the memory bound; the scores are counts, the
    same whatever the block); ``buildings`` too: the objects' pixels and overlaps are counted per block, and the
    building regions cut by a block's edge joined after (memory: a block's, and the objects' counts).
    """
    prediction, reference, out = Path(prediction), Path(reference), Path(out)
    problems = ProblemCollector()
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        problems.add(f"--block-size must be a whole number of pixels >= 1, got {block_size!r}")
    from rsmamba.paths import inputs_problems, vector_path_problem

    for problem in inputs_problems({"prediction": prediction, "reference": reference, "reference t2": reference_t2,
                                    "buildings": buildings, "image": image, "footprints": footprints}):
        problems.add(problem)

    if buildings is not None and vector_path_problem(buildings, "buildings"):
        problems.add(vector_path_problem(buildings, "buildings"))
    if footprints is not None and buildings is None:
        problems.add("--footprints are scored against reference buildings: give --buildings")
    elif footprints is not None and vector_path_problem(footprints, "footprints"):
        problems.add(vector_path_problem(footprints, "footprints"))
    raster_reference = reference.suffix.lower() not in VECTOR_SUFFIXES or layout is not None
    rasters = {"prediction": prediction, "image": image,
               **({"reference": reference, "reference t2": reference_t2} if raster_reference else {})}
    for problem in _unreadable(rasters):
        problems.add(problem)
    # options of a vector reference, of --buildings, of --footprints: without them they would change nothing, silently
    idle = [name for name, value, needs in (
        ("--burn", burn, raster_reference), ("--class-field", class_field, raster_reference),
        ("--reference-layer", reference_layer, raster_reference)) if value is not None and needs]
    if idle:
        problems.add(f"{', '.join(idle)}: {'options' if len(idle) > 1 else 'an option'} of a vector reference "
                     f"(polygons burnt onto the prediction's grid); {reference} is a raster")
    idle = [name for name, value in (("--buildings-layer", buildings_layer), ("--building-class", building_class),
                                     ("--min-object-pixels", min_object_pixels or None)) if value is not None]
    if idle and buildings is None:
        problems.add(f"{', '.join(idle)}: {'options' if len(idle) > 1 else 'an option'} of the building scores: "
                     "give --buildings")
    if footprints_layer is not None and footprints is None:
        problems.add("--footprints-layer: the layer of the --footprints file: give --footprints")
    if building_class is not None and footprints is not None and buildings is not None:
        problems.add(f"--building-class {building_class}: picks the prediction's building regions; --footprints are "
                     "the buildings scored instead: give one of them")
    if background is not None and raster_reference:
        problems.add(f"--background {background}: the class of a vector reference's outside; {reference} is a raster")
    elif background is not None and not 0 <= background <= IGNORE_INDEX:  # tile's rule: 255 is no label
        problems.add(f"--background must be a class id in 0..{IGNORE_INDEX - 1} or {IGNORE_INDEX} (not scored), "
                     f"got {background}")
    elif background is not None and burn is not None:
        problems.add("--burn scores the outside as background 0 already; give one of --burn and --background")
    if burn is not None and not 0 < burn < IGNORE_INDEX:  # tile's rule: 0 is the background, 255 no label
        problems.add(f"--burn must be a class id in 1..{IGNORE_INDEX - 1}, got {burn}")
    if burn is not None and class_field is not None:
        problems.add(f"--burn {burn} scores every reference polygon as one class, --class-field {class_field} reads "
                     "each polygon's class: give one of them")
    class_field = class_field or "class"
    if erode < 0:
        problems.add(f"--erode must be >= 0, got {erode}")
    stem = out.with_suffix("")
    files = [out, *(stem.with_name(stem.name + tail) for tail in (".csv", "_confusion.png", "_panels.png"))]
    inputs = [prediction, reference, reference_t2, buildings, image, footprints]
    if out.suffix.lower() != ".json":  # the CSV and the pictures are named after it; -o m.tif put JSON in a .tif
        problems.add(f"-o {out}: is the scores' JSON, and the CSV, confusion matrix and panels are written beside "
                     f"it ({', '.join(f.name for f in files[1:])}); give {stem.name}.json")
    else:
        for problem in output_problems(files, inputs=inputs, overwrite=overwrite):
            problems.add(problem)
    problems.raise_if_any()
    settle_inputs(inputs)  # a prediction and its footprints published together are read together
    grid, change, colours = _prediction_grid(prediction, layout)
    step = _panel_step((grid.height, grid.width))
    image_panel = None if image is None else _image_on_grid(Path(image), grid, step)
    reference_notes: list[str] = []
    k = None
    with contextlib.ExitStack() as stack:
        if layout is not None:
            read_ref, layout_classes = stack.enter_context(_layout_reader(reference, layout, grid))
            if change and reference_t2 is None:  # a layout's labels are land cover: said before the file is tallied
                top = max(c.id for c in layout_classes if not c.filler)
                raise InputError(_change_against_classes(prediction, reference,
                                                         f"is a label file of the {layout} layout (land cover, class ids up to {top})"))
            if not change or reference_t2 is not None:  # a change raster's band 1 is scored as change, whatever its table
                _check_layout_table(prediction, layout, layout_classes)
            classes = classes or layout_classes
            if layout == "isprs" and not exclude:
                exclude = [5]
        else:
            # a change raster's band 1 is scored against change (0/1): a reference's names are no_change/change, not
            # land cover (polygons named 'building' were scored as change, 'impervious' as no change)
            table = classes or (CHANGE_CLASSES if change and reference_t2 is None else classes_of_raster(prediction))
            names = {c.name: c.id for c in (table or ISPRS_CLASSES) if not c.filler}
            read_ref = stack.enter_context(reference_reader(
                reference, grid, class_field, burn, reference_layer, notes=reference_notes, class_names=names,
                background=background))
        read_ref2, landcover = None, None
        if reference_t2 is not None:
            read_ref2 = stack.enter_context(  # read as t1's reference
                _layout_reader(Path(reference_t2), layout, grid) if layout is not None else
                reference_reader(reference_t2, grid, class_field, burn, reference_layer, notes=reference_notes,
                                 class_names=names, background=background))
            read_ref2 = read_ref2[0] if layout is not None else read_ref2
            k = _semantic_classes(prediction, change, classes)
            landcover = list(classes or classes_of_raster(prediction) or [])  # the references' table, not band 1's
        if change:  # band 1 is 0/1 change: scored against a change reference, never against classes
            classes = list(CHANGE_CLASSES) if reference_t2 is not None else classes or list(CHANGE_CLASSES)
        table = classes or classes_of_raster(prediction)  # a declared class table (else ISPRS ids, open-ended)
        classes = list(table or ISPRS_CLASSES)
        exclude = list(exclude)
        ids = {c.id for c in classes}
        unknown = [f"--exclude {c}" for c in exclude if c not in ids]
        if building_class is None and buildings is not None and footprints is None:
            # the prediction's class named building (a firm's table puts it anywhere); none: refused, not id 1 (road?)
            building_class = next((c.id for c in classes if c.name.lower() == "building"), None)
            if building_class is None and change:  # band 1 is change: its land cover (bands 2/3) is no object class
                raise InputError(f"--buildings: prediction {prediction} is a change raster: its band 1, the one "
                                 "scored, holds 0 no_change, 1 change, no class named building"
                                 + (" (the land cover of bands 2/3 is not scored as objects)" if reference_t2 else "")
                                 + "; --building-class 1 scores its change regions as objects, --footprints the "
                                 "polygons given")
            if building_class is None:
                raise InputError(f"--buildings: no class of the prediction's table is named building ("
                                 f"{', '.join(f'{c.id} {c.name}' for c in classes if not c.filler)}); "
                                 "give --building-class ID")
        if buildings is not None and footprints is None and building_class not in ids:
            unknown.append(f"--building-class {building_class}")
        if unknown and change:  # the means are band 1's (a land-cover id of --reference-t2 was said as no class)
            raise InputError(f"{', '.join(unknown)}: no class of a change raster's scores (0 no_change, 1 change): "
                             "its means are over change and no change"
                             + ("; the land-cover classes of --reference-t2 leave no score" if reference_t2 else ""))
        if unknown:  # else accepted without a word: nothing left the means, or a building F1 of 0 over no class
            raise InputError(f"{', '.join(unknown)}: no class of the prediction's table (ids "
                             f"{', '.join(str(c.id) for c in classes)})")
        known = sorted(c.id for c in classes if not c.filler)  # a filler (a table's gap: its labels' ignore value) is none
        objects = None if buildings is None else _BuildingCounts(
            grid, _building_burner(Path(buildings), grid, "buildings", buildings_layer, reference_notes),
            None if footprints is None else _building_burner(Path(footprints), grid, "footprints", footprints_layer,
                                                             reference_notes),
            building_class)
        done = _score_blocks(prediction, grid, read_ref, read_ref2, layout=layout, k=k, known=known if table else None,
                             erode=erode, block_size=block_size, step=step, objects=objects,
                             pred_classes=burn is not None and not change,
                             landcover=None if landcover is None else sorted(c.id for c in landcover if not c.filler),
                             colours=colours)
    tally = done.tally
    if layout is not None:
        for path, unreadable in zip((reference, reference_t2), tally.unreadable):
            if path is not None:
                _check_unreadable(path, layout, unreadable, tally.pixels, reference_notes)
    semantic = None
    if k is not None:
        from rsmamba.metrics import scd_score, semantic_change_scores_of_hist

        for band, top in zip(("from_class", "to_class"), tally.semantic_tops[2:]):  # the references': not scored
            if top >= k:
                raise InputError(f"prediction {prediction}: band {band} holds land-cover id {top} where the class "
                                 f"table has {k} classes (0..{k - 1})")
        semantic = semantic_change_scores_of_hist(tally.semantic_hist)
        semantic["score"] = scd_score(semantic)
    if change and tally.ref_top > 1:
        raise InputError(_change_against_classes(prediction, reference, f"holds class ids up to {tally.ref_top}"))
    change_reference = None
    if not change and layout is None and reference.suffix.lower() not in VECTOR_SUFFIXES:
        with rasterio.open(reference) as src:
            change_reference = is_change_raster(src)
    top = max(tally.pred_ids, default=0)
    if change_reference and top > 1:  # a land-cover map scored against 0/1 change: mIoU 0.08, exit 0 (QA)
        raise InputError(f"reference {reference} is a change raster (band 1: 0/1 change) but prediction {prediction} "
                         f"holds class ids up to {top}; score a change raster ('rsmamba change' output) against it, "
                         "or the class raster against land-cover labels")
    reference_warnings = [*reference_notes, *_nodata_warnings(prediction, "prediction", classes, exclude),
                          *(_nodata_warnings(reference, "reference", classes, exclude)
                            if layout is None and not landcover else [])]
    if layout is None and landcover:  # each date's land cover, against the land-cover table
        for role, path in zip(SEMANTIC_ROLES, (reference, Path(reference_t2))):
            reference_warnings += _nodata_warnings(path, role, landcover, None)
    if change_reference:  # a 0/1 map of another tool, its band 1 not described 'change': scored as its classes 0, 1
        named = {c.id: c.name for c in classes}
        message = (f"reference {reference} is a change raster (band 1 described 'change') and prediction {prediction} "
                   f"is not: its 0/1 are scored as the classes 0 ({named.get(0, '0')}) and 1 ({named.get(1, '1')}); a "
                   "change map is scored in change terms with its band 1 described 'change', as 'rsmamba change' "
                   "writes it")
        log.warning(message)
        reference_warnings.append(message)
    if layout in ("second", "landsat-scd") and semantic is None:
        message = (f"reference {reference}: {layout} labels land cover only where it changed, so only those pixels "
                   "are scored; for the benchmark's SeK, Fscd and mIoU score 'change --semantic' output with "
                   "--reference-t2 LABEL2")
        log.warning(message)
        reference_warnings.append(message)
    coverage = ([("reference", reference, tally.labelled)] if landcover is None else
                zip(SEMANTIC_ROLES, (reference, Path(reference_t2)), tally.landcover_labelled))  # each date's own
    for role, path, labelled in coverage:
        if (layout is None and burn is None and background is None and path.suffix.lower() in VECTOR_SUFFIXES
                and labelled / tally.pixels < 0.99):
            # tile fills a label layer's outside with --background 0; here the outside is not scored at all
            message = (f"{role} {path}: a vector reference scores only the pixels inside its polygons "
                       f"({labelled / tally.pixels:.1%} of the prediction); --background ID scores the rest "
                       "as that class, as tile fills a label layer's outside (--background 0); for a layer of one "
                       "class, --burn ID")
            log.warning(message)
            reference_warnings.append(message)
    if burn is not None and not change:
        others = sorted(tally.pred_classes - {0, burn})
        if others:  # a 6-class map against footprints: every other class counts against "background 0"
            named = {c.id: c.name for c in classes}
            message = (f"reference {reference}: --burn {burn} names class {burn} and background 0 only; the "
                       f"prediction's classes {', '.join(named.get(i, str(i)) for i in others[:6])} count as errors "
                       f"against background {named.get(0, '0')}: read class {named.get(burn, burn)}'s scores, not the "
                       "means and OA")
            log.warning(message)
            reference_warnings.append(message)
    for role, path in (("reference", reference), ("reference t2", reference_t2), ("prediction", prediction)):
        count, found = tally.outside.get(role, (0, set()))
        if count:
            ids = sorted(found)
            lc = landcover is not None and role != "prediction"  # a land-cover reference's ids: that table's
            message = (f"{role} {path}: {count:,} px hold ids no class of the {'land-cover ' if lc else ''}table has "
                       f"({', '.join(map(str, ids[:8]))}{', ...' if len(ids) > 8 else ''}"
                       + ("; the class table's ignore value when tiled?"
                          if any(c.filler for c in (landcover if lc else classes) if c.id in found) else "")
                       + "); they are not scored"
                       + ("; if one marks no data, declare it (gdal_edit.py -a_nodata)" if role == "prediction" else ""))
            log.warning(message)
            reference_warnings.append(message)
    held = tally.held
    if change and reference_t2 is None and layout is None and 1 not in held:
        message = _change_coded_255(reference, block_size)
        if message:
            log.warning(message)
            reference_warnings.append(message)
    if not change and layout is None and reference.suffix.lower() not in VECTOR_SUFFIXES:
        reference_warnings += _name_warnings(reference, list(table or ISPRS_CLASSES), held, guessed=not table)
    elif landcover and layout is None:  # each date's land cover, by its own ids
        for role, path, ids in zip(SEMANTIC_ROLES, (reference, Path(reference_t2)), tally.landcover_held):
            if path.suffix.lower() not in VECTOR_SUFFIXES:
                reference_warnings += _name_warnings(path, landcover, ids, role)
    if (table and not change and layout is None and reference.suffix.lower() not in VECTOR_SUFFIXES
            and _declares_colours(prediction)):
        reference_warnings += _palette_warnings(reference, list(table), held)
    elif landcover and layout is None and _declares_colours(prediction):  # each date's land cover, by its own ids
        for role, path, ids in zip(SEMANTIC_ROLES, (reference, Path(reference_t2)), tally.landcover_held):
            if path.suffix.lower() not in VECTOR_SUFFIXES:
                reference_warnings += _palette_warnings(path, landcover, ids, role)
    values = sorted(tally.pred_ids | held)  # Python ints: a uint64 id beyond int64 is said as it is
    odd = [v for v in values if not 0 <= v < IGNORE_INDEX]
    if not table and odd:  # the confusion matrix is sized by the largest id: 65534 asked for 32 GiB
        raise InputError(f"{prediction} / {reference}: ids {', '.join(map(str, odd[:5]))} and no class table; "
                         f"class ids are 0..{IGNORE_INDEX - 1} (declare a nodata value, or give the prediction's "
                         "CLASSES tag / --layout)")
    num_classes = max(max((c.id for c in classes), default=-1) + 1, values[-1] + 1 if values else 0)
    named = {c.id for c in classes}  # (once: rebuilt for each id, filling the table was quadratic)
    classes += [ClassInfo(i, f"class_{i}", (128, 128, 128)) for i in range(num_classes) if i not in named]
    classes.sort(key=lambda c: c.id)
    if not tally.both:
        raise InputError(f"{prediction} / {reference}: no pixel is valid in both (all nodata or ignore)")
    if not tally.scored:
        raise InputError(f"--erode {erode:g}: every pixel valid in both lies within {erode:g} px of a class boundary, "
                         "so none is left to score; give a smaller radius")
    if erode and tally.scored < ERODE_WARN_SHARE * tally.both:  # a score of a handful of pixels, unsaid
        message = (f"--erode {erode:g} leaves {tally.scored / tally.both:.1%} of the pixels valid in both to score "
                   f"({tally.scored:,} px): the scores say little")
        log.warning(message)
        reference_warnings.append(message)
    hist = tally.hist[:num_classes, :num_classes]
    if not table:  # ISPRS ids, open-ended: an id past them in one map alone is likely a fill value, not a class
        lone = sorted((tally.pred_ids ^ held) - {c.id for c in ISPRS_CLASSES})
        if lone:  # (an undeclared fill 254 of the prediction scored as class_254: mIoU 0.54 for 0.73, unsaid; QA)
            def said(i: int) -> str:
                return f"{i}: {int(hist[:, i].sum()):,} px of the prediction, {int(hist[i].sum()):,} of the reference"

            holder = prediction if hist[:, lone[0]].sum() else reference
            declare = ("" if holder.suffix.lower() in VECTOR_SUFFIXES else
                       f"if one marks no data, declare it (gdal_edit.py -a_nodata {lone[0]} {shell_word(str(holder))}), or ")
            message = (f"prediction {prediction}: no class table, and ids past the ISPRS classes that only one of the "
                       f"two maps holds ({'; '.join(said(i) for i in lone[:4])}{'; ...' if len(lone) > 4 else ''}) are "
                       f"scored as classes of their own (class_ID), each pulling the means down; {declare}give the "
                       "prediction its class table")
            log.warning(message)
            reference_warnings.append(message)
    scores = segmentation_scores(hist, [c.name for c in classes], exclude)
    result: dict[str, Any] = {
        "prediction": str(prediction), "reference": str(reference),
        **({"reference_t2": str(reference_t2)} if reference_t2 is not None else {}),
        "conventions": {"excluded_from_means": scores.pop("excluded_from_means"), "eroded_boundary_radius": erode,
                        "nodata_and_ignore_excluded": True},
        **({"warnings": reference_warnings} if reference_warnings else {}),
        **scores, "confusion_matrix": {"rows": "reference", "columns": "prediction", "matrix": hist.tolist()},
        **({"semantic_change": semantic} if semantic is not None else {}),
    }
    if objects is not None:  # counted block by block, the objects joined across the blocks
        result["buildings"] = {**objects.scores(min_object_pixels), "min_object_pixels": min_object_pixels,
                               "objects": "footprints" if footprints is not None else "class raster regions",
                               **({} if footprints is not None else {"class": {
                                   "id": building_class, "name": next((c.name for c in classes if c.id == building_class), None)}})}

    with publish(files, inputs=inputs, overwrite=overwrite) as pub:
        pub[0].write_text(json.dumps(result, indent=2))
        with open(pub[1], "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["class", "iou", "precision", "recall", "f1", "support"])
            for name, v in scores["per_class"].items():
                writer.writerow([name, v["iou"], v["precision"], v["recall"], v["f1"], v["support"]])
            for key in ("miou", "mf1", "oa", "kappa"):
                writer.writerow([key, scores[key], "", "", "", ""])
        _write_png(pub[2], _confusion_png(hist))
        _write_png(pub[3], _panels(done.pred_panel, done.ref_panel, classes, image_panel,
                                       grid_mirrors(grid.transform)))
    return result
