"""The one output-publishing mechanism (rsmamba.atomic.publish) and the verbs that write through it.

Concurrency, kills at every publishing phase, outputs that are inputs, stale partials of dead
runs, a full disk, the overwrite policy, GeoPackage layers, --co and --name-template.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio

from rsmamba.atomic import OutputBusyError, OutputError, publish, remove_stale_partials
from rsmamba.jobs import plan_jobs
from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from rsmamba.engine.model import LoadedModel, default_classes
from tests.helpers.predict_models import TinyConv
from tests.helpers.rasters import ROOT, random_image, write_raster

KW = dict(window=64, overlap=16, batch_size=4)
RUN = """
import sys, time
sys.path.insert(0, {root!r})
import torch
from rsmamba.predict import predict_raster
from rsmamba.engine.model import LoadedModel, default_classes
from tests.helpers.predict_models import TinyConv

class Slow(torch.nn.Module):
    def __init__(self, net):
        super().__init__(); self.net = net
    def forward(self, x):
        time.sleep({sleep}); return self.net(x)

net = Slow(TinyConv(num_classes=4, seed={seed}).eval())
predict_raster({img!r}, {out!r}, probabilities={prob!r}, model=LoadedModel(net, classes=default_classes(4)),
               window=64, overlap=16, batch_size=4, overwrite=True)
"""


def _model(seed: int = 0) -> LoadedModel:
    return LoadedModel(TinyConv(num_classes=4, seed=seed).eval(), classes=default_classes(4))


def _arrays(*paths: Path) -> list[np.ndarray]:
    out = []
    for p in paths:
        with rasterio.open(p) as ds:
            out.append(ds.read())
    return out


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _script(tmp_path: Path, img: Path, out: Path, prob: Path, *, seed: int = 0, sleep: float = 0.0) -> Path:
    script = tmp_path / f"run_{seed}_{sleep}.py"
    script.write_text(RUN.format(root=str(ROOT), img=str(img), out=str(out), prob=str(prob), seed=seed, sleep=sleep))
    return script


# -- the mechanism on its own ---------------------------------------------------------------------------------

def test_outputs_appear_together_and_scratch_is_per_run(tmp_path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    with publish([a, b]) as pub:
        assert pub[0].parent == a.parent and pub[0].name.startswith(".a.txt.partial-") and pub[0].suffix == ".txt"
        assert f"-{os.getpid()}-" in pub[0].name
        pub[0].write_text("A")
        pub[b].write_text("B")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "A" and b.read_text() == "B"
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "sub") == []


def test_failure_publishes_nothing_and_keeps_the_old_set(tmp_path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(RuntimeError), publish([a, b], overwrite=True) as pub:
        pub[0].write_text("new a")
        raise RuntimeError("model crashed")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert _leftovers(tmp_path) == []


def test_second_writer_of_an_output_is_refused(tmp_path) -> None:
    out = tmp_path / "o.tif"
    with publish([out]) as pub:
        pub[0].write_text("first")
        with pytest.raises(OutputBusyError, match="being written by another rsmamba run"), publish([out]):
            pass
    assert out.read_text() == "first"
    with publish([out], overwrite=True) as pub:  # the lock is gone with its run
        pub[0].write_text("second")
    assert out.read_text() == "second" and _leftovers(tmp_path) == []


def test_existing_output_needs_overwrite_and_inputs_are_never_outputs(tmp_path) -> None:
    out = tmp_path / "o.txt"
    out.write_text("keep")
    with pytest.raises(OutputError, match="exists \\(use --overwrite"), publish([out]):
        pass
    with pytest.raises(OutputError, match="is the input"), publish([out], inputs=[out], overwrite=True):
        pass
    folder = tmp_path / "chips"
    folder.mkdir()
    (folder / "image.tif").write_text("input inside the output folder")
    with pytest.raises(OutputError, match="contains the input"), \
            publish([folder], inputs=[folder / "image.tif"], overwrite=True, directory=True):
        pass
    assert out.read_text() == "keep" and (folder / "image.tif").exists()


def test_stale_partials_of_dead_runs_are_removed(tmp_path) -> None:
    out = tmp_path / "o.tif"
    stale_file = tmp_path / ".o.tif.partial-999999-deadbeef.tif"
    stale_file.write_text("x" * 100)
    stale_dir = tmp_path / ".chips.partial-deadbeef"  # an old-style folder partial of a killed tile run
    (stale_dir / "images").mkdir(parents=True)
    with publish([out]) as pub:
        pub[0].write_text("new")
    assert not stale_file.exists()
    remove_stale_partials(tmp_path / "chips")
    assert not stale_dir.exists() and _leftovers(tmp_path) == []


def test_full_disk_is_one_line_and_frees_scratch(tmp_path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    resumable = tmp_path / ".a.txt.predict-scratch.tif"
    with pytest.raises(OutputError) as info, publish([a, b]) as pub:
        resumable.write_text("big")
        pub.remove_at_commit(resumable)
        pub[0].write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert "no space left on device" in str(info.value) and "\n" not in str(info.value)
    assert _leftovers(tmp_path) == [] and not a.exists()


def _failing_rename(monkeypatch, dest: Path, error: type[BaseException] = PermissionError) -> None:
    """``os.replace`` of a scratch file over ``dest`` fails, as over an immutable file (chattr +i)."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == dest and Path(src).name.startswith(f".{dest.name}.partial-"):
            raise error(errno.EPERM, "Operation not permitted", str(src), None, str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("links", [True, False])
def test_a_rename_failing_part_way_puts_back_the_outputs_replaced_before_it(tmp_path, monkeypatch, links) -> None:
    """The 2nd rename failed (an immutable old file): the 1st output was already the new one beside the
    old 2nd, a raw '[Errno 1]' line, and the scratch that the journal rolls forward was deleted."""
    names = [tmp_path / n for n in ("a.txt", "b.txt", "c.txt")]
    for p in names[:2]:
        p.write_text("old")
    resumable = tmp_path / ".a.txt.predict-resume.json"
    _failing_rename(monkeypatch, names[1])
    if not links:  # a file system without hard links: the old files are moved aside instead
        monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EPERM, "no links")))
    with pytest.raises(OutputError) as info, publish(names, overwrite=True) as pub:
        resumable.write_text("{}")
        pub.remove_at_commit(resumable)
        for t in pub:
            t.write_text("new")
    assert str(info.value) == (f"output {names[1]}: cannot replace it (Operation not permitted); "
                               "no output of this run was published, the earlier ones are unchanged")
    assert [p.read_text() for p in names[:2]] == ["old", "old"] and not names[2].exists()
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    with publish(names, overwrite=True) as pub:
        for t in pub:
            t.write_text("new")
    assert [p.read_text() for p in names] == ["new"] * 3 and _leftovers(tmp_path) == []


