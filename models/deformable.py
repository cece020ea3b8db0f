"""Deformable sampling without torchvision: DCNv2-style k x k sampling by ``F.grid_sample``.

Used by FMTUNet's Hybrid Deformable Attention as a *cross* attention: the offsets and the
modulation come from the query modality, the samples from the other one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


GRIDS = ("centres", "authors")


def deformable_sample(value: Tensor, offset: Tensor, kernel_size: int = 3, grid_mode: str = "centres") -> Tensor:
    """Sample ``value`` (B, C, H, W) at the k*k kernel taps of every pixel moved by ``offset``.

    ``offset``: (B, 2*k*k, H, W), the first k*k channels along H, the next k*k along W, in pixels.
    Returns (B, C, k*k, H, W); taps that land outside the map read zeros (bilinear).
    ``grid_mode="centres"`` samples the true pixel centres (a zero offset reads the pixel itself);
    ``"authors"`` reproduces FMTUNet's code: the map zero-padded by k//2, the positions (in the
    unpadded frame) normalised by the padded size minus one and read with ``align_corners=False``,
    which shifts every tap by about half a pixel (plus the padding offset) towards the top-left.
    """
    if grid_mode not in GRIDS:
        raise ValueError(f"grid_mode must be one of {GRIDS}, not {grid_mode!r}")
    b, c, h, w = value.shape
    n = kernel_size * kernel_size
    r = (kernel_size - 1) // 2
    taps = torch.arange(-r, r + 1, dtype=offset.dtype, device=offset.device)
    tap_y, tap_x = torch.meshgrid(taps, taps, indexing="ij")
    base_y = torch.arange(h, dtype=offset.dtype, device=offset.device).view(1, 1, h, 1)
    base_x = torch.arange(w, dtype=offset.dtype, device=offset.device).view(1, 1, 1, w)
    py = base_y + tap_y.reshape(1, n, 1, 1) + offset[:, :n]
    px = base_x + tap_x.reshape(1, n, 1, 1) + offset[:, n:]
    if grid_mode == "authors":
        value = F.pad(value, (r, r, r, r))
        hp, wp = h + 2 * r, w + 2 * r
        grid = torch.stack([2 * px / (wp - 1) - 1, 2 * py / (hp - 1) - 1], dim=-1)
        sampled = F.grid_sample(value, grid.reshape(b, n * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=False)
        return sampled.reshape(b, c, n, h, w)
    grid = torch.stack([2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1], dim=-1)  # (B, n, H, W, 2)
    sampled = F.grid_sample(value, grid.reshape(b, n * h, w, 2), mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled.reshape(b, c, n, h, w)


class DeformableCrossAttention(nn.Module):
    """Modulated deformable 3x3 "convolution" of ``value`` steered by ``query``.

    Offsets and modulation masks are zero-initialised (the module starts as a plain 3x3 conv on
    the other modality with masks 0.5); the k*k samples are mixed by one 1x1 conv (C*k*k -> C).
    """

    def __init__(self, channels: int, out_channels: int | None = None, kernel_size: int = 3, grid_mode: str = "centres") -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.grid_mode = grid_mode
        n = kernel_size * kernel_size
        self.conv = nn.Conv2d(channels * n, out_channels or channels, 1, bias=False)
        self.offset_conv = nn.Conv2d(channels, 2 * n, 3, padding=1)
        self.modulator_conv = nn.Conv2d(channels, n, 3, padding=1)
        for conv in (self.offset_conv, self.modulator_conv):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, query: Tensor, value: Tensor) -> Tensor:
        b, c, h, w = value.shape
        samples = deformable_sample(value, self.offset_conv(query), self.kernel_size, self.grid_mode)
        samples = samples * torch.sigmoid(self.modulator_conv(query)).unsqueeze(1)
        return self.conv(samples.reshape(b, c * self.kernel_size**2, h, w))
