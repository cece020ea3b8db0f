"""``detect_change``: the library function behind ``rsmamba change``.

Epoch 2 is brought onto epoch 1's grid (raster core), the residual shift between the epochs is
checked by phase correlation, and a Siamese model runs over overlapping windows with the same
streaming engine as ``predict``. The output follows the change-raster convention that
``rsmamba vectorize`` reads: band 1 ``change`` (0/1), and with ``semantic`` band 2 ``from_class``
(epoch-1 class) and band 3 ``to_class`` (epoch-2 class); 255 is nodata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


import numpy as np
import torch
import torch.nn as nn
from rasterio.enums import Resampling
from rasterio.windows import Window

from rsmamba.classes import CHANGE_CLASSES, ClassInfo, colormap
from rsmamba.errors import InputError, ProblemCollector, typed_arguments
from rsmamba.atomic import publish
from rsmamba.engine.options import check_run_options, resolve_window
from rsmamba.engine.run import (
    PREFETCH, check_creation_options, check_output_path, estimate_seconds, eta_text, grid_text, model_digest, model_id,
    warn_long_run,
    output_size, peak_rss_bytes, pipeline_bytes, plan_strips, process_rss_bytes, reset_peak_rss, stream_layers,
)
from rsmamba.engine.resume import ResumeState, file_fingerprint, resume_note
from rsmamba.engine.model import (
    LoadedModel, Predictor, bands_by_colour, caller_module_kept, callers_randomness_kept, load_model, main_output,
    without_fillers,
)
from rsmamba.engine.stitch import FinishedRows
from rsmamba.engine.writer import (
    NODATA, PROB_SCALE, OutputLayer, argmax_classes, category_names, finalize_all, nodata_where_invalid, pam_path,
    scaled_probability,
)
from rsmamba.raster.coregister import ShiftEstimate, check_coregistration
from rsmamba.raster.normalize import BandStats, blank_invalid, compute_stats, normalize
from rsmamba.raster.source import AlignedSource, declared_colours, grid_mirrors
from rsmamba.raster import GDAL_CACHE_MB, gdal_cache_capped
from rsmamba.raster.windows import WindowGrid
from rsmamba.paths import inputs_problems
from rsmamba.vectorize.attributes import CHANGE_MIN_AREA_TAG  # written here, read by rsmamba vectorize
from rsmamba.runlog import run_scope, warn_once

PathLike = str | os.PathLike[str]
DEFAULT_CHANGE_THRESHOLD = 0.5  # a model without a calibrated threshold: the argmax of no-change/change

log = logging.getLogger(__name__)


@dataclass
class ChangeSummary:
    outputs: dict[str, Path]
    width: int
    height: int
    windows: int
    shift: ShiftEstimate | None
    threshold: float = DEFAULT_CHANGE_THRESHOLD
    threshold_source: str = "default"
    seconds: float = 0.0
    changed_fraction: float = 0.0
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    eta_seconds: float | None = None
    window: int = 0  # px, and the overlap: the run's (given, else the model's own, else 512/128)
    overlap: int = 0
    min_area_m2: float | None = None  # calibrated with the model: rsmamba vectorize's --min-area for this raster
    resume_note: str = ""  # where --resume took the run up, for the last line ('' for a run from the start)
    model: str = ""  # which model ran: its name and source (an untrained registry name says so)
    memory_bytes: int = 0  # the estimate, as predict's (a dry run adds the forward pass it measured)
    peak_bytes: int = 0  # a run's measured peak resident set, as predict's (0: unknown, no /proc)
    tta_views: int = 1  # network passes per window (test-time augmentation)
    tta_source: str = ""  # "the model's" when the checkpoint chose the test-time augmentation (none given)
    output_bands: int = 1  # bands of all outputs together

    def describe(self) -> str:
        """predict's summary for a pair: windows, memory (estimate), passes, outputs; a dry run its size and the network passes' time."""
        first = (grid_text(self.width, self.height, self.windows, self.window, self.overlap) if self.window else
                 f"raster {self.width} x {self.height} px, {self.windows} window{'s' * (self.windows != 1)}")
        lines = [first + (f", memory estimate {self.memory_bytes / 2**20:.0f} MiB" if self.dry_run else
                          f", peak memory {self.peak_bytes / 2**20:.0f} MiB" if self.peak_bytes else "")
                 + (f", test-time augmentation: {self.tta_views} passes per window"
                    + (" (the model's; --no-tta for one)" if self.tta_source == "the model's" else "")
                    if self.tta_views > 1 else "")]
        if self.model:
            lines.append(f"model: {self.model}")
        if self.dry_run:
            lines += [f"{name}: {path} (not written: --dry-run)" for name, path in self.outputs.items()]
            size_mib = self.width * self.height * self.output_bands / 2**20  # one byte per band and pixel
            lines.append(f"output size {output_size(size_mib * 2**20)} uncompressed"
                         + (f"; {eta_text(self.eta_seconds)}" if self.eta_seconds is not None else "")
                         + self.resume_note.replace("resumed", "would resume"))
            return "\n".join(lines)
        if self.shift is not None and self.shift.windows_used:
            lines.append(f"t2 vs t1 residual shift {self.shift.magnitude:.2f} px "
                         f"(dy {self.shift.dy:+.2f}, dx {self.shift.dx:+.2f})"
                         + (", uncertain: one window of a small scene" if self.shift.uncertain else ""))
        lines += [f"{name}: {path}" for name, path in self.outputs.items()]
        lines.append(f"change where p(change) > {self.threshold:g} ({self.threshold_source})")
        if self.min_area_m2 is not None:
            lines.append(f"change polygons (rsmamba vectorize): under {self.min_area_m2:g} m2 dropped, calibrated "
                         "with the model (--min-area overrides)")
        lines.append(f"changed {self.changed_fraction:.2%} of valid pixels; done in {self.seconds:.1f} s{self.resume_note}")
        return "\n".join(lines)


def load_change_model(spec: str | PathLike | nn.Module | LoadedModel | None, *, image_count: int) -> LoadedModel:
    """A change checkpoint, a registered change model (untrained, for tests/benchmarks), or the shipped one."""
    return load_model(spec, image_count=image_count, verb="change")


class ChangePredictor(Predictor):
    """(B, 2C, h, w) epoch pairs -> (B, 2 [+ 2K], h, w) probabilities: change, then t1 and t2 classes.

    Padding, ``tta`` (both epochs turned alike) and ``amp`` are predict's (:class:`Predictor`).
    """

    def __init__(self, model: LoadedModel, *, device: str = "cpu", semantic: bool = True,
                 tta: bool | str | None = None, amp: bool = False,
                 mirrors: tuple[bool, bool] = (False, False)) -> None:
        super().__init__(model, device=device, tta=tta, amp=amp, mirrors=mirrors)
        self.semantic = semantic

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1] // 2
        out = self.module(x[:, :c], x[:, c:])
        if not isinstance(out, dict):
            out = {"change": out}
        change = main_output(out, self.model, ("change",))
        widths = [(change, 2, "change")]
        if self.semantic:
            if "sem1" not in out or "sem2" not in out:
                raise InputError("--semantic needs a semantic change model (with sem1/sem2 heads)")
            widths += [(out["sem1"], self.model.num_classes, "sem1"), (out["sem2"], self.model.num_classes, "sem2")]
        for logits, width, name in widths:  # else a broadcast error deep in the stitcher
            if logits.dim() != 4 or logits.shape[1] != width:
                raise InputError(f"model {self.model.source or self.model.name} returns {tuple(logits.shape)} as "
                                 f"{name!r} for a batch, not (B, {width}, H, W)")
        widths = [(t if name == "change" else without_fillers(t, self.model), w, name) for t, w, name in widths]
        return torch.cat([torch.softmax(t.float(), dim=1) for t, _, _ in widths], dim=1)  # blended on the device


def change_mask(acc: torch.Tensor, threshold: float) -> torch.Tensor:
    """(2, n, W) weight sums of p(no change), p(change) -> (n, W) uint8, 1 where the blended p(change) > threshold.

    Compared as ``acc1 (1 - t) > acc0 t``: no division by the weight sum (the two probabilities
    of a window sum to one, so p(change) = acc1 / (acc0 + acc1)), and at t = 0.5 exactly the
    argmax of the two (ties: no change).
    """
    return (acc[1] * (1.0 - threshold) > acc[0] * threshold).to(torch.uint8)


def distinct_classes(p1: torch.Tensor, p2: torch.Tensor, changed: torch.Tensor, first: torch.Tensor,
                     second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a changed pixel's two dates take one class (``first == second``, each date's argmax alone, as the
    papers' inference does), the likeliest pair of two classes instead: ``argmax p1(i) p2(j), i != j``.

    ``p1``, ``p2``: (K, n, W) weight sums of each date's class probabilities (one weight for both, so their
    products rank as the probabilities' do); ``changed``, ``first``, ``second``: (n, W). A change polygon
    'low_vegetation -> low_vegetation' contradicts itself: 58-74 % of a synthetic pair's change polygons
    said so, from 2 % of its changed pixels.
    """
    same = (changed > 0) & (first == second)
    if p1.shape[0] < 2 or not bool(same.any()):
        return first, second
    rows, cols = same.nonzero(as_tuple=True)
    a, b = p1[:, rows, cols].float(), p2[:, rows, cols].float()  # (K, m)
    c = first[rows, cols].long()
    at = torch.arange(c.numel(), device=c.device)
    other_a, other_b = a.clone(), b.clone()
    other_a[c, at] = float("-inf")
    other_b[c, at] = float("-inf")
    best_a, alt_a = other_a.max(0)
    best_b, alt_b = other_b.max(0)
    keep_first = a[c, at] * best_b >= best_a * b[c, at]  # t1's class kept, t2 takes its runner-up; else the other way
    first, second = first.clone(), second.clone()
    first[rows, cols] = torch.where(keep_first, c, alt_a).to(first.dtype)
    second[rows, cols] = torch.where(keep_first, alt_b, c).to(second.dtype)
    return first, second


