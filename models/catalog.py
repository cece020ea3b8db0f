"""What ``rsmamba models`` prints: every registered model with its task, inputs and parameter counts.

Models are built on the ``meta`` device, so listing even the 200 M-parameter presets costs no
memory and about no time. Architecture modules declare, with :func:`register_paper_preset`,
the configuration and input size their paper counted at and the number it reported, so that
``rsmamba models --params`` and ``bench/models.py`` compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rsmamba.models.params import count_parameters, count_parameters_thop_style
from rsmamba.models.registry import create_model, list_models

__all__ = ["PaperPreset", "ModelRow", "register_paper_preset", "paper_preset", "model_rows", "format_rows"]


@dataclass(frozen=True)
class PaperPreset:
    """How a paper counted a model: overrides of the registry defaults, input shapes, reported numbers."""

    name: str
    inputs: dict[str, tuple[int, ...]]
    overrides: dict[str, Any] = field(default_factory=dict)
    reported_params: float | None = None
    reported_gflops: float | None = None
    count_style: str = "thop"  # which of our two counts the paper's number corresponds to


_PAPER: dict[str, PaperPreset] = {}


def register_paper_preset(name: str, **kwargs: Any) -> None:
    _PAPER[name] = PaperPreset(name, **kwargs)


def paper_preset(name: str) -> PaperPreset | None:
    list_models()  # make sure every architecture module is imported
    return _PAPER.get(name)


@dataclass(frozen=True)
class ModelRow:
    name: str
    task: str
    inputs: str
    paper: str
    params_all: int
    params_thop: int
    reported_params: float | None = None
    count_style: str = ""


def model_rows(paper: bool = False) -> list[ModelRow]:
    """One row per registered model; ``paper=True`` counts at the paper presets where there is one."""
    rows = []
    for info in list_models():
        preset = _PAPER.get(info.name) if paper else None
        with torch.device("meta"):
            model = create_model(info.name, **(preset.overrides if preset else {}))
        rows.append(ModelRow(
            info.name, info.task, info.inputs, info.paper, count_parameters(model),
            count_parameters_thop_style(model),
            preset.reported_params if preset else None, preset.count_style if preset else "",
        ))
    return rows


def format_rows(rows: list[ModelRow]) -> str:
    """A plain-text table (M = 10^6 parameters)."""
    header = f"{'model':<16} {'task':<16} {'inputs':<10} {'params(all)':>12} {'params(thop)':>13} {'paper':>8}  source"
    lines = [header, "-" * len(header)]
    for r in rows:
        reported = f"{r.reported_params / 1e6:.2f}M" if r.reported_params else "-"
        lines.append(
            f"{r.name:<16} {r.task:<16} {r.inputs:<10} {r.params_all / 1e6:>11.2f}M {r.params_thop / 1e6:>12.2f}M "
            f"{reported:>8}  {r.paper}" + (f" [paper counted {r.count_style}-style]" if r.reported_params else "")
        )
    return "\n".join(lines)
