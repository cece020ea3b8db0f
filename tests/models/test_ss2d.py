"""SS2D / VSS blocks: scan order, agreement with a per-direction reference, shapes, gradients, names."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from rsmamba.kernels.selective_scan import selective_scan_reference
from rsmamba.models.ss2d import (
    SS2D,
    LayerNorm2d,
    Linear2d,
    VSSBlock,
    VSSLayer,
)
from rsmamba.kernels.cross_scan import cross_merge, cross_scan


def test_cross_scan_order_is_vmamba_order():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)  # [[0,1,2],[3,4,5]]
    xs = cross_scan(x)[0, :, 0]
    assert xs[0].tolist() == [0, 1, 2, 3, 4, 5]  # row-major
    assert xs[1].tolist() == [0, 3, 1, 4, 2, 5]  # column-major
    assert xs[2].tolist() == [5, 4, 3, 2, 1, 0]  # row-major flipped
    assert xs[3].tolist() == [5, 2, 4, 1, 3, 0]  # column-major flipped


def test_cross_merge_inverts_each_scan():
    x = torch.randn(2, 3, 4, 5)
    merged = cross_merge(cross_scan(x).reshape(2, 4, 3, 4, 5))
    torch.testing.assert_close(merged, 4 * x.flatten(2))
    # merge is the adjoint of scan (what autograd relies on)
    y = torch.randn(2, 4, 3, 20)
    lhs = (cross_scan(x) * y).sum()
    rhs = (x.flatten(2) * cross_merge(y.reshape(2, 4, 3, 4, 5))).sum()
    torch.testing.assert_close(lhs, rhs)


def _per_direction_reference(op: SS2D, x: torch.Tensor) -> torch.Tensor:
    """forward_core written the slow way: one scan per direction with explicit index orders."""
    b, d, h, w = x.shape
    idx = torch.arange(h * w).reshape(h, w)
    orders = [idx.flatten(), idx.t().flatten(), idx.flatten().flip(0), idx.t().flatten().flip(0)]
    flat = x.flatten(2)
    out = torch.zeros_like(flat)
    r, n = op.dt_rank, op.d_state
    for k, order in enumerate(orders):
        seq = flat[:, :, order]
        dbl = torch.einsum("bdl,cd->bcl", seq, op.x_proj_weight[k])
        dt, B, C = dbl[:, :r], dbl[:, r : r + n], dbl[:, r + n :]
        dt = torch.einsum("brl,dr->bdl", dt, op.dt_projs_weight[k])
        sl = slice(k * d, (k + 1) * d)
        y = selective_scan_reference(
            seq, dt, -torch.exp(op.A_logs[sl]), B, C, op.Ds[sl],
            delta_bias=op.dt_projs_bias[k], delta_softplus=True,
        )
        back = torch.empty_like(y)
        back[:, :, order] = y
        out = out + back
    y = out.reshape(b, d, h, w)
    return op.out_norm(y) if op.channel_first else op.out_norm(y.permute(0, 2, 3, 1))


@pytest.mark.parametrize("d_state", [1, 4])
@pytest.mark.parametrize("channel_first", [True, False])
def test_forward_core_matches_per_direction_reference(d_state, channel_first):
    torch.manual_seed(0)
    op = SS2D(d_model=8, d_state=d_state, ssm_ratio=1.0, forward_type="v05_noz", channel_first=channel_first)
    x = torch.randn(2, op.d_inner, 3, 5)
    torch.testing.assert_close(op.forward_core(x), _per_direction_reference(op, x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "forward_type,channel_first,has_z",
    [("v0", False, True), ("v2", False, True), ("v2", True, True), ("v05_noz", True, False), ("v3noz", True, False)],
)
def test_ss2d_variants_shapes_and_z_gate(forward_type, channel_first, has_z):
    op = SS2D(d_model=8, d_state=2, ssm_ratio=2.0, forward_type=forward_type, channel_first=channel_first)
    assert op.in_proj.weight.shape == ((32 if has_z else 16), 8)
    x = torch.randn(1, 8, 4, 6) if channel_first else torch.randn(1, 4, 6, 8)
    assert op(x).shape == x.shape
    assert isinstance(op.in_proj, Linear2d) == channel_first
    assert isinstance(op.out_norm, LayerNorm2d) == channel_first


def test_unknown_forward_type_is_rejected():
    with pytest.raises(ValueError):
        SS2D(d_model=8, forward_type="v9")


def test_vss_block_gradients_reach_every_parameter():
    torch.manual_seed(0)
    block = VSSBlock(8, channel_first=True, ssm_d_state=1, ssm_ratio=1.0, forward_type="v05_noz", ssm_conv_bias=False)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    block(x).square().mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # the scan mixes the whole image: the output at one pixel depends on a far pixel
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    block(x)[0, :, 0, 0].sum().backward()
    assert x.grad[0, :, 4, 4].abs().sum() > 0


def test_vss_layer_names_shapes_and_downsample():
    layer = VSSLayer(8, depth=2, drop_path=[0.0, 0.1], downsample="v3", out_dim=16, channel_first=True,
                     ssm_d_state=1, ssm_ratio=1.0, forward_type="v05_noz")
    keys = set(layer.state_dict())
    for key in ["blocks.0.norm.weight", "blocks.0.op.x_proj_weight", "blocks.0.op.dt_projs_weight",
                "blocks.0.op.A_logs", "blocks.0.op.Ds", "blocks.1.mlp.fc1.weight", "downsample.1.weight",
                "downsample.3.weight"]:
        assert key in keys, key
    assert layer.blocks[0].op.x_proj_weight.shape == (4, 1 + 2, 8)
    out = layer(torch.randn(1, 8, 6, 6))
    assert out.shape == (1, 16, 3, 3)
    last = VSSLayer(8, depth=1, channel_first=False, forward_type="v0", mlp_ratio=0.0)
    assert isinstance(last.downsample, nn.Identity) and not hasattr(last.blocks[0], "mlp")
    assert last(torch.randn(1, 3, 3, 8)).shape == (1, 3, 3, 8)


def test_float64_ss2d_scans_in_float64_and_even_conv_kernels_are_refused():
    """A float64 SS2D scanned in float32 (gradcheck failed); an even d_conv shrank the map by a pixel per side
    pair (no-z variants) or failed with a size error naming tensors, not the cause."""
    torch.manual_seed(0)
    op = SS2D(d_model=4, d_state=2, ssm_ratio=1.0, forward_type="v05_noz", channel_first=True).double()
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x,))
    with pytest.raises(ValueError, match="d_conv 4: .* odd kernel"):
        SS2D(d_model=8, d_state=2, d_conv=4, forward_type="v05_noz", channel_first=True)
