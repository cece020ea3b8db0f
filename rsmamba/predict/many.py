"""``predict`` over many scenes (paths, globs, @lists), here or on Dask: see :mod:`rsmamba.jobs`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rsmamba.errors import InputError
from rsmamba.jobs import (
    JobResult, band_count, cached_model, check_templates, expand_inputs, first_band_count, keyword_defaults, plan_jobs,
    resolve_template, run_many, select_shard,
)
from rsmamba.jobs import setup_worker
from rsmamba.engine.resume import IF_INTERRUPTED
from rsmamba.predict.api import PredictSummary, predict_raster
from rsmamba.engine.model import load_model, resolved_settings

__all__ = ["predict_job", "predict_many"]

PathLike = str | os.PathLike[str]


def predict_job(image: Path, out: Path, *, model: str | None = None, dsm_template: str | None = None,
                **kwargs: Any) -> PredictSummary:
    """One scene on a worker: the model is loaded once per process and reused."""
    kwargs = setup_worker(kwargs)
    dsm = resolve_template(dsm_template, Path(image), "--dsm")
    loaded = cached_model(model, load_model, image_count=band_count(image, kwargs), has_dsm=dsm is not None)
    return predict_raster(image, out, dsm=dsm, model=loaded, **kwargs)


def predict_many(
    inputs: Sequence[PathLike],
    out_dir: PathLike,
    *,
    model: str | None = None,
    dsm_template: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    shard: str | None = None,
    max_errors: int | None = None,
    retries: int = 1,
    progress: bool = True,
    name_template: str | None = None,
    **predict_kwargs: Any,
) -> list[JobResult]:
    """``predict_raster`` for every input into ``out_dir`` (one ``<stem>.tif`` each, or ``name_template``).

    Existing outputs are complete (published whole), so they are skipped; ``overwrite=True``
    recomputes them.
    """
    one_scene = [f"--{k.replace('_', '-')}" for k in ("probabilities", "confidence", "resume", "dry_run")
                 if predict_kwargs.get(k)]
    if one_scene:
        raise InputError(f"{', '.join(one_scene)}: work{'s' * (len(one_scene) == 1)} on one scene at a time")
    for key in ("probabilities", "confidence", "resume", "dry_run"):  # unset: not settings of the outputs
        predict_kwargs.pop(key, None)
    jobs = plan_jobs(expand_inputs([str(i) for i in inputs]), Path(out_dir), template=name_template)
    if dsm_template is not None:  # each map is recorded as made from its ortho and its DSM
        jobs = [replace(job, reads=(resolve_template(dsm_template, job.inputs[0], "--dsm"),)) for job in jobs]
    if max_errors is None:  # with --max-errors a missing DSM is one failed scene among those tolerated
        mine = [job for job in select_shard(jobs, shard) if predict_kwargs.get("overwrite") or not job.is_complete()]
        check_templates(dsm_template, [job.inputs[0] for job in mine], "DSM")
    kwargs = {"model": model, "dsm_template": dsm_template, **predict_kwargs}
    loaded = load_model(model, image_count=first_band_count((job.inputs[0] for job in jobs), predict_kwargs),
                        has_dsm=dsm_template is not None)  # the model every job runs: a failure is the batch's
    settings = resolved_settings(loaded, kwargs)
    # one scene after another in this process: each shows its own bar under the jobs bar (not a setting)
    # and a scene an interrupted run of these settings left half done is taken up where it stopped (not a setting)
    kwargs = {**kwargs, "progress": progress and scheduler is None, "resume": IF_INTERRUPTED}
    return run_many(predict_job, jobs, out_dir, kwargs=kwargs, scheduler=scheduler, workers=workers, shard=shard,
                    max_errors=max_errors, retries=retries, progress=progress, settings=settings,
                    defaults=keyword_defaults(predict_raster))