def change_threshold_of(model: LoadedModel, threshold: float | None) -> tuple[float, str]:
    """The threshold a run uses and where it comes from: the caller's, the checkpoint's calibrated one, or 0.5.

    The caller's equal to the calibrated one is the calibrated one: its minimum polygon area goes with it.
    """
    calibrated = model.extra.get("change_threshold")
    if threshold is not None and not (isinstance(calibrated, (int, float)) and float(threshold) == float(calibrated)):
        return float(threshold), "--change-threshold"
    if calibrated is None:
        return DEFAULT_CHANGE_THRESHOLD, "default"
    if not 0.0 < float(calibrated) < 1.0:
        raise InputError(f"model {model.source}: its calibrated change threshold {calibrated} is not in (0, 1)")
    return float(calibrated), "calibrated with the model"


def change_min_area_of(model: LoadedModel) -> float | None:
    """The minimum change-polygon area (m²) calibrated with the model, or None; a bad one is the file's fault."""
    calibrated = model.extra.get("change_min_area_m2")
    if calibrated is None:
        return None
    try:
        area = float(calibrated)
    except (TypeError, ValueError):
        area = -1.0
    if not area >= 0:
        raise InputError(f"model {model.source}: its calibrated minimum change area {calibrated!r} is not >= 0 m2")
    return area


