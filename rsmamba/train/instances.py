"""Instance outputs for any segmentation model of the zoo (issue #17).

Why: separating touching buildings needs per-pixel interior/contact predictions beside the
classes. Rather than changing a network's body, its head is widened: the model is built with
``num_classes + k`` output channels (every registry model takes ``num_classes``), the first
``num_classes`` are the class logits (softmax, the usual loss) and the last ``k`` are independent
logits for the target channels of ``rsmamba tile --instance-targets`` (sigmoid, BCE + Dice).
The checkpoint records ``instances: {"channels": [...]}`` so predict knows which outputs are which.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsmamba.errors import InputError

ATTRIBUTE = "rsmamba_instance_channels"  # a plain attribute on the module: not in its state dict


def instance_channels(model: nn.Module) -> int:
    """How many trailing output channels of ``model`` are instance targets (0: a plain model)."""
    return int(getattr(getattr(model, "module", model), ATTRIBUTE, 0))


def mark(model: nn.Module, k: int) -> nn.Module:
    setattr(model, ATTRIBUTE, int(k))
    return model


def target_bands(tiling: dict, channels: list[str], root) -> list[int]:
    """0-based bands of the ``targets/`` chips holding ``channels``; one-line errors when absent."""
    meta = tiling.get("instance_targets")
    if not meta:  # said with both ways out: a plain model needs no targets
        raise InputError(f"{root}: model.instances ({', '.join(channels)}) trains on instance-target chips "
                         "(targets/), which these chips lack (tiling.json has no instance_targets): tile the scene "
                         "again with --instance-targets FOOTPRINTS (building polygons, or an instance raster on the "
                         "image grid), or leave model.instances out")
    have = list(meta.get("channels") or [])
    missing = [c for c in channels if c not in have]
    if missing:
        raise InputError(f"model.instances: {', '.join(missing)} not among the target channels of {root} "
                         f"({', '.join(have)})")
    return [have.index(c) for c in channels]


def instance_loss(logits: torch.Tensor, targets: torch.Tensor, ignore: int = 255,
                  max_pos_weight: float = 10.0) -> torch.Tensor:
    """Class-balanced BCE + soft Dice per channel over valid pixels.

    (B, k, H, W) logits and 0/1/ignore targets. Contacts are a few per cent of the pixels: each
    channel's positives weigh ``negatives / positives`` (at most ``max_pos_weight``), so the thin
    party-wall band is not drowned by the easy background.
    """
    valid = targets != ignore
    t = torch.where(valid, targets, torch.zeros_like(targets)).float()
    w = valid.float()
    logits = logits.float()
    pos = (t * w).sum((0, 2, 3))
    neg = ((1 - t) * w).sum((0, 2, 3))
    pos_weight = (neg / pos.clamp_min(1.0)).clamp(1.0, max_pos_weight)[None, :, None, None]
    weight = w * torch.where(t > 0, pos_weight, torch.ones_like(t))
    bce = F.binary_cross_entropy_with_logits(logits, t, weight=weight, reduction="sum") / weight.sum().clamp_min(1.0)
    p = torch.sigmoid(logits) * w  # Dice over valid pixels, unweighted (a weighted p could exceed 1)
    dims = (0, 2, 3)
    dice = 1 - (2 * (p * t).sum(dims) + 1.0) / (p.sum(dims) + t.sum(dims) + 1.0)
    return bce + dice.mean()


def split_probabilities(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Class softmax and instance sigmoids side by side: (B, C + k, H, W) -> probabilities."""
    if not k:
        return torch.softmax(logits, dim=1)
    return torch.cat([torch.softmax(logits[:, :-k], dim=1), torch.sigmoid(logits[:, -k:])], dim=1)
