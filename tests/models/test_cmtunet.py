"""CMT-UNet and the pieces it brings: Haar transform, WTConv, window attention, SS2D v0."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.hybrid import count_parameters, overfit, same_output_on_backends, synthetic_chips
from rsmamba.models import create_model, model_info
from rsmamba.models.cmtunet import authors_parameter_count
from rsmamba.models.vss import VSSBlocks
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


# pytorch_wavelets 1.3.0 DWTForward(J=1, mode="zero", wave="haar") of x[i, j] = (4 i + j)^2, recorded (the authors'
# CMT-UNet merges patches with it; it is not a dependency): yl, then yh[0]'s three bands
PW_LL = [[21.0, 49.0], [229.0, 321.0]]
PW_HIGH = [[[-20.0, -36.0], [-84.0, -100.0]], [[-5.0, -9.0], [-21.0, -25.0]], [[4.0, 4.0], [4.0, 4.0]]]


def test_the_authors_haar_patch_merging_runs_with_their_weights_mapped() -> None:
    """Their PatchMerging2D concatenates pytorch_wavelets' bands (LL, high-pass along H, along W, HH); ours
    haar_dwt's (LL, along W, along H, HH): their LayerNorm(4C) and Linear(4C -> 2C) loaded as they are read the two
    edge directions swapped (QA). Mapped by import-weights, ours computes theirs."""
    from rsmamba.models.wavelet import PYTORCH_WAVELETS_ORDER
    from rsmamba.train.authors import _map_cmtunet_haar

    x = (torch.arange(16, dtype=torch.float64) ** 2).reshape(1, 1, 4, 4)
    recorded = torch.tensor([PW_LL, *PW_HIGH], dtype=torch.float64)
    assert torch.allclose(haar_dwt(x)[0, 0, list(PYTORCH_WAVELETS_ORDER)], recorded, rtol=1e-6)

    torch.manual_seed(0)
    c = 3
    theirs = HaarDownsample(c).double()  # as their module: its parameters, its band order
    for p in theirs.parameters():
        torch.nn.init.normal_(p)
    feats = torch.randn(2, 6, 8, c, dtype=torch.float64)  # (B, H, W, C)
    bands = haar_dwt(feats.permute(0, 3, 1, 2))[:, :, list(PYTORCH_WAVELETS_ORDER)]  # pytorch_wavelets' order
    cat = bands.transpose(1, 2).reshape(2, 4 * c, 3, 4).permute(0, 2, 3, 1)  # torch.cat([yL, yH0, yH1, yH2], 1)
    expected = theirs.reduction(theirs.norm(cat))
    state = {f"vss_encoder.downsamples.0.{k}": v.clone() for k, v in theirs.state_dict().items()}
    assert "patch merging (3 tensors)" in _map_cmtunet_haar(state)
    ours = HaarDownsample(c).double()
    ours.load_state_dict({k.removeprefix("vss_encoder.downsamples.0."): v for k, v in state.items()})
    assert torch.allclose(ours(feats), expected, atol=1e-12)
    assert not torch.allclose(theirs(feats), expected, atol=1e-3)  # unmapped, the merging is another function


def test_wtconv_keeps_shape_and_reaches_far() -> None:
    conv = WTConv2d(4, kernel_size=3, levels=2)
    x = torch.randn(1, 4, 15, 17)
    assert conv(x).shape == x.shape
    impulse = torch.zeros(1, 4, 16, 16, requires_grad=True)
    conv(impulse)[0, :, 8, 8].sum().backward()
    reach = (impulse.grad[0, 0].abs() > 0).nonzero()
    assert (reach[:, 0].max() - reach[:, 0].min()) > 3  # wider than the 3x3 base kernel
    assert HaarDownsample(4)(torch.randn(2, 8, 6, 4)).shape == (2, 4, 3, 8)


def test_vss_layer_v0_mixes_globally() -> None:
    torch.manual_seed(0)
    layer = VSSBlocks(8, depth=1, channel_first=True)
    x = torch.randn(1, 8, 5, 6)
    out = layer(x)
    assert out.shape == x.shape
    x2 = x.clone()
    x2[0, 0, 4, 5] += 5.0  # one channel (LayerNorm would cancel a shift of all channels)
    assert (layer(x2) - out)[..., 0, 0].abs().max() > 1e-7
    assert not any("mlp" in name for name, _ in layer.named_parameters())  # v0: no MLP


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
    ours plus the frozen Haar filters their WTConv2d stores as parameters (32*C per WTConv).
    Their code has neither MSAA nor RCM and uses Haar: the options that select that structure."""
    with torch.device("meta"):  # counts only: no memory, no init cost
        model = create_model("cmtunet", msaa=False, rcm=False, wavelet="haar")
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
    images = torch.randn(1, 3, 16, 16)
    same_output_on_backends(model, lambda m: m(images), monkeypatch)


