"""``rsmamba tile``: cut an image (+ DSM, + labels) into georeferenced training chips.

Chips keep their georeferencing; the DSM and labels are read on the image grid (see
:class:`~rsmamba.raster.source.AlignedSource`). Train/val/test are split by spatial blocks, and
chips that would overlap a chip of another split are dropped, so no pixel is seen in two splits.

Output folder::

    images/<chip_id>.tif   image bands, source dtype and nodata
    dsm/<chip_id>.tif      float32, NaN = no data            (with --dsm)
    labels/<chip_id>.tif   uint8, 255 = ignore, colour table (with --labels)
    t2/<chip_id>.tif       second epoch on the first epoch's grid         (with --t2)
    labels_t2/<chip_id>.tif, change/<chip_id>.tif   second-epoch labels, binary change labels
    targets/<chip_id>.tif  uint8 interior/border/contact bands (with --instance-targets, issue #17)
    manifest.csv           one row per chip (see MANIFEST_FIELDS)
    tiling.json            sources, grid, band statistics (of the train chips), classes, split counts
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from tqdm import tqdm

from rsmamba.atomic import OutputError, output_problems, publish
from rsmamba.classes import (
    CHANGE_CLASSES,
    IGNORE_INDEX,
    ISPRS_CLASSES,
    ClassInfo,
    burn_classes,
    class_of_nodata,
    colormap,
    dense_classes,
    load_class_table,
)
from rsmamba.errors import InputError, seed_problem, typed_arguments
from rsmamba.paths import input_problem, shell_word
from rsmamba.raster import gdal_cache_capped
from rsmamba.raster.ground import pixel_size_m
from rsmamba.raster.normalize import STATS_SAMPLE_PIXELS, compute_stats, dsm_range
from rsmamba.raster.source import RGB, VECTOR_SUFFIXES, AlignedSource
from rsmamba.raster.windows import PASSES_SAID, WindowGrid, passes_per_pixel, sample_windows, window_extent
from rsmamba.runlog import run_scope

log = logging.getLogger(__name__)

__all__ = ["TileSummary", "assign_block_splits", "plan_chips", "tile_scene"]

SPLITS = ("train", "val", "test")
SPLIT_WARN_OFF = 0.15  # a split's share of the chips this far from its fraction (few whole blocks) is said
DROPPED_WARN_SHARE = 0.25  # of the windows lost to split borders: the block is too small for the chips
MANIFEST_FIELDS = (
    "chip_id", "split", "image", "dsm", "labels", "t2", "labels_t2", "change", "row_off", "col_off",
    "width", "height", "minx", "miny", "maxx", "maxy", "valid_fraction", "class_hist",
)


@dataclass
class TileSummary:
    """What a tiling run wrote, for the CLI and for tests."""

    out_dir: Path
    windows: int
    chips: Counter = field(default_factory=Counter)
    skipped_invalid: int = 0  # windows skipped: below --min-valid, or without any valid pixel
    skipped_empty: int = 0  # of them, those without any valid pixel (skipped whatever --min-valid)
    dropped_for_split: int = 0
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        per_split = ", ".join(f"{s} {self.chips[s]}" for s in SPLITS)
        return (
            f"{sum(self.chips.values())} chips ({per_split}) from {self.windows} windows in {self.out_dir}; "
            f"{self.skipped_invalid - self.skipped_empty} below --min-valid, {self.skipped_empty} without a valid "
            f"pixel, {self.dropped_for_split} dropped at split borders"
        )


def assign_block_splits(
    n_block_rows: int, n_block_cols: int, fractions: Sequence[float], seed: int
) -> np.ndarray:
    """Split label (index into SPLITS) per block: exact counts from the fractions, shuffled by seed.

    Every split with a positive fraction gets at least one block when there are enough blocks.
    """
    n = n_block_rows * n_block_cols
    fr = np.asarray(fractions, dtype=float)
    counts = np.floor(fr / fr.sum() * n).astype(int)
    for i in np.argsort(-(fr / fr.sum() * n - counts)):  # largest remainders first
        if counts.sum() >= n:
            break
        counts[i] += 1
    for i in (2, 1):  # make sure val/test exist when asked for and possible
        if fr[i] > 0 and counts[i] == 0 and counts[0] > 1:
            counts[i] += 1
            counts[0] -= 1
    labels = np.repeat(np.arange(len(fr)), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels.reshape(n_block_rows, n_block_cols)


def plan_chips(grid: WindowGrid, block: int, fractions: Sequence[float], seed: int) -> tuple[list[tuple[Window, int]], int]:
    """Each window with its split, dropping windows that overlap a window of a higher-priority split.

    A window belongs to the block holding its centre. Priority test > val > train, so the rare
    evaluation splits keep their chips and training loses the border ones.
    """
    n_br = math.ceil(grid.height / block)
    n_bc = math.ceil(grid.width / block)
    block_split = assign_block_splits(n_br, n_bc, fractions, seed)
    rows, cols = grid.row_offsets, grid.col_offsets
    h, w = grid.window_height, grid.window_width
    split = np.empty((len(rows), len(cols)), dtype=int)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            split[i, j] = block_split[min((r + h // 2) // block, n_br - 1), min((c + w // 2) // block, n_bc - 1)]
    # windows overlapping window (i, j): rows within h, cols within w
    r_arr, c_arr = np.asarray(rows), np.asarray(cols)
    keep: list[tuple[Window, int]] = []
    dropped = 0
    for i, r in enumerate(rows):
        near_i = np.nonzero(np.abs(r_arr - r) < h)[0]
        for j, c in enumerate(cols):
            near_j = np.nonzero(np.abs(c_arr - c) < w)[0]
            if split[np.ix_(near_i, near_j)].max() > split[i, j]:
                dropped += 1
                continue
            keep.append((Window(c, r, w, h), int(split[i, j])))
    return keep, dropped


class _Status:
    """One status line on stderr for the steps around the chip loop that have no bar of their own: a mosaic's
    label layer, DSM range, fill and collar checks and the train chips' statistics ran tens of seconds unsaid
    before the chip bar and after it. Shown when the bars are (a terminal, no ``-q``), gone when closed."""

    def __init__(self, progress: bool) -> None:
        self._progress = progress
        self._bar: tqdm | None = None

    def say(self, step: str) -> None:
        if self._bar is None:
            self._bar = tqdm(total=0, bar_format="{desc}", disable=not self._progress, leave=False)
        self._bar.set_description_str(f"tile: {step} ...")

    def close(self) -> None:
        """Clear the line (for the chip bar, or at the end); a later :meth:`say` shows it again."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _chip_profile(src: AlignedSource, window: Window, count: int, dtype: str, nodata: float | None) -> dict:
    profile = {
        "driver": "GTiff", "width": int(window.width), "height": int(window.height), "count": count,
        "dtype": dtype, "crs": src.crs, "transform": window_transform(window, src.transform),
        "compress": "deflate", "nodata": nodata,
    }
    if count == 4:  # GDAL's default for 4 Byte bands flags the 4th (an RGB + NIR ortho's NIR) alpha
        profile["photometric"] = "MINISBLACK"
    if window.width % 16 == 0 and window.height % 16 == 0:
        profile.update(tiled=True, blockxsize=min(256, int(window.width)), blockysize=min(256, int(window.height)))
    return profile


