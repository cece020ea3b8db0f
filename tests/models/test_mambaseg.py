"""MambaSeg: shapes, bands/classes, paper parameter counts, authors' names, scan backends, learning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import pytest

from rsmamba.models import create_model, model_info
from rsmamba.models.mambaseg import PAPER_INPUTS, PAPER_PARAMS_THOP
from rsmamba.models.weights import load_authors_state_dict
from rsmamba.models.params import count_parameters, count_parameters_thop_style, thop_profile

from tests.helpers.overfit import overfit, single_thread, smooth_field


@pytest.fixture(autouse=True)
def _reference_scan(monkeypatch):
    # (also one thread: see _overfit.single_thread)
    # Tiny sequences: the plain loop is the fastest backend here and keeps timings stable.
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "reference")
    with single_thread():
        yield


def test_registry_entry_and_forward_convention():
    info = model_info("mambaseg")
    assert (info.task, info.inputs) == ("segmentation", "image+dsm")
    torch.manual_seed(0)
    model = create_model("mambaseg_tiny", in_chans=4, aux_chans=2, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 4, 32, 32), torch.randn(2, 2, 32, 32))
        # not the built size: the channel SSM's parameters depend on it, so it refuses (no resampling)
        with pytest.raises(ValueError, match="built for 32x32 inputs and got 40x24"):
            model(torch.randn(1, 4, 40, 24), torch.randn(1, 2, 40, 24))
    assert out.shape == (2, 5, 32, 32) and torch.isfinite(out).all()
    assert model.fixed_input_size == (32, 32)


def test_aux_branch_matters():
    torch.manual_seed(0)
    model = create_model("mambaseg_tiny").eval()
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a = model(image, torch.zeros(1, 1, 32, 32))
        b = model(image, torch.randn(1, 1, 32, 32))
    assert (a - b).abs().max() > 1e-4


def test_paper_preset_parameter_counts():
    with torch.device("meta"):
        model = create_model("mambaseg", in_chans=1, aux_chans=10, img_size=(200, 346))
    thop_style = count_parameters_thop_style(model)
    assert abs(thop_style - PAPER_PARAMS_THOP) / PAPER_PARAMS_THOP < 0.03, thop_style
    # the real size, which the paper's thop number leaves out (Linear2d, LN2d, SSM parameters)
    assert abs(count_parameters(model) - 97.55e6) / 97.55e6 < 0.03


def test_thop_profile_matches_static_thop_count():
    torch.manual_seed(0)
    model = create_model("mambaseg_tiny")
    _, params = thop_profile(model, (torch.randn(1, 3, 32, 32), torch.randn(1, 1, 32, 32)))
    assert params == count_parameters_thop_style(model)
    assert params < count_parameters(model)


def test_authors_names_and_shapes():
    with torch.device("meta"):
        model = create_model("mambaseg", in_chans=1, aux_chans=10, img_size=(200, 346))
    sd = model.state_dict()
    expected = {
        "encoder_img.patch_embed.0.weight": (48, 1, 3, 3),
        "encoder_ev.patch_embed.0.weight": (48, 10, 3, 3),
        "encoder_img.layers.2.blocks.7.op.x_proj_weight": (4, 24 + 2, 384),
        "encoder_img.layers.0.downsample.1.weight": (192, 96, 3, 3),
        "encoder_ev.outnorm3.weight": (768,),
        "ccbs.0.ssm_i.x_proj_weight": (2, 272 + 32, 50 * 87),
        "ccbs.0.ssm_i.dt_projs_weight": (2, 50 * 87, 272),
        "ccbs.0.ss2d_e.A_logs": (4 * 192, 16),
        "ccbs.3.cca.shared_fc.1.weight": (192, 768, 1, 1),
        "ccbs.1.csa.mlp.0.weight": (16, 4, 1, 1),
        "out_convs.2.weight": (384, 768, 1, 1),
        "decoder.linear_c4.proj.weight": (768, 768),
        "decoder.linear_fuse.0.weight": (768, 3072, 1, 1),
        "decoder.linear_pred.weight": (6, 768, 1, 1),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key


def test_state_dict_round_trip_through_loader():
    torch.manual_seed(0)
    src = create_model("mambaseg_tiny").eval()
    torch.manual_seed(1)
    dst = create_model("mambaseg_tiny").eval()
    load_authors_state_dict(dst, {"model": {"module." + k: v for k, v in src.state_dict().items()}})
    x, a = torch.randn(1, 3, 32, 32), torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst(x, a), src(x, a))


def test_chunked_backend_gives_the_same_logits(monkeypatch):
    torch.manual_seed(0)
    model = create_model("mambaseg_tiny").eval()
    x, a = torch.randn(1, 3, 32, 32), torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        ref = model(x, a)
        monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "chunked")
        chunked = model(x, a)
    torch.testing.assert_close(chunked, ref, atol=1e-4, rtol=1e-4)


def test_tiny_overfits_four_chips():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = create_model("mambaseg_tiny", img_size=16, num_classes=3)
    image = torch.cat([smooth_field(g, 4, 16) for _ in range(3)], dim=1)
    dsm = smooth_field(g, 4, 16)
    target = ((image[:, 0] > 0).long() + (dsm[:, 0] > 0).long())  # needs both modalities
    first, best = overfit(model, lambda: F.cross_entropy(model(image, dsm), target), steps=120)
    assert best < 0.1 * first, (first, best)


def test_paper_size_forward():
    """The paper preset at DDD17's 200 x 346 on the meta device (shapes; a real pass took 25 s on 2 cores), and
    the same preset built for 64 x 112 (a token count as odd: 16 x 28 at stride 4) computing finite values."""
    from rsmamba.models.params import shape_only_scan

    with torch.device("meta"):
        model = create_model("mambaseg", in_chans=1, aux_chans=10, img_size=(200, 346)).eval()
        image, aux = torch.empty(PAPER_INPUTS["image"]), torch.empty(PAPER_INPUTS["aux"])
    with shape_only_scan(), torch.no_grad():
        assert model(image, aux).shape == (1, 6, 200, 346)
    torch.manual_seed(0)
    model = create_model("mambaseg", in_chans=1, aux_chans=10, img_size=(64, 112)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 64, 112), torch.randn(1, 10, 64, 112))
    assert out.shape == (1, 6, 64, 112) and torch.isfinite(out).all()


def test_pretrained_backbone_from_local_file(tmp_path):
    from rsmamba.errors import InputError
    from rsmamba.models.vmamba import VMAMBA_CONFIGS, VMambaBackbone
    from rsmamba.pretrained import load_pretrained

    torch.manual_seed(0)
    src = VMambaBackbone(in_chans=3, **VMAMBA_CONFIGS["vmamba_test_cf"])
    path = tmp_path / "vmamba.pth"
    torch.save({"model": src.state_dict()}, path)
    torch.manual_seed(1)
    model = create_model("mambaseg_tiny", in_chans=3)
    load_pretrained(model, {"encoder_img": path})
    key = "layers.1.blocks.0.op.x_proj_weight"
    assert torch.equal(model.encoder_img.state_dict()[key], src.state_dict()[key])
    assert not torch.equal(model.encoder_ev.state_dict()[key], src.state_dict()[key])
    load_pretrained(model, path)  # one path: every VMamba encoder (the aux stem adapted to its bands)
    assert torch.equal(model.encoder_ev.state_dict()[key], src.state_dict()[key])
    with pytest.raises(InputError, match="not found"):
        load_pretrained(model, tmp_path / "missing.pth")

# The authors' names and shapes are checked as data in tests/models/test_model_structure.py
# (test_authors_state_dict_loads_strictly), without their code or einops.


def test_channel_ssm_merge_is_the_authors_and_equals_a_channel_flip_only_when_width_is_channels():
    """The authors' CrossMerge_channel views the (positions, channels) scan output as (channels*H, W)
    rows and flips the reverse direction along that W: a flip along the channel sequence exactly
    when W equals the channel count (d_inner), a re-layout otherwise."""
    from rsmamba.models.mambaseg import ChannelSSM

    torch.manual_seed(0)
    for hw, same in (((3, 8), True), ((3, 5), False)):  # d_model 4 -> d_inner 8
        authors = ChannelSSM(4, hw, d_state=4, merge="authors").eval()
        channel = ChannelSSM(4, hw, d_state=4, merge="channel").eval()
        channel.load_state_dict(authors.state_dict())
        x = torch.randn(1, 8, *hw)
        with torch.no_grad():
            assert torch.allclose(authors.forward_core(x), channel.forward_core(x), atol=1e-5) == same, hw
    with pytest.raises(ValueError, match="merge"):
        ChannelSSM(4, (3, 8), merge="width")
