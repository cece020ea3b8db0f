"""What a job needs on a worker: its torch threads and GPU, and one model instance per process.

A worker process loads each model once and keeps it for all the scenes it is given; on a
local cluster with several GPUs each worker takes its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

PathLike = str | os.PathLike[str]

# (model spec, input layout) -> (its file's identity, the loaded model), per worker process
_MODELS: dict[tuple, Any] = {}


def band_count(image: PathLike, kwargs: dict[str, Any]) -> int:
    """Bands the model will see: the selected ones, else all of the image's."""
    if kwargs.get("bands"):
        return len(kwargs["bands"])
    import rasterio

    with rasterio.open(image) as ds:
        return ds.count


def first_band_count(images: Iterable[PathLike], kwargs: dict[str, Any]) -> int:
    """:func:`band_count` of the first image that opens (3 when none does): what a batch's settings resolve
    against, the same whichever scene comes first; an unreadable scene is its own job's failure."""
    for image in images:
        try:
            return band_count(image, kwargs)
        except Exception:  # noqa: BLE001 - said by that scene's job
            continue
    return 3


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
    import logging

    from rsmamba.runlog import LOG_LEVEL_ENV, attach_stderr_handler

    level = os.environ.get(LOG_LEVEL_ENV, "")  # the CLI's -q/-v; a worker's warnings as its own: prefixed lines
    attach_stderr_handler(int(level) if level.lstrip("-").isdigit() else logging.INFO)
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


def _file_identity(spec: str | None) -> tuple | None:
    """What tells one checkpoint file from the next written at its path (a retrained ``best.pt``), cheaply: its
    device, inode, size and modification time; None for a spec that is no file (a shipped or registered model)."""
    try:
        st = os.stat(spec) if spec else None
    except (OSError, TypeError, ValueError):  # no file there, or a module given as the model
        return None
    return None if st is None else (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def cached_model(spec: str | None, loader, **key: Any):
    """One model instance per worker process, per spec and input layout, loaded again when the file at the spec's
    path is another one: a batch run in the caller's process (or a long-lived dask worker) kept the old weights
    after the checkpoint was replaced, and the batch record named the new file's digest."""
    cache_key = (spec, *sorted(key.items()))
    identity = _file_identity(spec)
    held = _MODELS.get(cache_key)
    if held is None or held[0] != identity:
        _MODELS[cache_key] = (identity, loader(spec, **key))
    return _MODELS[cache_key][1]