def _killed_between_renames(monkeypatch, names: list[Path]) -> None:
    """``names`` (old) published anew by a run interrupted after its first rename: its journal and scratch stay."""
    for p in names:
        p.write_text("old")
    _failing_rename(monkeypatch, names[1], KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt), publish(names, overwrite=True) as pub:
        for t in pub:
            t.write_text("new")
    monkeypatch.undo()


def test_an_interrupt_between_the_renames_keeps_what_the_journal_rolls_forward(tmp_path, monkeypatch) -> None:
    """Ctrl-C after the commit point: the scratch files stay with their journal, and the next run finishes."""
    names = [tmp_path / n for n in ("a.txt", "b.txt")]
    _killed_between_renames(monkeypatch, names)
    with publish([names[1]], overwrite=True) as pub:
        pub.abandon()
    assert [p.read_text() for p in names] == ["new", "new"] and _leftovers(tmp_path) == []


def test_an_immutable_output_is_refused_before_the_work(tmp_path) -> None:
    out = tmp_path / "o.txt"
    out.write_text("old")
    if os.geteuid() != 0 or subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode:
        pytest.skip("needs root and a file system with chattr +i")
    try:
        with pytest.raises(OutputError, match="cannot replace it \\(it is immutable; chattr -i"), \
                publish([out], overwrite=True):
            raise AssertionError("entered")
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert out.read_text() == "old" and _leftovers(tmp_path) == []


def test_another_users_output_in_a_sticky_folder_is_refused_before_the_work(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)  # as /tmp: only a file's owner (or the folder's) may rename over it
    out = folder / "o.txt"
    out.write_text("theirs")
    monkeypatch.setattr(os, "geteuid", lambda: out.stat().st_uid + 4242)  # another, unprivileged user
    with pytest.raises(OutputError, match="cannot replace it \\(it belongs to another user and .* sticky bit"), \
            publish([out], overwrite=True):
        raise AssertionError("entered")
    monkeypatch.undo()
    assert out.read_text() == "theirs"

