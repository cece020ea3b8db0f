"""What ``rsmamba models`` prints: every registered model with its task, inputs and parameter counts.

The counts are all parameters and thop-style ones (:func:`rsmamba.models.params.count_parameters_thop_style`:
modules of a type thop has a rule for, whether or not they run).

Models are built on the ``meta`` device, so listing even the 200 M-parameter presets costs no
memory and about no time; ``paper=True`` counts at each model's paper preset (kept by
:mod:`rsmamba.models.registry`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from rsmamba.models.params import count_parameters, count_parameters_thop_style
from rsmamba.models.registry import create_model, list_models, paper_preset

__all__ = ["ModelRow", "model_rows", "format_rows"]


@dataclass(frozen=True)
class ModelRow:
    name: str
    task: str
    inputs: str
    paper: str
    params_all: int
    params_thop: int
    reported_params: float | None = None  # the paper's figure
    count_style: str = ""
    code_params: int | None = None  # the authors' code's count, where the paper gives none


def model_rows(paper: bool = False, names: Iterable[str] | None = None) -> list[ModelRow]:
    """One row per registered model (or per name in ``names``); ``paper=True`` counts at the paper presets."""
    rows = []
    wanted = None if names is None else set(names)
    for info in list_models():
        if wanted is not None and info.name not in wanted:
            continue
        preset = paper_preset(info.name) if paper else None
        model = _build_for_counting(info.name, preset.overrides if preset else {})
        rows.append(ModelRow(
            info.name, info.task, info.inputs, info.paper, count_parameters(model),
            count_parameters_thop_style(model),
            preset.reported_params if preset else None, preset.count_style if preset else "",
            preset.code_params if preset else None,
        ))
    return rows


def _build_for_counting(name: str, overrides: dict[str, Any]) -> torch.nn.Module:
    """On the meta device (no memory, no init time) when the builder allows it, else on the CPU."""
    try:
        with torch.device("meta"):
            return create_model(name, **overrides)
    except (NotImplementedError, RuntimeError):  # a builder that reads tensor values while building
        return create_model(name, **overrides)


def format_rows(rows: list[ModelRow]) -> str:
    """A plain-text table (M = 10^6 parameters); the name column as wide as the longest name.

    ``paper`` holds only a paper's own figure; where a paper gives none, the authors' code's count
    goes in a note, so that it is not read as one."""
    w = max([16, *(len(r.name) for r in rows)])
    header = (f"{'model':<{w}} {'task':<16} {'inputs':<10} {'params(all)':>12} {'thop-style':>12} "
              f"{'paper':>8}  source")
    lines = [header, "-" * len(header)]
    for r in rows:
        reported = f"{r.reported_params / 1e6:.2f}M" if r.reported_params else "-"
        note = f" [paper counted {r.count_style}-style]" if r.reported_params else ""
        if r.code_params:
            note += f" [paper gives none; the authors' code holds {r.code_params / 1e6:.2f}M]"
        lines.append(
            f"{r.name:<{w}} {r.task:<16} {r.inputs:<10} {r.params_all / 1e6:>11.2f}M {r.params_thop / 1e6:>11.2f}M "
            f"{reported:>8}  {r.paper}{note}"
        )
    return "\n".join(lines)
