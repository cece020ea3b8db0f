"""``rsmamba train`` finds every input problem before it trains: missing files and labels, label ids
past the head, a config that is no mapping, a resume from another model. One line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from rsmamba.cli import main
from rsmamba.datasets.benchmark import open_datasets
from rsmamba.datasets.layouts import LandsatSCDDataset, LoveDADataset
from rsmamba.errors import InputError
from rsmamba.synth.benchmarks import write_layout
from rsmamba.train.config import DEFAULTS
from tests.helpers.scenes import write_chips


def _train(tmp_path: Path, *sets: str) -> list[str]:
    return ["train", "--set", "data.batch_size=2", "--set", "train.epochs=1", "--set", "model.kwargs.width=4",
            "--set", "tensorboard=false", "--set", f"out={tmp_path / 'run'}", *sets]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsmamba: error:"), err
    return err[0]


def test_every_missing_chip_file_is_listed_before_training(tmp_path: Path, capsys) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0))
    gone = sorted((chips / "labels").iterdir())[:2]
    for path in gone:
        path.unlink()
    assert main(_train(tmp_path, "--set", f"data.root={chips}")) == 2
    line = _one_error_line(capsys)
    assert all(f"{path}: missing from {chips}" in line for path in gone)
    assert not (tmp_path / "run").exists()


def test_chips_with_ids_past_num_classes_and_a_corrupt_tiling_json_are_refused(tmp_path: Path, capsys) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0))  # ISPRS ids 0..5
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", "model.kwargs.num_classes=3")) == 2
    assert "the chips hold class id 5, but model.kwargs.num_classes is 3; set it to at least 6" in _one_error_line(capsys)
    # a received tiling.json whose table is short: the user never set model.kwargs.num_classes
    tiling = json.loads((chips / "tiling.json").read_text())
    (chips / "tiling.json").write_text(json.dumps({**tiling, "classes": tiling["classes"][:2]}))
    assert main(_train(tmp_path, "--set", f"data.root={chips}")) == 2
    line = _one_error_line(capsys)
    assert "the chips hold class id 5, but their class table (tiling.json) has 2 classes (ids 0..1)" in line
    assert "num_classes" not in line
    (chips / "tiling.json").write_text("{not json")
    assert main(_train(tmp_path, "--set", f"data.root={chips}")) == 2
    assert "tiling.json: not valid JSON" in _one_error_line(capsys)


@pytest.mark.parametrize("text", ["- a\n- b\n", "hello\n"])
def test_a_config_that_is_no_mapping_is_one_line(tmp_path: Path, capsys, text: str) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    assert main(["train", "--config", str(cfg)]) == 2
    assert "a config is a mapping of sections" in _one_error_line(capsys)


def test_resuming_another_models_state_is_one_line(tmp_path: Path, capsys) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0), dsm=True)
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", "data.use_dsm=false")) == 0
    capsys.readouterr()
    other = ["--set", f"out={tmp_path / 'run2'}", "--resume-from", str(tmp_path / "run" / "last.pt")]
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", "data.use_dsm=true", *other)) == 2
    assert "data.use_dsm was False, now True" in _one_error_line(capsys)  # refused before any state is loaded


def _data(layout: str, root: Path) -> dict:
    return {**DEFAULTS["data"], "layout": layout, "root": str(root), "crop": 16}


def test_benchmark_training_labels_must_all_be_there(tmp_path: Path) -> None:
    isprs = write_layout("vaihingen", tmp_path / "v", size=32)
    labels = sorted(isprs.rglob("top_mosaic_09cm_area1.tif")) + sorted(isprs.rglob("top_mosaic_09cm_area3.tif"))
    for path in labels:
        if path.parent.name != "top":
            path.unlink()
    with pytest.raises(InputError, match=r"no label file for the vaihingen training tiles "
                                         r"top_mosaic_09cm_area1.tif, top_mosaic_09cm_area3.tif \(e.g. .*"
                                         r"_ground_truth_COMPLETE/top_mosaic_09cm_area1.tif\); restore them"):
        open_datasets(_data("isprs", isprs), use_dsm=False)
    loveda = write_layout("loveda", tmp_path / "l", size=32)
    mask = sorted((loveda / "Train").rglob("masks_png/*.png"))[0]
    mask.unlink()
    with pytest.raises(InputError, match=f"{mask}: missing from the LoveDA layout"):
        open_datasets(_data("loveda", loveda), use_dsm=False)
    with pytest.raises(InputError, match=f"{mask}: missing from the LoveDA layout"):
        LoveDADataset(loveda, "Train")  # read for scoring, it was the split less that image under its whole count
    second = write_layout("second", tmp_path / "s", size=32)
    gone = sorted((second / "train" / "im2").iterdir())[0]
    gone.unlink()
    with pytest.raises(InputError, match=f"{gone}: missing from the SECOND layout"):
        open_datasets(_data("second", second), use_dsm=False)
    landsat = write_layout("landsat-scd", tmp_path / "ls", size=32)
    gone = sorted((landsat / "labelB").iterdir())[0]
    gone.unlink()
    with pytest.raises(InputError, match=f"{gone}: missing from the Landsat-SCD layout"):
        open_datasets(_data("landsat-scd", landsat), use_dsm=False)


def test_label_values_outside_the_benchmarks_classes_become_ignore(tmp_path: Path) -> None:
    loveda = write_layout("loveda", tmp_path / "l", size=32)
    mask = sorted((loveda / "Train").rglob("masks_png/*.png"))[0]
    with rasterio.open(mask) as src:
        profile, m = src.profile, src.read()
    m[0, :4, :4] = 9  # no LoveDA class: 1..7 are classes, 0 no-data
    with rasterio.open(mask, "w", **profile) as dst:
        dst.write(m)
    ds = LoveDADataset(loveda, "Train")
    index = [i for i, (_, path) in enumerate(ds.items) if path == mask][0]
    assert (ds[index]["mask"][:4, :4] == 255).all() and int(ds[index]["mask"].max()) == 255
    landsat = write_layout("landsat-scd", tmp_path / "ls", size=32)
    label = sorted((landsat / "labelA").iterdir())[0]
    with rasterio.open(label) as src:
        profile, a = src.profile, src.read()
    a[0, :3, :3] = 7
    with rasterio.open(label, "w", **profile) as dst:
        dst.write(a)
    sample = LandsatSCDDataset(landsat, "train")[0]  # train_0.png, the label changed
    assert label.name == "train_0.png"
    # an unknown date-1 value has no change label either (it was trained as "no change")
    assert (sample["change"][:3, :3] == 255).all() and (sample["mask"][:3, :3] == 255).all()


def test_an_isprs_label_tile_of_another_size_than_its_image_is_refused(tmp_path: Path) -> None:
    isprs = write_layout("vaihingen", tmp_path / "v", size=32)
    for label in (p for p in isprs.rglob("top_mosaic_09cm_area1.tif") if p.parent.name != "top"):
        with rasterio.open(label) as src:
            profile, data = src.profile, src.read()
        profile.update(width=30)
        with rasterio.open(label, "w", **profile) as dst:
            dst.write(data[:, :, :30])
    with pytest.raises(InputError, match="top_mosaic_09cm_area1.tif: 30 x 32 px, its image top_mosaic_09cm_area1.tif "
                                         "32 x 32 px"):
        open_datasets(_data("isprs", isprs), use_dsm=False)


@pytest.mark.parametrize(("setting", "needle"), [
    ("train.freeze_prefixes=backbone.", "train.freeze_prefixes: expected a list of name prefixes"),
    ("train.freeze_epochs=abc", "train.freeze_epochs: expected an integer"),
])
def test_freeze_settings_are_typed_before_anything_loads(tmp_path: Path, capsys, setting: str, needle: str) -> None:
    """A bare string was read letter by letter: 'backbone.' froze every parameter starting b, a, c, ..."""
    assert main(["train", "--set", f"data.root={tmp_path}", "--set", setting]) == 2
    assert needle in _one_error_line(capsys)


def test_a_change_model_on_single_date_chips_is_one_line(tmp_path: Path, capsys) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0))
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", "model.name=siam_diff_baseline")) == 2
    assert "detects change between two dates, but" in _one_error_line(capsys)


def test_an_empty_freeze_prefixes_freezes_nothing(tmp_path: Path) -> None:
    from rsmamba.train.config import load_config

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data: {{root: {tmp_path}}}\ntrain: {{freeze_prefixes: }}\n")
    assert load_config(cfg)["train"]["freeze_prefixes"] == []


def test_numbers_in_exponent_notation_are_numbers(tmp_path: Path) -> None:
    """YAML 1.1 reads 1e-4 (no dot) as text; a learning rate written so is the number every user means."""
    from rsmamba.train.config import load_config

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data: {{root: {tmp_path}}}\noptim: {{lr: 1e-4, weight_decay: 5e-4}}\n")
    loaded = load_config(cfg, ["optim.momentum=9e-1"])
    assert (loaded["optim"]["lr"], loaded["optim"]["weight_decay"], loaded["optim"]["momentum"]) == (1e-4, 5e-4, 0.9)
    with pytest.raises(InputError, match="config optim.lr: expected a number, got 'abc'"):
        load_config(cfg, ["optim.lr=abc"])


@pytest.mark.parametrize("setting, said", [
    # lr .inf trained to 'diverged ... run again with a lower rate, e.g. --set optim.lr=inf'
    ("optim.lr=.inf", "config optim.lr: must be finite, got inf"),
    ("optim.lr=-1", r"config optim.lr: must be > 0, got -1$"),  # it said '>= 0' here and '> 0' for 0
    ("optim.lr=0", r"config optim.lr: must be > 0, got 0$"),
    ("optim.weight_decay=1e999", "config optim.weight_decay: must be finite, got inf"),
    ("eval.scales=[1.0, .inf]", "config eval.scales: must be finite"),
    # a zoom of 1000 asked for 65 GB at the first batch (a traceback); percent, [50, 150], for several GB
    ("augment.scale=[1000, 1000]", r"config augment.scale: each value must be <= 8 \(a zoom factor"),
    ("augment.scale_set=[50, 100]", "config augment.scale_set: each value must be <= 8"),
    ("eval.scales=[1.0, 20]", "config eval.scales: each value must be <= 8"),
])
def test_numbers_are_finite_and_zoom_factors_bounded(tmp_path: Path, setting: str, said: str) -> None:
    from rsmamba.train.config import load_config

    with pytest.raises(InputError, match=said):
        load_config(None, [f"data.root={tmp_path}", setting])
    assert load_config(None, [f"data.root={tmp_path}", "augment.scale=[0.5, 8]"])["augment"]["scale"] == [0.5, 8]


def test_train_device_cuda_is_this_processs_gpu_or_one_line(monkeypatch) -> None:
    """train.device cuda was torch.cuda.set_device's ValueError (no index), and without CUDA a traceback."""
    import torch

    from rsmamba.train.trainer import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="train.device cuda: CUDA is not available on this machine"):
        pick_device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda", 1) == torch.device("cuda", 1) and pick_device("cuda:0", 1) == torch.device("cuda", 0)
    with pytest.raises(InputError, match="has 2 GPU"):
        pick_device("cuda:3", 0)
    assert pick_device("cpu", 0) == torch.device("cpu")


