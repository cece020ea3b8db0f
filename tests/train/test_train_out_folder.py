"""The out folder of a training run: what a run may replace there, and the train --test scores it leaves.

A run replaces best.pt, last.pt, config.yaml and the metrics of its folder: a folder holding any of them is
another run's, refused without --overwrite unless --resume continues it. A train --test score of the folder's
best.pt or last.pt goes when an epoch replaces that checkpoint; every other file stays.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rsmamba.train.trainer as trainer
from rsmamba.errors import InputError
from rsmamba.train import score_checkpoint, train
from tests.helpers.scenes import write_chips


@pytest.fixture(scope="module")
def chips(tmp_path_factory) -> Path:
    return write_chips(tmp_path_factory.mktemp("chips"), size=64, chip=32, split=(0.75, 0.25, 0.0))


def _cfg(chips: Path, out: Path, epochs: int = 1, **train_kw) -> dict:
    return {"data": {"root": str(chips), "batch_size": 2}, "out": str(out), "tensorboard": False,
            "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "train": {"epochs": epochs, **train_kw}}


def _scores(monkeypatch, miou: float) -> None:
    """Every validation scores ``miou``: whether an epoch replaces best.pt is then the test's to say."""
    monkeypatch.setattr(trainer, "validate", lambda *args, **kwargs: {"miou": miou})


def _score(folder: Path, checkpoint: str | Path, split: str) -> Path:
    """A result as train --test writes it (test_<split>.json), of ``checkpoint`` as given on the command line."""
    path = folder / f"test_{split}.json"
    path.write_text(json.dumps({"checkpoint": str(checkpoint), "model": "fcn_baseline", "split": split,
                                "scores": {"miou": 0.5}}, indent=1))
    return path


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_resume_from_another_folders_checkpoint_does_not_replace_the_run_in_the_out_folder(
        chips: Path, tmp_path: Path, monkeypatch, caplog) -> None:
    """--resume-from a/last.pt -o b replaced the run in b without --overwrite, and left b's train --test score
    beside a's best.pt (QA finding 1)."""
    a, b = tmp_path / "a", tmp_path / "b"
    _scores(monkeypatch, 0.5)
    train(_cfg(chips, a, epochs=3, stop_after_epochs=1), progress=False)
    train(_cfg(chips, b), progress=False)
    score_checkpoint(_cfg(chips, b), checkpoint=b / "best.pt", progress=False)  # the form train --test writes
    assert json.loads((b / "test_val.json").read_text())["checkpoint"] == str(b / "best.pt")
    before = _files(b)
    with pytest.raises(InputError, match=r"holds another training run \(best.pt, config.yaml, last.pt, metrics.csv, "
                                         r"metrics.jsonl, test_val.json\): --resume-from .* would replace it"):
        train(_cfg(chips, b, epochs=3), resume=a / "last.pt", progress=False)
    assert _files(b) == before
    # into a folder of its own it goes on, as before
    assert train(_cfg(chips, tmp_path / "c", epochs=2), resume=a / "last.pt", progress=False).epochs_run == 2
    # with nothing left to train it is refused: the summary named d/last.pt, and no d was written
    with pytest.raises(InputError, match=r"--resume-from \S*last.pt: that run has 1 epoch already and train.epochs "
                                         r"is 1: nothing to train into \S*d \(raise train.epochs"):
        train(_cfg(chips, tmp_path / "d", epochs=1), resume=a / "last.pt", progress=False)
    assert not (tmp_path / "d").exists()
    # --overwrite: b is a's run now, and nothing of b's stays, also where no epoch beats a's best (b's best.pt)
    _scores(monkeypatch, 0.1)
    with caplog.at_level("WARNING", logger="rsmamba"):
        train(_cfg(chips, b, epochs=2), resume=a / "last.pt", progress=False, overwrite=True)
    assert sorted(_files(b)) == ["config.yaml", "last.pt", "metrics.csv", "metrics.jsonl"]
    assert "removed" in caplog.text and "test_val.json" in caplog.text


