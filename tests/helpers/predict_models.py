"""Small networks for predict tests: cheap, deterministic, registered for checkpoint round trips."""

from __future__ import annotations

import torch
import torch.nn as nn

from rsmamba.models.registry import _REGISTRY, register_model


class TinyConv(nn.Module):
    """Two 3x3 convs: translation-equivariant away from the (zero-padded) window border."""

    input_multiple = 1  # the contract of every registered model (any size in, the same size out)
    fixed_input_size = None

    def __init__(self, in_chans: int = 3, num_classes: int = 4, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, num_classes, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * 3.0


class PixelArgmax(nn.Module):
    """Per-pixel model: class = band holding the largest value (logits = scaled bands)."""

    def __init__(self, in_chans: int = 3, num_classes: int = 3) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def register_test_models() -> None:
    if "test_tinyconv" not in _REGISTRY:
        register_model("test_tinyconv", task="segmentation", inputs="image", in_chans=3, num_classes=4)(TinyConv)


def tiny_rgb_checkpoint(seed: int = 0) -> dict:
    """A checkpoint payload of an untrained ``fcn_baseline`` (width 8) on RGB with ISPRS classes, for tests
    of what a checkpoint carries beside its weights (its window, its TTA)."""
    from rsmamba.classes import ISPRS_CLASSES
    from rsmamba.models import create_model

    torch.manual_seed(seed)
    net = create_model("fcn_baseline", in_chans=3, num_classes=6, width=8)
    return {"model": "fcn_baseline", "model_kwargs": {"in_chans": 3, "num_classes": 6, "width": 8},
            "state_dict": net.state_dict(), "bands": {"image": [1, 2, 3], "dsm": False},
            "normalization": {"image": {"mean": [120.0] * 3, "std": [50.0] * 3}},
            "classes": [c.to_dict() for c in ISPRS_CLASSES]}


def scene_and_checkpoints(root, *, size: int, seed: int, inference: dict) -> tuple[dict, object, object]:
    """A synthetic scene at 0.5 m and :func:`tiny_rgb_checkpoint` saved twice: plain, and with ``inference``."""
    from rsmamba.checkpoint import save_checkpoint
    from rsmamba.synth import write_scene

    paths = write_scene(root / "s", size=size, seed=seed, gsd=0.5)
    payload = tiny_rgb_checkpoint()
    return (paths, save_checkpoint(root / "plain.pt", payload),
            save_checkpoint(root / "own.pt", {**payload, "inference": inference}))
