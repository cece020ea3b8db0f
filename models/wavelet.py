"""Wavelet transforms and the wavelet convolution WTConv (Finder et al., ECCV 2024).

The Haar (db1) analysis is written in closed form on the 2x2 polyphase components, so it needs
no filter tensors and no pywt: LL = (a+b+c+d)/2, and the three detail bands with the signs of
pywt's ``dec_lo``/``dec_hi`` outer products. It is orthonormal, so the inverse is its transpose.

Daubechies-4 (pywt's ``db4``, 8 taps) is a filter bank run as stride-2 depthwise convolutions
with zero padding, as WTConv's ``wavelet_transform`` does: exact inside the map, not at its
borders (WTConv learns around that). The filters are constants, not parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def haar_dwt(x: Tensor) -> Tensor:
    """One-level 2-D Haar transform: (B, C, H, W) -> (B, C, 4, H/2, W/2) as LL, LH, HL, HH.

    Odd sizes are zero-padded at the bottom/right first (as pytorch_wavelets ``mode='zero'``).
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    ll = (a + b + c + d) * 0.5
    lh = (a - b + c - d) * 0.5  # high-pass along W (vertical edges)
    hl = (a + b - c - d) * 0.5  # high-pass along H (horizontal edges)
    hh = (a - b - c + d) * 0.5
    return torch.stack([ll, lh, hl, hh], dim=2)


def haar_idwt(bands: Tensor) -> Tensor:
    """Inverse of :func:`haar_dwt`: (B, C, 4, h, w) -> (B, C, 2h, 2w)."""
    ll, lh, hl, hh = bands.unbind(dim=2)
    a = (ll + lh + hl + hh) * 0.5
    b = (ll - lh + hl - hh) * 0.5
    c = (ll + lh - hl - hh) * 0.5
    d = (ll - lh - hl + hh) * 0.5
    bsz, ch, h, w = ll.shape
    out = torch.stack([torch.stack([a, b], dim=-1), torch.stack([c, d], dim=-1)], dim=-3)  # (B,C,h,2,w,2)
    return out.reshape(bsz, ch, 2 * h, 2 * w)


# pywt.Wavelet("db4").dec_lo: the Daubechies 8-tap scaling filter, reversed (a published constant).
DB4_DEC_LO = (
    -0.010597401785069032, 0.0328830116668852, 0.030841381835560764, -0.18703481171909309,
    -0.027983769416859854, 0.6308807679298589, 0.7148465705529157, 0.2303778133088965,
)
WAVELETS = ("haar", "db1", "db4")