@pytest.mark.parametrize("phase", ["before-publish", "journal-written", "renamed-1"])
def test_kill_while_publishing_is_old_or_new_after_the_next_run(tmp_path, phase) -> None:
    names = [tmp_path / n for n in ("a.txt", "b.txt", "c.txt")]
    for p in names:
        p.write_text("old")
    code = ("import sys; from rsmamba.atomic import publish\n"
            f"with publish({[str(p) for p in names]!r}, overwrite=True) as pub:\n"
            "    [t.write_text('new') for t in pub]\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "RSMAMBA_TEST_KILL_AT": phase})
    assert proc.returncode == -9
    texts = [p.read_text() for p in names]
    journal = [p for p in tmp_path.iterdir() if p.name.endswith(".publish-journal.json")]
    assert texts == ["old"] * 3 or journal, texts  # a mix only ever stands beside its journal
    with publish([names[0]], overwrite=True) as pub:  # the next run touching any of them rolls forward
        recovered = pub.recovered
        pub.abandon()
    with publish(names, overwrite=True) as pub:  # a re-run of the command: stale partials of all go
        pub.abandon()
    texts = [p.read_text() for p in names]
    assert texts == (["new"] * 3 if phase != "before-publish" else ["old"] * 3)
    assert bool(recovered) == (phase != "before-publish")
    assert _leftovers(tmp_path) == []


def test_a_reader_finishes_a_killed_publication_before_reading(tmp_path) -> None:
    """Killed between its renames, a run leaves a new a.txt beside an old b.txt: a reader settles them first."""
    from rsmamba.atomic import settle_inputs

    names = [tmp_path / n for n in ("a.txt", "b.txt")]
    for p in names:
        p.write_text("old")
    code = ("import sys; from rsmamba.atomic import publish\n"
            f"with publish({[str(p) for p in names]!r}, overwrite=True) as pub:\n"
            "    [t.write_text('new') for t in pub]\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "RSMAMBA_TEST_KILL_AT": "renamed-1"})
    assert proc.returncode == -9
    assert [p.read_text() for p in names] == ["new", "old"]  # the mix a reader must never see
    settle_inputs([names[1], None])
    assert [p.read_text() for p in names] == ["new", "new"]
    assert _leftovers(tmp_path) == []


def test_tile_predict_and_change_settle_their_inputs_too(tmp_path) -> None:
    """A synth killed between its renames: tile paired one town's ortho with another's labels (exit 0),
    change compared two towns ("31 % changed"). Their common reader, AlignedSource, settles them first."""
    from rsmamba.raster.source import AlignedSource
    from rsmamba.synth import write_scene

    write_scene(tmp_path / "s", size=128, seed=1)
    reference = write_scene(tmp_path / "ref", size=128, seed=2)
    code = ("from rsmamba.synth import write_scene\n"
            f"write_scene({str(tmp_path / 's')!r}, size=128, seed=2, overwrite=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "RSMAMBA_TEST_KILL_AT": "renamed-2"})
    assert proc.returncode == -9
    scene = tmp_path / "s"
    with AlignedSource(scene / "ortho_t1.tif", labels=scene / "labels_t1.tif", t2=scene / "ortho_t2.tif"):
        pass
    for name in ("ortho_t1.tif", "labels_t1.tif", "ortho_t2.tif", "dsm_t1.tif"):
        assert (scene / name).read_bytes() == reference[name.removesuffix(".tif")].read_bytes(), name


# -- predict ---------------------------------------------------------------------------------------------------

def test_predict_refuses_existing_outputs_without_overwrite(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(40, 50))
    out = tmp_path / "c.tif"
    predict_raster(img, out, model=_model(), **KW)
    before = out.read_bytes()
    with pytest.raises(InputError, match="exists \\(use --overwrite"):
        predict_raster(img, out, model=_model(1), **KW)
    assert out.read_bytes() == before
    predict_raster(img, out, model=_model(1), overwrite=True, **KW)
    assert out.read_bytes() != before
    with pytest.raises(InputError, match="is the input"):
        predict_raster(img, img, model=_model(), overwrite=True, **KW)


@pytest.mark.parametrize("phase", ["before-publish", "renamed-1"])
def test_predict_killed_at_any_phase_then_resume(tmp_path, phase) -> None:
    """Old outputs from another model; a run killed at ``phase``; then ``--resume`` completes the new set.

    (A kill while computing is ``test_sigkill_then_resume_equals_uninterrupted``; every publishing
    phase of the mechanism itself is ``test_kill_while_publishing_is_old_or_new_after_the_next_run``.)
    """
    img = write_raster(tmp_path / "img.tif", random_image(200, 60, seed=3))
    work = tmp_path / "w"
    work.mkdir()
    out, prob = work / "classes.tif", work / "probs.tif"
    predict_raster(img, out, probabilities=prob, model=_model(7), **KW)
    old = _arrays(out, prob)
    predict_raster(img, tmp_path / "rc.tif", probabilities=tmp_path / "rp.tif", model=_model(0), **KW)
    new = _arrays(tmp_path / "rc.tif", tmp_path / "rp.tif")
    env = {**os.environ, "RSMAMBA_TEST_KILL_AT": f"{phase}:classes.tif"}
    proc = subprocess.run([sys.executable, str(_script(tmp_path, img, out, prob))], cwd=ROOT, env=env)
    assert proc.returncode == -9
    now = _arrays(out, prob)
    same_as_old = all(np.array_equal(x, y) for x, y in zip(now, old))
    journaled = any(p.name.endswith(".publish-journal.json") for p in work.iterdir())
    assert same_as_old or journaled
    predict_raster(img, out, probabilities=prob, model=_model(0), resume=True, **KW)
    for got, want in zip(_arrays(out, prob), new):
        np.testing.assert_array_equal(got, want)
    assert _leftovers(work) == []


def test_two_predicts_to_one_output(tmp_path) -> None:
    """One succeeds with the right raster, the other refuses in one line (CLI: exit 2) and changes nothing."""
    img = write_raster(tmp_path / "img.tif", random_image(300, 60, seed=4))
    out, prob = tmp_path / "c.tif", tmp_path / "p.tif"
    predict_raster(img, tmp_path / "rc.tif", probabilities=tmp_path / "rp.tif", model=_model(0), **KW)
    first = subprocess.Popen([sys.executable, str(_script(tmp_path, img, out, prob, sleep=0.2))], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / ".c.tif.lock").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second started"
        with pytest.raises(OutputBusyError) as info:
            predict_raster(img, out, probabilities=prob, model=_model(5), overwrite=True, **KW)
        assert "\n" not in str(info.value) and str(first.pid) in str(info.value)
    finally:
        assert first.wait(timeout=300) == 0
    for got, want in zip(_arrays(out, prob), _arrays(tmp_path / "rc.tif", tmp_path / "rp.tif")):
        np.testing.assert_array_equal(got, want)
    assert _leftovers(tmp_path) == []


def test_cli_busy_output_is_one_line_exit_2(tmp_path, capsys) -> None:
    out = tmp_path / "c.tif"
    scene = ROOT / "examples" / "scene"
    with publish([out]) as pub:
        pub.abandon()
        code = main(["predict", str(scene / "ortho.tif"), "--dsm", str(scene / "dsm.tif"), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "being written by another rsmamba run" in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_cli_predict_whose_second_output_cannot_be_replaced_keeps_the_old_pair(tmp_path, monkeypatch, capsys) -> None:
    scene = ROOT / "examples" / "scene"
    cls, prob = tmp_path / "c.tif", tmp_path / "p.tif"
    cls.write_text("old classes")
    prob.write_text("old probabilities")
    _failing_rename(monkeypatch, prob)
    code = main(["predict", str(scene / "ortho.tif"), "--dsm", str(scene / "dsm.tif"), "-o", str(cls),
                 "--probabilities", str(prob), "--no-tta", "--overwrite", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"output {prob}: cannot replace it (Operation not permitted)" in err and "unchanged" in err
    assert (cls.read_text(), prob.read_text()) == ("old classes", "old probabilities")
    assert _leftovers(tmp_path) == []


def test_predict_full_disk_frees_scratch(tmp_path, monkeypatch) -> None:
    import rsmamba.engine.writer as writer

    img = write_raster(tmp_path / "img.tif", random_image(300, 60, seed=4))
    out = tmp_path / "o" / "c.tif"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.ScratchWriter, "_flush", full)
    with pytest.raises(OutputError, match="no space left on device"):
        predict_raster(img, out, probabilities=tmp_path / "o" / "p.tif", model=_model(), **KW)
    assert not (tmp_path / "o").exists()  # emptied, and the folder the run made gone


def test_predict_full_disk_as_gdal_says_it_frees_scratch(tmp_path, monkeypatch) -> None:
    """GDAL logs ENOSPC on a line of its own and raises 'TIFFAppendToStrip: Write error': the resumable scratch
    stayed, kept the disk full, and every re-run failed the same way."""
    import rasterio
    import rsmamba.atomic as atomic
    import rsmamba.engine.writer as writer

    img = write_raster(tmp_path / "img.tif", random_image(300, 60, seed=4))
    out = tmp_path / "o" / "c.tif"

    def gdal_full(*args, **kwargs):
        raise rasterio.errors.RasterioIOError("TIFFAppendToStrip:Write error at scanline 0")

    monkeypatch.setattr(writer.ScratchWriter, "_flush", gdal_full)
    monkeypatch.setattr(atomic, "NO_ROOM_BYTES", 1 << 62)  # this file system, as full as a 3 MB tmpfs was
    with pytest.raises(OutputError, match="no space left on device"):
        predict_raster(img, out, probabilities=tmp_path / "o" / "p.tif", model=_model(), **KW)
    assert not (tmp_path / "o").exists()  # emptied, and the folder the run made gone
    monkeypatch.setattr(atomic, "NO_ROOM_BYTES", 0)  # room enough: the same error is another one, kept resumable
    with pytest.raises(rasterio.errors.RasterioIOError):
        predict_raster(img, out, probabilities=tmp_path / "o" / "p.tif", model=_model(), **KW)


def test_a_scratch_deleted_under_a_run_is_one_line(tmp_path, monkeypatch) -> None:
    """The output folder removed mid-run: rasterio's r+ of the missing scratch raised TypeError, a traceback (exit 1)."""
    import rsmamba.engine.writer as writer

    img = write_raster(tmp_path / "img.tif", random_image(300, 60, seed=4))
    out = tmp_path / "o" / "c.tif"
    flush = writer.ScratchWriter._flush

    def deleted_first(self, final):
        for layer in self.layers:
            layer.scratch.unlink(missing_ok=True)
        return flush(self, final)

    monkeypatch.setattr(writer.ScratchWriter, "_flush", deleted_first)
    with pytest.raises(OutputError, match=r"its scratch file \.c\.tif\.predict-scratch\.tif vanished during the run"):
        predict_raster(img, out, model=_model(), **KW)


def test_a_lock_that_cannot_be_removed_does_not_hide_the_runs_error(tmp_path, monkeypatch) -> None:
    """A folder made immutable mid-run: the lock's unlink raised PermissionError, which replaced the run's own error
    and left the other outputs' locks held."""
    import os

    from rsmamba.atomic import publish

    outs = [tmp_path / "a.tif", tmp_path / "b.tif"]
    unlink = os.unlink

    def immutable(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise PermissionError(1, "Operation not permitted", str(path))
        return unlink(path, *args, **kwargs)

    with pytest.raises(ValueError, match="the run's own error"):
        with publish(outs):
            monkeypatch.setattr(os, "unlink", immutable)
            raise ValueError("the run's own error")
    monkeypatch.setattr(os, "unlink", unlink)
    with publish(outs) as pub:  # the locks were released: the next run takes them
        for tmp in pub:
            tmp.write_text("x")
    assert all(o.read_text() == "x" for o in outs)


def test_predict_creation_options(tmp_path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(300, 300))
    out = tmp_path / "c.tif"
    predict_raster(img, out, model=_model(), co={"BLOCKSIZE": "256"}, **KW)
    with rasterio.open(out) as ds:
        assert ds.block_shapes[0] == (256, 256)
    with pytest.raises(InputError, match="--co NOPE"):
        predict_raster(img, tmp_path / "d.tif", model=_model(), co={"NOPE": "1"}, **KW)
    assert main(["predict", str(img), "-o", str(tmp_path / "e.tif"), "--co", "BLOCKSIZE"]) == 2


# -- the other verbs -------------------------------------------------------------------------------------------

def test_evaluate_never_overwrites_its_input(tmp_path, capsys) -> None:
    labels = np.random.default_rng(0).integers(0, 6, size=(1, 40, 40), dtype=np.uint8)
    pred = write_raster(tmp_path / "p.tif", labels)
    ref = write_raster(tmp_path / "ref.tif", labels)
    before = pred.read_bytes()
    assert main(["evaluate", str(pred), str(ref), "-o", str(pred)]) == 2
    assert "is the input" in capsys.readouterr().err
    assert pred.read_bytes() == before and _leftovers(tmp_path) == []
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "m.json")]) == 0
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "m.json")]) == 2
    assert main(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "m.json"), "--overwrite"]) == 0


