"""The one model registry, timm-style: ``create_model(name, **overrides)``.

Each architecture module registers a builder per preset (``"mambaseg"``, ``"mambaseg_tiny"``,
...) together with a :class:`ModelInfo` that ``rsmamba models`` prints, and, with
:func:`register_paper_preset`, the configuration and input size its paper counted at and the
numbers it reported, so that ``rsmamba models --params`` and ``bench/models.py`` compare like
with like. Importing any module of :mod:`rsmamba.models` first imports the package, which
imports every architecture module: the registry is complete before anyone reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from rsmamba.errors import InputError


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is: its task, inputs and where it comes from."""

    name: str
    task: str  # "segmentation" | "change" | "semantic-change"
    inputs: str  # e.g. "image", "image+dsm", "t1+t2"
    paper: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, tuple[Callable[..., nn.Module], ModelInfo]] = {}


def register_model(
    name: str, *, task: str, inputs: str, paper: str = "", **defaults: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder`` under ``name`` with default keyword arguments."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = (builder, ModelInfo(name, task, inputs, paper, dict(defaults)))
        return builder

    return wrap


@dataclass(frozen=True)
class PaperPreset:
    """How a paper counted a model: overrides of the registry defaults, input shapes, reported numbers."""

    name: str
    inputs: dict[str, tuple[int, ...]]
    overrides: dict[str, Any] = field(default_factory=dict)
    reported_params: float | None = None  # the paper's own figure only
    reported_gflops: float | None = None
    count_style: str = "thop"  # which of our two counts the paper's number corresponds to
    # Where the paper gives no count: every parameter of the authors' public module definitions (their
    # sum(p.numel())), kept apart from reported_params so no one reads it as a paper's figure.
    code_params: int | None = None


_PAPER: dict[str, PaperPreset] = {}


def register_paper_preset(name: str, **kwargs: Any) -> None:
    """Record how the paper of the registered model ``name`` counted it (see :class:`PaperPreset`)."""
    _PAPER[name] = PaperPreset(name, **kwargs)


def paper_preset(name: str) -> PaperPreset | None:
    return _PAPER.get(name)


def list_models() -> list[ModelInfo]:
    return [info for _, info in sorted(_REGISTRY.values(), key=lambda item: item[1].name)]


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise InputError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name][1]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; ``overrides`` replace the preset's defaults (e.g. ``in_chans``)."""
    if name not in _REGISTRY:
        raise InputError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    builder, info = _REGISTRY[name]
    kwargs = {**info.defaults, **overrides}
    return builder(**kwargs)


# Forward conventions every registered model follows (predict and train rely on them):
# - task "segmentation", inputs "image":      forward(image) -> logits (B, num_classes, H, W);
#   when a checkpoint uses a DSM with such a model, the caller concatenates it to the image channels.
# - task "segmentation", inputs "image+dsm":  forward(image, aux) -> logits (B, num_classes, H, W).
# - task "change" / "semantic-change", inputs "t1+t2": forward(t1, t2) -> dict with "change"
#   (B, 2, H, W) logits and, for semantic change, "sem1" / "sem2" (B, num_classes, H, W).
