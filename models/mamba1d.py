"""The 1-D Mamba block (mamba-ssm v1 ``Mamba``) and a Vim-style bidirectional variant.

Parameter names and shapes follow ``mamba_ssm.modules.mamba_simple.Mamba`` so state dicts
load both ways and parameter counts equal mamba-ssm's. The scan runs through
:func:`rsmamba.kernels.selective_scan`, so it works on any device; ``causal_conv1d_fn`` is
used only when the ``causal_conv1d`` package imports and the tensors are on CUDA.
"""

from __future__ import annotations

import inspect

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from rsmamba.kernels.selective_scan import selective_scan


def _load_causal_conv1d() -> Any:
    """``causal_conv1d_fn`` or None: the import fails on CPU-only machines even when installed."""
    try:
        from causal_conv1d import causal_conv1d_fn  # type: ignore[import-not-found]
    except Exception:  # ImportError, OSError (missing libcudart), RuntimeError...
        return None
    return causal_conv1d_fn


_CAUSAL_CONV1D_FN = _load_causal_conv1d()


def resolve_dt_rank(d_model: int, dt_rank: int | str) -> int:
    """mamba-ssm's rule: ``"auto"`` means ceil(d_model / 16)."""
    return math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)


def mamba_parameter_count(
    d_model: int,
    d_state: int = 16,
    d_conv: int = 4,
    expand: float = 2,
    dt_rank: int | str = "auto",
    conv_bias: bool = True,
    bias: bool = False,
) -> int:
    """Parameters of mamba-ssm's ``Mamba`` (v1) by formula, to check our module against."""
    d_inner = int(expand * d_model)
    rank = resolve_dt_rank(d_model, dt_rank)
    in_proj = d_model * 2 * d_inner + (2 * d_inner if bias else 0)
    conv = d_inner * d_conv + (d_inner if conv_bias else 0)
    x_proj = d_inner * (rank + 2 * d_state)
    dt_proj = rank * d_inner + d_inner
    a_log_and_d = d_inner * d_state + d_inner
    out_proj = d_inner * d_model + (d_model if bias else 0)
    return in_proj + conv + x_proj + dt_proj + a_log_and_d + out_proj


def _init_dt_proj(
    dt_proj: nn.Linear, dt_rank: int, dt_scale: float, dt_init: str, dt_min: float, dt_max: float, floor: float
) -> None:
    """mamba-ssm's initialisation: softplus(bias) is log-uniform in [dt_min, dt_max]."""
    std = dt_rank**-0.5 * dt_scale
    if dt_init == "constant":
        nn.init.constant_(dt_proj.weight, std)
    elif dt_init == "random":
        nn.init.uniform_(dt_proj.weight, -std, std)
    else:
        raise ValueError(f"dt_init must be 'constant' or 'random', not {dt_init!r}")
    d_inner = dt_proj.out_features
    dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    inv_dt = dt + torch.log(-torch.expm1(-dt))  # inverse of softplus
    with torch.no_grad():
        dt_proj.bias.copy_(inv_dt)
    dt_proj.bias._no_reinit = True  # type: ignore[attr-defined]  # mamba-ssm's marker for its init


def _s4d_real_a_log(d_inner: int, d_state: int) -> Tensor:
    """log of A = -(1..N) for every channel (S4D-real), as mamba-ssm initialises ``A_log``."""
    a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
    return torch.log(a)


