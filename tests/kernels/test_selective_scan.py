"""Every selective-scan backend against the sequential reference: values, gradients, stability."""

from __future__ import annotations

import pytest
import torch

from rsmamba.kernels import scan_chunked
from rsmamba.kernels.selective_scan import available_backends, resolve_backend, selective_scan

FAST_BACKENDS = [b for b in available_backends(torch.zeros(1)) if b != "reference"]


@pytest.fixture(params=[7, 64], ids=["chunk7", "chunk64"])
def chunk(request, monkeypatch):
    """The chunked backend with a chunk that does not divide L, and the default one."""
    monkeypatch.setattr(scan_chunked, "DEFAULT_CHUNK", request.param)
    return request.param


def _inputs(b, d, n, length, groups=None, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    bc_shape = (b, n, length) if groups is None else (b, groups, n, length)
    return {
        "u": r(b, d, length),
        "delta": r(b, d, length) * 0.5,
        "A": -torch.rand(d, n, generator=g, dtype=dtype) * 2,
        "B": r(*bc_shape),
        "C": r(*bc_shape),
        "D": r(d),
        "z": r(b, d, length),
        "delta_bias": r(d) * 0.5,
    }


def _rel_err(y: torch.Tensor, ref: torch.Tensor) -> float:
    y, ref = y.detach().double(), ref.detach().double()
    return float((y - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


CASES = [
    # (b, d, n, L, groups, use_D, use_z, use_bias, softplus)
    (2, 6, 1, 50, None, False, False, False, False),
    (2, 6, 16, 50, None, True, True, True, True),
    (1, 8, 16, 129, 2, True, False, True, True),
    (3, 4, 4, 1, None, True, True, False, False),
    (2, 12, 3, 200, 4, False, True, False, True),
]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"b{c[0]}d{c[1]}n{c[2]}L{c[3]}g{c[4]}")
def test_forward_matches_reference(backend, case, chunk) -> None:
    b, d, n, length, groups, use_d, use_z, use_bias, softplus = case
    x = _inputs(b, d, n, length, groups)
    if softplus is False:
        x["delta"] = x["delta"].abs()  # mamba's delta is positive
    kwargs = {
        "D": x["D"] if use_d else None,
        "z": x["z"] if use_z else None,
        "delta_bias": x["delta_bias"] if use_bias else None,
        "delta_softplus": softplus,
        "return_last_state": True,
    }
    args = (x["u"], x["delta"], x["A"], x["B"], x["C"])
    y_ref, last_ref = selective_scan(*args, **kwargs, backend="reference")
    y, last = selective_scan(*args, **kwargs, backend=backend)
    assert y.dtype == torch.float32 and y.shape == y_ref.shape
    assert _rel_err(y, y_ref) < 1e-5
    assert _rel_err(last, last_ref) < 1e-5


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("groups", [None, 2])
def test_gradients_pass_gradcheck_in_float64(backend, groups, chunk) -> None:
    x = _inputs(2, 4, 3, 13, groups, dtype=torch.float64, seed=1)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    tensors = [x[k].requires_grad_() for k in names]

    def f(*t):
        return selective_scan(*t, delta_softplus=True, backend=backend)

    assert torch.autograd.gradcheck(f, tensors)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_float32_gradients_match_reference(backend, chunk) -> None:
    x = _inputs(2, 6, 16, 100, 3, seed=2)
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    grads = {}
    for name in ("reference", backend):
        tensors = [x[k].clone().requires_grad_() for k in names]
        y = selective_scan(*tensors, delta_softplus=True, backend=name)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        grads[name] = [t.grad for t in tensors]
    for k, g_ref, g in zip(names, grads["reference"], grads[backend]):
        assert _rel_err(g, g_ref) < 1e-4, k


@pytest.mark.parametrize("backend", [*FAST_BACKENDS, "reference"])
def test_no_overflow_for_very_negative_delta_a_sums(backend, chunk) -> None:
    """delta*A summing to -1e4 over the sequence (single steps down to -300): finite and right."""
    b, d, n, length = 1, 3, 4, 100
    x = _inputs(b, d, n, length, seed=3)
    delta = torch.full((b, d, length), 1.0)
    delta[:, :, 40] = 100.0  # one step with delta*A = -300 (exp underflows to 0)
    A = torch.full((d, n), -1.0) * torch.tensor([1.0, 3.0, 50.0, 100.0])  # sums to -1e4 for n=3
    tensors = [x["u"], delta, A, x["B"], x["C"]]
    tensors = [t.clone().requires_grad_() for t in tensors]
    y, last = selective_scan(*tensors, D=x["D"], return_last_state=True, backend=backend)
    assert torch.isfinite(y).all() and torch.isfinite(last).all()
    y.square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in tensors)
    y_ref = selective_scan(*tensors, D=x["D"], backend="reference")
    assert _rel_err(y, y_ref) < 1e-5
    # After the -300 step, state from before it is gone: the output equals a fresh start there.
    fresh = selective_scan(*(t[..., 40:] if t.dim() == 3 else t for t in tensors), D=x["D"], backend=backend)
    assert torch.allclose(y[..., 41:], fresh[..., 1:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_bfloat16_inputs_accumulate_in_float32(backend) -> None:
    x = _inputs(2, 4, 8, 300, seed=4)
    args = [x[k].bfloat16() for k in ("u", "delta", "A", "B", "C")]
    y = selective_scan(*args, delta_softplus=True, backend=backend)
    y_ref = selective_scan(*[a.float() for a in args], delta_softplus=True, backend="reference")
    assert y.dtype == torch.bfloat16
    assert _rel_err(y.float(), y_ref) < 1e-2  # bfloat16 output rounding only
    tensors = [a.clone().requires_grad_() for a in args]
    selective_scan(*tensors, delta_softplus=True, backend=backend).float().sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in tensors)


def test_backend_choice_argument_env_and_errors(monkeypatch) -> None:
    u = torch.zeros(1, 2, 3)
    monkeypatch.delenv("RSMAMBA_SCAN_BACKEND", raising=False)
    assert resolve_backend(None, u) == available_backends(u)[0]
    assert resolve_backend(None, u) != "reference"
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "chunked")
    assert resolve_backend(None, u) == "chunked"
    assert resolve_backend("reference", u) == "reference"  # the argument wins
    with pytest.raises(ValueError, match="unknown"):
        resolve_backend("cuda-magic", u)
    with pytest.raises(ValueError, match="cannot run"):
        resolve_backend("mamba_ssm", u)  # CPU tensors


def test_shape_errors_are_reported() -> None:
    x = _inputs(1, 4, 2, 5)
    with pytest.raises(ValueError, match="B must"):
        selective_scan(x["u"], x["delta"], x["A"], x["B"][:, :1], x["C"])
    with pytest.raises(ValueError, match="dim % G"):
        selective_scan(x["u"], x["delta"], x["A"], torch.zeros(1, 3, 2, 5), x["C"])


def _mamba_ssm_on_cuda() -> bool:
    from rsmamba.kernels.selective_scan import mamba_ssm_scan_fn

    return torch.cuda.is_available() and mamba_ssm_scan_fn() is not None


@pytest.mark.skipif(not _mamba_ssm_on_cuda(), reason="mamba_ssm not importable or no CUDA device")
def test_mamba_ssm_backend_matches_reference_on_cuda() -> None:
    x = {k: v.cuda() for k, v in _inputs(2, 8, 16, 300, seed=5).items()}
    args = (x["u"], x["delta"], x["A"], x["B"], x["C"])
    kwargs = {"D": x["D"], "z": x["z"], "delta_bias": x["delta_bias"], "delta_softplus": True}
    assert resolve_backend(None, x["u"]) == "mamba_ssm"
    y = selective_scan(*args, **kwargs, backend="mamba_ssm")
    y_ref = selective_scan(*args, **kwargs, backend="reference")
    assert _rel_err(y, y_ref) < 1e-4


@pytest.mark.parametrize("bad", ["groups", "D", "delta_bias", "z"])
def test_shapes_a_fast_backend_would_misread_are_refused(bad: str) -> None:
    """Every backend reads what mamba_ssm's rules allow: C indexed by B's groups, D/delta_bias as (dim,)."""
    from rsmamba.kernels.selective_scan import selective_scan

    b, d, n, length = 1, 4, 2, 6
    u, delta = torch.randn(b, d, length), torch.rand(b, d, length)
    A = -torch.rand(d, n)
    B = torch.randn(b, 2, n, length)
    C = torch.randn(b, n, length) if bad == "groups" else torch.randn(b, 2, n, length)
    extra = {"D": torch.randn(1), "delta_bias": torch.randn(d, 1), "z": torch.randn(b, d, length + 1)}
    kwargs = {bad: extra[bad]} if bad in extra else {}
    for backend in ("reference", "chunked"):
        with pytest.raises(ValueError, match="same groups" if bad == "groups" else bad):
            selective_scan(u, delta, A, B, C, backend=backend, **kwargs)


def test_growing_states_and_empty_sequences() -> None:
    """A > 0 (a state that grows) made the chunked scan's exp(cumsum(delta A)) overflow: inf * a zero carried
    state = NaN where the scan is finite; L = 0 crashed two backends and returned nothing from two others."""
    length = 64
    u = torch.zeros(1, 1, length)
    u[..., -1] = 1.0  # input only at the last step: the state is 0 until then, whatever A
    args = (u, torch.ones(1, 1, length), torch.full((1, 1), 2.0), torch.ones(1, 1, length), torch.ones(1, 1, length))
    negative_delta = (u, torch.full((1, 1, length), -1.0), torch.full((1, 1), -2.0), *args[3:])  # delta A > 0 again
    for case in (args, negative_delta):
        for backend in ("reference", "chunked"):
            y = selective_scan(*case, backend=backend)
            assert not y.isnan().any() and y[0, 0, -1] == -1.0 * (case is negative_delta) + 1.0 * (case is args) \
                and y[0, 0, :-1].abs().max() == 0, backend
    empty = torch.zeros(1, 2, 0)
    with pytest.raises(ValueError, match="empty sequence"):
        selective_scan(empty, empty, torch.full((2, 3), -1.0), torch.zeros(1, 3, 0), torch.zeros(1, 3, 0))
