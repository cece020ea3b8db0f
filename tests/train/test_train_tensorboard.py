"""TensorBoard follows the run's published epochs: no old run's events beside a new one, no point twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsmamba.train import train
from tests.helpers.scenes import write_chips


class FakeWriter:
    """Records what a SummaryWriter is given; writes one event file, as TensorBoard's does."""

    made: list["FakeWriter"] = []

    def __init__(self, logdir: Path, purge_step: int | None) -> None:
        self.logdir, self.purge_step, self.points = logdir, purge_step, []
        logdir.mkdir(parents=True, exist_ok=True)
        self.file = logdir / f"events.out.tfevents.{len(FakeWriter.made)}"
        self.file.write_text("")
        FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.points.append((tag, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def writers(monkeypatch) -> list[FakeWriter]:
    FakeWriter.made = []
    monkeypatch.setattr("rsmamba.train.log.summary_writer", FakeWriter)
    return FakeWriter.made


def _cfg(chips: Path, out: Path, **train_kw) -> dict:
    return {"data": {"root": str(chips), "batch_size": 2}, "out": str(out), "optim": {"lr": 0.02},
            "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "train": {"epochs": 3, **train_kw},
            "tensorboard": True}


def test_tensorboard_gets_published_epochs_purges_on_resume_and_drops_an_overwritten_run(writers, tmp_path) -> None:
    chips = write_chips(tmp_path / "chips", size=64, chip=32, split=(0.75, 0.25, 0.0))
    run = tmp_path / "run"
    train(_cfg(chips, run, stop_after_epochs=1), progress=False)
    train(_cfg(chips, run), resume=True, progress=False)
    first, resumed = writers
    assert first.purge_step is None and {s for _, s in first.points} == {1}
    # a killed run may have logged past its last published epoch: the resume purges from its first one
    assert resumed.purge_step == 2 and {s for _, s in resumed.points} == {2, 3}
    assert sorted(t for t, s in resumed.points if s == 2) == sorted(t for t, s in first.points if s == 1)

    train(_cfg(chips, run, epochs=1), overwrite=True, progress=False)
    new = writers[-1]
    assert new.purge_step is None and {s for _, s in new.points} == {1}
    assert sorted(p.name for p in (run / "tensorboard").iterdir()) == [new.file.name]  # the old run's events went
