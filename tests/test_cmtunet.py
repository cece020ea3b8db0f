"""CMT-UNet and the pieces it brings: Haar transform, WTConv, window attention, SS2D v0."""

from __future__ import annotations

import pytest
import torch

from _hybrid_testing import count_parameters, overfit, same_output_on_backends, synthetic_chips
from rsmamba.models import create_model, model_info
from rsmamba.models.cmtunet import authors_parameter_count
from rsmamba.models.vss import SS2D, cross_merge, cross_scan
from rsmamba.models.wavelet import HaarDownsample, WTConv2d, haar_dwt, haar_idwt
from rsmamba.models.window_attention import GlobalLocalAttention


def test_haar_is_orthonormal_and_inverts() -> None:
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    bands = haar_dwt(x)
    assert bands.shape == (2, 3, 4, 3, 4)
    assert torch.allclose(haar_idwt(bands), x)
    assert torch.allclose((bands**2).sum(), (x**2).sum())  # energy preserved
    const = torch.ones(1, 1, 4, 4)
    assert torch.allclose(haar_dwt(const)[:, :, 1:], torch.zeros(1, 1, 3, 2, 2))  # no detail in a constant


def test_wtconv_keeps_shape_and_reaches_far() -> None:
    conv = WTConv2d(4, kernel_size=3, levels=2)
    x = torch.randn(1, 4, 15, 17)
    assert conv(x).shape == x.shape
    impulse = torch.zeros(1, 4, 16, 16, requires_grad=True)
    conv(impulse)[0, :, 8, 8].sum().backward()
    reach = (impulse.grad[0, 0].abs() > 0).nonzero()
    assert (reach[:, 0].max() - reach[:, 0].min()) > 3  # wider than the 3x3 base kernel
    assert HaarDownsample(4)(torch.randn(2, 8, 6, 4)).shape == (2, 4, 3, 8)


def test_cross_scan_merge_and_ss2d() -> None:
    x = torch.randn(2, 3, 4, 5)
    assert torch.allclose(cross_merge(cross_scan(x), 4, 5), 4 * x.flatten(2))
    ss2d = SS2D(8)
    assert ss2d(torch.randn(2, 3, 5, 8)).shape == (2, 3, 5, 8)


def test_window_attention_shapes_and_local_source() -> None:
    attn = GlobalLocalAttention(16, num_heads=4, window_size=4, local_channels=8)
    out = attn(torch.randn(2, 16, 6, 10), torch.randn(2, 8, 6, 10))
    assert out.shape == (2, 16, 6, 10)


def test_registry_and_tiny_forward() -> None:
    assert model_info("cmtunet").inputs == "image"
    model = create_model("cmtunet_tiny", in_chans=4, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 4, 32, 32)).shape == (2, 5, 32, 32)
        assert model(torch.randn(1, 4, 40, 48)).shape == (1, 5, 40, 48)


def test_paper_parameter_count() -> None:
    """The authors' module definitions hold 135,460,007 parameters with swsl_resnet50 (6 classes):
    ours plus the frozen Haar filters their WTConv2d stores as parameters (32*C per WTConv)."""
    model = create_model("cmtunet")
    assert abs(authors_parameter_count(model) - 135_460_007) / 135_460_007 < 0.03
    assert abs(count_parameters(model) - 135_460_007) / 135_460_007 < 0.03


def test_tiny_overfits_a_synthetic_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "reference")  # fastest at these tiny lengths
    torch.manual_seed(0)
    images, labels = synthetic_chips()
    model = create_model("cmtunet_tiny", num_classes=3)
    first, last, steps = overfit(model, lambda m: m(images), labels)
    assert last < 0.1 * first, (first, last, steps)


@pytest.mark.slow
def test_paper_forward_at_paper_size() -> None:
    model = create_model("cmtunet").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 6, 256, 256)


def test_runs_on_chunked_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = create_model("cmtunet_tiny")
    images = torch.randn(1, 3, 32, 32)
    same_output_on_backends(model, lambda m: m(images), monkeypatch)
