"""The checkpoint format: everything predict needs, in one file.

A checkpoint is a ``torch.save``-d dict::

    {
      "format": "rsmamba-checkpoint/1",
      "model": "mambaseg_tiny",          # registry name
      "model_kwargs": {...},             # overrides passed to create_model (in_chans, num_classes, ...)
      "state_dict": {...},
      "bands": {"image": [1, 2, 3], "dsm": True,    # 1-based image bands read; whether a DSM is needed
                "colours": ["nir", "red", "green"],  # optional: the bands' colours (chips: as tiled; benchmarks: as
                "declared": ["red", "green", "blue"]},  # published), and what a benchmark's files declare instead
      "normalization": {"image": {"mean": [...], "std": [...]},
                        "dsm": {"mode": "zscore"|"minmax-window"|"minmax-scene"|"ground-relative", "mean": m, "std": s}},
      "classes": [{"id": 0, "name": "impervious", "color": [255, 255, 255]}, ...],
      "config": {...}, "metrics": {...}, "created": "ISO time", "rsmamba_version": "0.1.0",
      "calibration": {"change_threshold": 0.35,         # optional, change models: p(change) above it is change;
                      "min_area_m2": 48, ...},          # smaller change polygons are dropped by vectorize
      "inference": {"window": 128, "overlap": 32},      # optional: predict's / change's window when none is given
      "data_fingerprint": {"sha256": "...", ...},       # optional: what --resume checks the chips (or a layout's files) by
      "imported": {"source": "x.pth", "mapped": [...]},  # optional: import-weights' record of the authors' file
      "land_cover_trained": False,                      # optional, change models: whether their land-cover heads
                                                        # saw labels (False: change --semantic refuses the model)
    }
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import torch

from rsmamba.atomic import OutputError, atomic_output, is_disk_full, no_room, settle_inputs
from rsmamba.errors import InputError

FORMAT = "rsmamba-checkpoint/1"
REQUIRED = ("model", "model_kwargs", "state_dict", "bands", "normalization", "classes")


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically after checking it holds what predict needs."""
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise ValueError(f"checkpoint is missing {', '.join(missing)}")
    from rsmamba import __version__

    data = {"format": FORMAT, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "rsmamba_version": __version__, **_plain(_compact(payload))}
    try:
        with atomic_output(path) as tmp:
            torch.save(data, tmp)
    except (OSError, RuntimeError) as exc:  # torch says a full disk as 'unexpected pos 845376 vs 845272'
        if is_disk_full(exc) or no_room(path):
            raise OutputError(f"no space left on device while writing {path}") from None
        raise
    return Path(path)


def _compact(value: Any) -> Any:
    """Tensors that view part of a larger storage as copies of their own values, through dicts, lists and
    tuples: torch.save writes a tensor's whole storage, so a 2.3 MB state dict with one tensor slicing a 40 MB
    buffer (an authors' file, a fused weight split in views) made a 42 MB checkpoint."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_compact(v) for v in value)
    if (isinstance(value, torch.Tensor) and value.layout == torch.strided and not value.is_meta
            and value.untyped_storage().nbytes() > value.numel() * value.element_size()):
        return value.clone(memory_format=torch.contiguous_format)
    return value


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers, through dicts, lists and tuples (tensors untouched): the
    safe loader refuses a checkpoint holding them, so one float64 mean made a run's own best.pt unreadable."""
    import numpy as np

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _numpy_allow_list() -> list[Any]:
    """numpy's array reconstruction: the RNG state of training checkpoints written before states were
    saved as plain values (``_rng_state``). Exactly these globals; numpy lives under ``_core`` from 2.0."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


# What the keys predict/change/train read must hold; a checkpoint that fails is refused in one line.
_KEY_TYPES: dict[str, type | tuple[type, ...]] = {
    "model": str, "model_kwargs": dict, "state_dict": dict, "bands": dict, "normalization": (dict, type(None)),
    "classes": list,
}


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint safely (no code in it runs) and check its format and keys, one-line errors else."""
    from rsmamba.models.weights import load_weights_file

    path = Path(path)
    if not path.is_file():
        from rsmamba.paths import input_problem

        raise InputError(f"{path}: checkpoint not found" if not path.exists()
                         else input_problem(path, "checkpoint") or f"checkpoint {path}: not a regular file")
    settle_inputs([path])  # a training epoch a kill left between its renames: its best.pt finished, not the old
    data = load_weights_file(path, "checkpoint", allow=_numpy_allow_list())
    found = data.get("format") if isinstance(data, dict) else None
    if isinstance(found, str) and found.startswith(FORMAT.rsplit("/", 1)[0] + "/") and found != FORMAT:
        raise InputError(f"{path}: checkpoint format {found}, this rsmamba reads {FORMAT}; "
                         "load it with the rsmamba version that wrote it (or a newer one)")
    if not isinstance(data, dict) or found != FORMAT:
        weights = isinstance(data, dict) and bool(data) and (
            all(isinstance(v, torch.Tensor) for v in data.values())
            or any(isinstance(v, dict) and v and all(isinstance(t, torch.Tensor) for t in v.values())
                   for v in data.values()))
        raise InputError(f"{path}: not an rsmamba checkpoint (expected format {FORMAT})"
                         + ("; it holds bare weights (the authors' released weights?): make them a checkpoint with "
                            f"rsmamba import-weights {path} -c RECIPE -o model.pt" if weights else ""))
    missing = [key for key in REQUIRED if key not in data]
    wrong = [key for key, kind in _KEY_TYPES.items() if key in data and not isinstance(data[key], kind)]
    if missing or wrong:
        what = [f"missing {', '.join(missing)}"] if missing else []
        what += [f"{', '.join(wrong)} of the wrong type"] if wrong else []
        raise InputError(f"{path}: incomplete rsmamba checkpoint ({'; '.join(what)})")
    if not all(isinstance(v, torch.Tensor) for v in data["state_dict"].values()):
        raise InputError(f"{path}: incomplete rsmamba checkpoint (state_dict holds non-tensors)")
    bad = [c for c in data["classes"] if not (isinstance(c, dict) and isinstance(c.get("id"), int)
                                               and isinstance(c.get("name"), str))]
    if bad:
        raise InputError(f"{path}: incomplete rsmamba checkpoint (classes need an integer id and a name; {bad[0]!r})")
    return data