def _db4_filters(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """(analysis, synthesis) 2-D filters, each (4, 1, 8, 8): LL, LH, HL, HH as in WTConv."""
    lo = torch.tensor(DB4_DEC_LO, dtype=torch.float64)
    hi = torch.tensor([(-1) ** (k + 1) * v for k, v in enumerate(reversed(DB4_DEC_LO))], dtype=torch.float64)
    rec_lo, rec_hi = lo.flip(0), hi.flip(0)

    def bank(lo_: Tensor, hi_: Tensor) -> Tensor:
        # WTConv's order: lo x lo, hi(W) x lo(H), lo(W) x hi(H), hi x hi; filter index [y, x]
        return torch.stack([lo_[:, None] * lo_[None], lo_[:, None] * hi_[None], hi_[:, None] * lo_[None],
                            hi_[:, None] * hi_[None]])[:, None]

    dec = bank(lo.flip(0), hi.flip(0))  # correlation (conv2d) with the reversed decomposition filters
    rec = bank(rec_lo, rec_hi)  # conv_transpose2d applies the synthesis filters as they are
    return dec.to(dtype=dtype, device=device), rec.to(dtype=dtype, device=device)


def filter_dwt(x: Tensor) -> Tensor:
    """One-level 2-D db4 transform: (B, C, H, W) -> (B, C, 4, ceil(H/2), ceil(W/2))."""
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    dec, _ = _db4_filters(x.dtype, x.device)
    pad = dec.shape[-1] // 2 - 1
    out = F.conv2d(x, dec.repeat(c, 1, 1, 1), stride=2, groups=c, padding=pad)
    return out.reshape(b, c, 4, out.shape[-2], out.shape[-1])


def filter_idwt(bands: Tensor) -> Tensor:
    """Synthesis with the db4 filters: (B, C, 4, h, w) -> (B, C, 2h, 2w)."""
    b, c, _, h, w = bands.shape
    _, rec = _db4_filters(bands.dtype, bands.device)
    pad = rec.shape[-1] // 2 - 1
    return F.conv_transpose2d(bands.reshape(b, 4 * c, h, w), rec.repeat(c, 1, 1, 1), stride=2, groups=c, padding=pad)


class _Scale(nn.Module):
    """A learnable per-channel multiplier (no bias)."""

    def __init__(self, channels: int, init: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((1, channels, 1, 1), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


class _SameConv2d(nn.Conv2d):
    """Stride-1 conv with PyTorch's ``padding='same'`` arithmetic done by an explicit zero pad.

    Identical output and parameters; for an even kernel torch's own 'same' pads asymmetrically by
    copying the input and warns on every call, which would print on every predict.
    """

    thop_type = nn.Conv2d  # counted as the authors' nn.Conv2d(padding='same') was (thop: exact types)

    def __init__(self, cin: int, cout: int, kernel_size: int, **kwargs) -> None:
        super().__init__(cin, cout, kernel_size, padding=0, **kwargs)
        total = kernel_size - 1
        self._pad = (total // 2, total - total // 2) * 2  # (left, right, top, bottom)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self._pad))


class WTConv2d(nn.Module):
    """Depthwise wavelet convolution: a depthwise kxk conv plus, per wavelet level, a depthwise
    kxk conv on the four Haar bands, added back through the inverse transform. Large effective
    receptive field for few parameters. Channels in = channels out (it is depthwise).
    """

    def __init__(self, channels: int, kernel_size: int = 5, levels: int = 1, bias: bool = True, wavelet: str = "haar") -> None:
        super().__init__()
        if wavelet not in WAVELETS:
            raise ValueError(f"wavelet must be one of {WAVELETS}, not {wavelet!r}")
        self.wavelet = wavelet  # no parameters depend on it: a built model may switch it
        self.levels = levels
        self.base_conv = _SameConv2d(channels, channels, kernel_size, groups=channels, bias=bias)
        self.base_scale = _Scale(channels)
        self.wavelet_convs = nn.ModuleList(
            _SameConv2d(4 * channels, 4 * channels, kernel_size, groups=4 * channels, bias=False)
            for _ in range(levels)
        )
        self.wavelet_scales = nn.ModuleList(_Scale(4 * channels, 0.1) for _ in range(levels))

    def forward(self, x: Tensor) -> Tensor:
        if self.wavelet not in WAVELETS:
            raise ValueError(f"wavelet must be one of {WAVELETS}, not {self.wavelet!r}")
        dwt, idwt = (filter_dwt, filter_idwt) if self.wavelet == "db4" else (haar_dwt, haar_idwt)
        lows, highs, shapes = [], [], []
        current = x
        for conv, scale in zip(self.wavelet_convs, self.wavelet_scales):
            shapes.append(current.shape[-2:])
            bands = dwt(current)
            b, c, _, h, w = bands.shape
            current = bands[:, :, 0]
            bands = scale(conv(bands.reshape(b, 4 * c, h, w))).reshape(b, c, 4, h, w)
            lows.append(bands[:, :, 0])
            highs.append(bands[:, :, 1:])
        carry: Tensor | float = 0.0
        for low, high, (h, w) in zip(reversed(lows), reversed(highs), reversed(shapes)):
            carry = idwt(torch.cat([(low + carry).unsqueeze(2), high], dim=2))[..., :h, :w]
        return self.base_scale(self.base_conv(x)) + carry


class SeparableWTConv2d(nn.Sequential):
    """WTConv2d (depthwise) followed by a bias-free pointwise 1x1: CMT-UNet's projection."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3) -> None:
        super().__init__(WTConv2d(cin, kernel_size), nn.Conv2d(cin, cout, 1, bias=False))


# pytorch_wavelets' DWTForward (the authors' CMT-UNet) orders the detail bands high-pass along H first, then along
# W: its bands are haar_dwt's in this order (checked against pytorch_wavelets 1.3.0, tests/models/test_wavelet.py).
PYTORCH_WAVELETS_ORDER = (0, 2, 1, 3)


class HaarDownsample(nn.Module):
    """Channels-last patch merging by a Haar transform (CMT-UNet's VSS branch):
    (B, H, W, C) -> concat of :func:`haar_dwt`'s four bands, band-major -> LayerNorm(4C) -> Linear(4C -> 2C),
    halving H, W. The authors' concatenates pytorch_wavelets' bands, two of them the other way round
    (:data:`PYTORCH_WAVELETS_ORDER`): a permutation of the 4C channels, which their weights are mapped through
    (``rsmamba import-weights``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        bands = haar_dwt(x.permute(0, 3, 1, 2))  # (B, C, 4, h, w)
        b, c, _, h, w = bands.shape
        x = bands.transpose(1, 2).reshape(b, 4 * c, h, w).permute(0, 2, 3, 1)
        return self.reduction(self.norm(x))