def test_chips_without_a_labelled_pixel_are_refused(tmp_path: Path, capsys) -> None:
    """A label raster all nodata: loss 0.0 every step, an untrained model saved as best.pt, exit 0."""
    from rsmamba.tile import tile_scene
    from tests.helpers.rasters import write_raster
    from tests.helpers.scenes import write_scene

    scene = write_scene(tmp_path / "scene", size=64)
    blank = write_raster(tmp_path / "blank.tif", np.full((64, 64), 255, np.uint8), res=0.5)
    tile_scene(scene["image"], tmp_path / "chips", labels=blank, size=32, block=32, split=(1.0, 0.0, 0.0))
    assert "4 of 4 chips hold no labelled pixel" in capsys.readouterr().err  # said by tile first
    assert main(_train(tmp_path, "--set", f"data.root={tmp_path / 'chips'}")) == 2
    assert "the train chips hold no labelled pixel (every label is 255" in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting, said", [
    ("train.exclude_classes=5", "train.exclude_classes: expected a list of integers"),
    ("eval.scales=[0]", "eval.scales: each value must be >= 0.05"),
    ("eval.scales=[]", "eval.scales: expected a list of numbers"),
    ("augment.scale=[0.5]", r"augment.scale: expected \[low, high\]"),
    ("train.ema=1.5", "train.ema: a decay, must be < 1"),
    ("train.seed=-1", "train.seed: must be >= 0"),
    ("schedule.milestones=abc", "schedule.milestones: expected a list of integers"),
    ("optim.groups=abc", "optim.groups: expected a list of"),
    ("data.use_dsm=maybe", "data.use_dsm: expected true or false"),
    ("loss={name: ce, class_weights: [1, 2]}", "loss ce: 2 class_weights for 6 classes"),
    ("loss={name: ce, smoothing: 2}", r"loss ce: smoothing must be in \[0, 1\)"),
    ("train.exclude_classes=[99]", r"train.exclude_classes \[99\]: no class id of the data \(0..5\)"),
    ("model.kwargs.bogus=3", "model.kwargs .*bogus.*: not arguments 'fcn_baseline' takes"),
    ("model.kwargs.in_chans=7", "model.kwargs.in_chans 7: the data give 3 channels"),
])
def test_config_values_that_failed_mid_run_are_one_line_up_front(tmp_path: Path, capsys, setting, said) -> None:
    """Each was a traceback: at the start, at the first batch, or (exclude_classes, eval.scales) after a
    whole epoch of training, nothing saved."""
    import re

    chips = write_chips(tmp_path, size=64, chip=32, split=(0.75, 0.25, 0.0))
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", setting)) == 2
    assert re.search(said, _one_error_line(capsys))
    assert not (tmp_path / "run").exists()


