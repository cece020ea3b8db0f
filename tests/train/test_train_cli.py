"""``rsmamba train`` / ``evaluate`` through the CLI: options reach the library, errors are one line."""

from __future__ import annotations

from pathlib import Path

import yaml

from rsmamba.checkpoint import load_checkpoint
from rsmamba.cli import main
from tests.helpers.scenes import write_chips


def test_train_cli_with_overrides_then_resume(tmp_path: Path, capsys) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, split=(0.75, 0.25, 0.0))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"root": str(chips), "batch_size": 2}, "out": str(tmp_path / "run"),
                                   "model": {"kwargs": {"width": 4}}, "tensorboard": False,
                                   "train": {"exclude_classes": [5]}}))
    assert main(["train", "--config", str(cfg), "--set", "train.epochs=1", "--set", "optim.lr=0.005"]) == 0
    out = capsys.readouterr().out
    assert "1 epoch; best val miou " in out and "(without clutter)" in out  # as the ISPRS recipes leave it out
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["config"]["optim"]["lr"] == 0.005
    # the run's own settings, or none: optim.lr 0.001 (the default) would be recorded, the optimiser's 0.005 run
    assert main(["train", "--config", str(cfg), "--set", "train.epochs=2", "--resume"]) == 2
    assert "optim.lr was 0.005, now 0.001" in capsys.readouterr().err
    assert main(["train", "--config", str(cfg), "--set", "train.epochs=2", "--set", "optim.lr=0.005", "--resume"]) == 0
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train_state"]["epoch"] == 2


def test_train_cli_reports_config_problems(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("data: {root: null}\noptim: {lr: 0.1}\n")
    assert main(["train", "--config", str(cfg), "--set", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rsmamba: error:") and "optim.lrr" in err
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_without_val_chips_the_summary_says_best_follows_the_training_loss(tmp_path: Path, capsys) -> None:
    chips = write_chips(tmp_path, size=64, chip=32, split=(1.0, 0.0, 0.0))
    assert main(["train", "--set", f"data.root={chips}", "--set", "data.batch_size=2", "--set", "train.epochs=2",
                 "--set", "model.kwargs.width=4", "--set", f"out={tmp_path / 'run'}", "--set", "tensorboard=false"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 epochs; best train loss ") and "(no val score: no val chip with a labelled pixel: best.pt follows the training loss)" in out
    best = load_checkpoint(tmp_path / "run" / "best.pt")["metrics"]
    assert best["selected_by"] == "train_loss" and f"{best['train_loss']:.4f}" in out


def test_train_o_takes_any_folder_name(tmp_path, monkeypatch) -> None:
    """-o 2024 was YAML's number (a TypeError traceback), -o 'exp #2' trained into ./exp."""
    from rsmamba.cli import main
    from rsmamba.train.config import load_config

    seen = []
    monkeypatch.setattr("rsmamba.train.plan.plan_training", lambda config, sets: seen.append(
        load_config(config, sets)["out"]) or type("P", (), {"describe": lambda self: "plan"})())
    monkeypatch.chdir(tmp_path)
    for name in ("2024", "yes", "exp #2", "0x10"):
        assert main(["train", "--set", "data.root=x", "-o", name, "--dry-run"]) == 0
    assert seen == ["2024", "yes", "exp #2", "0x10"]
    assert main(["train", "--set", "data.root=x", "-o", "a", "--set", "out=b", "--dry-run"]) == 2


def test_an_interrupted_train_says_resume_only_once_it_saved_a_checkpoint(tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    """Ctrl-C before the first epoch was saved said '--resume continues it', and --resume then failed
    ('last.pt: checkpoint not found'), or, after --overwrite, continued the older run in the folder."""
    import rsmamba.train.trainer as trainer

    chips = write_chips(tmp_path, size=64, chip=32, split=(0.75, 0.25, 0.0))
    run = tmp_path / "run"
    args = ["-q", "train", "--set", f"data.root={chips}", "--set", "data.batch_size=2", "--set", "model.kwargs.width=4",
            "--set", f"out={run}", "--set", "tensorboard=false", "--set", "train.epochs=2"]
    real, calls = trainer.validate, []

    def ctrl_c_at(n: int):
        def validate(*a, **k):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*a, **k)
        return validate

    nothing = "rsmamba: interrupted; no epoch had finished, nothing was saved: run the same command again (without --resume)\n"
    monkeypatch.setattr(trainer, "validate", ctrl_c_at(1))  # in epoch 1, before its checkpoint
    assert main(args) == 130
    assert capsys.readouterr().err == nothing and not (run / "last.pt").exists()
    # --resume all the same: said as no run to continue ('run/last.pt: checkpoint not found'; QA)
    assert main([*args, "--resume"]) == 2
    assert capsys.readouterr().err == (f"rsmamba: error: --resume: {run} holds no run to continue (no last.pt: a run "
                                       "saves it when its first epoch ends); run the command without --resume\n")
    calls.clear()
    monkeypatch.setattr(trainer, "validate", ctrl_c_at(2))  # in epoch 2: epoch 1 is saved
    assert main(args) == 130
    assert capsys.readouterr().err == "rsmamba: interrupted; the same command with --resume continues it\n"
    calls.clear()
    monkeypatch.setattr(trainer, "validate", ctrl_c_at(1))  # --overwrite over that run: the old last.pt is not this run's
    assert main([*args, "--overwrite"]) == 130
    assert capsys.readouterr().err == nothing
    calls.clear()
    assert main([*args, "--resume"]) == 130  # a resumed run has its checkpoint, saved this time or not
    assert capsys.readouterr().err == "rsmamba: interrupted; the same command with --resume continues it\n"


def test_resume_with_resume_from_or_overwrite_is_one_line(tmp_path: Path, capsys) -> None:
    """--resume with --resume-from ran the latter, and --resume with --overwrite continued the run: neither said."""
    base = ["train", "--set", f"data.root={tmp_path / 'chips'}", "-o", str(tmp_path / "run")]
    for extra in (["--resume", "--resume-from", str(tmp_path / "x.pt")], ["--resume", "--overwrite"]):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ": give one" in err, err
    assert not (tmp_path / "run").exists()