def _chip_colours(src: AlignedSource) -> list[ColorInterp]:
    """The bands' colours as the source declares them; an alpha band read as imagery is no chip's mask."""
    return [ColorInterp.undefined if name == "alpha" else ColorInterp[name] for name in src.colours]


def _image_profile(src: AlignedSource, window: Window) -> dict:
    """An image chip: its colour interpretation is copied from the source (a BGR ortho stays BGR-declared)."""
    profile = _chip_profile(src, window, src.count, src.dtype, src.nodata)
    if not (src.count == 3 and src.colours == list(RGB)):
        profile["photometric"] = "MINISBLACK"  # GDAL may declare the colours as given only then
    return profile


def _idle_option_problems(labels: os.PathLike | str | None, labels_t2: os.PathLike | str | None,
                          change: os.PathLike | str | None, instance_targets: os.PathLike | str | None, *,
                          class_field: str | None, label_background: int | None, labels_layer: str | None,
                          labels_t2_layer: str | None, change_layer: str | None, instance_targets_layer: str | None,
                          burn: int | None, burn_name: str | None, class_table: os.PathLike | str | None,
                          border_px: int | None, contact_px: int | None) -> list[str]:
    """Options given (not None) without what they apply to: they would change nothing, silently, as vectorize
    --seed-threshold without --instances would (``--background 7`` with raster labels was ignored here and
    refused by evaluate). Given, whatever the value: ``--contact-px 3`` (the default) without
    ``--instance-targets`` was taken as asking for nothing."""
    def vector(path: os.PathLike | str | None) -> bool:
        return path is not None and Path(path).suffix.lower() in VECTOR_SUFFIXES

    problems = []
    given = [name for name, value in (("--class-field", class_field), ("--background", label_background))
             if value is not None]
    if given and not (vector(labels) or vector(labels_t2)):
        problems.append(f"{', '.join(given)}: {'options' if len(given) > 1 else 'an option'} of label polygons "
                        f"(a vector --labels or --labels-t2); {f'--labels {labels} is a raster' if labels else 'no --labels'}")
    for option, layer, path, of in (("--labels-layer", labels_layer, labels, "--labels"),
                                    ("--labels-t2-layer", labels_t2_layer, labels_t2, "--labels-t2"),
                                    ("--change-labels-layer", change_layer, change, "--change-labels"),
                                    ("--instance-targets-layer", instance_targets_layer, instance_targets,
                                     "--instance-targets")):
        if layer is not None and not vector(path):
            problems.append(f"{option} {layer}: the layer of a vector {of} file; "
                            + (f"{of} {path} is a raster" if path is not None else f"no {of} given"))
    if burn_name is not None and (burn is None or class_table is not None):
        problems.append(f"--burn-name {burn_name}: names the --burn class; "
                        + ("--class-table names the classes" if class_table is not None else "give --burn"))
    given = [name for name, value in (("--border-px", border_px), ("--contact-px", contact_px)) if value is not None]
    if given and instance_targets is None:
        problems.append(f"{', '.join(given)}: {'widths' if len(given) > 1 else 'a width'} of the instance target "
                        "chips: give --instance-targets")
    return problems


