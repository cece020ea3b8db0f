"""Small networks for predict tests: cheap, deterministic, registered for checkpoint round trips."""

from __future__ import annotations

import torch
import torch.nn as nn

from rsmamba.models.registry import _REGISTRY, register_model


class TinyConv(nn.Module):
    """Two 3x3 convs: translation-equivariant away from the (zero-padded) window border."""

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
