"""FMTUNet and its pieces: deformable sampling, joint Mamba fusion, MSAA."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.hybrid import count_parameters, overfit, same_output_on_backends, synthetic_chips
from rsmamba.models import create_model, model_info
from rsmamba.models.deformable import DeformableCrossAttention, deformable_sample
from rsmamba.models.fmtunet import MSAA, JointMambaFusion


def test_deformable_sample_taps() -> None:
    value = torch.randn(1, 2, 5, 6)
    zero = deformable_sample(value, torch.zeros(1, 18, 5, 6))
    assert torch.allclose(zero[:, :, 4], value, atol=1e-5)  # centre tap
    assert torch.allclose(zero[:, :, 5, :, :-1], value[..., 1:], atol=1e-5)  # right tap
    assert zero[:, :, 5, :, -1].abs().max() == 0  # outside reads zero
    shift = torch.zeros(1, 18, 5, 6)
    shift[:, 9 + 4] = 1.0  # move the centre tap one pixel right
    assert torch.allclose(deformable_sample(value, shift)[:, :, 4], zero[:, :, 5], atol=1e-5)


def test_deformable_cross_attention_learns_offsets() -> None:
    dca = DeformableCrossAttention(4)
    q, v = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    dca(q, v).sum().backward()
    assert dca.offset_conv.weight.grad.abs().sum() > 0
    assert dca.modulator_conv.weight.grad.abs().sum() > 0


def test_joint_mamba_fusion_shapes_and_mixing() -> None:
    torch.manual_seed(0)
    jmf = JointMambaFusion(8)
    a, b = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    out = jmf(a, b)
    assert out.shape == a.shape
    b2 = b.clone()
    b2[..., 0, 0] += 5.0  # a change in the DSM reaches far optical pixels through the scans
    assert (jmf(a, b2) - out)[..., 4:, 4:].abs().max() > 1e-6
    assert jmf(torch.randn(1, 8, 5, 7), torch.randn(1, 8, 5, 7)).shape == (1, 8, 5, 7)


def test_msaa() -> None:
    m = MSAA(8 + 4 + 2, 4)
    skips = [torch.randn(1, 8, 4, 4), torch.randn(1, 4, 8, 8), torch.randn(1, 2, 16, 16)]
    assert m(skips, (8, 8)).shape == (1, 4, 8, 8)


def test_registry_and_tiny_forward() -> None:
    assert model_info("fmtunet").inputs == "image+dsm"
    model = create_model("fmtunet_tiny", in_chans=4, dsm_chans=2, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 4, 32, 32), torch.randn(2, 2, 32, 32)).shape == (2, 5, 32, 32)
        assert model(torch.randn(1, 4, 36, 40), torch.randn(1, 2, 36, 40)).shape == (1, 5, 36, 40)
    model = create_model("fmtunet_tiny").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32), torch.randn(1, 32, 32)).shape == (1, 6, 32, 32)


def test_paper_parameter_count() -> None:
    """The authors' VisionTransformer (R50-ViT-B_16, img 256, 6 classes) counted with
    ``sum(p.nelement())`` as their train.py does: 273,688,802 by the module definitions."""
    with torch.device("meta"):  # counts only: no memory, no init cost
        model = create_model("fmtunet")
    assert abs(count_parameters(model) - 273_688_802) / 273_688_802 < 0.03
    assert sum(1 for m in model.modules() if type(m).__name__ == "HybridAttention") == 6


def test_tiny_overfits_a_synthetic_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "reference")  # fastest at these tiny lengths
    torch.manual_seed(0)
    images, labels = synthetic_chips(size=16)  # the joint Mamba scans dominate: keep them short
    dsm = (labels == 1).float().unsqueeze(1) + 0.1 * torch.randn(4, 1, 16, 16)
    model = create_model("fmtunet_tiny", num_classes=3)
    first, last, steps = overfit(model, lambda m: m(images, dsm), labels)
    assert last < 0.1 * first, (first, last, steps)


@pytest.mark.slow
def test_paper_forward_at_paper_size() -> None:
    model = create_model("fmtunet").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256), torch.randn(1, 1, 256, 256)).shape == (1, 6, 256, 256)


def test_runs_on_chunked_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = create_model("fmtunet_tiny")
    images, dsm = torch.randn(2, 3, 16, 16), torch.randn(2, 1, 16, 16)
    same_output_on_backends(model, lambda m: m(images, dsm), monkeypatch)


def test_deformable_grid_options_and_stem_padding() -> None:
    """``"authors"`` reads half a pixel (plus the padding) off the centres; ours reads them exactly.
    Both stem paddings give logits at the input size."""
    value = torch.randn(1, 2, 6, 6)
    zero = torch.zeros(1, 18, 6, 6)
    assert torch.allclose(deformable_sample(value, zero)[:, :, 4], value, atol=1e-5)
    assert not torch.allclose(deformable_sample(value, zero, grid_mode="authors")[:, :, 4], value, atol=1e-2)
    with pytest.raises(ValueError, match="grid_mode"):
        deformable_sample(value, zero, grid_mode="corners")
    model = create_model("fmtunet_tiny", stem_pool_padding=0, deformable_grid="authors").eval()
    assert model.encoder.optical.pool.padding == 0
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32), torch.randn(1, 1, 32, 32)).shape == (1, 6, 32, 32)
    with pytest.raises(ValueError, match="stem_pool_padding"):
        create_model("fmtunet_tiny", stem_pool_padding=2)
