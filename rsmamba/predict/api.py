"""``predict_raster``: the library function behind ``rsmamba predict``."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from rasterio.windows import Window

from rsmamba.atomic import fault_point, publish
from rsmamba.errors import InputError, ProblemCollector, typed_arguments
from rsmamba.engine.pipeline import limit_heap_growth
from rsmamba.engine.run import (
    check_creation_options, check_output_path, estimate_seconds, eta_text, grid_text, model_digest, model_id,
    warn_long_run,
    output_size, peak_rss_bytes, pipeline_bytes, plan_strips, process_rss_bytes, reset_peak_rss, stream_layers,
)
from rsmamba.engine.model import (
    LoadedModel, Predictor, bands_by_colour, caller_module_kept, callers_randomness_kept, check_input, load_model,
)
from rsmamba.engine.options import check_run_options, resolve_window
from rsmamba.engine.resume import ResumeState, file_fingerprint, resume_note
from rsmamba.engine.writer import (
    OutputLayer, class_layer, confidence_layer, finalize_all, pam_path, probability_layer,
)
from rsmamba.raster import gdal_cache_capped
from rsmamba.raster.normalize import BandStats, blank_invalid, compute_stats, dsm_range, normalize, normalize_dsm
from rsmamba.raster.source import NO_COLOUR, AlignedSource, declared_colours, grid_mirrors, learnt_colours
from rsmamba.raster.windows import WindowGrid
from rsmamba.paths import inputs_problems
from rsmamba.runlog import run_scope, warn_once

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass
class PredictSummary:
    """What a run did (or, for a dry run, would do)."""

    outputs: dict[str, Path]
    width: int
    height: int
    windows: int
    window: int
    overlap: int
    memory_bytes: int  # the estimate (a dry run adds the forward pass it measured)
    seconds: float = 0.0
    peak_bytes: int = 0  # a run's measured peak resident set (0: unknown, no /proc)
    eta_seconds: float | None = None
    resumed_from_row: int = 0  # rows of ``resumed_strip`` that were already on disk
    resumed_strip: int = 0
    pixels_resumed: int = 0  # output pixels already on disk when --resume took the run up (not computed now)
    resume_note: str = ""  # where --resume took the run up, for the last line ('' for a run from the start)
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)
    tta_views: int = 1  # network passes per window (test-time augmentation)
    tta_scales: tuple[float, ...] = (1.0,)  # the scales windows are resized by (--tta-scales)
    model: str = ""  # which model ran: its checkpoint path (the shipped default's, without --model)
    window_source: str = ""  # "the model's" when the checkpoint chose the window (no --window given)
    tta_source: str = ""  # "the model's" when the checkpoint chose the test-time augmentation (none given)
    output_bands: int = 1  # bands of all outputs together (a probability raster has one per class)

    @property
    def mpix_per_s(self) -> float:
        """Pixels this run computed per second (a resumed run: those after its resume point)."""
        return (self.width * self.height - self.pixels_resumed) / 1e6 / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        own = ", the model's window" if self.window_source == "the model's" else ""
        memory = (f", memory estimate {self.memory_bytes / 2**20:.0f} MiB" if self.dry_run else
                  f", peak memory {self.peak_bytes / 2**20:.0f} MiB" if self.peak_bytes else "")
        lines = [grid_text(self.width, self.height, self.windows, self.window, self.overlap, own) + memory
                 + (f", test-time augmentation: {self.tta_views} passes per window"
                    + (" (the model's; --no-tta for one)" if self.tta_source == "the model's" else "")
                    if self.tta_views > 1 else "")
                 + (f", windows scaled {', '.join(f'{s:g}' for s in self.tta_scales)}x"  # (0.9 alone was unsaid)
                    if self.tta_scales != (1.0,) else "")]
        if self.model:
            lines.append(f"model: {self.model}")
        for name, path in self.outputs.items():
            lines.append(f"{name}: {path}" + (" (not written: --dry-run)" if self.dry_run else ""))
        if self.dry_run:
            size = self.width * self.height * self.output_bands  # one byte per band and pixel
            lines.append(f"output size {output_size(size)} uncompressed; {eta_text(self.eta_seconds)}"
                         f"{self.resume_note.replace('resumed', 'would resume')}" if self.eta_seconds is not None else "")
        else:
            lines.append(f"done in {self.seconds:.1f} s ({self.mpix_per_s:.2f} MPix/s){self.resume_note}")
        # self.warnings were logged on stderr as they arose; not repeated on stdout
        return "\n".join(line for line in lines if line)


def _model_line(loaded: LoadedModel, has_dsm: bool, device: object) -> str:
    """Which model ran and where (``--device auto`` chose a GPU or not), for the summary: the shipped
    default says which of the two it is."""
    if not loaded.extra.get("shipped_default"):
        return f"{loaded.name} ({loaded.source}) on {device}"
    kind = "image+DSM" if has_dsm else "image-only; pass --dsm for the image+DSM model"
    return f"{loaded.name} ({loaded.source}; the shipped default, {kind}) on {device}"


def output_paths(out: Path, probabilities: PathLike | None, confidence: PathLike | None,
                 problems: ProblemCollector) -> dict[str, Path]:
    """The layers asked for, by name; they must be three different files."""
    outputs = {"classes": Path(out)}
    if probabilities is not None:
        outputs["probabilities"] = Path(probabilities)
    if confidence is not None:
        outputs["confidence"] = Path(confidence)
    if len({p.resolve() for p in outputs.values()}) != len(outputs):
        problems.add("the class, probability and confidence outputs must be different files")
    return outputs


def slice_parts(out: Path) -> list[Path]:
    """The parts folders (``.NAME.parts-<digest>``) that ``--slice-rows`` runs of output ``out`` keep between their
    jobs (:mod:`rsmamba.predict.slices`): a killed one's stayed for good once the output was made whole (QA)."""
    return list(Path(out).parent.glob(f".{glob.escape(Path(out).name)}.parts-*"))