def test_vectorize_geopackage_layers(tmp_path) -> None:
    from rsmamba.vectorize import vectorize_raster

    labels = np.zeros((1, 40, 40), np.uint8)
    labels[0, 5:15, 5:15] = 1
    labels[0, 20:30, 20:35] = 1
    raster = write_raster(tmp_path / "c.tif", labels)
    gpkg = tmp_path / "map.gpkg"
    vectorize_raster(raster, gpkg, classes=["building"], layer="buildings")
    vectorize_raster(raster, gpkg, classes=["impervious"], layer="roads")  # a new layer: others kept
    assert sorted(str(n) for n, _ in pyogrio.list_layers(gpkg)) == ["buildings", "roads"]
    with pytest.raises(InputError, match="layer 'buildings' exists"):
        vectorize_raster(raster, gpkg, classes=["building"], layer="buildings")
    vectorize_raster(raster, gpkg, classes=["building"], layer="buildings", append=True)
    assert len(pyogrio.read_dataframe(gpkg, layer="buildings")) == 4
    vectorize_raster(raster, gpkg, classes=["building"], layer="buildings", overwrite=True)  # only that layer
    assert len(pyogrio.read_dataframe(gpkg, layer="buildings")) == 2
    assert sorted(str(n) for n, _ in pyogrio.list_layers(gpkg)) == ["buildings", "roads"]
    with pytest.raises(InputError, match="need GeoPackage"):
        vectorize_raster(raster, tmp_path / "b.geojson", layer="x")
    assert _leftovers(tmp_path) == []


