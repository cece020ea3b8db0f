"""``change`` over many epoch pairs (paths, globs, @lists, a t2 template), here or on Dask: see :mod:`rsmamba.jobs`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmamba.change.api import ChangeSummary, change_threshold_of, detect_change, load_change_model
from rsmamba.engine.model import resolved_settings
from rsmamba.engine.resume import IF_INTERRUPTED
from rsmamba.errors import InputError
from rsmamba.jobs import (
    JobResult, band_count, cached_model, first_band_count, keyword_defaults, pair_inputs, plan_pair_jobs, run_many,
    setup_worker,
)

__all__ = ["change_job", "change_many"]

PathLike = str | os.PathLike[str]


def change_job(t1: Path, t2: Path, out: Path, *, model: str | None = None, **kwargs: Any) -> ChangeSummary:
    """One epoch pair on a worker: the model is loaded once per process and reused."""
    kwargs = setup_worker(kwargs)
    loaded = cached_model(model, load_change_model, image_count=band_count(t1, kwargs))
    return detect_change(t1, t2, out, model=loaded, **kwargs)


def change_many(
    t1: PathLike | Sequence[PathLike],
    t2: PathLike | Sequence[PathLike],
    out_dir: PathLike,
    *,
    model: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    shard: str | None = None,
    max_errors: int | None = None,
    retries: int = 1,
    progress: bool = True,
    name_template: str | None = None,
    **change_kwargs: Any,
) -> list[JobResult]:
    """``detect_change`` for every (t1, t2) pair into ``out_dir`` (one ``<t1 stem>.tif`` each).

    ``t1``/``t2``: paths, globs or @lists paired in order, or for ``t2`` a template such as
    ``"{dir}/../2023/{name}"`` (see :func:`rsmamba.jobs.pair_inputs`).
    """
    one_pair = [f"--{k.replace('_', '-')}" for k in ("probabilities", "resume", "dry_run") if change_kwargs.get(k)]
    if one_pair:
        raise InputError(f"{', '.join(one_pair)}: work{'s' * (len(one_pair) == 1)} on one epoch pair at a time")
    for key in ("probabilities", "resume", "dry_run"):  # unset: not settings of the outputs
        change_kwargs.pop(key, None)
    jobs = plan_pair_jobs(*pair_inputs(t1, t2), Path(out_dir), template=name_template)
    kwargs = {"model": model, **change_kwargs}
    # the model every job runs, loaded without depending on which scene comes first: a failure is the batch's
    loaded = load_change_model(model, image_count=first_band_count((job.inputs[0] for job in jobs), change_kwargs))
    settings = {**resolved_settings(loaded, kwargs),
                "change_threshold": _threshold_setting(loaded, change_kwargs.get("change_threshold"))}
    # one scene after another in this process: each shows its own bar under the jobs bar (not a setting)
    # and a scene an interrupted run of these settings left half done is taken up where it stopped (not a setting)
    kwargs = {**kwargs, "progress": progress and scheduler is None, "resume": IF_INTERRUPTED}
    return run_many(change_job, jobs, out_dir, kwargs=kwargs, scheduler=scheduler, workers=workers, shard=shard,
                    max_errors=max_errors, retries=retries, progress=progress, settings=settings,
                    defaults=keyword_defaults(detect_change))


def _threshold_setting(model: Any, given: float | None) -> float | None:
    """``--change-threshold`` as a folder records it: None (the model's own) when it equals the one the model takes."""
    if given is None:
        return None
    try:
        own, _ = change_threshold_of(model, None)
    except InputError:  # a bad calibrated threshold: the given one replaces it
        return given
    return None if float(given) == own else given
