"""The Mamba selective scan with mamba-ssm's semantics, behind one dispatching function.

Shapes (as in ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``):
``u, delta, z``: (batch, dim, L); ``A``: (dim, N); ``B, C``: (batch, N, L) or grouped
(batch, G, N, L) with dim % G == 0; ``D, delta_bias``: (dim,).

Backends are chosen automatically and can be forced with ``backend=`` or the
``RSMAMBA_SCAN_BACKEND`` environment variable.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor

BACKENDS = ("reference",)


def _expand_bc(x: Tensor, dim: int) -> Tensor:
    """(b, N, L) or (b, G, N, L) -> (b, dim, N, L) view."""
    if x.dim() == 3:
        return x.unsqueeze(1).expand(x.shape[0], dim, x.shape[1], x.shape[2])
    b, g, n, length = x.shape
    return x.unsqueeze(2).expand(b, g, dim // g, n, length).reshape(b, dim, n, length)


def compute_dtype(u: Tensor) -> torch.dtype:
    """Accumulate in float32, or float64 when given float64 (gradcheck)."""
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def selective_scan_reference(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The plain sequential recurrence in float32 (float64 for float64 inputs): the oracle every
    backend is tested against."""
    dtype_in = u.dtype
    cdt = compute_dtype(u)
    u, delta, A = u.to(cdt), delta.to(cdt), A.to(cdt)
    if delta_bias is not None:
        delta = delta + delta_bias.to(cdt)[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    Bx = _expand_bc(B.to(cdt), dim)
    Cx = _expand_bc(C.to(cdt), dim)
    deltaA = torch.exp(delta.unsqueeze(2) * A[None, :, :, None])  # (b, d, n, L)
    deltaBu = delta.unsqueeze(2) * Bx * u.unsqueeze(2)
    state = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        state = deltaA[..., t] * state + deltaBu[..., t]
        ys.append((state * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.to(cdt)[None, :, None]
    if z is not None:
        y = y * F.silu(z.to(cdt))
    y = y.to(dtype_in)
    return (y, state) if return_last_state else y


def resolve_backend(backend: str | None, u: Tensor) -> str:
    """The backend to use: the argument, then RSMAMBA_SCAN_BACKEND, then the fastest available."""
    name = backend or os.environ.get("RSMAMBA_SCAN_BACKEND") or "auto"
    if name == "auto":
        return "reference"
    if name not in BACKENDS:
        raise ValueError(f"unknown selective-scan backend {name!r}; available: {', '.join(BACKENDS)}")
    return name


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    backend: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan with mamba-ssm semantics on any device; see the module docstring for shapes."""
    resolve_backend(backend, u)
    return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
