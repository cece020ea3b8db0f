"""Bad inputs fail before any work with one clear message; interrupted runs resume exactly."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from rsmamba.checkpoint import save_checkpoint
from rsmamba.cli import main
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from rsmamba.engine.model import LoadedModel, default_classes
from rsmamba.atomic import resume_sidecar_path
from tests.helpers.predict_models import TinyConv, register_test_models
from tests.helpers.rasters import ROOT, random_image, write_raster


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    register_test_models()
    net = TinyConv(in_chans=3, num_classes=4)
    return save_checkpoint(tmp_path / "m.pt", {
        "model": "test_tinyconv", "model_kwargs": {"in_chans": 3, "num_classes": 4}, "state_dict": net.state_dict(),
        "bands": {"image": [1, 2, 3], "dsm": False},
        "normalization": {"image": {"mean": [100.0] * 3, "std": [50.0] * 3}},
        "classes": [c.to_dict() for c in default_classes(4)],
    })


def test_checkpoint_round_trip_uses_its_bands_and_class_table(tmp_path, checkpoint) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(40, 50, bands=4))  # 4 bands; the model reads 1-3
    predict_raster(path, tmp_path / "out.tif", model=checkpoint, window=32, overlap=8)
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert json.loads(ds.tags()["CLASS_NAMES"]) == [c.name for c in default_classes(4)]
        assert set(np.unique(ds.read(1))) <= set(range(4))


def test_band_mismatch_says_what_the_model_expects(tmp_path, checkpoint) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(40, 50, bands=2))
    with pytest.raises(InputError, match=r"has 2 bands, but the model reads 3; give an image of "
                                         r"those bands, or use a model trained on 2 bands"):
        predict_raster(path, tmp_path / "out.tif", model=checkpoint)
    with pytest.raises(InputError, match="expects 3 image bands"):
        predict_raster(write_raster(tmp_path / "i4.tif", random_image(40, 50, bands=4)), tmp_path / "out.tif",
                       model=checkpoint, bands=[1, 2])
    one = write_raster(tmp_path / "i1.tif", random_image(40, 50, bands=1))
    with pytest.raises(InputError, match=r"has 1 band; --bands 1,2,4 names bands 2,4, outside 1..1"):
        predict_raster(one, tmp_path / "out.tif", model=checkpoint, bands=[1, 2, 4])
    with pytest.raises(InputError, match=r"has 2 bands; --bands 0,1,2 names band 0, outside 1..2"):  # not 'beyond'
        predict_raster(path, tmp_path / "out.tif", model=checkpoint, bands=[0, 1, 2])
    assert not (tmp_path / "out.tif").exists()


def test_dsm_without_overlap_and_unneeded_dsm(tmp_path, checkpoint, caplog) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(40, 50))
    far = write_raster(tmp_path / "dsm.tif", np.ones((20, 20), np.float32), origin=(700000.0, 5000000.0))
    with pytest.raises(InputError, match="does not overlap"):
        predict_raster(path, tmp_path / "out.tif", dsm=far, model="test_tinyconv")  # (registered: takes the DSM)
    near = write_raster(tmp_path / "dsm2.tif", np.ones((40, 50), np.float32))
    with pytest.raises(InputError, match="trained without a DSM"):
        predict_raster(path, tmp_path / "out.tif", dsm=near, model=checkpoint)
    # a DSM the model does not take is not worked on first: its 'resampled onto the image grid' warning came before
    # the refusal, and a far one was refused as not overlapping rather than as not needed
    coarse = write_raster(tmp_path / "dsm3.tif", np.ones((20, 25), np.float32), res=2.0)
    for dsm in (coarse, far):
        caplog.clear()
        with pytest.raises(InputError, match=r"trained without a DSM; drop --dsm"):
            predict_raster(path, tmp_path / "out.tif", dsm=dsm, model=checkpoint)
        assert not [r for r in caplog.records if r.levelno >= 30], [r.getMessage() for r in caplog.records]


def test_unwritable_output_and_bad_options_are_collected(tmp_path) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(40, 50))
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(InputError) as info:
        predict_raster(path, blocker / "out.tif", model=TinyConv(), blend="cosine", crop=40, overlap=16)
    text = str(info.value)
    assert "cannot write" in text and "--blend" in text and "--crop" in text
    assert len(info.value.problems) == 3


def test_library_defaults_and_refusals_are_the_clis(tmp_path, checkpoint) -> None:
    """predict_raster/detect_change defaulted to device 'cpu' (the CLI and README: auto); compress='lzw' beside
    co COMPRESS=ZSTD wrote ZSTD without a word (the CLI refused it)."""
    import inspect

    from rsmamba.change import detect_change
    from rsmamba.cli import change, predict

    for function, command in ((predict_raster, predict), (detect_change, change)):
        library = inspect.signature(function).parameters
        cli = inspect.signature(command).parameters
        assert library["device"].default == cli["device"].default.default == "auto"
        assert library["compress"].default is cli["compress"].default.default is None  # deflate unless co says
    path = write_raster(tmp_path / "img.tif", random_image(32, 32))
    out = tmp_path / "out.tif"
    with pytest.raises(InputError, match="--compress lzw and --co COMPRESS=ZSTD: both set the compression"):
        predict_raster(path, out, model=TinyConv(), compress="lzw", co={"COMPRESS": "ZSTD"})
    with pytest.raises(InputError, match="both set the compression"):
        detect_change(path, path, out, compress="zstd", co={"compress": "zstd"})
    assert not out.exists()
    predict_raster(path, out, model=checkpoint, co={"COMPRESS": "ZSTD"}, tta=False)  # auto: the CPU here, or a GPU
    with rasterio.open(out) as src:
        assert src.compression.name == "zstd"


def test_cli_missing_default_model_and_missing_input_are_one_line(tmp_path, capsys, monkeypatch) -> None:
    import rsmamba.engine.model as predict_model

    path = write_raster(tmp_path / "img.tif", random_image(20, 20))
    if predict_model.DEMO_IMAGE_MODEL.exists():  # no DSM: the image-only default runs and says which model it was
        assert main(["predict", str(path), "-o", str(tmp_path / "o1.tif")]) == 0
        out = capsys.readouterr().out
        assert "demo_image_model.pt" in out and "image-only" in out
    monkeypatch.setattr(predict_model, "DEMO_IMAGE_MODEL", tmp_path / "no_image_model.pt")
    if predict_model.DEMO_MODEL.exists():  # without it, the image+DSM model needs a DSM: said in one line too
        assert main(["predict", str(path), "-o", str(tmp_path / "o2.tif")]) == 2
        assert "pass --dsm" in capsys.readouterr().err
    monkeypatch.setattr(predict_model, "DEMO_MODEL", tmp_path / "not_shipped.pt")
    assert main(["predict", str(path), "-o", str(tmp_path / "o.tif")]) == 2
    assert main(["predict", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "o.tif"), "--model", "x.pt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "demo model" in err[0] and "file not found" in err[1]


def test_cli_predicts_with_a_checkpoint(tmp_path, checkpoint, capsys) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(40, 50))
    args = ["predict", str(path), "-o", str(tmp_path / "o.tif"), "--model", str(checkpoint), "--window", "32",
            "--overlap", "8", "--blend", "spline"]
    assert main([*args, "--dry-run"]) == 0
    assert "network passes about" in capsys.readouterr().out and not (tmp_path / "o.tif").exists()
    assert main(args) == 0
    assert (tmp_path / "o.tif").exists()


class Interrupting(torch.nn.Module):
    """Wraps a net and raises KeyboardInterrupt on forward number ``after`` (a Ctrl-C mid-run)."""

    def __init__(self, net: torch.nn.Module, after: int) -> None:
        super().__init__()
        self.net, self.after, self.calls = net, after, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return self.net(x)


def _read_all(*paths: Path) -> list[np.ndarray]:
    """Every pixel of every file, overview levels included (the writer fills levels as rows arrive)."""
    out = []
    for p in paths:
        with rasterio.open(p) as ds:
            out.append(ds.read())
            levels = len(ds.overviews(1))
        for level in range(levels):
            with rasterio.open(p, OVERVIEW_LEVEL=level) as ov:
                out.append(ov.read())
    return out


def test_interrupted_run_resumes_to_the_same_file(tmp_path) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(600, 90, seed=4))
    net = TinyConv(num_classes=4).eval()
    kw = dict(window=64, overlap=16, batch_size=4, probabilities=tmp_path / "p.tif")
    predict_raster(path, tmp_path / "ref.tif", model=LoadedModel(net, classes=default_classes(4)),
                   **{**kw, "probabilities": tmp_path / "pref.tif"})

    out = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):  # one forward per 2 grid rows (4 windows): stops around row 400
        predict_raster(path, out, model=LoadedModel(Interrupting(net, after=5), classes=default_classes(4)), **kw)
    assert not out.exists()
    state = json.loads(resume_sidecar_path(out).read_text())
    assert state["rows_done"] == 256  # complete tile rows only
    assert state["torch_threads"] == torch.get_num_threads()  # a resume at another count is warned about

    with pytest.raises(InputError, match=r"other inputs or parameters \(--overlap\)"):  # which one, named
        predict_raster(path, out, model=LoadedModel(net, classes=default_classes(4)), resume=True,
                       **{**kw, "overlap": 8})
    # a dry run checks the record as the run does (it said nothing, and the run was then refused)
    with pytest.raises(InputError, match=r"other inputs or parameters \(--overlap\)"):
        predict_raster(path, out, model=LoadedModel(net, classes=default_classes(4)), resume=True, dry_run=True,
                       **{**kw, "overlap": 8})
    dry = predict_raster(path, out, model=LoadedModel(net, classes=default_classes(4)), resume=True, dry_run=True, **kw)
    assert "would resume at row 256" in dry.describe() and resume_sidecar_path(out).is_file()
    plain = predict_raster(path, out, model=LoadedModel(net, classes=default_classes(4)), dry_run=True, **kw)
    assert "had reached row 256; without --resume it starts again" in plain.describe()  # said before it is lost
    with pytest.raises(InputError, match="no interrupted run to resume"):
        predict_raster(path, tmp_path / "other.tif", model=LoadedModel(net, classes=default_classes(4)), resume=True,
                       dry_run=True, **kw)
    counting = Interrupting(net, after=10_000)
    summary = predict_raster(path, out, model=LoadedModel(counting, classes=default_classes(4)), resume=True, **kw)
    assert summary.resumed_from_row == 256
    assert summary.pixels_resumed == 256 * 90  # its MPix/s counts the rows it computed, not the whole raster
    assert summary.mpix_per_s == pytest.approx((600 - 256) * 90 / 1e6 / summary.seconds)
    assert counting.calls < 6  # did not start over (12 grid rows of 2 windows: 6 batches in all)
    for got, ref in zip(_read_all(out, tmp_path / "p.tif"), _read_all(tmp_path / "ref.tif", tmp_path / "pref.tif")):
        np.testing.assert_array_equal(got, ref)
    assert not resume_sidecar_path(out).exists() and not list(tmp_path.glob(".*scratch*"))
    with pytest.raises(InputError, match="no interrupted run to resume: .*out.tif is complete .use --overwrite"):
        predict_raster(path, out, model=LoadedModel(net, classes=default_classes(4)), resume=True, **kw)


def test_a_run_without_resume_says_it_starts_an_interrupted_run_again(tmp_path, caplog) -> None:
    """A killed run's rows were computed again from row 0 under the normal summary: a forgotten --resume on a long
    scene lost its work unsaid (QA). Said; another run's record (other settings) is not this run's to mention."""
    path = write_raster(tmp_path / "img.tif", random_image(600, 90, seed=4))
    net = TinyConv(num_classes=4).eval()
    kw = dict(window=64, overlap=16, batch_size=4)
    out = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_raster(path, out, model=LoadedModel(Interrupting(net, after=5), classes=default_classes(4)), **kw)
    with caplog.at_level("WARNING"):
        predict_raster(path, out, model=LoadedModel(net, classes=default_classes(4)), **{**kw, "overlap": 8},
                       overwrite=True)
    assert "interrupted run" not in caplog.text  # other settings: no run to take up
    out.unlink()
    with pytest.raises(KeyboardInterrupt):
        predict_raster(path, out, model=LoadedModel(Interrupting(net, after=5), classes=default_classes(4)), **kw)
    with caplog.at_level("WARNING"):
        predict_raster(path, out, model=LoadedModel(net, classes=default_classes(4)), **kw)
    assert "an interrupted run of out.tif with these settings had reached row 256; without --resume" in caplog.text


def test_a_vrt_member_replaced_before_resume_is_refused(tmp_path) -> None:
    """A VRT's fingerprint was its XML alone: a mosaic member replaced before --resume spliced the old rows and
    the new into one output, exit 0."""
    from rasterio.shutil import copy as rio_copy

    member = write_raster(tmp_path / "img.tif", random_image(600, 90, seed=4))
    vrt = tmp_path / "mosaic.vrt"
    rio_copy(member, vrt, driver="VRT")
    net = TinyConv(num_classes=4).eval()
    fixed = {"mean": [128.0] * 3, "std": [50.0] * 3}  # a checkpoint's statistics: nothing read from the image
    kw = dict(window=64, overlap=16, batch_size=4)
    out = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):
        predict_raster(vrt, out, model=LoadedModel(Interrupting(net, after=5), classes=default_classes(4),
                                                   image_norm=fixed), **kw)
    write_raster(member, random_image(600, 90, seed=5))  # same size and name, other pixels
    os.utime(member, ns=(1, 1))  # another mtime whatever the file system's clock resolution
    with pytest.raises(InputError, match=r"other inputs or parameters \(the image \(another file, or changed"):
        predict_raster(vrt, out, model=LoadedModel(net, classes=default_classes(4), image_norm=fixed), resume=True, **kw)


def test_resume_without_an_interrupted_run_is_refused(tmp_path) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(30, 30))
    with pytest.raises(InputError, match="no interrupted run"):
        predict_raster(path, tmp_path / "o.tif", model=LoadedModel(TinyConv(), classes=default_classes(4)), resume=True)


KILL_SCRIPT = """
import sys, time, torch
sys.path.insert(0, {root!r})
from rsmamba.predict import predict_raster
from rsmamba.engine.model import LoadedModel, default_classes
from tests.helpers.predict_models import TinyConv

