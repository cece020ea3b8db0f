"""Issue #17, step 3: any zoo model trains with instance outputs (a widened head) and predict writes them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
import yaml

from rsmamba.checkpoint import load_checkpoint
from rsmamba.cli import main
from rsmamba.synth import write_scene
from rsmamba.train.instances import instance_loss


def test_instance_loss_ignores_invalid_and_prefers_right_logits():
    t = torch.tensor([[[[1, 0], [255, 1]]]])
    good = torch.tensor([[[[9.0, -9.0], [123.0, 9.0]]]])
    bad = -good
    assert instance_loss(good, t) < 0.05 < instance_loss(bad, t)
    other = good.clone()
    other[0, 0, 1, 0] = -50.0  # the ignored pixel changes nothing
    assert torch.isclose(instance_loss(good, t), instance_loss(other, t))
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):  # never negative: Dice is bounded by 1, BCE by 0
        logits = torch.randn(2, 2, 8, 8, generator=gen) * 10
        targets = torch.randint(0, 2, (2, 2, 8, 8), generator=gen)
        targets[:, :, :2] = 255
        assert instance_loss(logits, targets) >= 0
        assert instance_loss(targets.float() * 40 - 20, targets) < 0.01


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("itrain")
    scene = write_scene(root / "s", size=192, seed=21, terraced=0.8, instances=True)
    chips = root / "chips"
    assert main(["tile", str(scene["ortho_t1"]), "--dsm", str(scene["dsm_t1"]), "--labels", str(scene["labels_t1"]),
                 "--size", "64", "--split-block", "64", "--split", "0.7,0.3,0", "-o", str(chips),
                 "--instance-targets", str(scene["buildings_t1"])]) == 0
    cfg = root / "train.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"root": str(chips), "batch_size": 2}, "model": {"name": "fcn_baseline", "kwargs": {"width": 8},
                                                                 "instances": ["interior", "contact"]},
        "train": {"epochs": 1}, "out": str(root / "run"), "tensorboard": False}))
    assert main(["train", "--config", str(cfg)]) == 0
    return root, scene


def test_checkpoint_records_instance_outputs(run):
    root, _ = run
    ck = load_checkpoint(root / "run" / "best.pt")
    assert ck["instances"]["channels"] == ["interior", "contact"]
    assert ck["model_kwargs"]["num_classes"] == len(ck["classes"]) + 2
    assert ck["instances"]["targets"]["channels"] == ["interior", "border", "contact"]


def test_predict_writes_instance_probabilities(run):
    root, scene = run
    pred, probs, conf = root / "pred.tif", root / "probs.tif", root / "conf.tif"
    assert main(["predict", str(scene["ortho_t1"]), "--dsm", str(scene["dsm_t1"]), "--model",
                 str(root / "run" / "best.pt"), "-o", str(pred), "--probabilities", str(probs),
                 "--confidence", str(conf), "--window", "64", "--overlap", "16"]) == 0
    with rasterio.open(probs) as src:
        assert src.count == 8
        assert src.descriptions[-2:] == ("p(interior)", "p(contact)")
        assert json.loads(src.tags()["INSTANCE_CHANNELS"]) == ["interior", "contact"]
        p = src.read().astype(np.int64)
    with rasterio.open(pred) as src:
        classes = src.read(1)
    # the class raster is the argmax of the class bands only (up to the uint8 rounding); they sum to ~1
    assert classes.max() < 6
    assert (np.take_along_axis(p[:6], classes[None].astype(np.int64), 0)[0] >= p[:6].max(0) - 1).all()
    assert np.abs(p[:6].sum(0) - 254).max() <= 6


def test_instances_config_needs_target_chips(tmp_path, capsys):
    scene = write_scene(tmp_path / "s", size=128, seed=1)
    chips = tmp_path / "chips"
    assert main(["tile", str(scene["ortho_t1"]), "--labels", str(scene["labels_t1"]), "--size", "64",
                 "-o", str(chips)]) == 0
    capsys.readouterr()  # tile's warnings
    code = main(["train", "--set", f"data.root={chips}", "--set", "model.instances=[interior]",
                 "--set", f"out={tmp_path / 'run'}", "--set", "train.epochs=1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    # the setting, what the chips lack and the two ways out, in one line
    assert code == 2 and err.startswith("rsmamba: error:"), err
    assert (f"{chips}: model.instances (interior) trains on instance-target chips (targets/), which these chips lack"
            in err and "--instance-targets" in err and "or leave model.instances out" in err), err


def test_a_test_of_a_checkpoint_with_instance_outputs_scores_its_classes_on_plain_chips(tmp_path, capsys):
    """``train --test`` of the demo model (instance outputs interior, contact) on chips tiled without
    --instance-targets was refused as not fitting ('1 head tensors re-sized for the instance outputs'), naming
    neither model.instances nor a way out; a test scores the class outputs, which need no targets."""
    from pathlib import Path

    from tests.helpers.scenes import write_chips

    chips = write_chips(tmp_path, size=128, chip=64, dsm=True, split=(0.5, 0.5, 0.0))
    demo = Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_model.pt"
    args = ["train", "--test", str(demo), "--set", f"data.root={chips}", "--set", f"out={tmp_path / 'run'}"]
    assert main(args) == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "run" / "test_val.json").read_text())
    assert result["samples"] == 2 and 0 <= result["scores"]["miou"] <= 1
    # the model scored is named (QA finding 8: model.name=fcn_baseline, the default, gave way to it unsaid)
    assert "val (2 samples, model cmtunet_tiny): miou" in capsys.readouterr().out
    assert main([*args, "--overwrite", "--set", "model.instances=[interior]"]) == 2  # not the checkpoint's outputs
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.instances [interior]" in err[0] and "(interior, contact)" in err[0], err
    # by its name, as --init takes it ('demo: checkpoint not found')
    assert main(["train", "--test", "demo", *args[3:], "--overwrite"]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "test_val.json").read_text())["scores"] == result["scores"]
    # a split the chips lack: which they have, and how to get it (it said only 'no labelled split', QA)
    assert main(["train", "--test", "demo", *args[3:], "--overwrite", "--set", "data.val_split=test"]) == 2
    err = capsys.readouterr().err
    assert "no labelled split 'test' to score (data.val_split); its chips: train 2, val 2 (rsmamba tile --split" in err


def test_set_a_new_model_kwarg_and_instances_list():
    from rsmamba.train.config import load_config

    cfg = load_config(None, ["data.root=chips", "model.kwargs.width=8", "model.instances=[interior,contact]"])
    assert cfg["model"]["kwargs"]["width"] == 8 and cfg["model"]["instances"] == ["interior", "contact"]


def test_init_widens_the_head_for_instance_outputs(run, tmp_path):
    """``model.init`` from a plain checkpoint into a model with instance outputs: the class rows of
    the head are the checkpoint's, only the instance rows start fresh, every other tensor loads."""
    from rsmamba.models import create_model
    from rsmamba.train.init import init_from_checkpoint

    ckpt = load_checkpoint(run[0] / "run" / "best.pt")  # a 6-class + 2 instance-channel fcn_baseline
    kwargs = {**ckpt["model_kwargs"], "num_classes": len(ckpt["classes"])}
    plain = create_model(ckpt["model"], **kwargs)  # its plain version: 6 outputs, other weights
    src = tmp_path / "plain.pt"
    torch.save({**ckpt, "state_dict": plain.state_dict(), "model_kwargs": kwargs, "instances": None}, src)
    plain_state = plain.state_dict()
    wide = create_model(ckpt["model"], **ckpt["model_kwargs"])
    fresh = {k: v.clone() for k, v in wide.state_dict().items()}
    head = [k for k, v in fresh.items() if v.shape[:1] == (8,) and plain_state[k].shape[:1] == (6,)][-1]
    report = init_from_checkpoint(wide, src, image_bands=3, dsm=True, num_classes=8, extra=2)
    assert all(torch.equal(wide.state_dict()[k], plain_state[k]) for k in report.loaded)
    assert head in report.widened and not report.reinitialised and not report.left_random
    got = wide.state_dict()
    assert torch.equal(got[head][:6], plain_state[head])
    assert torch.equal(got[head][6:], fresh[head][6:])
    # without ``extra`` (a new class list) the head is re-initialised, not widened
    assert head in init_from_checkpoint(wide, src, image_bands=3, dsm=True, num_classes=8).reinitialised


def test_a_test_of_another_models_checkpoint_names_test_and_the_way_out(tmp_path, capsys):
    """It said 'model.init CKPT: holds a cmtunet_tiny model, the config asks for fcn_baseline', a key the
    user never set."""
    from pathlib import Path

    from tests.helpers.scenes import write_chips

    chips = write_chips(tmp_path, size=128, chip=64, dsm=True, split=(0.5, 0.5, 0.0))
    demo = Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_model.pt"
    args = ["train", "--test", str(demo), "--set", f"data.root={chips}", "--set", f"out={tmp_path / 'run'}",
            "--set", "model.name=mafmamba_tiny"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--test " in err[0] and "holds a 'cmtunet_tiny' model, the config asks for" in err[0]
    assert err[0].endswith("score it with --set model.name=cmtunet_tiny"), err
