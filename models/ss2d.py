"""VMamba's layers: the 2-D selective-scan module (SS2D) and the blocks and stages built on it.

VMamba turns an image into four 1-D sequences (its "cross scan"), runs one selective
scan per sequence and sums them back (its "cross merge"), so every pixel sees the whole
image in four directions. The sequences are, in VMamba's order (``csm_triton.py``):
row-major, column-major, row-major flipped, column-major flipped.

The scan orders are :mod:`rsmamba.kernels.cross_scan`; every scan goes through
:func:`rsmamba.kernels.selective_scan`, so the same module runs on
the reference / chunked CPU backends and on ``mamba_ssm`` on CUDA without code changes.

Module names and parameter shapes follow VMamba's (``in_proj``, ``conv2d``, ``x_proj_weight``
(K, R+2N, D_inner), ``dt_projs_weight`` (K, D_inner, R), ``dt_projs_bias`` (K, D_inner),
``A_logs`` (K*D_inner, N), ``Ds`` (K*D_inner), ``out_norm``, ``out_proj``; blocks ``norm``,
``op``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``; layers ``blocks``, ``downsample``), so the
authors' state dicts load without renaming. :class:`Linear2d` and :class:`LayerNorm2d` are
subclasses of ``nn.Linear`` / ``nn.LayerNorm`` as in VMamba, which also makes ``thop`` skip
them exactly as it did when the papers counted parameters.

Constructors (the arguments other modules use):

``SS2D(d_model, d_state=16, ssm_ratio=2.0, dt_rank="auto", act_layer=nn.SiLU, d_conv=3,
conv_bias=True, dropout=0.0, bias=False, initialize="v0", forward_type="v2",
channel_first=False)``
    ``forward_type``: ``"v0"`` (VMamba v0: d_state 16, z gate, channel-last LayerNorm),
    ``"v2"`` (z gate), ``"v05_noz"`` / ``"v3noz"`` / any name ending in ``_noz`` (no z gate:
    VMamba v2 "0230s"-style). ``channel_first=True`` takes and returns (B, C, H, W) and uses
    :class:`Linear2d` / :class:`LayerNorm2d`; ``False`` takes and returns (B, H, W, C).
    ``d_conv < 2`` disables the depth-wise convolution.

``VSSBlock(hidden_dim, drop_path=0.0, norm_layer=None, channel_first=False, ssm_d_state=16,
ssm_ratio=2.0, ssm_dt_rank="auto", ssm_act_layer=nn.SiLU, ssm_conv=3, ssm_conv_bias=True,
ssm_drop_rate=0.0, ssm_init="v0", forward_type="v2", mlp_ratio=4.0, mlp_act_layer=nn.GELU,
mlp_drop_rate=0.0, post_norm=False, use_checkpoint=False)``
    ``x + drop_path(SS2D(norm(x)))`` then, when ``mlp_ratio > 0``, ``x + drop_path(MLP(norm2(x)))``.
    ``norm_layer`` defaults to :class:`LayerNorm2d` when channel-first, else ``nn.LayerNorm``.
    ``mlp_ratio=0`` gives VMamba v0's block (no MLP).

``VSSLayer(dim, depth, drop_path=0.0, downsample=None, out_dim=None, channel_first=False,
norm_layer=None, **block_kwargs)``
    ``depth`` :class:`VSSBlock` s (``blocks``) then ``downsample`` (``"v3"``: 3x3 stride-2 conv +
    norm; ``"v2"``: 2x2 stride-2 conv + norm; ``None``: identity) to ``out_dim`` channels.
    ``drop_path`` is one rate or a list of ``depth`` rates.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as torch_checkpoint
from torch import Tensor

from rsmamba.kernels.cross_scan import cross_merge, cross_scan
from rsmamba.kernels.selective_scan import compute_dtype, resolve_backend, selective_scan, triton_scan_module

__all__ = [
    "DropPath",
    "LayerNorm2d",
    "Linear2d",
    "Mlp",
    "Permute",
    "SS2D",
    "VSSBlock",
    "VSSLayer",
    "init_dt_A_D",
    "make_downsample",
]


class Linear2d(nn.Linear):
    """A 1x1 convolution holding an ``nn.Linear`` weight (out, in), as VMamba does for channel-first maps."""

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        key = prefix + "weight"
        if key in state_dict:  # accept conv-shaped (out, in, 1, 1) weights too
            state_dict[key] = state_dict[key].reshape(self.weight.shape)
        return super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    """``x.permute(*dims)`` as a module, to keep VMamba's Sequential indices."""

    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Two-layer feed-forward network; 1x1 convolutions (:class:`Linear2d`) when channel-first."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
        channels_first: bool = False,
    ):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        linear = Linear2d if channels_first else nn.Linear
        self.fc1 = linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


