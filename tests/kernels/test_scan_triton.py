"""The Triton selective scan against the sequential reference: values and gradients, plain and
as VMamba's fused four-direction cross-scan.

Without a GPU the kernels run in Triton's interpreter on CPU tensors (TRITON_INTERPRET=1, set in
conftest.py before triton is imported): shapes are tiny because the interpreter walks every step
of every program in Python. ``CHUNK`` is shrunk so the backward's chunked recompute spans several
chunks and lengths end mid-chunk. On a CUDA machine the same tests run the compiled kernels.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from rsmamba.kernels import scan_triton  # noqa: E402
from rsmamba.kernels.selective_scan import resolve_backend, selective_scan, selective_scan_reference  # noqa: E402
from rsmamba.kernels.cross_scan import cross_scan  # noqa: E402
from rsmamba.models.ss2d import SS2D  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
NAMES = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]


@pytest.fixture(autouse=True)
def small_chunk(monkeypatch):
    monkeypatch.setattr(scan_triton, "CHUNK", 8)


def _inputs(b, d, n, length, groups=None, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    bc = (b, n, length) if groups is None else (b, groups, n, length)
    x = {
        "u": r(b, d, length),
        "delta": r(b, d, length) * 0.5,
        "A": -torch.rand(d, n, generator=g) * 2,
        "B": r(*bc),
        "C": r(*bc),
        "D": r(d),
        "z": r(b, d, length),
        "delta_bias": r(d) * 0.5,
    }
    return {k: v.to(DEVICE) for k, v in x.items()}


def _rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    y, ref = y.detach().double(), ref.detach().double()
    return float((y - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


CASES = [
    # (b, d, n, L, groups, use_D, use_z, use_bias, softplus)
    (1, 4, 1, 13, None, False, False, False, False),
    (2, 4, 16, 19, None, True, True, True, True),
    (1, 8, 3, 21, 2, True, False, True, True),
    (1, 6, 5, 9, 3, False, True, False, False),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"b{c[0]}d{c[1]}n{c[2]}L{c[3]}g{c[4]}")
def test_values_and_gradients_match_reference(case) -> None:
    b, d, n, length, groups, use_d, use_z, use_bias, softplus = case
    x = _inputs(b, d, n, length, groups)
    if not softplus:
        x["delta"] = x["delta"].abs()
    used = {"D": use_d, "z": use_z, "delta_bias": use_bias}
    results = {}
    for backend in ("reference", "triton"):
        t = {k: v.clone().requires_grad_() for k, v in x.items() if used.get(k, True)}
        y, last = selective_scan(
            t["u"], t["delta"], t["A"], t["B"], t["C"], t.get("D"), t.get("z"), t.get("delta_bias"),
            delta_softplus=softplus, return_last_state=True, backend=backend,
        )
        weight = torch.linspace(-1, 1, y.numel(), device=DEVICE).reshape(y.shape)
        (y * weight).sum().backward()
        results[backend] = (y, last, {k: v.grad for k, v in t.items()})
    (y_ref, last_ref, g_ref), (y, last, g) = results["reference"], results["triton"]
    assert y.dtype == torch.float32 and y.shape == y_ref.shape
    assert _rel_err(y, y_ref) < 1e-5
    assert _rel_err(last, last_ref) < 1e-5
    assert set(g) == set(g_ref)
    for k in g_ref:
        assert _rel_err(g[k], g_ref[k]) < 1e-4, k


def test_no_grad_forward_and_half_precision_inputs() -> None:
    """bf16/fp16 inputs are read as float32 and accumulated in float32; the output has u's dtype."""
    x = _inputs(1, 4, 4, 11, seed=3)
    args = [x[k] for k in ("u", "delta", "A", "B", "C")]
    y_ref = selective_scan_reference(*args, delta_softplus=True)
    with torch.no_grad():
        assert _rel_err(selective_scan(*args, delta_softplus=True, backend="triton"), y_ref) < 1e-5
    for dtype in (torch.bfloat16, torch.float16):
        low = [a.to(dtype) for a in args]
        y = selective_scan(*low, delta_softplus=True, backend="triton")
        y_low_ref = selective_scan_reference(*[a.float() for a in low], delta_softplus=True)
        assert y.dtype == dtype
        assert _rel_err(y.float(), y_low_ref) < 1e-2  # output rounding only
        tensors = [a.clone().requires_grad_() for a in low]
        selective_scan(*tensors, delta_softplus=True, backend="triton").float().sum().backward()
        assert all(t.grad is not None and t.grad.dtype == dtype for t in tensors)


