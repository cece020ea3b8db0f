"""rsmamba change --resume: an interrupted run goes on to the file of an uninterrupted one, and says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn as nn

from rsmamba.change import detect_change
from rsmamba.engine.model import LoadedModel
from rsmamba.atomic import resume_sidecar_path
from rsmamba.errors import InputError
from tests.helpers.rasters import random_image, write_raster


class Diff(nn.Module):
    """Change where the epochs differ; counts its calls and raises KeyboardInterrupt on call ``after``."""

    def __init__(self, after: int = 0) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, t1, t2):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        d = (t1 - t2).abs().mean(1, keepdim=True)
        return {"change": torch.cat([1.0 - d, d - 1.0], 1) * 4}


def _epochs(tmp_path: Path) -> tuple[Path, Path]:
    t1 = random_image(600, 90, seed=1)
    t2 = t1.copy()
    t2[:, 200:420, 20:70] = random_image(220, 50, seed=2)  # a changed block across the interruption
    return write_raster(tmp_path / "t1.tif", t1), write_raster(tmp_path / "t2.tif", t2)


def _run(t1: Path, t2: Path, out: Path, net: nn.Module, **kw):
    return detect_change(t1, t2, out, model=LoadedModel(net, inputs="t1+t2"), window=64, overlap=16,
                         batch_size=4, force=True, probabilities=out.with_suffix(".p.tif"), **kw)


def _pixels(out: Path) -> list[np.ndarray]:
    with rasterio.open(out) as a, rasterio.open(out.with_suffix(".p.tif")) as b:
        return [a.read(), b.read()]


def test_an_interrupted_change_run_resumes_to_the_same_file_and_says_so(tmp_path) -> None:
    t1, t2 = _epochs(tmp_path)
    reference = _run(t1, t2, tmp_path / "ref.tif", Diff())
    assert reference.resume_note == "" and "resumed" not in reference.describe()

    out = tmp_path / "c.tif"
    with pytest.raises(KeyboardInterrupt):  # one forward per 2 grid rows: stops around row 400
        _run(t1, t2, out, Diff(after=5))
    assert not out.exists() and resume_sidecar_path(out).is_file()
    with pytest.raises(InputError, match=r"other inputs or parameters \(--change-threshold\)"):  # named
        _run(t1, t2, out, Diff(), resume=True, change_threshold=0.3)
    with pytest.raises(InputError, match=r"other inputs or parameters \(--change-threshold\)"):  # a dry run too
        _run(t1, t2, out, Diff(), resume=True, change_threshold=0.3, dry_run=True)
    assert "would resume at row 256" in _run(t1, t2, out, Diff(), resume=True, dry_run=True).describe()

    counting = Diff()
    summary = _run(t1, t2, out, counting, resume=True)
    assert 0 < counting.calls < 6  # took the run up, did not start over (6 batches in all)
    assert summary.describe().splitlines()[-1].endswith(", resumed at row 256")
    for got, ref in zip(_pixels(out), _pixels(tmp_path / "ref.tif")):
        np.testing.assert_array_equal(got, ref)
    assert summary.changed_fraction == reference.changed_fraction > 0
    assert not resume_sidecar_path(out).exists() and not list(tmp_path.glob(".*scratch*"))


def test_a_change_resume_without_an_interrupted_run_is_refused(tmp_path) -> None:
    t1, t2 = _epochs(tmp_path)
    with pytest.raises(InputError, match="no interrupted run"):
        _run(t1, t2, tmp_path / "c.tif", Diff(), resume=True)


def test_a_change_run_killed_between_its_renames_is_finished_by_the_resume(tmp_path) -> None:
    """The kill leaves the change raster new and its probabilities old-less; --resume completes and says so."""
    import os
    import subprocess
    import sys

    t1, t2 = _epochs(tmp_path)
    root = Path(__file__).resolve().parents[2]
    code = ("from pathlib import Path\nfrom tests.change.test_change_resume import Diff, _run\n"
            f"_run(Path({str(t1)!r}), Path({str(t2)!r}), Path({str(tmp_path / 'c.tif')!r}), Diff())\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=root,
                          env={**os.environ, "RSMAMBA_TEST_KILL_AT": "renamed-1"})
    assert proc.returncode == -9
    counting = Diff()
    summary = _run(t1, t2, tmp_path / "c.tif", counting, resume=True)
    assert counting.calls == 0 and "the interrupted run had finished" in summary.describe()
    reference = _run(t1, t2, tmp_path / "ref.tif", Diff())
    for got, ref in zip(_pixels(tmp_path / "c.tif"), _pixels(tmp_path / "ref.tif")):
        np.testing.assert_array_equal(got, ref)
    assert summary.changed_fraction == reference.changed_fraction


def test_a_change_batch_rerun_takes_up_its_interrupted_pair_where_it_stopped(tmp_path, monkeypatch) -> None:
    """A batch re-run computed the pair an interrupt left half done from row 0 again (a batch refuses --resume); it
    takes it up from the kept state now, to the file of an uninterrupted run."""
    import hashlib
    import json

    import rsmamba.change.many as many

    t1, t2 = _epochs(tmp_path)
    (tmp_path / "b").mkdir()
    pairs = ([str(t1), str(t2)], [str(t2), str(t1)])  # two pairs: t1->t2 and t2->t1
    net = Diff()
    monkeypatch.setattr(many, "load_change_model", lambda *a, **k: LoadedModel(net, inputs="t1+t2"))
    monkeypatch.setattr(many, "cached_model", lambda *a, **k: LoadedModel(net, inputs="t1+t2"))
    common = dict(window=64, overlap=16, batch_size=4, force=True, progress=False, name_template="pair_{index}.tif")
    many.change_many(*pairs, tmp_path / "ref", **common)
    whole = net.calls // 2  # the calls of one pair from its start
    net.calls, net.after = 0, whole + 5  # the first pair, then the second's up to its rows 0-255 durable
    with pytest.raises(KeyboardInterrupt):
        many.change_many(*pairs, tmp_path / "out", **common)
    assert json.loads(resume_sidecar_path(tmp_path / "out" / "pair_1.tif").read_text())["rows_done"] == 256
    net.calls, net.after = 0, 0
    results = many.change_many(*pairs, tmp_path / "out", **common)
    assert [r.status for r in results] == ["skipped", "done"]
    assert [r.taken_up for r in results] == [False, True]  # said on the summary line (QA)
    assert 0 < net.calls < whole  # took the pair up, did not start over

    def digests(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tif"))}

    assert digests(tmp_path / "out") == digests(tmp_path / "ref") and len(digests(tmp_path / "ref")) == 2
