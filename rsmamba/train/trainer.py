"""The training loop: one function for one process or many (``torchrun`` -> DistributedDataParallel).

Determinism is designed in, because ``--resume`` must give the same weights as an uninterrupted
run and DDP must match single-process training on the same global batch:

- the shuffle order is a ``DistributedSampler`` permutation seeded by ``seed + epoch`` (also with
  one process), so each global batch holds the same chips whatever the number of processes;
- augmentations are seeded per (seed, epoch, chip index), not by a stream that depends on order;
- ``last.pt`` holds model, optimiser, scheduler, AMP scaler, EMA, RNG states and the epoch.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from rsmamba.atomic import atomic_output, lock_outputs, publish, replace_refused, settle_inputs
from rsmamba.augment import Augment
from rsmamba.checkpoint import legacy_model_kwargs, load_checkpoint, save_checkpoint
from rsmamba.classes import IGNORE_INDEX
from rsmamba.datasets.benchmark import layout_fingerprint, open_datasets, recorded_scale, use_normalization
from rsmamba.datasets.chips import (chip_size, chips_fingerprint, derives_change, describe_chips, describe_roots,
                                    split_counts)
from rsmamba.errors import InputError, MissingSplit, RsmambaError, first_line
from rsmamba.losses import build_loss
from rsmamba.paths import output_problem
from rsmamba.metrics import (
    ConfusionMeter, binary_change_scores_from_hist, scd_score, scd_scores_from_hist, segmentation_scores,
)
from rsmamba.engine.model import callers_randomness_kept, pad_for_network, torch_device
from rsmamba.raster import gdal_cache_capped
from rsmamba.raster.source import NO_COLOUR
from rsmamba.raster.validate import scale_error, scale_problems
from rsmamba.engine.tta import TTAPlan, tta_average
from rsmamba.train.log import EpochLog
from rsmamba.models import create_model, model_info
from rsmamba.train.config import (
    DEFAULTS, OPTIMIZERS, SCHEDULE_UNITS, SCHEDULES, VAL_METRICS, class_settings_problems, eval_problem, load_config,
    metric_problem, resolve_config_path, schedule_warnings,
)
from rsmamba.train.init import hold_frozen_norms, set_frozen
from rsmamba.train.instances import instance_channels, instance_loss, mark, target_bands

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Where the run went and how it ended."""

    out_dir: Path
    best: Path
    last: Path
    epochs_run: int
    best_metric: float  # the score best.pt was chosen by: the val metric, else minus the training loss
    history: list[dict[str, Any]] = field(default_factory=list)
    selected_by: str = ""  # "val_<metric>", or "train_loss" without val chips or without that score
    left_out: list[str] = field(default_factory=list)  # classes the val means leave out (train.exclude_classes)
    # the scores those means are (a change model's miou is SCanNet's change/no-change mean: its land cover is sem_)
    means: tuple[str, ...] = ("val_miou", "val_mf1")
    planned: int | None = None  # train.epochs, where train.stop_after_epochs stopped the run before it
    scored_on: str = "val chip"  # what validation reads: a benchmark's tiles or images, not chips
    resumed_after: int = 0  # epochs the run had before this command (--resume)

    @property
    def best_epoch(self) -> int | None:
        """The epoch best.pt holds: the first one that scored ``best_metric`` by ``selected_by`` (a later epoch that
        only ties it does not replace best.pt)."""
        for row in self.history:
            score = -row["train_loss"] if self.selected_by == "train_loss" else row.get(self.selected_by)
            if score == self.best_metric:
                return int(row["epoch"])
        return None

    def describe(self) -> str:
        """One line: epochs run, the best score and what it measures, where the checkpoints are."""
        if self.selected_by == "train_loss":
            scored = any(k.startswith("val_") for k in (self.history[-1] if self.history else {}))
            why = "train.metric is not scored on the val data" if scored else f"no val score: no {self.scored_on} with a labelled pixel"
            best = f"best train loss {-self.best_metric:.4f} ({why}: best.pt follows the training loss)"
        else:
            best = f"best {self.selected_by.replace('_', ' ', 1)} {self.best_metric:.4f}"
            # the ISPRS recipes' clutter: the printed mean is not over every class (OA and kappa are: no note)
            if self.left_out and self.selected_by in self.means:
                best += f" (without {', '.join(self.left_out)})"
        # a --resume-from another folder whose epochs never beat the run it came from writes no best.pt here
        where = f"-> {self.best}" if self.best.exists() else f"(of the run resumed from: no epoch beat it, no {self.best})"
        stopped = (f" (stopped by train.stop_after_epochs: {self.epochs_run} of {self.planned}; --resume goes on)"
                   if self.planned is not None and self.epochs_run < self.planned else "")
        if self.best_epoch is not None:
            best += f" at epoch {self.best_epoch}"
        # a resumed run's own share: '6 epochs' was said of a command that trained epochs 3-6, or none (QA)
        first, done = self.resumed_after + 1, self.resumed_after
        ran = ("" if not done else f" (none this run: it had {done} already)" if self.epochs_run <= done else
               f" (epoch{f's {first}-{self.epochs_run}' if self.epochs_run > first else f' {first}'} this run, "
               f"resumed after {done})")
        return (f"{self.epochs_run} epoch{'s' * (self.epochs_run != 1)}{ran}{stopped}; {best} {where}; "
                f"last -> {self.last}")