def resolve_model(image: Path, dsm: PathLike | None, model, bands: list[int] | None,
                  allow_geographic_mix: bool, notes: list[str] | None = None,
                  pixel_grid: bool = False) -> tuple[LoadedModel, list[int], bool]:
    """The model, the image bands it reads, and whether a DSM goes in, checked against the input; what it
    chose for the user (the bands read by colour, a subset) is logged and appended to ``notes``."""
    # the image alone: the DSM is opened (and warned about: 'resampled onto the image grid') once the model is known
    # to take one; a model trained without a DSM said so only after the DSM's warnings
    with AlignedSource(image, None, allow_geographic_mix=allow_geographic_mix, pixel_grid=pixel_grid) as probe:
        data, file_count = probe.bands, probe.file_band_count
        colours = probe.file_colours
    has_dsm = dsm is not None
    image_count = len(data)
    loaded = load_model(model, image_count=image_count, has_dsm=has_dsm)
    wanted, declared = learnt_colours(loaded.colours), declared_colours(colours)
    beyond = bool(loaded.bands) and max(loaded.bands) > image_count  # the training file's numbers, not this image's
    if bands is None and wanted and len(wanted) <= image_count and (all(name in declared for name in wanted) or beyond):
        # a model of colours and an image declaring each of them: read by colour. The checkpoint's band numbers
        # are those of the file it was tiled from (an ARGB ortho's 2, 3, 4; tile --bands 4,1,2): read by position
        # they refused every 3-band image declaring the same colours, the model's own training ortho too
        position = range(1, len(wanted) + 1) if beyond or not loaded.bands else loaded.bands
        by_position = [data[b - 1] for b in position]
        chosen = bands_by_colour(loaded, by_position, colours, image, notes)
        check_input(loaded, image_count=file_count, image_path=image, has_dsm=has_dsm, bands=chosen)
    else:
        # --bands names the file's bands (an alpha band too); a checkpoint's bands count the image bands, so
        # an alpha band stored first (ARGB) is skipped, not read as red
        chosen = check_input(loaded, image_count=file_count if bands else image_count, image_path=image,
                             has_dsm=has_dsm, bands=bands)
        if bands is None:
            by_position = [data[b - 1] for b in chosen]
            chosen = bands_by_colour(loaded, by_position, colours, image, notes)
    if bands is None and len(chosen) < image_count and chosen == by_position:  # e.g. an RGB + NIR ortho and an RGB model: say which
        read = [colours[b - 1] for b in chosen]
        if wanted is None and any(c not in NO_COLOUR for c in read):  # a gray model fed a colour: not 'its' band
            what = (f"by position ({', '.join(read)} as declared): the model records no colour for its "
                    f"band{'s' * (len(chosen) != 1)} ({', '.join(loaded.colours or ['none'])})")
        elif wanted and all(c in NO_COLOUR for c in read):  # a 6-band Landsat scene's blue, green, red read as RGB
            what = (f"by position, as its {', '.join(wanted)}: the image declares no band colours (a Landsat scene "
                    "stores blue, green, red as bands 1, 2, 3: --bands 3,2,1)")
        else:
            what = "those it was trained on"
        note = (f"image {image}: {image_count} bands; the model reads bands {','.join(map(str, chosen))}, "
                f"{what} (--bands chooses others)")
        warn_once(log, note)
        if notes is not None:
            notes.append(note)
    return loaded, chosen, has_dsm