def test_tile_refuses_to_replace_a_folder_holding_its_input(tmp_path) -> None:
    from rsmamba.tile import tile_scene

    (tmp_path / "chips").mkdir()
    img = write_raster(tmp_path / "chips" / "img.tif", random_image(64, 64))
    with pytest.raises(InputError, match="contains the input"):
        tile_scene(img, tmp_path / "chips", size=32, overwrite=True)
    assert img.exists()


def test_synth_files_are_published_together_and_not_replaced(tmp_path) -> None:
    from rsmamba.synth import write_scene

    paths = write_scene(tmp_path / "s", size=64, seed=1, gsd=0.5)
    before = paths["ortho_t1"].read_bytes()
    with pytest.raises(InputError, match="use --overwrite"):
        write_scene(tmp_path / "s", size=64, seed=2, gsd=0.5)
    assert paths["ortho_t1"].read_bytes() == before and _leftovers(tmp_path / "s") == []


def test_name_template_for_many_inputs(tmp_path) -> None:
    a, b = tmp_path / "a" / "ortho.tif", tmp_path / "b" / "x" / "ortho.tif"
    with pytest.raises(InputError, match="--name-template"):
        plan_jobs([a, b], tmp_path / "out")
    jobs = plan_jobs([a, b], tmp_path / "out", template="{parent}_{stem}.tif")
    assert [j.output.name for j in jobs] == ["a_ortho.tif", "x_ortho.tif"]
    jobs = plan_jobs([a, b], tmp_path / "out", template="{relparent}/{stem}.tif")
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == ["a/ortho.tif", "b/x/ortho.tif"]
    assert [j.output.name for j in plan_jobs([a, b], tmp_path / "o", template="{index:03d}.tif")] == ["000.tif", "001.tif"]
    for bad in ("{nope}.tif", "../{stem}.tif"):
        with pytest.raises(InputError, match="--name-template"):
            plan_jobs([a, b], tmp_path / "out", template=bad)


def test_predict_tags_model_id_and_vectorize_reads_probabilities_in_0_1(tmp_path) -> None:
    from rsmamba.vectorize import vectorize_raster

    img = write_raster(tmp_path / "img.tif", random_image(64, 64))
    out, prob = tmp_path / "c.tif", tmp_path / "p.tif"
    predict_raster(img, out, probabilities=prob, model=_model(), **KW)
    with rasterio.open(out) as ds:
        assert ds.tags()["model_id"].startswith("module weights:")
    vectorize_raster(out, tmp_path / "v.gpkg", probabilities=prob)
    df = pyogrio.read_dataframe(tmp_path / "v.gpkg")
    assert len(df) and (df.model_id == df.model_id.iloc[0]).all() and df.model_id.iloc[0].startswith("module")
    assert df.mean_prob.between(0, 1).all() and df.max_prob.between(0, 1).all() and df.max_prob.max() > 0.25


def test_an_output_name_too_long_for_the_hidden_work_files_is_refused_up_front(tmp_path, capsys) -> None:
    """61 CJK characters (183 bytes) passed the checks, ran the whole prediction, then failed on
    '.NAME.predict-scratch.tif.ovr.ovr...' and left the scratch behind."""
    from rsmamba.atomic import SIBLING_BYTES
    from rsmamba.cli import main

    img = write_raster(tmp_path / "img.tif", random_image(40, 50))
    name = "北京市朝阳区正射影像分类结果" * 4 + "二〇二四年.tif"
    assert main(["predict", str(img), "-o", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write a name of 187 bytes here" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.tif"]
    longest = "b" * (255 - SIBLING_BYTES - 4) + ".tif"  # the longest taken: every hidden sibling fits beside it
    predict_raster(img, tmp_path / longest, model=_model(), **KW)
    assert (tmp_path / longest).exists() and _leftovers(tmp_path) == []


def test_an_output_that_is_a_symlink_is_written_through(tmp_path) -> None:
    """--overwrite replaced the link by a file beside it: its target (a raster kept on another disk)
    kept the old map, and no longer got the updates."""
    from rsmamba.atomic import publish

    (tmp_path / "disk").mkdir()
    target, link = tmp_path / "disk" / "c.txt", tmp_path / "c.txt"
    target.write_text("old")
    link.symlink_to(target)
    folder_target, folder_link = tmp_path / "disk" / "chips", tmp_path / "chips"
    folder_target.mkdir()
    (folder_target / "a").write_text("old")
    folder_link.symlink_to(folder_target)
    with publish([link], overwrite=True) as pub:
        pub[link].write_text("new")
    with publish([folder_link], overwrite=True, directory=True) as pub:
        (pub[folder_link] / "b").write_text("new")
    assert link.is_symlink() and target.read_text() == "new"
    assert folder_link.is_symlink() and sorted(p.name for p in folder_target.iterdir()) == ["b"]
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "disk") == []