def state_dict_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """What keeps ``state`` from loading strictly into ``model``, said in one line, or None."""
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in target.items()
              if k in state and state[k].shape != v.shape]
    # a float parameter stored as integers: load_state_dict casts it without a word (an all-zero change map);
    # half precision is the same weights, rounded
    types = [f"{k} {str(state[k].dtype).removeprefix('torch.')} vs {str(v.dtype).removeprefix('torch.')}"
             for k, v in target.items() if k in state and isinstance(state[k], torch.Tensor)
             and v.is_floating_point() and not state[k].is_floating_point()]

    def few(items: list[str]) -> str:
        return ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")

    parts = [f"{len(missing)} missing ({few(missing)})"] if missing else []
    parts += [f"{len(unexpected)} unexpected ({few(unexpected)})"] if unexpected else []
    parts += [f"{len(shapes)} of other shapes (checkpoint vs model: {few(shapes)})"] if shapes else []
    parts += [f"{len(types)} not floating point (checkpoint vs model: {few(types)})"] if types else []
    return "; ".join(parts) or None


def check_finite(path: str | os.PathLike[str], state_dict: dict) -> None:
    """Refuse weights holding NaN or inf: a diverged run's, with which every pixel is class 0 (predict) or
    every loss NaN from the first step (an --init), without a word."""
    empty = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.is_meta]
    if empty:  # saved from a model built on the meta device, or an offloaded save: shapes without values
        raise InputError(f"{path}: {len(empty)} tensor{'s' * (len(empty) != 1)} hold no values (meta device: "
                         f"{empty[0]}, ...); save the weights of a model that holds them")
    bad = [k for k, v in state_dict.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise InputError(f"{path}: {len(bad)} weight tensor{'s' * (len(bad) != 1)} hold NaN or inf ({bad[0]}, ...): "
                         "the training that wrote it diverged; use an earlier checkpoint")


def legacy_model_kwargs(ckpt: dict) -> dict:
    """Structure options that a checkpoint of an older rsmamba implies and does not record, so it loads as it
    was trained: MAFMamba's refinement head normalised after its pointwise convolution until 2026-12-05."""
    state = ckpt.get("state_dict") or {}
    weight = state.get("frh.proj.1.weight")
    if str(ckpt.get("model", "")).startswith("mafmamba") and getattr(weight, "ndim", 0) == 4 \
            and "frh_norm" not in (ckpt.get("model_kwargs") or {}):
        return {"frh_norm": "after"}
    return {}


def build_from_checkpoint(path: str | os.PathLike[str], tasks: tuple[str, ...], verb: str):
    """(checkpoint dict, ModelInfo, module with the weights loaded) for a model of one of ``tasks``.

    ``verb`` names the command in the error when the checkpoint holds another kind of model.
    """
    from rsmamba.models import create_model, model_info

    ckpt = load_checkpoint(path)
    info = model_info(ckpt["model"])
    if info.task not in tasks:
        raise InputError(f"{path}: a {info.task} model; {verb} needs a {' or '.join(tasks)} model")
    kwargs = {**ckpt["model_kwargs"], **legacy_model_kwargs(ckpt)}
    try:
        # first without memory (the meta device): model_kwargs of in_chans 1e7 or num_classes 1e9 had 16 or 64 GB
        # allocated before the weights were compared, and the failure blamed --window (QA)
        with torch.device("meta"):
            shaped = create_model(ckpt["model"], **kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: model_kwargs do not fit model {ckpt['model']!r} ({exc})") from exc
    except Exception:  # noqa: BLE001 - a layer that cannot be built without memory: compared once built, as before
        shaped = None
    mismatch = state_dict_mismatch(shaped, ckpt["state_dict"]) if shaped is not None else None
    if mismatch:
        raise InputError(f"{path}: weights do not fit model {ckpt['model']!r} with its model_kwargs: {mismatch}")
    try:
        module = create_model(ckpt["model"], **kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: model_kwargs do not fit model {ckpt['model']!r} ({exc})") from exc
    mismatch = state_dict_mismatch(module, ckpt["state_dict"])
    if mismatch:
        raise InputError(f"{path}: weights do not fit model {ckpt['model']!r}: {mismatch}")
    check_finite(path, ckpt["state_dict"])
    module.load_state_dict(ckpt["state_dict"])
    heads = ckpt["model_kwargs"].get("num_classes")  # a segmentation head: the classes, then instance channels
    wanted = len(ckpt["classes"]) + len((ckpt.get("instances") or {}).get("channels") or ())
    if info.task == "segmentation" and isinstance(heads, int) and heads != wanted:  # else a broadcast error mid-run
        raise InputError(f"{path}: the model has {heads} outputs, its class table names {len(ckpt['classes'])} "
                         f"classes (+ {wanted - len(ckpt['classes'])} instance channels)")
    return ckpt, info, module