def check_model_input(src: AlignedSource, loaded: LoadedModel, image: Path, dsm: PathLike | None) -> list[str]:
    """Before any compute: the DSM covers the image, the image's values (and the DSM's heights) are on the training scale, its
    pixels near the training pixel size.

    Returns warnings (also logged); raises InputError for inputs that would give a silent wrong map.
    """
    from rsmamba.raster.validate import (
        check_collar, check_dsm_coverage, check_dsm_heights, check_dsm_resolution, check_fill_values, check_gsd,
        check_lossy_nodata, check_pixel_shape, check_some_valid, check_value_range,
    )

    check_some_valid(src, f"image {image}")
    coverage = check_dsm_coverage(src, dsm) if src.has_dsm else []
    check_fill_values(src, f"image {image}", image)  # before the scale check: its advice would rescale the fill in
    return (coverage + check_collar(src, f"image {image}", image)
            + check_lossy_nodata(src, image, f"image {image}")
            + check_value_range(src, loaded.image_norm, f"image {image}", loaded.source)
            + check_dsm_heights(src, loaded.dsm_norm, f"DSM {dsm}", loaded.source)
            + (check_dsm_resolution(src, dsm) if src.has_dsm else [])
            + check_gsd(src, loaded.gsd_m, f"image {image}", loaded.source)
            + check_pixel_shape(src, f"image {image}"))


def _dsm_normalizer(model: LoadedModel, dsm_stats: BandStats | None, src: AlignedSource):
    """Per-window DSM normalisation as the model was trained (see ``normalize_dsm``)."""
    norm = dict(model.dsm_norm or {"mode": "minmax-window"})
    if norm.get("mode") == "minmax-scene":  # this scene's own range, every pixel of it, as each tile's in training
        norm["minimum"], norm["maximum"] = dsm_range(src.read_dsm, src.width, src.height)
    if norm.get("mode") == "zscore":
        norm.setdefault("mean", dsm_stats.mean[0] if dsm_stats else 0.0)
        norm.setdefault("std", dsm_stats.std[0] if dsm_stats else 1.0)
    return lambda d, valid: normalize_dsm(d, valid, norm)


def scene_stats(src: AlignedSource, loaded: LoadedModel) -> tuple[BandStats, BandStats | None]:
    """Normalisation statistics: the checkpoint's, else the whole scene's (sampled once per scene)."""
    if loaded.image_norm is None:
        return compute_stats(src)
    image_stats = BandStats(loaded.image_norm["mean"], loaded.image_norm["std"],
                            loaded.image_norm.get("minimum", []), loaded.image_norm.get("maximum", []))
    dsm_stats = None
    if src.has_dsm and (loaded.dsm_norm or {}).get("mode") == "zscore" and "mean" not in loaded.dsm_norm:
        dsm_stats = compute_stats(src)[1]
    return image_stats, dsm_stats