def test_a_forked_child_does_not_keep_the_parents_lock(tmp_path) -> None:
    """DataLoader workers inherited the out folder's lock: a train killed by the OOM killer left its
    folder 'being written by another rsmamba run (pid <dead>)' for as long as they lived."""
    import signal

    from rsmamba.atomic import lock_outputs

    out = tmp_path / "run"
    code = ("import os, time\n"
            "from rsmamba.atomic import lock_outputs\n"
            f"with lock_outputs([{str(out)!r}]):\n"
            "    child = os.fork()\n"
            "    if child == 0:\n"  # the orphaned worker lives on, its output pipes closed
            "        os.close(1); os.close(2); time.sleep(60); os._exit(0)\n"
            "    print(child, flush=True)\n"
            "    os._exit(0)\n")  # killed: no release, the lock file stays
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    child = int(proc.stdout.strip())
    try:
        assert proc.returncode == 0 and (tmp_path / ".run.lock").exists()
        os.kill(child, 0)  # alive
        with lock_outputs([out]):  # free at once, with the child still alive
            pass
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_replaced_raster_loses_the_old_files_gdal_statistics(tmp_path) -> None:
    """QGIS / gdalinfo -stats keep NAME.aux.xml beside a raster: after --overwrite GDAL read the old run's
    statistics (100 % valid, its mean) for the new file (rio convert --overwrite removes it too)."""
    out = tmp_path / "classes.tif"
    for value in (1, 2):
        with publish([out], overwrite=True) as pub:
            pub[0].write_bytes(bytes([value]))
        aux = out.with_name("classes.tif.aux.xml")
        assert not aux.exists() and out.read_bytes() == bytes([value])
        aux.write_text("<PAMDataset>old statistics</PAMDataset>")
    keep = tmp_path / "other.tif.aux.xml"  # another file's statistics stay
    keep.write_text("x")
    with publish([out, tmp_path / "b.tif"], overwrite=True) as pub:
        pub[0].write_bytes(b"3")
        pub[1].write_bytes(b"4")
    assert not out.with_name("classes.tif.aux.xml").exists() and keep.exists()


def test_an_output_named_like_a_glob_pattern_cleans_its_own_partials_only(tmp_path) -> None:
    """Its name was a pattern: an output named ``*`` matched every other output's scratch (a live tile run lost a
    quarter of its chips, exit 0), one named ``a[1]`` never matched its own dead run's partial."""
    other = tmp_path / ".chips.partial-123-abcdef01"
    other.mkdir()
    mine = tmp_path / ".a[1].partial-456-abcdef02"
    mine.mkdir()
    remove_stale_partials(tmp_path / "*")
    assert other.exists()
    remove_stale_partials(tmp_path / "a[1]")
    assert not mine.exists() and other.exists()


def test_overwriting_through_a_symlink_drops_the_statistics_beside_the_link(tmp_path) -> None:
    """GDAL reads the .aux.xml beside the name it opens: the old map's statistics stayed beside the link."""
    store = tmp_path / "store"
    store.mkdir()
    target = write_raster(store / "classes.tif", random_image(8, 8, bands=1))
    link = tmp_path / "classes.tif"
    link.symlink_to(target)
    for aux in (tmp_path / "classes.tif.aux.xml", store / "classes.tif.aux.xml"):
        aux.write_text("<PAMDataset/>")
    with publish([link], overwrite=True) as pub:
        write_raster(pub[link], random_image(4, 4, bands=1))
    assert not (tmp_path / "classes.tif.aux.xml").exists() and not (store / "classes.tif.aux.xml").exists()
    with rasterio.open(link) as ds:
        assert ds.shape == (4, 4)


def test_an_input_named_near_the_file_systems_limit_is_read(tmp_path) -> None:
    """Its journal's name (22 bytes longer) was probed: 'File name too long' refused it in every verb."""
    from rsmamba.atomic import settle_inputs

    name = "建" * 78 + ".tif"  # 238 bytes
    path = write_raster(tmp_path / name, random_image(8, 8))
    settle_inputs([path])  # no OSError


def test_a_journal_received_with_a_folder_is_not_obeyed(tmp_path, caplog) -> None:
    """A hidden .NAME.publish-journal.json beside an input (a zip of results) was rolled forward: the folder it
    named in another place was replaced by a file of its choosing and a file deleted, exit 0, at every run. Only a
    journal this user's rsmamba signed is; a real one (a run killed between its renames) still is."""
    import json

    from rsmamba.atomic import journal_path
    from rsmamba.vectorize import vectorize_raster

    victim = tmp_path / "victim"
    (victim / "photos").mkdir(parents=True)
    (victim / "photos" / "a.jpg").write_text("precious")
    (victim / "notes.txt").write_text("keep")
    delivery = tmp_path / "delivery"
    delivery.mkdir()
    a = np.zeros((16, 16), np.uint8)
    a[4:12, 4:12] = 1
    labels = write_raster(delivery / "labels.tif", a)
    (delivery / "payload.txt").write_text("attacker")
    for sig in (None, "0" * 64):  # none, and one made with another key
        journal = {"entries": [{"final": str(victim / "photos"), "scratch": str(delivery / "payload.txt"), "backup": ""}],
                   "remove": [str(victim / "notes.txt")], **({"sig": sig} if sig else {})}
        journal_path(labels).write_text(json.dumps(journal))
        with caplog.at_level("WARNING", logger="rsmamba"):
            vectorize_raster(labels, tmp_path / "v.gpkg", overwrite=True)
        assert (victim / "photos" / "a.jpg").read_text() == "precious" and (victim / "notes.txt").read_text() == "keep"
        assert (delivery / "payload.txt").read_text() == "attacker"
        assert "a publish journal not signed by this user's rsmamba key" in caplog.text


