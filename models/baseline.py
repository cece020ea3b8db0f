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


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class _Encoder(nn.Module):
    """Three resolutions (1, 1/2, 1/4) of features."""

    def __init__(self, in_chans: int, width: int):
        super().__init__()
        self.stages = nn.ModuleList([_conv_block(in_chans, width), _conv_block(width, 2 * width),
                                     _conv_block(2 * width, 4 * width)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class _Decoder(nn.Module):
    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.up2 = _conv_block(4 * width + 2 * width, 2 * width)
        self.up1 = _conv_block(2 * width + width, width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3 = feats
        x = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        x = self.up2(torch.cat([x, f2], 1))
        x = F.interpolate(x, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.up1(torch.cat([x, f1], 1)))


class FCNBaseline(nn.Module):
    """Small U-Net-like CNN: forward(image) -> logits (B, num_classes, H, W)."""

    def __init__(self, in_chans: int = 3, num_classes: int = 6, width: int = 16):
        super().__init__()
        self.encoder = _Encoder(in_chans, width)
        self.decoder = _Decoder(width, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))


class SiamDiffBaseline(nn.Module):
    """Siamese CNN: shared encoder; change decoded from |f1 - f2|, semantics per date.

    forward(t1, t2) -> {"change": (B, 2, H, W), "sem1": (B, C, H, W), "sem2": (B, C, H, W)}.
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 6, width: int = 16):
        super().__init__()
        self.encoder = _Encoder(in_chans, width)
        self.change_decoder = _Decoder(width, 2)
        self.semantic_decoder = _Decoder(width, num_classes)

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
