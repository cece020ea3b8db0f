"""model.pretrained: a torchvision/timm ResNet-18 state dict (the public key layout, written here at a
tiny width) lands in the backbone tensor for tensor; a wrong file names the first misfit in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rsmamba.errors import InputError
from rsmamba.models import create_model
from rsmamba.pretrained import load_pretrained


def torchvision_resnet18_state(width: int = 8, in_chans: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision ``resnet18().state_dict()`` key names and layouts, with channels 64..512 scaled to ``width``."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, c: int) -> None:
        state[f"{prefix}.weight"] = torch.rand(c, generator=g)
        state[f"{prefix}.bias"] = torch.rand(c, generator=g)
        state[f"{prefix}.running_mean"] = torch.rand(c, generator=g)
        state[f"{prefix}.running_var"] = torch.rand(c, generator=g) + 0.5
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(7)

    state["conv1.weight"] = torch.randn(width, in_chans, 7, 7, generator=g)
    bn("bn1", width)
    cin = width
    for i, mult in enumerate((1, 2, 4, 8), start=1):
        planes = width * mult
        for b in range(2):
            p = f"layer{i}.{b}"
            state[f"{p}.conv1.weight"] = torch.randn(planes, cin if b == 0 else planes, 3, 3, generator=g)
            bn(f"{p}.bn1", planes)
            state[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=g)
            bn(f"{p}.bn2", planes)
            if b == 0 and i > 1:
                state[f"{p}.downsample.0.weight"] = torch.randn(planes, cin, 1, 1, generator=g)
                bn(f"{p}.downsample.1", planes)
        cin = planes
    state["fc.weight"] = torch.randn(1000, cin, generator=g)
    state["fc.bias"] = torch.randn(1000, generator=g)
    return state


def test_resnet18_state_dict_lands_in_the_backbone(tmp_path: Path) -> None:
    state = torchvision_resnet18_state(width=8)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)  # a DDP-saved checkpoint
    model = create_model("mafmamba_tiny", num_classes=6, in_chans=4)  # RGB + DSM stacked
    (report,) = load_pretrained(model, path, image_bands=3, dsm=True)
    own = model.state_dict()
    assert torch.equal(own["backbone.layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert torch.equal(own["backbone.layer2.0.downsample.1.running_var"], state["layer2.0.downsample.1.running_var"])
    assert torch.equal(own["backbone.conv1.weight"][:, :3], state["conv1.weight"]) and (
        own["backbone.conv1.weight"][:, 3] == 0).all()  # the DSM channel starts at zero
    assert report.resized == ["conv1.weight"] and report.unused == ["fc.weight", "fc.bias"]
    assert len(report.loaded) == len(state) - 3
    assert not any(n.startswith("backbone.") for n in report.left_random)
    assert any(n.startswith("ammb") for n in report.left_random)


def test_a_safetensors_download_lands_like_its_pth(tmp_path: Path) -> None:
    """timm's weights come from the hub as .safetensors: the same tensors, read without unpickling."""
    from safetensors.torch import save_file

    state = torchvision_resnet18_state(width=8)
    save_file(state, tmp_path / "resnet18.safetensors")
    torch.save(state, tmp_path / "resnet18.pth")
    models = []
    for name in ("resnet18.safetensors", "resnet18.pth"):
        torch.manual_seed(0)
        model = create_model("mafmamba_tiny", num_classes=6, in_chans=3)
        load_pretrained(model, tmp_path / name, image_bands=3, dsm=False)
        models.append(model.state_dict())
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])
    # read by what the file holds, not its name (each was refused by the other reader as unreadable)
    (tmp_path / "resnet18.safetensors").rename(tmp_path / "hub.pth")
    (tmp_path / "resnet18.pth").rename(tmp_path / "torch.safetensors")
    for name in ("hub.pth", "torch.safetensors"):
        torch.manual_seed(0)
        model = create_model("mafmamba_tiny", num_classes=6, in_chans=3)
        load_pretrained(model, tmp_path / name, image_bands=3, dsm=False)
        assert all(torch.equal(model.state_dict()[k], models[0][k]) for k in models[0]), name
    (tmp_path / "broken.safetensors").write_bytes(b"not a tensor table")
    with pytest.raises(InputError, match="not a PyTorch or safetensors file \\(text: 'not a tensor table'\\)"):
        load_pretrained(create_model("mafmamba_tiny", num_classes=6, in_chans=3), tmp_path / "broken.safetensors",
                        image_bands=3, dsm=False)
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "hub.pth").read_bytes()[:5000])
    with pytest.raises(InputError, match="not a readable safetensors file \\(Error while deserializing header"):
        load_pretrained(create_model("mafmamba_tiny", num_classes=6, in_chans=3), tmp_path / "cut.safetensors",
                        image_bands=3, dsm=False)
    (tmp_path / "folder.pth").mkdir()  # was 'file not found'
    with pytest.raises(InputError, match="model.pretrained .*folder.pth: is a directory, not a file"):
        load_pretrained(create_model("mafmamba_tiny", num_classes=6, in_chans=3), tmp_path / "folder.pth",
                        image_bands=3, dsm=False)


