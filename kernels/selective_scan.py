"""The Mamba selective scan with mamba-ssm's semantics, behind one dispatching function.

Shapes (as in ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``):
``u, delta, z``: (batch, dim, L); ``A``: (dim, N); ``B, C``: (batch, N, L) or grouped
(batch, G, N, L) with dim % G == 0; ``D, delta_bias``: (dim,).

Backends are chosen automatically and can be forced with ``backend=`` or the
``RSMAMBA_SCAN_BACKEND`` environment variable:

- ``mamba_ssm``: mamba-ssm's CUDA kernel, when it imports and the tensors are on CUDA;
- ``triton``: the Triton kernel (:mod:`rsmamba.kernels.scan_triton`), when ``triton`` imports
  and the tensors are on CUDA; on CPU tensors only when asked for by name and Triton runs in
  its interpreter (``TRITON_INTERPRET=1``: tests);
- ``numba``: fused compiled CPU loop with a vectorised exp (:mod:`rsmamba.kernels.scan_numba`);
- ``chunked``: pure PyTorch, any device (:mod:`rsmamba.kernels.scan_chunked`);
- ``reference``: the plain sequential recurrence, the oracle for tests.

Automatic choice: on CUDA ``mamba_ssm`` when importable, else ``triton`` when importable, else
``chunked``; on CPU ``numba``, else ``chunked``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rsmamba.kernels import scan_chunked, scan_numba
from rsmamba.kernels.scan_errors import ScanBackendError

BACKENDS = ("mamba_ssm", "triton", "numba", "chunked", "reference")


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
    # unbind once: indexing [..., t] inside the loop would make autograd scatter every step's
    # gradient into a full (b, d, N, L) zero tensor, O(L^2) work in the backward.
    for a_t, bu_t, c_t in zip(deltaA.unbind(-1), deltaBu.unbind(-1), Cx.unbind(-1)):
        state = a_t * state + bu_t
        ys.append((state * c_t).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.to(cdt)[None, :, None]
    if z is not None:
        y = y * F.silu(z.to(cdt))
    y = y.to(dtype_in)
    return (y, state) if return_last_state else y


def _load_mamba_ssm() -> Any:
    """mamba-ssm's ``selective_scan_fn`` or None. The import is guarded broadly: on CPU-only
    machines ``import mamba_ssm`` fails (ImportError, OSError for libcudart, RuntimeError)
    even when the package is installed."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # type: ignore[import-not-found]
    except Exception:
        return None
    return selective_scan_fn


_MAMBA_SSM_FN: Any = None
_MAMBA_SSM_TRIED = False


def mamba_ssm_scan_fn() -> Any:
    """Imported lazily, once: importing mamba-ssm is slow and initialises CUDA."""
    global _MAMBA_SSM_FN, _MAMBA_SSM_TRIED
    if not _MAMBA_SSM_TRIED:
        _MAMBA_SSM_TRIED = True
        _MAMBA_SSM_FN = _load_mamba_ssm()
    return _MAMBA_SSM_FN


def _load_triton() -> Any:
    """:mod:`rsmamba.kernels.scan_triton` or None when ``triton`` does not import here."""
    try:
        from rsmamba.kernels import scan_triton
    except Exception:  # ImportError, or a triton build that fails to initialise
        return None
    return scan_triton


_TRITON_MOD: Any = None
_TRITON_TRIED = False


def triton_scan_module() -> Any:
    """The Triton scan module, imported lazily once (importing triton takes a second)."""
    global _TRITON_MOD, _TRITON_TRIED
    if not _TRITON_TRIED:
        _TRITON_TRIED = True
        _TRITON_MOD = _load_triton()
    return _TRITON_MOD


def backends_for(device_type: str | None) -> list[str]:
    """Backends that run automatically on a device type (None: any), fastest first."""
    names = []
    on_cuda = device_type in (None, "cuda")
    if on_cuda and mamba_ssm_scan_fn() is not None:
        names.append("mamba_ssm")
    if on_cuda and triton_scan_module() is not None:
        names.append("triton")
    if scan_numba.AVAILABLE and device_type in (None, "cpu"):
        names.append("numba")
    names += ["chunked", "reference"]
    return names


def available_backends(u: Tensor | None = None) -> list[str]:
    """Backends that can run here (on ``u``'s device when given), fastest first."""
    return backends_for(None if u is None else u.device.type)


def _triton_interpreted() -> bool:
    """Triton's CPU interpreter is on: the Triton kernels run (slowly) on CPU tensors, for tests."""
    mod = triton_scan_module() if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") else None
    return mod is not None and mod.interpreting()


