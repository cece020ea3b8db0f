"""Chunked selective scan in pure PyTorch: runs on any device, forward and backward.

Why this algorithm: the recurrence ``h_t = a_t h_{t-1} + x_t`` is split in chunks of T steps.
Inside a chunk every chunk is scanned at once from a zero state (T vectorised steps instead
of L), the decay from the chunk start is ``exp(cumsum(delta * A))`` (exponent <= 0 for A <= 0,
so it never overflows however negative delta*A sums get), and the chunk-start states are
carried sequentially (L / T small steps), then added back as ``decay * h_start``. No
factor ``exp(-cumsum)`` is ever formed, so nothing grows: this is the "split chunks" way of
keeping exponents bounded, and it is exact up to float rounding.

The backward is the same scan run in reverse time on the adjoint
``g_t = a_{t+1} g_{t+1} + C_t dy_t`` (a custom autograd.Function, not autograd through the
loop), with the states recomputed. Channels are processed in blocks so the (b, d, N, L)
intermediates stay small.
"""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_CHUNK = 64
BLOCK_ELEMENTS = 1 << 23  # elements of one (b, channels, N, L) intermediate: 32 MiB in float32


def chunked_linear_scan(log_a: Tensor, x: Tensor, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """All states of ``h_t = exp(log_a_t) h_{t-1} + x_t`` (h_{-1} = 0) along the last axis."""
    length = x.shape[-1]
    pad = (-length) % chunk
    if pad:
        log_a = torch.nn.functional.pad(log_a, (0, pad))
        x = torch.nn.functional.pad(x, (0, pad))
    lead = x.shape[:-1]
    n_chunks = x.shape[-1] // chunk
    log_a = log_a.reshape(*lead, n_chunks, chunk)
    x = x.reshape(*lead, n_chunks, chunk)
    a = torch.exp(log_a)
    local = torch.empty_like(x)
    local[..., 0] = x[..., 0]
    for t in range(1, chunk):  # every chunk at once, from a zero state
        torch.addcmul(x[..., t], a[..., t], local[..., t - 1], out=local[..., t])
    decay = torch.exp(torch.cumsum(log_a, dim=-1))  # decay from the chunk start, in (0, 1]
    starts = torch.empty_like(x[..., 0])
    state = torch.zeros_like(x[..., 0, 0])
    for c in range(n_chunks):  # carry the chunk-start states
        starts[..., c] = state
        state = decay[..., c, -1] * state + local[..., c, -1]
    h = torch.addcmul(local, decay, starts.unsqueeze(-1))
    return h.reshape(*lead, n_chunks * chunk)[..., :length]


def _blocks(batch: int, dim: int, n_groups: int, n: int, length: int) -> list[tuple[int, int, int]]:
    """(group, first channel, last channel + 1) blocks, each inside one group, of bounded size."""
    per_group = dim // n_groups
    size = max(1, min(per_group, BLOCK_ELEMENTS // max(1, batch * n * length)))
    return [
        (g, start, min(start + size, (g + 1) * per_group))
        for g in range(n_groups)
        for start in range(g * per_group, (g + 1) * per_group, size)
    ]


class _ChunkedScan(torch.autograd.Function):
    """y = scan(u, delta, A, B, C) with B, C grouped (b, G, N, L); returns (y, last state)."""

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        batch, dim, length = u.shape
        n = A.shape[1]
        y = torch.empty_like(u)
        last = u.new_empty(batch, dim, n)
        for g, d0, d1 in _blocks(batch, dim, B.shape[1], n, length):
            dl = delta[:, d0:d1, None, :]
            log_a = dl * A[None, d0:d1, :, None]
            x = dl * B[:, g, None] * u[:, d0:d1, None, :]
            h = chunked_linear_scan(log_a, x, chunk)
            y[:, d0:d1] = (h * C[:, g, None]).sum(2)
            last[:, d0:d1] = h[..., -1]
        ctx.save_for_backward(u, delta, A, B, C)
        ctx.chunk = chunk
        ctx.mark_non_differentiable(last)
        return y, last

    @staticmethod
    def backward(ctx, dy: Tensor, _dlast: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        u, delta, A, B, C = ctx.saved_tensors
        chunk = ctx.chunk
        batch, dim, length = u.shape
        n = A.shape[1]
        dy = dy.to(u.dtype)
        du, ddelta, dA = torch.empty_like(u), torch.empty_like(u), torch.empty_like(A)
        dB, dC = torch.zeros_like(B), torch.zeros_like(C)
        for g, d0, d1 in _blocks(batch, dim, B.shape[1], n, length):
            dl = delta[:, d0:d1, None, :]  # (b, c, 1, L)
            ul = u[:, d0:d1, None, :]
            Bg, Cg = B[:, g, None], C[:, g, None]  # (b, 1, N, L)
            log_a = dl * A[None, d0:d1, :, None]
            h = chunked_linear_scan(log_a, dl * Bg * ul, chunk)
            dyl = dy[:, d0:d1, None, :]
            dC[:, g] += (dyl * h).sum(1)
            # Adjoint g_t = a_{t+1} g_{t+1} + C_t dy_t, as a forward scan on the flipped sequence.
            log_a_next = torch.nn.functional.pad(log_a[..., 1:], (0, 1))
            adj = chunked_linear_scan(log_a_next.flip(-1), (Cg * dyl).flip(-1), chunk).flip(-1)
            h_prev = torch.nn.functional.pad(h[..., :-1], (1, 0))
            da = adj * h_prev * torch.exp(log_a)  # d loss / d (delta * A)
            gb = (adj * Bg).sum(2)  # (b, c, L)
            du[:, d0:d1] = delta[:, d0:d1] * gb
            ddelta[:, d0:d1] = u[:, d0:d1] * gb + (da * A[None, d0:d1, :, None]).sum(2)
            dA[d0:d1] = (da * dl).sum((0, 3))
            dB[:, g] += (adj * dl * ul).sum(1)
        return du, ddelta, dA, dB, dC, None


def scan_chunked(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int | None = None
) -> tuple[Tensor, Tensor]:
    """Core scan without D/z: u, delta (b, d, L); A (d, N); B, C (b, G, N, L). Returns (y, last state).

    ``chunk`` defaults to the module's ``DEFAULT_CHUNK`` at call time (tests shrink it).
    """
    return _ChunkedScan.apply(u, delta, A, B, C, chunk or DEFAULT_CHUNK)