def test_a_file_that_covers_part_of_the_backbone_says_which_tensors_stayed_random(tmp_path: Path) -> None:
    state = {k: v for k, v in torchvision_resnet18_state(width=8).items() if not k.startswith("layer4")}
    torch.save(state, tmp_path / "partial.pth")
    model = create_model("mafmamba_tiny", num_classes=6, in_chans=3)
    (report,) = load_pretrained(model, tmp_path / "partial.pth", image_bands=3, dsm=False)
    assert report.part_left_random and all(n.startswith("backbone.layer4.") for n in report.part_left_random)
    assert f"{len(report.part_left_random)} of them in backbone (backbone.layer4." in report.describe()
    torch.save(torchvision_resnet18_state(width=8), tmp_path / "whole.pth")
    (whole,) = load_pretrained(create_model("mafmamba_tiny", num_classes=6, in_chans=3), tmp_path / "whole.pth",
                               image_bands=3, dsm=False)
    assert not whole.part_left_random and "none in backbone" in whole.describe()


def test_wrong_file_names_the_first_misfit(tmp_path: Path) -> None:
    model = create_model("mafmamba_tiny", num_classes=6)
    wide = tmp_path / "wide.pth"
    torch.save(torchvision_resnet18_state(width=16), wide)
    with pytest.raises(InputError, match=r"tensor conv1.weight has shape \(16, 3, 7, 7\) in the file but \(8, 3, 7, 7\)") as err:
        load_pretrained(model, wide)
    assert "\n" not in str(err.value)
    deeper = torchvision_resnet18_state(width=8)
    deeper["layer1.0.conv3.weight"] = torch.zeros(8, 8, 1, 1)  # a ResNet-50 bottleneck key
    path = tmp_path / "r50ish.pth"
    torch.save(deeper, path)
    with pytest.raises(InputError, match="layer1.0.conv3.weight .* has no place"):
        load_pretrained(model, path)
    with pytest.raises(InputError, match="resnet weights have no place in FCNBaseline"):
        load_pretrained(create_model("fcn_baseline", width=8), path)


def test_a_file_of_another_depth_is_said_with_how_many_tensors_do_not_fit(tmp_path: Path) -> None:
    """A ResNet-50 file given for MAFMamba's ResNet-18 backbone named only its first misfit, which reads like one bad
    tensor; the error now counts every tensor that has no place or another shape, together, on its one line."""
    from rsmamba.models.resnet import ResNet

    model = create_model("mafmamba_tiny", num_classes=6)
    r50 = {k: v for k, v in ResNet(50).state_dict().items()}
    torch.save(r50, tmp_path / "r50.pth")
    with pytest.raises(InputError) as err:
        load_pretrained(model, tmp_path / "r50.pth")
    own = {k.removeprefix("backbone."): v.shape for k, v in model.state_dict().items() if k.startswith("backbone.")}
    homeless = sum(k not in own for k in r50)
    other = sum(k in own and r50[k].shape != own[k] for k in r50)  # (conv1 too: 64 outputs, not 8)
    msg = str(err.value)
    assert "\n" not in msg and "has no place in the model's backbone" in msg
    assert msg.endswith(f"; {homeless + other} of the file's {len(r50)} tensors do not fit MAFMamba's backbone "
                        f"({homeless} with no place, {other} of other shapes)"), msg