class Slow(torch.nn.Module):
    def __init__(self, net):
        super().__init__(); self.net = net
    def forward(self, x):
        time.sleep(0.15); return self.net(x)

predict_raster({img!r}, {out!r}, model=LoadedModel(Slow(TinyConv(num_classes=4).eval()), classes=default_classes(4)),
               window=64, overlap=16, batch_size=4)
"""


def test_sigkill_then_resume_equals_uninterrupted(tmp_path) -> None:
    path = write_raster(tmp_path / "img.tif", random_image(1100, 60, seed=5))
    out = tmp_path / "out.tif"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT), img=str(path), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT)
    sidecar = resume_sidecar_path(out)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if sidecar.exists() and json.loads(sidecar.read_text() or "{}").get("rows_done", 0) > 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not out.exists()
    net = TinyConv(num_classes=4).eval()
    summary = predict_raster(path, out, model=LoadedModel(net, classes=default_classes(4)), window=64, overlap=16,
                             batch_size=4, resume=True)
    assert summary.resumed_from_row > 0
    predict_raster(path, tmp_path / "ref.tif", model=LoadedModel(net, classes=default_classes(4)), window=64,
                   overlap=16, batch_size=4)
    got, ref = _read_all(out), _read_all(tmp_path / "ref.tif")
    assert len(got) == len(ref) > 1  # overview levels included
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)


def test_column_strips_and_resume_across_strips(tmp_path) -> None:
    """Wide rasters go strip by strip: same file as one strip, and a resume picks up at its strip.

    Overview levels too: the writer fills them strip by strip, the resumed run goes on filling
    the first run's, and an odd-sized raster's cascade of partial 2 x 2 blocks is that of the whole.
    """
    from rsmamba.engine.overviews import mean_2x2, mode_2x2

    path = write_raster(tmp_path / "img.tif", random_image(301, 601, seed=6))
    net = TinyConv(num_classes=4).eval()
    kw = dict(window=64, overlap=16, batch_size=4, strip_width=256)
    predict_raster(path, tmp_path / "one.tif", model=LoadedModel(net, classes=default_classes(4)),
                   probabilities=tmp_path / "pone.tif", **kw)
    out = tmp_path / "out.tif"
    with pytest.raises(KeyboardInterrupt):  # strip 0 runs 9 batches (6 x 6 windows), strip 1 then 11
        predict_raster(path, out, model=LoadedModel(Interrupting(net, after=14), classes=default_classes(4)),
                       probabilities=tmp_path / "p.tif", **kw)
    progress = json.loads(resume_sidecar_path(out).read_text())
    assert progress["strip"] == 1  # strip 0 (columns 0-255) is complete on disk
    summary = predict_raster(path, out, model=LoadedModel(Interrupting(net, after=10_000), classes=default_classes(4)),
                             probabilities=tmp_path / "p.tif", resume=True, **kw)
    assert summary.resumed_strip == 1 and summary.pixels_resumed == 256 * 301 + (summary.resumed_from_row * 256
                                                                                  if summary.resumed_from_row else 0)
    got, ref = _read_all(out, tmp_path / "p.tif"), _read_all(tmp_path / "one.tif", tmp_path / "pone.tif")
    assert len(got) == len(ref) == 6  # each file: full resolution, factors 2 and 4
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    classes, c2, c4, probs, p2, p4 = got
    np.testing.assert_array_equal(c2[0], mode_2x2(classes[0], 255))
    np.testing.assert_array_equal(c4[0], mode_2x2(c2[0], 255))
    for band in range(probs.shape[0]):
        np.testing.assert_array_equal(p2[band], mean_2x2(probs[band], 255))
        np.testing.assert_array_equal(p4[band], mean_2x2(p2[band], 255))
    assert not list(tmp_path.glob(".*scratch*")), "scratch or overview files left behind"


class Recording(torch.nn.Module):
    """Records every completed forward call as the tuple of its windows' ids (a hash of each input).

    With ``after``, forward number ``after`` raises KeyboardInterrupt instead (a Ctrl-C mid-run).
    """

    def __init__(self, net: torch.nn.Module, after: int | None = None) -> None:
        super().__init__()
        self.net, self.after, self.calls = net, after, []

    def forward(self, x):
        if self.after is not None and len(self.calls) + 1 == self.after:
            raise KeyboardInterrupt
        self.calls.append(tuple(hashlib.sha1(w.contiguous().numpy().tobytes()).hexdigest()[:12] for w in x))
        return self.net(x)


def test_resume_and_strips_form_exactly_the_batches_of_one_pass(tmp_path) -> None:
    """Equality of a resumed run does not rest on float luck: each window it recomputes goes
    through the network in the same batch (same windows, same order) as in the uninterrupted run,
    and the resumed forward calls are exactly the last calls of the uninterrupted run. A strip
    batches its own windows: only the windows crossing a strip border are computed twice (batches
    of the whole grid's rows made each strip compute its neighbour's windows: 31 % more at 20000 px)."""
    from rsmamba.engine.run import plan_strips
    from rsmamba.raster.windows import WindowGrid

    path = write_raster(tmp_path / "img.tif", random_image(300, 600, seed=6))
    net = TinyConv(num_classes=4).eval()
    kw = dict(window=64, overlap=16, batch_size=4, probabilities=tmp_path / "p.tif")

    def run(out: str, wrapper: Recording, **extra) -> Recording:
        predict_raster(path, tmp_path / out, model=LoadedModel(wrapper, classes=default_classes(4)), **{**kw, **extra})
        return wrapper

    one_pass = run("one.tif", Recording(net), probabilities=tmp_path / "pone.tif")
    strips = run("strips.tif", Recording(net), strip_width=256, probabilities=tmp_path / "pstrips.tif")
    with pytest.raises(KeyboardInterrupt):
        run("out.tif", Recording(net, after=14), strip_width=256)
    assert json.loads(resume_sidecar_path(tmp_path / "out.tif").read_text())["strip"] == 1
    resumed = run("out.tif", Recording(net), strip_width=256, resume=True)

    def batch_of(calls: list[tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        where: dict[str, tuple[str, ...]] = {}
        for call in calls:
            for window in call:
                assert where.setdefault(window, call) == call  # a window is always in the same batch
        return where

    assert len(batch_of(one_pass.calls)) == 6 * 13  # every window of the 6 x 13 grid, each in one batch
    plan = plan_strips(WindowGrid(600, 300, 64, 16), 600, 256)
    assert sum(len(c) for c in strips.calls) == sum(6 * len(s.col_offsets) for s in plan)  # its own windows only
    assert 0 < len(resumed.calls) < len(strips.calls)  # it resumed, not started over
    assert resumed.calls == strips.calls[-len(resumed.calls):]  # the same forward calls, in the same order
    for got, ref in zip(_read_all(tmp_path / "out.tif", tmp_path / "p.tif"),
                        _read_all(tmp_path / "strips.tif", tmp_path / "pstrips.tif")):
        np.testing.assert_array_equal(got, ref)


def test_an_untrained_image_and_dsm_model_without_a_dsm_is_one_line(tmp_path, capsys) -> None:
    """Its DSM branch took the third image band as the DSM, then failed deep in a convolution."""
    path = write_raster(tmp_path / "img.tif", random_image(40, 50))
    assert main(["predict", str(path), "-o", str(tmp_path / "out.tif"), "--model", "mambaseg_tiny",
                 "--window", "32"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "rsmamba: error: model 'mambaseg_tiny' reads an image and a DSM; pass --dsm")


def test_a_dsm_far_from_the_training_heights_is_refused_or_warned(tmp_path) -> None:
    """The shipped image+DSM model z-scores absolute heights (40.8 +- 3.8 m): a town 500 m higher read
    as 98 % building without a word. The distance prints one decimal: a refusal at 12.002 once said "12"."""
    import numpy as np
    import rasterio

    from rsmamba.errors import InputError
    from rsmamba.predict import predict_raster

    examples = Path(__file__).resolve().parents[2] / "examples" / "scene"
    with rasterio.open(examples / "dsm.tif") as src:
        profile, heights = src.profile, src.read(1, window=((0, 256), (0, 256)))
        transform = src.transform
    with rasterio.open(examples / "ortho.tif") as src:
        ortho_profile, ortho = src.profile, src.read(window=((0, 256), (0, 256)))
    ortho_profile.update(width=256, height=256, transform=transform)
    profile.update(width=256, height=256)
    image = tmp_path / "ortho.tif"
    with rasterio.open(image, "w", **ortho_profile) as dst:
        dst.write(ortho)
    for name, offset in (("high", 500.0), ("low", -40.0)):
        with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
            dst.write((heights + offset)[None].astype(profile["dtype"]))
    with pytest.raises(InputError, match=r"\d+\.\d standard deviations from the 40\.8"):
        predict_raster(image, tmp_path / "out_high.tif", dsm=tmp_path / "high.tif")
    assert not (tmp_path / "out_high.tif").exists()
    summary = predict_raster(image, tmp_path / "out_low.tif", dsm=tmp_path / "low.tif")
    assert any("standard deviations" in w and "weaker map" in w for w in summary.warnings)


def test_a_resume_with_another_torch_thread_count_is_said(tmp_path, caplog, monkeypatch) -> None:
    """Float sums round otherwise at another thread count: a resumed file then matched neither run."""
    import rsmamba.engine.resume as resume

    state = resume.ResumeState(tmp_path / "c.tif", {"x": 1}, 100)
    monkeypatch.setattr(resume, "torch_threads", lambda: torch.get_num_threads() + 3)  # the interrupted run's
    state.save(0, 64)
    monkeypatch.undo()
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert state.load([]) == (0, 64)
    assert f"the interrupted one had {torch.get_num_threads() + 3}" in caplog.text


@pytest.mark.parametrize("edit", ["rows", "strip", "truncated", "list", "no-point"])
def test_an_edited_resume_state_is_refused_in_one_line(tmp_path, edit) -> None:
    """rows_done edited from 768 to 1536 (or strip to 9): --resume published the rows it skipped as nodata (62.5 % of
    a map, exit 0, 'every row had been computed'); a truncated or odd sidecar gave a traceback."""
    from rsmamba.engine.resume import ResumeState

    state = ResumeState(tmp_path / "c.tif", {"x": 1}, 2048)
    state.save(0, 768)
    data = json.loads(state.path.read_text())
    text = {"rows": json.dumps({**data, "rows_done": 1536}), "strip": json.dumps({**data, "strip": 9}),
            "truncated": state.path.read_text()[:20], "list": "[1, 2]",
            "no-point": json.dumps({"params": "digest"})}[edit]
    state.path.write_text(text)
    with pytest.raises(InputError, match=r"--resume: \.c\.tif\.predict-resume\.json is not the state an interrupted "
                                         r"rsmamba run wrote with this user's key /\S+/journal\.key \(edited, truncated or received"):
        state.load([])


@pytest.mark.parametrize("kind", ["nodata", "alpha", "nan"])
def test_an_image_without_a_valid_pixel_is_refused_not_mapped_as_nodata(tmp_path, checkpoint, kind) -> None:
    """All nodata, alpha 0 everywhere or all NaN: an all-255 map and 'done' (exit 0); tile and change refused."""
    from rasterio.enums import ColorInterp

    if kind == "nan":
        path = write_raster(tmp_path / "img.tif", np.full((3, 40, 50), np.nan, np.float32))
    elif kind == "alpha":
        path = write_raster(tmp_path / "img.tif", np.concatenate([random_image(40, 50), np.zeros((1, 40, 50), np.uint8)]))
        with rasterio.open(path, "r+") as ds:
            ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    else:
        path = write_raster(tmp_path / "img.tif", np.zeros((3, 40, 50), np.uint8), nodata=0)
    assert main(["predict", str(path), "--model", str(checkpoint), "-o", str(tmp_path / "p.tif"), "-q"]) == 2
    assert not (tmp_path / "p.tif").exists()


def test_an_image_whose_data_the_sample_windows_miss_is_still_mapped(tmp_path, checkpoint) -> None:
    """A thin corridor of data in a large nodata canvas: the start-up sample finds no valid pixel, the image
    has some (it was refused as 'nothing to map')."""
    from rsmamba.raster.source import AlignedSource
    from rsmamba.raster.validate import SAMPLE_PIXELS, check_some_valid
    from rsmamba.raster.windows import CHECK_PER_AXIS, sample_windows

    img = np.zeros((3, 1200, 1200), np.uint8)
    sampled = np.zeros((1200, 1200), bool)
    for w in sample_windows(1200, 1200, SAMPLE_PIXELS, min_per_axis=CHECK_PER_AXIS):
        sampled[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] = True
    rows, cols = np.nonzero(~sampled)
    img[:, rows[0], cols[0]] = 90  # one valid pixel, outside every sampled window
    path = write_raster(tmp_path / "img.tif", img, nodata=0)
    with AlignedSource(path) as src:
        check_some_valid(src, "image")  # no refusal