@run_scope()
@typed_arguments
@gdal_cache_capped()
def tile_scene(
    image: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    dsm: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    class_field: str | None = None,
    label_background: int | None = None,
    labels_layer: str | None = None,
    labels_t2_layer: str | None = None,
    change_layer: str | None = None,
    instance_targets_layer: str | None = None,
    size: int = 512,
    overlap: int = 0,
    min_valid: float = 0.5,
    bands: Sequence[int] | None = None,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    block: int | None = None,
    seed: int = 0,
    allow_geographic_mix: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    t2: str | os.PathLike[str] | None = None,
    labels_t2: str | os.PathLike[str] | None = None,
    change: str | os.PathLike[str] | None = None,
    burn: int | None = None,
    burn_name: str | None = None,
    class_table: str | os.PathLike[str] | None = None,
    instance_targets: str | os.PathLike[str] | None = None,
    border_px: int | None = None,
    contact_px: int | None = None,
) -> TileSummary:
    """Write chips + ``manifest.csv`` + ``tiling.json`` into ``out_dir`` (atomically, as a whole).

    With ``t2`` the chips are epoch pairs for change detection: ``labels_t2`` (semantic labels of
    the second epoch) and ``change`` (binary change labels) are cut on the same windows.

    ``class_field`` (None: ``class``) names the label layer's attribute holding each polygon's class
    id or name. ``burn`` gives every polygon of a label layer (or every non-zero pixel of a label raster) that
    class id, background 0: a footprint layer needs no class field (and naming one is refused). ``class_table`` (YAML/JSON,
    see :func:`rsmamba.classes.load_class_table`) names the classes; without either the ISPRS
    table applies. The table goes into ``tiling.json`` and each label chip's colour table, and
    from there into the checkpoint, the predicted raster and the polygons.

    ``labels_layer`` (``labels_t2_layer``, ``change_layer``, ``instance_targets_layer``) names the layer of a label vector file
    holding several (a GeoPackage).

    ``instance_targets`` (an instance raster on the image grid, or footprint polygons, each one
    building) adds ``targets/`` chips: interior, border and contact bands for models that separate
    touching buildings (:mod:`rsmamba.instance_targets`), described in ``tiling.json``.

    ``label_background`` (0), ``burn_name`` (``building``), ``border_px`` (2) and ``contact_px`` (3): None
    means not given, the default in brackets; given without what they apply to they are refused.
    """
    out_dir = Path(out_dir)
    problems = []
    if len(split) != 3 or not all(math.isfinite(f) and f >= 0 for f in split):
        problems.append(f"--split needs three non-negative fractions (train,val,test), got {tuple(split)}")
    elif sum(split) <= 0:  # ('needs non-negative fractions, got (0.0, 0.0, 0.0)': they were)
        problems.append(f"--split {','.join(f'{f:g}' for f in split)}: the fractions sum to 0; give each split its "
                        "share, e.g. 0.8,0.1,0.1")
    elif abs(sum(split) - 1) > 1e-6:  # 0.8,0.8,0.1 (0.1 meant) split 47/47/6 %, unsaid (QA); 8,1,1 are shares
        log.warning("--split %s: the fractions sum to %g, read as shares: %s (train/val/test)",
                    ",".join(f"{f:g}" for f in split), sum(split), "/".join(f"{f / sum(split):.0%}" for f in split))
    if block is not None and block < 1:
        problems.append(f"--split-block must be at least 1 px, got {block}")
    if (problem := seed_problem(seed)) is not None:
        problems.append(problem)
    if size < 1:  # (the overlap's range below would blame --overlap)
        problems.append(f"--size must be >= 1, got {size}")
    elif not 0 <= overlap < size:  # as predict says it of --window
        problems.append(f"--overlap {overlap}: must be in [0, --size {size})")
    if not 0 <= min_valid <= 1:
        problems.append(f"--min-valid must be in [0, 1], got {min_valid}")
    inputs = [image, dsm, labels, t2, labels_t2, change, instance_targets]
    roles = ("image", "DSM", "labels", "t2", "labels-t2", "change labels", "instance targets", "class table")
    # said with the option problems, not after; a named pipe is refused before GDAL waits on it for ever
    problems += [problem for role, path in zip(roles, [*inputs, class_table])
                 if path is not None and (problem := input_problem(path, role))]
    problems += output_problems([out_dir], inputs=inputs, overwrite=overwrite, directory=True)
    if (labels_t2 or change) and not t2:
        problems.append("--labels-t2 and --change-labels need --t2")
    if label_background is not None and not 0 <= label_background <= IGNORE_INDEX:
        problems.append(f"--background must be a class id in 0..{IGNORE_INDEX - 1} or {IGNORE_INDEX} (no label), "
                        f"got {label_background}")
    if burn is not None and not 0 < burn < IGNORE_INDEX:
        problems.append(f"--burn must be a class id in 1..{IGNORE_INDEX - 1}, got {burn}")
    if (burn is not None or class_table is not None) and labels is None:
        problems.append("--burn and --class-table describe labels; give --labels")
    if burn is not None and class_field is not None:  # a land-cover layer burnt as one class: all 'building'
        problems.append(f"--burn {burn} makes every label polygon one class, --class-field {class_field} reads each "
                        "polygon's class: give one of them")
    problems += _idle_option_problems(labels, labels_t2, change, instance_targets, class_field=class_field,
                                      label_background=label_background, labels_layer=labels_layer,
                                      labels_t2_layer=labels_t2_layer, change_layer=change_layer,
                                      instance_targets_layer=instance_targets_layer, burn=burn, burn_name=burn_name,
                                      class_table=class_table, border_px=border_px, contact_px=contact_px)
    background_given = label_background is not None
    class_field = class_field or "class"
    # the defaults, once the options given have been checked against what they apply to (None: not given)
    label_background = 0 if label_background is None else label_background
    burn_name = "building" if burn_name is None else burn_name
    border_px, contact_px = (2 if border_px is None else border_px), (3 if contact_px is None else contact_px)
    if problems:
        raise InputError(problems)
    ignore = None
    declared = None  # the class ids a class table names (its gaps are filled to make the ids dense)
    if class_table is not None:
        classes, ignore = load_class_table(class_table)
        if burn is not None and burn not in {c.id for c in classes}:
            raise InputError(f"--burn {burn} is not a class id of {class_table}")
        declared = {c.id for c in classes}
        classes = dense_classes(classes)
    elif burn is not None:
        classes = burn_classes(burn, burn_name)
    else:
        classes = ISPRS_CLASSES
        if labels is not None:
            _say_isprs_default(Path(labels))

    known = declared if declared is not None else {c.id for c in classes}
    if background_given and label_background != IGNORE_INDEX and label_background not in known:
        # refused before the layer is read: it was first warned of as 'labelled class 7', then refused
        table = ", ".join(f"{c.id} {c.name}" for c in classes if c.id in known)
        raise InputError(f"--background {label_background}: class id {label_background} (the pixels outside the label "
                         f"polygons) is not in the class table ({table}); add class {label_background} to the table, "
                         f"or --background {IGNORE_INDEX} to leave those pixels unlabelled")
    common = {"class_field": class_field, "label_background": label_background,
              "allow_geographic_mix": allow_geographic_mix, "burn": burn, "label_ignore": ignore,
              "class_names": {c.name: c.id for c in classes if not c.filler}}
    extra: dict[str, AlignedSource] = {}
    targets = None
    status = _Status(progress)
    status.say("reading and checking the inputs")
    try:
        for name, path in (("labels_t2", labels_t2), ("change", change)):
            if path is None:
                continue
            own = dict(common, labels_role="labels-t2" if name == "labels_t2" else "change labels",
                       labels_layer=labels_t2_layer if name == "labels_t2" else change_layer)
            if name == "change":  # 0 no change, 1 change: every polygon of a change layer is a change
                own.update(burn=1 if Path(path).suffix.lower() in VECTOR_SUFFIXES else None, label_ignore=None,
                           class_names=None)
            extra[name] = AlignedSource(image, labels=path, bands=bands, **own)
        with AlignedSource(image, dsm, labels, bands=bands, t2=t2, labels_layer=labels_layer, **common) as src:
            if src.has_t2 and src.t2_dtype != src.dtype:  # one normalisation serves both dates' chips
                raise InputError(f"t2 {t2}: {src.t2_dtype} pixels, but t1 {image} holds {src.dtype}: chips of both "
                                 "dates are normalised with one set of statistics; bring t2 to t1's type and "
                                 f"scale first (e.g. gdal_translate -ot {_gdal_type(src.dtype)} -scale ...)")
            _check_label_nodata(src, labels, classes, burn)
            if "labels_t2" in extra:
                _check_label_nodata(extra["labels_t2"], labels_t2, classes, burn)
            if "change" in extra and extra["change"].labels_nodata == 0:
                raise InputError(f"change labels {change}: nodata 0 is 'no change', so no unchanged pixel would be "
                                 f"trained on; unset it (gdal_edit.py -unsetnodata {shell_word(change)})")
            if instance_targets is not None:
                from rsmamba.instance_targets import FootprintIds, TargetReader

                targets = TargetReader(FootprintIds(instance_targets, crs=src.crs, transform=src.transform,
                                                    width=src.width, height=src.height, layer=instance_targets_layer),
                                       border_px, contact_px)
            with publish([out_dir], inputs=inputs, overwrite=overwrite, directory=True) as pub:
                summary = _tile(src, extra, image, dsm, labels, out_dir, pub[0], size, overlap, min_valid, split,
                                block, seed, progress, t2, classes, targets, declared,
                                label_background if labels and Path(labels).suffix.lower() in VECTOR_SUFFIXES else None,
                                status=status)
            if t2 is not None and dsm is not None:  # written, then every training of them refused, unsaid until then
                message = (f"DSM {dsm} with --t2: the chips carry one DSM (the image's date), and training refuses a "
                           "DSM with change chips (data.use_dsm: false reads them without it); tile each date on its "
                           "own for land cover with a DSM")
                summary.warnings.append(message)
                log.warning(message)
    finally:
        status.close()
        for extra_src in extra.values():
            extra_src.close()
        if targets is not None:
            targets.ids.close()
    return summary