# -- Google's R50+ViT-B/16 .npz into FMTUNet -----------------------------------------------------------

def r50_vit_npz(width: int = 8, units: tuple[int, ...] = (1, 1, 1), hidden: int = 32, heads: int = 2, mlp: int = 64,
                blocks: int = 3, grid: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """The key names and layouts of ``R50+ViT-B_16.npz`` (TransUNet / FTransUNet), at a tiny size:
    conv kernels HWIO, GroupNorm ``scale``, attention kernels (hidden, heads, head_dim), a class token
    in the position table."""
    rng = np.random.default_rng(seed)
    a: dict[str, np.ndarray] = {}

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    a["conv_root/kernel"] = r(7, 7, 3, width)
    a["gn_root/scale"], a["gn_root/bias"] = r(width), r(width)
    cin = width
    for b, n in enumerate(units, start=1):
        cout, cmid = width * 4 * 2 ** (b - 1), width * 2 ** (b - 1)
        for u in range(1, n + 1):
            p = f"block{b}/unit{u}"
            a[f"{p}/conv1/kernel"] = r(1, 1, cin if u == 1 else cout, cmid)
            a[f"{p}/conv2/kernel"] = r(3, 3, cmid, cmid)
            a[f"{p}/conv3/kernel"] = r(1, 1, cmid, cout)
            for g, c in (("gn1", cmid), ("gn2", cmid), ("gn3", cout)):
                a[f"{p}/{g}/scale"], a[f"{p}/{g}/bias"] = r(c), r(c)
            if u == 1:
                a[f"{p}/conv_proj/kernel"] = r(1, 1, cin, cout)
                a[f"{p}/gn_proj/scale"], a[f"{p}/gn_proj/bias"] = r(cout), r(cout)
        cin = cout
    a["embedding/kernel"], a["embedding/bias"] = r(1, 1, cin, hidden), r(hidden)
    a["Transformer/posembed_input/pos_embedding"] = r(1, 1 + grid * grid, hidden)
    hd = hidden // heads
    for i in range(blocks):
        p = f"Transformer/encoderblock_{i}"
        for ln in ("LayerNorm_0", "LayerNorm_2"):
            a[f"{p}/{ln}/scale"], a[f"{p}/{ln}/bias"] = r(hidden), r(hidden)
        for proj in ("query", "key", "value"):
            a[f"{p}/MultiHeadDotProductAttention_1/{proj}/kernel"] = r(hidden, heads, hd)
            a[f"{p}/MultiHeadDotProductAttention_1/{proj}/bias"] = r(heads, hd)
        a[f"{p}/MultiHeadDotProductAttention_1/out/kernel"] = r(heads, hd, hidden)
        a[f"{p}/MultiHeadDotProductAttention_1/out/bias"] = r(hidden)
        a[f"{p}/MlpBlock_3/Dense_0/kernel"], a[f"{p}/MlpBlock_3/Dense_0/bias"] = r(hidden, mlp), r(mlp)
        a[f"{p}/MlpBlock_3/Dense_1/kernel"], a[f"{p}/MlpBlock_3/Dense_1/bias"] = r(mlp, hidden), r(hidden)
    a["Transformer/encoder_norm/scale"], a["Transformer/encoder_norm/bias"] = r(hidden), r(hidden)
    a["head/kernel"], a["head/bias"] = r(hidden, 10), r(10)
    return a


def test_r50_vit_npz_lands_in_both_streams_and_every_block(tmp_path: Path) -> None:
    arrays = r50_vit_npz()
    path = tmp_path / "R50+ViT-B_16.npz"
    np.savez(path, **arrays)
    model = create_model("fmtunet_tiny", num_classes=6)
    reports = load_pretrained(model, path)
    (report,) = reports
    own = model.state_dict()
    root = arrays["conv_root/kernel"]
    # HWIO element (h, w, i, o) at OIHW (o, i, h, w), in the optical stream; the 1-band DSM stream: RGB mean
    assert own["encoder.optical.root.conv.weight"][5, 2, 1, 6] == float(root[1, 6, 2, 5])
    assert torch.allclose(own["encoder.dsm.root.conv.weight"][5, 0], torch.from_numpy(root[:, :, :, 5].mean(-1)))
    k = arrays["block2/unit1/conv2/kernel"]
    for s in ("optical", "dsm"):
        assert own[f"encoder.{s}.body.1.0.conv2.weight"][3, 7, 2, 0] == float(k[2, 0, 7, 3])
        assert torch.equal(own[f"encoder.{s}.body.2.0.gn_proj.weight"], torch.from_numpy(arrays["block3/unit1/gn_proj/scale"]))
        assert torch.equal(own[f"encoder.{s}.body.0.0.downsample.weight"][:, :, 0, 0],
                           torch.from_numpy(arrays["block1/unit1/conv_proj/kernel"][0, 0].T))
    # attention: Flax's einsum('nc,chd->nhd') + bias equals the torch Linear on the same tokens, both modalities
    x = torch.randn(5, 32)
    for i in range(3):
        p = f"Transformer/encoderblock_{i}/MultiHeadDotProductAttention_1"
        for proj, idx in (("query", 0), ("key", 1), ("value", 2)):
            ref = torch.einsum("nc,chd->nhd", x, torch.from_numpy(arrays[f"{p}/{proj}/kernel"])) + torch.from_numpy(arrays[f"{p}/{proj}/bias"])
            for qkv in ("qkv", "qkv_d"):
                lin = getattr(model.gmm.layers[i].attn, qkv)[idx]
                assert torch.allclose(lin(x), ref.reshape(5, 32), atol=1e-5)
        heads = torch.randn(5, 2, 16)
        ref = torch.einsum("nhd,hdc->nc", heads, torch.from_numpy(arrays[f"{p}/out/kernel"])) + torch.from_numpy(arrays[f"{p}/out/bias"])
        assert torch.allclose(model.gmm.layers[i].attn.out_d(heads.reshape(5, 32)), ref, atol=1e-5)
        d0 = arrays[f"Transformer/encoderblock_{i}/MlpBlock_3/Dense_0/kernel"]
        assert own[f"gmm.layers.{i}.ffn.0.weight"][40, 3] == float(d0[3, 40]) == own[f"gmm.layers.{i}.ffn_d.0.weight"][40, 3]
        ln2 = torch.from_numpy(arrays[f"Transformer/encoderblock_{i}/LayerNorm_2/scale"])
        assert torch.equal(own[f"gmm.layers.{i}.ffn_norm_d.weight"], ln2)
    assert torch.equal(own["gmm.encoder_norm_d.bias"], torch.from_numpy(arrays["Transformer/encoder_norm/bias"]))
    emb = arrays["embedding/kernel"]
    assert own["gmm.patch_embeddings_d.weight"][9, 100, 0, 0] == float(emb[0, 0, 100, 9])
    # the 3x3 table (class token dropped) resampled to the model's 2x2 grid: corners kept (align_corners)
    table = torch.from_numpy(arrays["Transformer/posembed_input/pos_embedding"][0, 1:]).T.reshape(32, 3, 3)
    assert torch.allclose(own["gmm.position_embeddings"][0, :, 0, 0], table[:, 0, 0])
    assert torch.allclose(own["gmm.position_embeddings"][0, :, 1, 1], table[:, 2, 2])
    assert set(report.resized) == {"encoder.dsm.root.conv.weight", "gmm.position_embeddings"}
    assert report.unused == ["head/kernel", "head/bias"]
    assert not any(n.startswith(("encoder.optical.", "encoder.dsm.", "gmm.layers.")) and "deformable" not in n
                   and "gate" not in n for n in report.left_random)
    assert any(n.startswith("segmentation_head") for n in report.left_random)
    assert "2 resized" in report.describe()
    with torch.no_grad():  # the loaded network runs
        assert torch.isfinite(model.eval()(torch.randn(1, 3, 32, 32), torch.randn(1, 1, 32, 32))).all()


def test_r50_vit_npz_of_another_size_names_the_first_misfit(tmp_path: Path) -> None:
    path = tmp_path / "wide.npz"
    np.savez(path, **r50_vit_npz(width=16))
    with pytest.raises(InputError, match=r"tensor conv_root/kernel has shape \(16, 3, 7, 7\) in the file but "
                                         r"\(8, 3, 7, 7\) in the model's encoder\+gmm") as err:
        load_pretrained(create_model("fmtunet_tiny"), path)
    assert "\n" not in str(err.value)
    deep = r50_vit_npz(blocks=4)
    np.savez(tmp_path / "deep.npz", **deep)
    with pytest.raises(InputError, match="encoderblock_3/LayerNorm_0/scale .* has no place"):
        load_pretrained(create_model("fmtunet_tiny"), tmp_path / "deep.npz")
    np.savez(tmp_path / "objects.npz", conv_root=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="object arrays are refused"):
        load_pretrained(create_model("fmtunet_tiny"), tmp_path / "objects.npz")


# -- VMamba checkpoints --------------------------------------------------------------------------------

def vmamba_checkpoint(backbone: torch.nn.Module, *, v0_names: bool = False, seed: int = 0) -> dict:
    """A VMamba classification checkpoint: ``{"model": state}`` with VMamba's names (``patch_embed.0``,
    ``layers.i.blocks.j.op.*``, ``layers.i.downsample.*``, ``classifier.*``), or the first release's
    (``patch_embed.proj``, ``ln_1``, ``self_attention``, ``downsample.reduction``, ``norm``, ``head``)."""
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=g) for k, v in backbone.state_dict().items()
             if not k.startswith("outnorm")}
    last = max(int(k.split(".")[1]) for k in state if k.startswith("layers."))
    dim = state[f"layers.{last}.blocks.0.norm.weight"].shape[0]
    if v0_names:
        state = {k.replace(".norm.", ".ln_1.").replace(".op.", ".self_attention."): v for k, v in state.items()}
        state["patch_embed.proj.weight"] = torch.randn(16, 3, 4, 4, generator=g)
        merge = getattr(backbone, "downsamples", None)  # VMamba's patch merging: Linear(4C, 2C), as a Haar merge's
        shape = tuple(merge[0].reduction.weight.shape) if merge is not None else (32, 64)
        state["layers.0.downsample.reduction.weight"] = torch.randn(*shape, generator=g)
        state["norm.weight"], state["head.weight"] = torch.randn(64, generator=g), torch.randn(1000, 64, generator=g)
    else:
        state["classifier.norm.weight"] = torch.randn(dim, generator=g)
        state["classifier.head.weight"] = torch.randn(1000, dim, generator=g)
    return {"model": state, "epoch": 299}


