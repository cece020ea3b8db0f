"""Fine-tuning from a checkpoint: the shipped demo model (RGB + DSM, 6 classes) onto a panchromatic
building-footprint dataset (1 band, 2 classes), against the same short run from random weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from rsmamba.errors import InputError
from rsmamba.tile import tile_scene
from rsmamba.train import train
from rsmamba.pretrained import adapt_input_weight


def test_band_adaptation_rules() -> None:
    w = torch.arange(2 * 4 * 1 * 1, dtype=torch.float32).reshape(2, 4, 1, 1)  # 3 image bands + DSM
    pan = adapt_input_weight(w, 3, True, 1, False)
    assert torch.equal(pan[:, 0], w[:, :3].sum(1))  # 1 band: sum of RGB; DSM dropped
    four = adapt_input_weight(w, 3, True, 4, True)
    assert four.shape == (2, 5, 1, 1) and torch.equal(four[:, 4], w[:, 3])  # DSM kept last
    assert torch.allclose(four[:, :4], torch.cat([w[:, :3], w[:, :1]], 1) * 0.75)  # repeated, scaled 3/4
    added = adapt_input_weight(w[:, :3], 3, False, 3, True)
    assert torch.equal(added[:, :3], w[:, :3]) and (added[:, 3] == 0).all()  # a new DSM starts ignored
    # Same grey input -> same response, whatever the band count.
    x3, x1 = torch.ones(1, 3, 1, 1), torch.ones(1, 1, 1, 1)
    assert torch.allclose(torch.nn.functional.conv2d(x3, w[:, :3]), torch.nn.functional.conv2d(x1, pan))


def _pan_buildings(tmp: Path) -> Path:
    """Band 1 of the example scene (a stand-in for a panchromatic ortho) and its footprint layer."""
    root = Path(__file__).resolve().parents[2] / "examples" / "scene"
    chips = tmp / "chips"
    tile_scene(root / "ortho.tif", chips, bands=[1], labels=root / "buildings.gpkg", burn=1, size=128, block=256,
               split=(0.5, 0.25, 0.25), seed=0)
    return chips


@pytest.mark.slow
def test_finetune_demo_model_beats_random_weights_on_pan_buildings(tmp_path: Path) -> None:
    chips = _pan_buildings(tmp_path)
    base = {"data": {"root": str(chips), "batch_size": 4}, "optim": {"lr": 0.002}, "train": {"epochs": 1, "seed": 0},
            "augment": {"flips": True, "rot90": False}, "tensorboard": False}
    tuned = train({**base, "model": {"init": "demo"}, "out": str(tmp_path / "tuned")}, progress=False)
    scratch = train({**base, "model": {"name": "cmtunet_tiny"}, "out": str(tmp_path / "scratch")}, progress=False)
    iou_tuned = tuned.history[-1]["val_iou_per_class"]["building"]
    iou_scratch = scratch.history[-1]["val_iou_per_class"]["building"]
    print(f"validation building IoU after 1 epoch: from the demo model {iou_tuned:.3f}, "
          f"from random weights {iou_scratch:.3f}")
    assert iou_tuned > iou_scratch
    from rsmamba.checkpoint import load_checkpoint

    ck = load_checkpoint(tuned.last)
    assert ck["model"] == "cmtunet_tiny" and ck["model_kwargs"]["in_chans"] == 1
    assert [c["name"] for c in ck["classes"]] == ["background", "building"]


def test_init_errors_name_the_tensor_and_freeze_checks_prefixes(tmp_path: Path) -> None:
    from rsmamba.train.init import init_from_checkpoint, set_frozen
    from rsmamba.models import create_model
    from pathlib import Path as _P

    demo = _P(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_model.pt"
    other = create_model("cmtunet_tiny", num_classes=6, in_chans=4, decode_channels=24)
    with pytest.raises(InputError, match=r"tensor \S+ has shape") as err:
        init_from_checkpoint(other, demo, image_bands=3, dsm=True, num_classes=6)
    assert "\n" not in str(err.value)
    # the demo checkpoint's structure (its model_kwargs; an older one predates MSAA/RCM/db4 in the seed defaults)
    from rsmamba.checkpoint import load_checkpoint

    kwargs = {k: v for k, v in load_checkpoint(demo)["model_kwargs"].items() if k not in ("num_classes", "in_chans")}
    model = create_model("cmtunet_tiny", num_classes=2, in_chans=1, **kwargs)
    report = init_from_checkpoint(model, demo, image_bands=1, dsm=False, num_classes=2)
    assert report.adapted and report.reinitialised and report.loaded and not report.left_random
    assert set_frozen(model, ["backbone."], True) > 0
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("backbone."))
    with pytest.raises(InputError, match="no parameter"):
        set_frozen(model, ["nothing."], True)


def test_frozen_stages_stay_put_for_their_epochs_then_train(tmp_path: Path) -> None:
    from tests.train.test_own_classes import building_scene

    from rsmamba.checkpoint import load_checkpoint

    image, layer = building_scene(tmp_path / "s", size=64)
    chips = tmp_path / "chips"
    tile_scene(image, chips, labels=layer, burn=1, size=32, block=32, split=(1, 0, 0))
    cfg = {"data": {"root": str(chips), "batch_size": 2}, "model": {"name": "fcn_baseline", "kwargs": {"width": 8}},
           "train": {"epochs": 2, "freeze_prefixes": ["encoder."], "freeze_epochs": 1}, "out": str(tmp_path / "r"),
           "tensorboard": False, "optim": {"weight_decay": 0.0}}
    first = train({**cfg, "train": {**cfg["train"], "stop_after_epochs": 1}}, progress=False)
    torch.manual_seed(0)
    from rsmamba.models import create_model

    fresh = create_model("fcn_baseline", width=8, in_chans=1, num_classes=2).state_dict()
    after1 = load_checkpoint(first.last)["state_dict"]
    enc = [k for k in after1 if k.startswith("encoder.") and k.endswith("weight")]
    dec = [k for k in after1 if k.startswith("decoder.") and k.endswith("weight")]
    assert all(torch.equal(after1[k], fresh[k]) for k in enc)  # frozen in epoch 1 (same seed -> same init)
    stats = [k for k in after1 if k.startswith("encoder.") and k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(after1[k], fresh[k]) for k in stats)  # its batch-norm statistics too
    assert any(not torch.equal(after1[k], fresh[k]) for k in dec)
    second = train(cfg, resume=True, progress=False)
    after2 = load_checkpoint(second.last)["state_dict"]
    assert any(not torch.equal(after2[k], after1[k]) for k in enc)  # unfrozen from epoch 2


def test_init_across_band_layouts_of_equal_width_adapts_only_the_input_tensors(tmp_path: Path) -> None:
    """RGB + DSM into RGB + NIR: four channels each, other meanings. The first layers are adapted
    (the DSM column dropped, RGB spread over four bands), inner tensors load as they are."""
    from rsmamba.checkpoint import load_checkpoint, save_checkpoint
    from rsmamba.models import create_model
    from rsmamba.train.init import init_from_checkpoint, input_tensors

    demo = Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_model.pt"
    ckpt = load_checkpoint(demo)
    kwargs = {**ckpt["model_kwargs"], "in_chans": 4}
    model = create_model(ckpt["model"], **kwargs)
    inputs = input_tensors(ckpt["model"], kwargs)
    assert inputs == {"backbone.conv1.weight", "vss_encoder.stem.0.weight"}
    report = init_from_checkpoint(model, demo, image_bands=4, dsm=False, num_classes=kwargs["num_classes"],
                                  extra=len(ckpt["instances"]["channels"]) if ckpt.get("instances") else 0,
                                  inputs=inputs)
    assert sorted(report.adapted) == sorted(inputs)
    state = model.state_dict()
    for name in inputs:
        want = adapt_input_weight(ckpt["state_dict"][name], 3, True, 4, False)
        assert torch.equal(state[name], want) and not torch.equal(state[name], ckpt["state_dict"][name])
    # DataParallel's "module." prefix is unwrapped; a checkpoint whose names fit nowhere is refused
    wrapped = {**ckpt, "state_dict": {f"module.{k}": v for k, v in ckpt["state_dict"].items()}}
    save_checkpoint(tmp_path / "wrapped.pt", wrapped)
    again = create_model(ckpt["model"], **ckpt["model_kwargs"])
    loaded = init_from_checkpoint(again, tmp_path / "wrapped.pt", image_bands=3, dsm=True,
                                  num_classes=ckpt["model_kwargs"]["num_classes"])
    assert not loaded.left_random and not loaded.unused
    renamed = {**ckpt, "state_dict": {f"net.{k}": v for k, v in ckpt["state_dict"].items()}}
    save_checkpoint(tmp_path / "renamed.pt", renamed)
    with pytest.raises(InputError, match="none of its .* tensors fits model"):
        init_from_checkpoint(again, tmp_path / "renamed.pt", image_bands=3, dsm=True,
                             num_classes=ckpt["model_kwargs"]["num_classes"])


def test_init_compares_the_heads_rows_by_meaning_not_by_count() -> None:
    """QA finding 4: the demo head is 6 classes + 2 instance outputs, 8 rows; 8 new classes are 8 rows too,
    and were loaded as they were (water and road started as the demo's interior and contact logits) with a
    report of nothing re-initialised. The head now starts fresh and the report says so; same classes with
    renamed instance outputs keep the class rows only."""
    from rsmamba.checkpoint import load_checkpoint
    from rsmamba.models import create_model
    from rsmamba.train.init import head_tensors, init_from_checkpoint

    demo = Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_model.pt"
    ckpt = load_checkpoint(demo)
    isprs = [c["name"] for c in ckpt["classes"]]
    assert len(isprs) == 6 and ckpt["instances"]["channels"] == ["interior", "contact"]
    kwargs = {**ckpt["model_kwargs"], "num_classes": 8}
    heads = head_tensors(ckpt["model"], kwargs)
    torch.manual_seed(0)
    model = create_model(ckpt["model"], **kwargs)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_checkpoint(model, demo, image_bands=3, dsm=True, num_classes=8, heads=heads,
                                  class_names=[*isprs, "water", "road"])
    assert heads and sorted(report.reinitialised) == sorted(heads)
    assert "re-initialised for the new classes" in report.describe()
    assert all(torch.equal(model.state_dict()[k], fresh[k]) for k in heads)
    # the same classes with other instance outputs (as many, swapped): class rows kept, instance rows fresh
    torch.manual_seed(0)
    model = create_model(ckpt["model"], **ckpt["model_kwargs"])
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_checkpoint(model, demo, image_bands=3, dsm=True, num_classes=8, extra=2, heads=heads,
                                  class_names=isprs, instances=["contact", "interior"])
    assert sorted(report.widened) == sorted(heads) and not report.reinitialised
    for k in heads:
        assert torch.equal(model.state_dict()[k][:6], ckpt["state_dict"][k][:6])
        assert torch.equal(model.state_dict()[k][6:], fresh[k][6:])


def test_init_reads_the_data_bands_by_the_checkpoints_colours_and_a_test_refuses_other_colours(tmp_path: Path) -> None:
    """BGR chips from an RGB model: its red filter read the blue band (val mIoU 0.16 for 0.34 on the same pixels
    stored RGB), unsaid; and `train --test` scored BGR or NIR,R,G chips through it without a word."""
    from rasterio.enums import ColorInterp

    from rsmamba.checkpoint import load_checkpoint
    from rsmamba.train import score_checkpoint
    from tests.helpers.scenes import write_scene

    paths = write_scene(tmp_path / "scene", 64)
    with rasterio.open(paths["image"]) as src:
        rgb, profile = src.read(), src.profile
    for name, data, colours in (("rgb", rgb, ("red", "green", "blue")), ("bgr", rgb[::-1], ("blue", "green", "red")),
                                ("irrg", rgb, ("nir", "red", "green")), ("rgu", rgb, ("red", "green", "undefined")),
                                ("nrgb", np.concatenate([rgb[:1], rgb]), ("nir", "red", "green", "blue"))):
        with rasterio.open(tmp_path / f"{name}.tif", "w", **{**profile, "count": len(data)}) as dst:
            dst.write(data)
            dst.colorinterp = [ColorInterp[c] for c in colours]
        tile_scene(tmp_path / f"{name}.tif", tmp_path / name, labels=paths["labels"], size=32, block=32,
                   split=(0.5, 0.5, 0.0), seed=0)

    def cfg(chips: str, out: str, init: Path | None = None) -> dict:
        return {"data": {"root": str(tmp_path / chips), "batch_size": 1}, "out": str(tmp_path / out),
                "model": {"name": "fcn_baseline", "kwargs": {"width": 4}, "init": str(init) if init else None},
                "train": {"epochs": 1}, "optim": {"lr": 1e-12}, "tensorboard": False}

    first = train(cfg("rgb", "run_rgb"), progress=False).best
    weights = lambda path: next(v for k, v in load_checkpoint(path)["state_dict"].items() if v.dim() == 4)  # noqa: E731
    reordered = train(cfg("bgr", "run_bgr", first), progress=False).best
    assert torch.allclose(weights(reordered), weights(first)[:, [2, 1, 0]])  # blue read by the blue filter
    placed = train(cfg("nrgb", "run_nrgb", first), progress=False).best  # the RGB filters on their colours, the
    assert torch.allclose(weights(placed), weights(first)[:, [0, 0, 1, 2]] * 0.75)  # extra band repeats red
    assert score_checkpoint(cfg("rgb", "t_rgb"), checkpoint=first, progress=False)["scores"]
    # a band declaring nothing (undefined) is read by position, as predict reads it: not refused
    assert score_checkpoint(cfg("rgu", "t_rgu"), checkpoint=first, progress=False)["scores"]
    for chips, said in (("bgr", "blue, green, red, .* reads red, green, blue; a test reads the chips as stored: "
                                "tile them"),
                        ("irrg", "nir, red, green, .* reads red, green, blue; the chips have no blue: it cannot be "
                                 "tested on them")):
        with pytest.raises(InputError, match=rf"the chips' bands are {said}"):
            score_checkpoint(cfg(chips, f"t_{chips}"), checkpoint=first, progress=False)