def test_fused_cross_scan_matches_each_direction() -> None:
    """Direction k of the fused kernel equals the reference scan over VMamba's k-th reordered copy."""
    b, d, n, h, w = 1, 2, 3, 3, 5
    length = h * w
    g = torch.Generator().manual_seed(7)
    x = torch.randn(b, d, h, w, generator=g).to(DEVICE)
    delta = (torch.randn(b, 4 * d, length, generator=g) * 0.5).to(DEVICE)  # in the map's order
    B, C = (torch.randn(b, 4, n, length, generator=g).to(DEVICE) for _ in range(2))
    A = (-torch.rand(4 * d, n, generator=g) * 2).to(DEVICE)
    D, bias = torch.randn(4 * d).to(DEVICE), torch.randn(4 * d).to(DEVICE) * 0.5
    leaves = [t.clone().requires_grad_() for t in (x, delta, A, B, C, D, bias)]
    xf, delta_f, A_f, B_f, C_f, D_f, bias_f = leaves
    y, _ = scan_triton.scan_triton(xf.flatten(2), delta_f, A_f, B_f, C_f, D_f, None, bias_f, True, hw=(h, w))
    y = y.view(b, 4, d, length)

    ref_leaves = [t.clone().requires_grad_() for t in (x, delta, A, B, C, D, bias)]
    xr, delta_r, A_r, B_r, C_r, D_r, bias_r = ref_leaves
    idx = torch.arange(length, device=DEVICE).reshape(h, w)
    orders = [idx.flatten(), idx.t().flatten(), idx.flatten().flip(0), idx.t().flatten().flip(0)]
    for k, order in enumerate(orders):
        assert torch.equal(cross_scan(x)[:, k], x.flatten(2)[:, :, order])  # the orders VMamba uses
    ys = []
    for k, order in enumerate(orders):
        sl = slice(k * d, (k + 1) * d)
        yk = selective_scan_reference(
            xr.flatten(2)[:, :, order], delta_r[:, sl][:, :, order], A_r[sl], B_r[:, k][:, :, order],
            C_r[:, k][:, :, order], D_r[sl], delta_bias=bias_r[sl], delta_softplus=True,
        )
        back = torch.empty_like(yk)
        back[:, :, order] = yk  # back to the map's order
        ys.append(back)
        assert _rel_err(y[:, k], back) < 1e-5, f"direction {k}"
    weight = torch.linspace(-1, 1, y.numel(), device=DEVICE).reshape(y.shape)
    (y * weight).sum().backward()
    (torch.stack(ys, 1) * weight).sum().backward()
    for name, a, r in zip(["x", "delta", "A", "B", "C", "D", "delta_bias"], leaves, ref_leaves):
        assert _rel_err(a.grad, r.grad) < 1e-4, name


def test_ss2d_uses_the_fused_kernel_and_matches_copies(monkeypatch) -> None:
    torch.manual_seed(0)
    op = SS2D(d_model=4, d_state=2, ssm_ratio=1.0, forward_type="v05_noz", channel_first=True).to(DEVICE)
    x = torch.randn(1, op.d_inner, 2, 3, device=DEVICE)
    out, grads = {}, {}
    for backend in ("reference", "triton"):
        monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", backend)
        op.zero_grad()
        xi = x.clone().requires_grad_()
        y = op.forward_core(xi)
        (y * torch.linspace(-1, 1, y.numel(), device=DEVICE).reshape(y.shape)).sum().backward()
        out[backend] = y
        grads[backend] = {"x": xi.grad, **{k: p.grad.clone() for k, p in op.named_parameters() if p.grad is not None}}
    assert resolve_backend(None, x) == "triton"
    calls = []
    real = scan_triton.scan_triton
    monkeypatch.setattr(scan_triton, "scan_triton", lambda *a, **k: calls.append(k.get("hw")) or real(*a, **k))
    op.forward_core(x)
    assert calls == [(2, 3)]  # one fused call over the (H, W) map, no reordered copies
    assert _rel_err(out["triton"], out["reference"]) < 1e-5
    assert set(grads["triton"]) == set(grads["reference"]) and "x_proj_weight" in grads["triton"]
    for k, g_ref in grads["reference"].items():
        assert _rel_err(grads["triton"][k], g_ref) < 1e-4, k


def test_strided_d_and_delta_bias_are_read_as_given() -> None:
    """The kernels read D and delta_bias as packed (dim,) vectors: a strided view must be packed first."""
    x = _inputs(1, 4, 2, 11)
    full_d, full_bias = torch.randn(8, device=DEVICE), torch.randn(8, device=DEVICE) * 0.5
    args = (x["u"], x["delta"], x["A"], x["B"], x["C"], full_d[::2], x["z"], full_bias[::2], True)
    ref = selective_scan_reference(*args)
    assert _rel_err(selective_scan(*args, backend="triton"), ref) < 1e-5


def test_softplus_of_a_very_negative_delta_is_not_rounded_to_zero() -> None:
    """log(1 + exp(-17)) is 0 in float32; softplus(-17) = 4.1e-8 adds up over a long sequence."""
    length = 40
    ones = torch.ones(1, 1, length, device=DEVICE)
    args = (ones, torch.full((1, 1, length), -17.0, device=DEVICE), torch.full((1, 1), -1e-6, device=DEVICE),
            ones.clone(), ones.clone())
    ref = selective_scan_reference(*args, delta_softplus=True)
    got = selective_scan(*args, delta_softplus=True, backend="triton")
    assert float(ref[0, 0, -1]) > 1e-6 and _rel_err(got, ref) < 1e-4


def test_softplus_is_accurate_where_one_plus_exp_rounds() -> None:
    """log(1 + e) in float32 carries 1 + e's rounding (1.2e-7): softplus(-15) was 17 % off, softplus(-12) 0.9 %."""
    raw = torch.tensor([-16.0, -15.0, -14.0, -12.0, -10.0, -8.0, -6.9, -5.0, -2.0, 0.0, 3.0, 25.0])
    d = raw.numel()
    one = torch.ones(1, 1, 1, device=DEVICE)
    # one step from a zero state: y = softplus(delta) * u * B * C, exactly
    got = selective_scan(torch.ones(1, d, 1, device=DEVICE), raw.view(1, d, 1).to(DEVICE),
                         torch.full((d, 1), -1.0, device=DEVICE), one, one, delta_softplus=True, backend="triton")
    true = torch.nn.functional.softplus(raw.double())
    assert float(((got.flatten().double().cpu() - true) / true).abs().max()) < 1e-6