CLASS_PAIRS = ("consistent", "per-date")  # --class-pairs: this tool's from/to rule, or the papers' argmax per date


def change_layer(path: Path, classes: tuple[ClassInfo, ...], semantic: bool, model_id: str,
                 threshold: float = DEFAULT_CHANGE_THRESHOLD, min_area_m2: float | None = None,
                 class_pairs: str = "consistent") -> OutputLayer:
    """The change raster: band 1 0/1 change (binary: coloured as ``CHANGE_CLASSES``, black and red); with ``semantic``
    bands 2/3 the two dates' classes, and ``classes`` (its ``CLASS_NAMES``) the model's land-cover table. A
    binary raster's table is ``CHANGE_CLASSES``: tagged with the land-cover names, ``vectorize --classes tree``
    was accepted and ignored, and ``evaluate --class-field`` scored polygons named 'building' as change.

    ``class_pairs``: ``"consistent"`` gives a changed pixel two classes (:func:`distinct_classes`) and an unchanged
    one a single class; ``"per-date"`` each date's own argmax, as the papers' inference and ``train --test`` score."""
    k = len(classes)
    per_date = class_pairs == "per-date"

    def render(rows: FinishedRows) -> torch.Tensor:
        bands = [change_mask(rows.acc[:2], threshold)]
        if semantic:
            p1, p2 = rows.acc[2:2 + k], rows.acc[2 + k:2 + 2 * k]
            changed = bands[0].to(p1.device)
            first, second = argmax_classes(p1).to(p1.device), argmax_classes(p2).to(p1.device)
            if per_date:
                return nodata_where_invalid(torch.stack([bands[0].to(p1.device), first, second]), rows.valid)
            first, second = distinct_classes(p1, p2, changed, first, second)
            # an unchanged pixel is one class at both dates: the likeliest of the two dates' summed probabilities
            # (each date's decoder alone disagreed on 12-33 % of the unchanged pixels of an image against itself)
            both = argmax_classes(p1 + p2).to(p1.device)
            bands += [torch.where(changed > 0, first, both), torch.where(changed > 0, second, both)]
        return nodata_where_invalid(torch.stack(bands), rows.valid)

    names = ["change", "from_class", "to_class"] if semantic else ["change"]
    return OutputLayer("change", path, len(names), render, Resampling.mode,
                       None if semantic else colormap(CHANGE_CLASSES), names,  # GTiff: a table for one band only
                       {"CLASS_NAMES": json.dumps([c.name for c in classes]), "model_id": model_id,  # as predict
                        "CLASSES": json.dumps([c.to_dict() for c in classes]),
                        "CHANGE_CONVENTION": "band 1 change 0/1" + ("; band 2 from_class (t1); band 3 to_class (t2); " + (
                            "each date's own class" if per_date else "unchanged: one class in both")
                            if semantic else ""),
                        "CHANGE_THRESHOLD": f"{threshold:g}",
                        **({CHANGE_MIN_AREA_TAG: f"{min_area_m2:g}"} if min_area_m2 is not None else {})},
                       categories=(category_names(CHANGE_CLASSES), *[category_names(classes)] * (len(names) - 1)))


