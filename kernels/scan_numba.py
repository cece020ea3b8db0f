"""Compiled CPU selective scan (numba): one fused loop per channel, forward and backward.

Why this shape: on a CPU the scan is bound by its ``exp(delta * A)`` calls (b*d*L*N of them).
numba has no vectorised ``exp`` unless Intel SVML is installed, so :func:`_exp32` is a
Cody-Waite range reduction plus a degree-6 polynomial written in plain arithmetic, with the
``2**k`` factor built by an LLVM bitcast: LLVM vectorises it together with the recurrence
over the N states, and nothing is materialised at (b, d, L, N).

The backward is its own reverse-time recurrence (no autograd through a loop): per channel it
recomputes the forward states into a (L, N) buffer, then runs the adjoint
``g_t = a_{t+1} g_{t+1} + C_t dy_t`` backwards and accumulates every gradient in one pass.
Channels are split in blocks so ``dB``/``dC`` (shared by all channels of a group) are summed
per block without races, then over blocks in torch.

numba compiles at first use (a few seconds, cached on disk); it ships as wheels, so no
compiler is needed on the user's machine.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading

import numpy as np
import torch
from torch import Tensor

from rsmamba.kernels.scan_errors import ScanBackendError

try:  # numba is a declared dependency, but keep the PyTorch path alive without it
    import numba
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.extending import intrinsic, overload

    AVAILABLE = True
except Exception:  # pragma: no cover - exercised only on broken installs
    AVAILABLE = False

_LAYER_LOCK = threading.Lock()
_KERNEL_LOCK = threading.Lock()  # one scan kernel at a time on the workqueue layer
_layer: str | None = None


def threading_layer() -> str:
    """numba's threading layer for the scan kernels, its threads started on first use (once per process).

    numba's OpenMP layer shares/competes with torch's OpenMP runtime: its spinning team made every later torch
    op in a model 3x slower (mambafcs_tiny step 0.20 s -> 0.55-0.70 s, one torch thread). The workqueue layer
    parks its threads, and the scan itself is as fast (0.135 s vs 0.20 s reference), so it is the one started,
    unless the process chose a layer (``NUMBA_THREADING_LAYER``, ``numba.config.THREADING_LAYER``) or numba's
    threads already run. ``numba.config`` is set back afterwards; the started layer stays the process's (numba
    starts one per process). workqueue is not thread-safe (two threads in it abort the process), hence
    :data:`_KERNEL_LOCK`.
    """
    global _layer
    with _LAYER_LOCK:
        if _layer is None:
            chosen = numba.config.THREADING_LAYER
            ours = "NUMBA_THREADING_LAYER" not in os.environ and chosen == "default"
            if ours:
                numba.config.THREADING_LAYER = "workqueue"
            try:
                numba.get_num_threads()  # starts numba's threads on the configured layer (or finds them running)
            except ValueError as exc:  # a layer numba does not know, or whose library is missing (tbb)
                raise ScanBackendError(f"NUMBA_THREADING_LAYER={os.environ.get('NUMBA_THREADING_LAYER', chosen)}: "
                                       f"numba cannot start that threading layer ({str(exc).splitlines()[0]}); "
                                       "unset it, or install the layer's library") from None
            finally:
                numba.config.THREADING_LAYER = chosen
            _layer = numba.threading_layer()
        return _layer


if AVAILABLE:

    @intrinsic
    def _i32_as_f32(typingctx, x):  # type: ignore[no-untyped-def]
        """Reinterpret int32 bits as float32 (LLVM bitcast; vectorises, unlike a libm call)."""
        sig = types.float32(types.int32)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.bitcast(args[0], ir.FloatType())

        return sig, codegen

    @njit(fastmath=True, inline="always", cache=True)
    def _exp32(x):  # type: ignore[no-untyped-def]
        """float32 exp, max relative error ~5e-7 on [-87, 88] (4.6e-7 measured at -86.99); results below
        e**-87 flush to ~1e-38."""
        x = min(max(x, np.float32(-87.3)), np.float32(88.0))
        k = np.float32(math.floor(x * np.float32(1.4426950408889634) + np.float32(0.5)))
        r = x - k * np.float32(0.693145751953125) - k * np.float32(1.428606765330187e-06)
        p = np.float32(1.0 / 720.0)
        p = p * r + np.float32(1.0 / 120.0)
        p = p * r + np.float32(1.0 / 24.0)
        p = p * r + np.float32(1.0 / 6.0)
        p = p * r + np.float32(0.5)
        p = p * r + np.float32(1.0)
        p = p * r + np.float32(1.0)
        return p * _i32_as_f32((np.int32(k) + np.int32(127)) << np.int32(23))

    def _exp(x):  # type: ignore[no-untyped-def]
        """exp for the kernels: the vectorisable one in float32, libm's in float64 (gradcheck).

        Compiled code uses the ``overload`` below; this body only runs when called from Python.
        """
        return math.exp(x)

    @overload(_exp, inline="always")
    def _exp_overload(x):  # type: ignore[no-untyped-def]
        if x == types.float32:
            return lambda x: _exp32(x)
        return lambda x: math.exp(x)

    exp_fn = _exp

    @njit(parallel=True, fastmath=True, cache=True)
    def forward(u, delta, A, B, C, y, last_state):  # type: ignore[no-untyped-def]
        """u, delta, y: (b, d, L); A: (d, N); B, C: (b, G, L, N); last_state: (b, d, N)."""
        nb, nd, length = u.shape
        n = A.shape[1]
        per_group = nd // B.shape[1]
        zero = np.zeros(1, dtype=u.dtype)[0]
        for bd in prange(nb * nd):
            b = bd // nd
            d = bd % nd
            g = d // per_group
            h = np.zeros(n, dtype=u.dtype)
            for t in range(length):
                dt = delta[b, d, t]
                du = dt * u[b, d, t]
                acc = zero
                for i in range(n):  # no array views in the loops: each one is an atomic refcount
                    hi = exp_fn(dt * A[d, i]) * h[i] + du * B[b, g, t, i]
                    h[i] = hi
                    acc += hi * C[b, g, t, i]
                y[b, d, t] = acc
            for i in range(n):
                last_state[b, d, i] = h[i]

    @njit(parallel=True, fastmath=True, cache=True)
    def backward(u, delta, A, B, C, dy, n_blocks, du, ddelta, dA, dB, dC):  # type: ignore[no-untyped-def]
        """Gradients of y = scan(u, delta, A, B, C) given dy.

        du, ddelta: (b, d, L); dA: (b, d, N) per-batch partials; dB, dC: (b, G, n_blocks, L, N)
        partials over channel blocks (the caller sums them).
        """
        nb, nd, length = u.shape
        n = A.shape[1]
        n_groups = B.shape[1]
        per_group = nd // n_groups
        block = (per_group + n_blocks - 1) // n_blocks
        zero = np.zeros(1, dtype=u.dtype)[0]
        for task in prange(nb * n_groups * n_blocks):
            b = task // (n_groups * n_blocks)
            g = (task // n_blocks) % n_groups
            k = task % n_blocks
            hs = np.zeros((length + 1, n), dtype=u.dtype)  # hs[t + 1] = h_t, hs[0] = 0
            gs = np.zeros(n, dtype=u.dtype)
            a_next = np.zeros(n, dtype=u.dtype)
            dA_local = np.zeros(n, dtype=u.dtype)
            d_start = g * per_group + k * block
            d_stop = min(d_start + block, (g + 1) * per_group)
            for d in range(d_start, d_stop):
                # Forward again, keeping every state.
                for i in range(n):
                    gs[i] = zero
                    a_next[i] = zero
                    dA_local[i] = zero
                for t in range(length):
                    dt = delta[b, d, t]
                    du_t = dt * u[b, d, t]
                    for i in range(n):
                        hs[t + 1, i] = exp_fn(dt * A[d, i]) * hs[t, i] + du_t * B[b, g, t, i]
                # Reverse-time adjoint.
                for t in range(length - 1, -1, -1):
                    dt = delta[b, d, t]
                    ut = u[b, d, t]
                    dyt = dy[b, d, t]
                    dtu = dt * ut
                    sum_gb = zero
                    sum_ada = zero
                    for i in range(n):
                        gi = gs[i] * a_next[i] + C[b, g, t, i] * dyt
                        gs[i] = gi
                        dC[b, g, k, t, i] += dyt * hs[t + 1, i]
                        a = exp_fn(dt * A[d, i])
                        a_next[i] = a
                        da = gi * hs[t, i] * a  # d loss / d (delta_t * A_i)
                        sum_ada += A[d, i] * da
                        dA_local[i] += dt * da
                        sum_gb += gi * B[b, g, t, i]
                        dB[b, g, k, t, i] += gi * dtu
                    du[b, d, t] = dt * sum_gb
                    ddelta[b, d, t] = ut * sum_gb + sum_ada
                for i in range(n):
                    dA[b, d, i] = dA_local[i]


def _kernels(dtype: torch.dtype) -> tuple:
    """The (forward, backward) kernels; numba specialises them per dtype and caches on disk."""
    return forward, backward


SERIAL_BELOW = 1 << 20  # b*d*L*N below which the kernels run on one thread


class _Threads:
    """One kernel call: small problems on one numba thread (waking a thread team costs more than the work,
    and on a loaded machine the OpenMP teams of torch and numba spin against each other), and calls from
    several Python threads one at a time on the workqueue layer (:func:`threading_layer`)."""

    def __init__(self, work: int) -> None:
        self.serial = work < SERIAL_BELOW
        self.lock = _KERNEL_LOCK if threading_layer() == "workqueue" else contextlib.nullcontext()

    def __enter__(self) -> None:
        self.lock.__enter__()
        if self.serial:
            self.previous = numba.get_num_threads()
            numba.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        try:
            if self.serial:
                numba.set_num_threads(self.previous)
        finally:
            self.lock.__exit__(*exc)


def _np(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


class _NumbaScan(torch.autograd.Function):
    """y = scan(u, delta, A, B, C) on CPU; B, C in (b, G, L, N) layout; compute dtype in, out."""

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        forward_kernel, _ = _kernels(u.dtype)
        u, delta, A, B, C = (x.contiguous() for x in (u, delta, A, B, C))
        y = torch.empty_like(u)
        last = u.new_empty(u.shape[0], u.shape[1], A.shape[1])
        with _Threads(u.numel() * A.shape[1]):
            forward_kernel(_np(u), _np(delta), _np(A), _np(B), _np(C), y.numpy(), last.numpy())
        ctx.save_for_backward(u, delta, A, B, C)
        ctx.mark_non_differentiable(last)
        return y, last

    @staticmethod
    def backward(ctx, dy: Tensor, _dlast: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        u, delta, A, B, C = ctx.saved_tensors
        _, backward_kernel = _kernels(u.dtype)
        nb, nd, _ = u.shape
        n_groups = B.shape[1]
        per_group = nd // n_groups
        work = u.numel() * A.shape[1]
        threading_layer()  # numba's threads started on the scan's layer before get_num_threads starts them
        threads = 1 if work < SERIAL_BELOW else numba.get_num_threads()
        n_blocks = max(1, min(per_group, -(-4 * threads // (nb * n_groups))))
        du = torch.empty_like(u)
        ddelta = torch.empty_like(u)
        dA = u.new_empty(nb, nd, A.shape[1])
        dB = u.new_zeros(nb, n_groups, n_blocks, *B.shape[2:])
        dC = torch.zeros_like(dB)
        with _Threads(work):
            backward_kernel(
                _np(u), _np(delta), _np(A), _np(B), _np(C), _np(dy.to(u.dtype)), n_blocks,
                du.numpy(), ddelta.numpy(), dA.numpy(), dB.numpy(), dC.numpy(),
            )  # fmt: skip
        return du, ddelta, dA.sum(0), dB.sum(2), dC.sum(2)


def scan_numba(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> tuple[Tensor, Tensor]:
    """Core scan without D/z: u, delta (b, d, L); A (d, N); B, C (b, G, N, L). Returns (y, last state)."""
    if not AVAILABLE:
        raise RuntimeError("numba is not importable")
    return _NumbaScan.apply(u, delta, A, B.transpose(-1, -2), C.transpose(-1, -2))
