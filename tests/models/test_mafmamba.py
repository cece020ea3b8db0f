"""MAFMamba and its pieces: coordinate attention, efficient cross-attention, MSAF, MSCAF, GLMamba."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.hybrid import count_parameters, overfit, same_output_on_backends, synthetic_chips
from rsmamba.models import create_model, model_info
from rsmamba.models.layers import CoordinateAttention, efficient_attention
from rsmamba.models.mafmamba import ASF, MSAF, MSCAF, GLMamba


def test_efficient_attention_matches_its_definition() -> None:
    q, k, v = torch.randn(2, 4, 10), torch.randn(2, 4, 7), torch.randn(2, 6, 7)
    out = efficient_attention(q, k, v)
    context = k.softmax(dim=2) @ v.transpose(1, 2)  # (B, dk, dv)
    expected = context.transpose(1, 2) @ q.softmax(dim=1)
    assert out.shape == (2, 6, 10)
    assert torch.allclose(out, expected, atol=1e-6)


def test_coordinate_attention_is_position_aware() -> None:
    ca = CoordinateAttention(8, out_channels=4, reduction=4).eval()
    x = torch.randn(1, 8, 6, 5)
    assert ca(x).shape == (1, 4, 6, 5)


def test_msaf_mscaf_glmamba_asf_shapes() -> None:
    ch = [4, 8, 16, 32]
    feats = [torch.randn(2, c, 16 // 2**i, 16 // 2**i) for i, c in enumerate(ch)]
    for target in range(4):
        assert MSAF(ch, target, weight_channels=4)(feats).shape == feats[target].shape
    outs = MSCAF(ch[:3], reduction=2)(feats[:3])
    assert [o.shape for o in outs] == [f.shape for f in feats[:3]]
    assert GLMamba(8, depth=1, d_state=4)(torch.randn(2, 8, 4, 4)).shape == (2, 8, 4, 4)
    assert ASF(16, 8)(torch.randn(2, 8, 4, 4), torch.randn(2, 16, 8, 8)).shape == (2, 8, 8, 8)


def test_registry_and_tiny_forward() -> None:
    assert model_info("mafmamba").inputs == "image"
    model = create_model("mafmamba_tiny", in_chans=4, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 4, 32, 32)).shape == (2, 5, 32, 32)
        assert model(torch.randn(1, 4, 40, 48)).shape == (1, 5, 40, 48)


def test_without_lookahead_each_ammb_fuses_the_levels_computed_so_far() -> None:
    """``lookahead=False``: AMMB i fuses levels 1..i only (no plain look-ahead pass, fewer MACs)."""
    model = create_model("mafmamba_tiny", lookahead=False).eval()
    assert [len(a.msaf.align) for a in model.ammb] == [1, 2, 3, 4]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 6, 32, 32)
    assert [len(a.msaf.align) for a in create_model("mafmamba_tiny").ammb] == [4, 4, 4, 4]


def test_tiny_overfits_a_synthetic_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "reference")  # fastest at these tiny lengths
    torch.manual_seed(0)
    images, labels = synthetic_chips()
    model = create_model("mafmamba_tiny", num_classes=3)
    first, last, steps = overfit(model, lambda m: m(images), labels)
    assert last < 0.1 * first, (first, last, steps)


def test_runs_on_chunked_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = create_model("mafmamba_tiny")
    images = torch.randn(1, 3, 16, 16)
    same_output_on_backends(model, lambda m: m(images), monkeypatch)


@pytest.mark.slow
def test_paper_forward_at_paper_size() -> None:
    model = create_model("mafmamba").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 512, 512)).shape == (1, 6, 512, 512)


def test_the_refinement_head_projects_as_unetformers_separable_conv_bn() -> None:
    """UNetFormer's SeparableConvBN (the FRH the paper takes) is depthwise, BatchNorm, pointwise, with no
    norm after the pointwise conv; the BatchNorm sat after it, so the projection was normalised."""
    proj = create_model("mafmamba_tiny").frh.proj
    kinds = [type(m).__name__ for m in proj]
    assert kinds == ["Conv2d", "BatchNorm2d", "Conv2d"]
    assert proj[0].groups == proj[0].in_channels and proj[2].kernel_size == (1, 1)


def test_a_checkpoint_of_the_older_refinement_head_still_loads(tmp_path) -> None:
    """The head's BatchNorm moved (UNetFormer's order): a MAFMamba trained before could no longer be loaded."""
    from rsmamba.checkpoint import build_from_checkpoint, save_checkpoint
    from rsmamba.classes import ISPRS_CLASSES

    torch.manual_seed(0)
    old = create_model("mafmamba_tiny", frh_norm="after").eval()
    assert [type(m).__name__ for m in old.frh.proj] == ["Conv2d", "Conv2d", "BatchNorm2d"]
    path = tmp_path / "old.pt"
    save_checkpoint(path, {"model": "mafmamba_tiny", "model_kwargs": {"num_classes": 6}, "state_dict": old.state_dict(),
                           "classes": [c.to_dict() for c in ISPRS_CLASSES], "bands": {"image": [1, 2, 3], "dsm": False},
                           "normalization": {"image": {"mean": [0.0] * 3, "std": [1.0] * 3}}, "config": {}})
    _, _, module = build_from_checkpoint(path, ("segmentation",), "predict")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(module.eval()(x), old(x))


def test_mafmamba_choices_gives_the_current_count_of_the_old_depths() -> None:
    """docs/mafmamba-choices.md said (2, 2, 4, 2) 'had been tuned to hit 29.39 M': true of the 2026-11-23
    structure only; the current one has 27.79 M with those depths."""
    from pathlib import Path

    with torch.device("meta"):
        model = create_model("mafmamba", encoder_depths=(2, 2, 4, 2))
    said = f"(2, 2, 4, 2) gives {count_parameters(model) / 1e6:.2f} M"
    assert said in " ".join((Path(__file__).resolve().parents[2] / "docs" / "mafmamba-choices.md").read_text().split())