def test_an_own_run_killed_under_another_key_location_still_completes(tmp_path, monkeypatch) -> None:
    """The key lives under HOME (or RSMAMBA_STATE_DIR): a run killed between its renames in one container and taken up
    in another was ignored, and a reader paired one run's classes with another's probabilities. Unsigned, a journal
    is obeyed where it only reaches its outputs' own scratch files in its folder; naming any other file there, not."""
    import json

    from rsmamba.atomic import journal_path

    victim = tmp_path / "notes.txt"
    victim.write_text("keep")
    for tamper in (False, True):
        names = [tmp_path / f"{n}{int(tamper)}.txt" for n in ("a", "b")]
        _killed_between_renames(monkeypatch, names)
        for j in (journal_path(p) for p in names):  # as another key location reads it: no signature that verifies
            journal = {k: v for k, v in json.loads(j.read_text()).items() if k != "sig"}
            if tamper:  # and naming a file of the folder that is no sibling of its outputs
                journal["remove"] = [str(victim)]
            j.write_text(json.dumps(journal))
        with publish([names[1]], overwrite=True) as pub:
            pub.abandon()
        assert victim.read_text() == "keep"
        assert [p.read_text() for p in names] == (["new", "old"] if tamper else ["new", "new"])


def test_a_received_journal_replaces_no_file_beside_the_input(tmp_path, caplog) -> None:
    """A zip unpacked into a working folder brought an unsigned journal tied to one of its entries (classes.tif) and
    a scratch for the user's report.md, which was replaced (evaluate, exit 0, not a word). Shipping the journal beside
    report.md too, and scratch names as rsmamba makes them, does not tie them to the user's file."""
    import json

    from rsmamba.atomic import journal_path, settle_inputs

    project = tmp_path / "project"
    project.mkdir()
    report, classes = project / "report.md", project / "classes.tif"
    report.write_text("my own work")
    classes.write_text("delivered")
    scratch = {classes: project / ".classes.tif.partial-1-0000abcd.tif", report: project / ".report.md.partial-1-deadbeef.md"}
    for final, tmp in scratch.items():
        tmp.write_text("replaced")
    journal = {"version": 1, "pid": 1, "meta": {}, "remove": [str(project / "report.md.aux.xml")],
               "entries": [{"final": str(final), "scratch": str(tmp), "backup": "",
                            "scratch_ino": tmp.stat().st_ino, "final_ino": None}  # even the scratch inodes guessed
                           for final, tmp in scratch.items()]}
    for final in scratch:
        journal_path(final).write_text(json.dumps(journal))
    with caplog.at_level("WARNING", logger="rsmamba"):
        settle_inputs([classes])
    assert report.read_text() == "my own work" and classes.read_text() == "delivered"
    assert "whose files are not the ones its run wrote there" in caplog.text


def test_an_unsigned_journal_of_a_folder_is_ignored_for_that_reason(tmp_path, monkeypatch, caplog) -> None:
    """tile --overwrite killed at its journal, taken up under another key: the warning said the journal named paths
    beyond its outputs' own scratch files (it names only those); it is ignored because it replaces a folder."""
    import json

    from rsmamba import atomic
    from rsmamba.atomic import journal_path

    chips = tmp_path / "chips"
    chips.mkdir()
    (chips / "old.txt").write_text("old")

    def killed(name, output=None):
        if name == "journal-written":
            raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "fault_point", killed)
    with pytest.raises(KeyboardInterrupt), publish([chips], directory=True, overwrite=True) as pub:
        (pub[0] / "new.txt").write_text("new")
    monkeypatch.undo()
    j = journal_path(chips)
    j.write_text(json.dumps({k: v for k, v in json.loads(j.read_text()).items() if k != "sig"}))
    monkeypatch.setattr(atomic, "_SAID", set())
    with caplog.at_level("WARNING", logger="rsmamba"), publish([chips], directory=True, overwrite=True) as pub:
        pub.abandon()
    assert "that replaces a folder (chips); ignored" in caplog.text and "beyond" not in caplog.text
    assert (chips / "old.txt").read_text() == "old"