class Mamba(nn.Module):
    """mamba-ssm's ``Mamba`` (v1): in_proj -> causal depthwise conv -> SiLU -> selective scan,
    gated by SiLU(z) -> out_proj. Input and output (batch, L, d_model).

    ``scan_backend`` is passed to :func:`selective_scan` (None: automatic choice).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: float = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        scan_backend: str | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = resolve_dt_rank(d_model, dt_rank)
        self.scan_backend = scan_backend

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **factory)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=conv_bias, **factory
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **factory)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory)
        _init_dt_proj(self.dt_proj, self.dt_rank, dt_scale, dt_init, dt_min, dt_max, dt_init_floor)
        self.A_log = nn.Parameter(_s4d_real_a_log(self.d_inner, d_state).to(device))
        self.A_log._no_weight_decay = True  # type: ignore[attr-defined]
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))
        self.D._no_weight_decay = True  # type: ignore[attr-defined]
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory)

    def ssm(self, x: Tensor, z: Tensor | None) -> Tensor:
        """(b, d_inner, L) after in_proj -> (b, d_inner, L) before out_proj."""
        return _conv_scan(
            x, z, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D, self.d_state, self.scan_backend
        )

    def forward(self, hidden_states: Tensor) -> Tensor:
        xz = self.in_proj(hidden_states).transpose(1, 2)  # (b, 2*d_inner, L)
        x, z = xz.chunk(2, dim=1)
        y = self.ssm(x, z)
        return self.out_proj(y.transpose(1, 2))


def _causal_depthwise_conv(x: Tensor, conv1d: nn.Conv1d) -> Tensor:
    """SiLU(causal depthwise conv(x)): the CUDA kernel when available, F.conv1d otherwise."""
    length = x.shape[-1]
    if _CAUSAL_CONV1D_FN is not None and x.is_cuda:
        weight = conv1d.weight.squeeze(1)  # (d, k)
        return _CAUSAL_CONV1D_FN(x.contiguous(), weight, conv1d.bias, activation="silu")
    return F.silu(conv1d(x)[..., :length])


def _conv_scan(
    x: Tensor,
    z: Tensor | None,
    conv1d: nn.Conv1d,
    x_proj: nn.Linear,
    dt_proj: nn.Linear,
    A_log: Tensor,
    D: Tensor,
    d_state: int,
    backend: str | None,
) -> Tensor:
    """The part of Mamba between in_proj and out_proj, shared by both directions of BiMamba."""
    batch, _, length = x.shape
    x = _causal_depthwise_conv(x, conv1d)
    x_dbl = x_proj(x.transpose(1, 2))  # (b, L, R + 2N)
    dt, B, C = torch.split(x_dbl, [dt_proj.in_features, d_state, d_state], dim=-1)
    dt = (dt @ dt_proj.weight.t()).transpose(1, 2)  # (b, d_inner, L); bias goes in as delta_bias
    B = B.transpose(1, 2)  # (b, N, L)
    C = C.transpose(1, 2)
    A = -torch.exp(A_log.float())
    return selective_scan(
        x, dt, A, B, C, D=D.float(), z=z, delta_bias=dt_proj.bias.float(), delta_softplus=True, backend=backend
    )


class BiMamba(Mamba):
    """Vim's bidirectional Mamba ("v2" bimamba of ``vision_mamba``): one in_proj and out_proj
    shared by both directions; the backward direction has its own ``conv1d_b``, ``x_proj_b``,
    ``dt_proj_b``, ``A_b_log`` and ``D_b`` and scans the flipped sequence. The two outputs are
    flipped back, averaged (Vim's ``if_divide_out=True``) and projected.

    Parameter names match Vim's so its checkpoints load.
    """

    def __init__(self, d_model: int, *args: Any, divide_out: bool = True, **kwargs: Any) -> None:
        super().__init__(d_model, *args, **kwargs)
        self.divide_out = divide_out
        ref_conv = self.conv1d
        factory = {"device": ref_conv.weight.device, "dtype": ref_conv.weight.dtype}
        self.conv1d_b = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            self.d_conv,
            groups=self.d_inner,
            padding=self.d_conv - 1,
            bias=ref_conv.bias is not None,
            **factory,
        )
        self.x_proj_b = nn.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False, **factory)
        self.dt_proj_b = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory)
        # Mamba's own binding of the arguments, positional ones too (kwargs alone left dt_min/dt_max given by
        # position to the forward direction: the backward one started from the defaults)
        bound = inspect.signature(Mamba.__init__).bind(self, d_model, *args, **kwargs)
        bound.apply_defaults()
        dt_args = {k: bound.arguments[k] for k in ("dt_scale", "dt_init", "dt_min", "dt_max", "dt_init_floor")}
        _init_dt_proj(
            self.dt_proj_b,
            self.dt_rank,
            dt_args["dt_scale"],
            dt_args["dt_init"],
            dt_args["dt_min"],
            dt_args["dt_max"],
            dt_args["dt_init_floor"],
        )
        self.A_b_log = nn.Parameter(_s4d_real_a_log(self.d_inner, self.d_state).to(factory["device"]))
        self.A_b_log._no_weight_decay = True  # type: ignore[attr-defined]
        self.D_b = nn.Parameter(torch.ones(self.d_inner, device=factory["device"]))
        self.D_b._no_weight_decay = True  # type: ignore[attr-defined]

    def forward(self, hidden_states: Tensor) -> Tensor:
        xz = self.in_proj(hidden_states).transpose(1, 2)
        x, z = xz.chunk(2, dim=1)
        y_f = self.ssm(x, z)
        y_b = _conv_scan(
            x.flip(-1),
            z.flip(-1),
            self.conv1d_b,
            self.x_proj_b,
            self.dt_proj_b,
            self.A_b_log,
            self.D_b,
            self.d_state,
            self.scan_backend,
        ).flip(-1)
        y = (y_f + y_b) / 2 if self.divide_out else y_f + y_b
        return self.out_proj(y.transpose(1, 2))


__all__ = ["BiMamba", "Mamba", "mamba_parameter_count", "resolve_dt_rank"]