class _EpochSeeded:
    """Dataset wrapper that reseeds the augmentation per (seed, epoch, index): order-independent."""

    def __init__(self, dataset: Dataset, augment: Augment | None, seed: int):
        self.dataset, self.augment, self.seed, self.epoch = dataset, augment, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        if hasattr(self.dataset, "set_epoch"):  # random crops of large images, seeded like the augmentation
            self.dataset.set_epoch(self.seed, self.epoch)
        sample = self.dataset[index]
        if self.augment is not None:
            self.augment.reseed(((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index) % (2**63))
            sample = self.augment(sample)
        return sample


def _collate(items: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        if isinstance(vals[0], torch.Tensor) and len({tuple(v.shape) for v in vals}) > 1:
            # chips of several sizes in one folder (two tilings merged): torch's 'stack expects each tensor
            # to be equal size' mid-epoch, else
            sizes = ", ".join(f"{it.get('chip_id', '?')} {tuple(it[key].shape[-2:])}" for it in items[:4])
            raise InputError(f"samples of different sizes in one batch ({sizes}): the chips of one folder come "
                             "from one tiling (rsmamba tile --size), or set data.crop for a benchmark layout")
        out[key] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def _chip_side(train_ds: Any) -> int | None:
    """The side of the chips a model learns on, as the manifest lists them: a scene narrower than ``tile --size``
    has narrower chips, and the checkpoint's window is what the model saw (a 256 px scene tiled at --size 512
    recorded 512 as its window); the shorter side of oblong chips; tiling.json's ``size`` for a manifest
    without sizes."""
    info = train_ds.parts[0].info if hasattr(train_ds, "parts") else getattr(train_ds, "info", None)
    raw = getattr(info, "raw", None)
    if not raw:
        return None
    size = chip_size(info)
    return min(size) if size else raw.get("size")


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch_device(name, "train.device")
    if device.type == "cuda":  # as predict's --device: one line, not torch's error at set_device
        if not torch.cuda.is_available():
            raise InputError(f"train.device {name}: CUDA is not available on this machine")
        if device.index is None:  # bare "cuda": this process's GPU (torch.cuda.set_device needs an index)
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise InputError(f"train.device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def param_groups(cfg: dict, model: nn.Module) -> list[dict]:
    """Parameter groups from ``optim.groups``: ``[{prefix: "backbone.", lr_scale: 0.1}, ...]``.

    A parameter joins the first group whose prefix (or one of its prefixes) starts its name; the
    rest form the base group at ``optim.lr``. A prefix that matches nothing is an error, so a
    renamed module cannot silently train at the wrong rate.
    """
    o = cfg["optim"]
    groups = o.get("groups") or []
    named = list(model.named_parameters())
    taken: dict[str, str] = {}  # parameter name -> the prefixes of the group that took it
    out = []
    for g in groups:
        prefixes = [g["prefix"]] if isinstance(g.get("prefix"), str) else list(g.get("prefix") or [])
        matching = [(n, p) for n, p in named if any(n.startswith(x) for x in prefixes)]
        params = [(n, p) for n, p in matching if n not in taken]
        if matching and not params:  # 'matches no parameter' was said of a prefix an earlier, wider group emptied
            earlier = list(dict.fromkeys(taken[n] for n, _ in matching))
            raise InputError(f"optim.groups: prefix {prefixes} matches {len(matching)} parameters of "
                             f"{cfg['model']['name']!r}, all taken by the earlier group{'s' * (len(earlier) > 1)} "
                             f"{', '.join(map(repr, earlier))} (a parameter joins the first group that matches it): list "
                             "groups from the most specific prefix to the most general")
        if not params:
            raise InputError(f"optim.groups: prefix {prefixes} matches no parameter of {cfg['model']['name']!r}")
        taken.update((n, ",".join(prefixes)) for n, _ in params)
        group = {"params": [p for _, p in params], "lr": o["lr"] * float(g.get("lr_scale", 1.0)),
                 "name": ",".join(prefixes)}
        if g.get("weight_decay") is not None:
            group["weight_decay"] = float(g["weight_decay"])
        out.append(group)
    rest = [p for n, p in named if n not in taken]
    return [{"params": rest, "lr": o["lr"], "name": "base"}, *out]


def _build_optimizer(cfg: dict, params) -> torch.optim.Optimizer:
    o = cfg["optim"]
    if o["name"] == "adamw":
        return torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])
    if o["name"] == "adam":
        return torch.optim.Adam(params, lr=o["lr"], weight_decay=o["weight_decay"])
    if o["name"] == "sgd":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
    raise InputError(f"optim.name {o['name']!r}: expected {', '.join(OPTIMIZERS)}")


def lr_factor(cfg: dict, steps_per_epoch: int):
    """The learning-rate multiplier per optimiser step, as ``schedule`` says.

    ``schedule.by`` is ``epoch`` (milestones, ``step_size``, ``t0`` in epochs) or ``iteration``
    (in optimiser steps). Warm-up (``warmup_epochs`` or ``warmup_iters``) ramps linearly first.
    Per-step, so a schedule behaves the same for any batch count and resumes exactly.
    """
    s = cfg["schedule"]
    epochs = cfg["train"]["epochs"]
    total = max(1, epochs * steps_per_epoch)
    unit = steps_per_epoch if s.get("by", "epoch") == "epoch" else 1
    warm = int(s.get("warmup_iters") or 0) or int(s["warmup_epochs"] * steps_per_epoch)
    floor = s["min_lr"] / cfg["optim"]["lr"] if cfg["optim"]["lr"] else 0.0
    name = s["name"]
    if name not in SCHEDULES:
        raise InputError(f"schedule.name {name!r}: expected {', '.join(SCHEDULES)}")
    if s.get("by", "epoch") not in SCHEDULE_UNITS:
        raise InputError(f"schedule.by {s['by']!r}: expected {', '.join(SCHEDULE_UNITS)}")

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if name == "none":
            return 1.0
        if name == "multistep":
            return s["gamma"] ** sum(step // unit >= m for m in s["milestones"])
        if name == "step":
            return s["gamma"] ** ((step // unit) // max(1, int(s["step_size"])))
        t = (step - warm) / max(1, total - warm)
        if name == "poly":
            return floor + (1 - floor) * max(0.0, 1 - t) ** float(s["power"])
        if name == "cosine_restarts":  # SGDR: warm restarts every t0 * t_mult**i units
            t_i, pos = s["t0"] * unit, step - warm
            while pos >= t_i:
                pos -= t_i
                t_i *= s["t_mult"]
            t = pos / t_i
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


def _build_scheduler(cfg: dict, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    for said in schedule_warnings(cfg, steps_per_epoch):
        log.warning(said)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, steps_per_epoch))


def _rng_state() -> dict:
    """Every RNG's state in plain values and tensors, so a checkpoint loads with ``weights_only=True``."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    if isinstance(npst, dict):
        npst = (npst["kind"], npst["key"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                npst["cached_gaussian"])
    np.random.set_state(npst)
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# What a resumed run may change: how long it runs, where and how it reads, not what it trains.
RESUME_MAY_CHANGE = ("out", "tensorboard", "train.epochs", "train.stop_after_epochs", "train.device",
                     "data.root", "data.num_workers")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _check_resume_config(path: Path, saved: Any, cfg: dict) -> None:
    """Refuse a resume whose config trains otherwise than the run it continues: the optimiser's state
    brings back the old rate (a new ``optim.lr`` never ran) while config.yaml and every checkpoint
    would record the new one; another optimiser was a KeyError mid-step."""
    if not isinstance(saved, dict):
        return  # a checkpoint of an older rsmamba: nothing to compare against
    resolved = copy.deepcopy(cfg)
    _resolve_init(resolved, saved)  # a run from --init records the model the checkpoint gave it: compare alike
    old, new = _flat(saved), _flat(resolved)
    changed = [key for key in sorted(set(old) | set(new))
               if old.get(key) != new.get(key) and key in old and not key.startswith(RESUME_MAY_CHANGE)]
    if changed:
        shown = "; ".join(f"{k} was {old.get(k)!r}, now {new.get(k)!r}" for k in changed[:6])
        more = f" (and {len(changed) - 6} more)" if len(changed) > 6 else ""
        raise _resume_refused(path, f"{shown}{more}")


def _check_resume_data(path: Path, saved: Any, cfg: dict, now: dict | None = None) -> None:
    """Refuse a resume on other data than the run's (data.root may move, not change what it holds): the
    checkpoint's statistics and window would switch to theirs mid-run, and best.pt compare two val sets.

    ``now``: a benchmark layout's :func:`layout_fingerprint`, known once its datasets are open; without it
    the chips are fingerprinted here (before anything is opened) and a layout is left to that later call."""
    chips = (cfg["data"].get("layout") or "chips") == "chips"
    if not isinstance(saved, dict) or (now is None and not chips):
        return  # a checkpoint from before the fingerprint, or a benchmark checked once it is open
    now = now if now is not None else chips_fingerprint(cfg["data"]["root"])
    if saved.get("sha256") != now["sha256"]:  # the data changed, not the command line: its own settings won't do
        what = "chips" if chips else "benchmark files"
        raise InputError(f"{path}: --resume continues that run on the {what} it trained on, and "
                         f"{describe_roots(cfg['data']['root'])} "
                         f"holds others: the run's were {describe_chips(saved)}, these are {describe_chips(now)}; "
                         f"point data.root at the run's {what}, or start a new run from its weights (--init {path})")


def _resume_refused(path: Path, differences: str) -> InputError:
    return InputError(f"{path}: --resume continues that run as it was configured, and this command line "
                      f"differs: {differences}; resume with the run's own settings (-c {path.parent / 'config.yaml'} "
                      f"--resume), or start a new run from its weights (--init {path})")


def _train_state(path: Path, ckpt: dict) -> dict:
    """``ckpt``'s training state, its shape checked: a last.pt is a file from anywhere, and a wrong type in
    it would be a traceback later, or a loop of a billion epochs (epoch -1e9)."""
    state = ckpt.get("train_state")
    if state is None:
        raise InputError(f"{path}: has no training state to resume from (use last.pt)")
    problems = []
    if not isinstance(state, dict):
        problems.append(f"train_state is a {type(state).__name__}, not a mapping")
    else:
        for key in ("model", "optimizer", "scheduler", "scaler", "rng"):
            if not isinstance(state.get(key), dict):
                problems.append(f"{key} is {'missing' if key not in state else type(state[key]).__name__}")
        if state.get("ema") is not None and not isinstance(state["ema"], dict):
            problems.append(f"ema is a {type(state['ema']).__name__}")
        epoch = state.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= 1_000_000:
            problems.append(f"epoch is {epoch!r}, not a count of epochs")
        best = state.get("best_metric")
        if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best) or best == math.inf:
            problems.append(f"best_metric is {best!r}")
        history = state.get("history")
        if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
            problems.append("history is not a list of epoch rows")
    if problems:
        raise InputError(f"{path}: its training state is not one rsmamba wrote ({'; '.join(problems)})")
    return state


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def segment(model: nn.Module, image: torch.Tensor, inputs: str, with_instances: bool = False) -> torch.Tensor:
    """(B, C, H, W) -> logits by the model's forward convention (image+DSM: the DSM is the last channel).

    A model built for one input size (MambaSeg's channel SSM: ``fixed_input_size``) runs on
    non-overlapping windows of that size over the zero-padded input, cropped back: crops and
    whole validation tiles of any size, never a silent resampling. The instance outputs of a
    widened head (:mod:`rsmamba.train.instances`) are dropped unless ``with_instances``.
    """
    k = 0 if with_instances else instance_channels(model)
    if k:
        return segment(model, image, inputs, True)[:, :-k]

    def run(x: torch.Tensor) -> torch.Tensor:
        return model(x[:, :-1], x[:, -1:]) if inputs == "image+dsm" else model(x)

    size = getattr(getattr(model, "module", model), "fixed_input_size", None)
    h, w = image.shape[-2:]
    if size is None or (h, w) == tuple(size):
        return run(image)
    h0, w0 = size
    x = F.pad(image, (0, -(-w // w0) * w0 - w, 0, -(-h // h0) * h0 - h))
    rows = [torch.cat([run(x[..., i:i + h0, j:j + w0]) for j in range(0, x.shape[-1], w0)], dim=-1)
            for i in range(0, x.shape[-2], h0)]
    return torch.cat(rows, dim=-2)[..., :h, :w]


def _forward_loss(model: nn.Module, batch: dict, task: str, inputs: str, loss_fn: nn.Module, device) -> tuple:
    """Run the model by its forward convention; returns (loss, prediction-dict for metrics)."""
    image = batch["image"].to(device, non_blocking=True)
    if task == "segmentation":
        mask = batch["mask"].to(device)
        logits = segment(model, image, inputs, with_instances=True)
        k = instance_channels(model)
        if k:
            extra, logits = logits[:, -k:], logits[:, :-k]
            loss = loss_fn(logits, mask)
            if "targets" in batch:
                loss = loss + instance_loss(extra, batch["targets"].to(device))
            return loss, {"sem": logits}
        return loss_fn(logits, mask), {"sem": logits}
    out = model(image, batch["image2"].to(device))
    change = batch["change"].to(device) if "change" in batch else None
    if getattr(loss_fn, "takes_outputs", False):  # a whole change objective (Mamba-FCS)
        if change is None or "mask2" not in batch:
            raise InputError("loss 'mambafcs' needs both dates' semantic labels and the change mask")
        return loss_fn(out, change, batch["mask"].to(device), batch["mask2"].to(device)), out
    loss = image.new_zeros(())
    if change is not None:
        loss = loss + loss_fn(out["change"], change)
    for key, mkey in (("sem1", "mask"), ("sem2", "mask2")):
        if key in out and mkey in batch:
            loss = loss + 0.5 * loss_fn(out[key], batch[mkey].to(device))
    return loss, out


def window_logits(model: nn.Module, image: torch.Tensor, inputs: str) -> torch.Tensor:
    """Class logits of ``image`` as predict computes a window's: padded to the sides the network takes
    (:func:`rsmamba.engine.model.pad_for_network`), cropped back. Validation scores so; training does not pad."""
    h, w = image.shape[-2:]
    return segment(model, pad_for_network(getattr(model, "module", model), image), inputs)[..., :h, :w]


def tta_probabilities(model: nn.Module, image: torch.Tensor, inputs: str, scales=(1.0,), flip: bool = False):
    """Softmax summed over input scales and flips (the papers' multi-scale + flip evaluation), at the
    input's size: the views are predict's (:func:`rsmamba.engine.tta.tta_average`), each padded as predict
    pads it, so validation scores what ``rsmamba predict --tta-recipe`` maps."""
    plan = TTAPlan(flip=flip, scales=tuple(float(s) for s in scales))
    return tta_average(lambda x: window_logits(model, x, inputs).softmax(1), image, plan) * plan.passes


def check_metric(metric: str, task: str) -> None:
    """``train.metric`` names a validation score of the model's task (:data:`VAL_METRICS`): another name would
    pick ``best.pt`` by the training loss without a word. The config's checks say it where the model is known."""
    if problem := metric_problem(metric, task):
        raise InputError(problem)


def fillers_of(classes: Sequence[dict]) -> list[int]:
    """The ids a class table skips (``filler`` in its dicts): outputs no pixel is scored as (predict masks them)."""
    return [int(c["id"]) for c in classes if c.get("filler")]


def _classes_of(logits: torch.Tensor, fillers: Sequence[int]) -> torch.Tensor:
    """(B, K, H, W) -> (B, H, W) argmax, a filler never the answer (as predict: its untrained head won pixels,
    scored IoU 0 in val_miou, which picks best.pt: 0.22 for 0.30)."""
    if fillers:
        logits = logits.clone()
        logits[:, list(fillers)] = float("-inf")
    return logits.argmax(1)


def validate(model: nn.Module, loader: DataLoader, task: str, inputs: str, num_classes: int, device,
              exclude: list[int], names: list[str], scales=(1.0,), flip: bool = False,
              progress: bool = False, fillers: Sequence[int] = (), said: set[str] | None = None,
              split: str = "val") -> dict[str, Any]:
    """The validation scores of ``model`` on ``loader`` (:data:`VAL_METRICS`): one confusion matrix
    each over all batches, so a score is of the whole split, not a mean of per-batch scores. ``said``: the
    warnings a run has given already (each once, not every epoch)."""
    model.eval()
    seg = ConfusionMeter(num_classes)
    chg = ConfusionMeter(2)
    scd = ConfusionMeter(num_classes + 1)  # 0 = no change, 1 + land cover where changed (SCanNet's form)
    with torch.no_grad():
        for batch in tqdm(loader, desc="scoring", unit="batch", disable=not progress, leave=False):
            if task == "segmentation" and (flip or list(scales) != [1.0]):
                probs = tta_probabilities(model, batch["image"].to(device), inputs, scales, flip)
                seg.update(batch["mask"], _classes_of(probs, fillers).cpu())
                continue
            if task == "segmentation":
                logits = window_logits(model, batch["image"].to(device), inputs)
                seg.update(batch["mask"], _classes_of(logits, fillers).cpu())
                continue
            _, out = _forward_loss(model, batch, task, inputs, lambda *a: torch.zeros(()), device)
            pred_change = out["change"].argmax(1).cpu() if "change" in out else None
            if "change" in batch and pred_change is not None:
                chg.update(batch["change"], pred_change)
            for key, mkey in (("sem1", "mask"), ("sem2", "mask2")):
                if key in out and mkey in batch:
                    pred_sem = _classes_of(out[key], fillers).cpu()
                    seg.update(batch[mkey], pred_sem)
                    if "change" in batch and pred_change is not None:
                        scd.update(*_scd_pair(batch[mkey], batch["change"], pred_sem, pred_change))
    seg.reduce()
    chg.reduce()
    scd.reduce()
    model.train()
    result: dict[str, Any] = {}
    prefix = "" if task == "segmentation" else "sem_"
    if seg.hist.sum():
        scores = seg.scores(names, exclude)
        result.update({prefix + k: scores[k] for k in ("miou", "mf1", "oa", "kappa") if scores[k] is not None})
        result[prefix + "iou_per_class"] = {n: v["iou"] for n, v in scores["per_class"].items()}
    said = set() if said is None else said
    if chg.hist.sum() and not chg.hist[1].sum() and "no change" not in said:  # hist[label, pred]
        # a change model's val chips without a changed pixel: its change F1 and IoU are 0 or none, whatever it
        # predicts, and best.pt was picked on them unsaid (QA; the segmentation classes the val chips miss are said)
        log.warning(f"the {split} chips hold no changed pixel: their change scores (F1, IoU, SeK) say nothing of "
                    "the change the model finds (tile with a smaller --split-block or another --seed to spread it)")
        said.add("no change")
    if chg.hist.sum():
        c = binary_change_scores_from_hist(chg.hist)
        result.update({f"change_{k}": c[k] for k in ("f1", "iou", "oa", "kappa") if c[k] is not None})
    if scd.hist[1:].sum():  # changed pixels with their land cover (chips of change labels alone have none)
        s = scd_scores_from_hist(scd.hist.T)  # hist[pred, label], as SCanNet's
        s["score"] = scd_score(s)
        result.update({k: s[k] for k in ("sek", "fscd", "miou", "oa", "score") if s[k] is not None})
    if chg.hist.sum() and "miou" not in result:  # change masks alone: the SCD mIoU (no-change and change IoU) is
        per = segmentation_scores(chg.hist, ["no_change", "change"])["per_class"]  # theirs; the default train.metric
        ious = [per[n]["iou"] for n in ("no_change", "change")]  # was unscored, best.pt chosen by the training loss
        if None not in ious:
            result["miou"] = (ious[0] + ious[1]) / 2
    return result


@gdal_cache_capped()
@callers_randomness_kept()  # building the model draws its initial weights from the global generator
def score_checkpoint(config: dict | str | os.PathLike[str] | None, overrides: list[str] | tuple[str, ...] = (),
                    *, checkpoint: str | os.PathLike[str], progress: bool = True,
                    overwrite: bool = False) -> dict[str, Any]:
    """Score ``checkpoint`` on the config's ``data.val_split`` (e.g. ``test``) as its recipe evaluates:
    the same crops, classes left out, flip / multi-scale views and scores as validation during
    training, over the whole split in one confusion matrix. Writes ``<out>/test_<split>.json``.

    The weights must fit the config's model and data as they are: a tensor adapted to other bands,
    a head re-initialised for other classes, or one left random would score another model.
    """
    base = config if isinstance(config, dict) else None
    checkpoint = checkpoint_path(checkpoint)  # ('demo', as --init takes it, was 'demo: checkpoint not found')
    cfg = load_config(None if base else config, [*overrides, f"model.init={checkpoint}"], base=base)
    d, t = cfg["data"], cfg["train"]
    out = Path(cfg["out"]) / f"test_{d['val_split']}.json"
    reads = [path for _, path in run_inputs(cfg, None if base else config)] + [checkpoint]
    if problem := output_problem(out, reads, "train --test output"):  # a JSON config named so: replaced, --overwrite
        raise InputError(problem)
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; --overwrite replaces it")
    ckpt = load_checkpoint(checkpoint)
    # its instance outputs are its model's, as its name and structure are (_resolve_init): before, its head was
    # refused as 're-sized for the instance outputs' unless the config repeated them and the chips had targets
    outputs = list((ckpt.get("instances") or {}).get("channels") or [])
    asked = cfg["model"].get("instances")
    if asked and list(asked) != outputs:
        raise InputError(f"model.instances [{', '.join(map(str, asked))}]: {checkpoint} has "
                         + (f"the instance outputs ({', '.join(outputs)})" if outputs else "no instance outputs")
                         + "; a test scores the checkpoint's model as it is: leave model.instances out")
    cfg["model"]["instances"] = outputs
    device = pick_device(t["device"], 0)
    try:
        prep = prepare(cfg, scoring=True)
    except MissingSplit:  # a held-out scene tiled as test chips only: nothing is trained, so no train split
        if (d.get("layout") or "chips") != "chips" or d["train_split"] == d["val_split"]:
            raise
        cfg["data"]["train_split"] = d["val_split"]
        prep = prepare(cfg, scoring=True)
    rep = prep.init_report
    if rep is not None and rep.colours is not None:  # chips of other colours, or in another order, scored unsaid
        missing = [c for c in rep.colours[0] if c not in NO_COLOUR and c not in rep.colours[1]]
        ckpt_colours, chip_colours = (", ".join(c) for c in rep.colours)
        chips = (d.get("layout") or "chips") == "chips"  # a benchmark's images: their colours as published
        kind = "chips" if chips else f"{d['layout']} images"
        raise InputError(f"{describe_roots(d['root'])}: the {kind}' bands are {chip_colours}, {checkpoint} reads "
                         f"{ckpt_colours}; " + (f"the {kind} have no {', '.join(missing)}: it cannot be tested on them"
                                                if missing else f"a test reads the {kind} as stored: " + (
                                                    "tile them with the checkpoint's bands in its order (rsmamba "
                                                    "tile --bands)" if chips else "test it on data of its bands")))
    if rep is not None and (rep.adapted or rep.reinitialised or rep.widened or rep.left_random):
        raise InputError(f"{checkpoint} does not fit this config's model and data as it is ({rep.describe()}); "
                         "a test scores the checkpoint's own weights")
    if prep.val_ds is None:
        counts = split_counts(d["root"]) if d.get("layout") in (None, "chips") else ""
        raise InputError(f"{describe_roots(d['root'])}: no labelled split {d['val_split']!r} to score (data.val_split)"
                         + counts)
    norm = ckpt["normalization"]
    scale = recorded_scale(prep.val_ds)  # predict refuses an image on another scale: so does a test of its chips
    if scale is not None and (problems := scale_problems(scale[0], scale[1], norm.get("image"))):
        raise scale_error(f"chips {describe_roots(d['root'])}", scale[1], str(checkpoint), problems,
                          (norm.get("image") or {}).get("dtype"))
    use_normalization(prep.val_ds, norm)  # as predict runs the model
    loader = DataLoader(prep.val_ds, batch_size=d["batch_size"], num_workers=d["num_workers"], collate_fn=_collate)
    scores = validate(prep.model.to(device), loader, prep.info.task, prep.info.inputs, prep.num_classes, device,
                      list(t["exclude_classes"]), prep.names, cfg["eval"]["scales"], cfg["eval"]["flip"],
                      progress=progress, fillers=fillers_of(prep.classes), split=d["val_split"])
    if not scores:  # every pixel ignored: nothing was scored, and a file of empty scores says otherwise
        raise InputError(f"{describe_roots(d['root'])}: split {d['val_split']!r} has no labelled pixel to score")
    result = {"checkpoint": str(checkpoint), "model": cfg["model"]["name"],
              "root": [str(r) for r in d["root"]] if isinstance(d["root"], list) else str(d["root"]),
              "layout": d["layout"], "split": d["val_split"], "samples": len(prep.val_ds),
              "normalization": "the checkpoint's (as predict)",
              "eval": {"scales": list(cfg["eval"]["scales"]), "flip": bool(cfg["eval"]["flip"]),
                       "exclude_classes": list(t["exclude_classes"])}, "scores": scores}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    result["path"] = str(out)
    return result


def _scd_pair(label: torch.Tensor, change: torch.Tensor, pred: torch.Tensor,
              pred_change: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(label, prediction) in SCanNet's form: 0 where unchanged, 1 + land cover where changed; pixels
    without a change label, or changed without a land-cover label, are ignored."""
    label, change = label.long(), change.long()
    ref = torch.where(change == 1, label + 1, torch.zeros_like(label))
    ref[(change == IGNORE_INDEX) | ((change == 1) & (label == IGNORE_INDEX))] = IGNORE_INDEX
    return ref, torch.where(pred_change == 1, pred.long() + 1, torch.zeros_like(ref))


def _diverged(where: str, lr: float, out_dir: Path, kept: bool) -> str:
    """The one line of a diverged run, with what can be done: --resume continues a run as configured, so
    a lower rate is a new run, from the last complete epoch's weights when there are any."""
    advice = (f"its last complete epoch is kept in {out_dir}: start a new run from it with a lower rate, "
              f"e.g. --init {out_dir / 'last.pt'} --set optim.lr={lr / 10:g} --set out={out_dir}-2"
              if kept else f"no epoch of this run completed ({out_dir} is as it was): run again with a lower rate, "
              f"e.g. --set optim.lr={lr / 10:g}, or set train.grad_clip")
    return f"training diverged: {where} (optim.lr {lr:g}); {advice}"


def _check_out_folder(out_dir: Path, cfg: dict, config_path: str | os.PathLike[str] | None,
                      resume: bool = False) -> None:
    """The out folder writes config.yaml, best.pt and last.pt: none may be an input of the run (the user's
    config, the --init checkpoint), and it may not be in, or hold, the data (chips mixed with checkpoints).
    Refused even with --overwrite, as an output that is an input is everywhere."""
    out = out_dir.resolve()
    problems = []
    if out.exists() and not out.is_dir():  # else '[Errno 17] File exists' at the first save
        problems.append(f"out {out_dir}: a file stands where the run's folder would go; choose another out")
    root = cfg["data"].get("root")
    for folder in (root if isinstance(root, list) else [root] if root else []):
        data = Path(folder).resolve()
        if out == data or data in out.parents or out in data.parents:
            problems.append(f"out {out_dir}: is, holds or lies in the data folder {folder}; choose a folder of its own")
    written = {(out / name).resolve(): name for name in RUN_FILES}  # (a link among them: the file it points at)
    for role, path in run_inputs(cfg, config_path):  # every file the run reads, each checked alike
        name = written.get(path.resolve())
        if name is None or (role == "config" and name == "config.yaml" and resume):
            continue  # (a resume reads the run's own config.yaml, the same again)
        if role == "config":
            problems.append(f"out {out_dir}: would write {name} over the config {config_path} of this run")
        else:
            problems.append(f"out {out_dir}: would write over {role} {path} (the run's {name}); train into another "
                            "folder (--resume continues a run in its own folder)")
    if out.is_dir():  # a file the run replaces (last.pt, metrics.csv) that cannot be: said now, not after an epoch
        for path in sorted(out.iterdir()):
            if path.is_file() and (refused := replace_refused(path)):
                problems.append(f"out {out_dir}: {path.name}: cannot replace it ({refused})")
    if problems:
        raise InputError(problems)


# What a run writes in its out folder, published together each epoch (best.pt when the epoch is the best)
RUN_FILES = ("last.pt", "metrics.csv", "metrics.jsonl", "config.yaml", "best.pt")


def run_inputs(cfg: dict, config_path: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    """(role, path) of each file a run of ``cfg`` reads besides its data: the config file, ``model.init`` and
    every ``model.pretrained`` path (a shipped demo model aside): none may be one the run writes (only the
    config and the init were checked: a pretrained best.pt of the folder's last run was replaced by the
    first epoch, even a --set pretrained one)."""
    found: list[tuple[str, Path]] = []
    if config_path is not None:
        try:
            found.append(("config", resolve_config_path(config_path)))
        except InputError:
            pass  # (said where the config is read)
    init = cfg["model"].get("init")
    if init and str(init) not in DEMO_CHECKPOINTS:
        found.append(("model.init", Path(str(init))))
    pretrained = cfg["model"].get("pretrained")
    parts = pretrained.items() if isinstance(pretrained, dict) else [(None, pretrained)]
    for part, path in parts:
        if isinstance(path, (str, os.PathLike)) and str(path):
            found.append((f"model.pretrained{'.' + str(part) if part is not None else ''}", Path(path)))
    return found


def _continues_folder(resume: bool | str | os.PathLike[str], out_dir: Path) -> bool:
    """Whether a run resumes the run its out folder holds (``<out>/last.pt``), not one from elsewhere:
    ``--resume-from OTHER/last.pt`` takes the folder over, as a new run does."""
    if not resume:
        return False
    return isinstance(resume, bool) or Path(resume).resolve() == (out_dir / "last.pt").resolve()


def _own_test_results(out_dir: Path) -> dict[Path, str]:
    """The ``train --test`` results in ``out_dir`` that scored its own checkpoints: file -> ``best.pt``/``last.pt``.

    By the result's ``checkpoint`` (the path as given; relative to where it ran, so a relative one may
    also name the folder by its last parts): a score of another checkpoint, or a user's file, is no run's."""
    out = out_dir.resolve()
    found: dict[Path, str] = {}
    for path in sorted(out_dir.glob("test_*.json")):
        try:
            named = json.loads(path.read_text()).get("checkpoint")
        except (OSError, ValueError, AttributeError):  # not JSON, not a mapping: not one train --test wrote
            continue
        if not isinstance(named, str) or Path(named).name not in ("best.pt", "last.pt"):
            continue
        ckpt = Path(named)
        parts = ckpt.parent.parts
        if ckpt.parent.resolve() == out or (not ckpt.is_absolute() and ".." not in parts
                                            and out.parts[len(out.parts) - len(parts):] == parts):
            found[path] = ckpt.name
    return found


def _refuse_previous_run(out_dir: Path, resume: bool | str | os.PathLike[str], tensorboard: bool) -> None:
    """Refuse an out folder holding any file of another run that this run would replace or remove (its
    checkpoints, logs, config, TensorBoard events, train --test scores): checking last.pt alone lost a
    best.pt kept without it, and ``--resume-from`` another folder's checkpoint replaced the run there."""
    held = [name for name in RUN_FILES if (out_dir / name).exists()]
    if tensorboard and any((out_dir / "tensorboard").glob("events.out.tfevents.*")):
        held.append("tensorboard/")
    held += [path.name for path in _own_test_results(out_dir)]
    if not held:
        return
    held.sort()
    if resume:
        raise InputError(f"{out_dir} holds another training run ({', '.join(held)}): --resume-from {resume} would "
                         "replace it; --overwrite to do so, or another out folder"
                         + (" (--resume continues the run it holds)" if "last.pt" in held else ""))
    how = "use --resume to continue it, " if "last.pt" in held else ""
    raise InputError(f"{out_dir} holds a previous training run ({', '.join(held)}): {how}--overwrite to start over, "
                     "or another out folder")


@gdal_cache_capped()
def train(config: dict | str | os.PathLike[str] | None = None, overrides: list[str] | tuple[str, ...] = (),
          *, resume: bool | str | os.PathLike[str] = False, progress: bool = True,
          overwrite: bool = False) -> TrainResult:
    """Train a model as ``config`` says (a dict, or a YAML path), with ``key.path=value`` overrides.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) this runs DistributedDataParallel, gloo on CPU and nccl on
    GPU; ``data.batch_size`` is the global batch, split evenly across processes.
    ``resume=True`` continues from ``<out>/last.pt`` (or the given checkpoint path). A folder that
    holds a previous run is refused unless ``resume`` continues that run (its own last.pt) or ``overwrite``;
    the folder is locked while training (:func:`rsmamba.atomic.lock_outputs`).
    """
    if isinstance(config, dict):
        cfg = load_config(None, overrides, base=config)
    else:
        cfg = load_config(config, overrides)
    world, rank, local_rank = _dist_info()
    t = cfg["train"]
    device = pick_device(t["device"], local_rank)
    started_pg = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started_pg = True
    out_dir = Path(cfg["out"])
    if rank == 0:  # an epoch's files a kill left between their renames: finished before anything reads them (a
        # --resume after the last epoch's kill read its last.pt, trained nothing, and said a best.pt not on disk)
        settle_inputs([out_dir / name for name in RUN_FILES])
    if world > 1:
        dist.barrier()
    _check_out_folder(out_dir, cfg, None if isinstance(config, dict) else config, resume=bool(resume))
    if rank == 0 and not overwrite and not _continues_folder(resume, out_dir):
        _refuse_previous_run(out_dir, resume, bool(cfg["tensorboard"]))
    loaded = None
    if resume:  # checked (and safely loaded) before the folder is locked: a bad path is an input error
        path = Path(resume) if not isinstance(resume, bool) else out_dir / "last.pt"
        if isinstance(resume, bool) and not path.exists() and not path.is_symlink():
            # ('r4/last.pt: checkpoint not found' after a run killed in its first epoch, which saves nothing; QA)
            raise InputError(f"--resume: {out_dir} holds no run to continue (no last.pt: a run saves it when its "
                             "first epoch ends); run the command without --resume")
        loaded = (path, load_checkpoint(path))
        done = _train_state(path, loaded[1])["epoch"]
        _check_resume_config(path, loaded[1].get("config"), cfg)
        _check_resume_data(path, loaded[1].get("data_fingerprint"), cfg)
        if done >= cfg["train"]["epochs"] and not _continues_folder(resume, out_dir):  # nothing would be written
            raise InputError(f"--resume-from {path}: that run has {done} epoch{'s' * (done != 1)} already and "
                             f"train.epochs is {cfg['train']['epochs']}: nothing to train into {out_dir} (raise "
                             f"train.epochs to go on, or use {path} as it is)")
    try:
        with lock_outputs([out_dir] if rank == 0 else []), callers_randomness_kept():
            return _train(cfg, world, rank, device, resume, progress, loaded)
    finally:
        if started_pg:
            # The DDP wrapper sits in reference cycles that hold the process group; left to the
            # interpreter's exit, gloo's threads were torn down there and aborted the process
            # ("terminate called without an active exception") in about 1 run of 30.
            gc.collect()
            dist.destroy_process_group()


@dataclass
class Prepared:
    """What a config resolves to before the first step: data, classes and the model."""

    info: Any
    train_ds: Any
    val_ds: Any
    classes: list[dict]
    num_classes: int
    names: list[str]
    model_kwargs: dict
    model: nn.Module
    init_report: Any = None


DEMO_CHECKPOINTS = {"demo": "demo_model.pt", "demo-change": "demo_change_model.pt"}


def checkpoint_path(name: str | os.PathLike[str]) -> Path:
    """A checkpoint as ``--init`` and ``--test`` name it: a path, or ``demo`` / ``demo-change`` (the shipped demo
    models) where no such file is (a folder named demo/ is no checkpoint)."""
    path = Path(name)
    if str(name) in DEMO_CHECKPOINTS and not path.is_file():
        path = Path(__file__).resolve().parent.parent / "data" / DEMO_CHECKPOINTS[str(name)]
    return path


def _resolve_init(cfg: dict, run: Any = None, role: str = "model.init") -> Path | None:
    """``model.init``: a checkpoint path, or ``demo`` / ``demo-change`` (the shipped demo models).

    The checkpoint names its model: a config that leaves ``model`` at its default takes the
    checkpoint's model and structure kwargs; a config naming another model is an error.
    ``run``: the saved config of the run a resume continues. Its last.pt holds the weights, so the
    init file is not read again (it may since be moved, deleted or replaced): the model it gave that
    run comes from the run's config, and None is returned (nothing to load). A changed model.init
    is left to the resume's comparison to refuse.
    """
    init = cfg["model"].get("init")
    if not init:
        return None
    resumed = run.get("model") if isinstance(run, dict) else None
    if isinstance(resumed, dict) and "name" in resumed:
        if resumed.get("init") == init:
            try:
                _take_model(cfg, str(init), resumed["name"], {k: v for k, v in (resumed.get("kwargs") or {}).items()
                                                               if k not in ("num_classes", "in_chans")})
            except InputError:
                pass  # another model than the run's: the resume's comparison refuses it as a changed model.name
        return None
    path = checkpoint_path(init)
    ckpt = load_checkpoint(path)
    structure = {k: v for k, v in {**ckpt["model_kwargs"], **legacy_model_kwargs(ckpt)}.items()
                 if k not in ("num_classes", "in_chans")}
    _take_model(cfg, str(path), ckpt["model"], structure, role)
    return path


def _take_model(cfg: dict, path: str, model: str, structure: dict, role: str = "model.init") -> None:
    """Give ``cfg`` the model of its ``model.init`` checkpoint (at ``path``): ``model`` with its ``structure``
    kwargs, the config's on top, where the config names it or leaves the default model."""
    if cfg["model"]["name"] == model:  # the same model: its structure options, the config's on top
        cfg["model"]["kwargs"] = {**structure, **cfg["model"]["kwargs"]}
    else:
        from rsmamba.train.config import DEFAULTS

        if cfg["model"]["name"] != DEFAULTS["model"]["name"] or cfg["model"]["kwargs"]:
            raise InputError(f"{role} {path}: holds a {model!r} model, the config asks for "
                             f"{cfg['model']['name']!r}" + (f"; score it with --set model.name={model}"
                                                            if role == "--test" else ""))
        cfg["model"]["name"] = model
        cfg["model"]["kwargs"] = structure


def _check_class_settings(cfg: dict, num_classes: int, names: list[str], trained: set[int] | None = None) -> None:
    """Settings sized by the classes, checked before any batch: wrong, they failed at the first batch
    (class weights) or after a whole epoch (an excluded class id past the head), with a traceback. ``trained``:
    the class ids the training chips hold, where known (weights 0 on all of them: a NaN loss at step 1)."""
    problems = class_settings_problems(cfg, num_classes, names, trained)  # (a benchmark's: the config's checks too)
    if problems:
        raise InputError(problems)


def held_classes(rows: Any) -> set[int]:
    """The class ids the chips of ``rows`` (manifest rows) hold a pixel of, from their histograms (255 aside)."""
    return {int(k) for r in rows for k, v in json.loads(r.get("class_hist") or "{}").items()
            if int(k) != IGNORE_INDEX and int(v) > 0}


def _warn_classes_missing_from_val(train_ds: Any, val_ds: Any, names: list[str], split: str = "val") -> None:
    """Classes the training chips hold but the validation chips (of ``split``, data.val_split) do not: the
    means count them only where the model predicts them (IoU 0 there; never predicted, left out, as the
    benchmarks' code does), so a val mIoU can move on a class the val data cannot show. Said once, up front,
    naming the split scored (a train --test of the test split was told of 'the val chips')."""
    def classes(ds: Any) -> set[int]:
        return held_classes(getattr(ds, "rows", None) or ())
    if val_ds is None or not getattr(val_ds, "rows", None):
        return
    if any(r.get("labels_t2") for r in val_ds.rows):  # the manifest's histogram is date 1's: date 2 may hold them
        return  # ('the val chips hold no car' while date 2 held 23 car pixels, scored)
    missing = sorted(classes(train_ds) - classes(val_ds))
    if missing:
        said = ", ".join(names[i] if i < len(names) else str(i) for i in missing)
        them = "it" if len(missing) == 1 else "them"
        log.warning(f"the {split} chips hold no {said}: {split} scores count {them} only "
                    "where the model predicts it, as IoU 0 (tile with a smaller --split-block or another --seed to "
                    "spread the classes)")


def _warn_classes_never_trained(train_ds: Any, classes: list[dict], names: list[str], split: str,
                                excluded: list[int]) -> None:
    """Classes of the table that no training chip holds (a 7-class table's 'water' in a town): the model never
    learns them, and their heads stay as initialised; said once, up front (it was unsaid)."""
    rows = getattr(train_ds, "rows", None) or []
    if not rows or not classes or len(classes) != len(names) or any(r.get("t2") for r in rows):
        return  # (change pairs: the histogram is date 1's)
    held = held_classes(rows)
    unseen = [i for i, c in enumerate(classes) if i not in held and i not in excluded and not c.get("filler")
              and i != IGNORE_INDEX]
    if unseen:
        said = ", ".join(names[i] for i in unseen)
        log.warning(f"the {split} chips hold no {said}: the model never learns "
                    f"{'it' if len(unseen) == 1 else 'them'} (tile scenes that show {'it' if len(unseen) == 1 else 'them'}, "
                    "or a class table without)")


def _say_change_targets(train_ds: Any, val_ds: Any) -> None:
    """Where a change model's chips get their change targets, when not from change chips: both dates' labels
    (change where they differ, :func:`rsmamba.datasets.chips.change_from_labels`), or none (the change head
    learns nothing). Chips tiled with --labels and --labels-t2 but no --change-labels trained no change head,
    exit 0 and unsaid (QA)."""
    rows = [r for ds in (train_ds, val_ds) for r in getattr(ds, "rows", None) or ()]
    if derives_change(rows):
        log.warning("the chips carry both dates' labels and no change masks (tiled without --change-labels): "
                    "change is taken where the dates' labels differ")
    elif not any(r.get("change") for r in getattr(train_ds, "rows", None) or ()):
        log.warning("the training chips carry no change masks (tiled without --change-labels or --labels-t2): "
                    "the change head learns nothing; tile with --change-labels, or both dates' labels")


def _check_date_swap(model: str, task: str, train_ds: Any) -> None:
    """``augment.date_swap`` swaps a pair's images and semantic labels: refused where a sample has no second
    date, where the image carries the first date's DSM, or where only the first date is labelled (its
    labels would be trained against the second date's image)."""
    if task == "segmentation":
        raise InputError(f"augment.date_swap: swaps the two dates of a change pair; {model!r} is a segmentation "
                         "model (set it to 0)")
    if train_ds.use_dsm:
        raise InputError("augment.date_swap: the DSM travels with the first date's image only; set it to 0 or "
                         "data.use_dsm: false")
    one_sided = [r["chip_id"] for r in getattr(train_ds, "rows", None) or ()
                 if bool(r.get("labels")) != bool(r.get("labels_t2"))]
    if one_sided:
        raise InputError(f"augment.date_swap: chip {one_sided[0]} (and {len(one_sided) - 1} more) has the labels of "
                         "one date only, which a swap would pair with the other date's image; tile both dates' "
                         "labels (--labels-t2) or set it to 0")


_T = TypeVar("_T")


def build_model(cfg: dict, model_kwargs: dict) -> nn.Module:
    """The config's registry model with ``model_kwargs``, widened by ``model.instances`` target channels."""
    return mark(create_model(cfg["model"]["name"], **model_kwargs), len(cfg["model"].get("instances") or []))


def blame_model_kwargs(cfg: dict, model_kwargs: dict, run: Callable[[], _T],
                       check: Callable[[dict], object]) -> _T:
    """``run()`` (build the model, or run it once); what it raises is the config's ``model.kwargs``' fault, one
    line naming them, the model and its message, when ``check`` of the same without them succeeds.

    A wrong-length depth list or a zero width fails deep inside a model (an IndexError, a channel mismatch).
    Without ``model.kwargs``, or when ``check`` fails too, the error is no user's: it propagates as it is."""
    try:
        return run()
    except InputError:
        raise
    except Exception as exc:
        given = dict(cfg["model"].get("kwargs") or {})
        if not given:
            raise
        derived = {k: v for k, v in model_kwargs.items() if k not in given or k in ("num_classes", "in_chans")}
        try:
            check(derived)
            theirs = True
        except Exception:
            theirs = False  # fails without them too: not the kwargs' fault
        if not theirs:
            raise
        name = cfg["model"]["name"]
        if isinstance(exc, TypeError) and "unexpected keyword argument" in str(exc):
            # the recipe's kwargs of its own model, after --set model.name=another: the way on, said
            raise InputError(f"model.kwargs {given}: not arguments {name!r} takes ({first_line(exc)}); a config's "
                             "kwargs for another model? --set 'model.kwargs={}' builds it without them") from None
        said = first_line(exc) if isinstance(exc, (TypeError, ValueError)) else f"{type(exc).__name__}: {first_line(exc)}"
        raise InputError(f"model.kwargs {given}: {name!r} refuses the value{'s' * (len(given) > 1)} ({said})") from None


def probe_forward(model: nn.Module, sample: dict, inputs: str, task: str, size: int = 64) -> None:
    """One forward of a corner of ``sample`` (at most ``size`` px), in eval mode without gradients: no weight or
    batch-norm statistic moves, so the run trains exactly as without it; what it raises is what training would.
    By the model's ``task``, as :func:`_forward_loss`: a segmentation model reads date 1 of change chips."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            image = sample["image"][None, :, :size, :size].float()
            if task != "segmentation":
                model(image, sample["image2"][None, :, :size, :size].float())
            else:
                segment(model, image, inputs)
    finally:
        model.train(was_training)


def steps_per_epoch(root: object, n_train: int, batch_size: int, world: int = 1) -> int:
    """Optimiser steps per epoch: each of ``world`` processes takes its share of the samples in batches of
    ``batch_size // world`` and drops the last partial one. Fewer samples than one batch would train nothing:
    refused, by ``train`` and ``train --dry-run`` alike."""
    steps = (n_train // world) // max(1, batch_size // world)
    if steps == 0:
        raise InputError(f"{root}: {n_train} training chips, fewer than one batch of {batch_size}")
    return steps


def resolve_use_dsm(d: dict, info_m: Any) -> bool | None:
    """``data.use_dsm`` where the config leaves it open (None: the chips decide): change chips have one
    DSM (t1) for two dates, so no; a benchmark read in place gives the DSM a model asks for."""
    use_dsm = d["use_dsm"]
    if use_dsm is None and info_m.task != "segmentation":
        use_dsm = False
    if use_dsm is None and d["layout"] not in ("chips", None) and info_m.inputs == "image+dsm":
        use_dsm = True
    return use_dsm


def unread_by_chips(d: dict) -> list[str]:
    """Warnings for the sampling keys of the benchmark layouts set for a chip folder, which trains every chip
    whole, once an epoch: ``data.samples_per_epoch=8`` ran 13 steps at batch 4, unsaid (``data.crop`` was said in
    the run but not in ``--dry-run``, which says these too)."""
    if d["layout"] not in ("chips", None):
        return []
    said = []
    if d.get("crop"):  # chips are trained whole: the window is theirs, not data.crop
        said.append(f"data.crop {d['crop']}: chips are trained whole (data.crop crops the benchmark layouts' tiles); "
                    f"re-tile with --size {d['crop']} to train at that size")
    if d.get("samples_per_epoch") is not None:
        said.append(f"data.samples_per_epoch {d['samples_per_epoch']}: an epoch of chips is every train chip once "
                    "(it sets the benchmark layouts' epochs); fewer steps: a smaller chip folder or train.epochs")
    if d.get("crops_per_image", 1) != 1:
        said.append(f"data.crops_per_image {d['crops_per_image']}: chips are trained whole, once an epoch (it crops "
                    "the benchmark layouts' tiles)")
    # the benchmark layouts' own keys, ignored unsaid: data.eroded true scored chips on their full labels
    layouts = {"eroded": "isprs", "val_tiles": "isprs", "crop_stride": "isprs", "city": "isprs", "variant": "isprs",
               "dsm_source": "isprs", "domains": "loveda"}
    for key, layout in layouts.items():
        if key in d and d[key] != DEFAULTS["data"][key]:
            said.append(f"data.{key} {json.dumps(d[key])}: read by data.layout {layout} only; chips ignore it"
                        + (" (eroded scores of a map: rsmamba evaluate --erode)" if key == "eroded" else ""))
    return said


def land_cover_trained(task: str, train_ds: Any, cfg: dict) -> bool | None:
    """Whether a semantic change model's land-cover heads saw labels (None: not a change model, or unknown:
    from ``model.init`` they may carry what they learnt before). A model trained on change masks alone mapped
    'from' and 'to' classes with heads that never saw a label (27 % right, 92 % for the shipped model), exit 0:
    ``change --semantic`` refuses it by this."""
    if task != "semantic-change" or cfg["model"].get("init"):
        return None
    rows = getattr(train_ds, "rows", None)  # the benchmark layouts (SECOND, Landsat-SCD) always label both dates
    return True if rows is None else any(r.get("labels") or r.get("labels_t2") for r in rows)


def checkpoint_payload(cfg: dict, model_kwargs: dict, tiling: Any, use_dsm: bool) -> dict:
    """What every checkpoint of a run of ``cfg`` says about running its model (model, bands, normalisation,
    classes, config), from the data's ``tiling`` (:class:`~rsmamba.datasets.chips.TilingInfo`); also what
    ``import-weights`` writes beside the authors' weights, so theirs run as a model trained here would."""
    return {
        "model": cfg["model"]["name"], "model_kwargs": model_kwargs,
        "bands": {"image": tiling.bands, "dsm": bool(use_dsm),
                  **({"colours": tiling.colours} if getattr(tiling, "colours", None) else {}),
                  # a benchmark's files declaring other colours than they hold (ISPRS IRRG tiles declare RGB)
                  **({"declared": list(declared)} if (declared := (getattr(tiling, "raw", None) or {}).get(
                      "declared_colours")) and getattr(tiling, "colours", None) else {})},
        "normalization": tiling.normalization(cfg["data"]["dsm_mode"]) if use_dsm else
        {"image": tiling.normalization()["image"]},
        "classes": tiling.classes, "config": cfg,
    }


def prepare(cfg: dict, *, scoring: bool = False, run: Any = None) -> Prepared:
    """Open the datasets and build the model a resolved config asks for (no training state); ``scoring``:
    for :func:`score_checkpoint`, which scores ``data.val_split`` as it is (see :func:`open_datasets`);
    ``run``: the saved config of the run a resume continues (its model.init is not loaded again)."""
    d = cfg["data"]
    init_path = _resolve_init(cfg, run, "--test" if scoring else "model.init")  # (a test names no model.init)
    info_m = model_info(cfg["model"]["name"])
    check_metric(cfg["train"]["metric"], info_m.task)
    if problem := eval_problem(cfg, info_m.task):  # (a model.init's model is known here)
        raise InputError(problem)
    use_dsm = resolve_use_dsm(d, info_m)
    # no validation split: best.pt follows the training loss
    train_ds, val_ds = open_datasets(d, use_dsm=use_dsm, seed=cfg["train"]["seed"], scoring=scoring,
                                     instances=bool(cfg["model"].get("instances")) and not scoring)
    paired = d["layout"] in ("second", "landsat-scd") or any(r.get("t2") for r in getattr(train_ds, "rows", ()))
    if info_m.task != "segmentation" and not paired:  # it would fail at its first batch, wanting image2
        raise InputError(f"model {cfg['model']['name']!r} detects change between two dates, but "
                         f"{describe_roots(d['root'])} holds "
                         "single-date chips; tile epoch pairs (rsmamba tile --t2) or pick a segmentation model")
    if info_m.task != "segmentation" and d["layout"] in ("chips", None):
        _say_change_targets(train_ds, val_ds)
    if (cfg.get("augment") or {}).get("date_swap"):  # here, so train --dry-run refuses it too
        _check_date_swap(cfg["model"]["name"], info_m.task, train_ds)
    if (cfg.get("augment") or {}).get("date_jitter") and info_m.task == "segmentation":  # (it jittered the one
        # image unsaid, QA: a setting of change pairs, like date_swap)
        raise InputError(f"augment.date_jitter: jitters each date of a change pair on its own; "
                         f"{cfg['model']['name']!r} is a segmentation model (set it to false; augment.photometric "
                         "or augment.colour jitter one image)")
    tiling = train_ds.info
    classes = tiling.classes
    given = cfg["model"]["kwargs"].get("num_classes")
    num_classes = int(given if given is not None else (len(classes) or 6))
    names = [c["name"] for c in classes] if len(classes) == num_classes else [str(i) for i in range(num_classes)]
    n_img = len(tiling.image_mean)
    in_chans = n_img + (1 if train_ds.use_dsm and info_m.inputs == "image" else 0)
    model_kwargs = {**cfg["model"]["kwargs"], "num_classes": num_classes}
    top = max((int(k) for ds in (train_ds, val_ds) for r in getattr(ds, "rows", None) or ()
               for k in json.loads(r.get("class_hist") or "{}") if int(k) != IGNORE_INDEX), default=-1)
    if top >= num_classes:  # cross-entropy would index past the head mid-run (a device assert on a GPU)
        # said from where the number came: a received tiling.json's short table was blamed on a setting never made
        raise InputError(f"{describe_roots(d['root'])}: the chips hold class id {top}, but " + (
            f"model.kwargs.num_classes is {num_classes}; set it to at least {top + 1} (or leave it out: the chips' "
            "class table)" if given is not None else
            f"their class table (tiling.json) has {len(classes)} classes (ids 0..{len(classes) - 1}); re-tile them "
            f"with a class table that names id {top}" if classes else
            f"tiling.json names no classes (so {num_classes} are assumed); set model.kwargs.num_classes to at "
            f"least {top + 1}"))
    if given is not None and classes and given != len(classes):  # trained to the end, then refused by predict
        raise InputError(f"model.kwargs.num_classes {given!r}: the data's class table names {len(classes)} classes "
                         f"({', '.join(str(c.get('name')) for c in classes)}); leave it out")
    rows = getattr(train_ds, "rows", None) or []
    if rows and all(r.get("labels") for r in rows) and not held_classes(rows):
        # every loss 0.0, an untrained model saved as best.pt with exit 0: labels all nodata, a wrong field burnt
        raise InputError(f"{describe_roots(d['root'])}: the {d['train_split']} chips hold no labelled pixel "
                         "(every label is 255, "
                         "no label); check the label raster's nodata or the layer's class field, and re-tile")
    trained = held_classes(rows) if rows and all(r.get("class_hist") and not r.get("labels_t2")
                                                  for r in rows) else None  # (date 1's only)
    _check_class_settings(cfg, num_classes, names, trained)
    _warn_classes_missing_from_val(train_ds, val_ds, names, d["val_split"])
    if not scoring:
        _warn_classes_never_trained(train_ds, classes, names, d["train_split"], list(cfg["train"]["exclude_classes"]))
    instances = list(cfg["model"].get("instances") or [])
    if instances:  # a widened head: the class logits, then one logit per target channel
        if not scoring:  # a test scores the class outputs only (validate drops the others): it reads no targets
            if info_m.task != "segmentation" or d["layout"] not in ("chips", None):
                raise InputError("model.instances needs a segmentation model trained on chips from 'rsmamba tile'")
            bands = target_bands(train_ds.info.raw, instances, train_ds.root)
            for ds in (train_ds, val_ds):
                if ds is not None:
                    ds.target_bands = bands
        model_kwargs["num_classes"] = num_classes + len(instances)
    if info_m.inputs == "image+dsm" and not train_ds.use_dsm:
        has = getattr(getattr(train_ds, "info", None), "has_dsm", False)  # (told to re-tile what holds one)
        raise InputError(f"model {cfg['model']['name']!r} needs a DSM; " + (
            "the chips hold one, which data.use_dsm false leaves out: set it to true or null" if has
            else "tile with --dsm (data.use_dsm)"))
    if "in_chans" in info_m.defaults:  # image channels (+ DSM channel for single-input models)
        if model_kwargs.setdefault("in_chans", in_chans) != in_chans:
            raise InputError(f"model.kwargs.in_chans {model_kwargs['in_chans']}: the data give {in_chans} channels "
                             f"({n_img} image band{'s' * (n_img != 1)}{' + DSM' if in_chans > n_img else ''}); "
                             "leave it out")
    model = blame_model_kwargs(cfg, model_kwargs, lambda: build_model(cfg, model_kwargs),
                               lambda derived: build_model(cfg, derived))
    if cfg["model"].get("kwargs") and not scoring:  # a value the constructor let through fails at the first forward
        sample = train_ds[0]
        blame_model_kwargs(cfg, model_kwargs, lambda: probe_forward(model, sample, info_m.inputs, info_m.task),
                           lambda derived: probe_forward(build_model(cfg, derived), sample, info_m.inputs, info_m.task))
    if cfg["model"].get("pretrained"):  # local ImageNet weights for a part (a full --init wins over them)
        from rsmamba.pretrained import load_pretrained

        for r in load_pretrained(model, cfg["model"]["pretrained"], image_bands=n_img,
                                 dsm=bool(train_ds.use_dsm) and info_m.inputs == "image"):
            (log.warning if r.part_left_random else log.info)(f"pretrained: {r.describe()}")
    report = None
    if init_path is not None:
        from rsmamba.train.init import init_from_checkpoint

        from rsmamba.train.init import head_tensors, input_tensors

        known = [c["name"] for c in classes] if len(classes) == num_classes else None  # a named class table
        report = init_from_checkpoint(model, init_path, image_bands=n_img, dsm=bool(train_ds.use_dsm),
                                      num_classes=model_kwargs["num_classes"], extra=len(instances), instances=instances,
                                      inputs=input_tensors(cfg["model"]["name"], model_kwargs),
                                      class_names=known, heads=head_tensors(cfg["model"]["name"], model_kwargs),
                                      colours=getattr(train_ds.info, "colours", None))
    return Prepared(info_m, train_ds, val_ds, classes, num_classes, names, model_kwargs, model, report)


def _train(cfg: dict, world: int, rank: int, device: torch.device, resume, progress: bool,
           loaded: tuple[Path, dict] | None = None) -> TrainResult:
    t, d = cfg["train"], cfg["data"]
    out_dir = Path(cfg["out"])
    is_main = rank == 0
    if d["batch_size"] % world:
        raise InputError(f"data.batch_size {d['batch_size']} is not divisible by the {world} processes")
    _seed_everything(t["seed"], t["deterministic"])
    if device.type == "cuda":
        torch.cuda.set_device(device)

    prep = prepare(cfg, run=(loaded[1].get("config") if loaded is not None else None) if resume else None)
    info_m, train_ds, val_ds, tiling = prep.info, prep.train_ds, prep.val_ds, prep.train_ds.info
    classes, num_classes, names, model_kwargs = prep.classes, prep.num_classes, prep.names, prep.model_kwargs
    model = prep.model.to(device)
    if prep.init_report is not None and is_main and not resume:  # said without a terminal too (logs, -q: warnings)
        said = log.warning if prep.init_report.left_random or prep.init_report.unused else log.info
        # the model named: an explicit model.name=fcn_baseline (the default) gives way to the checkpoint's unsaid
        said(f"init: model {cfg['model']['name']}; {prep.init_report.describe()}")

    aug_cfg = cfg["augment"]
    chip_dtype = (getattr(tiling, "raw", None) or {}).get("dtype")
    if aug_cfg and aug_cfg.get("date_jitter") and chip_dtype not in (None, "uint8"):
        raise InputError(f"augment.date_jitter: Mamba-FCS's jitter works on 8-bit imagery (0..255, as PIL), the chips "
                         f"are {chip_dtype}; it would saturate them: drop it, or tile 8-bit imagery")
    augment = Augment(aug_cfg["flips"], aug_cfg["rot90"], aug_cfg["scale"], aug_cfg["photometric"],
                      dsm_channels=1 if train_ds.use_dsm else 0, scale_set=aug_cfg.get("scale_set"),
                      colour=aug_cfg.get("colour", 0.0), channel_shuffle=aug_cfg.get("channel_shuffle", 0.0),
                      grayscale=aug_cfg.get("grayscale", 0.0), date_jitter=bool(aug_cfg.get("date_jitter")),
                      image_norm=(list(train_ds.info.image_mean), list(train_ds.info.image_std)),
                      date_swap=float(aug_cfg.get("date_swap") or 0.0)) if aug_cfg else None
    seeded = _EpochSeeded(train_ds, augment, t["seed"])
    sampler = DistributedSampler(seeded, num_replicas=world, rank=rank, shuffle=True, seed=t["seed"], drop_last=True)
    local_batch = d["batch_size"] // world
    steps_per_epoch(describe_roots(d["root"]), len(train_ds), d["batch_size"], world)
    train_loader = DataLoader(seeded, batch_size=local_batch, sampler=sampler, num_workers=d["num_workers"],
                              collate_fn=_collate, drop_last=True)
    val_loader = None
    if val_ds is not None:
        val_loader = DataLoader(Subset(val_ds, list(range(rank, len(val_ds), world))), batch_size=local_batch,
                                num_workers=d["num_workers"], collate_fn=_collate)

    ddp_model: nn.Module = model
    if world > 1:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = build_loss(cfg["loss"]).to(device)
    optimizer = _build_optimizer(cfg, param_groups(cfg, model))
    scheduler = _build_scheduler(cfg, optimizer, len(train_loader))
    use_amp = bool(t["amp"]) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ema = None
    if t["ema"]:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(t["ema"])), use_buffers=True)

    start_epoch, best_metric, history = 0, -math.inf, []
    if resume:
        path, ckpt = loaded if loaded is not None else (
            Path(resume) if not isinstance(resume, bool) else out_dir / "last.pt", None)
        ckpt = ckpt if ckpt is not None else load_checkpoint(path)
        state = _train_state(path, ckpt)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            # another model, width or class count
            raise InputError(f"{path}: its training state does not fit this config's model (checkpoint: "
                             f"{ckpt.get('model')} {ckpt.get('model_kwargs')}; config: {cfg['model']['name']} "
                             f"{model_kwargs}); resume with the config that run was trained with") from exc
        try:
            _set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise InputError(f"{path}: its training state's random-number states are not ones this "
                             f"run can take ({first_line(exc)}); "
                             "it is no last.pt rsmamba wrote") from exc
        start_epoch, best_metric, history = state["epoch"], float(state["best_metric"]), state["history"]
        # a new train.epochs re-shapes the schedule: the optimiser brought back the old schedule's next rate (0 at
        # its end), which ran the first step and was logged as the epoch's rate while its other steps ran at the new
        now = [base * scheduler.lr_lambdas[0](scheduler.last_epoch) for base in scheduler.base_lrs]
        was = optimizer.param_groups[0]["lr"]
        if now != [group["lr"] for group in optimizer.param_groups]:
            for group, lr in zip(optimizer.param_groups, now):
                group["lr"] = lr
            if is_main:
                log.warning(f"train.epochs {t['epochs']}: the learning-rate schedule is re-stretched to it; "
                            f"epoch {start_epoch + 1} trains at {now[0]:.3g} (the run's schedule was at {was:.3g})")

    takes_over = not _continues_folder(resume, out_dir)  # a run new to the folder (train refused it without --overwrite)
    # config.yaml, the logs and the checkpoints are published together at the end of each epoch: until this
    # run's first epoch is complete, the folder holds the previous run whole (--overwrite), never a mix
    logger = EpochLog(out_dir, is_main, cfg["tensorboard"], history)
    base_payload = checkpoint_payload(cfg, model_kwargs, tiling, bool(train_ds.use_dsm))
    land_cover = land_cover_trained(info_m.task, train_ds, cfg)
    if land_cover is not None:
        base_payload["land_cover_trained"] = land_cover
    chips = d["layout"] in ("chips", None)
    for said in (unread_by_chips(d) if is_main else []):
        log.warning(said)
    seen = _chip_side(train_ds) if chips else d.get("crop")
    if seen:  # the window size the model learnt at runs it: predict's default (a 64 px model at 512 px saw 98 % building)
        base_payload["inference"] = {"window": int(seen), "overlap": int(seen) // 4}
    # what --resume checks the data against (_check_resume_data): the chips, or the benchmark's files read in place
    base_payload["data_fingerprint"] = (chips_fingerprint(d["root"]) if chips else
                                        layout_fingerprint(d["layout"], d["root"], train_ds, val_ds))
    if loaded is not None and not chips:  # a benchmark's files are known once its datasets are open
        _check_resume_data(loaded[0], loaded[1].get("data_fingerprint"), cfg, base_payload["data_fingerprint"])
    gsd = (getattr(tiling, "raw", None) or {}).get("gsd_m")
    if gsd:  # the chips' pixel size: predict warns on an image far from it (rsmamba.raster.validate.check_gsd)
        base_payload["gsd_m"] = [float(gsd), float(gsd)]
    if cfg["model"].get("instances"):
        base_payload["instances"] = {"channels": list(cfg["model"]["instances"]),
                                     "targets": tiling.raw.get("instance_targets")}
    log.debug("run: %s on %s, %d training samples (batch %d, %d step(s) an epoch), %s validation samples, "
              "%d data workers, AMP %s, from epoch %d", cfg["model"]["name"], device, len(train_ds), d["batch_size"],
              len(train_loader), len(val_ds) if val_ds is not None else "no", d["num_workers"], use_amp, start_epoch + 1)
    metric_name = t["metric"]
    warned = False
    said_once: set[str] = set()  # the validation's warnings given (each once a run)
    # what best.pt is chosen by: the val metric once an epoch has scored it (an epoch without it then never
    # replaces best.pt: minus a loss is no fscd), the training loss until then
    key = f"val_{metric_name}"
    best_by = key if any(key in row for row in history) else ("train_loss" if history else None)
    selected_by = best_by or "train_loss"
    epochs = t["epochs"]
    stop_after = t["stop_after_epochs"]
    epoch = start_epoch
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)
        seeded.epoch = epoch
        frozen = bool(t["freeze_prefixes"]) and epoch < int(t["freeze_epochs"])
        if t["freeze_prefixes"]:  # frozen stages for the first epochs of a fine-tune
            set_frozen(model, list(t["freeze_prefixes"]), frozen)
        model.train()
        if frozen:
            hold_frozen_norms(model, list(t["freeze_prefixes"]))
        total, count, skipped = 0.0, 0, 0
        epoch_lr = optimizer.param_groups[0]["lr"]  # the rate of the epoch's first step (after it, the next one's)
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=not (progress and is_main),
                   leave=False)
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                loss, _ = _forward_loss(ddp_model, batch, info_m.task, info_m.inputs, loss_fn, device)
            value = float(loss.detach())
            if not math.isfinite(value):  # before the step writes NaN into the weights; under AMP an overflow
                skipped += 1  # is the scaler's to skip (it lowers its scale), unless it goes on
                if not use_amp or skipped > max(8, len(train_loader) // 2):
                    raise RsmambaError(_diverged(f"epoch {epoch + 1}, step {count + skipped}, loss {value}",
                                                 float(cfg["optim"]["lr"]), out_dir, epoch > start_epoch))
            scaler.scale(loss).backward()
            if t["grad_clip"]:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), float(t["grad_clip"]))
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            if math.isfinite(value):
                total += value
                count += 1
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):  # the epoch's last step did it
            raise RsmambaError(_diverged(f"epoch {epoch + 1} ended with NaN or inf weights",
                                         float(cfg["optim"]["lr"]), out_dir, epoch > start_epoch))
        train_loss = total / max(count, 1)
        if world > 1:
            tl = torch.tensor([train_loss], dtype=torch.float64)
            dist.all_reduce(tl)
            train_loss = float(tl) / world
        eval_model = ema.module if ema is not None else model
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": epoch_lr}
        if val_loader is not None:
            row.update({f"val_{k}": v for k, v in validate(eval_model, val_loader, info_m.task, info_m.inputs,
                                                              num_classes, device, list(t["exclude_classes"]),
                                                              names, cfg["eval"]["scales"], cfg["eval"]["flip"],
                                                              fillers=fillers_of(classes), said=said_once,
                                                              split=d["val_split"]).items()})
        if val_loader is not None and key not in row and not warned:
            have = sorted(k[4:] for k, v in row.items() if k.startswith("val_") and isinstance(v, float))
            log.warning("train.metric %s: the validation data give no such score (they give %s)%s", metric_name,
                        ", ".join(have) or "none",
                        f" in epoch {epoch + 1}; best.pt stays the best epoch that scored it" if best_by == key else
                        "; best.pt follows the training loss until an epoch scores it")
            warned = True
        selected_by = key if key in row else "train_loss"
        score = row.get(key, -train_loss)
        history.append(row)
        # the metric's first score replaces a loss-chosen best.pt; later, only a better score does
        improved = (best_by != key or score > best_metric) if key in row else (best_by != key and score > best_metric)
        if improved:
            best_metric, best_by = score, selected_by
        if is_main:
            logger.add(row)
            weights = copy.deepcopy({k: v.detach().cpu() for k, v in eval_model.state_dict().items()})
            metrics = {**{k: v for k, v in row.items()}, "selected_by": selected_by}
            train_state = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                "rng": _rng_state(), "epoch": epoch + 1, "best_metric": best_metric, "history": history,
            }
            files = [name for name in RUN_FILES if improved or name != "best.pt"]
            with publish([out_dir / name for name in files], overwrite=True) as pub:
                if improved:
                    save_checkpoint(pub[out_dir / "best.pt"], {**base_payload, "state_dict": weights,
                                                                "metrics": metrics})
                save_checkpoint(pub[out_dir / "last.pt"], {**base_payload, "state_dict": weights,
                                                            "metrics": metrics, "train_state": train_state})
                logger.write(pub[out_dir / "metrics.csv"], pub[out_dir / "metrics.jsonl"])
                pub[out_dir / "config.yaml"].write_text(yaml.safe_dump(cfg, sort_keys=False))
            new_run = epoch == start_epoch and takes_over  # this run now holds the folder (--overwrite)
            replaced = {"last.pt", "best.pt"} if new_run or improved else {"last.pt"}
            if new_run and not improved and (out_dir / "best.pt").exists():  # a --resume-from whose best epoch is
                (out_dir / "best.pt").unlink()  # in its own folder: the replaced run's best.pt is no model of this run
                log.warning("removed %s, the replaced run's: this run writes its own once an epoch beats its best "
                            "so far", out_dir / "best.pt")
            for stale, name in _own_test_results(out_dir).items():  # train --test scores of a checkpoint now gone
                if name in replaced:
                    stale.unlink(missing_ok=True)
                    log.warning("removed %s: it scored the %s this run replaced (train --test scores the new one)",
                                stale, name)
            logger.published(row, new_run=new_run)
            scores = ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                               if k.startswith("val_") and isinstance(v, float) and not k.startswith("val_iou_"))
            # one line an epoch, kept in a piped, nohup or batch-system log (the bar of a terminal is erased)
            log.info("epoch %d/%d: train_loss %.4g%s%s", epoch + 1, epochs, train_loss, f", {scores}" if scores else "",
                     ", best so far (best.pt)" if improved else "")
        if world > 1:
            dist.barrier()
        if stop_after is not None and epoch + 1 - start_epoch >= stop_after:
            epoch += 1
            break
    else:
        epoch = max(epochs, start_epoch)  # a resumed run already past train.epochs stays where it is
    logger.close()
    if start_epoch >= epochs and resume:
        log.warning(f"train.epochs {epochs}: the run has {start_epoch} epoch{'s' * (start_epoch != 1)} already; "
                    "nothing trained (raise train.epochs to go on)")
    left_out = [names[c] for c in t["exclude_classes"] if 0 <= c < len(names)]
    # what best.pt was chosen by, not what the last epoch could score: 'best train loss -0.0059' was its fscd
    means = ("val_miou", "val_mf1") if info_m.task == "segmentation" else ("val_sem_miou", "val_sem_mf1")
    return TrainResult(out_dir, out_dir / "best.pt", out_dir / "last.pt", epoch, best_metric, history,
                       best_by or selected_by, left_out, means, planned=epochs if stop_after is not None else None,
                       scored_on={"chips": "val chip", "isprs": "val tile"}.get(cfg["data"].get("layout") or "chips",
                                                                                "val image"),
                       resumed_after=start_epoch)
