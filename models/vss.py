"""VMamba's original visual state-space layer (SS2D "v0"), as CMT-UNet and MAFMamba use it.

v0 = in_proj to (x, z), depthwise conv + SiLU on x, four-direction cross scan (row-major,
column-major and both reversed), one selective scan over the four stacked sequences, sum,
LayerNorm, gate by SiLU(z), out_proj. A VSS block is LayerNorm + SS2D + residual (no MLP).
The parameters are laid out like VMamba's (``x_proj_weight``, ``dt_projs_weight``, ``A_logs``,
``Ds``) so counts match the authors' modules. The scan goes through
:func:`rsmamba.kernels.selective_scan`, which picks the CPU or CUDA backend.

Channels-last tensors (B, H, W, C) throughout, like VMamba.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rsmamba.kernels.selective_scan import selective_scan


def cross_scan(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W): row-major, column-major, and both flipped."""
    b, c, h, w = x.shape
    rows = x.reshape(b, c, h * w)
    cols = x.transpose(2, 3).reshape(b, c, h * w)
    both = torch.stack([rows, cols], dim=1)
    return torch.cat([both, both.flip(-1)], dim=1)


def cross_merge(y: Tensor, h: int, w: int) -> Tensor:
    """Inverse of :func:`cross_scan` summed over directions: (B, 4, C, L) -> (B, C, L) row-major."""
    b, _, c, length = y.shape
    y = y[:, :2] + y[:, 2:].flip(-1)
    cols = y[:, 1].reshape(b, c, w, h).transpose(2, 3).reshape(b, c, length)
    return y[:, 0] + cols


class SS2D(nn.Module):
    """2-D selective scan, VMamba v0 (d_state 16, expand 2, d_conv 3, z gate, out LayerNorm)."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 3,
        expand: float = 2.0,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        self.d_state = d_state
        self.d_inner = d_inner = int(expand * d_model)
        self.dt_rank = rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        k = 4
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=True)
        self.x_proj_weight = nn.Parameter(
            torch.empty(k, rank + 2 * d_state, d_inner).uniform_(-(d_inner**-0.5), d_inner**-0.5)
        )
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, rank).uniform_(-(rank**-0.5), rank**-0.5))
        dt = torch.exp(torch.rand(k, d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k * d_inner, 1)
        self.A_logs = nn.Parameter(torch.log(a))
        self.Ds = nn.Parameter(torch.ones(k * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2).contiguous()))
        xs = cross_scan(x)  # (B, 4, D, L)
        length = h * w
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, bs, cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        y = selective_scan(
            xs.reshape(b, -1, length),
            dts.reshape(b, -1, length),
            -torch.exp(self.A_logs.float()),
            bs.contiguous(),
            cs.contiguous(),
            self.Ds.float(),
            delta_bias=self.dt_projs_bias.reshape(-1).float(),
            delta_softplus=True,
        )
        y = cross_merge(y.reshape(b, 4, self.d_inner, length), h, w)
        y = self.out_norm(y.transpose(1, 2).reshape(b, h, w, self.d_inner))
        return self.out_proj(y * F.silu(z))


class VSSBlock(nn.Module):
    """LayerNorm -> SS2D -> residual (v0 has no MLP)."""

    def __init__(self, dim: int, d_state: int = 16, drop_path: float = 0.0, **ss2d_kwargs: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = SS2D(dim, d_state=d_state, **ss2d_kwargs)  # type: ignore[arg-type]
        self.drop_path = drop_path

    def forward(self, x: Tensor) -> Tensor:
        y = self.self_attention(self.ln_1(x))
        if self.training and self.drop_path > 0:
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop_path
            y = y * keep / (1 - self.drop_path)
        return x + y


class VSSLayer(nn.Module):
    """``depth`` VSS blocks on a channels-last map; ``channels_first=True`` accepts (B, C, H, W)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        d_state: int = 16,
        drop_path: float | list[float] = 0.0,
        channels_first: bool = False,
    ) -> None:
        super().__init__()
        rates = drop_path if isinstance(drop_path, list) else [drop_path] * depth
        self.blocks = nn.ModuleList(VSSBlock(dim, d_state, rates[i]) for i in range(depth))
        self.channels_first = channels_first

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_first:
            x = x.permute(0, 2, 3, 1)
        for blk in self.blocks:
            x = blk(x)
        return x.permute(0, 3, 1, 2).contiguous() if self.channels_first else x
