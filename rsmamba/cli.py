"""The ``rsmamba`` command line: a thin layer over library functions that tests call directly.

Each verb parses its options and calls one function of the library; every user-facing
failure is an :class:`~rsmamba.errors.RsmambaError`, printed as one line with a non-zero exit.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional

import typer

from rsmamba.runlog import run_scope

from rsmamba import cli_options as opt
from rsmamba.cli_options import STATE, parse_float_list, parse_int_list
from rsmamba.errors import InputError, RsmambaError, environment_message, not_utf8_problem
from rsmamba.errors import one_line as _one_line

app = typer.Typer(
    name="rsmamba",
    cls=opt.VerbosityAnywhere,
    help="Geospatial mapping with Mamba networks: tile, train, evaluate, predict, change, vectorize.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _creation_options(items: Optional[List[str]]) -> Optional[dict]:
    """``--co KEY=VALUE`` (repeatable) -> {KEY: VALUE}, as GDAL's command-line tools take them."""
    if not items:
        return None
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--co {item!r}: use KEY=VALUE, e.g. --co LEVEL=9")
        name = key.strip().upper()
        if name in options and options[name].upper() != value.strip().upper():  # the last won, unsaid
            raise InputError(f"--co {name}={options[name]} and --co {item.strip()}: one option given twice; give it once")
        options[name] = value.strip()
    return options


def _preflight(inputs: dict[str, object], outputs: dict[str, object]) -> None:
    """Path checks that need no heavy import (torch takes seconds to load), all problems in one line.

    The library functions check their inputs the same way (:func:`rsmamba.paths.inputs_problems`); this only
    answers a user's typo fast.
    ``inputs``: role -> path (None or a pattern/template skipped); ``outputs``: role -> path.
    """
    from rsmamba.jobs import is_pattern, is_template
    from rsmamba.paths import inputs_problems, output_problem

    def plain(value: object) -> bool:
        text = str(value)
        return value is not None and not is_pattern(text) and not is_template(text)

    problems = inputs_problems({role: path for role, path in inputs.items() if plain(path)})
    sources = [path for path in inputs.values() if plain(path)]
    problems += [p for role, path in outputs.items() if path is not None and (p := output_problem(path, sources, role))]
    if problems:
        raise InputError(problems)


def _check_run_options(**options: object) -> None:
    """predict/change options that need no input (``rsmamba.engine.options``), before torch loads.

    First the OpenMP wait policy of an inference process (``passive_openmp_waits``): it only
    counts before torch loads, which checking ``--device cuda`` would do.
    """
    from rsmamba.errors import ProblemCollector
    from rsmamba.engine.options import check_run_options, passive_openmp_waits

    passive_openmp_waits()
    problems = ProblemCollector()
    device = "cpu" if options.get("device") == "auto" else options.get("device")  # auto: always a device (_device)
    check_run_options(problems, **{**options, "device": device})  # type: ignore[arg-type]
    problems.raise_if_any()


def _device(device: str) -> str:
    """``auto`` (predict's and change's default, as train's): a GPU when there is one. Torch loads here,
    after the inputs' one-line checks."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _not_done(results: list) -> str:
    """'2 already complete' (and ', 1 being made by another run': the same batch started twice shares it); before
    it, how many of those done were taken up where an interrupted run stopped (said only at INFO before, QA)."""
    elsewhere = sum(r.status == "elsewhere" for r in results)
    complete = sum(r.status not in ("done", "elsewhere") for r in results)
    taken_up = sum(r.status == "done" and r.taken_up for r in results)
    return ((f"{taken_up} of them taken up where an interrupted run stopped, " if taken_up else "")
            + f"{complete} already complete" + (f", {elsewhere} being made by another run" if elsewhere else ""))


def _ran_on(device: str, scheduler: Optional[str], done: int) -> str:
    """' on cuda' for a batch's summary, as one scene's names its device (``--device auto`` chose); a remote
    cluster's workers chose their own, and a batch that ran nothing ran nowhere."""
    return f" on {device}" if done and scheduler in (None, "local") else ""


def _model_path(model: Optional[str]) -> Optional[str]:
    """``--model`` when it names a file (a checkpoint), None for a registry name or the default."""
    if model is None:
        return None
    from rsmamba.paths import names_a_file

    return model if names_a_file(model) else None


def _batch_output(inputs: list[str], out: str, what: str, one_only: dict[str, object],
                  name_template: str | None = None) -> tuple[Path, bool, str | None]:
    """``-o`` of predict/change as a path, whether the run is a batch into that folder
    (:func:`rsmamba.jobs.is_batch`; a trailing slash makes it one too), and its name template.

    One scene and a new name without a suffix is refused, not taken as a folder: ``-o classes`` wrote
    ``classes/scene.tif``, and then refused ``--probabilities`` as 'one scene at a time' of the one scene given.
    ``one_only``: the options of a single-file run (option -> value), refused by name into a folder.
    One scene written into a batch run's folder (``-o tiles/scene2.tif``) is a batch of one named so: its
    settings and inputs are checked against the folder's record and recorded (tile0's map under tile2's name,
    or a map of other settings, was later skipped as complete by the batch)."""
    from rsmamba.jobs import batch_folder_of, is_batch, is_pattern

    path = Path(out)
    folder = out.endswith(("/", os.sep))
    one = (len({os.path.realpath(i) for i in inputs}) == 1  # as is_batch reads them
           and not is_pattern(inputs[0]) and not inputs[0].endswith(".txt"))
    if one and not folder and path.suffix == "" and not path.is_dir():
        raise InputError(f"-o {out}: one {what} writes one file: name it {out}.tif, or give a folder with a trailing "
                         f"slash ({out}/)")
    batch = folder or is_batch(inputs, path)
    given = [name for name, value in one_only.items() if value]
    if batch and one and given:
        raise InputError(f"{', '.join(given)}: for one {what} written to a file (-o NAME.tif); -o {out} is a folder")
    record = batch_folder_of(path) if not batch and one else None  # out/ or above: out/a/s.tif of a mirrored batch
    if record is not None:
        shown_folder = (path.parent if path.parent.resolve() == record.resolve()
                        else record if path.is_absolute() else Path(os.path.relpath(record)))
        if given or name_template is not None:
            shown = ", ".join(given + (["--name-template"] if name_template is not None else []))
            raise InputError(f"-o {out}: {shown_folder} is a batch run's folder, whose outputs are recorded with the "
                             f"batch's settings and inputs; {shown} {'is' if len(given) + bool(name_template) == 1 else 'are'} "
                             "for a file written elsewhere")
        name = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(record))).as_posix()  # a/s.tif
        return shown_folder, True, name
    return path, batch, name_template


def _show_version(value: bool) -> None:
    if value:
        from rsmamba import __version__

        typer.echo(f"rsmamba {__version__}")
        raise typer.Exit()


@app.callback()
def _group(
    ctx: typer.Context,
    verbose: int = opt.verbose_option(),
    quiet: int = opt.quiet_option(),
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                 callback=_show_version),
) -> None:
    """Geospatial mapping with Mamba networks: tile, train, evaluate, predict, change, vectorize."""
    import logging
    import os

    STATE.verbosity = verbose - quiet + ctx.meta.get("verbosity", 0)  # -v/-q after the verb count too
    logging.getLogger("rsmamba").setLevel(STATE.log_level)
    from rsmamba.runlog import LOG_LEVEL_ENV

    os.environ[LOG_LEVEL_ENV] = str(STATE.log_level)  # the dask local workers this run starts log at it too