def test_chips_of_two_sizes_are_one_line(tmp_path: Path, capsys) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0))
    first = sorted((chips / "images").iterdir())[0]
    with rasterio.open(first) as src:
        profile, data = src.profile, src.read()
    profile.update(width=16, height=16)
    with rasterio.open(first, "w", **profile) as dst:
        dst.write(data[:, :16, :16])
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", "data.batch_size=4")) == 2
    # named by the chip as it is read, against manifest.csv's size (before: at the batch, by torch.stack's check)
    assert f"{first}: chip {first.stem} has 3 band(s) of 16 x 16 px; its folder says 3 of 32 x 32 px" in \
        _one_error_line(capsys)


def test_num_classes_past_the_class_table_and_data_mean_on_chips(tmp_path: Path, capsys) -> None:
    """num_classes 8 on a 6-class table trained to the end, then predict refused the checkpoint; data.mean
    on chips was ignored while the checkpoint's config recorded it."""
    from rsmamba.checkpoint import load_checkpoint

    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0))
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", "model.kwargs.num_classes=8")) == 2
    assert "model.kwargs.num_classes 8: the data's class table names 6 classes" in _one_error_line(capsys)
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", "data.mean=[120, 110, 100]",
                       "--set", "data.std=[50, 50, 50]")) == 0
    norm = load_checkpoint(tmp_path / "run" / "best.pt")["normalization"]["image"]
    assert norm["mean"] == [120.0, 110.0, 100.0] and norm["std"] == [50.0, 50.0, 50.0]


