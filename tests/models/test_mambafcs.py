"""Mamba-FCS: forward convention, JSF, change-guided attention, counts, authors' names, learning."""

from __future__ import annotations


import torch
import torch.nn.functional as F
import pytest

from rsmamba.models import create_model, model_info
from rsmamba.models.mambafcs import (
    PAPER_INPUTS,
    FFTBranch,
    JointSpatialFrequencyFusion,
    change_guided_attention,
)
from rsmamba.models.weights import load_authors_state_dict
from rsmamba.models.params import count_parameters

from tests.helpers.overfit import overfit, single_thread, smooth_field


@pytest.fixture(autouse=True)
def _reference_scan(monkeypatch):
    # (also one thread: see _overfit.single_thread)
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "reference")
    with single_thread():
        yield


def test_forward_convention():
    info = model_info("mambafcs")
    assert (info.task, info.inputs) == ("semantic-change", "t1+t2")
    torch.manual_seed(0)
    model = create_model("mambafcs_tiny", in_chans=4, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 4, 32, 32), torch.randn(2, 4, 32, 32))
    assert set(out) == {"change", "sem1", "sem2"}
    assert out["change"].shape == (2, 2, 32, 32)
    assert out["sem1"].shape == out["sem2"].shape == (2, 5, 32, 32)


def test_fft_branch_is_log_amplitude_and_shift_invariant():
    branch = FFTBranch(3, 3)
    torch.nn.init.eye_(branch.proj[0].weight.view(3, 3))
    branch.eval()
    x = torch.randn(1, 3, 8, 8)
    rolled = torch.roll(x, shifts=(2, 3), dims=(2, 3))  # amplitude spectra ignore circular shifts
    torch.testing.assert_close(branch(x), branch(rolled), atol=1e-5, rtol=1e-5)


def test_jsf_sees_the_difference_of_the_dates():
    torch.manual_seed(0)
    jsf = JointSpatialFrequencyFusion(8).eval()
    x = torch.randn(1, 8, 6, 6)
    same = jsf(x, x)
    other = jsf(x, x + torch.randn_like(x))
    assert same.shape == (1, 8, 6, 6) and (same - other).abs().max() > 1e-4


def test_change_guided_attention_gates_by_sigmoid():
    feats = torch.ones(1, 2, 2, 2)
    change = torch.tensor([0.0, 100.0, -100.0, 0.0]).view(1, 1, 2, 2).expand(1, 2, 2, 2)
    out = change_guided_attention(feats, change)
    torch.testing.assert_close(out[0, 0].flatten(), torch.tensor([0.5, 1.0, 0.0, 0.5]))


def test_paper_preset_counts_and_authors_names():
    with torch.device("meta"):
        model = create_model("mambafcs")
    sd = model.state_dict()
    expected = {
        "encoder.patch_embed.0.weight": (64, 3, 3, 3),
        "encoder.layers.2.blocks.14.op.in_proj.weight": (1024, 512),  # ratio 2, no z
        "encoder.layers.2.blocks.14.op.x_proj_weight": (4, 32 + 2, 1024),
        "encoder.outnorm3.weight": (1024,),
        "decoder_bcd.st_block_41.1.op.x_proj_weight": (4, 64 + 2, 2048),
        "decoder_bcd.fuse_layer_1.reduce_conv.weight": (1024, 5 * 1024, 1, 1),
        "decoder_bcd.fuse_layer_1.cross_attn.qkv.weight": (3072, 1024),
        "decoder_bcd.fuse_layer_4.ch_gate.conv.weight": (1, 1, 5),
        "decoder_bcd.down_sample_1.branch5.0.weight": (1024, 1, 5, 5),
        "decoder_bcd.smooth_layer_3.se.excitation.0.weight": (32, 512),
        "decoder_T1.smooth_layer_0_semantic.conv1.weight": (128, 128, 3, 3),
        "decoder_T2.st_block_1_semantic.1.mlp.fc1.weight": (512, 128),
        "main_clf_cd.final_conv.0.weight": (2, 6, 1, 1),
        "aux_clf.channel_att.fc.0.weight": (1, 21),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    # VMamba-B encoder ~88.5 M (VMamba's own figure for vssm_base 0229 with classifier: 89 M)
    enc = count_parameters(model.encoder)
    assert 86e6 < enc < 90e6, enc
    assert 200e6 < count_parameters(model) < 212e6


def test_state_dict_round_trip_and_shared_encoder():
    torch.manual_seed(0)
    src = create_model("mambafcs_tiny").eval()
    torch.manual_seed(1)
    dst = create_model("mambafcs_tiny").eval()
    load_authors_state_dict(dst, {"module." + k: v for k, v in src.state_dict().items()})
    t1, t2 = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, b = src(t1, t2), dst(t1, t2)
        swapped = src(t2, t1)
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    # Siamese: one encoder, so swapping the dates swaps the semantic maps' encoder features
    assert not torch.allclose(a["sem1"], swapped["sem1"])


def test_chunked_backend_gives_the_same_logits(monkeypatch):
    torch.manual_seed(0)
    model = create_model("mambafcs_tiny").eval()
    t1, t2 = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(t1, t2)
        monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "chunked")
        chunked = model(t1, t2)
    for key in ref:
        torch.testing.assert_close(chunked[key], ref[key], atol=1e-4, rtol=1e-4)


def test_tiny_overfits_four_chips():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = create_model("mambafcs_tiny", num_classes=3)
    t1 = torch.cat([smooth_field(g, 4, 16) for _ in range(3)], dim=1)
    t2 = t1.clone()
    changed = smooth_field(g, 4, 16)[:, 0] > 0.3
    t2[:, 0][changed] += 2.0
    change = changed.long()
    sem1 = (t1[:, 1] > 0).long() + 1
    sem2 = torch.where(changed, torch.zeros_like(sem1), sem1)

    def loss():
        out = model(t1, t2)
        return (F.cross_entropy(out["change"], change) + 0.5 * F.cross_entropy(out["sem1"], sem1)
                + 0.5 * F.cross_entropy(out["sem2"], sem2))

    first, best = overfit(model, loss, steps=120)
    assert best < 0.1 * first, (first, best)


def test_paper_size_forward():
    """The paper preset at the paper's 512 px on the meta device (shapes; a real pass took 69 s on 2 cores),
    and computing finite values at 128 px (the same weights' shapes: no layer depends on the input size)."""
    from rsmamba.models.params import shape_only_scan

    with torch.device("meta"):
        model = create_model("mambafcs").eval()
        t1, t2 = torch.empty(PAPER_INPUTS["t1"]), torch.empty(PAPER_INPUTS["t2"])
    with shape_only_scan(), torch.no_grad():
        out = model(t1, t2)
    assert out["change"].shape == (1, 2, 512, 512) and out["sem1"].shape == (1, 7, 512, 512)
    assert out["sem2"].shape == (1, 7, 512, 512)
    torch.manual_seed(0)
    model = create_model("mambafcs").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128))
    assert out["change"].shape == (1, 2, 128, 128) and out["sem1"].shape == (1, 7, 128, 128)
    assert all(torch.isfinite(v).all() for v in out.values())

# The authors' names and shapes are checked as data in tests/models/test_model_structure.py
# (test_authors_state_dict_loads_strictly), without their code or einops.
