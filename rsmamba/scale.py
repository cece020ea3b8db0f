"""Many scenes per command: ``predict``/``change`` over paths, globs and file lists, locally or on Dask.

Each input becomes one job writing one output in the output folder (complete outputs are
skipped, so re-runs are idempotent). Jobs run in-process, on a :class:`dask.distributed.LocalCluster`
(``scheduler="local"``) or on an existing scheduler (its address); ``shard="i/n"`` picks a
disjoint share for schedulers outside Dask (Slurm arrays, Kubernetes indexed jobs). A worker
process loads each model once and keeps it for all the scenes it is given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rsmamba.batch import expand_inputs, plan_jobs, plan_pair_jobs, select_shard
from rsmamba.distributed import JobResult, run_jobs
from rsmamba.errors import InputError

PathLike = str | os.PathLike[str]

# model spec -> loaded model, per worker process (one model instance per worker)
_MODELS: dict[tuple, Any] = {}


def is_batch(inputs: Sequence[str], out: PathLike) -> bool:
    """A batch run: several inputs, a pattern or list, or an output that is a folder."""
    import glob

    out = Path(out)
    return (len(inputs) > 1 or any(glob.has_magic(i) or i.startswith("@") or i.endswith(".txt") for i in inputs)
            or out.is_dir() or out.suffix == "")


def resolve_template(template: str | None, image: Path) -> Path | None:
    """``{stem}``, ``{name}`` and ``{dir}`` (the image's folder) in a per-scene path, e.g. ``{dir}/{stem}_dsm.tif``."""
    if template is None:
        return None
    return Path(template.format(stem=image.stem, name=image.name, dir=str(image.parent)))


def _band_count(image: PathLike, kwargs: dict[str, Any]) -> int:
    """Bands the model will see: the selected ones, else all of the image's."""
    if kwargs.get("bands"):
        return len(kwargs["bands"])
    import rasterio

    with rasterio.open(image) as ds:
        return ds.count


def _cached_model(spec: str | None, loader, **key: Any):
    cache_key = (spec, *sorted(key.items()))
    if cache_key not in _MODELS:
        _MODELS[cache_key] = loader(spec, **key)
    return _MODELS[cache_key]


def predict_job(image: Path, out: Path, *, model: str | None = None, dsm_template: str | None = None,
                **kwargs: Any) -> None:
    """One scene on a worker: the model is loaded once per process and reused."""
    from rsmamba.predict import predict_raster
    from rsmamba.predict.model import load_model

    dsm = resolve_template(dsm_template, Path(image))
    loaded = _cached_model(model, load_model, image_count=_band_count(image, kwargs), has_dsm=dsm is not None)
    predict_raster(image, out, dsm=dsm, model=loaded, **kwargs)


def change_job(t1: Path, t2: Path, out: Path, *, model: str | None = None, **kwargs: Any) -> None:
    from rsmamba.change import detect_change, load_change_model

    loaded = _cached_model(model, load_change_model, image_count=_band_count(t1, kwargs))
    detect_change(t1, t2, out, model=loaded, **kwargs)


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
    **predict_kwargs: Any,
) -> list[JobResult]:
    """``predict_raster`` for every input into ``out_dir`` (one ``<stem>.tif`` each)."""
    if any(k in predict_kwargs for k in ("probabilities", "confidence", "resume", "dry_run")):
        raise InputError("--probabilities, --confidence, --resume and --dry-run work on one scene at a time")
    jobs = select_shard(plan_jobs(expand_inputs([str(i) for i in inputs]), Path(out_dir)), shard)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    kwargs = {"model": model, "dsm_template": dsm_template, **predict_kwargs}
    return run_jobs(predict_job, jobs, kwargs=kwargs, scheduler=scheduler, n_workers=workers, retries=retries,
                    max_errors=max_errors, progress=progress)


def change_many(
    t1: Sequence[PathLike],
    t2: Sequence[PathLike],
    out_dir: PathLike,
    *,
    model: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    shard: str | None = None,
    max_errors: int | None = None,
    retries: int = 1,
    progress: bool = True,
    **change_kwargs: Any,
) -> list[JobResult]:
    """``detect_change`` for every (t1, t2) pair, paired in order, into ``out_dir``."""
    jobs = plan_pair_jobs(expand_inputs([str(i) for i in t1]), expand_inputs([str(i) for i in t2]), Path(out_dir))
    jobs = select_shard(jobs, shard)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return run_jobs(change_job, jobs, kwargs={"model": model, **change_kwargs}, scheduler=scheduler,
                    n_workers=workers, retries=retries, max_errors=max_errors, progress=progress)