@app.command()
def tile(
    image: Path = typer.Argument(..., help="Orthophoto / image GeoTIFF."),
    out_dir: Path = opt.out_option(..., "Output directory for chips and manifest."),
    dsm: Optional[Path] = typer.Option(None, "--dsm", help="DSM raster, warped onto the image grid."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Label raster, or vector layer (with --class-field)."),
    class_field: Optional[str] = typer.Option(None, "--class-field", help="Attribute holding the class id (or the class table's class name) in a label vector; default class."),
    labels_layer: Optional[str] = typer.Option(None, "--labels-layer", help="Layer of a label vector file that holds several (a GeoPackage)."),
    labels_t2_layer: Optional[str] = typer.Option(None, "--labels-t2-layer", help="Layer of the --labels-t2 vector file."),
    change_layer: Optional[str] = typer.Option(None, "--change-labels-layer", help="Layer of the --change-labels vector file."),
    instance_targets_layer: Optional[str] = typer.Option(None, "--instance-targets-layer", help="Layer of the --instance-targets footprint file."),
    background: Optional[int] = typer.Option(None, "--background", help="Class of pixels outside label-vector polygons (255 = ignore); default 0."),
    size: int = typer.Option(512, "--size", help="Chip size in pixels.", callback=opt.positive("--size")),
    overlap: int = typer.Option(0, "--overlap", help="Overlap between chips in pixels.", callback=opt.non_negative("--overlap")),
    min_valid: float = typer.Option(0.5, "--min-valid", help="Minimum fraction of valid (non-nodata) pixels in a chip.", callback=opt.fraction("--min-valid")),
    bands: Optional[str] = opt.bands_option("1-based image bands to keep, e.g. '3,2,1' (default: every band but an "
                                            "alpha band)."),
    split: str = typer.Option("0.8,0.1,0.1", "--split", help="train,val,test fractions of spatial blocks.", callback=opt.float_list("--split", count=3)),
    split_block: Optional[int] = typer.Option(None, "--split-block", help="Side in pixels of the spatial blocks the split assigns whole (default: 4 chips)."),
    old_block: Optional[int] = typer.Option(None, "--block", hidden=True, callback=opt.deprecated("--block", "--split-block")),
    seed: int = typer.Option(0, "--seed", help="Seed for the block split."),
    allow_geographic_mix: bool = typer.Option(False, "--allow-geographic-mix", help="Allow a geographic DSM/labels CRS with a projected image."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing non-empty output folder (default: refuse)."),
    t2: Optional[Path] = typer.Option(None, "--t2", help="Second epoch: chips become epoch pairs for change detection."),
    labels_t2: Optional[Path] = typer.Option(None, "--labels-t2", help="Labels of the second epoch (raster or vector)."),
    change_labels: Optional[Path] = typer.Option(None, "--change-labels", help="Binary change labels (raster or vector)."),
    old_change: Optional[Path] = typer.Option(None, "--change", hidden=True, callback=opt.deprecated("--change", "--change-labels")),
    burn: Optional[int] = typer.Option(None, "--burn", help="Every label polygon (or non-zero label pixel) is this class id; background 0. No class field needed."),
    burn_name: Optional[str] = typer.Option(None, "--burn-name", help="Name of the --burn class (without --class-table); default building."),
    class_table: Optional[Path] = typer.Option(None, "--class-table", help="Class table (YAML/JSON): ids, names, colours, ignore value."),
    instance_targets: Optional[Path] = typer.Option(None, "--instance-targets", help="Instance raster (building id per pixel) or footprint layer (each polygon one building): adds interior/border/contact target chips."),
    border_px: Optional[int] = typer.Option(None, "--border-px", help="Width of the border target in pixels; default 2.", callback=opt.positive("--border-px")),
    contact_px: Optional[int] = typer.Option(None, "--contact-px", help="Width of the contact target on each side of a party wall, in pixels; default 3.", callback=opt.positive("--contact-px")),
) -> None:
    """Cut an image (+ DSM, + labels) into georeferenced training chips and a manifest."""
    from rsmamba.tile import tile_scene

    band_list = parse_int_list(bands, "--bands", minimum=1)
    fractions = tuple(parse_float_list(split, "--split", count=3))
    summary = tile_scene(
        image, out_dir, dsm=dsm, labels=labels, class_field=class_field, label_background=background,
        labels_layer=labels_layer, labels_t2_layer=labels_t2_layer, change_layer=change_layer,
        instance_targets_layer=instance_targets_layer, size=size, overlap=overlap, min_valid=min_valid, bands=band_list, split=fractions, block=opt.either(split_block, old_block),
        seed=seed, allow_geographic_mix=allow_geographic_mix, overwrite=overwrite, progress=STATE.progress,
        t2=t2, labels_t2=labels_t2, change=opt.either(change_labels, old_change), burn=burn, burn_name=burn_name, class_table=class_table,
        instance_targets=instance_targets, border_px=border_px, contact_px=contact_px,
    )
    typer.echo(summary.describe())


@app.command()
def synth(
    ctx: typer.Context,
    out_dir: Path = opt.out_option(..., "Output directory."),
    size: Optional[int] = typer.Option(None, "--size", help="Scene width and height in pixels (about 100 bytes of memory per pixel: 1.7 GB at 4096); default 1024, with --layout 512.", callback=opt.positive("--size")),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    gsd: float = typer.Option(0.25, "--gsd", help="Ground sample distance in metres."),
    epsg: int = typer.Option(32632, "--epsg", help="Projected CRS of the scene."),
    bands: str = typer.Option("rgb", "--bands", help="Ortho bands: rgb, irrg (NIR,R,G) or rgbn."),
    nodata_collar: bool = typer.Option(False, "--nodata-collar", help="Rotated footprint with nodata corners."),
    dsm_gsd: Optional[float] = typer.Option(None, "--dsm-gsd", help="Write the DSMs on another grid (this GSD, shifted origin; equal to --gsd: the ortho's grid)."),
    origin: Optional[str] = typer.Option(None, "--origin", help="Top-left corner 'x,y' in the scene CRS."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (default: refuse)."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Instead: a tiny synthetic copy of a benchmark's folder layout (vaihingen, potsdam, loveda, second, landsat-scd); --size is the image size, at most 512 (default 512)."),
    terraced: float = typer.Option(0.0, "--terraced", help="Share of buildings in terraced rows / perimeter blocks of touching houses (0-1).", callback=opt.fraction("--terraced")),
    instances: bool = typer.Option(False, "--instances", help="Also write instances_t1/t2.tif: the building id of each pixel."),
    style: Optional[str] = typer.Option(None, "--style", help="Domain-randomised look 'FAMILY[:SEED]' (suburban, mediterranean, industrial, overcast; heldout-nordic for evaluation only); --gsd still sets the GSD. Default: the generator's own look."),
    ground_textures: bool = typer.Option(False, "--ground-textures", help="With --style (a training family): textured streets and meadows (pavers, slabs, grain, mowing bands, patchwork fields)."),
    world_features: bool = typer.Option(False, "--world-features", help="With --style: halls, a pond, parking lots, hipped roofs, dense cores and building lean, as the style draws them."),
) -> None:
    """Write a synthetic two-epoch aerial scene: orthos, DSMs and ISPRS-style labels."""
    from rsmamba.synth import DEFAULT_ORIGIN, write_scene

    if layout is not None:
        from rsmamba.synth.benchmarks import write_layout

        # given, not differing from the default: an explicit --gsd 0.25 or --bands rgb did nothing, unsaid
        scene_only = [param.opts[0] for param in ctx.command.params
                      if param.name not in ("out_dir", "size", "seed", "overwrite", "layout")
                      and opt.given(ctx, param.name)]
        if scene_only:  # a benchmark copy has its dataset's own bands, grid and looks: they would do nothing
            raise InputError(f"{', '.join(scene_only)}: {'options' if len(scene_only) > 1 else 'an option'} of a "
                             "synthetic scene; --layout writes a benchmark's "
                             "folder layout (only --size, --seed and --overwrite apply)")

        if size is not None and size > 512:  # an explicit 1024 was written as 512 px, silently
            raise InputError(f"--size {size}: a benchmark layout's images are at most 512 px")
        typer.echo(f"{layout}: {write_layout(layout, out_dir, size=size or 512, seed=seed, overwrite=overwrite)}")
        return
    size = size or 1024

    try:
        corner = tuple(float(v) for v in origin.split(",")) if origin else DEFAULT_ORIGIN
        assert len(corner) == 2
    except (ValueError, AssertionError):
        raise InputError(f"--origin must be 'x,y' (two finite numbers), got {origin!r}") from None
    drawn = None
    if (ground_textures or world_features) and style is None:
        raise InputError("--ground-textures and --world-features are part of a style: give --style FAMILY[:SEED] too")
    if style is not None:
        from rsmamba.synth.style import parse_style

        drawn = parse_style(style, gsd=gsd, ground=ground_textures, world=world_features)
    paths = write_scene(
        out_dir, size=size, seed=seed, gsd=gsd, epsg=epsg, origin=corner, bands=bands,
        nodata_collar=nodata_collar, dsm_gsd=dsm_gsd, progress=STATE.progress, overwrite=overwrite, style=drawn,
        terraced=terraced, instances=instances,
    )
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


@app.command()
def predict(
    images: List[str] = typer.Argument(..., help="Orthophoto GeoTIFF(s): paths, globs or @list.txt (then -o is a folder)."),
    out: str = opt.out_option(..., "Output class raster (COG), or a folder (a trailing slash: out/) for many inputs.", text=True),
    dsm: Optional[str] = typer.Option(None, "--dsm", help="DSM raster, warped onto the image grid; for many inputs a template such as {dir}/{stem}_dsm.tif."),
    model: Optional[str] = typer.Option(None, "--model", help="Checkpoint path, or a registered model name (untrained). Default: the shipped image-only model, or the image+DSM one with --dsm."),
    bands: Optional[str] = opt.bands_option(),
    window: Optional[int] = opt.window_option(),
    overlap: Optional[int] = opt.overlap_option(),
    blend: str = typer.Option("hann", "--blend", help="Window blending: none, mean, hann, gaussian or spline."),
    crop: int = typer.Option(0, "--crop", help="Pixels dropped at inner window borders (overlap >= 2 x crop).", callback=opt.non_negative("--crop")),
    tta: Optional[bool] = opt.tta_option(),
    tta_flip: bool = opt.tta_flip_option(),
    tta_rot180: bool = opt.tta_rot180_option(),
    tta_scales: Optional[str] = opt.tta_scales_option(),
    tta_recipe: bool = opt.tta_recipe_option(),
    batch_size: int = opt.batch_size_option(),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ..."),
    amp: bool = opt.amp_option(),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels_last memory format."),
    probabilities: Optional[Path] = typer.Option(None, "--probabilities", help="Also write per-class probabilities (uint8, p x 254)."),
    confidence: Optional[Path] = typer.Option(None, "--confidence", help="Also write the winning class probability (uint8, p x 254)."),
    compress: Optional[str] = opt.compress_option(),
    resume: bool = opt.resume_option(),
    dry_run: bool = opt.dry_run_option(),
    allow_geographic_mix: bool = typer.Option(False, "--allow-geographic-mix", help="Allow a geographic DSM with a projected image."),
    pixel_grid: bool = opt.pixel_grid_option(),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="'local' (a Dask LocalCluster) or a scheduler address: one task per scene, or per row slice of a single scene."),
    slice_rows: Optional[int] = typer.Option(None, "--slice-rows", help="One scene: rows per slice task (default 4096 with --scheduler); the result is a single-process run's at the workers' torch thread count (at another, a few probabilities differ by 1/254).", callback=opt.positive("--slice-rows")),
    old_band_rows: Optional[int] = typer.Option(None, "--band-rows", hidden=True, callback=opt.deprecated("--band-rows", "--slice-rows", opt.positive("--band-rows"))),
    workers: Optional[int] = typer.Option(None, "--workers", help="Workers of the local cluster (default 2; with --device cuda, one per GPU).", callback=opt.positive("--workers")),
    shard: Optional[str] = typer.Option(None, "--shard", help="Many inputs: take share i of n ('i/n'), e.g. a Slurm array index."),
    max_errors: Optional[int] = typer.Option(None, "--max-errors", help="Many inputs: failed scenes to tolerate; the next failure stops the run (0: the first does). Default: none stops it; every failure is listed at the end.", callback=opt.non_negative("--max-errors")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (default: refuse)."),
    co: Optional[List[str]] = typer.Option(None, "--co", metavar="KEY=VALUE", help="GDAL COG creation option KEY=VALUE (repeatable), e.g. --co LEVEL=9."),
    name_template: Optional[str] = typer.Option(None, "--name-template", help="Many inputs: output name in the folder, e.g. {parent}_{stem}.tif or {relparent}/{stem}.tif (fields stem, name, suffix, parent, relparent, index)."),
) -> None:
    """Sliding-window inference stitched into a georeferenced class raster (bounded memory)."""
    overlap = opt.window_overlap(window, overlap)
    _warn_workers_without_scheduler(workers, scheduler)
    tta = opt.tta_spec(tta, tta_flip, tta_scales, tta_recipe, tta_rot180)
    out, batch, name_template = _batch_output(images, out, "scene", {
        "--probabilities": probabilities, "--confidence": confidence, "--resume": resume, "--dry-run": dry_run},
        name_template)

    _check_run_options(blend=blend, crop=crop, overlap=overlap, batch_size=batch_size, device=device,
                       compress=compress, window=window)
    if not batch and dsm is not None:  # a DSM template fills in for one scene too ('{dir}/../dsm/{stem}.tif' was
        from rsmamba.jobs import resolve_template  # a file not found with -o FILE, found with -o FOLDER/; QA)

        dsm = str(resolve_template(dsm, Path(images[0]), "--dsm"))
    if not batch:
        _preflight({"image": images[0], "DSM": dsm, "model": _model_path(model)},
                   {"classes": out, "probabilities": probabilities, "confidence": confidence})
    from rsmamba.predict import predict_raster
    from rsmamba.predict.many import predict_many

    device = _device(device) if scheduler in (None, "local") else device  # a remote cluster's workers decide

    if batch:
        _PREDICT_RUN.append("batch")
        if opt.either(slice_rows, old_band_rows) is not None:
            raise InputError("--slice-rows splits one scene; with many inputs each scene is one job")
        results = predict_many(
            images, out, model=model, dsm_template=dsm, scheduler=scheduler, workers=workers, shard=shard,
            max_errors=max_errors, bands=parse_int_list(bands, "--bands", minimum=1), window=window,
            overlap=overlap, blend=blend, crop=crop, tta=tta, batch_size=batch_size, device=device, amp=amp,
            channels_last=channels_last, compress=compress, allow_geographic_mix=allow_geographic_mix,
            pixel_grid=pixel_grid, overwrite=overwrite, co=_creation_options(co), name_template=name_template, progress=STATE.progress,
            probabilities=probabilities, confidence=confidence, resume=resume, dry_run=dry_run,  # refused there
        )
        done = sum(r.status == "done" for r in results)
        typer.echo(f"{done} scene{'s' * (done != 1)} predicted{_ran_on(device, scheduler, done)}, "
                   f"{_not_done(results)}, into {out}")
        return
    in_parts = scheduler is not None or opt.either(slice_rows, old_band_rows) is not None
    given = [name for name, value in (("--shard", shard), ("--name-template", name_template),
                                      ("--max-errors", None if in_parts else max_errors)) if value is not None]
    if given:  # one scene runs whole: they would do nothing
        raise InputError(f"{', '.join(given)}: for many inputs (a pattern, a list, a folder -o); one scene is one job"
                         + ("; for one scene in parts use --scheduler with --slice-rows" if shard is not None else ""))
    slice_rows = opt.either(slice_rows, old_band_rows)
    if scheduler is not None or slice_rows is not None:
        from rsmamba.predict.slices import predict_slices

        _PREDICT_RUN.append("slices")  # a re-run keeps the finished ones (no --resume)

        summary = predict_slices(
            images[0], out, dsm=dsm, model=model, bands=parse_int_list(bands, "--bands", minimum=1),
            slice_rows=slice_rows or 4096, scheduler=scheduler, workers=workers, max_errors=max_errors,
            probabilities=probabilities, confidence=confidence, compress=compress,
            allow_geographic_mix=allow_geographic_mix, pixel_grid=pixel_grid, window=window, overlap=overlap,
            blend=blend, crop=crop,
            tta=tta, batch_size=batch_size, device=device, amp=amp, channels_last=channels_last,
            resume=resume, dry_run=dry_run, overwrite=overwrite, co=_creation_options(co),
            progress=STATE.progress and not dry_run,
        )
        typer.echo(summary.describe())
        return
    _PREDICT_RUN.append(Path(out))
    summary = predict_raster(
        images[0], out, dsm=dsm, model=model, bands=parse_int_list(bands, "--bands", minimum=1),
        window=window, overlap=overlap, blend=blend, crop=crop, tta=tta, batch_size=batch_size, device=device,
        amp=amp, channels_last=channels_last, probabilities=probabilities, confidence=confidence,
        compress=compress, resume=resume, dry_run=dry_run, progress=STATE.progress and not dry_run,
        allow_geographic_mix=allow_geographic_mix, pixel_grid=pixel_grid, overwrite=overwrite,
        co=_creation_options(co),
    )
    typer.echo(summary.describe())


@app.command()
def change(
    t1: str = typer.Argument(..., help="Epoch 1 image (its grid is the output grid); or a glob / @list.txt of them (then -o is a folder)."),
    t2: str = typer.Argument(..., help="Epoch 2 image (warped onto epoch 1's grid when they differ); a glob / @list paired in order, or a template such as {dir}/../2023/{name}."),
    out: str = opt.out_option(..., "Output change raster (COG), or a folder (a trailing slash: out/) for many pairs.", text=True),
    model: Optional[str] = typer.Option(None, "--model", help="Change checkpoint or registered change model; default: the shipped change model."),
    semantic: bool = typer.Option(False, "--semantic", help="Also write from/to classes (bands 2 and 3)."),
    probabilities: Optional[Path] = typer.Option(None, "--probabilities", help="Also write p(change) as uint8 (x/254)."),
    old_probability: Optional[Path] = typer.Option(None, "--probability", hidden=True, callback=opt.deprecated("--probability", "--probabilities")),
    bands: Optional[str] = opt.bands_option("1-based bands to read from both epochs, e.g. '1,2,3'."),
    window: Optional[int] = opt.window_option(),
    overlap: Optional[int] = opt.overlap_option(),
    blend: str = typer.Option("hann", "--blend", help="Window blending: none, mean, hann, gaussian or spline."),
    tta: Optional[bool] = opt.tta_option(),
    tta_rot180: bool = opt.tta_rot180_option("the shipped change model's change masks sit 0.2-1.0 px south-east without TTA"),
    batch_size: int = opt.batch_size_option(),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ..."),
    amp: bool = opt.amp_option(),
    compress: Optional[str] = opt.compress_option(),
    resume: bool = opt.resume_option(),
    dry_run: bool = opt.dry_run_option(),
    max_shift: float = typer.Option(3.0, "--max-shift", help="Refuse epochs shifted by more than this many pixels."),
    allow_geographic_mix: bool = typer.Option(False, "--allow-geographic-mix", help="Allow one epoch in a geographic CRS, the other projected (t2 warped onto t1's grid)."),
    pixel_grid: bool = opt.pixel_grid_option(),
    force: bool = typer.Option(False, "--force", help="Run even when the epochs are shifted beyond --max-shift."),
    epoch_norm: str = typer.Option("per-epoch", "--epoch-norm", help="per-epoch: each date by its own statistics; checkpoint: the training statistics."),
    class_pairs: str = typer.Option("consistent", "--class-pairs", help="With --semantic: consistent (a changed pixel's two classes differ, an unchanged one's agree) or per-date (each date's own argmax, as the papers and train --test)."),
    change_threshold: Optional[float] = typer.Option(None, "--change-threshold", help="Change where the blended p(change) exceeds this (0-1); default: the model's calibrated threshold, else 0.5."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Many pairs: 'local' (a Dask LocalCluster) or a scheduler address."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Workers of the local cluster (default 2; with --device cuda, one per GPU).", callback=opt.positive("--workers")),
    shard: Optional[str] = typer.Option(None, "--shard", help="Many pairs: take share i of n ('i/n'), e.g. a Slurm array index."),
    max_errors: Optional[int] = typer.Option(None, "--max-errors", help="Many pairs: failed pairs to tolerate; the next failure stops the run (0: the first does). Default: none stops it; every failure is listed at the end.", callback=opt.non_negative("--max-errors")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (default: refuse)."),
    co: Optional[List[str]] = typer.Option(None, "--co", metavar="KEY=VALUE", help="GDAL COG creation option KEY=VALUE (repeatable), e.g. --co LEVEL=9."),
    name_template: Optional[str] = typer.Option(None, "--name-template", help="Many pairs: output name in the folder, e.g. {parent}_{stem}.tif or {relparent}/{stem}.tif (fields stem, name, suffix, parent, relparent, index)."),
) -> None:
    """Bi-temporal (semantic) change detection into a change raster; polygons via 'rsmamba vectorize'."""
    overlap = opt.window_overlap(window, overlap)
    tta = opt.tta_spec(tta, flip=False, scales=None, recipe=False, rot180=tta_rot180)  # change has D4 and rot180 only
    out, batch, name_template = _batch_output([t1], out, "pair", {
        "--probabilities": opt.either(probabilities, old_probability), "--resume": resume, "--dry-run": dry_run},
        name_template)

    _check_run_options(blend=blend, crop=0, overlap=overlap, batch_size=batch_size, device=device,
                       compress=compress, window=window, change_threshold=change_threshold, max_shift=max_shift)
    if not batch:
        _preflight({"t1": t1, "t2": t2, "model": _model_path(model)}, {"change": out, "probabilities": opt.either(probabilities, old_probability)})
    from rsmamba.change import detect_change
    from rsmamba.change.many import change_many
    from rsmamba.jobs import is_template, pair_inputs

    device = _device(device) if scheduler in (None, "local") else device  # a remote cluster's workers decide

    _warn_workers_without_scheduler(workers, scheduler)  # and runs, as predict does
    if batch:
        _PREDICT_RUN.append("batch")
        results = change_many(
            t1, t2, out, model=model, scheduler=scheduler, workers=workers, shard=shard, max_errors=max_errors,
            semantic=semantic, probabilities=opt.either(probabilities, old_probability), bands=parse_int_list(bands, "--bands", minimum=1),
            window=window, overlap=overlap, blend=blend, batch_size=batch_size, device=device, max_shift=max_shift,
            force=force, epoch_norm=epoch_norm, change_threshold=change_threshold, tta=tta, amp=amp, compress=compress,
            class_pairs=class_pairs, allow_geographic_mix=allow_geographic_mix, pixel_grid=pixel_grid,
            progress=STATE.progress, overwrite=overwrite, co=_creation_options(co), name_template=name_template,
            resume=resume, dry_run=dry_run,  # one pair at a time: refused there
        )
        done = sum(r.status == "done" for r in results)
        typer.echo(f"{done} pair{'s' * (done != 1)} compared{_ran_on(device, scheduler, done)}, "
                   f"{_not_done(results)}, into {out}")
        return
    given = [name for name, value in (("--shard", shard), ("--scheduler", scheduler), ("--name-template", name_template),
                                      ("--max-errors", max_errors)) if value is not None]
    if given:  # one pair runs in this process, whole: they would do nothing
        raise InputError(f"{', '.join(given)}: for many pairs (a pattern, a list, a folder -o); one pair is one job")
    t1_path, t2_path = Path(t1), Path(t2)
    if is_template(t2):  # a template, filled from t1's name (an existing 't2 {v2}.tif' is that file)
        (t1_path,), (t2_path,) = pair_inputs(t1, t2)
    _PREDICT_RUN.append(Path(out))
    summary = detect_change(
        t1_path, t2_path, out, model=model, semantic=semantic, probabilities=opt.either(probabilities, old_probability),
        bands=parse_int_list(bands, "--bands", minimum=1), window=window, overlap=overlap,
        blend=blend, batch_size=batch_size, device=device, max_shift=max_shift, force=force,
        progress=STATE.progress and not dry_run, epoch_norm=epoch_norm, change_threshold=change_threshold, tta=tta,
        class_pairs=class_pairs,
        amp=amp, compress=compress, resume=resume, dry_run=dry_run, overwrite=overwrite, co=_creation_options(co),
        allow_geographic_mix=allow_geographic_mix, pixel_grid=pixel_grid,
    )
    typer.echo(summary.describe())


@app.command()
def vectorize(
    raster: List[str] = typer.Argument(..., help="Class raster(s) (from predict) or change raster(s) (from change): paths, globs or @list.txt; several on one grid make one layer."),
    output: Optional[Path] = opt.out_option(None, "Output layer: .gpkg, .geojson, .parquet or .fgb (default: RASTER with .gpkg; required for several rasters)."),
    classes: Optional[List[str]] = typer.Option(None, "--classes", help="Class names or ids to keep (repeat or comma-separate); default all."),
    min_area: Optional[str] = typer.Option(None, "--min-area", help="Drop polygons smaller than this, e.g. 4m2. Default: none dropped; for a change raster of a calibrated change model, the area recorded with it."),
    simplify: Optional[str] = typer.Option(None, "--simplify", help="Simplify the outlines to this tolerance, e.g. 0.5m; a border two polygons share stays shared."),
    regularize: bool = typer.Option(False, "--regularize", help="Orthogonalise outlines (buildings): right angles."),
    allow_45: bool = typer.Option(False, "--allow-45", help="With --regularize, also allow 45 degree edges."),
    fill_holes: Optional[str] = typer.Option(None, "--fill-holes", help="Fill holes smaller than this, e.g. 2m2; polygons that lay in them are absorbed, and pixel_count counts the hole's pixels."),
    output_format: Optional[str] = typer.Option(None, "--format", help="gpkg, geojson, parquet or fgb (default: from the suffix)."),
    probabilities: Optional[Path] = typer.Option(None, "--probabilities", help="The class raster's probabilities (predict --probabilities or --confidence): mean/max per polygon."),
    reproject: Optional[str] = typer.Option(None, "--reproject", help="Projected CRS to measure and write in (required for a geographic raster); GeoJSON is written in WGS 84 (RFC 7946), measured in it."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="Model id attribute (default: the raster's model_id tag)."),
    change: Optional[bool] = typer.Option(None, "--change/--no-change", help="Read RASTER as a change raster (default: when band 1's description is 'change')."),
    block_size: Optional[int] = typer.Option(None, "--block-size", help="Side in pixels of the blocks read at a time (memory bound; default 2048).", callback=opt.positive("--block-size")),
    old_block: Optional[int] = typer.Option(None, "--block", hidden=True, callback=opt.deprecated("--block", "--block-size", opt.positive("--block"))),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output (GeoPackage: only the layer written)."),
    layer: Optional[str] = typer.Option(None, "--layer", help="GeoPackage layer name (default: the file's stem); other layers are kept."),
    append: bool = typer.Option(False, "--append", help="Add the polygons to an existing GeoPackage layer."),
    instances: bool = typer.Option(False, "--instances", help="Split building regions into individual buildings along the predicted contacts (needs --probabilities with p(interior)/p(contact) bands)."),
    seed_threshold: Optional[float] = typer.Option(None, "--seed-threshold", help="With --instances: p(interior) a watershed seed needs (0-1], default 0.5."),
    min_seed: Optional[str] = typer.Option(None, "--min-seed", help="With --instances: drop watershed seeds smaller than this area, e.g. 4m2 (the default)."),
) -> None:
    """Class or change rasters to GIS polygon layers; scenes of one grid merge into one layer across their borders."""
    from rsmamba.vectorize import vectorize_many
    from rsmamba.vectorize.many import resolve_rasters

    rasters = resolve_rasters(raster)
    if output is None and len(rasters) > 1:
        raise InputError(f"{len(rasters)} rasters make one layer: name it with -o, e.g. -o map.gpkg")
    summary = vectorize_many(
        rasters, output or rasters[0].with_suffix(".gpkg"), classes=classes, min_area=min_area, simplify=simplify, regularize=regularize,
        allow_45=allow_45, fill_holes=fill_holes, output_format=output_format, probabilities=probabilities,
        reproject_to=reproject, model_id=model_id, change=change, block_size=opt.either(block_size, old_block, 2048), progress=STATE.progress,
        overwrite=overwrite, layer=layer, append=append,
        instances=instances, seed_threshold=seed_threshold, min_seed=min_seed,
    )
    typer.echo(summary.describe())


@app.command()
def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training config (YAML), or a shipped recipe name (e.g. mafmamba_vaihingen)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key, e.g. optim.lr=0.001 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/last.pt (model, optimiser, RNG, epoch)."),
    resume_from: Optional[Path] = typer.Option(None, "--resume-from", help="Continue from this checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in an out folder that holds a previous run (default: refuse)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved recipe, steps per epoch and estimated memory; train nothing."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from this checkpoint's weights ('demo' = the shipped image+DSM demo model, 'demo-change' = the change one): bands adapted, head re-initialised when the classes differ."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (train.device; default auto)."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision on a GPU (train.amp; default on)."),
    out: Optional[Path] = opt.out_option(None, "Run folder (the config's out:, as --set out=DIR)."),
    test: Optional[Path] = typer.Option(None, "--test", help="Train nothing: score this rsmamba checkpoint on data.val_split (e.g. --set data.val_split=test) as the recipe evaluates; writes <out>/test_<split>.json (--overwrite replaces it). It must fit the config's model, bands and classes as it is; not with --init, --resume or --dry-run."),
) -> None:
    """Train a model from a config file (under torchrun: DistributedDataParallel)."""
    from rsmamba.train.config import load_config

    import json

    if out is not None and any(s.partition("=")[0].strip() == "out" for s in set_ or []):
        raise InputError("-o and --set out=: give the run folder once")
    if out is not None:
        from rsmamba.paths import output_problem

        problem = output_problem(out, role="-o", directory=True)  # a file above it: [Errno 17] File exists
        if problem:
            raise InputError(problem)
    # quoted: a folder named 2024, yes or 'exp #2' is a name, not YAML's number, boolean or comment
    set_ = list(set_ or []) + ([f"out={json.dumps(str(out), ensure_ascii=False)}"] if out is not None else [])
    last = Path(load_config(config, set_)["out"]) / "last.pt"  # config problems in one line before torch loads
    from rsmamba.train import train as run_training

    if init is not None:
        set_.append(f"model.init={init}")
    if device is not None:
        set_.append(f"train.device={device}")
    if amp is not None:
        set_.append(f"train.amp={str(amp).lower()}")

    if resume and resume_from is not None:  # (--resume-from won, unsaid)
        raise InputError("--resume continues <out>/last.pt, --resume-from the checkpoint it names: give one")
    if resume and overwrite:  # the run in the folder is continued: nothing of it is overwritten (said nowhere)
        raise InputError("--overwrite starts over in a folder that holds a run; --resume continues that run: "
                         "give one")
    if test is not None:
        if init is not None or resume or resume_from is not None or dry_run:
            raise InputError("--test scores a checkpoint: it takes no --init, --resume, --resume-from or --dry-run")
        from rsmamba.train import score_checkpoint

        result = score_checkpoint(config, set_, checkpoint=test, progress=STATE.progress, overwrite=overwrite)
        scores = {k: v for k, v in result["scores"].items() if isinstance(v, float)}
        typer.echo(f"{result['split']} ({result['samples']} samples, model {result['model']}): "
                   + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()) + f"  -> {result['path']}")
        return
    if dry_run:
        from rsmamba.train.plan import plan_training

        typer.echo(plan_training(config, list(set_ or [])).describe())
        return
    from rsmamba.atomic import file_identity

    before = file_identity(last)
    try:
        result = run_training(config, list(set_ or []), resume=resume_from or resume, progress=STATE.progress,
                              overwrite=overwrite)
    except KeyboardInterrupt:  # published atomically: a new last.pt is a checkpoint of this run, to --resume
        _TRAIN_SAVED.append(file_identity(last) != before)
        raise
    typer.echo(result.describe())


@app.command("import-weights")
def import_weights(
    weights: Path = typer.Argument(..., help="The authors' weights file (.pth, .pt, .ckpt, .safetensors): a state dict, bare or under state_dict / model (an EMA copy alone: model_ema / state_dict_ema), with module. / net. / model. prefixes. Read without running code in it (a file that needs to unpickle objects is refused)."),
    config: str = typer.Option(..., "--config", "-c", help="The recipe the weights were trained for (a shipped recipe name, e.g. mambafcs_second, or a YAML): model, classes, bands and normalisation."),
    out: Path = opt.out_option(..., "The rsmamba checkpoint to write (predict --model, change --model, train --init)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a recipe key, e.g. 'data.mean=[0,0,0]' (repeatable). Where the recipe normalises by the training data's statistics (data.mean / data.std null: the ISPRS recipes of CMT-UNet, MAFMamba, MambaSeg) give the ones the authors' inference used: the file does not hold them and no default would be theirs, so the command refuses without them."),
    dsm_stats: Optional[str] = typer.Option(None, "--dsm-stats", help="MEAN,STD of the DSM the weights were trained on: needed where the recipe z-scores the DSM (MambaSeg's), for the same reason.", callback=opt.float_list("--dsm-stats", count=2)),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output (default: refuse)."),
) -> None:
    """Make the authors' published full-model weights an rsmamba checkpoint (strict: every tensor fits or none is written)."""
    from rsmamba.train.authors import import_weights as run_import

    stats = parse_float_list(dsm_stats, "--dsm-stats", count=2)
    report = run_import(weights, config, out, list(set_ or []), dsm_stats=tuple(stats) if stats else None,
                        overwrite=overwrite)
    typer.echo(report.describe())


@app.command()
def evaluate(
    prediction: Path = typer.Argument(..., help="Predicted class raster."),
    reference: Path = typer.Argument(..., help="Reference class raster, or vector layer with --class-field."),
    out: Path = opt.out_option(..., "Metrics JSON (CSV and PNGs are written beside it)."),
    class_field: Optional[str] = typer.Option(None, "--class-field", help="Attribute holding the class id (or the prediction's class name) in a reference vector; default class."),
    reference_layer: Optional[str] = typer.Option(None, "--reference-layer", help="Layer of a reference vector file that holds several (a GeoPackage)."),
    buildings_layer: Optional[str] = typer.Option(None, "--buildings-layer", help="Layer of the --buildings file."),
    footprints_layer: Optional[str] = typer.Option(None, "--footprints-layer", help="Layer of the --footprints file."),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="Class ids left out of the means, e.g. '5' (Clutter).", callback=opt.int_list("--exclude", minimum=0)),
    erode: int = typer.Option(0, "--erode", help="Ignore pixels within this radius (pixels) of reference boundaries (with --reference-t2: of either date's, for every score).", callback=opt.non_negative("--erode")),
    buildings: Optional[Path] = typer.Option(None, "--buildings", help="Reference building polygons: object F1 at IoU 0.5."),
    building_class: Optional[int] = typer.Option(None, "--building-class", help="Building class id in the prediction (default: its class named building)."),
    image: Optional[Path] = typer.Option(None, "--image", help="Image for the prediction/label/image panels."),
    min_object_pixels: int = typer.Option(0, "--min-object-pixels", help="Drop predicted building objects smaller than this.", callback=opt.non_negative("--min-object-pixels")),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs (default: refuse)."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Read REFERENCE as a benchmark label file: isprs (colours; Clutter excluded), loveda, second, landsat-scd (land cover of the changed pixels only; with --reference-t2 the benchmark's scores)."),
    burn: Optional[int] = typer.Option(None, "--burn", help="Vector REFERENCE: every polygon is this class, elsewhere background 0 (as 'tile --burn')."),
    background: Optional[int] = typer.Option(None, "--background", help="Vector REFERENCE: the class of the pixels outside its polygons (as 'tile --background': 255 = not scored, the default)."),
    footprints: Optional[Path] = typer.Option(None, "--footprints", help="Predicted building polygons (e.g. vectorize --instances), each one building: scored per building against --buildings."),
    reference_t2: Optional[Path] = typer.Option(None, "--reference-t2", help="Semantic change: REFERENCE is the t1 land cover, this the t2 one (SECOND label1/label2 with --layout); PREDICTION is 'change --semantic' output (its class_names tag, or --layout, gives the classes). Adds SeK, Fscd, mIoU, score."),
    block_size: Optional[int] = typer.Option(None, "--block-size", help="Side in pixels of the blocks read at a time (memory bound; default 1024; the scores are the same whatever it is).", callback=opt.positive("--block-size")),
) -> None:
    """Score a prediction raster against a reference."""
    _preflight({"prediction": prediction, "reference": reference, "buildings": buildings, "image": image,
                "footprints": footprints, "reference t2": reference_t2}, {"-o": out})
    from rsmamba.evaluate import evaluate_rasters

    excluded = parse_int_list(exclude, "--exclude", minimum=0) or []
    result = evaluate_rasters(prediction, reference, out, class_field=class_field, exclude=excluded, erode=erode,
                              buildings=buildings, building_class=building_class, image=image,
                              min_object_pixels=min_object_pixels, overwrite=overwrite, layout=layout, burn=burn,
                              background=background, footprints=footprints, reference_layer=reference_layer,
                              buildings_layer=buildings_layer, footprints_layer=footprints_layer,
                              reference_t2=reference_t2, **({"block_size": block_size} if block_size else {}))
    def score(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"  # 0/0: nothing to average, predict or find

    line = f"mIoU {score(result['miou'])}  mF1 {score(result['mf1'])}  OA {result['oa']:.4f}  kappa {score(result['kappa'])}"
    left_out = result["conventions"]["excluded_from_means"]
    if left_out:  # --layout isprs leaves clutter out as the papers do: said where the numbers are read
        line += f"  (means without {', '.join(map(str, left_out))})"
    change = result["per_class"].get("change") if set(result["per_class"]) == {"no_change", "change"} else None
    if change:  # a change raster: the change class's scores, as CD papers report (n/a where nothing changed)
        line = (f"change F1 {score(change['f1'])}  IoU {score(change['iou'])}  precision {score(change['precision'])}  "
                f"recall {score(change['recall'])}  OA {result['oa']:.4f}  kappa {score(result['kappa'])}")
    if "semantic_change" in result:
        sc = result["semantic_change"]
        line += (f"  SeK {score(sc['sek'])}  Fscd {score(sc['fscd'])}  SCD mIoU {score(sc['miou'])}  "
                 f"score {score(sc['score'])}")
    if "buildings" in result:
        b = result["buildings"]
        line += f"  building F1@0.5 {score(b['f1'])} (merged {b['merged']}, split {b['split']})"
    said = len(result.get("warnings", []))  # they bear on reading the scores (a reference coded otherwise): said beside them
    eroded = result["conventions"].get("eroded_boundary_radius")  # the ISPRS convention: said where numbers are read
    scored = "both valid" + (f", {eroded} px of each class boundary left out" if eroded else "")
    typer.echo(f"{line}  ({result['pixels']:,} px scored: {scored}, on the prediction's grid)"
               + (f"  ({said} warning{'s' * (said != 1)} above, also in {out})" if said else ""))


@app.command()
def models(
    params: bool = typer.Option(
        False, "--params", help="Count at the papers' presets and show the papers' own counts ('-' where a paper "
        "gives none: a note gives the authors' code's)."),
) -> None:
    """List the registered models with parameter counts, inputs and tasks.

    Counts: all parameters, and thop-style ones (the modules of a type thop has a rule for, run or not; thop.profile counts only those that run).
    """
    from rsmamba.models.listing import format_rows, model_rows

    typer.echo(format_rows(model_rows(paper=params)))


def _setup_logging() -> None:
    """Warnings from the library (e.g. 'DSM resampled onto the image grid') as one line each on stderr."""
    import logging
    import warnings

    # rasterio warns, as a two-line Python warning, on opening a raster without a geotransform; every verb
    # that needs one says so itself in its one error line (evaluate of two such rasters on one grid is fine)
    warnings.filterwarnings("ignore", message="Dataset has no geotransform", module="rasterio")

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        """A library's Python warning (numpy, GDAL, geopandas) as one log line, not two lines of source."""
        text = (str(message).strip().splitlines() or [category.__name__])[0]
        logging.getLogger("rsmamba").warning(f"{text} ({category.__name__})")

    warnings.showwarning = one_line
    from rsmamba.runlog import attach_stderr_handler

    attach_stderr_handler(logging.INFO)


# Click's exception classes, by name: typer <= 0.15 raises click's own, typer >= 0.16 its bundled copy
# (typer._click.exceptions), whose classes are not subclasses of click's. Matching the class names
# along the MRO, limited to these two modules, catches both without importing either.
_CLICK_MODULES = ("click.exceptions", "typer._click.exceptions")


def _click_kind(exc: BaseException) -> str | None:
    """'UsageError', 'ClickException', 'Exit' or 'Abort' when ``exc`` is one of click's; else None."""
    for cls in type(exc).__mro__:
        if cls.__module__ in _CLICK_MODULES and cls.__name__ in ("UsageError", "ClickException", "Exit", "Abort"):
            return cls.__name__
    return None


def _usage_line(exc: BaseException, argv: list[str] | None = None) -> str:
    """Click's message, plus where to look for help, on one line (click prints usage + hint + error).

    An error of the parser itself (an option missing its value) comes without a context: the verb's help is
    found from ``argv``, as for the verb's other usage errors."""
    message = _one_line(exc.format_message())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    verb = _verb(argv)
    if getattr(exc, "option_name", None) == "--version" and verb:  # it said "Possible options: --overwrite"
        return "rsmamba: error: --version is an option of rsmamba itself, before the verb: rsmamba --version"
    path = ctx.command_path if ctx is not None else f"rsmamba {verb}" if verb else "rsmamba"
    return f"rsmamba: error: {message} (see '{path} --help')"


def _verb(argv: list[str] | None = None) -> str | None:
    """The verb of the command line (``predict``), or None."""
    verbs = set(getattr(_command(), "commands", {}))
    return next((a for a in (sys.argv[1:] if argv is None else argv) if a in verbs), None)


def _environment_error(exc: BaseException, argv: list[str] | None = None) -> str | None:
    """``rsmamba: error: ...`` for errors of the user's files or machine (:func:`environment_message`)."""
    text = environment_message(exc, _verb(argv))
    return None if text is None else f"rsmamba: error: {text}"


def _warn_workers_without_scheduler(workers: int | None, scheduler: str | None) -> None:
    if workers is not None and scheduler is None:  # else ignored without a word
        logging.getLogger("rsmamba").warning(
            "--workers %d: the workers of --scheduler local; without --scheduler everything runs in this process",
            workers)


def _command():
    """The click command of ``app``, with no value hint on flags and counters: typer shows ``-v <int>``
    and ``--overwrite <bool>``, which read as options taking a value (``-v 2``, ``--overwrite true``)."""
    if not isinstance(app, typer.Typer):  # a stand-in (tests): called as it is
        return app
    command = typer.main.get_command(app)
    for cmd in [command, *getattr(command, "commands", {}).values()]:
        # --help is made (and cached) on first use, outside cmd.params: made here, so it is a flag too
        help_option = cmd.get_help_option(cmd.context_class(cmd))
        for param in [*cmd.params, *([help_option] if help_option is not None else [])]:
            # typer's own (vendored) click classes: by what they are, not their type
            if getattr(param, "param_type_name", "") == "option" and (param.is_flag or param.count):
                param.metavar = ""
    return command


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: the one error boundary of the CLI.

    Every user mistake ends here as one line on stderr: an :class:`RsmambaError` (``InputError``:
    exit 2), a usage error of click or typer's bundled click (exit 2), an OSError or a GDAL/OGR
    I/O error (exit 2). Help and ``--version`` exit 0. Other exceptions are bugs: traceback, exit 1.
    """
    _setup_logging()
    previous = _terminate_like_interrupt()
    _TERMINATED.clear()
    _TRAIN_SAVED.clear()
    _PREDICT_RUN.clear()
    bad = [p for p in map(not_utf8_problem, sys.argv[1:] if argv is None else list(argv)) if p]
    if bad:  # an argument in another encoding: a UnicodeEncodeError deep in a run, else
        typer.echo(f"rsmamba: error: {bad[0]}", err=True)
        return 2
    try:
        with run_scope():  # the command is one run: its warnings shown once, whatever it calls
            result = _command()(args=argv, standalone_mode=False, prog_name="rsmamba")
        if result == 130:  # typer turns Ctrl-C (and SIGTERM, below) into exit 130, silently
            return _interrupted(argv)
    except SystemExit as exc:  # click's and rich's answer to a closed stdout: exit 1, silently
        if _broken_pipe(exc):
            return _stdout_closed()
        raise
    except RsmambaError as exc:
        typer.echo(f"rsmamba: error: {_one_line(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted(argv)
    except Exception as exc:
        kind = _click_kind(exc)
        if kind == "Exit":
            return int(getattr(exc, "exit_code", 0) or 0)
        if kind == "Abort":
            typer.echo("rsmamba: aborted", err=True)
            return 1
        if kind == "UsageError":
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare 'rsmamba': the help, as asked
                exc.show()  # type: ignore[attr-defined]
                return 0
            typer.echo(_usage_line(exc, argv), err=True)
            return 2
        if kind == "ClickException":
            typer.echo(f"rsmamba: error: {_one_line(exc.format_message())}", err=True)  # type: ignore[attr-defined]
            return int(getattr(exc, "exit_code", 1) or 1)
        if _broken_pipe(exc):
            return _stdout_closed()
        line = _environment_error(exc, argv)
        if line is None or STATE.verbosity > 0:  # -v: the traceback, for a bug report
            raise
        typer.echo(line, err=True)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return result if isinstance(result, int) else 0


def _broken_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` is (or was raised while handling) a write to a closed pipe: ``rsmamba predict --help | head -3``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _stdout_closed() -> int:
    """Exit as a Unix tool whose reader stopped reading does (killed by SIGPIPE: 128 + 13), without a word; stdout
    goes to /dev/null so the interpreter's last flush does not print 'Exception ignored ... BrokenPipeError'."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real stdout (a test's capture): nothing to flush there
        pass
    return 128 + int(signal.SIGPIPE)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``kill``): unwinds like Ctrl-C, so locks and temporary files
    are cleaned up and a prediction's resume state is kept."""


