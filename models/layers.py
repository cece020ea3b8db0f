"""Small CNN building blocks shared by the hybrid models: conv-norm-act units and attention.

Channel attention (SE, ECA, CBAM's avg+max), spatial attention (CBAM), coordinate attention
(Hou et al. 2021). Each is a few lines; they are kept here so the model modules read as the
papers' block diagrams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def per_stage(name: str, value: object, stages: int, each: str = "stage") -> list:
    """``value`` as a list of one entry per stage (or per ``each``), or a ValueError that says so: a list of
    another length would fail deep inside the model (an IndexError, a channel mismatch at the first forward)."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != stages:
        raise ValueError(f"{name} takes {stages} values, one per {each}, not {value!r}")
    return list(value)


def at_least_one(name: str, value: object) -> int:
    """``value`` as a width or count of at least 1, or a ValueError (a zero width fails only at the first forward)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    return value


class ConvBNReLU(nn.Sequential):
    """Conv (no bias unless asked: some authors' code has one) + BatchNorm + ReLU (or ReLU6 / none), 'same' padding."""

    def __init__(
        self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1, act: str = "relu",
        bias: bool = False,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, dilation * (k - 1) // 2, dilation=dilation, groups=groups, bias=bias),
            nn.BatchNorm2d(cout),
        ]
        if act == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif act == "relu6":
            layers.append(nn.ReLU6())
        elif act != "none":
            raise ValueError(f"unknown activation {act!r}")
        super().__init__(*layers)


class SeparableConvBN(nn.Sequential):
    """Depthwise kxk + pointwise 1x1 + BatchNorm (optionally ReLU): cheap spatial mixing.

    ``norm_between``: UNetFormer's ``SeparableConvBN`` (GeoSeg), depthwise, BatchNorm, then pointwise
    with nothing after it, as in its feature refinement head.
    """

    def __init__(self, cin: int, cout: int, k: int = 3, dilation: int = 1, act: bool = True,
                 norm_between: bool = False) -> None:
        depthwise = nn.Conv2d(cin, cin, k, 1, dilation * (k - 1) // 2, dilation=dilation, groups=cin, bias=False)
        pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        layers: list[nn.Module] = ([depthwise, nn.BatchNorm2d(cin), pointwise] if norm_between
                                   else [depthwise, pointwise, nn.BatchNorm2d(cout)])
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """SE recalibration: x * sigmoid(MLP(avgpool(x))) with 1x1 convs (with bias) and ratio r."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.fc(F.adaptive_avg_pool2d(x, 1))


class ECA(nn.Module):
    """Efficient Channel Attention: a k-tap 1-D conv across the pooled channel vector."""

    def __init__(self, k_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, k_size, padding=(k_size - 1) // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        y = self.conv(y.squeeze(-1).transpose(1, 2)).transpose(1, 2).unsqueeze(-1)
        return x * torch.sigmoid(y)


class ChannelAttention(nn.Module):
    """CBAM channel attention: shared bias-free MLP on avg- and max-pooled vectors; returns the gate."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)) + self.fc(F.adaptive_max_pool2d(x, 1)))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: kxk conv on the channel mean and max maps; returns the gate."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv1(pooled))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # Checkpoints written before 0.2 named the convolution ``conv``; CBAM's code and MambaSeg's say ``conv1``.
        if prefix + "conv.weight" in state_dict and prefix + "conv1.weight" not in state_dict:
            state_dict[prefix + "conv1.weight"] = state_dict.pop(prefix + "conv.weight")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class FeatureRefinementHead(nn.Module):
    """UNetFormer's feature refinement head: pixel attention (depthwise 3x3, sigmoid) plus channel
    attention (r=16, ReLU6) on x, a spatial projection, a 1x1 conv-BN shortcut, ReLU6.

    ``proj`` is the decoder's spatial mixing (separable or wavelet convolution); ``pre``
    (``post_conv``, UNetFormer's name) runs first where the decoder fuses its skip before refining.
    """

    def __init__(self, dim: int, proj: nn.Module, pre: nn.Module | None = None) -> None:
        super().__init__()
        self.post_conv = pre if pre is not None else nn.Identity()
        self.pa = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.Sigmoid())
        hidden = max(dim // 16, 1)
        self.ca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, hidden, 1, bias=False), nn.ReLU6(),
            nn.Conv2d(hidden, dim, 1, bias=False), nn.Sigmoid(),
        )
        self.shortcut = ConvBNReLU(dim, dim, 1, act="none")
        self.proj = proj
        self.act = nn.ReLU6()

    def forward(self, x: Tensor) -> Tensor:
        x = self.post_conv(x)
        shortcut = self.shortcut(x)
        x = self.pa(x) * x + self.ca(x) * x
        return self.act(self.proj(x) + shortcut)