def change_probability_layer(path: Path, model_id: str) -> OutputLayer:
    def render(rows: FinishedRows) -> torch.Tensor:
        return nodata_where_invalid(scaled_probability(rows.acc[1:2], rows.wsum), rows.valid)

    return OutputLayer("change_probability", path, 1, render, Resampling.average, None, ["p(change)"],
                       {"SCALE": f"1/{PROB_SCALE}", "model_id": model_id}, scale=1 / PROB_SCALE)  # as the change raster


def _epoch_stats(src: AlignedSource, read, max_pixels: int = 2_000_000) -> BandStats:
    from rsmamba.raster.normalize import StatsAccumulator
    from rsmamba.raster.windows import sample_windows

    acc = StatsAccumulator(src.count)
    for w in sample_windows(src.width, src.height, max_pixels):
        acc.add(read(w), src.read_valid(w))
    return acc.result("epoch")


@run_scope()
@typed_arguments
@gdal_cache_capped()
@callers_randomness_kept(cuda=False)  # the network's random init before its weights load
def detect_change(
    t1: PathLike,
    t2: PathLike,
    out: PathLike,
    *,
    model: str | PathLike | nn.Module | LoadedModel | None = None,
    semantic: bool = False,
    probabilities: PathLike | None = None,
    bands: list[int] | None = None,
    window: int | None = None,
    overlap: int | None = None,
    blend: str = "hann",
    tta: bool | str | None = None,
    batch_size: int = 4,
    device: str = "auto",
    amp: bool = False,
    compress: str | None = None,
    resume: bool | str = False,
    dry_run: bool = False,
    max_shift: float = 3.0,
    force: bool = False,
    progress: bool = False,
    allow_geographic_mix: bool = False,
    pixel_grid: bool = False,
    strip_width: int = 4096,
    epoch_norm: str = "per-epoch",
    change_threshold: float | None = None,
    overwrite: bool = False,
    co: dict[str, str] | None = None,
    class_pairs: str = "consistent",
) -> ChangeSummary:
    """Write a change raster (COG) for the epoch pair ``t1``/``t2``; see the module docstring.

    ``epoch_norm="per-epoch"`` (default) standardises each epoch with its own per-raster
    statistics, which absorbs illumination and sensor differences between the dates: on three
    unseen synthetic pairs the demo model's change-polygon F1 was 0.82/0.86/0.96 this way against
    0.25/0.92/0.73 with the training statistics for both (``"checkpoint"``).

    Windows, ``tta``, ``device``, ``amp``, ``compress``, ``co``, ``resume`` and ``dry_run`` mean what they mean for
    :func:`rsmamba.predict.predict_raster`, through the same code.

    ``pixel_grid``: epochs without georeferencing (SECOND's and Landsat-SCD's PNGs) of one size are paired
    pixel by pixel, as predict's ``pixel_grid``.

    Outputs are published together (:func:`rsmamba.atomic.publish`); an existing one is refused
    unless ``overwrite``. ``co``: extra GDAL COG creation options (``--co KEY=VALUE``).

    ``change_threshold``: a pixel is changed where its blended p(change) exceeds it; None takes the
    threshold calibrated with the model (the shipped one carries one, chosen on training-style
    scenes: ``examples/make_demo_models.py calibrate``), else 0.5.

    ``class_pairs`` (with ``semantic``): ``"consistent"`` (default) or ``"per-date"``, each date's own argmax, the
    papers' inference, which ``train --test`` scores (see :func:`change_layer`).
    """
    t1, t2, out = Path(t1), Path(t2), Path(out)
    problems = ProblemCollector()
    check_run_options(problems, blend=blend, crop=0, overlap=overlap, batch_size=batch_size, device=device,
                      compress=compress, window=window, change_threshold=change_threshold, max_shift=max_shift)
    for problem in inputs_problems({"t1": t1, "t2": t2}):  # (a model file: load_change_model's own check)
        problems.add(problem)
    if t1.is_file() and t2.is_file() and os.path.samefile(t1, t2):  # ran, and reported 0 % change (QA)
        problems.add(f"t1 {t1} and t2 {t2} are the same file: change detection compares two dates; give the later "
                     "image as t2")
    if epoch_norm not in ("per-epoch", "checkpoint"):
        problems.add(f"--epoch-norm {epoch_norm!r}: choose per-epoch or checkpoint")
    if class_pairs not in CLASS_PAIRS:
        problems.add(f"--class-pairs {class_pairs!r}: choose {' or '.join(CLASS_PAIRS)}")
    elif class_pairs != "consistent" and not semantic:
        problems.add(f"--class-pairs {class_pairs}: sets the from/to classes of --semantic; add --semantic")
    outputs = {"change": out}
    if probabilities is not None:
        outputs["probabilities"] = Path(probabilities)  # named as predict's summary names --probabilities
    if len({p.resolve() for p in outputs.values()}) != len(outputs):
        problems.add("the change and probability outputs must be different files")
    overwrite = overwrite or resume is True  # (IF_INTERRUPTED: a batch's own --overwrite)
    inputs = [t1, t2] + ([model] if isinstance(model, (str, os.PathLike)) else [])
    for name, path in outputs.items():  # a dry run too: it says whether the run would go ahead
        check_output_path(path, inputs, problems, name, overwrite=overwrite)
    compress = check_creation_options(co, problems, compress)
    problems.raise_if_any()

    given = model
    notes: list[str] = []  # what was chosen for the user: in the summary too
    t2_bands = None
    # each date read in the model's colour order when it declares its own (a BGR t1: blue was read as red);
    # --bands chooses t1's, and t2 still answers to the model where t1 declares no order
    with AlignedSource(t1, allow_geographic_mix=allow_geographic_mix, pixel_grid=pixel_grid, image_role="t1") as probe:
        data, colours = probe.bands, probe.file_colours
    model = load_change_model(model, image_count=len(data))
    per_epoch = model.in_chans or len(data)
    if per_epoch <= len(data):
        if bands is None:
            by_colour = bands_by_colour(model, data[:per_epoch], colours, t1, notes, role="t1")
            bands = by_colour if by_colour != data[:per_epoch] or per_epoch < len(data) else None
            if per_epoch < len(data) and by_colour == data[:per_epoch]:  # an RGBN pair was refused, NRGB read
                note = (f"t1 {t1}: {len(data)} bands; the model reads bands {','.join(map(str, by_colour))} of each "
                        "date (--bands chooses others)")
                warn_once(log, note)
                notes.append(note)
        t1_declares = bool(declared_colours(colours))
        if model.colours or not t1_declares:
            # t2 against the model's colours too (an IRRG t2 beside an RGB t1 is refused); a model that records
            # none reads t2 in t1's declared order (AlignedSource matches the dates by colour)
            with AlignedSource(t2, allow_geographic_mix=allow_geographic_mix, pixel_grid=pixel_grid,
                               image_role="t2") as probe:
                data2, colours2 = probe.bands, probe.file_colours
            if per_epoch <= len(data2):
                # t2 read by colour: said once, as the source matching it to t1's colours says it where t1 declares its own
                by_colour = bands_by_colour(model, data2[:per_epoch], colours2, t2, notes, role="t2",
                                            say=not t1_declares)
                if not t1_declares:  # t1 says no order, t2 may: its own, read in the model's order
                    t2_bands = by_colour if by_colour != data2[:per_epoch] else None
    context = contextlib.nullcontext(None) if dry_run else publish(
        list(outputs.values()), inputs=[t1, t2], overwrite=overwrite, companions=[pam_path(outputs["change"])])
    with context as pub, caller_module_kept(given), \
            AlignedSource(t1, t2=t2, bands=bands, allow_geographic_mix=allow_geographic_mix, t2_bands=t2_bands,
                          pixel_grid=pixel_grid) as src:
        loaded = load_change_model(model, image_count=src.count)
        if loaded.in_chans is not None and loaded.in_chans != src.count:
            raise InputError(f"model {loaded.source} expects {loaded.in_chans} bands per epoch, "
                             f"the epochs have {src.count}"
                             + (f"; choose them with --bands (e.g. --bands {','.join(map(str, range(1, loaded.in_chans + 1)))})"
                                if src.count > loaded.in_chans else ""))
        if semantic and loaded.extra.get("task") == "change":
            raise InputError(f"model {loaded.source} is a binary change model; drop --semantic")
        if semantic and loaded.extra.get("land_cover_trained") is False:
            raise InputError(f"model {loaded.source} was trained on change masks alone: its land-cover heads never "
                             "saw a label, and their 'from' and 'to' classes would be made up; drop --semantic, or "
                             "train on chips tiled with --labels and --labels-t2")
        window, overlap, _ = resolve_window(loaded, window, overlap)
        start = time.perf_counter()  # "done in" counts the co-registration check: seconds of the run (4.4 s of 27)
        reset_peak_rss()  # and so does the peak memory; this pair's, not an earlier pair's in the same process
        from rsmamba.raster.validate import (
            check_collar, check_fill_values, check_gsd, check_lossy_nodata, check_pixel_shape, check_t2_coverage,
        )

        coverage_warnings = check_t2_coverage(src, t1, t2)  # (before the shift check, which has little to compare)
        shift = check_coregistration(src, max_shift=max_shift, force=force)

        input_warnings = coverage_warnings + check_gsd(src, loaded.gsd_m, f"t1 {t1}", loaded.source)  # t2: t1's grid
        t2_reads = {"read": src.read_t2, "read_valid": src.read_t2_valid, "dtype": src.t2_dtype}
        check_fill_values(src, f"t1 {t1}", t1)  # before the scale check: its advice would rescale the fill in
        check_fill_values(src, f"t2 {t2}", t2, **t2_reads)
        input_warnings += check_collar(src, f"t1 {t1}", t1) + check_collar(src, f"t2 {t2}", t2, **t2_reads)
        input_warnings += (check_pixel_shape(src, f"t1 {t1}") + check_lossy_nodata(src, t1, f"t1 {t1}")
                           + check_lossy_nodata(src, t2, f"t2 {t2}", read_valid=src.read_t2_valid))
        if epoch_norm == "checkpoint" and loaded.image_norm is not None:
            from rsmamba.raster.validate import check_value_range

            input_warnings += check_value_range(src, loaded.image_norm, f"t1 {t1}", loaded.source)
            input_warnings += check_value_range(src, loaded.extra.get("t2_norm") or loaded.image_norm, f"t2 {t2}",
                                              loaded.source, **t2_reads)
            stats1 = BandStats.from_dict({**{"minimum": [], "maximum": []}, **loaded.image_norm})
            t2_norm = loaded.extra.get("t2_norm")
            stats2 = BandStats.from_dict({**{"minimum": [], "maximum": []}, **t2_norm}) if t2_norm else stats1
        else:  # each epoch by its own per-raster statistics: a radiometric normalisation between dates
            stats1 = compute_stats(src)[0]
            stats2 = _epoch_stats(src, src.read_t2)

        def read_window(w: Window) -> tuple[np.ndarray, np.ndarray]:
            valid = src.read_valid(w)
            x = np.concatenate([normalize(src.read_image(w), stats1), normalize(src.read_t2(w), stats2)])
            blank_invalid(x, valid)  # both dates where either has no data, as training (rsmamba.datasets.chips)
            return x, valid

        predictor = ChangePredictor(loaded, device=device, semantic=semantic, tta=tta, amp=amp,
                                    mirrors=grid_mirrors(src.transform))
        k = 2 + (2 * loaded.num_classes if semantic else 0)
        threshold, threshold_source = change_threshold_of(loaded, change_threshold)
        # the polygon size calibrated with the threshold; a threshold of the user's is not calibrated with it
        # (square metres mean nothing on a pixel grid, and vectorize refuses such a raster: no area to record)
        min_area = (change_min_area_of(loaded) if threshold_source != "--change-threshold" and src.georeferenced
                    else None)
        weights_digest = model_digest(loaded)
        made_by = model_id(loaded, weights_digest)
        layers = [change_layer(out, loaded.classes if semantic else CHANGE_CLASSES, semantic, made_by, threshold,
                               min_area, class_pairs)]
        if probabilities is not None:
            layers.append(change_probability_layer(Path(probabilities), made_by))
        grid = WindowGrid(src.width, src.height, window, overlap)
        strips = plan_strips(grid, src.width, strip_width)
        n_windows = sum(len(s.col_offsets) for s in strips) * len(grid.row_offsets)
        layers_bands = sum(layer.count for layer in layers)
        pixel_bytes = (src.count * np.dtype(src.dtype).itemsize
                       + src.count * np.dtype(src.t2_dtype or src.dtype).itemsize)  # both dates
        memory = pipeline_bytes(grid, strips, num_classes=k, in_chans=2 * src.count, batch_size=batch_size,
                                prefetch=PREFETCH, layers_bands=layers_bands,
                                probabilities=probabilities is not None)
        memory += min(GDAL_CACHE_MB * 2**20, src.width * src.height * pixel_bytes) + process_rss_bytes()  # its GDAL cache
        summary = ChangeSummary(outputs, src.width, src.height, n_windows, shift, threshold, threshold_source,
                                warnings=[*notes, *src.warnings, *input_warnings], window=window, overlap=overlap, min_area_m2=min_area,
                                model=(f"{loaded.name} ({loaded.source})" if loaded.source else loaded.name)
                                + f" on {predictor.placement()}", memory_bytes=int(memory), tta_views=predictor.tta.passes,
                                tta_source=predictor.tta_source, output_bands=layers_bands)
        log.debug("plan: %d windows of %d px, overlap %d, blend %s, in %d column strip(s); batch %d; device %s, "
                  "%d network pass(es) per window; bands t1 %s, t2 %s; epochs normalised %s",
                  n_windows, window, overlap, blend, len(strips), batch_size, predictor.device, predictor.tta.passes,
                  src.bands, src.t2_bands, epoch_norm)
        params = {
            "t1": file_fingerprint(t1), "t2": file_fingerprint(t2), "bands": bands, "model": weights_digest,
            "window": window, "overlap": overlap, "blend": blend, "tta": predictor.tta.spec(), "amp": amp, "semantic": semantic,
            "class_pairs": class_pairs, "epoch_norm": epoch_norm, "change_threshold": threshold, "min_area_m2": min_area, "strip_width": strip_width,
            "stats": stats1.mean + stats1.std + stats2.mean + stats2.std,
            "outputs": {k: str(v.resolve()) for k, v in outputs.items()},
        }
        state = ResumeState(out, params, src.height, batch_size)  # the lock on the outputs keeps it ours
        if dry_run:
            summary.dry_run = True
            # the run's check of the interrupted run's record (a dry run said nothing, the run refused), or what
            # a run without --resume would start again
            summary.resume_note = state.dry_run_note([layer.scratch for layer in layers], len(strips), resume)
            summary.eta_seconds, forward_bytes = estimate_seconds(grid, read_window, predictor, batch_size, n_windows)
            summary.memory_bytes += forward_bytes
            return summary
        point = state.begin(pub, layers, resume, len(strips))
        summary.resume_note = resume_note(point, len(strips))
        if point is None:
            return _with_changed_fraction(summary, out)
        first_strip, rows_done = point
        warn_long_run(grid, strips, read_window, predictor, batch_size, point,
                      output_bands=sum(layer.count for layer in layers), what=f"{t1} -> {t2}")
        try:
            stream_layers(src, grid, strips, read_window, predictor, layers, channels=k, blend=blend,
                          batch_size=batch_size, on_durable=state.save, first_strip=first_strip, rows_done=rows_done,
                          progress=progress, desc="change")
        except InputError:  # the model's output refused at a batch: nothing a --resume could finish
            state.discard(layers)
            raise
        finalize_all(layers, pub, compress=compress, co=co)
        summary.seconds = time.perf_counter() - start
        summary.peak_bytes = peak_rss_bytes()
    return _with_changed_fraction(summary, out)


def _with_changed_fraction(summary: ChangeSummary, out: Path) -> ChangeSummary:
    import rasterio

    changed = counted = 0
    with rasterio.open(out) as ds:  # full resolution, block by block: an overview's mode drops small changes
        for _, block in ds.block_windows(1):
            band = ds.read(1, window=block)
            counted += int(np.count_nonzero(band != NODATA))
            changed += int(np.count_nonzero(band == 1))
    summary.changed_fraction = changed / counted if counted else 0.0
    return summary