_TERMINATED: list[int] = []  # the SIGTERMs this run took (typer hides which interrupt ended it)
_TRAIN_SAVED: list[bool] = []  # an interrupted train: whether it had saved a checkpoint (last.pt) yet
# what an interrupted predict or change ran: "batch" (many scenes; they refuse --resume), "slices" (one scene in
# row slices), or one scene's output (its resume state, if any, is beside it)
_PREDICT_RUN: list[str | Path] = []


def _raise_terminated(signum: int, frame: object) -> None:
    if _TERMINATED:  # a second SIGTERM: the first's unwinding was swallowed (raised inside a C library's callback,
        # GDAL's log handler, and the run went on) or takes too long; the default action ends the process now
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    _TERMINATED.append(signum)
    raise Terminated()


def _terminate_like_interrupt() -> object | None:
    """Route SIGTERM through :class:`Terminated` while the CLI runs; the handler it replaced, or None
    when it left it alone (not the main thread, or someone else's handler is installed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _interrupted(argv: list[str] | None = None) -> int:
    """One line for Ctrl-C (exit 130) or SIGTERM (exit 143), as a shell reports them; predict and change
    say how to go on (one scene keeps its resume state; a batch, which refuses --resume, skips its finished
    scenes when run again and takes up the interrupted one), and train too: --resume if it has a checkpoint to continue (it resumed one, or
    saved one), else the same command again."""
    given = sys.argv[1:] if argv is None else argv
    args = [a for a in given if not a.startswith("-")]
    verb = args[0] if args else ""
    resumable = any(_TRAIN_SAVED) or any(a.split("=")[0] in ("--resume", "--resume-from") for a in given)
    from rsmamba.atomic import resume_sidecar_path  # (no torch: a Ctrl-C may land while torch loads)

    run = _PREDICT_RUN[-1] if _PREDICT_RUN else None
    if verb in ("predict", "change"):
        # (--overwrite computes every scene again; without it, those the stopped run had not reached are recomputed)
        again = ("without --resume, which is for one scene, and without --overwrite, which computes every scene again"
                 if "--overwrite" in given else "without --resume, which is for one scene")
        after = (f"; run the same command again ({again}): it skips the finished scenes, takes up an interrupted one "
                 "where it stopped and computes the others"
                 if run == "batch"
                 else "; run the same command again: it keeps the finished row slices" if run == "slices"
                 else "; the same command with --resume continues it"
                 if isinstance(run, Path) and resume_sidecar_path(run).exists()
                 else "; nothing was kept to resume yet: run the same command again (without --resume)")
    elif verb == "train":
        after = ("; the same command with --resume continues it" if resumable
                 else "; no epoch had finished, nothing was saved: run the same command again (without --resume)")
    else:
        after = ""
    if _TERMINATED:
        typer.echo(f"rsmamba: terminated (SIGTERM){after}", err=True)
        return 143
    typer.echo(f"rsmamba: interrupted{after}", err=True)
    return 130


if __name__ == "__main__":
    sys.exit(main())
