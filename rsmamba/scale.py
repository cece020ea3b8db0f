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


def band_count(image: PathLike, kwargs: dict[str, Any]) -> int:
    """Bands the model will see: the selected ones, else all of the image's."""
    if kwargs.get("bands"):
        return len(kwargs["bands"])
    import rasterio

    with rasterio.open(image) as ds:
        return ds.count


def _current_worker():
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None  # not on a Dask worker


def worker_device(device: str, worker_name: object, gpu_count: int) -> str:
    """``cuda`` on a local cluster's worker ``i`` (named by its index) -> ``cuda:i mod gpus``.

    One worker per GPU, each with its own model instance; workers started by hand (named by
    address) usually see one GPU each through ``CUDA_VISIBLE_DEVICES`` and keep ``cuda``.
    """
    if device == "cuda" and gpu_count > 1 and isinstance(worker_name, int):
        return f"cuda:{worker_name % gpu_count}"
    return device


def setup_worker(kwargs: dict[str, Any]) -> dict[str, Any]:
    """On a Dask worker: torch threads as the cluster meant them, and this worker's GPU.

    Worker tasks run on an executor thread, where torch starts with one intra-op thread
    whatever ``OMP_NUM_THREADS`` says; a local cluster sets that variable to its share of the
    cores (``worker_thread_env``), an external one to what its operator chose. Off a worker the
    caller's settings are left alone.
    """
    worker = _current_worker()
    if worker is None:
        return kwargs
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    if "device" in kwargs:
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        kwargs = {**kwargs, "device": worker_device(kwargs["device"], worker.name, gpus)}
    return kwargs


def default_workers(scheduler: str | None, workers: int | None, device: str | None) -> int | None:
    """A local cluster on GPUs: one worker per visible GPU unless told otherwise."""
    if scheduler == "local" and workers is None and device is not None and device.startswith("cuda"):
        import torch

        return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else None
    return workers


def cached_model(spec: str | None, loader, **key: Any):
    """One model instance per worker process, per spec and input layout."""
    cache_key = (spec, *sorted(key.items()))
    if cache_key not in _MODELS:
        _MODELS[cache_key] = loader(spec, **key)
    return _MODELS[cache_key]


def predict_job(image: Path, out: Path, *, model: str | None = None, dsm_template: str | None = None,
                **kwargs: Any) -> None:
    """One scene on a worker: the model is loaded once per process and reused."""
    from rsmamba.predict import predict_raster
    from rsmamba.predict.model import load_model

    kwargs = setup_worker(kwargs)
    dsm = resolve_template(dsm_template, Path(image))
    loaded = cached_model(model, load_model, image_count=band_count(image, kwargs), has_dsm=dsm is not None)
    predict_raster(image, out, dsm=dsm, model=loaded, **kwargs)


def change_job(t1: Path, t2: Path, out: Path, *, model: str | None = None, **kwargs: Any) -> None:
    from rsmamba.change import detect_change, load_change_model

    kwargs = setup_worker(kwargs)
    loaded = cached_model(model, load_change_model, image_count=band_count(t1, kwargs))
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
    name_template: str | None = None,
    **predict_kwargs: Any,
) -> list[JobResult]:
    """``predict_raster`` for every input into ``out_dir`` (one ``<stem>.tif`` each, or ``name_template``).

    Existing outputs are complete (published whole), so they are skipped; ``overwrite=True``
    recomputes them.
    """
    if any(k in predict_kwargs for k in ("probabilities", "confidence", "resume", "dry_run")):
        raise InputError("--probabilities, --confidence, --resume and --dry-run work on one scene at a time")
    jobs = select_shard(plan_jobs(expand_inputs([str(i) for i in inputs]), Path(out_dir), template=name_template),
                        shard)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    kwargs = {"model": model, "dsm_template": dsm_template, **predict_kwargs}
    workers = default_workers(scheduler, workers, predict_kwargs.get("device"))
    return run_jobs(predict_job, jobs, kwargs=kwargs, scheduler=scheduler, n_workers=workers, retries=retries,
                    max_errors=max_errors, progress=progress, skip_complete=not predict_kwargs.get("overwrite"))


def pair_inputs(t1: PathLike | Sequence[PathLike], t2: PathLike | Sequence[PathLike]) -> tuple[list[Path], list[Path]]:
    """Epoch-1 and epoch-2 paths, paired in order; a t2 containing ``{`` is a template filled from each t1.

    A template (``{stem}``, ``{name}``, ``{dir}``) pairs by name rather than by sort order, so a
    missing or extra scene cannot shift every later pair; every missing t2 is reported at once.
    """
    t1_items = [t1] if isinstance(t1, (str, os.PathLike)) else list(t1)
    t2_items = [t2] if isinstance(t2, (str, os.PathLike)) else list(t2)
    t1_paths = expand_inputs([str(i) for i in t1_items])
    if len(t2_items) == 1 and "{" in str(t2_items[0]):
        template = str(t2_items[0])
        try:
            t2_paths = [resolve_template(template, p) for p in t1_paths]
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"t2 template {template!r}: use {{stem}}, {{name}} or {{dir}} ({exc})") from None
        missing = [f"{b} (for {a.name})" for a, b in zip(t1_paths, t2_paths) if not b.exists()]
        if missing:
            more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            raise InputError(f"t2 not found: {', '.join(missing[:5])}{more}")
        return t1_paths, t2_paths
    return t1_paths, expand_inputs([str(i) for i in t2_items])


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
    ``"{dir}/../2023/{name}"`` (see :func:`pair_inputs`).
    """
    if change_kwargs.get("probability") is not None:
        raise InputError("--probability works on one epoch pair at a time")
    jobs = select_shard(plan_pair_jobs(*pair_inputs(t1, t2), Path(out_dir), template=name_template), shard)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    workers = default_workers(scheduler, workers, change_kwargs.get("device"))
    return run_jobs(change_job, jobs, kwargs={"model": model, **change_kwargs}, scheduler=scheduler,
                    n_workers=workers, retries=retries, max_errors=max_errors, progress=progress,
                    skip_complete=not change_kwargs.get("overwrite"))
