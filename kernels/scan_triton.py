"""Selective scan in Triton, forward and backward, with an optional fused VMamba cross-scan.

Why Triton: mamba-ssm's CUDA extension must match the exact torch/CUDA/C++ ABI of the machine
and is the hardest part of a Mamba install; Triton ships as a wheel and compiles at run time,
so ``pip install rsmamba[cuda]`` gives a fast GPU scan without nvcc.

Design (one program per (batch, block of BLOCK_D channels)): the program walks the sequence
in time, keeping its (BLOCK_D, d_state) state in registers in float32 (float64 for float64
inputs) and loading u, delta, z, B_t, C_t per step; everything else (softplus(delta + bias),
D skip, SiLU(z) gate) is fused in the same loop. Inputs may be float32, bfloat16 or float16;
they are converted on load. Channel blocks never straddle a B/C group, so a program reads
one B_t and one C_t vector per step and reduces dB / dC over its own channels.

Each program is a sequential walk, so the GPU needs many of them: on CUDA the channel block
shrinks (down to 4) until there are two programs per multiprocessor, and small tiles run on
one or two warps so the per-step reductions over d_state stay inside a warp. How fast this is
against mamba-ssm's kernel is measured by bench/gpu.sh (bench/results/gpu.json).

Backward: the forward stores the state entering every chunk of CHUNK steps. The backward
runs the chunks last to first: it recomputes the chunk's states from that checkpoint into a
per-program scratch buffer, then walks the chunk backwards with the adjoint
``g_t = C_t dy_t + a_{t+1} g_{t+1}`` and accumulates every gradient in the same pass
(du, ddelta, dz per step; dA, dD, ddelta_bias in registers; dB, dC as per-block partial sums
reduced over blocks afterwards in torch, so nothing needs atomics and results do not depend
on scheduling).

Fused cross-scan (``CROSS``): VMamba's SS2D scans an (H, W) map in four orders (row-major,
column-major, both reversed; see :func:`rsmamba.kernels.cross_scan.cross_scan`). Instead of
materialising the four reordered copies, the kernel maps step t of direction k to the pixel
it visits and reads u, delta, B, C and writes y (and every gradient) at that pixel, in the
map's own row-major order. Direction k is the B/C group of the channel (G = 4), and the four
directions share one u (``u_channels = dim / 4``). The cross-merge then is a sum over k.

Tests run these kernels on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``,
set before this module is imported); on CUDA they are compiled.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

CHUNK = 64  # steps between stored states (backward recompute length)
MAX_BLOCK_D = 16
NUM_WARPS: int | None = None  # None: 1 warp per 64 state elements of a program, at most 4
ADAPT_BLOCK_D = True  # shrink the channel block on CUDA for occupancy (bench/gpu.py turns it off to sweep)


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1 at import)."""
    if hasattr(triton, "knobs"):
        return bool(triton.knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")  # triton < 3.4 reads the variable


@triton.jit
def _pos(t, k, L, H, W, CROSS: tl.constexpr):
    """Index in memory of step t of direction k: t itself, or the pixel VMamba's cross-scan visits."""
    if CROSS:
        tt = tl.where(k >= 2, L - 1 - t, t)
        return tl.where(k % 2 == 1, (tt % H) * W + tt // H, tt)
    else:
        return t


@triton.jit
def _softplus(x):
    # log1p(e) as Goldberg's identity has it: 1 + e rounds to float32's spacing near 1 (1.2e-7), so log(1 + e)
    # was 17 % off at x = -15 and 0.9 % at -12 (dt biases start at -6.9 and drift lower); log(u) * e / (u - 1)
    # divides that rounding out, and u == 1 (e under half the spacing) leaves e itself
    e = tl.exp(tl.minimum(x, 20.0))
    u = 1.0 + e
    small = u == 1.0
    log1p = tl.where(small, e, tl.log(u) * e / tl.where(small, 1.0, u - 1.0))
    return tl.where(x > 20.0, x, log1p)


@triton.jit
def _scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    y_ptr, last_ptr, ckpt_ptr,
    L, dim, N, per_group, u_channels, H, W, n_chunks,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl,
    s_yb, s_yd, s_yl,
    ACC: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK_T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    CROSS: tl.constexpr, SAVE_CKPT: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    g = (pid_d * BLOCK_D) // per_group  # the block's B/C group (= direction when CROSS)
    ud = offs_d % u_channels

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(ACC)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)

    u_base = u_ptr + pid_b * s_ub + ud * s_ud
    d_base = delta_ptr + pid_b * s_db + offs_d * s_dd
    z_base = z_ptr + pid_b * s_zb + offs_d * s_zd
    y_base = y_ptr + pid_b * s_yb + offs_d * s_yd
    B_base = B_ptr + pid_b * s_Bb + g * s_Bg + offs_n * s_Bn
    C_base = C_ptr + pid_b * s_Cb + g * s_Cg + offs_n * s_Cn
    ck_base = ckpt_ptr + ((pid_b * dim + offs_d[:, None]) * n_chunks) * N + offs_n[None, :]

    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
    for c in range(0, n_chunks):
        if SAVE_CKPT:
            tl.store(ck_base + c * N, h, mask=mask_dn)
        for i in range(0, CHUNK_T):
            t = c * CHUNK_T + i
            p = _pos(t, g, L, H, W, CROSS)
            # scalar-vs-vector masks are built as vectors (the interpreter mis-types bool & scalar bool)
            md = mask_d & ((offs_d * 0 + t) < L)
            mn = mask_n & ((offs_n * 0 + t) < L)
            u = tl.load(u_base + p * s_ul, mask=md, other=0.0).to(ACC)
            dt = tl.load(d_base + p * s_dl, mask=md, other=0.0).to(ACC)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = _softplus(dt)
            dt = tl.where(md, dt, 0.0)  # padding steps leave the state alone
            Bt = tl.load(B_base + p * s_Bl, mask=mn, other=0.0).to(ACC)
            Ct = tl.load(C_base + p * s_Cl, mask=mn, other=0.0).to(ACC)
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
            y = tl.sum(h * Ct[None, :], axis=1)
            if HAS_D:
                y += Dv * u
            if HAS_Z:
                z = tl.load(z_base + p * s_zl, mask=md, other=0.0).to(ACC)
                y = y * z / (1.0 + tl.exp(-z))
            tl.store(y_base + p * s_yl, y.to(y_ptr.dtype.element_ty), mask=md)
    tl.store(last_ptr + (pid_b * dim + offs_d[:, None]) * N + offs_n[None, :], h, mask=mask_dn)


@triton.jit
def _scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, ckpt_ptr, scratch_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr,
    L, dim, N, per_group, u_channels, H, W, n_chunks,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_zb, s_zd, s_zl,
    s_Bb, s_Bg, s_Bn, s_Bl, s_Cb, s_Cg, s_Cn, s_Cl,
    s_ob, s_od, s_ol,
    ACC: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK_T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    CROSS: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    n_dblocks = tl.num_programs(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    mask_d = offs_d < dim
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    g = (pid_d * BLOCK_D) // per_group
    ud = offs_d % u_channels

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(ACC)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)

    u_base = u_ptr + pid_b * s_ub + ud * s_ud
    d_base = delta_ptr + pid_b * s_db + offs_d * s_dd
    z_base = z_ptr + pid_b * s_zb + offs_d * s_zd
    o_base = dout_ptr + pid_b * s_ob + offs_d * s_od
    B_base = B_ptr + pid_b * s_Bb + g * s_Bg + offs_n * s_Bn
    C_base = C_ptr + pid_b * s_Cb + g * s_Cg + offs_n * s_Cn
    ck_base = ckpt_ptr + ((pid_b * dim + offs_d[:, None]) * n_chunks) * N + offs_n[None, :]
    # scratch: (b, n_dblocks, CHUNK_T, BLOCK_D, BLOCK_N), one private slab per program
    sc_base = scratch_ptr + ((pid_b * n_dblocks + pid_d) * CHUNK_T) * BLOCK_D * BLOCK_N \
        + tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + offs_n[None, :]
    # gradients of per-step tensors are written in float32, (b, dim, L) contiguous
    gd_off = (pid_b * dim + offs_d) * L
    # dB / dC partials: (b, n_dblocks, N, L)
    gbc_off = ((pid_b * n_dblocks + pid_d) * N + offs_n) * L

    g_carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)  # a_{t+1} * g_{t+1}
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=ACC)
    dD_acc = tl.zeros([BLOCK_D], dtype=ACC)
    dbias_acc = tl.zeros([BLOCK_D], dtype=ACC)
    for cc in range(0, n_chunks):
        c = n_chunks - 1 - cc
        h0 = tl.load(ck_base + c * N, mask=mask_dn, other=0.0)
        h = h0
        for i in range(0, CHUNK_T):  # recompute this chunk's states
            t = c * CHUNK_T + i
            p = _pos(t, g, L, H, W, CROSS)
            # scalar-vs-vector masks are built as vectors (the interpreter mis-types bool & scalar bool)
            md = mask_d & ((offs_d * 0 + t) < L)
            mn = mask_n & ((offs_n * 0 + t) < L)
            u = tl.load(u_base + p * s_ul, mask=md, other=0.0).to(ACC)
            dt = tl.load(d_base + p * s_dl, mask=md, other=0.0).to(ACC)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = _softplus(dt)
            dt = tl.where(md, dt, 0.0)
            Bt = tl.load(B_base + p * s_Bl, mask=mn, other=0.0).to(ACC)
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
            tl.store(sc_base + i * BLOCK_D * BLOCK_N, h)
        tl.debug_barrier()
        for ii in range(0, CHUNK_T):  # then walk it backwards
            i = CHUNK_T - 1 - ii
            t = c * CHUNK_T + i
            p = _pos(t, g, L, H, W, CROSS)
            # scalar-vs-vector masks are built as vectors (the interpreter mis-types bool & scalar bool)
            md = mask_d & ((offs_d * 0 + t) < L)
            mn = mask_n & ((offs_n * 0 + t) < L)
            u = tl.load(u_base + p * s_ul, mask=md, other=0.0).to(ACC)
            dt_raw = tl.load(d_base + p * s_dl, mask=md, other=0.0).to(ACC)
            if HAS_BIAS:
                dt_raw = dt_raw + bias
            if SOFTPLUS:
                dt = _softplus(dt_raw)
            else:
                dt = dt_raw
            dt = tl.where(md, dt, 0.0)
            Bt = tl.load(B_base + p * s_Bl, mask=mn, other=0.0).to(ACC)
            Ct = tl.load(C_base + p * s_Cl, mask=mn, other=0.0).to(ACC)
            dout = tl.load(o_base + p * s_ol, mask=md, other=0.0).to(ACC)
            h_t = tl.load(sc_base + i * BLOCK_D * BLOCK_N)
            h_prev = tl.load(sc_base + (i - 1) * BLOCK_D * BLOCK_N, mask=mask_dn & ((offs_n * 0 + i) > 0)[None, :], other=0.0)
            h_prev = tl.where(i > 0, h_prev, h0)
            if HAS_Z:
                y = tl.sum(h_t * Ct[None, :], axis=1)
                if HAS_D:
                    y += Dv * u
                z = tl.load(z_base + p * s_zl, mask=md, other=0.0).to(ACC)
                sz = 1.0 / (1.0 + tl.exp(-z))
                dz = dout * y * sz * (1.0 + z * (1.0 - sz))
                tl.store(dz_ptr + gd_off + p, dz, mask=md)
                dy = dout * z * sz
            else:
                dy = dout
            gt = g_carry + dy[:, None] * Ct[None, :]
            a = tl.exp(dt[:, None] * A)
            gB = tl.sum(gt * Bt[None, :], axis=1)
            du = gB * dt
            if HAS_D:
                du += dy * Dv
                dD_acc += dy * u
            da = gt * h_prev * a  # d loss / d (delta * A)
            ddt = gB * u + tl.sum(da * A, axis=1)
            dA_acc += da * dt[:, None]
            if SOFTPLUS:
                ddt = ddt / (1.0 + tl.exp(-dt_raw))
            ddt = tl.where(md, ddt, 0.0)
            dbias_acc += ddt
            tl.store(du_ptr + gd_off + p, du, mask=md)
            tl.store(ddelta_ptr + gd_off + p, ddt, mask=md)
            tl.store(dC_ptr + gbc_off + p, tl.sum(dy[:, None] * h_t, axis=0), mask=mn)
            tl.store(dB_ptr + gbc_off + p, tl.sum(gt * (dt * u)[:, None], axis=0), mask=mn)
            g_carry = a * gt
        tl.debug_barrier()
    gp = pid_b * dim + offs_d
    tl.store(dA_ptr + gp[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
    if HAS_D:
        tl.store(dD_ptr + gp, dD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.store(dbias_ptr + gp, dbias_acc, mask=mask_d)


def _block_d(per_group: int, batch: int = 1, dim: int = 0, device: torch.device | None = None) -> int:
    """Largest power of two <= MAX_BLOCK_D dividing the channels per group (blocks stay in one group),
    halved (down to 4) on CUDA while there are fewer than two programs per multiprocessor: each
    program is a sequential walk over L, so the GPU is only busy with enough of them."""
    block = 1
    while block * 2 <= MAX_BLOCK_D and per_group % (block * 2) == 0:
        block *= 2
    if ADAPT_BLOCK_D and device is not None and device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        while block > 4 and batch * triton.cdiv(dim, block) < 2 * sms:
            block //= 2
    return block


def _num_warps(block_d: int, block_n: int) -> int:
    """Few warps for small tiles: the per-step reductions over d_state then stay inside a warp."""
    if NUM_WARPS is not None:
        return NUM_WARPS
    return max(1, min(4, block_d * block_n // 64))


def _acc(dtype: torch.dtype):  # type: ignore[no-untyped-def]
    return tl.float64 if dtype == torch.float64 else tl.float32


def _s3(x: Tensor | None) -> tuple[int, int, int]:
    return (0, 0, 0) if x is None else tuple(x.stride())  # type: ignore[return-value]


class _TritonScan(torch.autograd.Function):
    """out = scan(u, delta, A, B, C) * D/z extras; returns (out, last state)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, u, delta, A, B, C, D, z, delta_bias, softplus: bool, hw: tuple[int, int] | None, save: bool
    ) -> tuple[Tensor, Tensor]:
        batch, dim, length = delta.shape
        n = A.shape[1]
        groups = B.shape[1]
        per_group = dim // groups
        block_d = _block_d(per_group, batch, dim, u.device)
        n_chunks = triton.cdiv(length, CHUNK)
        acc = torch.float64 if u.dtype == torch.float64 else torch.float32
        A = A.contiguous()
        # the kernels read D and delta_bias as packed (dim,) vectors
        D = D.contiguous() if D is not None else None
        delta_bias = delta_bias.contiguous() if delta_bias is not None else None
        # a cross-scan's four outputs are summed afterwards: keep them in the accumulation dtype
        y = torch.empty(batch, dim, length, device=u.device, dtype=u.dtype if hw is None else acc)
        last = torch.empty(batch, dim, n, device=u.device, dtype=acc)
        ckpt = torch.empty(batch, dim, n_chunks, n, device=u.device, dtype=acc) if save else last
        h, w = hw if hw is not None else (1, 1)
        dummy = delta
        grid = (batch, triton.cdiv(dim, block_d))
        _scan_fwd_kernel[grid](
            u, delta, A, B, C,
            D if D is not None else dummy, z if z is not None else dummy,
            delta_bias if delta_bias is not None else dummy,
            y, last, ckpt,
            length, dim, n, per_group, u.shape[1], h, w, n_chunks,
            *u.stride(), *delta.stride(), *_s3(z), *B.stride(), *C.stride(), *y.stride(),
            ACC=_acc(acc), BLOCK_D=block_d, BLOCK_N=max(triton.next_power_of_2(n), 2), CHUNK_T=CHUNK,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=softplus,
            CROSS=hw is not None, SAVE_CKPT=save,
            num_warps=_num_warps(block_d, max(triton.next_power_of_2(n), 2)),
        )
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ckpt if save else None)
        ctx.softplus, ctx.hw, ctx.block_d, ctx.n_chunks, ctx.chunk = softplus, hw, block_d, n_chunks, CHUNK
        ctx.mark_non_differentiable(last)
        return y, last

    @staticmethod
    def backward(ctx, dout: Tensor, _dlast: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        u, delta, A, B, C, D, z, delta_bias, ckpt = ctx.saved_tensors
        batch, dim, length = delta.shape
        n = A.shape[1]
        groups = B.shape[1]
        per_group = dim // groups
        block_d, n_chunks, chunk = ctx.block_d, ctx.n_chunks, ctx.chunk
        n_dblocks = triton.cdiv(dim, block_d)
        block_n = max(triton.next_power_of_2(n), 2)
        acc = ckpt.dtype
        dev = u.device
        f = {"device": dev, "dtype": acc}
        du = torch.empty(batch, dim, length, **f)
        ddelta = torch.empty(batch, dim, length, **f)
        dz = torch.empty(batch, dim, length, **f) if z is not None else du
        dA = torch.empty(batch, dim, n, **f)
        dD = torch.empty(batch, dim, **f)
        dbias = torch.empty(batch, dim, **f)
        dB = torch.empty(batch, n_dblocks, n, length, **f)
        dC = torch.empty(batch, n_dblocks, n, length, **f)
        scratch = torch.empty(batch, n_dblocks, chunk, block_d, block_n, **f)
        h, w = ctx.hw if ctx.hw is not None else (1, 1)
        dummy = delta
        _scan_bwd_kernel[(batch, n_dblocks)](
            u, delta, A, B, C,
            D if D is not None else dummy, z if z is not None else dummy,
            delta_bias if delta_bias is not None else dummy,
            dout, ckpt, scratch,
            du, ddelta, dz, dA, dD, dbias, dB, dC,
            length, dim, n, per_group, u.shape[1], h, w, n_chunks,
            *u.stride(), *delta.stride(), *_s3(z), *B.stride(), *C.stride(), *dout.stride(),
            ACC=_acc(acc), BLOCK_D=block_d, BLOCK_N=block_n, CHUNK_T=chunk,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=ctx.softplus, CROSS=ctx.hw is not None,
            num_warps=_num_warps(block_d, block_n),
        )
        u_rep = dim // u.shape[1]
        if u_rep > 1:  # the directions of a fused cross-scan share u
            du = du.view(batch, u_rep, u.shape[1], length).sum(1)
        blocks_per_group = per_group // block_d
        dB = dB.view(batch, groups, blocks_per_group, n, length).sum(2)
        dC = dC.view(batch, groups, blocks_per_group, n, length).sum(2)
        return (
            du.to(u.dtype),
            ddelta.to(delta.dtype),
            dA.sum(0).to(A.dtype),
            dB.to(B.dtype),
            dC.to(C.dtype),
            dD.sum(0).to(D.dtype) if D is not None else None,
            dz.to(z.dtype) if z is not None else None,
            dbias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None,
            None,
            None,
            None,
        )


def scan_triton(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    hw: tuple[int, int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Full selective scan (D, z, delta bias and softplus fused); B, C grouped (b, G, N, L).

    Returns (y in u's dtype, last state in float32 (float64 for float64 inputs); with ``hw``, y in float32).
    With ``hw = (H, W)`` it is VMamba's
    four-direction cross-scan over a row-major (H, W) map: G must be 4, ``u`` is (b, dim/4, L)
    shared by the directions, delta/B/C/z and y are in the map's row-major order, and
    ``y.view(b, 4, dim/4, L).sum(1)`` is the cross-merge. Last states are in scan order.
    """
    if hw is not None:
        if B.shape[1] != 4 or delta.shape[1] != 4 * u.shape[1] or hw[0] * hw[1] != u.shape[-1]:
            raise ValueError("cross-scan needs G = 4 groups, delta with 4x u's channels and H*W = L")
    elif u.shape[1] != delta.shape[1]:
        raise ValueError("u and delta must have the same channels")
    tensors = (u, delta, A, B, C, D, z, delta_bias)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    return _TritonScan.apply(*tensors, bool(delta_softplus), hw, save)