def _say_isprs_default(labels: Path) -> None:
    """Without --class-table the ids are the ISPRS classes: said when a label raster shows another table (its
    colour table paints its ids otherwise), whose names would go into every output."""
    from rsmamba.raster.validate import palette_conflicts

    if labels.suffix.lower() in VECTOR_SUFFIXES or not labels.exists():
        return
    differ = palette_conflicts(labels, ISPRS_CLASSES)
    if differ:
        c, colour = differ[0]
        other = f"its colour table paints {c.id} as {colour}, not ISPRS {c.name}'s {c.color}"
        names = ", ".join(f"{c.id} {c.name}" for c in ISPRS_CLASSES)
        log.warning(f"labels {labels}: no --class-table, so its ids are read as the ISPRS classes ({names}) and "
                    f"named so in the model, the maps and the polygons ({other}); pass --class-table naming your classes")


def _gdal_type(dtype: str) -> str:
    """GDAL's name of a NumPy dtype, as gdal_translate -ot takes it."""
    from rasterio.dtypes import dtype_rev, typename_fwd

    return typename_fwd[dtype_rev[dtype]]


def _check_label_nodata(src: AlignedSource, labels, classes: tuple[ClassInfo, ...], burn: int | None) -> None:
    """A label raster whose declared nodata is also a class: GDAL habitually writes masks with nodata 0.
    With --burn, 0 is the background, so no background pixel would be trained on: refused. Else the
    class's pixels are left out of training: said."""
    fix = f"unset it (gdal_edit.py -unsetnodata {shell_word(labels)})"
    if burn is not None and src.labels_nodata == 0:
        raise InputError(f"labels {labels}: nodata 0 is the background of --burn, so no background pixel would be "
                         f"trained on; {fix}")
    clash = class_of_nodata(src.labels_nodata, classes) if burn is None else None
    if clash is not None:
        log.warning(f"labels {labels}: nodata {clash.id} is also class {clash.id} ({clash.name}) of the "
                    f"class table: its pixels are left out of training; {fix} if {clash.id} is a class")