def test_out_that_is_a_file_and_evaluate_o_csv_are_one_clear_line(tmp_path: Path, capsys) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0))
    (tmp_path / "afile").write_text("x")
    assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", f"out={tmp_path / 'afile'}")) == 2
    assert "a file stands where the run's folder would go" in _one_error_line(capsys)
    labels = sorted((chips / "labels").iterdir())[0]
    assert main(["evaluate", str(labels), str(labels), "-o", str(tmp_path / "m.csv")]) == 2
    assert "-o " in (line := _one_error_line(capsys)) and "is the scores' JSON" in line and "give m.json" in line


@pytest.mark.parametrize("model, setting, said", [
    # each was a traceback, exit 1: an IndexError deep in the model, or a channel mismatch at the first forward
    ("mafmamba_tiny", "model.kwargs.encoder_depths=[1,1]",
     r"model.kwargs \{'encoder_depths': \[1, 1\]\}: 'mafmamba_tiny' refuses the value \(encoder_depths takes 4 values"),
    ("mafmamba_tiny", "model.kwargs.weight_channels=0", "'mafmamba_tiny' refuses the value .*weight_channels"),
    ("cmtunet_tiny", "model.kwargs.vss_depths=[1,1]", "'cmtunet_tiny' refuses the value .*vss_depths takes 4 values"),
    # passes the constructor, fails at the dry run's probe forward
    ("cmtunet_tiny", "model.kwargs.window_size=3", r"\{'window_size': 3\}: 'cmtunet_tiny' refuses the value \(RuntimeError"),
    # a value the model checks itself: refused, not 'not arguments it takes' as it read
    ("mafmamba_tiny", "model.kwargs.resnet_depth=7", r"'mafmamba_tiny' refuses the value \(ResNet depth must be one of"),
    ("mafmamba_tiny", "model.kwargs.bogus=1", r"\{'bogus': 1\}: not arguments 'mafmamba_tiny' takes"),
])
def test_bad_model_kwargs_are_one_line_in_a_dry_run_and_a_run(tmp_path: Path, capsys, model, setting, said) -> None:
    import re

    chips = write_chips(tmp_path, size=64, chip=32, split=(0.75, 0.25, 0.0))
    for run in (["--dry-run"], ["--set", f"out={tmp_path / 'run'}"]):  # a real run: refused before it starts
        assert main(["train", *run, "--set", f"data.root={chips}", "--set", "data.batch_size=2",
                     "--set", f"model.name={model}", "--set", setting]) == 2
        assert re.search(said, _one_error_line(capsys))
    assert not (tmp_path / "run").exists()