def test_db4_filters_are_orthonormal_and_reconstruct_inside() -> None:
    """db4 as pywt defines it: unit energy, orthogonal to its even shifts, perfect reconstruction
    away from the zero-padded border; a constant image has no detail."""
    from rsmamba.models.wavelet import DB4_DEC_LO, filter_dwt, filter_idwt

    h = torch.tensor(DB4_DEC_LO, dtype=torch.float64)
    assert torch.isclose(h.sum(), torch.tensor(2.0, dtype=torch.float64).sqrt())
    for shift in (0, 2, 4, 6):
        assert torch.isclose((h[shift:] * h[: 8 - shift]).sum(), torch.tensor(float(shift == 0), dtype=torch.float64))
    x = torch.randn(1, 2, 48, 48, dtype=torch.float64)
    torch.testing.assert_close(filter_idwt(filter_dwt(x))[..., 8:-8, 8:-8], x[..., 8:-8, 8:-8])
    bands = filter_dwt(torch.ones(1, 1, 48, 48, dtype=torch.float64))[0, 0, :, 4:-4, 4:-4]
    torch.testing.assert_close(bands[0], torch.full_like(bands[0], 2.0))
    assert bands[1:].abs().max() < 1e-12


def test_seed_options_msaa_rcm_wavelet() -> None:
    """Defaults as the seed: MSAA on the three skips, an RCM per stage, db4 in every WTConv."""
    from rsmamba.models.cmtunet import RCM

    model = create_model("cmtunet_tiny")
    assert len(model.msaa) == 3 and len(model.rcm) == 4
    assert {m.wavelet for m in model.modules() if isinstance(m, WTConv2d)} == {"db4"}
    plain = create_model("cmtunet_tiny", msaa=False, rcm=False, wavelet="haar")
    assert plain.msaa is None and plain.rcm is None
    assert {m.wavelet for m in plain.modules() if isinstance(m, WTConv2d)} == {"haar"}
    with pytest.raises(ValueError, match="wavelet"):
        create_model("cmtunet_tiny", wavelet="sym5")
    # RCM's attention comes from the VSS feature: changing it changes the output
    rcm = RCM(8, 4).eval()
    x, y = torch.randn(1, 8, 8, 8), torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(rcm(x, y), rcm(x, y + 1.0))


def test_the_vss_branch_starts_from_vmambas_init() -> None:
    """The authors' VSSMEncoder applies VMamba's init (Linear std 0.02, zero bias); PyTorch's default
    (std about 0.06 at these widths) started their branch elsewhere. SS2D's own dt / A init stays Mamba's."""
    from rsmamba.models import create_model

    torch.manual_seed(0)
    vss = create_model("cmtunet_tiny").vss_encoder
    linears = [m for m in vss.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(abs(float(m.weight.detach().std()) - 0.02) < 0.004 for m in linears)
    assert all(m.bias is None or not m.bias.any() for m in linears)
    op = vss.layers[0].blocks[0].op
    dt = torch.nn.functional.softplus(op.dt_projs_bias.detach())  # Mamba's dt init: log-uniform in [1e-3, 0.1]
    assert float(dt.min()) >= 1e-4 and float(dt.max()) <= 0.1 + 1e-6 and float(dt.std()) > 0
    assert torch.allclose(op.A_logs.detach().exp()[0, :3], torch.tensor([1.0, 2.0, 3.0]))


def test_the_shipped_demo_checkpoints_are_the_seed_structure_as_the_docs_say() -> None:
    """docs/models.md said the demo checkpoint used the authors' structure (msaa=False, rcm=False, haar):
    both shipped ones hold MSAA and RCM tensors and load only at the seed's default."""
    from pathlib import Path

    from rsmamba.checkpoint import load_checkpoint

    root = Path(__file__).resolve().parents[2]
    for path in (root / "rsmamba" / "data" / "demo_model.pt", root / "rsmamba" / "data" / "demo_image_model.pt"):
        ckpt = load_checkpoint(path)
        assert ckpt["model"] == "cmtunet_tiny" and set(ckpt["model_kwargs"]) == {"num_classes", "in_chans"}
        create_model("cmtunet_tiny", **ckpt["model_kwargs"]).load_state_dict(ckpt["state_dict"])  # strict
    docs = " ".join((root / "docs" / "models.md").read_text().split())  # one line: the text wraps anywhere
    assert "the shipped demo checkpoint use it" not in docs
    assert "Both shipped demo checkpoints (`demo_model.pt`, `demo_image_model.pt`, `cmtunet_tiny`) use the seed's default" in docs
