"""Plain-CNN baselines: the yardstick every Mamba model must beat, and the test workhorses.

``fcn_baseline`` is a small U-shaped CNN for segmentation; ``siam_diff_baseline`` shares that
encoder between two dates and decodes |f1 - f2| for change (plus per-date semantics). They are
cheap enough to train in seconds on a CPU, so the training/evaluation machinery is tested end to
end without waiting for the Mamba zoo.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rsmamba.models.registry import register_model


def _norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm by default; GroupNorm makes a sample's output independent of its batch-mates
    (what a DDP-equals-single-process check needs on CPU, where SyncBatchNorm is not available)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(4, channels), channels)
    raise ValueError(f"norm must be 'batch' or 'group', got {kind!r}")


def _conv_block(cin: int, cout: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True),
    )


class _Encoder(nn.Module):
    """Three resolutions (1, 1/2, 1/4) of features."""

    def __init__(self, in_chans: int, width: int, norm: str = "batch"):
        super().__init__()
        self.stages = nn.ModuleList([_conv_block(in_chans, width, norm), _conv_block(width, 2 * width, norm),
                                     _conv_block(2 * width, 4 * width, norm)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class _Decoder(nn.Module):
    def __init__(self, width: int, num_classes: int, norm: str = "batch"):
        super().__init__()
        self.up2 = _conv_block(4 * width + 2 * width, 2 * width, norm)
        self.up1 = _conv_block(2 * width + width, width, norm)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3 = feats
        x = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        x = self.up2(torch.cat([x, f2], 1))
        x = F.interpolate(x, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.up1(torch.cat([x, f1], 1)))


class FCNBaseline(nn.Module):
    """Small U-Net-like CNN: forward(image) -> logits (B, num_classes, H, W)."""

    def __init__(self, in_chans: int = 3, num_classes: int = 6, width: int = 16, norm: str = "batch"):
        super().__init__()
        self.input_multiple = 4  # two 2x2 max-pools
        self.fixed_input_size: tuple[int, int] | None = None
        self.encoder = _Encoder(in_chans, width, norm)
        self.decoder = _Decoder(width, num_classes, norm)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))


class SiamDiffBaseline(nn.Module):
    """Siamese CNN: shared encoder; change decoded from |f1 - f2|, semantics per date.

    forward(t1, t2) -> {"change": (B, 2, H, W), "sem1": (B, C, H, W), "sem2": (B, C, H, W)}.
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 6, width: int = 16, norm: str = "batch"):
        super().__init__()
        self.input_multiple = 4  # two 2x2 max-pools
        self.fixed_input_size: tuple[int, int] | None = None
        self.encoder = _Encoder(in_chans, width, norm)
        self.change_decoder = _Decoder(width, 2, norm)
        self.semantic_decoder = _Decoder(width, num_classes, norm)

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> dict[str, torch.Tensor]:
        f1, f2 = self.encoder(t1), self.encoder(t2)
        diff = [torch.abs(a - b) for a, b in zip(f1, f2)]
        return {"change": self.change_decoder(diff), "sem1": self.semantic_decoder(f1),
                "sem2": self.semantic_decoder(f2)}


@register_model("fcn_baseline", task="segmentation", inputs="image", paper="plain CNN baseline (rsmamba)",
                in_chans=3, num_classes=6, width=16)
def fcn_baseline(**kwargs) -> FCNBaseline:
    return FCNBaseline(**kwargs)


@register_model("siam_diff_baseline", task="semantic-change", inputs="t1+t2",
                paper="Siamese difference CNN baseline (rsmamba)", in_chans=3, num_classes=6, width=16)
def siam_diff_baseline(**kwargs) -> SiamDiffBaseline:
    return SiamDiffBaseline(**kwargs)