def test_a_model_error_is_blamed_on_model_kwargs_only_when_they_cause_it() -> None:
    """Without model.kwargs, or when the model fails without them too, the error is a bug: it propagates."""
    from rsmamba.train.trainer import blame_model_kwargs

    def fails(_: object = None) -> None:
        raise IndexError("list index out of range")

    with pytest.raises(IndexError):  # no kwargs given
        blame_model_kwargs({"model": {"name": "m", "kwargs": {}}}, {"num_classes": 6}, fails, lambda kw: None)
    with pytest.raises(IndexError):  # fails without them as well
        blame_model_kwargs({"model": {"name": "m", "kwargs": {"depth": 1}}}, {"depth": 1, "num_classes": 6}, fails, fails)
    seen = []
    with pytest.raises(InputError, match=r"model.kwargs \{'depth': 1\}: 'm' refuses the value \(IndexError: list"):
        blame_model_kwargs({"model": {"name": "m", "kwargs": {"depth": 1}}}, {"depth": 1, "num_classes": 6}, fails,
                           seen.append)
    assert seen == [{"num_classes": 6}]  # checked with what the data set, without the user's kwargs


def test_dry_run_refuses_fewer_samples_than_one_batch_as_train_does(tmp_path: Path, capsys) -> None:
    """The dry run planned '0 steps in 1 epochs', exit 0, where train refused: now both say the same line."""
    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0))  # 4 chips
    said = []
    for extra in (["--dry-run"], []):
        assert main(_train(tmp_path, "--set", f"data.root={chips}", "--set", "data.batch_size=8", *extra)) == 2
        said.append(_one_error_line(capsys))
    assert said[0] == said[1] and "4 training chips, fewer than one batch of 8" in said[0]
    assert not (tmp_path / "run").exists()