def test_an_output_named_through_a_symlink_and_dotdot_is_published_where_its_scratch_is(tmp_path) -> None:
    """``lnk/../a.tif`` is beside the link's target for the OS, and was published beside the link: the scratch (and
    predict's full-size hidden scratch) stayed in the other folder, for ever."""
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "lnk").symlink_to("../data/sub")
    named = tmp_path / "work" / "lnk" / ".." / "a.tif"
    img = write_raster(tmp_path / "img.tif", random_image(96, 96))
    predict_raster(img, named, probabilities=named.with_name("p.tif"), model=_model(), **KW)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["a.tif", "a.tif.aux.xml", "p.tif", "sub"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["lnk"]


@pytest.fixture
def key_env(tmp_path, monkeypatch):
    """A process with no journal key yet, HOME and the temp folder under ``tmp_path``, nothing said yet."""
    from rsmamba import atomic

    for name in ("_KEY", "_KEY_PATH"):
        monkeypatch.setattr(atomic, name, None, raising=False)
    monkeypatch.setattr(atomic, "_SAID", set())
    for var in ("RSMAMBA_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def _key_path(root: Path) -> Path:
    """Which file under ``root`` holds the key this process signs with."""
    from rsmamba.atomic import journal_key

    key = journal_key()
    return next(p for p in root.rglob("journal.key") if p.is_file() and p.read_bytes() == key)


def test_relative_key_folders_are_passed_over(key_env, monkeypatch, caplog) -> None:
    """A relative XDG_STATE_HOME (or RSMAMBA_STATE_DIR) put the key under the current folder: a --resume from another
    folder was refused; HOME unset without a passwd entry made ./~/.local/state/rsmamba."""
    import pwd

    home_key = key_env / "home" / ".local" / "state" / "rsmamba" / "journal.key"
    monkeypatch.setenv("XDG_STATE_HOME", "state")
    monkeypatch.setenv("RSMAMBA_STATE_DIR", "st")
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert _key_path(key_env) == home_key
    assert "XDG_STATE_HOME=state is not an absolute path" in caplog.text and "RSMAMBA_STATE_DIR=st" in caplog.text
    assert list((key_env / "cwd").iterdir()) == []

    from rsmamba import atomic

    monkeypatch.setattr(atomic, "_KEY", None)
    monkeypatch.delenv("HOME")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert _key_path(key_env) == key_env / "tmp" / f"rsmamba-{os.getuid()}" / "journal.key"
    assert list((key_env / "cwd").iterdir()) == [] and "a temporary folder, which a reboot empties" in caplog.text


@pytest.mark.parametrize("modes", [True, False])
def test_a_key_others_can_read_is_made_private_and_kept(key_env, monkeypatch, caplog, modes) -> None:
    """A key copied without its mode (cp without -p) was passed over: its own run's --resume was refused, advising
    the RSMAMBA_STATE_DIR the user gave. It is made mode 600 and used; on a file system without Unix modes (every
    file 644) it is used, and said."""
    state = key_env / "state"
    state.mkdir()
    monkeypatch.setenv("RSMAMBA_STATE_DIR", str(state))
    (state / "journal.key").write_bytes(os.urandom(32))
    (state / "journal.key").chmod(0o644)
    if not modes:
        monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert _key_path(key_env) == state / "journal.key"
    if modes:
        assert (state / "journal.key").stat().st_mode & 0o777 == 0o600 and "made mode 600" in caplog.text
    else:
        assert "keeps no other mode" in caplog.text


@pytest.mark.parametrize("case", ["state-dir-is-a-file", "empty-key", "read-only-home"])
def test_a_key_not_where_it_was_asked_for_is_said(key_env, monkeypatch, caplog, case) -> None:
    """RSMAMBA_STATE_DIR naming a file, an empty journal.key, a read-only HOME: the key moved on
    to the next folder (the temp folder at last, emptied at a reboot) without a word, and a --resume then refused."""
    home = key_env / "home" / ".local" / "state" / "rsmamba"
    home.mkdir(parents=True)
    if case == "state-dir-is-a-file":
        (key_env / "afile").write_text("")
        monkeypatch.setenv("RSMAMBA_STATE_DIR", str(key_env / "afile"))
        reason, where = f"{key_env / 'afile'} is not a folder", home
    elif case == "read-only-home":
        real = os.open
        monkeypatch.setattr(os, "open", lambda p, *a, **k: real(p, *a, **k) if not str(p).startswith(str(key_env / "home"))
                            else (_ for _ in ()).throw(PermissionError(errno.EROFS, "Read-only file system")))
        reason, where = f"{home / 'journal.key'}: Read-only file system", key_env / "tmp" / f"rsmamba-{os.getuid()}"
    else:
        (home / "journal.key").write_bytes(b"")
        reason = "is not a key (0 bytes, not 32"
        where = key_env / "tmp" / f"rsmamba-{os.getuid()}"
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert _key_path(key_env) == where / "journal.key"
    assert f"rsmamba's journal key is {where / 'journal.key'}" in caplog.text and reason in caplog.text


def test_a_key_is_made_on_a_file_system_without_hard_links(key_env, monkeypatch) -> None:
    """The key was made by a hard link: there each process left a stray .journal.key.<pid>-<hex> in every folder it
    tried, and ended with 'set RSMAMBA_STATE_DIR to a writable folder' of a writable folder."""
    monkeypatch.setenv("RSMAMBA_STATE_DIR", str(key_env / "state"))
    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EPERM, "no links")))
    assert _key_path(key_env) == key_env / "state" / "journal.key"
    assert [p.name for p in (key_env / "state").iterdir()] == ["journal.key"]
    assert (key_env / "state" / "journal.key").stat().st_mode & 0o777 == 0o600


def test_a_companion_is_published_with_its_output_and_replaced_without_overwrite(tmp_path) -> None:
    """A raster's .aux.xml (its class names) goes with it: an old one (GDAL's statistics of the old file) is
    replaced, not refused as an existing output, and not deleted as stale after the rename; a failed run
    publishes neither."""
    out, aux = tmp_path / "classes.tif", tmp_path / "classes.tif.aux.xml"
    aux.write_text("old statistics")
    with publish([out], companions=[aux]) as pub:
        pub[out].write_bytes(b"1")
        pub[aux].write_text("names 1")
    assert out.read_bytes() == b"1" and aux.read_text() == "names 1"
    with pytest.raises(OutputError, match="exists"):
        with publish([out], companions=[aux]):
            pass
    with pytest.raises(RuntimeError, match="boom"):
        with publish([out], companions=[aux], overwrite=True) as pub:
            pub[out].write_bytes(b"2")
            pub[aux].write_text("names 2")
            raise RuntimeError("boom")
    assert out.read_bytes() == b"1" and aux.read_text() == "names 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif", "classes.tif.aux.xml"]


def test_a_failed_run_removes_the_folders_it_made_and_keeps_what_they_hold(tmp_path) -> None:
    """'predict -o new/a/b/c.tif' on a full disk left new/a/b behind, empty (QA): the folders a failed run made go
    once empty; one holding something (a resumable run's state, another file) stays, and so does a success's."""
    out = tmp_path / "new" / "a" / "b" / "c.tif"
    with pytest.raises(RuntimeError, match="boom"):
        with publish([out]) as pub:
            pub[out].write_bytes(b"x")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="boom"):
        with publish([out]) as pub:
            (out.parent / "resume-state.json").write_text("{}")  # left for a --resume
            raise RuntimeError("boom")
    assert sorted(p.name for p in out.parent.iterdir()) == ["resume-state.json"]
    with publish([tmp_path / "ok" / "d.tif"]) as pub:
        pub[0].write_bytes(b"y")
    assert (tmp_path / "ok" / "d.tif").read_bytes() == b"y"