@run_scope()
@typed_arguments
@callers_randomness_kept(cuda=False)  # the network's random init before its weights load
def predict_raster(
    image: PathLike,
    out: PathLike,
    *,
    dsm: PathLike | None = None,
    model: str | PathLike | nn.Module | LoadedModel | None = None,
    bands: list[int] | None = None,
    window: int | None = None,
    overlap: int | None = None,
    blend: str = "hann",
    crop: int = 0,
    tta: bool | str | None = None,
    batch_size: int = 4,
    device: str = "auto",
    amp: bool = False,
    channels_last: bool = False,
    probabilities: PathLike | None = None,
    confidence: PathLike | None = None,
    compress: str | None = None,
    resume: bool | str = False,
    dry_run: bool = False,
    prefetch: int = 4,
    progress: bool = False,
    allow_geographic_mix: bool = False,
    pixel_grid: bool = False,
    edge_aware: bool = True,
    gdal_cache_mb: int = 64,
    strip_width: int = 4096,
    rows: tuple[int, int] | None = None,
    stats: tuple[BandStats, BandStats | None] | None = None,
    overwrite: bool = False,
    co: dict[str, str] | None = None,
) -> PredictSummary:
    """Predict a class raster (COG) for ``image`` with bounded memory.

    Windows of ``window`` px overlapping by ``overlap`` (None: the model's own, else 512 / a quarter;
    :func:`rsmamba.engine.model.inference_window`) are blended with ``blend`` weights
    (``none`` = later windows overwrite, ``crop`` px dropped at inner window borders) into a
    row-buffer accumulator; finished rows are written as they complete. Rasters wider than
    ``strip_width`` (rounded to the 256 px tile) are done in column strips, so memory is flat. ``resume=True`` continues an
    interrupted run with the same parameters from its last complete tile row (``IF_INTERRUPTED``, a batch's
    scene: when there is one, else from the first row). GDAL's block cache
    is capped at ``gdal_cache_mb`` (its default, 5 % of RAM, would grow with the scene; 64 MiB holds
    the rows that overlapping windows re-read many times over, and a 4096² image + DSM fills it
    as a 20000² one does, so peak memory does not depend on the scene size).

    ``tta``: False, True (D4) or a spec such as ``"flip+scales=0.75,1,1.25"`` or ``"recipe"`` (the
    checkpoint's evaluation protocol), see :mod:`rsmamba.engine.tta`; softmax is averaged per window.
    None: the model's own (checkpoint ``inference``, :func:`rsmamba.engine.model.inference_tta`), else plain.

    ``rows=(y0, y1)`` computes only those rows into plain tiled GeoTIFF parts at the output paths
    (one row slice of a scene split across workers, :func:`rsmamba.predict.slices.predict_slices`);
    ``stats`` passes the (image, DSM) normalisation statistics of the whole scene to it.

    ``pixel_grid``: an image without georeferencing (no CRS, identity transform: ISPRS Vaihingen's tiles,
    PNG benchmarks) is read on its pixel grid, a DSM of its size paired pixel by pixel; the outputs carry
    no georeferencing either. Without it such an image is refused (a lost CRS is a mistake in mapping).

    Outputs are published together through :func:`rsmamba.atomic.publish` (locked, all or
    none); an existing output is refused unless ``overwrite`` (``resume`` implies it). ``co``:
    extra GDAL COG creation options (``--co KEY=VALUE``); ``compress`` None is deflate, or ``co``'s
    COMPRESS (both given are refused: one would be ignored).

    ``device``: ``auto`` (the CLI's default too) runs on a GPU when torch sees one, else on the CPU.
    """
    with gdal_cache_capped(gdal_cache_mb):
        return _predict_raster(**locals())


def _predict_raster(
    image, out, *, dsm, model, bands, window, overlap, blend, crop, tta, batch_size, device, amp, channels_last,
    probabilities, confidence, compress, resume, dry_run, prefetch, progress, allow_geographic_mix, pixel_grid, edge_aware,
    strip_width, rows, stats, overwrite, co, gdal_cache_mb,
) -> PredictSummary:
    image, out = Path(image), Path(out)
    limit_heap_growth()  # before the first big buffer, so a dry run measures what a run will hold
    problems = ProblemCollector()
    check_run_options(problems, blend=blend, crop=crop, overlap=overlap, batch_size=batch_size, device=device,
                      compress=compress, window=window, prefetch=prefetch)
    if rows is not None and (resume or dry_run):  # (IF_INTERRUPTED too: a slice is no run to take up)
        problems.add("a row slice (rows=...) is computed whole: no --resume or --dry-run")
    outputs = output_paths(out, probabilities, confidence, problems)
    for problem in inputs_problems({"image": image, "DSM": dsm}):  # (a model file: load_model's own check)
        problems.add(problem)
    overwrite = overwrite or resume is True or rows is not None  # (IF_INTERRUPTED: a batch's own --overwrite)
    inputs = [image, dsm] + ([model] if isinstance(model, (str, os.PathLike)) else [])
    for name, path in outputs.items():  # a dry run too: it says whether the run would go ahead
        check_output_path(path, inputs, problems, name, overwrite=overwrite)
    compress = check_creation_options(co, problems, compress)
    problems.raise_if_any()
    notes: list[str] = []
    loaded, chosen, has_dsm = resolve_model(image, dsm, model, bands, allow_geographic_mix, notes, pixel_grid)
    window, overlap, window_source = resolve_window(loaded, window, overlap, crop, warn=rows is None)
    context = contextlib.nullcontext(None) if dry_run else publish(
        list(outputs.values()), inputs=[image, dsm], overwrite=overwrite,
        companions=[] if rows is not None else [pam_path(outputs["classes"])])  # a slice's parts: pixels only
    with context as pub, caller_module_kept(model):
        return _predict_in(image, outputs, pub, dsm=dsm, bands=chosen, has_dsm=has_dsm, loaded=loaded,
                           window=window, overlap=overlap, window_source=window_source, blend=blend, crop=crop,
                           tta=tta, batch_size=batch_size, device=device, amp=amp, channels_last=channels_last, probabilities=probabilities,
                           confidence=confidence, compress=compress, co=co, resume=resume, dry_run=dry_run,
                           prefetch=prefetch, progress=progress, allow_geographic_mix=allow_geographic_mix,
                           pixel_grid=pixel_grid,
                           edge_aware=edge_aware, strip_width=strip_width, rows=rows, stats=stats,
                           gdal_cache_mb=gdal_cache_mb, notes=notes)


