"""Test-time augmentation for predict: D4 symmetries, flips, input scales; softmax averaged.

A plan is written as a short spec that travels with the run (resume manifests, band tasks):
``False``/``"none"`` (plain), ``True``/``"d4"`` (the 8 rotations/mirrors), ``"flip"`` (identity,
left-right, up-down and both: the papers' flip evaluation, GeoSeg's horizontal x vertical flips), ``"rot180"`` (identity and the half turn: two passes
that cancel a network's constant sub-pixel offset, e.g. the half pixel south-east of stride-2 stems
upsampled with ``align_corners=False``), ``"scales=0.75,1,1.25"`` (multi-scale), joined
with ``+`` (``"flip+scales=0.75,1,1.25"``), or ``"recipe"``: the checkpoint's own evaluation
protocol (its training config's ``eval: {flip, scales}``, e.g. MAFMamba's multi-scale + flip).

Every window runs through :func:`tta_average`, the plain one too (one view, no division), so
no augmentation is exactly plain predict. Scaled views are resized bilinearly, padded by the
network's ``input_multiple`` like any window, and their probabilities resized back; a network
with a ``fixed_input_size`` only runs at that size, so scales other than 1 are refused for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rsmamba.errors import InputError
from rsmamba.runlog import warn_once

MAX_SCALE = 4.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TTAPlan:
    d4: bool = False
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    rot180: bool = False  # the identity and the half turn (d4 and flip hold it already)

    def views(self) -> list[tuple[int, bool, bool]]:
        """(quarter turns, left-right mirror, up-down mirror) per view, at each scale."""
        if self.d4:
            return [(k, lr, False) for lr in (False, True) for k in range(4)]
        if self.flip:
            return [(0, False, False), (0, True, False), (0, False, True), (2, False, False)]  # both: the half turn
        if self.rot180:
            return [(0, False, False), (2, False, False)]
        return [(0, False, False)]

    @property
    def passes(self) -> int:
        return len(self.views()) * len(self.scales)

    def spec(self) -> bool | str:
        """The value recorded for the run: False / True for plain / D4 as before, else a string."""
        parts = ["d4"] if self.d4 else ["flip"] if self.flip else ["rot180"] if self.rot180 else []
        if self.scales != (1.0,):
            parts.append("scales=" + ",".join(f"{s:g}" for s in self.scales))
        if parts == ["d4"]:
            return True
        return "+".join(parts) or False


def parse_scales(text: str, what: str = "--tta-scales") -> tuple[float, ...]:
    try:
        scales = tuple(float(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise InputError(f"{what} {text!r}: give scales as numbers, e.g. 0.75,1,1.25") from None
    bad = [s for s in scales if not 0 < s <= MAX_SCALE]
    if not scales or bad:
        raise InputError(f"{what} {text!r}: each scale must be in (0, {MAX_SCALE:g}]")
    if len(set(scales)) != len(scales):  # 1,1 ran two identical passes, said as '2 passes per window'
        raise InputError(f"{what} {text!r}: a scale given twice; give each once")
    return scales


def _from_recipe(config: Mapping[str, Any] | None, source: str) -> TTAPlan:
    if not config:
        raise InputError(f"--tta-recipe: {source} holds no training config (an untrained or foreign model); "
                         "give --tta / --tta-flip / --tta-scales")
    ev = config.get("eval") or {}
    scales = tuple(float(s) for s in ev.get("scales", [1.0]) or [1.0])
    return TTAPlan(flip=bool(ev.get("flip", False)), scales=parse_scales(",".join(map(str, scales)), "eval.scales"))


def parse_tta(spec: bool | str | TTAPlan | None, config: Mapping[str, Any] | None = None,
              source: str = "the model") -> TTAPlan:
    """A :class:`TTAPlan` from a spec (see the module docstring); ``config``: the checkpoint's, for ``recipe``."""
    if isinstance(spec, TTAPlan):
        return spec
    if spec is None or spec is False or spec == "none" or spec == "":
        return TTAPlan()
    if spec is True:
        return TTAPlan(d4=True)
    d4 = flip = rot180 = False
    scales: tuple[float, ...] = (1.0,)
    plan = None
    for token in str(spec).split("+"):
        token = token.strip()
        if token == "d4":
            d4 = True
        elif token == "flip":
            flip = True
        elif token == "rot180":
            rot180 = True
        elif token.startswith("scales="):
            scales = parse_scales(token[len("scales="):])
        elif token == "recipe":
            plan = _from_recipe(config, source)
        else:
            raise InputError(f"tta {spec!r}: unknown part {token!r} (d4, flip, rot180, scales=..., recipe)")
    if plan is not None:
        combined = TTAPlan(d4=d4 or plan.d4, flip=flip or plan.flip,
                           scales=plan.scales if scales == (1.0,) else scales, rot180=rot180)
        if plan.passes == 1:  # asked for augmentation, gets none: say so rather than run plain predict silently
            # (said of the whole plan: --tta-recipe --tta-rot180 was told 'one pass per window' and ran 2)
            runs = ("one pass per window" if combined.passes == 1 else
                    f"{combined.passes} passes per window, from the other TTA options alone")
            warn_once(log, f"tta recipe: {source} was evaluated without flips or scales (its config's eval); "
                           f"{runs}")  # once a run: a batch resolves it per scene
        return combined
    return TTAPlan(d4=d4, flip=flip, scales=scales, rot180=rot180)


def check_plan(plan: TTAPlan, module: torch.nn.Module, source: str) -> None:
    """Refuse scales a network cannot take (one built for a single input size)."""
    fixed = getattr(module, "fixed_input_size", None)
    other = [s for s in plan.scales if s != 1.0]
    if fixed is not None and other:
        raise InputError(f"model {source} runs only at its fixed input size {fixed[0]} x {fixed[1]} px: multi-scale "
                         f"TTA (scale {other[0]:g}) is impossible; use scale 1 (--tta-flip or --tta)")
    if fixed is not None and plan.d4 and fixed[0] != fixed[1]:
        raise InputError(f"model {source} runs only at its fixed input size {fixed[0]} x {fixed[1]} px: quarter "
                         "turns (--tta, D4) would change it; use --tta-flip")


def tta_average(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, plan: TTAPlan) -> torch.Tensor:
    """Mean of ``net``'s probabilities over the plan's views of ``x`` (B, C, h, w), at (h, w).

    ``net`` maps a batch of any size to probabilities of that size (padding is its business).
    """
    h, w = x.shape[-2:]
    total, n = None, 0
    for s in plan.scales:
        xs = x if s == 1.0 else F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))),
                                              mode="bilinear", align_corners=False)
        for k, lr, ud in plan.views():
            t = xs.flip(3) if lr else xs
            t = t.flip(2) if ud else t
            p = net(torch.rot90(t, k, dims=(2, 3)) if k else t)
            p = torch.rot90(p, -k, dims=(2, 3)) if k else p
            p = p.flip(2) if ud else p
            p = p.flip(3) if lr else p
            if p.shape[-2:] != (h, w):
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            total = p if total is None else total + p
            n += 1
    assert total is not None
    return total if n == 1 else total / n
