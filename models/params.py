"""Parameter and MAC counting, both the plain way and the way the papers did (``thop``).

Papers in this zoo report ``thop.profile`` numbers. thop 0.1.1 counts the parameters of a
module only when its *exact* type has a rule (``nn.Conv2d``, plain ``nn.Linear``, norms, ...)
and the module ran in the forward pass: subclasses such as VMamba's ``Linear2d`` /
``LayerNorm2d`` and parameters held directly by a module (SS2D's ``A_logs``, ``Ds``,
``x_proj_weight``, ``dt_projs_*``) are left out. That is why MambaSeg's "25.44 M" is about a
quarter of its real size; report both numbers and say which one a paper used.

Our "thop-style" count (:func:`count_parameters_thop_style`) applies thop's type rule without
running the model, so it also counts modules of those types that never run: Mamba-FCS's
``cross_attn`` (kept so the authors' state dicts load) and FMTUNet's Mamba ``dt_proj`` (applied
functionally, as mamba-ssm does). ``thop.profile`` leaves those out (:func:`thop_profile_meta`:
189.55 M against 195.13 M, 248.75 M against 249.46 M); for the other models the two agree.

Where our code subclasses a layer the authors used as is (only to change how it computes, not
what), the subclass names the type thop should see in a ``thop_type`` class attribute, so the
counts follow the authors' code, not our refactoring.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["ModelCounts", "count_parameters", "count_parameters_thop_style", "thop_profile", "profile_model",
           "thop_macs_meta", "thop_profile_meta", "shape_only_scan"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Every (unique) parameter of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _thop_rule_types() -> set[type]:
    try:
        from thop.profile import register_hooks
    except ImportError:  # thop absent: the exact-type rules it ships with that hold parameters (no GroupNorm:
        return {           # thop has no rule for it: FMTUNet's GroupNorms read 249.54 M here, 249.46 M with thop)
            nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
            nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.InstanceNorm1d,
            nn.InstanceNorm2d, nn.InstanceNorm3d, nn.PReLU, nn.Linear, nn.RNN, nn.RNNCell, nn.GRU, nn.GRUCell,
            nn.LSTM, nn.LSTMCell,
        }
    return {t for t in register_hooks if isinstance(t, type)}


def count_parameters_thop_style(model: nn.Module, used: set[nn.Module] | None = None) -> int:
    """The parameters of every module whose exact type thop has a rule for, whether or not it runs.

    No forward pass, so no input size. ``thop.profile`` counts only the modules that ran:
    ``used`` (modules that ran in a forward pass) narrows it to that; without it, modules that
    never run count too (see the module docstring for the two models where that differs).
    """
    rules = _thop_rule_types()
    total = 0
    for module in model.modules():
        counted = getattr(type(module), "thop_type", type(module))
        if counted in rules and (used is None or module in used):
            total += sum(p.numel() for p in module.parameters(recurse=False))
    return total


def _stand_in_rules(model: nn.Module) -> dict[type, object]:
    """thop's rules for our subclasses that stand for a plain layer (``thop_type``)."""
    from thop.profile import register_hooks

    return {type(m): register_hooks[type(m).thop_type] for m in model.modules()
            if getattr(type(m), "thop_type", None) in register_hooks}


def thop_profile(model: nn.Module, inputs: Sequence[Tensor]) -> tuple[float, int]:
    """``thop.profile`` exactly as the authors called it: (MACs, parameters), on a copy of the model."""
    import thop

    clone = copy.deepcopy(model).eval()
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        macs, params = thop.profile(clone, inputs=tuple(inputs), custom_ops=_stand_in_rules(clone), verbose=False)
    return float(macs), int(params)


@dataclass(frozen=True)
class ModelCounts:
    """Counts for one model at one input size."""

    params_all: int
    params_thop: int
    macs_thop: float | None = None  # thop's MACs (what papers call FLOPs); None when not run

    @property
    def gflops(self) -> float | None:
        return None if self.macs_thop is None else self.macs_thop / 1e9


def profile_model(model: nn.Module, inputs: Sequence[Tensor] | None = None) -> ModelCounts:
    """All-parameter and thop-style counts; with ``inputs``, thop's own count and MACs (runs a forward pass)."""
    if inputs is None:
        return ModelCounts(count_parameters(model), count_parameters_thop_style(model))
    macs, params = thop_profile(model, inputs)
    return ModelCounts(count_parameters(model), params, macs)


# Modules that bound ``selective_scan`` by name at import time (the scan is not a module, so thop
# never counted it; a shape-only stand-in changes no count).
_SCAN_USERS = ("rsmamba.models.ss2d", "rsmamba.models.mamba1d", "rsmamba.models.mambaseg")


@contextlib.contextmanager
def shape_only_scan():  # type: ignore[no-untyped-def]
    import importlib

    def stand_in(u: Tensor, *args, **kwargs) -> Tensor:  # type: ignore[no-untyped-def]
        return torch.zeros_like(u)

    saved = []
    for name in _SCAN_USERS:
        module = importlib.import_module(name)
        if hasattr(module, "selective_scan"):
            saved.append((module, module.selective_scan))
            module.selective_scan = stand_in
    try:
        yield
    finally:
        for module, fn in saved:
            module.selective_scan = fn


def thop_profile_meta(build, shapes: Sequence[Sequence[int]]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """``thop.profile``'s (MACs, parameters) for ``build()`` at input ``shapes``, on the meta device:
    no memory, about a second.

    thop computes every count from tensor shapes, so a forward on meta tensors with the scan
    replaced by a shape-only stand-in gives exactly the numbers of a real CPU run (tested).
    """
    import thop

    with torch.device("meta"):
        model = build().eval()
        inputs = tuple(torch.empty(*s) for s in shapes)
    with shape_only_scan(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        macs, params = thop.profile(model, inputs=inputs, custom_ops=_stand_in_rules(model), verbose=False)
    return float(macs), int(params)


def thop_macs_meta(build, shapes: Sequence[Sequence[int]]) -> float:  # type: ignore[no-untyped-def]
    """thop's MACs for ``build()`` at input ``shapes``, on the meta device (:func:`thop_profile_meta`)."""
    return thop_profile_meta(build, shapes)[0]