def test_chips_without_labels_are_refused_not_trained_at_loss_0(tmp_path: Path, capsys) -> None:
    """Chips tiled without --labels trained with loss 0 every epoch, exit 0, 'no val chips' (there were), and a
    checkpoint whose weights no loss had moved."""
    from tests.helpers.scenes import write_scene

    paths = write_scene(tmp_path / "scene", 96, 0)
    chips = tmp_path / "chips"
    assert main(["tile", str(paths["image"]), "-o", str(chips), "--size", "32", "--split-block", "32"]) == 0
    capsys.readouterr()
    for extra in (["--dry-run"], []):
        assert main(_train(tmp_path, "--set", f"data.root={chips}", *extra)) == 2
        assert "carry no labels (tiled without --labels)" in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_run_folder_config_and_checkpoint_paths_are_said_for_what_they_are(tmp_path: Path, capsys) -> None:
    """-o under a file was '[Errno 17] File exists'; -c DIR 'config file not found', --init DIR 'checkpoint not
    found' (both exist); --set 'out = X' beside -o was taken silently, where --set out=X is refused."""
    from rsmamba.checkpoint import load_checkpoint

    config = tmp_path / "tiny.yaml"
    config.write_text("data: {root: chips}\nout: run\n")
    assert main(["train", "-c", str(config), "-o", str(config / "x")]) == 2
    assert f"-o {config / 'x'}: cannot write into {config}: it is a file, not a folder" in _one_error_line(capsys)
    assert main(["train", "-c", str(tmp_path)]) == 2
    assert f"config {tmp_path}: is a directory, not a file" in _one_error_line(capsys)
    with pytest.raises(InputError, match="is a directory, not a file"):
        load_checkpoint(tmp_path)
    assert main(["train", "-c", str(config), "--set", "out = X", "-o", str(tmp_path / "Y")]) == 2
    assert "-o and --set out=: give the run folder once" in _one_error_line(capsys)


def test_dry_run_refuses_a_device_as_the_run_does(tmp_path: Path, capsys) -> None:
    """`train --device xpu --dry-run` planned the run (exit 0) that `train --device xpu` refuses."""
    chips = write_chips(tmp_path, size=64, chip=32, split=(0.75, 0.25, 0.0))
    said = []
    for extra in (["--dry-run"], []):
        assert main(_train(tmp_path, "--set", f"data.root={chips}", "--device", "xpu", *extra)) == 2
        said.append(_one_error_line(capsys))
    assert said[0] == said[1] and "train.device xpu: rsmamba runs on cpu, cuda, mps" in said[0]


def test_path_keys_set_on_the_command_line_are_their_text(tmp_path) -> None:
    """YAML made 'out=2024' a number, 'data.root=2024-05-01' a date and 'out=yes' a boolean (tracebacks), and cut
    'out=exp #2' at its comment (the run trained into exp/)."""
    from rsmamba.errors import InputError
    from rsmamba.train.config import DEFAULTS, apply_overrides, load_config

    cfg = apply_overrides(DEFAULTS, ["out=2024", "data.root=2024-05-01", "model.init=yes", "train.epochs=3"])
    assert (cfg["out"], cfg["data"]["root"], cfg["model"]["init"], cfg["train"]["epochs"]) == \
        ("2024", "2024-05-01", "yes", 3)
    assert apply_overrides(DEFAULTS, ["out=exp #2"])["out"] == "exp #2"
    assert apply_overrides(DEFAULTS, ["out='quoted'"])["out"] == "quoted"
    # null, ~ or nothing unsets (model.init=null was 'null: checkpoint not found'); a map stays YAML's
    assert [apply_overrides(DEFAULTS, [f"model.init={v}"])["model"]["init"] for v in ("null", "~", "")] == [None] * 3
    assert apply_overrides(DEFAULTS, ["model.pretrained=w #1.pth"])["model"]["pretrained"] == "w #1.pth"
    assert apply_overrides(DEFAULTS, ["model.pretrained={backbone: a.pth}"])["model"]["pretrained"] == {"backbone": "a.pth"}
    # a section set as a map: its keys, the others kept (replaced whole, 'train={epochs: 1}' was a KeyError traceback)
    cfg = apply_overrides(DEFAULTS, ["train={epochs: 1}"])
    assert cfg["train"]["epochs"] == 1 and cfg["train"]["seed"] == DEFAULTS["train"]["seed"]
    config = tmp_path / "c.yaml"
    config.write_text("out: 2024\n")
    with pytest.raises(InputError, match=r"config out: expected a path .*got 2024"):
        load_config(config, [])


