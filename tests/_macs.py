"""thop MACs of a model at a paper's input size, counted on the meta device in about a second.

thop hooks conv / linear / norm modules and computes their MACs from tensor shapes; it leaves
the selective scan out (it is not a module), as it did for the papers. So the scan can be
replaced by a shape-only stand-in and the whole forward run on meta tensors: no memory, no
arithmetic, the same count. ``tests/test_model_structure.py`` checks that equality against a real
CPU forward on a small input.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

# Modules that bound ``selective_scan`` by name at import time.
_SCAN_USERS = ("rsmamba.kernels.ss2d", "rsmamba.kernels.mamba1d", "rsmamba.models.mambaseg")


def _shape_only_scan(u: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return torch.zeros_like(u)


@contextlib.contextmanager
def scan_stubbed():
    import importlib

    saved = []
    for name in _SCAN_USERS:
        mod = importlib.import_module(name)
        if hasattr(mod, "selective_scan"):
            saved.append((mod, mod.selective_scan))
            mod.selective_scan = _shape_only_scan
    try:
        yield
    finally:
        for mod, fn in saved:
            mod.selective_scan = fn


def thop_macs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """thop.profile's MACs (hooks on module types, as the papers counted)."""
    import thop

    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        macs, _ = thop.profile(model.eval(), inputs=tuple(inputs), verbose=False)
    return float(macs)


def meta_macs(build, shapes: Sequence[Sequence[int]]) -> float:  # type: ignore[no-untyped-def]
    """Build the model on the meta device and count thop MACs with the scan stubbed."""
    with torch.device("meta"):
        model = build()
        inputs = [torch.empty(*s) for s in shapes]
    with scan_stubbed():
        return thop_macs(model, inputs)