def _predict_in(
    image: Path, outputs: dict[str, Path], pub, *, dsm, bands: list[int], has_dsm: bool, loaded: LoadedModel,
    window, overlap, window_source, blend, crop, tta, batch_size, device, amp, channels_last, probabilities, confidence, compress,
    co, resume, dry_run, prefetch, progress, allow_geographic_mix, pixel_grid, edge_aware, strip_width, rows, stats,
    gdal_cache_mb, notes: list[str] | None = None,
) -> PredictSummary:
    """The run itself, inside the publication of ``outputs`` (``pub`` is None for a dry run)."""
    out, chosen = outputs["classes"], bands

    with AlignedSource(image, dsm, bands=chosen, allow_geographic_mix=allow_geographic_mix,
                       pixel_grid=pixel_grid) as src:
        grid = WindowGrid(src.width, src.height, window, overlap)
        fixed = getattr(loaded.module, "fixed_input_size", None)
        if fixed is not None and (grid.window_height > fixed[0] or grid.window_width > fixed[1]):
            raise InputError(f"model {loaded.source} takes windows of at most {fixed[0]} x {fixed[1]} px "
                             f"(a fixed input size); pass --window {min(fixed)}")
        input_warnings = check_model_input(src, loaded, image, dsm) if stats is None else []  # bands: checked once
        image_stats, dsm_stats = stats if stats is not None else scene_stats(src, loaded)
        dsm_norm = _dsm_normalizer(loaded, dsm_stats, src) if has_dsm else None

        def read_window(w: Window) -> tuple[np.ndarray, np.ndarray]:
            heights = src.read_dsm(w) if src.has_dsm else None  # read once: for the mask and the values
            valid = src.read_valid(w, heights)
            x = normalize(src.read_image(w), image_stats)
            if dsm_norm is not None:
                d = dsm_norm(heights, valid)
                x = np.concatenate([x, d[None].astype(np.float32)])
            blank_invalid(x, valid)
            if dsm_norm is not None:
                np.nan_to_num(x, copy=False)
            return x, valid

        predictor = Predictor(loaded, device=device, tta=tta, amp=amp, channels_last=channels_last,
                              mirrors=grid_mirrors(src.transform))
        num_classes = loaded.num_outputs  # blended channels: the classes (+ instance channels, issue #17)
        strips = plan_strips(grid, src.width, strip_width)
        in_chans = len(chosen) + (1 if has_dsm else 0)
        layers_bands = sum((num_classes if k == "probabilities" else 1) for k in outputs)
        input_bytes = src.width * src.height * (src.count * np.dtype(src.dtype).itemsize + (4 if has_dsm else 0))
        memory = pipeline_bytes(grid, strips, num_classes=num_classes, in_chans=in_chans, batch_size=batch_size,
                                prefetch=prefetch, layers_bands=layers_bands, probabilities=probabilities is not None)
        memory += min(gdal_cache_mb * 2**20, input_bytes) + process_rss_bytes()
        n_windows = sum(len(s.col_offsets) for s in strips) * len(grid.row_offsets)  # strip borders counted twice
        summary = PredictSummary(outputs, src.width, src.height, n_windows, window, overlap, int(memory),
                                 warnings=[*(notes or []), *src.warnings, *input_warnings], tta_views=predictor.tta.passes, tta_scales=tuple(predictor.tta.scales),
                                 model=_model_line(loaded, has_dsm, predictor.placement()), window_source=window_source,
                                 tta_source=predictor.tta_source, output_bands=layers_bands)

        log.debug("plan: %d windows of %d px, overlap %d, blend %s, in %d column strip(s); batch %d, prefetch %d; "
                  "device %s, %d torch threads; %d network pass(es) per window; bands %s%s; image normalised by %s",
                  n_windows, window, overlap, blend, len(strips), batch_size, prefetch, predictor.device,
                  torch.get_num_threads(), predictor.tta.passes, chosen, " + DSM" if has_dsm else "",
                  "the checkpoint's statistics" if loaded.image_norm is not None else "this scene's statistics")

        weights_digest = model_digest(loaded)
        made_by = model_id(loaded, weights_digest)  # on every output: vectorize pairs them by it
        layers: list[OutputLayer] = [class_layer(out, loaded.classes, made_by)]
        if probabilities is not None:
            layers.append(probability_layer(Path(probabilities), loaded.classes, loaded.instance_channels, made_by))
        if confidence is not None:
            layers.append(confidence_layer(Path(confidence), loaded.num_classes, made_by))
        if rows is not None:
            return _predict_rows(src, grid, strips, read_window, predictor, layers, summary, rows, pub,
                                 channels=num_classes, blend=blend, crop=crop, edge_aware=edge_aware,
                                 batch_size=batch_size, prefetch=prefetch, progress=progress,
                                 pointwise_read=dsm_norm is None)
        params = {
            "image": file_fingerprint(image), "dsm": file_fingerprint(dsm), "bands": chosen,
            "model": weights_digest, "window": window, "overlap": overlap, "blend": blend, "crop": crop,
            "tta": predictor.tta.spec(), "amp": amp, "edge_aware": edge_aware, "strip_width": strip_width, "outputs": {k: str(v.resolve()) for k, v in outputs.items()},
            "image_stats": image_stats.mean + image_stats.std,
        }
        state = ResumeState(out, params, src.height, batch_size)
        if dry_run:
            summary.dry_run = True
            # the run's check of the interrupted run's record (a dry run said nothing, the run refused), or what
            # a run without --resume would start again
            summary.resume_note = state.dry_run_note([layer.scratch for layer in layers], len(strips), resume)
            summary.eta_seconds, forward_bytes = estimate_seconds(grid, read_window, predictor, batch_size, n_windows)
            summary.memory_bytes += forward_bytes
            return summary
        point = state.begin(pub, layers, resume, len(strips))
        pub.remove_at_commit(*slice_parts(out))  # a killed --slice-rows run's: this whole run makes them moot
        summary.resume_note = resume_note(point, len(strips))
        if point is None:
            summary.resumed_strip = len(strips)
            return summary
        first_strip, rows_done = point
        warn_long_run(grid, strips, read_window, predictor, batch_size, point, output_bands=layers_bands, what=str(image))
        summary.resumed_strip, summary.resumed_from_row = point
        summary.pixels_resumed = (sum(s.x1 - s.x0 for s in strips[:first_strip]) * src.height
                                  + (strips[first_strip].x1 - strips[first_strip].x0) * rows_done
                                  if first_strip < len(strips) else src.width * src.height)

        def on_durable(strip: int, done: int) -> None:
            state.save(strip, done)
            if strip or done:
                fault_point("predict-rows-durable", out)

        start = time.perf_counter()
        reset_peak_rss()  # this run's peak, not an earlier one's in the same process
        stream_layers(
            src, grid, strips, read_window, predictor, layers, channels=num_classes, blend=blend, crop=crop,
            edge_aware=edge_aware, batch_size=batch_size, prefetch=prefetch, on_durable=on_durable,
            first_strip=first_strip, rows_done=rows_done, progress=progress, desc="predict",
            pointwise_read=dsm_norm is None,
        )
        finalize_all(layers, pub, compress=compress, co=co)
        summary.seconds = time.perf_counter() - start
        summary.peak_bytes = peak_rss_bytes()
    return summary


def _predict_rows(src, grid, strips, read_window, predictor, layers, summary, rows, pub, **stream_kwargs
                  ) -> PredictSummary:
    """One row slice into parts: each layer's scratch is the publication's scratch of its part path.

    The parts are published together, so an existing class part means the band is complete.
    """
    for layer in layers:
        layer.scratch_file = pub[layer.path]
    start = time.perf_counter()
    stream_layers(src, grid, strips, read_window, predictor, layers, rows=rows, **stream_kwargs)
    summary.height = rows[1] - rows[0]
    summary.seconds = time.perf_counter() - start
    return summary


