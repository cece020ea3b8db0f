"""Training end to end on a tiny tiled scene: it learns, writes complete checkpoints, resumes exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from rsmamba.checkpoint import REQUIRED, load_checkpoint
from rsmamba.errors import InputError
from rsmamba.train import load_config, train
from tests.helpers.scenes import write_chips


@pytest.fixture(scope="module")
def chips(tmp_path_factory) -> Path:
    return write_chips(tmp_path_factory.mktemp("train"), size=128, chip=32)


def _trivial_miou(chips: Path) -> float:
    import csv
    import json
    from collections import Counter

    counts: Counter = Counter()
    for row in csv.DictReader(open(chips / "manifest.csv")):
        if row["split"] == "val":
            counts.update({int(k): v for k, v in json.loads(row["class_hist"]).items()})
    present = [c for c in counts if c != 255]
    return max(counts.values()) / sum(counts.values()) / len(present)


@pytest.fixture(scope="module")
def small_chips(tmp_path_factory) -> Path:
    return write_chips(tmp_path_factory.mktemp("small"), size=64, chip=32, split=(0.75, 0.25, 0.0))


def _cfg(chips: Path, out: Path, **train_kw) -> dict:
    return {"data": {"root": str(chips), "batch_size": 2}, "out": str(out), "optim": {"lr": 0.02},
            "model": {"name": "fcn_baseline", "kwargs": {"width": 8}}, "augment": {"photometric": 0.05},
            "train": {"epochs": 4, **train_kw}, "tensorboard": False}


def test_training_learns_and_checkpoints_hold_what_predict_needs(chips: Path, tmp_path: Path) -> None:
    result = train(_cfg(chips, tmp_path / "run", epochs=6), progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < 0.8 * first["train_loss"]
    # Trivial baseline: the majority class everywhere, IoU = its share, 0 for the 5 other classes.
    trivial = _trivial_miou(chips)
    assert max(h["val_miou"] for h in result.history) > max(0.25, 3 * trivial)
    best = load_checkpoint(result.best)
    for key in REQUIRED:
        assert key in best
    assert best["bands"] == {"image": [1, 2, 3], "dsm": False, "colours": ["red", "green", "blue"]}
    assert best["inference"] == {"window": 32, "overlap": 8}  # predict runs it at the chips' size by default
    assert len(best["normalization"]["image"]["mean"]) == 3
    assert [c["name"] for c in best["classes"]][:2] == ["impervious", "building"]
    assert best["metrics"]["val_miou"] == pytest.approx(max(h["val_miou"] for h in result.history))
    assert best["config"]["train"]["epochs"] == 6
    assert best["gsd_m"] == [0.5, 0.5]  # the chips' pixel size (tiling.json), which predict warns against
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["optim"]["lr"] == 0.02
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 7 and lines[0].startswith("epoch,train_loss")
    from rsmamba.models import create_model

    model = create_model(best["model"], **best["model_kwargs"])
    model.load_state_dict(best["state_dict"])


def test_resume_gives_identical_weights(small_chips: Path, tmp_path: Path) -> None:
    chips = small_chips

    def cfg(out: Path, **kw) -> dict:
        c = _cfg(chips, out, epochs=3, **kw)
        c["model"]["kwargs"]["width"] = 4
        c["train"]["ema"] = 0.5  # EMA state must resume too
        return c

    full = train(cfg(tmp_path / "full"), progress=False)
    part = train(cfg(tmp_path / "part", stop_after_epochs=1), progress=False)
    assert part.epochs_run == 1
    assert "1 epoch (stopped by train.stop_after_epochs: 1 of 3; --resume goes on);" in part.describe()  # (QA)
    resumed = train(cfg(tmp_path / "part"), resume=True, progress=False)
    assert resumed.epochs_run == 3 and "stopped" not in resumed.describe()
    # what this command trained, and the epoch best.pt holds ('3 epochs' said of epochs 2-3, no best epoch; QA)
    assert resumed.describe().startswith("3 epochs (epochs 2-3 this run, resumed after 1); best ")
    best = max(resumed.history, key=lambda r: (r[resumed.selected_by], r["epoch"]))["epoch"] \
        if resumed.selected_by != "train_loss" else min(resumed.history, key=lambda r: r["train_loss"])["epoch"]
    assert f" at epoch {best} -> " in resumed.describe() and resumed.best_epoch == best
    a = load_checkpoint(full.last)["train_state"]
    b = load_checkpoint(resumed.last)["train_state"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]
    for key, value in load_checkpoint(full.last)["state_dict"].items():  # EMA weights
        assert torch.equal(value, load_checkpoint(resumed.last)["state_dict"][key]), key
    # resumed with train.epochs below the run's: nothing trained, and said so; the run's own numbers (it read
    # "2 epochs; best train loss -0.4383 (train.metric is not scored ...)": the val mIoU negated, as a loss)
    before = (tmp_path / "part" / "last.pt").read_bytes()
    fewer = cfg(tmp_path / "part")
    fewer["train"]["epochs"] = 2
    again = train(fewer, resume=True, progress=False)
    assert (again.epochs_run, again.selected_by, again.best_metric) == (3, resumed.selected_by, resumed.best_metric)
    assert again.describe().startswith("3 epochs (none this run: it had 3 already);") and (tmp_path / "part" / "last.pt").read_bytes() == before


def test_with_dsm_channel_and_overrides(tmp_path: Path) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, dsm=True)
    result = train(_cfg(chips, tmp_path / "run", epochs=1), ["optim.name=sgd", "schedule.name=multistep",
                                                              "schedule.milestones=[1]", "train.ema=0.9"],
                   progress=False)
    ckpt = load_checkpoint(result.last)
    assert ckpt["model_kwargs"]["in_chans"] == 4
    assert ckpt["bands"]["dsm"] is True and ckpt["normalization"]["dsm"]["mode"] == "zscore"
    assert ckpt["config"]["optim"]["name"] == "sgd"


def test_config_errors_are_collected(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_config(None, ["optim.lrr=1", "nope.x=2"], base={"data": {"root": None}, "trian": {}})
    text = str(err.value)
    assert "trian" in text and "optim.lrr" in text and "nope.x" in text  # the base's and --set's, together
    with pytest.raises(InputError) as err:
        load_config(None, ["optim.lrr=1", "nope.x=2"])
    assert "optim.lrr" in str(err.value) and "nope.x" in str(err.value)


def test_a_last_epoch_killed_between_its_renames_is_finished_before_a_resume_or_a_reader(small_chips: Path,
                                                                                        tmp_path: Path,
                                                                                        monkeypatch) -> None:
    """Killed after last.pt's rename in the last epoch: --resume read that last.pt, trained nothing and said 'best
    val miou ... -> best.pt' while best.pt and metrics.csv were the epoch before's; predict took the old best.pt."""
    import rsmamba.atomic as atomic

    cfg = _cfg(small_chips, tmp_path / "run", epochs=2)
    cfg["model"]["kwargs"]["width"] = 4
    real = atomic.fault_point

    def interrupt(name, output=None):  # Ctrl-C after the first rename of epoch 2's files (as a SIGKILL there)
        if name == "renamed-1":
            raise KeyboardInterrupt
        return real(name, output)

    def killed_in_the_last_epoch() -> Path:
        train({**cfg, "train": {**cfg["train"], "stop_after_epochs": 1}}, overwrite=True, progress=False)
        monkeypatch.setattr(atomic, "fault_point", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, resume=True, progress=False)
        monkeypatch.setattr(atomic, "fault_point", real)
        run = tmp_path / "run"
        assert [p for p in run.iterdir() if "journal" in p.name]  # the epoch's files half renamed
        return run

    def finished(run: Path) -> None:
        assert not [p for p in run.iterdir() if "journal" in p.name]
        assert len((run / "metrics.csv").read_text().strip().splitlines()) == 3  # header, epochs 1 and 2
        assert load_checkpoint(run / "last.pt")["metrics"]["epoch"] == 2

    run = killed_in_the_last_epoch()
    load_checkpoint(run / "best.pt")  # a reader (predict --model, train --test) finishes them first
    finished(run)
    run = killed_in_the_last_epoch()
    again = train(cfg, resume=True, progress=False)  # and so does a resume
    finished(run)
    best = load_checkpoint(run / "best.pt")["metrics"]
    assert again.epochs_run == 2 and again.best_metric == best["val_miou"] == max(h["val_miou"] for h in again.history)


def test_change_model_trains_on_epoch_pair_chips(tmp_path: Path) -> None:
    from rsmamba.synth import write_scene
    from rsmamba.tile import tile_scene

    scene = write_scene(tmp_path / "scene", size=64, seed=3, gsd=0.5)
    chips = tmp_path / "chips"
    tile_scene(scene["ortho_t1"], chips, labels=scene["labels_t1"], t2=scene["ortho_t2"],
               labels_t2=scene["labels_t2"], change=scene["change"], size=32, block=32, split=(0.75, 0.25, 0.0))
    cfg = _cfg(chips, tmp_path / "run", epochs=2)
    cfg["model"] = {"name": "siam_diff_baseline", "kwargs": {"width": 4}}
    cfg["train"]["metric"] = "change_f1"
    result = train(cfg, progress=False)
    row = result.history[-1]
    # land cover of both dates; change F1 and the SCD scores need changed pixels in val (its one chip has none, and
    # a model that predicts none has no F1: null, as evaluate has it)
    assert {"val_change_oa", "val_sem_miou"} <= set(row)
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    ckpt = load_checkpoint(result.best)
    assert ckpt["model"] == "siam_diff_baseline" and ckpt["model_kwargs"]["in_chans"] == 3
    assert ckpt["land_cover_trained"] is True

    # On change masks alone its land-cover heads never see a label: change --semantic mapped their made-up 'from'
    # and 'to' classes (27 % right), exit 0; it is refused, and the binary change map is made
    from rsmamba.change import detect_change

    binary, scene = tmp_path / "binary", write_scene(tmp_path / "scene7", size=64, seed=7, gsd=0.5)
    tile_scene(scene["ortho_t1"], binary, t2=scene["ortho_t2"], change=scene["change"], size=32, block=32,
               split=(0.5, 0.5, 0.0))  # (seed 7: changed pixels in two corners, val chips that hold some)
    cfg = {**_cfg(binary, tmp_path / "run_binary", epochs=1), "model": cfg["model"], "train": cfg["train"]}
    run = train({**cfg, "train": {**cfg["train"], "epochs": 1, "metric": "miou"}}, progress=False)
    masks_only = load_checkpoint(run.last)
    assert masks_only["land_cover_trained"] is False
    # the default train.metric, the SCD mIoU (no-change and change IoU), is scored from the masks: it was not,
    # and best.pt followed the training loss
    row = run.history[-1]
    assert row["val_change_iou"] / 2 <= row["val_miou"] <= (1 + row["val_change_iou"]) / 2  # with no-change's IoU
    with pytest.raises(InputError, match="trained on change masks alone: its land-cover heads never saw a label"):
        detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "c.tif", model=tmp_path / "run_binary" / "last.pt",
                      semantic=True)
    assert not (tmp_path / "c.tif").exists()
    detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "c.tif", model=tmp_path / "run_binary" / "last.pt")


def test_the_logged_lr_is_the_rate_the_epoch_trained_at(chips: Path, tmp_path: Path) -> None:
    """Read after the epoch's last scheduler step, it was the next epoch's: a drop logged one epoch early."""
    cfg = _cfg(chips, tmp_path / "run", epochs=2)
    cfg["schedule"] = {"name": "multistep", "by": "epoch", "milestones": [1], "gamma": 0.1}
    result = train(cfg, progress=False)
    assert [h["lr"] for h in result.history] == pytest.approx([0.02, 0.002])


def test_init_demo_is_the_shipped_model_even_beside_a_folder_named_demo(small_chips: Path, tmp_path: Path,
                                                                         monkeypatch) -> None:
    """The README makes a demo/ folder; '--init demo' then read 'demo: checkpoint not found'."""
    from rsmamba.train import load_config
    from rsmamba.train.trainer import prepare

    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    base = {"data": {"root": str(small_chips), "batch_size": 2}, "out": str(tmp_path / "run"), "tensorboard": False}
    prep = prepare(load_config(None, ["model.init=demo", "data.use_dsm=false"], base=base))
    assert prep.init_report is not None and prep.init_report.loaded


def _val_chips_hold_class_0_only(chips: Path, split: str = "val") -> None:
    """Rewrite a chip folder's manifest so its ``split`` chips' class histograms hold class 0 only."""
    import csv
    import json as _json

    with open(chips / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        if r["split"] == split:
            r["class_hist"] = _json.dumps({"0": sum(_json.loads(r["class_hist"]).values())})
    with open(chips / "manifest.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_a_class_missing_from_the_val_chips_is_said(tmp_path: Path, caplog) -> None:
    """The README's instance run validated on chips without a building: val mIoU 1.0, without a word."""
    from rsmamba.train import load_config
    from rsmamba.train.trainer import prepare

    chips = write_chips(tmp_path / "c", size=64, chip=32, split=(0.75, 0.25, 0.0))
    _val_chips_hold_class_0_only(chips)
    base = {"data": {"root": str(chips), "batch_size": 2}, "out": str(tmp_path / "run"), "tensorboard": False,
            "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}}
    with caplog.at_level("WARNING"):
        prepare(load_config(None, [], base=base))
    assert "the val chips hold no" in caplog.text and "only where the model predicts it, as IoU 0" in caplog.text


def test_a_class_missing_from_the_scored_split_names_that_split(tmp_path: Path, caplog) -> None:
    """QA finding 9: train --test of data.val_split=test warned of 'the val chips' while it scored the test chips."""
    from rsmamba.train import load_config
    from rsmamba.train.trainer import prepare

    chips = write_chips(tmp_path / "c", size=96, chip=32, split=(0.5, 0.0, 0.5))
    _val_chips_hold_class_0_only(chips, "test")
    base = {"data": {"root": str(chips), "batch_size": 2, "val_split": "test"}, "out": str(tmp_path / "run"),
            "tensorboard": False, "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}}
    with caplog.at_level("WARNING"):
        prepare(load_config(None, [], base=base), scoring=True)
    assert "the test chips hold no" in caplog.text and "test scores count" in caplog.text
    assert "val chips" not in caplog.text


def test_the_out_folder_writes_over_no_input_and_not_into_the_data(small_chips: Path, tmp_path: Path) -> None:
    """train replaced the user's own config.yaml and an --init best.pt in its out folder, and mixed its
    checkpoints into the chip folder, all without --overwrite."""
    import yaml

    from rsmamba.errors import InputError

    proj = tmp_path / "proj"
    proj.mkdir()
    cfg = {"data": {"root": str(small_chips), "batch_size": 2}, "out": str(proj), "tensorboard": False,
           "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "train": {"epochs": 1}}
    (proj / "config.yaml").write_text("# my notes\n" + yaml.safe_dump(cfg))
    before = (proj / "config.yaml").read_text()
    with pytest.raises(InputError, match="would write config.yaml over the config"):
        train(proj / "config.yaml", progress=False, overwrite=True)
    assert (proj / "config.yaml").read_text() == before
    with pytest.raises(InputError, match="data folder"):
        train({**cfg, "out": str(small_chips)}, progress=False)
    with pytest.raises(InputError, match="data folder"):
        train({**cfg, "out": str(small_chips / "run")}, progress=False)
    first = train({**cfg, "out": str(tmp_path / "a")}, progress=False)
    with pytest.raises(InputError, match="would write over model.init"):
        train({**cfg, "out": str(tmp_path / "a"), "model": {**cfg["model"], "init": str(first.best)}},
              progress=False, overwrite=True)


@pytest.fixture(scope="module")
def stopped_run(small_chips: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stopped") / "run"
    cfg = _cfg(small_chips, out, epochs=2, stop_after_epochs=1)
    cfg["model"]["kwargs"]["width"] = 4
    train(cfg, progress=False)
    return out


@pytest.mark.parametrize("tamper, said", [
    (lambda s: s.update(epoch=-10**9), "epoch is -1000000000"),
    (lambda s: s.update(epoch="3"), "epoch is '3'"),
    (lambda s: s.update(history=5), "history is not a list"),
    (lambda s: s.update(best_metric="x"), "best_metric is 'x'"),
    (lambda s: s.pop("rng"), "rng is missing"),
    (lambda s: s.update(optimizer=[1, 2]), "optimizer is list"),
    (lambda s: s["rng"].update(python=(3, "junk", None)), "random-number states"),
    (lambda s: s["rng"].update(torch=torch.zeros(3)), "random-number states"),
    (lambda s: s["optimizer"].update(param_groups="x"), "does not fit this config's model"),
])
def test_resume_from_a_tampered_last_pt_is_one_input_error(small_chips: Path, stopped_run: Path, tmp_path: Path,
                                                          tamper, said) -> None:
    """A last.pt is a file from anywhere: a wrong type in its training state was a traceback, or (epoch
    -1e9) a loop of a billion epochs."""
    from rsmamba.checkpoint import save_checkpoint

    def cfg(out: Path) -> dict:
        c = _cfg(small_chips, out, epochs=2)
        c["model"]["kwargs"]["width"] = 4
        return c

    ckpt = load_checkpoint(stopped_run / "last.pt")
    tamper(ckpt["train_state"])
    out = tmp_path / "run"
    out.mkdir()
    save_checkpoint(out / "last.pt", {k: v for k, v in ckpt.items() if k not in ("format", "created")})
    before = (out / "last.pt").read_bytes()
    with pytest.raises(InputError, match="last.pt") as err:
        train(cfg(out), resume=True, progress=False)
    assert said in str(err.value)
    assert (out / "last.pt").read_bytes() == before


def test_a_diverging_run_stops_in_one_line_and_an_overwritten_runs_checkpoints_go(small_chips: Path,
                                                                                  tmp_path: Path) -> None:
    """lr 1e30: the loss was NaN from the second step, exit 0, and 'best.pt' named the previous run's file
    left in the folder by --overwrite (or, with val chips, NaN weights saved as best.pt)."""
    from rsmamba.errors import RsmambaError

    def cfg(**optim) -> dict:
        c = _cfg(small_chips, tmp_path / "run", epochs=2)
        c["model"]["kwargs"]["width"] = 4
        c["optim"].update(optim)
        return c

    train(cfg(), progress=False)
    old = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(RsmambaError, match=r"training diverged: epoch \d(, step \d+, loss (nan|inf)| ended with NaN "
                                           r"or inf weights) \(optim.lr 1e\+30\); ") as err:
        train(cfg(lr=1e30, name="sgd"), progress=False, overwrite=True)
    # what can be done: a new run from the last complete epoch (--resume would refuse another rate)
    assert ("--init" in str(err.value) and "--set optim.lr=1e+29" in str(err.value)) or "no epoch of this run" in str(err.value)
    best, saved = tmp_path / "run" / "best.pt", yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    # one run's files, never a mix: the previous run whole until this run's first epoch is complete
    assert load_checkpoint(best)["config"]["optim"]["lr"] == saved["optim"]["lr"]
    assert (best.read_bytes() == old) == (saved["optim"]["lr"] == 0.02)


def test_resume_with_more_epochs_logs_the_rate_the_epoch_trained_at(small_chips: Path, tmp_path: Path,
                                                                    caplog) -> None:
    """QA finding 7: train.epochs raised on --resume re-stretched the cosine schedule unsaid, and metrics.csv
    logged lr 0.0 (the old schedule's end) for the first resumed epoch, whose first step ran at it and the
    others at the new schedule's rates. It now trains and logs the new schedule's rate, and says so."""
    cfg = _cfg(small_chips, tmp_path / "run", epochs=2)
    cfg["model"]["kwargs"]["width"] = 4
    train(cfg, progress=False)
    with caplog.at_level("WARNING", logger="rsmamba"):
        resumed = train(cfg, ["train.epochs=4"], resume=True, progress=False)
    assert resumed.history[2]["lr"] == pytest.approx(0.02 * 0.5 * (1 + math.cos(math.pi * 2 / 4)))  # 0.01
    assert "re-stretched" in caplog.text


def test_resume_refuses_a_config_that_trains_otherwise(stopped_run: Path, small_chips: Path) -> None:
    """A new optim.lr never ran (the optimiser's state brings back the old one) but was recorded in
    config.yaml and every checkpoint; another optimiser was a KeyError mid-step."""
    cfg = _cfg(small_chips, stopped_run, epochs=2)
    cfg["model"]["kwargs"]["width"] = 4
    before = (stopped_run / "last.pt").read_bytes()
    for change, said in ((["optim.lr=0.5"], r"optim.lr was 0.02, now 0.5; resume with the run's own settings \(-c "),
                         (["optim.name=sgd", "train.seed=7"], "optim.name was 'adamw', now 'sgd'; train.seed was 0")):
        with pytest.raises(InputError, match=said):
            train(cfg, change, resume=True, progress=False)
    assert (stopped_run / "last.pt").read_bytes() == before


def test_resume_refuses_other_chips_and_takes_the_same_chips_moved(stopped_run: Path, small_chips: Path,
                                                                   tmp_path: Path) -> None:
    """data.root at another scene's chips, or the same folder re-tiled at another size, resumed silently:
    the checkpoint's statistics and window switched to the new chips' mid-run, best.pt compared two val sets."""
    import shutil

    from rsmamba.checkpoint import save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    cfg = _cfg(small_chips, run, epochs=2)
    cfg["model"]["kwargs"]["width"] = 4
    other_scene = write_chips(tmp_path / "b", size=64, chip=32, seed=5, split=(0.75, 0.25, 0.0))
    other_size = write_chips(tmp_path / "c", size=64, chip=16, split=(0.75, 0.25, 0.0))
    before = (run / "last.pt").read_bytes()
    for chips, now in ((other_scene, "these are 4 chips of 32 px tiled from "), (other_size, "these are 16 chips of 16 px")):
        with pytest.raises(InputError, match="on the chips it trained on, and .* holds others: the run's were 4 chips "
                                             "of 32 px tiled from ") as err:
            train(cfg, [f"data.root={chips}"], resume=True, progress=False)
        assert now in str(err.value) and "point data.root at the run's chips, or start a new run from its weights" \
            in str(err.value) and "config.yaml" not in str(err.value)  # its own settings hold other chips: no advice
    assert (run / "last.pt").read_bytes() == before
    moved = tmp_path / "moved"  # the same chips elsewhere: the same data
    shutil.copytree(small_chips, moved)
    assert train(cfg, [f"data.root={moved}"], resume=True, progress=False).epochs_run == 2
    # a last.pt from before the fingerprint has nothing to compare: it resumes as it did
    old = {k: v for k, v in load_checkpoint(stopped_run / "last.pt").items()
           if k not in ("format", "created", "data_fingerprint")}
    save_checkpoint(run / "last.pt", old)
    assert train(cfg, [f"data.root={other_scene}"], resume=True, progress=False).epochs_run == 2


def test_train_test_scores_with_the_checkpoints_normalisation_on_test_only_chips(stopped_run: Path,
                                                                                  tmp_path: Path) -> None:
    """--test normalised a held-out scene's chips with their own statistics, not the checkpoint's that
    predict uses (9 mIoU points above what the model maps); a folder of test chips only was refused."""
    import json
    import shutil

    from rsmamba.train import score_checkpoint

    held_out = write_chips(tmp_path / "b", size=64, chip=32, seed=5, split=(0.0, 0.0, 1.0))
    twin = tmp_path / "twin"
    shutil.copytree(held_out, twin)
    meta = json.loads((twin / "tiling.json").read_text())
    stats = meta["stats"]["image"]
    stats["mean"] = [v + 40.0 for v in stats["mean"]]  # the same chips, other folder statistics
    stats["std"] = [v * 2.0 for v in stats["std"]]
    (twin / "tiling.json").write_text(json.dumps(meta))

    def score(root: Path, out: Path) -> dict:
        cfg = {"data": {"root": str(root), "batch_size": 2, "val_split": "test"}, "out": str(out),
               "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "tensorboard": False}
        return score_checkpoint(cfg, checkpoint=stopped_run / "last.pt", progress=False)

    a, b = score(held_out, tmp_path / "ta"), score(twin, tmp_path / "tb")
    assert a["scores"] == b["scores"] and a["samples"] == 4
    assert a["normalization"] == "the checkpoint's (as predict)"


def test_data_crop_on_chips_is_said_and_not_recorded_as_the_models_window(small_chips: Path, tmp_path: Path,
                                                                           caplog) -> None:
    """Chips are trained whole, yet data.crop 16 went into the checkpoint as the window predict runs it at."""
    cfg = _cfg(small_chips, tmp_path / "run", epochs=1)
    cfg["model"]["kwargs"]["width"] = 4
    cfg["data"]["crop"] = 16
    with caplog.at_level("WARNING", logger="rsmamba"):
        result = train(cfg, progress=False)
    assert "data.crop 16: chips are trained whole" in caplog.text
    assert load_checkpoint(result.best)["inference"] == {"window": 32, "overlap": 8}
    with pytest.raises(InputError, match="data.crop"):
        train(cfg, ["data.crop=-5"], progress=False, overwrite=True)
    # the benchmark layouts' other sampling keys are said too, and in the dry run as in the run (data.samples_per_epoch
    # 8 ran every chip, unsaid; the dry run said nothing of data.crop)
    from rsmamba.train.plan import plan_training

    caplog.clear()
    with caplog.at_level("WARNING", logger="rsmamba"):
        plan_training(cfg, ["data.samples_per_epoch=8", "data.crops_per_image=3"])
    assert "data.crop 16: chips are trained whole" in caplog.text
    assert "data.samples_per_epoch 8: an epoch of chips is every train chip once" in caplog.text
    assert "data.crops_per_image 3: chips are trained whole, once an epoch" in caplog.text


def test_resume_of_a_run_from_init_compares_the_model_it_was_given(small_chips: Path, tmp_path: Path,
                                                                   caplog) -> None:
    """model.init demo gives the run the checkpoint's model (cmtunet_tiny): the config as typed names none.
    The init line names it (QA finding 8: an explicit model.name=fcn_baseline gave way to it unsaid)."""
    cfg = {"data": {"root": str(small_chips), "batch_size": 2}, "out": str(tmp_path / "run"),
           "model": {"init": "demo"}, "train": {"epochs": 2, "stop_after_epochs": 1}, "tensorboard": False}
    with caplog.at_level("INFO", logger="rsmamba"):
        train(cfg, ["model.name=fcn_baseline"], progress=False)
    assert "init: model cmtunet_tiny; " in caplog.text
    resumed = train({**cfg, "train": {"epochs": 2}}, resume=True, progress=False)
    assert resumed.epochs_run == 2 and load_checkpoint(resumed.last)["model"] == "cmtunet_tiny"


def test_resume_of_a_fine_tune_reads_last_pt_not_the_init_file(small_chips: Path, tmp_path: Path) -> None:
    """QA finding 6: a fine-tune could not be resumed once its --init file was moved ('checkpoint not found')
    or replaced by another model ('this command line differs: model.name ...'), though last.pt holds the
    weights. A resume now leaves the init file alone; one that changes model.init is still refused."""
    import shutil

    base = _cfg(small_chips, tmp_path / "base", epochs=1)
    base["model"]["kwargs"]["width"] = 4
    train(base, progress=False)
    init = str(tmp_path / "base" / "best.pt")
    cfg = {"data": {"root": str(small_chips), "batch_size": 2}, "out": str(tmp_path / "ft"), "optim": {"lr": 0.02},
           "model": {"init": init}, "train": {"epochs": 3, "stop_after_epochs": 1}, "tensorboard": False}
    train(cfg, progress=False)
    shutil.move(tmp_path / "base", tmp_path / "moved")
    assert train(cfg, resume=True, progress=False).epochs_run == 2
    (tmp_path / "base").mkdir()  # the path now holds another model: the run is still the one last.pt holds
    shutil.copy(Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_model.pt", init)
    with pytest.raises(InputError, match="model.init was .*, now None"):
        train({**cfg, "model": {}}, resume=True, progress=False)
    resumed = train(cfg, resume=True, progress=False)
    assert resumed.epochs_run == 3 and load_checkpoint(resumed.last)["model_kwargs"]["width"] == 4


def test_overwrite_keeps_the_previous_run_whole_until_an_epoch_and_resume_rewrites_the_logs(
        small_chips: Path, tmp_path: Path) -> None:
    """train --overwrite deleted best.pt/last.pt/metrics before it even read the data: a typo lost a trained
    model. An epoch logged but not saved (killed between) was logged twice after --resume."""
    import json

    run = tmp_path / "run"

    def cfg(**train_kw) -> dict:
        c = _cfg(small_chips, run, epochs=3, **train_kw)
        c["model"]["kwargs"]["width"] = 4
        return c

    train(cfg(stop_after_epochs=2), progress=False)
    (run / "test_val.json").write_text(json.dumps({"checkpoint": str(run / "best.pt"), "scores": {}}))  # train --test's
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert set(before) >= {"best.pt", "last.pt", "metrics.csv", "metrics.jsonl", "config.yaml"}
    with pytest.raises(InputError):
        train({**cfg(), "model": {"name": "fcn_basline"}}, progress=False, overwrite=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    # as if killed after logging epoch 3 and before saving it: the logs hold a row last.pt does not cover
    with open(run / "metrics.csv", "a") as fh:
        fh.write("3,9.9,0.01\n")
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": 3, "train_loss": 9.9}) + "\n")
    train(cfg(), resume=True, progress=False)
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]] == ["1", "2", "3"]
    # a resume is the same run: its score stays while best.pt does (tests/train/test_train_out_folder.py)
    assert (run / "test_val.json").exists() == ((run / "best.pt").read_bytes() == before["best.pt"])
    train(cfg(stop_after_epochs=1), progress=False, overwrite=True)
    assert not (run / "test_val.json").exists()  # a new run: the old best.pt's scores go with it


def test_resume_with_the_runs_own_config_yaml(stopped_run: Path, small_chips: Path, tmp_path: Path) -> None:
    """-c OUT/config.yaml --resume was refused ('would write config.yaml over the config of this run'),
    though it is the run's own settings, the one config a resume is sure to accept."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["out"] = str(run)
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    resumed = train(run / "config.yaml", resume=True, progress=False)
    assert resumed.epochs_run == 2


def test_train_hands_the_callers_random_generators_back(small_chips: Path, tmp_path: Path) -> None:
    """A run seeds random, numpy and torch for itself; the calling script's draws afterwards were seed 0's."""
    import random

    import numpy as np

    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)
    deterministic = torch.backends.cudnn.deterministic
    train(_cfg(small_chips, tmp_path / "run", epochs=1), progress=False)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
    assert torch.backends.cudnn.deterministic == deterministic


def test_score_checkpoint_hands_the_callers_torch_generator_back(stopped_run: Path, small_chips: Path,
                                                                  tmp_path: Path) -> None:
    """QA finding 10: train --test from Python drew the model's initial weights from the caller's global
    generator (its next torch.rand differed), against the README's promise that train keeps."""
    from rsmamba.train import score_checkpoint

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    cfg = {"data": {"root": str(small_chips), "batch_size": 2}, "out": str(tmp_path / "t"),
           "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "tensorboard": False}
    score_checkpoint(cfg, checkpoint=stopped_run / "last.pt", progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_each_epoch_leaves_one_log_line(small_chips: Path, tmp_path: Path, caplog) -> None:
    """A piped, nohup or batch-system run said nothing until its end; a terminal's bar is erased each epoch."""
    import logging

    with caplog.at_level(logging.INFO, logger="rsmamba"):
        train(_cfg(small_chips, tmp_path / "run", epochs=2), progress=False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "train_loss" in lines[0] and "val_miou" in lines[0] and lines[0].endswith("best so far (best.pt)")


def test_a_run_file_that_cannot_be_replaced_is_refused_before_an_epoch(stopped_run: Path, small_chips: Path,
                                                                       tmp_path: Path, monkeypatch) -> None:
    """An immutable last.pt (chattr +i) was found when the epoch's checkpoint was published: an epoch lost."""
    import shutil

    from rsmamba.train import trainer

    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    cfg = _cfg(small_chips, run, epochs=2)
    cfg["model"]["kwargs"]["width"] = 4
    monkeypatch.setattr(trainer, "replace_refused",
                        lambda path: "it is immutable; chattr -i removes the flag" if path.name == "last.pt" else None)
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: pytest.fail("an epoch ran"))
    with pytest.raises(InputError, match=r"out .*run: last.pt: cannot replace it \(it is immutable; chattr -i"):
        train(cfg, resume=True, progress=False)


def test_the_summary_says_clutter_is_left_out_only_of_the_means() -> None:
    """The fmtunet recipes choose best.pt by OA, which counts every class: '(without clutter)' after it was untrue."""
    from rsmamba.train.trainer import TrainResult

    def line(metric: str) -> str:
        return TrainResult(Path("r"), Path("r/best.pt"), Path("r/last.pt"), 1, 0.5, [], f"val_{metric}",
                           ["clutter"]).describe()

    assert "(without clutter)" in line("miou") and "(without clutter)" in line("mf1")
    assert "without" not in line("oa") and "without" not in line("kappa")
    # a change model's miou is SCanNet's change/no-change mean, its land-cover means are sem_
    change = TrainResult(Path("r"), Path("r/best.pt"), Path("r/last.pt"), 1, 0.5, [], "val_miou", ["playground"],
                         ("val_sem_miou", "val_sem_mf1"))
    assert "without" not in change.describe()
    change.selected_by = "val_sem_miou"
    assert "(without playground)" in change.describe()


def test_the_summary_names_best_pt_only_where_the_run_wrote_one(tmp_path: Path) -> None:
    """A --resume-from another folder whose epochs never beat the run it came from writes no best.pt: the summary
    said '-> FOLDER/best.pt' all the same."""
    from rsmamba.train.trainer import TrainResult

    result = TrainResult(tmp_path, tmp_path / "best.pt", tmp_path / "last.pt", 4, 0.57, [], "val_miou")
    assert f"-> {tmp_path / 'best.pt'}" not in result.describe()
    assert "no epoch beat it" in result.describe()
    (tmp_path / "best.pt").write_bytes(b"x")
    assert f"best val miou 0.5700 -> {tmp_path / 'best.pt'}; last -> {tmp_path / 'last.pt'}" == \
        result.describe().split("; ", 1)[1]


def test_an_epoch_without_the_metric_never_replaces_the_best_scored_one(small_chips: Path, tmp_path: Path,
                                                                        monkeypatch) -> None:
    """A change model predicting no change has no fscd (null, 923889c): minus its training loss was compared with
    the fscd of earlier epochs, and the summary said 'best train loss -0.0059' of what was best.pt's fscd."""
    import rsmamba.train.trainer as trainer

    scores = iter([{"miou": 0.3}, {"oa": 0.9}, {"miou": 0.2}, {"oa": 0.95}])  # epochs 2 and 4 score no mIoU
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    result = train(_cfg(small_chips, tmp_path / "run", epochs=4), progress=False)
    assert result.selected_by == "val_miou" and result.best_metric == 0.3
    assert result.describe().startswith("4 epochs; best val miou 0.3000 at epoch 1 ->")
    assert load_checkpoint(result.best)["metrics"]["epoch"] == 1


def test_the_summary_names_the_epoch_best_pt_holds_when_later_epochs_tie_it(small_chips: Path, tmp_path: Path,
                                                                             monkeypatch) -> None:
    """Later epochs that only equal the best score do not replace best.pt (a change model's change F1 0 at every
    epoch): the summary said 'at epoch 3' of best.pt holding epoch 1 (QA)."""
    import rsmamba.train.trainer as trainer

    scores = iter([{"miou": 0.3}, {"miou": 0.3}, {"miou": 0.3}])
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    result = train(_cfg(small_chips, tmp_path / "run", epochs=3), progress=False)
    assert load_checkpoint(result.best)["metrics"]["epoch"] == 1
    assert result.best_epoch == 1 and " at epoch 1 -> " in result.describe()


def test_the_dry_run_reads_the_process_before_its_probe(small_chips: Path, tmp_path: Path, monkeypatch) -> None:
    """The probe's freed activations stay resident: read after it, the process counted them a second time
    ('at least 18.49 GiB' for a run that peaked at 11.13 GiB)."""
    import rsmamba.train.plan as plan

    order: list[str] = []
    monkeypatch.setattr(plan, "process_rss_bytes", lambda: order.append("process") or 100 << 20)
    probe = plan._activation_bytes
    monkeypatch.setattr(plan, "_activation_bytes", lambda *a: order.append("probe") or probe(*a))
    sized = plan.plan_training(_cfg(small_chips, tmp_path / "run"))
    assert order == ["process", "probe"] and sized.process_bytes == 100 << 20
    assert sized.memory_bytes == (100 << 20) + sized.parameter_bytes - 4 * sized.parameters + sized.activation_bytes


def test_the_dry_run_counts_a_fixed_size_model_by_its_windows(tmp_path: Path, monkeypatch) -> None:
    """A fixed-size model (MambaSeg) runs the probe as one whole padded window: scaled by pixels as well, the
    MambaSeg Potsdam recipe was estimated at 'at least 3201.21 GiB', 64 times its 50 GiB of windows."""
    import rsmamba.train.plan as plan

    chips = write_chips(tmp_path, size=64, chip=64, dsm=True, split=(1.0, 0.0, 0.0))
    monkeypatch.setattr(plan, "_activation_bytes", lambda *a: 1000)  # bytes one probe saves, per sample
    cfg = {"data": {"root": str(chips), "batch_size": 1}, "out": str(tmp_path / "run"), "tensorboard": False,
           "model": {"name": "mambaseg_tiny", "kwargs": {"img_size": 32}}}
    assert plan.plan_training(cfg, probe=16).activation_bytes == 4 * 1000  # a 64 px chip: 2 x 2 windows of 32
    cfg["model"] = {"name": "fcn_baseline", "kwargs": {"width": 4}}
    assert plan.plan_training(cfg, probe=16).activation_bytes == 16 * 1000  # 64 x 64 px for 16 x 16


def test_a_segmentation_model_on_change_chips_dry_runs_as_it_trains(tmp_path: Path) -> None:
    """Training reads date 1 of change chips into a segmentation model; the dry run (and the probe of model.kwargs)
    gave it both dates: 'FCNBaseline.forward() takes 2 positional arguments but 3 were given', a traceback."""
    from rsmamba.synth import write_scene
    from rsmamba.tile import tile_scene
    from rsmamba.train.plan import plan_training

    scene = write_scene(tmp_path / "scene", size=64, seed=3, gsd=0.5)
    chips = tmp_path / "chips"
    tile_scene(scene["ortho_t1"], chips, labels=scene["labels_t1"], t2=scene["ortho_t2"],
               labels_t2=scene["labels_t2"], change=scene["change"], size=32, block=32, split=(1.0, 0.0, 0.0))
    cfg = {"data": {"root": str(chips), "batch_size": 2}, "out": str(tmp_path / "run"), "tensorboard": False,
           "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "train": {"epochs": 1}}
    assert plan_training(cfg).activation_bytes > 0
    assert train(cfg, progress=False).best.exists()  # the kwargs' probe forward too


def test_no_missing_class_warning_for_change_pairs_whose_histogram_is_date_1s(tmp_path: Path, caplog) -> None:
    """The manifest's class histogram counts date 1 only: 'the val chips hold no car' was said of a pair whose
    date 2 held 23 car pixels, scored."""
    from rsmamba.synth import write_scene
    from rsmamba.tile import tile_scene
    from rsmamba.train import load_config
    from rsmamba.train.trainer import prepare

    scene = write_scene(tmp_path / "scene", size=64, seed=3, gsd=0.5)
    chips = tmp_path / "chips"
    tile_scene(scene["ortho_t1"], chips, labels=scene["labels_t1"], t2=scene["ortho_t2"],
               labels_t2=scene["labels_t2"], change=scene["change"], size=32, block=32, split=(0.75, 0.25, 0.0))
    _val_chips_hold_class_0_only(chips)  # date 1's, as the manifest counts it; what date 2 holds it does not say
    base = {"data": {"root": str(chips), "batch_size": 2}, "out": str(tmp_path / "run"), "tensorboard": False,
            "model": {"name": "siam_diff_baseline", "kwargs": {"width": 4}}}
    with caplog.at_level("WARNING"):
        prepare(load_config(None, [], base=base))
    assert "the val chips hold no" not in caplog.text


def test_train_test_refuses_chips_on_another_scale_as_predict_refuses_the_image(stopped_run: Path,
                                                                                  tmp_path: Path) -> None:
    """predict refused a 12-bit ortho with the shipped model, yet `train --test` scored its chips (mIoU 0.06 for
    0.61 on the 8-bit chips, exit 0): the chips' value scale (tiling.json) is compared with the checkpoint's."""
    import json

    from rsmamba.train import score_checkpoint

    chips = write_chips(tmp_path / "b", size=64, chip=32, seed=5, split=(0.0, 0.0, 1.0))
    cfg = {"data": {"root": str(chips), "batch_size": 2, "val_split": "test"}, "out": str(tmp_path / "t"),
           "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "tensorboard": False}
    assert score_checkpoint(cfg, checkpoint=stopped_run / "last.pt", progress=False)["samples"] == 4
    meta = json.loads((chips / "tiling.json").read_text())
    stats = meta["stats"]["image"]
    for key in ("mean", "std", "minimum", "maximum"):  # the same scene delivered as 12-bit data in UInt16
        stats[key] = [v * 16 for v in stats[key]]
    meta["dtype"] = "uint16"
    (chips / "tiling.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"chips .*b/chips \(uint16\): values on another scale than model .*last.pt was "
                                         r"trained on \(band 1 mean"):
        score_checkpoint(cfg, checkpoint=stopped_run / "last.pt", progress=False, overwrite=True)


def test_the_window_recorded_is_the_chips_side_not_tile_size(tmp_path: Path) -> None:
    """A scene narrower than ``tile --size`` gives narrower chips: the checkpoint's window is what the model saw
    (tiling.json's --size 64 was recorded as the window of a model trained on 40 px chips)."""
    from rsmamba.tile import tile_scene
    from tests.helpers.scenes import write_scene

    paths = write_scene(tmp_path / "scene", 40)
    tile_scene(paths["image"], tmp_path / "chips", labels=paths["labels"], size=64, split=(1.0, 0.0, 0.0))
    assert yaml.safe_load((tmp_path / "chips" / "tiling.json").read_text())["size"] == 64
    cfg = _cfg(tmp_path / "chips", tmp_path / "run", epochs=1)
    cfg["data"]["batch_size"] = 1
    result = train(cfg, progress=False)
    assert load_checkpoint(result.best)["inference"] == {"window": 40, "overlap": 10}


@pytest.mark.parametrize("listed", [False, True])
def test_a_val_split_no_chip_folder_can_hold_is_refused(small_chips: Path, tmp_path: Path, listed: bool) -> None:
    """data.val_split=vall trained without validation; the summary blamed 'no val chip with a labelled pixel'."""
    from rsmamba.train.trainer import prepare

    root = [str(small_chips)] if listed else str(small_chips)
    base = {"data": {"root": root, "batch_size": 2}, "out": str(tmp_path / "run"), "tensorboard": False}
    with pytest.raises(InputError, match=r"data.val_split 'vall': not a split 'rsmamba tile' writes \(train, val, test\)"):
        prepare(load_config(None, ["data.val_split=vall", "data.use_dsm=false"], base=base))
    assert prepare(load_config(None, ["data.val_split=test", "data.use_dsm=false"], base=base)).val_ds is None  # tiled so


def test_a_class_no_training_chip_holds_is_said(small_chips: Path, tmp_path: Path, caplog) -> None:
    """A class of the table that no train chip holds (a 7-class table's 'water' in a town) was unsaid: the model
    never learns it."""
    import json as _json
    import shutil

    from rsmamba.train.trainer import prepare

    chips = tmp_path / "chips"
    shutil.copytree(small_chips, chips)
    tiling = _json.loads((chips / "tiling.json").read_text())
    tiling["classes"].append({"id": len(tiling["classes"]), "name": "water", "color": [0, 0, 200]})
    (chips / "tiling.json").write_text(_json.dumps(tiling))
    base = {"data": {"root": str(chips), "batch_size": 2}, "out": str(tmp_path / "run"), "tensorboard": False}
    with caplog.at_level("WARNING", logger="rsmamba"):
        prepare(load_config(None, ["data.use_dsm=false"], base=base))
    assert "the train chips hold no water: the model never learns it" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rsmamba"):  # excluded from training's scores, or all held: not said
        prepare(load_config(None, ["data.use_dsm=false", f"train.exclude_classes=[{len(tiling['classes']) - 1}]"],
                            base=base))
        prepare(load_config(None, ["data.use_dsm=false"], base={**base, "data": {**base["data"], "root": str(small_chips)}}))
    assert "the model never learns" not in caplog.text


def test_change_chips_with_both_dates_labels_and_no_change_masks_train_the_change_head(tmp_path: Path,
                                                                                      caplog) -> None:
    """Chips tiled with --labels and --labels-t2 but no --change-labels trained no change head (its loss was
    skipped), exit 0 and unsaid (QA): change is taken where the dates' labels differ, and said; chips with date
    1's labels alone are said to leave the change head untrained."""
    import numpy as np

    from rsmamba.datasets import ChipDataset
    from rsmamba.synth import write_scene
    from rsmamba.tile import tile_scene
    from rsmamba.train import load_config
    from rsmamba.train.trainer import prepare

    scene = write_scene(tmp_path / "scene", size=64, seed=3, gsd=0.5)
    base = {"data": {"batch_size": 2}, "out": str(tmp_path / "run"), "tensorboard": False,
            "model": {"name": "siam_diff_baseline", "kwargs": {"width": 4}}}
    said = {}
    for name, extra in (("both", {"labels_t2": scene["labels_t2"]}), ("masks", {"labels_t2": scene["labels_t2"],
                        "change": scene["change"]}), ("t1", {})):
        chips = tmp_path / name
        tile_scene(scene["ortho_t1"], chips, labels=scene["labels_t1"], t2=scene["ortho_t2"], size=32, block=32,
                   split=(0.75, 0.25, 0.0), **extra)
        caplog.clear()
        with caplog.at_level("WARNING"):
            prepare(load_config(None, [], base={**base, "data": {**base["data"], "root": str(chips)}}))
        said[name] = caplog.text
    assert "change is taken where the dates' labels differ" in said["both"], said["both"]
    assert "change masks" not in said["masks"]
    assert "the change head learns nothing" in said["t1"], said["t1"]
    import rasterio

    derived = ChipDataset(tmp_path / "both", "train")
    changed = 0
    for i, row in enumerate(derived.rows):
        with rasterio.open(derived.root / row["labels"]) as a, rasterio.open(derived.root / row["labels_t2"]) as b:
            l1, l2 = a.read(1), b.read(1)
        want = np.where((l1 == 255) | (l2 == 255), 255, (l1 != l2).astype(np.uint8))
        np.testing.assert_array_equal(derived[i]["change"].numpy(), want)
        changed += int((want == 1).sum())
    assert changed > 0


def test_benchmark_layout_keys_set_for_chips_are_said_not_ignored() -> None:
    """data.eroded true on a chip folder scored its validation on the full labels, unsaid; so were the other keys
    only a benchmark layout reads (QA). Each is said, in the run and the dry run (both take these lines)."""
    from rsmamba.train.config import DEFAULTS
    from rsmamba.train.trainer import unread_by_chips

    d = {**DEFAULTS["data"], "eroded": True, "val_tiles": [30], "crop_stride": 16, "city": "potsdam",
         "variant": "IRRG", "dsm_source": "ndsm", "domains": ["Urban"]}
    said = unread_by_chips(d)
    for key in ("eroded true", "val_tiles [30]", "crop_stride 16", 'city "potsdam"', 'variant "IRRG"',
                'dsm_source "ndsm"', 'domains ["Urban"]'):
        assert any(line.startswith(f"data.{key}: read by data.layout") for line in said), key
    assert unread_by_chips(dict(DEFAULTS["data"])) == []
    assert unread_by_chips({**d, "layout": "isprs"}) == []
