"""UNetFormer's global-local window attention, with CMT-UNet's wavelet projection.

Global: multi-head self-attention inside non-overlapping ws x ws windows with a relative
position bias, then axial average pooling (ws x 1 and 1 x ws) to let windows talk. Local: a 3x3
and a 1x1 conv-BN. ``local_channels`` lets the local branch read a *different* tensor (CMT-UNet's
fusion: attention from the CNN feature, local detail from the VSS feature).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rsmamba.models.wavelet import SeparableWTConv2d


def _reflect_pad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Reflect padding, falling back to replicate on maps too small to reflect (1 pixel)."""
    h, w = x.shape[-2:]
    ok = max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h
    return F.pad(x, pad, mode="reflect" if ok else "replicate")


def _conv_bn(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, bias=False), nn.BatchNorm2d(cout))


class GlobalLocalAttention(nn.Module):
    """Window attention + axial pooling + conv local branch; projection by a separable WTConv."""

    def __init__(
        self, dim: int, num_heads: int = 8, window_size: int = 8, local_channels: int | None = None, qkv_bias: bool = False
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        local_channels = local_channels or dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.ws = window_size
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)
        self.local1 = _conv_bn(local_channels, dim, 3)
        self.local2 = _conv_bn(local_channels, dim, 1)
        self.proj = SeparableWTConv2d(dim, dim, kernel_size=window_size)
        self.attn_x = nn.AvgPool2d((window_size, 1), stride=1, padding=(window_size // 2 - 1, 0))
        self.attn_y = nn.AvgPool2d((1, window_size), stride=1, padding=(0, window_size // 2 - 1))
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window_size - 1) + rel[..., 1], persistent=False)

    @staticmethod
    def _pad_to(x: Tensor, multiple: int) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % multiple, (-w) % multiple
        return _reflect_pad(x, (0, pw, 0, ph)) if (ph or pw) else x

    def forward(self, x: Tensor, local_source: Tensor | None = None) -> Tensor:
        b, c, h, w = x.shape
        src = x if local_source is None else local_source
        local = self.local2(src) + self.local1(src)
        xp = self._pad_to(x, self.ws)
        hp, wp = xp.shape[-2:]
        ws, nh, d = self.ws, self.num_heads, c // self.num_heads
        qkv = self.qkv(xp).reshape(b, 3, nh, d, hp // ws, ws, wp // ws, ws)
        qkv = qkv.permute(1, 0, 4, 6, 2, 5, 7, 3).reshape(3, -1, nh, ws * ws, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        dots = (q @ k.transpose(-2, -1)) * self.scale + bias.reshape(ws * ws, ws * ws, nh).permute(2, 0, 1)
        attn = dots.softmax(dim=-1) @ v  # (b*nwin, nh, ws*ws, d)
        attn = attn.reshape(b, hp // ws, wp // ws, nh, ws, ws, d).permute(0, 3, 6, 1, 4, 2, 5)
        attn = attn.reshape(b, c, hp, wp)[:, :, :h, :w]
        out = self.attn_x(_reflect_pad(attn, (0, 0, 0, 1))) + self.attn_y(_reflect_pad(attn, (0, 1, 0, 0)))
        out = out + local
        out = self.proj(_reflect_pad(out, (0, 1, 0, 1)))
        return out[:, :, :h, :w]