@pytest.mark.parametrize("setting, said", [
    ("optim.name=foo", "config optim.name: 'foo', expected adamw, adam, sgd"),
    ("schedule.name=bar", "config schedule.name: 'bar', expected cosine, "),
    ("schedule.by=week", "config schedule.by: 'week', expected epoch, iteration"),
    ("augment.date_swap=5", "config augment.date_swap: a probability, must be <= 1, got 5"),
    ("augment.colour=2", r"config augment.colour: a gain's spread \(1 \+- colour\), must be < 1"),
])
def test_names_and_probabilities_are_refused_by_the_dry_run_too(tmp_path: Path, capsys, setting, said) -> None:
    """--dry-run passed these (rc 0, the bad value in its resolved config); training refused the names only once
    the data was read and the model built, and swapped every pair at date_swap 5."""
    import re

    assert main(_train(tmp_path, "--set", f"data.root={tmp_path / 'chips'}", "--set", setting, "--dry-run")) == 2
    assert re.search(said, _one_error_line(capsys))


def test_a_configs_kwargs_for_another_model_say_how_to_drop_them(tmp_path: Path, capsys) -> None:
    """--set model.name=X on a config whose model.kwargs are its own model's: one line naming them, and the way on."""
    import yaml

    chips = write_chips(tmp_path, size=64, chip=32, split=(0.75, 0.25, 0.0))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"name": "mafmamba_tiny", "kwargs": {"resnet_depth": 18}}}))
    for run in (["--dry-run"], ["--set", f"out={tmp_path / 'run'}"]):
        assert main(["train", "-c", str(cfg), *run, "--set", f"data.root={chips}",
                     "--set", "model.name=fcn_baseline"]) == 2
        line = _one_error_line(capsys)
        assert "model.kwargs {'resnet_depth': 18}: not arguments 'fcn_baseline' takes" in line
        assert "--set 'model.kwargs={}'" in line
    assert not (tmp_path / "run").exists()


def test_a_dsm_model_with_use_dsm_false_on_chips_holding_one_is_told_to_read_it(tmp_path: Path, capsys) -> None:
    """data.use_dsm false on chips tiled with --dsm, for a model that needs the DSM: the error said 'tile with
    --dsm', sending the user to re-tile chips that hold one (QA). It names the setting."""
    chips = write_chips(tmp_path, size=64, chip=32, dsm=True, split=(1.0, 0.0, 0.0))
    args = ["train", "--set", f"data.root={chips}", "--set", "model.name=fmtunet_tiny", "--set",
            f"out={tmp_path / 'run'}", "--dry-run"]
    assert main([*args, "--set", "data.use_dsm=false"]) == 2
    assert _one_error_line(capsys).endswith("needs a DSM; the chips hold one, which data.use_dsm false leaves out: "
                                            "set it to true or null")
    plain = write_chips(tmp_path / "plain", size=64, chip=32, split=(1.0, 0.0, 0.0))
    assert main(["train", "--set", f"data.root={plain}", *args[3:]]) == 2
    assert _one_error_line(capsys).endswith("needs a DSM; tile with --dsm (data.use_dsm)")