def resolve_backend(backend: str | None, u: Tensor) -> str:
    """The backend to use: the argument, then RSMAMBA_SCAN_BACKEND, then the fastest available."""
    name = backend or os.environ.get("RSMAMBA_SCAN_BACKEND") or "auto"
    if name == "auto":
        return available_backends(u)[0]
    if name not in BACKENDS:
        raise ScanBackendError(f"unknown selective-scan backend {name!r}; known: {', '.join(BACKENDS)}")
    if name == "triton" and u.device.type == "cpu" and _triton_interpreted():
        return name
    if name not in available_backends(u):
        raise ScanBackendError(
            f"selective-scan backend {name!r} cannot run on {u.device.type} tensors here; "
            f"available: {', '.join(available_backends(u))}"
        )
    return name


def _as_grouped(x: Tensor) -> Tensor:
    """(b, N, L) -> (b, 1, N, L); grouped (b, G, N, L) unchanged."""
    return x.unsqueeze(1) if x.dim() == 3 else x


def _check_shapes(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                  z: Tensor | None = None, delta_bias: Tensor | None = None) -> None:
    """mamba_ssm's shape rules, so every backend reads what it is given (a fast kernel indexes C
    with B's group count, and D and delta_bias as (dim,) vectors: anything else read wrong memory)."""
    batch, dim, length = u.shape
    if length == 0:  # two backends failed on it, two returned nothing: one answer
        raise ValueError("an empty sequence (L = 0) has nothing to scan")
    if delta.shape != u.shape:
        raise ValueError(f"delta has shape {tuple(delta.shape)}, expected {tuple(u.shape)}")
    if A.dim() != 2 or A.shape[0] != dim or A.is_complex():
        raise ValueError(f"A must be real with shape (dim={dim}, N), got {tuple(A.shape)} {A.dtype}")
    for name, x in (("B", B), ("C", C)):
        ok = x.dim() in (3, 4) and x.shape[0] == batch and x.shape[-1] == length and x.shape[-2] == A.shape[1]
        if not ok or (x.dim() == 4 and dim % x.shape[1] != 0) or x.is_complex():
            raise ValueError(f"{name} must be real (b, N, L) or (b, G, N, L) with dim % G == 0, got {tuple(x.shape)}")
    groups_b, groups_c = (x.shape[1] if x.dim() == 4 else 1 for x in (B, C))
    if groups_b != groups_c:
        raise ValueError(f"B and C must have the same groups, got G = {groups_b} and {groups_c}")
    for name, x in (("D", D), ("delta_bias", delta_bias)):
        if x is not None and tuple(x.shape) != (dim,):
            raise ValueError(f"{name} must have shape (dim={dim},), got {tuple(x.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z has shape {tuple(z.shape)}, expected {tuple(u.shape)}")


def _grows(A: Tensor, delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> bool:
    """Whether some delta * A may be > 0 (a state that grows): A > 0 anywhere, or, without the softplus that
    keeps delta positive, a negative delta (+ bias) against A <= 0."""
    if bool((A > 0).any()):
        return True
    if delta_softplus:
        return False
    biased = delta if delta_bias is None else delta + delta_bias[None, :, None]
    return bool((biased < 0).any())


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
    """Selective scan with mamba-ssm semantics on any device; see the module docstring for shapes.

    Differentiable in u, delta, A, B, C, D, z and delta_bias (the last state is not). Inputs
    may be float32 or bfloat16/float16 (accumulated in float32; the output has u's dtype), or
    float64 (computed in float64).
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    name = resolve_backend(backend, u)
    if name == "chunked" and _grows(A, delta, delta_bias, delta_softplus):
        name = "reference"  # growing states: the chunked exp(cumsum(delta A)) overflows, inf * 0 = NaN
    if name == "reference":
        return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if name == "mamba_ssm":
        fn = mamba_ssm_scan_fn()
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if name == "triton":
        y, last = triton_scan_module().scan_triton(
            u, delta, A, _as_grouped(B), _as_grouped(C), D, z, delta_bias, delta_softplus
        )
        return (y, last) if return_last_state else y
    dtype_in = u.dtype
    cdt = compute_dtype(u)
    u32, delta32 = u.to(cdt), delta.to(cdt)
    if delta_bias is not None:
        delta32 = delta32 + delta_bias.to(cdt)[None, :, None]
    if delta_softplus:
        delta32 = F.softplus(delta32)
    core = scan_numba.scan_numba if name == "numba" else scan_chunked.scan_chunked
    y, last = core(u32, delta32, A.to(cdt), _as_grouped(B.to(cdt)), _as_grouped(C.to(cdt)))
    if D is not None:
        y = y + u32 * D.to(cdt)[None, :, None]
    if z is not None:
        y = y * F.silu(z.to(cdt))
    y = y.to(dtype_in)
    return (y, last) if return_last_state else y
