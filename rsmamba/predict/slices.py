"""One huge scene on many workers: row slices computed as separate parts, assembled into one COG.

Each slice job runs the windows that reach its rows, with the whole scene's window grid, column
strips, batches, blend weights and normalisation statistics, so every pixel is summed from the
same window probabilities in the same order as in a single-process run: the assembled COG is
byte-identical to ``predict_raster`` on the whole scene (tested). Windows crossing a slice border
are computed by both slices (cost: about ``window / slice_rows`` extra work).

Parts live in a hidden folder next to the output named after a hash of everything that
determines the result; a part appears only by atomic rename, so a re-run (or a worker killed
mid-slice) recomputes only the missing slices, and parts of a run with other parameters are never
mixed in.
"""

from __future__ import annotations

import inspect
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
from rasterio.windows import Window

from rsmamba.atomic import publish
from rsmamba.jobs import Job, JobResult, band_count, cached_model, default_workers, run_jobs, setup_worker
from rsmamba.errors import InputError, ProblemCollector, typed_arguments
from rsmamba.predict.api import (
    check_creation_options, check_model_input, check_output_path, check_run_options, model_digest, model_id,
    output_paths, predict_raster, resolve_model, scene_stats, slice_parts,
)
from rsmamba.engine.model import LoadedModel, load_model
from rsmamba.engine.options import resolve_window
from rsmamba.engine.resume import file_fingerprint, params_hash
from rsmamba.engine.writer import (
    BLOCK, OutputLayer, class_layer, confidence_layer, create_scratch, finalize, pam_path, probability_layer,
    scratch_profile,
)
from rsmamba.raster.source import AlignedSource
from rsmamba.raster.windows import WindowGrid
from rsmamba.runlog import run_scope

PathLike = str | os.PathLike[str]
LAYER_NAMES = ("classes", "probabilities", "confidence")
_PREDICT_DEFAULTS = {name: p.default for name, p in inspect.signature(predict_raster).parameters.items()
                     if p.default is not inspect.Parameter.empty}


@dataclass
class SlicesSummary:
    """What a split run did: the outputs, the row slices, and how the slice jobs ended."""

    outputs: dict[str, Path]
    width: int
    height: int
    slices: list[tuple[int, int]]
    results: list[JobResult]
    window_ratio: float = 1.0  # windows computed / windows of a single pass (slice borders run twice)
    compute_seconds: float = 0.0  # the slice jobs (parallel)
    assemble_seconds: float = 0.0  # parts into one COG (serial, on the caller)

    def describe(self) -> str:
        done = sum(r.status == "done" for r in self.results)
        lines = [f"raster {self.width} x {self.height} px in {len(self.slices)} row slices "
                 f"({done} computed, {len(self.results) - done} already done; {self.window_ratio:.2f}x the windows "
                 f"of one pass) in {self.compute_seconds:.1f} s, "
                 f"assembled into one COG in {self.assemble_seconds:.1f} s"]
        lines += [f"{name}: {path}" for name, path in self.outputs.items()]
        return "\n".join(lines)