class CBAM(nn.Module):
    """Channel then spatial attention (the MAFMamba paper's CAB)."""

    def __init__(self, channels: int, reduction: int = 4, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.channel(x)
        return x * self.spatial(x)


class CoordinateAttention(nn.Module):
    """Coordinate attention (Hou et al., CVPR 2021): pooled along H and along W separately, a
    shared 1x1 bottleneck, then one sigmoid gate per axis, so the weights keep positions.

    ``out_channels`` lets the block emit a different number of maps than it reads (MSAF turns
    the concatenated weight features into one fusion weight per input scale).
    """

    def __init__(self, channels: int, out_channels: int | None = None, reduction: int = 32) -> None:
        super().__init__()
        out_channels = out_channels or channels
        hidden = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(hidden, out_channels, 1)
        self.conv_w = nn.Conv2d(hidden, out_channels, 1)
        self.shortcut = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        pooled_h = x.mean(3, keepdim=True)  # (B, C, H, 1)
        pooled_w = x.mean(2, keepdim=True).transpose(2, 3)  # (B, C, W, 1)
        y = self.act(self.bn1(self.conv1(torch.cat([pooled_h, pooled_w], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        gate_h = torch.sigmoid(self.conv_h(y_h))
        gate_w = torch.sigmoid(self.conv_w(y_w.transpose(2, 3)))
        return self.shortcut(x) * gate_h * gate_w


def efficient_attention(q: Tensor, k: Tensor, v: Tensor, heads: int = 1) -> Tensor:
    """Efficient attention (Shen et al., WACV 2021), linear in the number of positions.

    ``q``: (B, Ck, Lq), ``k``: (B, Ck, Lk), ``v``: (B, Cv, Lk). Keys are softmaxed over positions
    and summarised into a (Ck x Cv) context per head; queries are softmaxed over channels and read
    it. Returns (B, Cv, Lq). Lq and Lk may differ: that is what makes it a cross-scale attention.
    """
    b, ck, lq = q.shape
    cv = v.shape[1]
    q = q.reshape(b, heads, ck // heads, lq).softmax(dim=2)
    k = k.reshape(b, heads, ck // heads, -1).softmax(dim=3)
    v = v.reshape(b, heads, cv // heads, -1)
    context = k @ v.transpose(2, 3)  # (B, h, ck/h, cv/h)
    out = context.transpose(2, 3) @ q  # (B, h, cv/h, Lq)
    return out.reshape(b, cv, lq)


def divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` up to a multiple of ``divisor`` (head counts, group norms)."""
    return int(math.ceil(value / divisor) * divisor)


class MSAA(nn.Module):
    """Multi-scale attention aggregation of the three skips at one skip's resolution.

    Concat (resized) -> 1x1 reduce to out/4 -> channel attention (avg+max, r=4) in parallel with
    3x3+5x5+7x7 convs gated by 7x7 spatial attention -> sum -> 1x1 up to ``out_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, factor: int = 4) -> None:
        super().__init__()
        dim = max(out_channels // factor, 1)
        self.down = nn.Conv2d(in_channels, dim, 1)
        self.conv_3x3 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv_5x5 = nn.Conv2d(dim, dim, 5, padding=2)
        self.conv_7x7 = nn.Conv2d(dim, dim, 7, padding=3)
        self.spatial_attention = SpatialAttention(7)
        self.channel_attention = ChannelAttention(dim, 4)
        self.up = nn.Conv2d(dim, out_channels, 1)

    def forward(self, skips: list[Tensor], size: tuple[int, int]) -> Tensor:
        x = torch.cat(
            [s if s.shape[-2:] == size else F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in skips],
            dim=1,
        )
        x = self.down(x)
        xc = x * self.channel_attention(x)
        xs = self.conv_3x3(x) + self.conv_5x5(x) + self.conv_7x7(x)
        xs = xs * self.spatial_attention(xs)
        return self.up(xs + xc)