# --------------------------------------------------------------------------- initialisation


def init_dt_A_D(
    d_state: int,
    dt_rank: int,
    d_inner: int,
    k_group: int = 4,
    dt_scale: float = 1.0,
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    dt_init_floor: float = 1e-4,
) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter, nn.Parameter]:
    """Mamba's S4D-real initialisation for ``k_group`` scans: (A_logs, Ds, dt_projs_weight, dt_projs_bias).

    dt starts log-uniform in [dt_min, dt_max] (stored as softplus⁻¹ in the bias), A = -(1..N):
    the scan then starts with a spread of memory lengths instead of all-equal ones.
    """
    std = dt_rank**-0.5 * dt_scale
    weight = torch.empty(k_group, d_inner, dt_rank).uniform_(-std, std)
    dt = torch.exp(torch.rand(k_group, d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    bias = dt + torch.log(-torch.expm1(-dt))
    A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k_group * d_inner, 1)
    A_logs = nn.Parameter(torch.log(A))
    Ds = nn.Parameter(torch.ones(k_group * d_inner))
    A_logs._no_weight_decay = True  # type: ignore[attr-defined]
    Ds._no_weight_decay = True  # type: ignore[attr-defined]
    return A_logs, Ds, nn.Parameter(weight), nn.Parameter(bias)


# --------------------------------------------------------------------------- SS2D

_KNOWN_FORWARD_TYPES = ("v0", "v2", "v3", "v05", "v04", "v02", "v03", "v01")


def _parse_forward_type(forward_type: str) -> tuple[bool, bool]:
    """(disable_z, disable_z_act) from a VMamba ``forward_type`` name such as ``v05_noz``."""
    name = forward_type
    disable_z = False
    disable_z_act = False
    if name.endswith("_nozact"):
        disable_z_act, name = True, name[: -len("_nozact")]
    if name.endswith("_noz"):
        disable_z, name = True, name[: -len("_noz")]
    elif name.endswith("noz"):  # ChangeMamba spells it "v3noz"
        disable_z, name = True, name[: -len("noz")]
    if name not in _KNOWN_FORWARD_TYPES:
        raise ValueError(f"unknown SS2D forward_type {forward_type!r}")
    return disable_z, disable_z_act


class SS2D(nn.Module):
    """VMamba's 2-D selective scan: in_proj → depth-wise conv → four-direction scan → norm → out_proj.

    The four scans share the input projection but each has its own x/dt projections and
    A, D (grouped B/C in the scan call), which is what lets one module model all directions.
    """

    def __init__(
        self,
        d_model: int = 96,
        d_state: int = 16,
        ssm_ratio: float = 2.0,
        dt_rank: Any = "auto",
        act_layer: type[nn.Module] = nn.SiLU,
        d_conv: int = 3,
        conv_bias: bool = True,
        dropout: float = 0.0,
        bias: bool = False,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        initialize: str = "v0",
        forward_type: str = "v2",
        channel_first: bool = False,
        **kwargs: Any,
    ):
        super().__init__()
        if forward_type == "v0" and channel_first:
            raise ValueError("SS2D forward_type 'v0' is channel-last only (as in VMamba)")
        self.k_group = 4
        self.d_model = int(d_model)
        self.d_state = int(d_state)
        self.d_inner = int(ssm_ratio * d_model)
        self.dt_rank = int(math.ceil(self.d_model / 16) if dt_rank == "auto" else dt_rank)
        self.channel_first = channel_first
        self.with_dconv = d_conv > 1
        if self.with_dconv and d_conv % 2 == 0:  # (d_conv - 1) // 2 padding: an (H-1) x (W-1) map, or a size error
            raise ValueError(f"d_conv {d_conv}: the depth-wise convolution keeps the map's size only at an odd "
                             "kernel (3, 5, ...); < 2 disables it")
        self.forward_type = forward_type
        self.disable_z, self.disable_z_act = _parse_forward_type(forward_type)
        linear = Linear2d if channel_first else nn.Linear

        d_proj = self.d_inner if self.disable_z else 2 * self.d_inner
        self.in_proj = linear(self.d_model, d_proj, bias=bias)
        self.act = act_layer()
        if self.with_dconv:
            self.conv2d = nn.Conv2d(
                self.d_inner, self.d_inner, kernel_size=d_conv, padding=(d_conv - 1) // 2,
                groups=self.d_inner, bias=conv_bias,
            )
        bound = self.d_inner**-0.5  # nn.Linear's default init for the stacked x projections
        self.x_proj_weight = nn.Parameter(
            torch.empty(self.k_group, self.dt_rank + 2 * self.d_state, self.d_inner).uniform_(-bound, bound)
        )
        self.out_act = nn.Identity()
        self.out_norm = LayerNorm2d(self.d_inner) if channel_first else nn.LayerNorm(self.d_inner)
        self.out_proj = linear(self.d_inner, self.d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if dt_init != "random":
            raise ValueError("only dt_init='random' is supported")
        self.A_logs, self.Ds, self.dt_projs_weight, self.dt_projs_bias = init_dt_A_D(
            self.d_state, self.dt_rank, self.d_inner, self.k_group, dt_scale, dt_min, dt_max, dt_init_floor
        )
        if initialize == "v2":  # VMamba's "simple" init, kept for completeness
            with torch.no_grad():
                self.A_logs.zero_()
                self.dt_projs_weight.copy_(0.1 * torch.rand_like(self.dt_projs_weight))
                self.dt_projs_bias.copy_(0.1 * torch.rand_like(self.dt_projs_bias))

    def forward_core(self, x: Tensor) -> Tensor:
        """(B, D_inner, H, W) -> out_norm(merged scans), channel-first or -last like the module."""
        if resolve_backend(None, x) == "triton":
            y = self._fused_cross_scan(x)
        else:
            y = self._cross_scan_copies(x)
        if not self.channel_first:
            y = y.permute(0, 2, 3, 1)
        # the scan accumulates in float32; a bfloat16/float16 module normalises in its own dtype
        return self.out_norm(y.to(self.out_norm.weight.dtype)).to(x.dtype)

    def _fused_cross_scan(self, x: Tensor) -> Tensor:
        """The Triton kernel walks the four directions over the map itself: no reordered copies.

        The x/dt projections are per pixel, so they are computed once in the map's own order;
        the kernel reads step t of direction k at the pixel that direction visits.
        """
        b, d, h, w = x.shape
        k, n, r, length = self.k_group, self.d_state, self.dt_rank, h * w
        xf = x.flatten(2)  # (b, d, L), row-major
        x_dbl = torch.einsum("bdl,kcd->bkcl", xf, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [r, n, n], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        ys, _ = triton_scan_module().scan_triton(
            xf,
            dts.reshape(b, k * d, length),
            -torch.exp(self.A_logs.float()),
            Bs,
            Cs,
            self.Ds.float(),
            None,
            self.dt_projs_bias.reshape(-1).float(),
            True,
            hw=(h, w),
        )
        return ys.view(b, k, d, h, w).sum(1)  # the cross-merge

    def _cross_scan_copies(self, x: Tensor) -> Tensor:
        """VMamba's cross-scan as four reordered copies, any scan backend."""
        b, d, h, w = x.shape
        k, n, r, length = self.k_group, self.d_state, self.dt_rank, h * w
        xs = cross_scan(x)  # (b, k, d, L)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(x_dbl, [r, n, n], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        cdt = compute_dtype(x)  # float32 for half-precision inputs; a float64 layer scans in float64 (gradcheck)
        ys = selective_scan(
            xs.reshape(b, k * d, length).to(cdt),
            dts.reshape(b, k * d, length).to(cdt),
            -torch.exp(self.A_logs.to(cdt)),
            Bs.to(cdt).contiguous(),
            Cs.to(cdt).contiguous(),
            self.Ds.to(cdt),
            z=None,
            delta_bias=self.dt_projs_bias.reshape(-1).to(cdt),
            delta_softplus=True,
        )
        return cross_merge(ys.reshape(b, k, d, h, w)).reshape(b, d, h, w)

    def forward(self, x: Tensor) -> Tensor:
        x = self.in_proj(x)
        z = None
        if not self.disable_z:
            x, z = x.chunk(2, dim=1 if self.channel_first else -1)
            if not self.disable_z_act:
                z = self.act(z)
        if not self.channel_first:
            x = x.permute(0, 3, 1, 2)
        if self.with_dconv:
            x = self.conv2d(x)
        x = self.act(x)
        y = self.out_act(self.forward_core(x))
        if z is not None:
            y = y * z
        return self.dropout(self.out_proj(y))


# --------------------------------------------------------------------------- blocks and layers


class VSSBlock(nn.Module):
    """Pre-norm residual SS2D followed (v2) by a pre-norm residual MLP."""

    def __init__(
        self,
        hidden_dim: int,
        drop_path: float = 0.0,
        norm_layer: type[nn.Module] | None = None,
        channel_first: bool = False,
        ssm_d_state: int = 16,
        ssm_ratio: float = 2.0,
        ssm_dt_rank: Any = "auto",
        ssm_act_layer: type[nn.Module] = nn.SiLU,
        ssm_conv: int = 3,
        ssm_conv_bias: bool = True,
        ssm_drop_rate: float = 0.0,
        ssm_init: str = "v0",
        forward_type: str = "v2",
        mlp_ratio: float = 4.0,
        mlp_act_layer: type[nn.Module] = nn.GELU,
        mlp_drop_rate: float = 0.0,
        post_norm: bool = False,
        use_checkpoint: bool = False,
        **kwargs: Any,
    ):
        super().__init__()
        if norm_layer is None:
            norm_layer = LayerNorm2d if channel_first else nn.LayerNorm
        self.ssm_branch = ssm_ratio > 0
        self.mlp_branch = mlp_ratio > 0
        self.post_norm = post_norm
        self.use_checkpoint = use_checkpoint
        if self.ssm_branch:
            self.norm = norm_layer(hidden_dim)
            self.op = SS2D(
                d_model=hidden_dim, d_state=ssm_d_state, ssm_ratio=ssm_ratio, dt_rank=ssm_dt_rank,
                act_layer=ssm_act_layer, d_conv=ssm_conv, conv_bias=ssm_conv_bias, dropout=ssm_drop_rate,
                initialize=ssm_init, forward_type=forward_type, channel_first=channel_first,
            )
        self.drop_path = DropPath(drop_path)
        if self.mlp_branch:
            self.norm2 = norm_layer(hidden_dim)
            self.mlp = Mlp(hidden_dim, int(hidden_dim * mlp_ratio), act_layer=mlp_act_layer,
                           drop=mlp_drop_rate, channels_first=channel_first)

    def _forward(self, x: Tensor) -> Tensor:
        if self.ssm_branch:
            if self.post_norm:
                x = x + self.drop_path(self.norm(self.op(x)))
            else:
                x = x + self.drop_path(self.op(self.norm(x)))
        if self.mlp_branch:
            if self.post_norm:
                x = x + self.drop_path(self.norm2(self.mlp(x)))
            else:
                x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x

    def forward(self, x: Tensor) -> Tensor:
        if self.use_checkpoint and self.training:
            return torch_checkpoint.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


def make_downsample(
    dim: int, out_dim: int, version: str | None = "v3", channel_first: bool = False,
    norm_layer: type[nn.Module] | None = None,
) -> nn.Module:
    """VMamba's stride-2 downsampling ("v3": 3x3 conv, "v2": 2x2 conv, each + norm); identity for None."""
    if version is None or version == "none":
        return nn.Identity()
    if norm_layer is None:
        norm_layer = LayerNorm2d if channel_first else nn.LayerNorm
    to_cf = nn.Identity() if channel_first else Permute(0, 3, 1, 2)
    to_cl = nn.Identity() if channel_first else Permute(0, 2, 3, 1)
    if version == "v3":
        conv = nn.Conv2d(dim, out_dim, kernel_size=3, stride=2, padding=1)
    elif version == "v2":
        conv = nn.Conv2d(dim, out_dim, kernel_size=2, stride=2)
    else:
        raise ValueError(f"unknown downsample version {version!r}")
    return nn.Sequential(to_cf, conv, to_cl, norm_layer(out_dim))


class VSSLayer(nn.Sequential):
    """One VMamba stage: ``blocks`` (VSSBlocks) then ``downsample``; children named as in VMamba."""

    def __init__(
        self,
        dim: int,
        depth: int,
        drop_path: float | Sequence[float] = 0.0,
        downsample: str | None = None,
        out_dim: int | None = None,
        channel_first: bool = False,
        norm_layer: type[nn.Module] | None = None,
        **block_kwargs: Any,
    ):
        rates = [float(drop_path)] * depth if isinstance(drop_path, (int, float)) else list(drop_path)
        if len(rates) != depth:
            raise ValueError(f"{len(rates)} drop-path rates for {depth} blocks")
        blocks = nn.Sequential(*[
            VSSBlock(dim, drop_path=rate, norm_layer=norm_layer, channel_first=channel_first, **block_kwargs)
            for rate in rates
        ])
        down = make_downsample(dim, out_dim or 2 * dim, downsample, channel_first, norm_layer)
        super().__init__(OrderedDict(blocks=blocks, downsample=down))
