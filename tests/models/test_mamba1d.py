"""The 1-D Mamba block: mamba-ssm's parameters, an independent sequential oracle, and learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsmamba.models.mamba1d import BiMamba, Mamba, mamba_parameter_count

MAMBA_SSM_NAMES = {
    "in_proj.weight": lambda dm, di, r, n, k: (2 * di, dm),
    "conv1d.weight": lambda dm, di, r, n, k: (di, 1, k),
    "conv1d.bias": lambda dm, di, r, n, k: (di,),
    "x_proj.weight": lambda dm, di, r, n, k: (r + 2 * n, di),
    "dt_proj.weight": lambda dm, di, r, n, k: (di, r),
    "dt_proj.bias": lambda dm, di, r, n, k: (di,),
    "A_log": lambda dm, di, r, n, k: (di, n),
    "D": lambda dm, di, r, n, k: (di,),
    "out_proj.weight": lambda dm, di, r, n, k: (dm, di),
}


@pytest.mark.parametrize(
    "d_model,d_state,d_conv,expand,dt_rank",
    [(16, 16, 4, 2, "auto"), (24, 1, 3, 2, "auto"), (64, 8, 4, 1.5, 6), (768, 16, 4, 2, "auto")],
)
def test_state_dict_and_parameter_count_equal_mamba_ssm(d_model, d_state, d_conv, expand, dt_rank) -> None:
    block = Mamba(d_model, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank)
    d_inner = int(expand * d_model)
    rank = -(-d_model // 16) if dt_rank == "auto" else dt_rank
    shapes = {name: tuple(t.shape) for name, t in block.state_dict().items()}
    expected = {name: f(d_model, d_inner, rank, d_state, d_conv) for name, f in MAMBA_SSM_NAMES.items()}
    assert shapes == expected
    n_params = sum(p.numel() for p in block.parameters())
    assert n_params == mamba_parameter_count(d_model, d_state, d_conv, expand, dt_rank)
    if d_model == 768:  # one layer of mamba-130m, counted by hand from mamba_simple.py
        assert n_params == 3_770_880


def test_mamba_130m_layer_count_matches_published_total() -> None:
    # mamba-130m: 24 layers of Mamba(768) + 24 RMSNorm(768) + final norm + tied embedding 50280x768.
    per_layer = mamba_parameter_count(768)
    total = 24 * (per_layer + 768) + 768 + 50280 * 768
    assert 129e6 < total < 130e6


def test_initialisation_follows_mamba_ssm() -> None:
    torch.manual_seed(0)
    block = Mamba(32, d_state=4)
    A = -torch.exp(block.A_log)
    assert torch.allclose(A, -torch.arange(1, 5.0).repeat(64, 1))
    dt = F.softplus(block.dt_proj.bias)
    assert float(dt.detach().min()) >= 1e-4 - 1e-9 and float(dt.detach().max()) <= 0.1 + 1e-6
    assert torch.all(block.D == 1)


def _sequential_mamba(block: Mamba, x: torch.Tensor) -> torch.Tensor:
    """Mamba written token by token with an explicit conv window and state: an independent oracle."""
    b, length, _ = x.shape
    di, n, k = block.d_inner, block.d_state, block.d_conv
    A = -torch.exp(block.A_log)
    w = block.conv1d.weight[:, 0, :]  # (di, k)
    window = x.new_zeros(b, di, k)
    h = x.new_zeros(b, di, n)
    outs = []
    for t in range(length):
        xz = block.in_proj(x[:, t])
        xi, z = xz[:, :di], xz[:, di:]
        window = torch.cat([window[:, :, 1:], xi[:, :, None]], dim=2)
        xc = F.silu((window * w).sum(-1) + block.conv1d.bias)
        dbl = block.x_proj(xc)
        dt, Bt, Ct = dbl[:, : block.dt_rank], dbl[:, block.dt_rank : block.dt_rank + n], dbl[:, block.dt_rank + n :]
        delta = F.softplus(block.dt_proj(dt))  # (b, di)
        h = torch.exp(delta[:, :, None] * A) * h + delta[:, :, None] * Bt[:, None, :] * xc[:, :, None]
        y = (h * Ct[:, None, :]).sum(-1) + block.D * xc
        y = y * F.silu(z)
        outs.append(block.out_proj(y))
    return torch.stack(outs, dim=1)


def test_output_equals_sequential_computation() -> None:
    torch.manual_seed(1)
    block = Mamba(12, d_state=5, d_conv=3).double()
    x = torch.randn(2, 11, 12, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(block(x), _sequential_mamba(block, x), rtol=1e-9, atol=1e-10)


def test_bimamba_is_forward_plus_flipped_backward() -> None:
    torch.manual_seed(2)
    bi = BiMamba(8, d_state=3).double()
    fwd = Mamba(8, d_state=3).double()
    bwd = Mamba(8, d_state=3).double()
    sd = bi.state_dict()
    fwd.load_state_dict({k: v for k, v in sd.items() if not k.endswith("_b") and "_b." not in k and k != "A_b_log"})
    bwd_sd = {k: sd[k] for k in ("in_proj.weight", "out_proj.weight")}
    bwd_sd.update({k.replace("_b", ""): v for k, v in sd.items() if "_b." in k or k in ("A_b_log", "D_b")})
    bwd.load_state_dict(bwd_sd)
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        # out_proj has no bias, so out_proj((y_f + y_b)/2) = (out_f + out_b)/2.
        expected = (fwd(x) + bwd(x.flip(1)).flip(1)) / 2
        assert torch.allclose(bi(x), expected, atol=1e-10)
    extra = sum(p.numel() for p in bi.parameters()) - sum(p.numel() for p in fwd.parameters())
    assert extra == sum(p.numel() for n, p in bi.named_parameters() if "_b" in n)


@pytest.mark.parametrize("cls", [Mamba, BiMamba])
def test_learns_a_tiny_sequence_task(cls) -> None:
    """Output at t = input at t-3 (needs memory through the scan); loss must fall a lot."""
    torch.manual_seed(3)
    d, length = 8, 24
    model = torch.nn.Sequential(torch.nn.Linear(4, d), cls(d, d_state=8), torch.nn.Linear(d, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(16, length, 4)
    target = torch.zeros_like(x)
    target[:, 3:] = x[:, :-3]
    losses = []
    for _ in range(60):
        loss = F.mse_loss(model(x)[:, 3:], target[:, 3:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bimamba_initialises_both_directions_from_positional_dt_arguments() -> None:
    """dt_min/dt_max given by position reached the forward direction only: the backward one took the defaults."""
    torch.manual_seed(0)
    positional = BiMamba(8, 4, 4, 2, "auto", 0.5, 0.5)
    assert torch.allclose(F.softplus(positional.dt_proj_b.bias), torch.full((16,), 0.5), rtol=1e-5)
    assert torch.allclose(F.softplus(positional.dt_proj.bias), torch.full((16,), 0.5), rtol=1e-5)