def test_vmamba_checkpoint_lands_in_mambafcs_encoder(tmp_path: Path) -> None:
    model = create_model("mambafcs_tiny")
    ckpt = vmamba_checkpoint(model.encoder)
    path = tmp_path / "vssm_base_0229_ckpt_epoch_237.pth"
    torch.save(ckpt, path)
    (report,) = load_pretrained(model, path)
    own = model.state_dict()
    for key in ("patch_embed.0.weight", "layers.2.blocks.0.op.A_logs", "layers.3.blocks.0.op.dt_projs_weight",
                "layers.1.blocks.0.op.x_proj_weight", "layers.0.downsample.1.weight", "layers.1.blocks.0.mlp.fc2.weight"):
        assert torch.equal(own[f"encoder.{key}"], ckpt["model"][key]), key
    assert sorted(report.unused) == ["classifier.head.weight", "classifier.norm.weight"]
    assert report.resized == [] and len(report.loaded) == len(ckpt["model"]) - 2
    assert "encoder.outnorm0.weight" in report.left_random and not any(
        n.startswith("encoder.layers.") for n in report.left_random)


def test_first_release_vmamba_names_land_in_cmtunet_vss_branch_and_mafmamba_ammb(tmp_path: Path) -> None:
    model = create_model("cmtunet_tiny")
    ckpt = vmamba_checkpoint(model.vss_encoder, v0_names=True)
    path = tmp_path / "vssmtiny_dp01_ckpt_epoch_292.pth"
    torch.save(ckpt, path)
    (report,) = load_pretrained(model, {"vss_encoder": path})
    own = model.state_dict()
    assert torch.equal(own["vss_encoder.layers.2.blocks.0.norm.weight"], ckpt["model"]["layers.2.blocks.0.ln_1.weight"])
    assert torch.equal(own["vss_encoder.layers.3.blocks.0.op.Ds"], ckpt["model"]["layers.3.blocks.0.self_attention.Ds"])
    # CMT-UNet has its own 7x7 stem: VMamba's stem and head are reported unused; its Haar merges take VMamba's
    # patch merging weights, as the authors' load_pretrained_ckpt maps them
    assert {"patch_embed.proj.weight", "head.weight"} <= set(report.unused)
    assert "layers.0.downsample.reduction.weight" not in report.unused
    assert torch.equal(own["vss_encoder.downsamples.0.reduction.weight"], ckpt["model"]["layers.0.downsample.reduction.weight"])
    assert any(n.startswith("vss_encoder.stem") for n in report.left_random)
    assert not any(n.startswith("vss_encoder.layers.") for n in report.left_random)

    maf = create_model("mafmamba_tiny")  # AMMB VSS layers at ResNet-18 widths (8..64 in the tiny preset)
    src = {}
    g = torch.Generator().manual_seed(3)
    for i in range(4):
        for k, v in maf.ammb[i].vss.state_dict().items():
            src[f"layers.{i}.{k}"] = torch.randn(v.shape, generator=g)
    src["patch_embed.0.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    torch.save({"model": src}, tmp_path / "vmamba_at_resnet_widths.pth")
    (r2,) = load_pretrained(maf, tmp_path / "vmamba_at_resnet_widths.pth")
    assert r2.part == "ammb" and r2.unused == ["patch_embed.0.weight"]
    assert torch.equal(maf.state_dict()["ammb.2.vss.blocks.0.op.in_proj.weight"], src["layers.2.blocks.0.op.in_proj.weight"])
    # a real VMamba-T (96..768) does not fit ResNet-18 widths: the first tensor is named, nothing skipped
    torch.save(ckpt, tmp_path / "v.pth")
    with pytest.raises(InputError, match=r"tensor layers.0.blocks.0.ln_1.weight has shape \(8,\) in the file but "
                                         r"\(16,\) in the model's ammb \(ammb.0.vss.blocks.0.norm.weight\)"):
        load_pretrained(create_model("mafmamba_tiny", resnet_width=16), tmp_path / "v.pth")


def test_wrong_weights_via_the_cli_name_the_first_misfit(tmp_path: Path, capsys) -> None:
    import yaml

    from rsmamba.cli import main
    from tests.helpers.scenes import write_chips

    chips = write_chips(tmp_path, size=64, chip=32, split=(0.75, 0.25, 0.0))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"root": str(chips), "batch_size": 2}, "out": str(tmp_path / "run"),
                                   "model": {"name": "cmtunet_tiny"}, "tensorboard": False}))
    wide = create_model("cmtunet_tiny", vss_dims=(16, 32, 64, 128))
    torch.save(vmamba_checkpoint(wide.vss_encoder), tmp_path / "vssm.pth")
    assert main(["train", "--config", str(cfg), "--set", f"model.pretrained={tmp_path / 'vssm.pth'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rsmamba: error:") and "\n" not in err
    assert "tensor layers.0.blocks.0.norm.weight has shape (16,) in the file but (8,)" in err
    torch.save(torchvision_resnet18_state(width=8), tmp_path / "r18.pth")
    assert main(["train", "--config", str(cfg), "--set",
                 f"model.pretrained={{backbone: {tmp_path / 'r18.pth'}, vss_encoder: {tmp_path / 'r18.pth'}}}"]) == 2
    assert "vss_encoder of CMTUNet takes vmamba weights, the file holds resnet weights" in capsys.readouterr().err


def test_one_vmamba_file_fills_both_mambaseg_encoders(tmp_path: Path) -> None:
    model = create_model("mambaseg_tiny", in_chans=3, aux_chans=1)
    ckpt = vmamba_checkpoint(model.encoder_img)
    key = "layers.1.blocks.0.op.in_proj.weight"
    ckpt["model"][key] = ckpt["model"][key][:, :, None, None]  # a 1x1 conv as VMamba's Linear2d also reads
    torch.save(ckpt, tmp_path / "vssm1_tiny_0230s.pth")
    img, ev = load_pretrained(model, tmp_path / "vssm1_tiny_0230s.pth")
    assert (img.part, ev.part) == ("encoder_img", "encoder_ev")
    own = model.state_dict()
    for part in ("encoder_img", "encoder_ev"):
        assert torch.equal(own[f"{part}.{key}"], ckpt["model"][key][:, :, 0, 0])
        assert torch.equal(own[f"{part}.layers.3.blocks.0.op.A_logs"], ckpt["model"]["layers.3.blocks.0.op.A_logs"])
    stem = ckpt["model"]["patch_embed.0.weight"]
    assert img.resized == [] and ev.resized == ["patch_embed.0.weight"]  # the 1-band aux stem: RGB summed
    assert torch.allclose(own["encoder_ev.patch_embed.0.weight"][:, 0], stem.sum(1))


# -- one unwrapping with import-weights (rsmamba.models.weights.unwrap_state) ----------------------------------

@pytest.mark.parametrize("wrap", ["model+module.", "state_dict+net.", "model.", "model_ema"])
def test_a_backbone_file_is_unwrapped_as_import_weights_unwraps_it(tmp_path: Path, wrap: str) -> None:
    """model.pretrained had its own unwrapping: a Lightning module's net. / model. names and an EMA-only file (which
    import-weights takes) were refused as 'neither a ResNet state dict...' or 'not a state dict of tensors' (QA)."""
    state = torchvision_resnet18_state(width=8)
    saved = {"model+module.": {"model": {f"module.{k}": v for k, v in state.items()}},
             "state_dict+net.": {"state_dict": {f"net.{k}": v for k, v in state.items()}, "epoch": 3},
             "model.": {f"model.{k}": v for k, v in state.items()},
             "model_ema": {"model_ema": state, "epoch": 3}}[wrap]
    torch.save(saved, tmp_path / "r18.pth")
    model = create_model("mafmamba_tiny", num_classes=6, in_chans=3)
    (report,) = load_pretrained(model, tmp_path / "r18.pth")
    assert torch.equal(model.state_dict()["backbone.layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert len(report.loaded) == len(state) - 2 and report.part_left_random == []
    assert "unwrapped" in report.describe() and ("EMA" in report.describe()) == (wrap == "model_ema")


def test_a_vmamba_file_with_its_ema_beside_says_which_set_was_loaded(tmp_path: Path) -> None:
    model = create_model("mambafcs_tiny")
    ckpt = vmamba_checkpoint(model.encoder)
    ckpt["model"] = {f"module.{k}": v for k, v in ckpt["model"].items()}
    ckpt["model_ema"] = {k: v + 1 for k, v in ckpt["model"].items()}
    torch.save(ckpt, tmp_path / "vssm.pth")
    (report,) = load_pretrained(model, tmp_path / "vssm.pth")
    key = "layers.2.blocks.0.op.A_logs"
    assert torch.equal(model.state_dict()[f"encoder.{key}"], ckpt["model"][f"module.{key}"])
    assert "not imported: ['model_ema']" in report.describe() and "prefix 'module.' removed" in report.describe()


def test_an_rsmamba_checkpoint_as_pretrained_says_init_takes_it(tmp_path: Path) -> None:
    torch.save({"format": "rsmamba-checkpoint/1", "model": "mafmamba_tiny",
                "state_dict": torchvision_resnet18_state(width=8)}, tmp_path / "best.pt")
    said = r"^model\.pretrained .*best\.pt: already an rsmamba checkpoint .*train --init"
    with pytest.raises(InputError, match=said):
        load_pretrained(create_model("mafmamba_tiny", num_classes=6, in_chans=3), tmp_path / "best.pt")


def test_a_backbone_file_with_its_training_settings_says_to_save_the_weights_alone(tmp_path: Path) -> None:
    import argparse

    ckpt = vmamba_checkpoint(create_model("mambafcs_tiny").encoder)
    ckpt["config"] = argparse.Namespace(lr=1e-3, arch="vssm")  # as VMamba's released checkpoints may hold
    torch.save(ckpt, tmp_path / "vssm.pth")
    with pytest.raises(InputError, match=r"^model\.pretrained .*\(argparse\.Namespace\).*save the weights alone"):
        load_pretrained(create_model("mambafcs_tiny"), tmp_path / "vssm.pth")


@pytest.mark.parametrize("beside", ["lightning_loss", "ema_copy"])
def test_a_backbone_file_with_a_loss_buffer_or_an_ema_copy_beside_loads_its_network(tmp_path: Path, beside) -> None:
    """import-weights takes a Lightning checkpoint (``model.*`` beside ``criterion.weight``) and a state dict with
    its EMA copy (``ema.*``) beside the network; model.pretrained refused both ('neither a torchvision/timm ResNet
    ...', 'tensor ema.conv1.weight has no place') for want of the model's names (QA)."""
    state = torchvision_resnet18_state(width=8)
    if beside == "lightning_loss":
        saved = {"state_dict": {**{f"model.{k}": v for k, v in state.items()}, "criterion.weight": torch.ones(6)},
                 "epoch": 3}
    else:
        saved = {**state, **{f"ema.{k}": v + 1 for k, v in state.items()}}
    torch.save(saved, tmp_path / "r18.pth")
    model = create_model("mafmamba_tiny", num_classes=6, in_chans=3)
    (report,) = load_pretrained(model, tmp_path / "r18.pth")
    assert torch.equal(model.state_dict()["backbone.layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
    assert len(report.loaded) == len(state) - 2 and report.part_left_random == []
    said = report.describe()
    assert ("left out 1 tensor outside the network (criterion.weight)" in said if beside == "lightning_loss"
            else "EMA copy" in said), said


@pytest.mark.parametrize("beside", ["lightning_loss", "ema_prefix", "lightning_loss_and_ema"])
def test_a_vmamba_file_with_a_loss_buffer_or_an_ema_copy_beside_loads_its_network(tmp_path: Path, beside) -> None:
    """As the ResNet case above, with VMamba's names (a Lightning module wrapping a VSSM as ``model``, an EMA copy
    beside the network as timm's ModelEmaV2 saves it): the network lands, the rest is left out and said (QA)."""
    model = create_model("mambafcs_tiny")
    state = vmamba_checkpoint(model.encoder)["model"]
    ema = {f"model_ema.{k}": v + 1 for k, v in state.items()}
    if beside == "ema_prefix":
        saved = {**state, **ema}
    else:
        saved = {"state_dict": {**{f"model.{k}": v for k, v in state.items()}, "criterion.weight": torch.ones(2),
                                **(ema if beside == "lightning_loss_and_ema" else {})}, "epoch": 3}
    torch.save(saved, tmp_path / "vssm.ckpt")
    (report,) = load_pretrained(model, tmp_path / "vssm.ckpt")
    key = "layers.2.blocks.0.op.A_logs"
    assert torch.equal(model.state_dict()[f"encoder.{key}"], state[key])
    assert len(report.loaded) == len(state) - 2  # the classifier's two: unused
    assert sorted(report.unused) == ["classifier.head.weight", "classifier.norm.weight"]
    said = report.describe()
    assert ("EMA copy" in said) if beside == "ema_prefix" else ("outside the network (criterion.weight" in said), said
