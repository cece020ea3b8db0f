"""``rsmamba train --dry-run``: the resolved recipe, steps per epoch and an estimated memory use.

Memory is estimated, not guessed: parameters (weights, gradients, optimiser state) by count, and
activations by running one forward/backward on a small probe crop and summing the tensors autograd
saves, scaled to the recipe's crop and per-process batch (activations grow with pixels).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import yaml

from rsmamba.datasets.chips import describe_roots
from rsmamba.engine.run import process_rss_bytes
from rsmamba.models import model_info
from rsmamba.train.config import load_config, schedule_warnings
from rsmamba.train.init import set_frozen
from rsmamba.train.trainer import (blame_model_kwargs, build_model, param_groups, pick_device, prepare, segment,
                                   steps_per_epoch, unread_by_chips)

log = logging.getLogger(__name__)

OPTIMISER_STATE_BYTES = {"adamw": 8, "adam": 8, "sgd": 4}  # per fp32 parameter


@dataclass
class TrainPlan:
    config: dict
    train_samples: int
    val_samples: int
    steps_per_epoch: int
    total_steps: int
    crop: tuple[int, int]
    parameters: int
    parameter_bytes: int
    activation_bytes: int
    process_bytes: int = 0  # this process's resident set with the model and data open (0: not readable here)

    @property
    def memory_bytes(self) -> int:
        """A floor: the weights are in ``process_bytes``; their gradients and optimiser state, and the tensors
        saved for the backward pass, come on top. It printed 34 MiB (parameters and saved tensors alone) for a
        run that peaked at 656 MiB."""
        weights = self.parameters * 4 if self.process_bytes else 0
        return self.process_bytes + self.parameter_bytes - weights + self.activation_bytes

    def describe(self) -> str:
        def size(n: int) -> str:
            return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"

        return "\n".join([
            yaml.safe_dump(self.config, sort_keys=False).rstrip(),
            "---",
            f"training samples {self.train_samples} (crops of {self.crop[0]}x{self.crop[1]} px), "
            f"validation samples {self.val_samples}",
            f"steps per epoch {self.steps_per_epoch} at batch {self.config['data']['batch_size']}; "
            f"{self.total_steps} steps in {self.config['train']['epochs']} epochs",
            f"model {self.config['model']['name']}: {self.parameters / 1e6:.2f} M parameters",
            f"estimated memory per process: at least {size(self.memory_bytes)} ("
            + (f"this process with the model and data open {size(self.process_bytes)} + gradients and optimiser "
               f"state {size(self.parameter_bytes - self.parameters * 4)}" if self.process_bytes else
               f"weights, gradients and optimiser state {size(self.parameter_bytes)}")
            + f" + activations saved for the backward pass {size(self.activation_bytes)}, fp32, measured on this "
            "machine's code path (the CUDA scan kernels save less; AMP roughly halves them); the forward pass's "
            "passing tensors, data loading and validation come on top: size a job above it)",
        ])


def _activation_bytes(model: torch.nn.Module, sample: dict, inputs: str, probe: int, task: str) -> int:
    """Bytes autograd saves per sample, from one forward/backward of two probe-sized samples (two, so
    batch norm on a 1x1 deepest map still trains), by the model's ``task`` as training runs it (a segmentation
    model on change chips reads date 1: given both, the dry run was a TypeError traceback)."""
    seen: dict[int, int] = {}  # storage -> bytes: a tensor saved by several ops is held once

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. some views)
            seen[id(t)] = t.numel() * t.element_size()
        return t

    image = sample["image"][None, :, :probe, :probe].float().repeat(2, 1, 1, 1)
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if task != "segmentation":
            out = model(image, sample["image2"][None, :, :probe, :probe].float().repeat(2, 1, 1, 1))
            loss = sum(v.float().mean() for v in out.values())
        else:
            loss = segment(model, image, inputs).float().mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(b for ptr, b in seen.items() if ptr not in params) // 2


def _probe_scale(model: torch.nn.Module, h: int, w: int, probe: int) -> float:
    """How many probes' worth of saved tensors one (h, w) sample makes. A model built for one input size
    (MambaSeg's ``fixed_input_size``) runs a probe as one whole zero-padded window, and a sample as whole
    windows: scaled by pixels, a MambaSeg Potsdam recipe was estimated at 3201 GiB, 64 times its windows."""
    size = getattr(model, "fixed_input_size", None)
    if size is None:
        return (h * w) / (probe * probe)
    return float(-(-h // size[0]) * -(-w // size[1]))


def plan_training(config: dict | str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = (),
                  probe: int = 64) -> TrainPlan:
    """Resolve a config and size the run without training (``rsmamba train --dry-run``)."""
    cfg = load_config(None, overrides, base=config) if isinstance(config, dict) else load_config(config, overrides)
    pick_device(cfg["train"]["device"], 0)  # refused as train refuses it (xpu; cuda on a machine without one)
    prep = prepare(cfg)
    for said in unread_by_chips(cfg["data"]):  # as the run says them
        logging.getLogger("rsmamba.train.trainer").warning(said)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    batch = cfg["data"]["batch_size"]
    # refused as train refuses
    steps = steps_per_epoch(describe_roots(cfg["data"]["root"]), len(prep.train_ds), batch, world)
    for said in schedule_warnings(cfg, steps):  # said as training says them
        log.warning(said)
    sample: dict[str, Any] = prep.train_ds[0]
    h, w = sample["image"].shape[-2:]
    n_params = sum(p.numel() for p in prep.model.parameters())
    param_bytes = n_params * (4 + 4 + OPTIMISER_STATE_BYTES.get(cfg["optim"]["name"], 8))
    probe = min(probe, h, w)
    # read before the probe: its freed activations stay resident (the allocator keeps them) and counted twice,
    # 'at least 18.49 GiB' for a run that peaked at 11.13 GiB
    process = process_rss_bytes()
    # the first forward: where a model.kwargs value the constructor let through fails (one line, as train's)
    task = model_info(cfg["model"]["name"]).task
    act = blame_model_kwargs(
        cfg, prep.model_kwargs, lambda: _activation_bytes(prep.model, sample, prep.info.inputs, probe, task),
        lambda kw: _activation_bytes(build_model(cfg, kw), sample, prep.info.inputs, probe, task))
    # what training refuses at its start, refused here too (optim.groups or train.freeze_prefixes naming no
    # parameter passed the dry run, exit 0, and the queued job failed)
    param_groups(cfg, prep.model)
    if cfg["train"]["freeze_prefixes"]:
        set_frozen(prep.model, list(cfg["train"]["freeze_prefixes"]), False)
    act_total = int(act * _probe_scale(prep.model, h, w, probe) * max(1, batch // world))
    return TrainPlan(cfg, len(prep.train_ds), len(prep.val_ds) if prep.val_ds is not None else 0, steps,
                     steps * cfg["train"]["epochs"], (int(h), int(w)), n_params, param_bytes, act_total, process)