@pytest.mark.parametrize("kept", ["best.pt", "config.yaml", "metrics.csv"])
def test_a_folder_holding_a_runs_files_without_last_pt_is_refused(chips: Path, tmp_path: Path, kept: str) -> None:
    """Only last.pt was checked: a folder whose last.pt was deleted (best.pt kept, 4x smaller) was trained over,
    its best.pt lost (QA finding 2)."""
    run = tmp_path / "run"
    train(_cfg(chips, run), progress=False)
    for path in run.iterdir():
        if path.name != kept:
            path.unlink()
    before = _files(run)
    with pytest.raises(InputError, match=rf"run holds a previous training run \({kept}\): --overwrite to start over"):
        train(_cfg(chips, run), progress=False)
    assert _files(run) == before
    train(_cfg(chips, run), progress=False, overwrite=True)
    assert {"best.pt", "last.pt"} <= set(_files(run))


def test_an_epoch_removes_the_scores_of_the_checkpoints_it_replaces(chips: Path, tmp_path: Path, monkeypatch,
                                                                    caplog) -> None:
    """After --resume replaced best.pt, its train --test score still said best.pt's (QA finding 3)."""
    run = tmp_path / "run"
    _scores(monkeypatch, 0.5)
    train(_cfg(chips, run, epochs=3, stop_after_epochs=1), progress=False)
    of_best, of_last = _score(run, run / "best.pt", "val"), _score(run, run / "last.pt", "test")
    _scores(monkeypatch, 0.1)  # epoch 2 replaces last.pt, not best.pt
    with caplog.at_level("WARNING", logger="rsmamba"):
        train(_cfg(chips, run, epochs=3, stop_after_epochs=1), resume=True, progress=False)
    assert of_best.exists() and not of_last.exists()
    assert f"removed {of_last}: it scored the last.pt this run replaced" in caplog.text
    _scores(monkeypatch, 0.9)  # epoch 3 replaces best.pt
    train(_cfg(chips, run, epochs=3), resume=True, progress=False)
    assert not of_best.exists()


def test_a_new_run_removes_only_the_scores_of_its_folders_checkpoints(chips: Path, tmp_path: Path,
                                                                     monkeypatch) -> None:
    """A new run deleted every test_*.json of its folder: a user's test_plan.json, another model's score
    (QA finding 5)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "test_plan.json").write_text('{"my": "notes"}')
    other = _score(run, Path(trainer.__file__).parent.parent / "data" / "demo_model.pt", "val")
    train(_cfg(chips, run), progress=False)  # none of them is a run's: no --overwrite needed
    assert (run / "test_plan.json").exists() and other.exists()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a relative name given where the folder was run/
    own = _score(run, "run/best.pt", "test")
    train(_cfg(chips, run), progress=False, overwrite=True)
    assert not own.exists() and (run / "test_plan.json").exists() and other.exists()
    lone = tmp_path / "lone"
    lone.mkdir()
    _score(lone, lone / "best.pt", "val")  # a score of the folder's best.pt, deleted: the new one would not be it
    with pytest.raises(InputError, match=r"lone holds a previous training run \(test_val.json\)"):
        train(_cfg(chips, lone), progress=False)


def test_no_file_the_run_reads_is_one_it_writes(chips: Path, tmp_path: Path) -> None:
    """Only the config (as config.yaml) and model.init (as best.pt, last.pt) were checked: a model.pretrained
    best.pt of the folder's last run was read, then replaced by the first epoch (--overwrite); a JSON config named
    test_val.json was replaced by train --test's scores. Refused even with --overwrite, as every input is."""
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    best = run / "best.pt"
    shutil.copy(trainer.checkpoint_path("demo"), best)
    before = best.read_bytes()
    cfg = _cfg(chips, run)
    with pytest.raises(InputError, match=r"would write over model.pretrained .*best.pt \(the run's best.pt\)"):
        train({**cfg, "model": {**cfg["model"], "pretrained": str(best)}}, progress=False, overwrite=True)
    with pytest.raises(InputError, match=r"would write over model.pretrained.backbone .*last.pt"):
        train({**cfg, "model": {**cfg["model"], "pretrained": {"backbone": str(run / "last.pt")}}},
              progress=False, overwrite=True)
    assert best.read_bytes() == before
    config = run / "test_val.json"  # (JSON is YAML)
    config.write_text(json.dumps({**cfg, "data": {**cfg["data"], "val_split": "val"}}))
    text = config.read_text()
    with pytest.raises(InputError, match=r"train --test output .*test_val.json: is the input .*test_val.json"):
        score_checkpoint(config, checkpoint="demo", progress=False, overwrite=True)
    assert config.read_text() == text