def _tile(
    src: AlignedSource, extra: dict[str, AlignedSource], image, dsm, labels, out_dir: Path, tmp: Path, size: int,
    overlap: int, min_valid: float, split: Sequence[float], block: int | None, seed: int, progress: bool, t2,
    classes: tuple[ClassInfo, ...] = ISPRS_CLASSES, targets=None, declared: set[int] | None = None,
    vector_background: int | None = None, status: _Status | None = None,
) -> TileSummary:
    """The tiling loop over an opened source (see :func:`tile_scene`); ``status``: the line the steps before and
    after the chip loop are said on (closed while the chip bar runs)."""
    status = status or _Status(False)
    grid = WindowGrid(src.width, src.height, size, overlap)
    if passes_per_pixel(size, overlap) > PASSES_SAID:  # --size 64 --overlap 63: 923,000 chips, 3.5 GB, unsaid
        usual = len(WindowGrid(src.width, src.height, size, size // 4))
        log.warning(f"--overlap {overlap} of --size {size}: a stride of {size - overlap} px cuts about "
                    f"{passes_per_pixel(size, overlap):,.0f} chips over each pixel, {len(grid):,} in all ({usual:,} at "
                    f"--overlap {size // 4}): a disk of chips, slow to write and to train on")
    block = block or max(4 * size, size)
    plan, dropped = plan_chips(grid, block, split, seed)
    if src.has_dsm:
        status.say("reading the DSM's height range")
    scene_range = dsm_range(src.read_dsm, src.width, src.height) if src.has_dsm else None  # data.dsm_mode minmax-scene
    status.say("checking the image for fill values and a nodata collar")
    from rsmamba.raster.validate import check_collar, check_fill_values

    # an undeclared -9999 / 65535 beside the imagery: written as pixels, it would be trained on and fill the chips'
    # statistics (a 0..1 ortho: mean -1953, std 3964), which every checkpoint then normalises with
    check_fill_values(src, f"image {src.image_path}", src.image_path)
    if src.has_t2:
        check_fill_values(src, f"t2 {t2}", t2, read=src.read_t2, read_valid=src.read_t2_valid, dtype=src.t2_dtype)
    collar = check_collar(src, f"image {src.image_path}", src.image_path)  # its black would be trained as land cover
    summary = TileSummary(out_dir, len(grid), dropped_for_split=dropped, warnings=list(src.warnings) + collar)
    if src.width < size or src.height < size:  # (tiling.json's size is --size; the manifest has each chip's)
        square = grid.window_width == grid.window_height
        message = (f"image {image}: {src.width} x {src.height} px, narrower than --size {size}: its chips are "
                   f"{grid.window_width} x {grid.window_height} px"
                   + ("" if square else " (training turns them by 180 degrees only)"))
        summary.warnings.append(message)
        log.warning(message)
    # padded to the largest offset, so that names sort as the windows lie (the window count's digits made
    # r00_c128 sort before r00_c64)
    digits = len(str(max(max(grid.row_offsets), max(grid.col_offsets))))
    # ``tmp`` is the output folder's scratch, published whole by the caller
    subs = ["images", "dsm" if src.has_dsm else None, "labels" if src.has_labels else None,
            "t2" if src.has_t2 else None, *extra, "targets" if targets is not None else None]
    for sub in subs:
        if sub:
            (tmp / sub).mkdir()
    rows = []
    seen: dict[str, set[int]] = {}  # the values the extra label chips hold (labels_t2, change)
    status.close()
    for window, split_index in tqdm(plan, desc="tile", unit="chip", disable=not progress):
        valid = src.read_valid(window)
        valid_fraction = float(valid.mean())
        if valid_fraction < min_valid or valid_fraction == 0:
            summary.skipped_invalid += 1
            summary.skipped_empty += valid_fraction == 0
            continue
        chip_id = f"r{int(window.row_off):0{digits}d}_c{int(window.col_off):0{digits}d}"
        rows.append(_write_chip(src, extra, window, chip_id, SPLITS[split_index], valid, valid_fraction, tmp,
                                classes, targets, seen))
        summary.chips[SPLITS[split_index]] += 1
    if not rows:
        raise InputError(_no_chip_problem(src, plan, image, min_valid))
    for name, source in (("labels", src), *extra.items()):
        if source.bad_label_values:
            values = ", ".join(f"{v:g}" for v in sorted(source.bad_label_values)[:8])
            raise InputError(f"{name} {source.labels_path}: values {values} are no class id (integers 0..254, 255 = "
                             "no label); declare a no-label value as nodata (gdal_edit.py -a_nodata V) or as the "
                             "class table's ignore: V, or fix them")
    status.say("statistics of the train chips")
    # the model's normalisation: statistics of the training chips alone (the val and test areas' pixels went
    # into them, QA); a folder without train chips (held out whole) keeps the scene's
    image_stats, dsm_stats = compute_stats(src, within=[
        Window(row["col_off"], row["row_off"], row["width"], row["height"]) for row in rows if row["split"] == "train"])
    status.close()  # (an error before: closed by tile_scene)
    known = declared if declared is not None else {c.id for c in classes}
    _check_extra_values(seen, extra, known, summary, declared is not None)
    bare = [row for row in rows if src.has_labels and not json.loads(row["class_hist"])]
    if bare:  # labels over part of the image: a val or test split of chips without a label was kept unsaid
        whole = [name for name in SPLITS if summary.chips[name] and
                 sum(row["split"] == name for row in bare) == summary.chips[name]]
        message = (f"labels {labels}: {len(bare)} of {len(rows)} chips hold no labelled pixel (the labels cover part "
                   "of the image): kept, they teach and score nothing"
                   + (f"; every {' and every '.join(whole)} chip is one" if whole else ""))
        summary.warnings.append(message)
        log.warning(message)
    unknown = sorted({int(k) for row in rows for k in json.loads(row["class_hist"])} - known)
    if unknown:  # training would index past the model's classes, or learn ids no one named
        table = ", ".join(f"{c.id} {c.name}" for c in classes if c.id in known)
        background = src.labels_background
        if background in unknown:  # not a value of the layer: the pixels outside its polygons
            raise InputError(f"labels {labels}: class id {background} is --background (the pixels outside the "
                             f"polygons) and not in the class table ({table}); add class {background} to the "
                             f"table, or --background {IGNORE_INDEX} to leave those pixels unlabelled"
                             + (f" (the layer's own ids {', '.join(map(str, [u for u in unknown if u != background]))}"
                                " are not in it either)" if len(unknown) > 1 else ""))
        raise InputError(f"labels {labels}: class id{'s' * (len(unknown) > 1)} {', '.join(map(str, unknown))} "
                         f"not in the class table ({table}); "
                         + ("add them to the class table, or recode those labels" if declared is not None
                            else "pass --class-table naming your classes"))
    empty = [name for name, fraction in zip(SPLITS, split) if fraction > 0 and not summary.chips[name]]
    total = sum(summary.chips[name] for name in SPLITS)
    shares = [summary.chips[name] / total if total else 0.0 for name in SPLITS]
    off = total and max(abs(share - f / sum(split)) for share, f in zip(shares, split)) > SPLIT_WARN_OFF
    planned = Counter(SPLITS[k] for _, k in plan)  # windows each split was given, before --min-valid
    below = [name for name in empty if planned.get(name)]  # its blocks were there, its chips below --min-valid
    said_dropped = False
    if below:
        message = (f"--split {','.join(f'{f:g}' for f in split)}: no {' or '.join(below)} chips: all "
                   f"{sum(planned[name] for name in below)} of {'their' if len(below) > 1 else 'its'} windows hold "
                   + (f"less than --min-valid {min_valid:g} valid pixels" if min_valid > 0 else "no valid pixel")
                   + " (nodata, or no DSM there); another --seed puts other blocks there")
        summary.warnings.append(message)
        log.warning(message)
    elif empty or off:  # whole blocks go to one split: a scene of few blocks cannot follow the fractions
        blocks = math.ceil(src.width / block) * math.ceil(src.height / block)
        fell = (f"no {' or '.join(empty)} chips" if empty else
                "the chips fell " + "/".join(f"{share:.0%}" for share in shares) + " (train/val/test)")
        advice = ("a smaller --split-block spreads the split" if block > size else
                  f"blocks no larger than the chips ({size} px) put a chip's neighbours in other splits ({dropped} of "
                  f"{len(grid)} windows dropped at split borders): a --split-block of several chips (e.g. {4 * size}) "
                  "keeps them")
        message = (f"--split {','.join(f'{f:g}' for f in split)}: {fell}, the scene ({src.width} x {src.height} px) "
                   f"holds {blocks} spatial block{'s' * (blocks != 1)} of {block} px and each goes to one split whole; "
                   + advice)
        said_dropped = block <= size
        summary.warnings.append(message)
        log.warning(message)  # once per tiling run: no need of warn_once
    # the chips lost at split borders, said beside what the split did (--min-valid blamed alone for 15 of 25 lost)
    if not said_dropped and (dropped > DROPPED_WARN_SHARE * len(grid) or (block <= size and dropped)):
        spread = block > size and (empty or off) and not below  # the warning above asked for smaller blocks
        more = (f"a --split-block of several chips (e.g. {4 * size}) keeps them" if block < 4 * size else
                # a larger block would undo the split asked for just above: advice in a circle (QA)
                f"less --overlap drops fewer; the scene holds few blocks of {block} px: a smaller --size, or another "
                "scene tiled for val and test, splits it without losing chips" if spread else
                f"a larger --split-block (e.g. {2 * block}) or less --overlap drops fewer")  # (it named the one in use)
        message = (f"--split-block {block}: {dropped} of {len(grid)} windows dropped at split borders (chips that "
                   f"overlap a chip of another split); {more}")
        summary.warnings.append(message)
        log.warning(message)
    _check_chips_on_disk(tmp, rows)
    with open(tmp / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS + (("targets",) if targets is not None else ()))
        writer.writeheader()
        writer.writerows(rows)
    meta = {
        "image": str(Path(image).resolve()), "dsm": str(Path(dsm).resolve()) if dsm else None,
        "labels": str(Path(labels).resolve()) if labels else None, "crs": src.crs.to_wkt(),
        "gsd_m": pixel_size_m(src.crs, src.transform, src.width, src.height),  # None without a CRS; into checkpoints
        "t2": str(Path(t2).resolve()) if t2 else None,
        "size": size, "overlap": overlap, "min_valid": min_valid, "bands": src.bands, "colours": src.colours,
        "dtype": src.dtype, "nodata": src.nodata, "block": block, "seed": seed,
        "stats": {"image": image_stats.to_dict(), "dsm": dsm_stats.to_dict() if dsm_stats else None},
        "dsm_range": list(scene_range) if scene_range else None,
        "classes": [c.to_dict() for c in classes],
        "label_background": vector_background,  # a label layer's outside (None: a label raster's own pixels)
        "splits": {s: summary.chips[s] for s in SPLITS}, "warnings": summary.warnings,
    }
    if targets is not None:
        meta["instance_targets"] = targets.describe()
    (tmp / "tiling.json").write_text(json.dumps(meta, indent=2))
    return summary


def _no_chip_problem(src: AlignedSource, plan: list[tuple[Window, int]], image, min_valid: float) -> str:
    """Why no window kept enough valid pixels, naming the input at fault: a DSM over 20 of 300 columns (or a t2
    elsewhere) was said as the image's 'no chip has at least 50% valid pixels'."""
    enough = 0  # windows the image alone would have filled
    any_valid = False  # a pixel of the image's own (the statistics, now of the train chips, said it first)
    for window, _ in plan:
        own = src.read_image_valid(window)
        any_valid |= bool(own.any())
        enough += int(bool(own.any()) and own.mean() >= min_valid)
    own_px = dsm_px = 0  # the image's valid pixels, and of them those with a height (on the statistics' sample)
    for window in sample_windows(src.width, src.height, STATS_SAMPLE_PIXELS) if src.has_dsm else ():
        own = src.read_image_valid(window)
        own_px += int(own.sum())
        dsm_px += int((own & ~np.isnan(src.read_dsm(window))).sum())
    if not any_valid:
        return f"image {image}: no valid pixels (empty or all-nodata raster)"
    if not enough:
        return (f"image {image}: no chip has at least {min_valid:.0%} valid pixels "
                "(empty or all-nodata raster, or --min-valid too high)")
    if src.has_dsm and own_px and not dsm_px:
        return (f"DSM {src.dsm_path}: no height where the image {src.image_path} has data (all nodata, or no pixel "
                "of it over the image's data)")
    if src.has_dsm and dsm_px < own_px:
        return (f"DSM {src.dsm_path}: no chip has at least {min_valid:.0%} valid pixels, though the image alone has "
                f"{enough} such window{'s' * (enough != 1)}: the DSM has a height at {dsm_px / own_px:.0%} of the "
                "image's valid pixels (a pixel without one is not valid); give a DSM over the image, or a lower "
                "--min-valid")
    return (f"t2 {src.t2_path}: no chip has at least {min_valid:.0%} valid pixels, though the image alone has "
            f"{enough} such window{'s' * (enough != 1)}: the second date has no data over much of the image's (a "
            "pixel is valid where both dates are); give a t2 over the image, or a lower --min-valid")


def _check_extra_values(seen: dict[str, set[int]], extra: dict[str, AlignedSource], known: set[int],
                        summary: TileSummary, own_table: bool) -> None:
    """Second-epoch ids the class table names, change labels 0/1: else training indexes past its heads.
    Change labels without a change pixel are said (a 0/255 mask reads 255 as 'no label')."""
    if "labels_t2" in seen and seen["labels_t2"] - known:
        bad = ", ".join(map(str, sorted(seen["labels_t2"] - known)))
        raise InputError(f"labels-t2 {extra['labels_t2'].labels_path}: class ids {bad} not in the class table; "
                         + ("add them to the class table, or recode those labels" if own_table
                            else "pass --class-table naming your classes"))
    if "change" in seen and seen["change"] - {0, 1}:
        bad = ", ".join(map(str, sorted(seen["change"] - {0, 1})))
        raise InputError(f"change labels {extra['change'].labels_path}: values {bad}; change labels are 0 (no change) "
                         f"and 1 (change), 255 no label")
    if "change" in seen and 1 not in seen["change"]:
        message = (f"change labels {extra['change'].labels_path}: no chip holds a changed pixel (1); a 0/255 mask "
                   "reads 255 as 'no label': recode it to 0/1")
        summary.warnings.append(message)
        log.warning(message)


def _write_labels(path: Path, src: AlignedSource, window: Window, labels: np.ndarray,
                  classes: tuple[ClassInfo, ...] = ISPRS_CLASSES) -> None:
    with rasterio.open(path, "w", **_chip_profile(src, window, 1, "uint8", IGNORE_INDEX)) as dst:
        dst.write_colormap(1, colormap(classes))  # before the pixels: after them GDAL logs an error that the
        dst.write(labels[None])  # next read of another file (an alpha mask) raised as its own


CHIP_FILE_FIELDS = ("image", "dsm", "labels", "t2", "labels_t2", "change", "targets")


def _check_chips_on_disk(folder: Path, rows: list[dict]) -> None:
    """Every chip file the manifest will list is in the scratch folder: a process deleting it while tiling
    (an ``rm -rf`` of the output racing the run) would otherwise publish a manifest of missing chips."""
    lost = [f for row in rows for f in (row.get(k) for k in CHIP_FILE_FIELDS) if f and not (folder / f).is_file()]
    if lost:
        some = f"{', '.join(lost[:3])}{', ...' if len(lost) > 3 else ''}"
        raise OutputError(f"{len(lost)} chip file{'s' * (len(lost) > 1)} ({some}) {'were' if len(lost) > 1 else 'was'} "
                          f"removed from the scratch folder {folder} while tiling {len(rows)} chips; nothing was "
                          "published: run again once nothing else deletes there")


def _write_chip(
    src: AlignedSource, extra: dict[str, AlignedSource], window: Window, chip_id: str, split: str,
    valid: np.ndarray, valid_fraction: float, folder: Path, classes: tuple[ClassInfo, ...] = ISPRS_CLASSES,
    targets=None, seen: dict[str, set[int]] | None = None,
) -> dict:
    row: dict = {"chip_id": chip_id, "split": split, **{k: "" for k in ("dsm", "labels", "t2", "labels_t2", "change")}}
    image_path = f"images/{chip_id}.tif"
    with rasterio.open(folder / image_path, "w", **_image_profile(src, window)) as dst:
        dst.write(src.read_image(window))
        dst.colorinterp = _chip_colours(src)  # the source's band order, not GDAL's RGB default
        if src.nodata is None:
            image_valid = src.read_image_valid(window)
            if not image_valid.all():
                dst.write_mask(image_valid.astype(np.uint8) * 255)
    row["image"] = image_path
    if src.has_dsm:
        row["dsm"] = f"dsm/{chip_id}.tif"
        with rasterio.open(folder / row["dsm"], "w", **_chip_profile(src, window, 1, "float32", float("nan"))) as dst:
            dst.write(src.read_dsm(window)[None])
    hist: dict[str, int] = {}
    if src.has_labels:
        labels = src.read_labels(window)
        labels = np.where(valid, labels, IGNORE_INDEX).astype(np.uint8)
        row["labels"] = f"labels/{chip_id}.tif"
        _write_labels(folder / row["labels"], src, window, labels, classes)
        values, counts = np.unique(labels[labels != IGNORE_INDEX], return_counts=True)
        hist = {str(int(v)): int(c) for v, c in zip(values, counts)}
    if src.has_t2:
        row["t2"] = f"t2/{chip_id}.tif"
        t2_valid = src.read_t2_valid(window)  # its own footprint and nodata, as the image chip carries its own
        with rasterio.open(folder / row["t2"], "w", **_image_profile(src, window)) as dst:
            dst.colorinterp = _chip_colours(src)  # read in t1's colour order
            data = src.read_t2(window)
            if src.nodata is not None:
                data[:, ~t2_valid] = src.nodata
            dst.write(data)
            if src.nodata is None and not t2_valid.all():
                dst.write_mask(t2_valid.astype(np.uint8) * 255)
    for name, extra_src in extra.items():
        row[name] = f"{name}/{chip_id}.tif"
        lab = np.where(valid, extra_src.read_labels(window), IGNORE_INDEX).astype(np.uint8)
        # change chips: no change / change colours (the land-cover table painted them as a building mask)
        _write_labels(folder / row[name], src, window, lab, CHANGE_CLASSES if name == "change" else classes)
        if seen is not None:
            seen.setdefault(name, set()).update(int(v) for v in np.unique(lab[lab != IGNORE_INDEX]))
    if targets is not None:
        row["targets"] = f"targets/{chip_id}.tif"
        t = np.where(valid[None], targets(window), 255).astype(np.uint8)
        profile = {**_chip_profile(src, window, len(t), "uint8", 255), "photometric": "MINISBLACK"}
        with rasterio.open(folder / row["targets"], "w", **profile) as dst:
            for i, name in enumerate(("interior", "border", "contact"), start=1):
                dst.set_band_description(i, name)
            dst.write(t)
    minx, miny, maxx, maxy = window_extent(window, src.transform)
    row.update(
        row_off=int(window.row_off), col_off=int(window.col_off), width=int(window.width), height=int(window.height),
        minx=minx, miny=miny, maxx=maxx, maxy=maxy, valid_fraction=round(valid_fraction, 6),
        class_hist=json.dumps(hist, separators=(",", ":")),
    )
    return row