def plan_row_slices(height: int, slice_rows: int) -> list[tuple[int, int]]:
    """Rows ``[y0, y1)`` of each slice; ``slice_rows`` rounded up to whole 256 px tile rows."""
    if slice_rows < 1:
        raise InputError(f"--slice-rows must be >= 1, got {slice_rows}")
    step = -(-slice_rows // BLOCK) * BLOCK
    return [(y0, min(height, y0 + step)) for y0 in range(0, height, step)]


def window_ratio(grid: WindowGrid, slices: list[tuple[int, int]]) -> float:
    """Grid rows the slices run (those reaching into each slice) over the grid rows of one pass."""
    h = grid.window_height
    runs = sum(1 for y0, y1 in slices for r in grid.row_offsets if r + h > y0 and r < y1)
    return runs / len(grid.row_offsets)


def part_path(parts: Path, index: int, layer: str) -> Path:
    return parts / f"slice-{index:05d}.{layer}.tif"


def predict_slice_job(image: Path, part: Path, *, model: Any = None, dsm: PathLike | None = None,
                     rows: tuple[int, int], index: int, layers: tuple[str, ...] = ("classes",),
                     **kwargs: Any) -> None:
    """One row slice on a worker (model loaded once per worker process); writes one part per layer."""
    from rsmamba.predict import predict_raster
    kwargs = setup_worker(kwargs)
    loaded = model if isinstance(model, LoadedModel) else cached_model(
        None if model is None else str(model), load_model, image_count=band_count(image, kwargs), has_dsm=dsm is not None)
    extra = {name: part_path(part.parent, index, name) for name in layers if name != "classes"}
    predict_raster(image, part, dsm=dsm, model=loaded, rows=rows, **extra, **kwargs)


def _model_for_workers(spec: Any, loaded: LoadedModel) -> Any:
    """Checkpoints travel as paths (each worker loads once); anything else (a registry name's
    random weights, a module) as the loaded object, so every slice uses the same weights.

    No ``--model``: the shipped checkpoint this process resolved (image-only without a DSM), by its path.
    """
    path = loaded.source if spec is None else spec
    if isinstance(path, (str, os.PathLike)) and Path(path).is_file():
        return str(path)
    return loaded


def assemble(layer: OutputLayer, profile: dict[str, Any], slices: list[tuple[int, int]], parts: list[Path],
             *, compress: str = "deflate", dest: Path | None = None, co: dict[str, str] | None = None,
             pam_dest: Path | None = None) -> Path:
    """Copy the parts tile row by tile row into one scratch file on the scene grid, then the COG.

    The scratch is the one a single-process run writes (same profile, tags, colour map), so
    ``finalize`` produces the same overviews and the same file.
    """
    create_scratch([layer], scratch_profile(profile))
    with rasterio.open(layer.scratch, "r+") as dst:
        for (y0, y1), part in zip(slices, parts):
            with rasterio.open(part) as src:
                if (src.width, src.height, src.count) != (dst.width, y1 - y0, dst.count):
                    raise InputError(f"{part.name}: {src.width} x {src.height} x {src.count}, "
                                     f"expected {dst.width} x {y1 - y0} x {dst.count}; delete {part.parent}")
                for r in range(0, y1 - y0, BLOCK):
                    n = min(BLOCK, y1 - y0 - r)
                    dst.write(src.read(window=Window(0, r, src.width, n)), window=Window(0, y0 + r, dst.width, n))
    return finalize(layer, compress=compress, dest=dest, co=co, pam_dest=pam_dest)


@run_scope()
@typed_arguments
def predict_slices(
    image: PathLike,
    out: PathLike,
    *,
    dsm: PathLike | None = None,
    model: Any = None,
    bands: list[int] | None = None,
    slice_rows: int = 4096,
    probabilities: PathLike | None = None,
    confidence: PathLike | None = None,
    compress: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    retries: int = 1,
    max_errors: int | None = None,
    progress: bool = True,
    allow_geographic_mix: bool = False,
    overwrite: bool = False,
    co: dict[str, str] | None = None,
    **predict_kwargs: Any,
) -> SlicesSummary:
    """``predict_raster`` for one scene, split into row slices of ``slice_rows`` run as separate jobs.

    ``scheduler``: ``None`` (in this process), ``"local"`` (a Dask LocalCluster of ``workers``
    processes) or a scheduler address. The outputs are identical to a single-process run.
    """
    image, out = Path(image), Path(out)
    for key in ("resume", "dry_run", "rows", "stats"):
        if predict_kwargs.get(key):
            raise InputError(f"--{key.replace('_', '-')} does not apply to a scene split into row slices")
        predict_kwargs.pop(key, None)
    problems = ProblemCollector()
    if not image.is_file():
        problems.add(f"{image}: no such file")
    if dsm is not None and not Path(dsm).is_file():
        problems.add(f"--dsm {dsm}: no such file")
    options = {**_PREDICT_DEFAULTS, **predict_kwargs}
    check_run_options(problems, compress=compress,
                      **{k: options[k] for k in ("blend", "crop", "overlap", "batch_size", "device", "window")})
    outputs = output_paths(out, probabilities, confidence, problems)
    for name, path in outputs.items():
        check_output_path(path, image, problems, name, overwrite=overwrite, inputs=(dsm,))
    compress = check_creation_options(co, problems, compress)
    problems.raise_if_any()
    loaded, chosen, _ = resolve_model(image, dsm, model, bands, allow_geographic_mix,
                                      pixel_grid=predict_kwargs.get("pixel_grid", False))
    predict_kwargs["window"], predict_kwargs["overlap"], _ = resolve_window(  # every slice on one grid
        loaded, options["window"], options["overlap"], options["crop"])
    options.update(window=predict_kwargs["window"], overlap=predict_kwargs["overlap"])
    with publish(list(outputs.values()), inputs=[image, dsm], overwrite=overwrite,
                 companions=[pam_path(outputs["classes"])]) as pub:
        return _predict_slices(image, out, pub, outputs, dsm, model, loaded, chosen, slice_rows, compress, co, scheduler,
                              workers, retries, max_errors, progress, allow_geographic_mix, predict_kwargs, options)


def _predict_slices(image, out, pub, outputs, dsm, model, loaded, chosen, slice_rows, compress, co, scheduler, workers,
                   retries, max_errors, progress, allow_geographic_mix, predict_kwargs, options) -> SlicesSummary:
    """The slice jobs and the assembly, inside the publication of ``outputs``."""
    with AlignedSource(image, dsm, bands=chosen, allow_geographic_mix=allow_geographic_mix,
                       pixel_grid=predict_kwargs.get("pixel_grid", False)) as src:
        check_model_input(src, loaded, image, dsm)
        stats = scene_stats(src, loaded)  # once per scene, shared by every slice
        profile, width, height = src.profile(), src.width, src.height
    row_slices = plan_row_slices(height, slice_rows)

    digest = params_hash({
        "image": file_fingerprint(image), "dsm": file_fingerprint(dsm), "bands": chosen,
        "model": model_digest(loaded), "slice_rows": slice_rows, "layers": sorted(outputs),
        "stats": [stats[0].mean, stats[0].std, stats[1].mean if stats[1] else None], **predict_kwargs,
    })
    parts = out.with_name(f".{out.name}.parts-{digest}")
    for stale in slice_parts(out):  # (escaped: an output named * matched all)
        if stale != parts:  # parts of a run with other inputs or parameters
            shutil.rmtree(stale, ignore_errors=True)
    parts.mkdir(parents=True, exist_ok=True)

    layer_names = tuple(name for name in LAYER_NAMES if name in outputs)
    jobs = [Job((image,), part_path(parts, i, "classes"), (("rows", rows), ("index", i)))
            for i, rows in enumerate(row_slices)]
    kwargs = {"model": _model_for_workers(model, loaded), "dsm": None if dsm is None else str(dsm), "bands": chosen,
              "stats": stats, "layers": layer_names, "compress": compress,
              "allow_geographic_mix": allow_geographic_mix, **predict_kwargs}
    start = time.perf_counter()
    workers = default_workers(scheduler, workers, predict_kwargs.get("device"))
    results = run_jobs(predict_slice_job, jobs, kwargs=kwargs, scheduler=scheduler, n_workers=workers,
                       retries=retries, max_errors=max_errors, progress=progress)
    computed = time.perf_counter()

    made_by = model_id(loaded, model_digest(loaded))
    makers = {"classes": lambda p: class_layer(p, loaded.classes, made_by),
              "probabilities": lambda p: probability_layer(p, loaded.classes, loaded.instance_channels, made_by),
              "confidence": lambda p: confidence_layer(p, loaded.num_classes, made_by)}
    for name in layer_names:
        layer = makers[name](outputs[name])
        assemble(layer, profile, row_slices, [part_path(parts, i, name) for i in range(len(row_slices))],
                 compress=compress, dest=pub[outputs[name]], co=co,
                 pam_dest=pub[pam_path(outputs[name])] if layer.companions else None)
        pub.remove_at_commit(*layer.scratch_files)
    pub.remove_at_commit(parts)
    grid = WindowGrid(width, height, options["window"], options["overlap"])
    return SlicesSummary(outputs, width, height, row_slices, results, window_ratio(grid, row_slices), computed - start,
                        time.perf_counter() - computed)
