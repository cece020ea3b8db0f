"""Issue #13 part A beyond the bad-input matrix: the error boundary under both click flavours, group
options, safe checkpoint loading, validation against the training data, small rasters."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from rsmamba import cli
from rsmamba.checkpoint import load_checkpoint
from rsmamba.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "rsmamba" / "data" / "demo_model.pt"
DEMO_CHANGE = ROOT / "rsmamba" / "data" / "demo_change_model.pt"
DEMO_IMAGE = ROOT / "rsmamba" / "data" / "demo_image_model.pt"
OLINDA = ROOT / "examples" / "olinda"


# -- the error boundary ---------------------------------------------------------------------------
def _usage_error_classes() -> list[type]:
    """UsageError of click itself and of typer's bundled copy (typer >= 0.16), whichever exist."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(importlib.import_module(module).UsageError)
        except ImportError:
            pass
    return found


@pytest.mark.parametrize("error_class", _usage_error_classes(), ids=lambda c: c.__module__)
def test_usage_errors_of_either_click_are_one_line_exit_2(monkeypatch, capsys, error_class) -> None:
    def raising_app(*args, **kwargs):
        raise error_class("bad thing\non two lines")

    monkeypatch.setattr(cli, "app", raising_app)
    assert cli.main(["predict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rsmamba: error: bad thing on two lines")


def test_input_errors_and_os_errors_are_one_line_bugs_keep_their_traceback(monkeypatch, capsys) -> None:
    for exc, code in ((InputError(["a", "b"]), 2), (PermissionError(13, "Permission denied", "x.tif"), 2)):
        def raising_app(*args, _exc=exc, **kwargs):
            raise _exc

        monkeypatch.setattr(cli, "app", raising_app)
        assert cli.main([]) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("rsmamba: error:")

    def buggy_app(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "app", buggy_app)
    with pytest.raises(ZeroDivisionError):
        cli.main([])


def test_version_and_python_m(capsys) -> None:
    from rsmamba import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rsmamba {__version__}"
    run = subprocess.run([sys.executable, "-m", "rsmamba", "--version"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == f"rsmamba {__version__}"


def test_help_and_usage_errors_do_not_import_torch() -> None:
    code = ("import sys; from rsmamba.cli import main; a = main(['--help']); b = main(['predict', 'x.tif', "
            "'-o', 'y.tif', '--window', 'abc']); c = main(['predict', 'nope.tif', '-o', 'y.tif']); "
            "print(a, b, c, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.stdout.strip().splitlines()[-1] == "0 2 2 False", run.stderr


def test_a_raster_without_georeferencing_is_one_error_line_without_rasterio_warning(tmp_path) -> None:
    """rasterio warns in two lines (file:line and source) on opening it; the verb's own error says it."""
    path = tmp_path / "plain.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=3, dtype="uint8") as dst:
            dst.write(np.ones((3, 8, 8), np.uint8))
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    for verb in (["predict", str(path), "-o", str(tmp_path / "p.tif")], ["vectorize", str(path), "-o",
                 str(tmp_path / "v.gpkg")]):
        run = subprocess.run([sys.executable, "-m", "rsmamba", *verb], capture_output=True, text=True, timeout=120,
                             env=env, cwd=tmp_path)
        assert run.returncode == 2 and run.stderr.splitlines() == [run.stderr.strip()], run.stderr
        assert run.stderr.startswith("rsmamba: error: ") and "Warning" not in run.stderr, run.stderr


def test_verbosity_flags_after_the_verb_stop_at_double_dash() -> None:
    from rsmamba.cli_options import verbosity_flags

    assert verbosity_flags(["a.tif", "-q", "-o", "b.tif", "-vvv", "--quiet"]) == (["a.tif", "-o", "b.tif"], 1)
    assert verbosity_flags(["-", "--", "-q"]) == (["-", "--", "-q"], 0)
    # leading a cluster of the verb's options ('-qo x.tif' said 'No such option: -q'); '-oq' is -o's value q
    assert verbosity_flags(["a.tif", "-qo", "x.tif", "-vqx", "-oq"]) == (["a.tif", "-o", "x.tif", "-x", "-oq"], -1)


def test_an_options_value_that_looks_like_a_verbosity_flag_is_the_value(tmp_path, monkeypatch) -> None:
    """'-o -v.tif' wrote '-.tif' (and turned DEBUG logging on); 'tile -o -vchips' wrote '-chips'."""
    from rsmamba.cli_options import verbosity_flags
    from tests.helpers.rasters import write_raster

    values = frozenset({"-o", "--out"})
    assert verbosity_flags(["a.tif", "-o", "-v.tif", "-q"], values) == (["a.tif", "-o", "-v.tif"], -1)
    assert verbosity_flags(["a.tif", "-qo", "-vq"], values) == (["a.tif", "-o", "-vq"], -1)
    monkeypatch.chdir(tmp_path)
    ref = write_raster(tmp_path / "r.tif", np.zeros((8, 8), np.uint8))
    assert cli.main(["evaluate", str(ref), str(ref), "-o", "-v_m.json"]) == 0
    assert (tmp_path / "-v_m.json").exists() and not (tmp_path / "-_m.json").exists()


def test_mixed_verbosity_clusters_after_the_verb_count_as_before_it(capsys) -> None:
    """'rsmamba models -qv' was 'No such option: -q' while 'rsmamba -qv models' ran."""
    from rsmamba.cli_options import STATE, verbosity_flags

    assert verbosity_flags(["a.tif", "-qvv", "-vq", "-qqv"]) == (["a.tif"], 0)
    try:
        for argv in (["-qqv", "synth", "--help"], ["synth", "--help", "-qqv"], ["synth", "-vqq", "--help"]):
            assert cli.main(argv) == 0, argv
            assert STATE.verbosity == -1, argv
    finally:
        cli.main(["synth", "--help"])  # back to the defaults for later tests
    capsys.readouterr()


def test_quiet_and_verbose_set_log_level_and_progress(monkeypatch) -> None:
    from rsmamba.cli_options import STATE

    try:
        assert cli.main(["-q", "synth", "--help"]) == 0
        assert STATE.verbosity == -1 and not STATE.progress
        assert logging.getLogger("rsmamba").level == logging.WARNING
        assert cli.main(["-vv", "synth", "--help"]) == 0
        assert logging.getLogger("rsmamba").level == logging.DEBUG
        assert cli.main(["synth", "--help", "-q"]) == 0  # after the verb, as GDAL's tools take it
        assert STATE.verbosity == -1 and logging.getLogger("rsmamba").level == logging.WARNING
        assert cli.main(["-q", "synth", "--quiet", "-qq", "--help"]) == 0
        assert STATE.verbosity == -4
        assert cli.main(["-v", "synth", "--help", "-v"]) == 0
        assert STATE.verbosity == 2
        monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))  # not a terminal: no progress bars
        assert not STATE.progress
    finally:
        cli.main(["synth", "--help"])  # back to the defaults for later tests


# -- safe checkpoints -------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_shipped_checkpoints_load_safely_with_their_weights() -> None:
    for path in (DEMO, DEMO_CHANGE, DEMO_IMAGE):
        ckpt = load_checkpoint(path)
        plain = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt["state_dict"].keys() == plain["state_dict"].keys()
        assert all(torch.equal(ckpt["state_dict"][k], plain["state_dict"][k]) for k in plain["state_dict"])


def test_payloads_never_run_from_checkpoints_or_named_weight_files(tmp_path) -> None:
    from rsmamba.models import create_model

    marker = tmp_path / "RAN"
    demo = torch.load(DEMO, map_location="cpu", weights_only=True)
    torch.save({**demo, "extra": _Payload(marker)}, tmp_path / "hidden.pt")
    torch.save({"model": _Payload(marker)}, tmp_path / "weights.pth")
    with pytest.raises(InputError, match="refused.*posix.system|refused.*nt.system"):
        load_checkpoint(tmp_path / "hidden.pt")
    from rsmamba.pretrained import load_pretrained

    for name in ("cmtunet_tiny", "mambafcs_tiny"):  # ResNet and VMamba weight loaders
        with pytest.raises(InputError, match="refused"):
            load_pretrained(create_model(name), str(tmp_path / "weights.pth"))
    assert not marker.exists()


def test_a_text_file_starting_with_c_is_said_as_text_and_a_protocol_0_pickle_still_refused(tmp_path) -> None:
    """'c' is pickle's GLOBAL opcode: a class table 'classes:' given as --model was said to hold Python objects
    '(lasses)' that could run code (QA). Text that names no module is said as the text it is; a protocol-0 pickle
    that imports (c<module>\\n<name>) is refused as before, and never runs."""
    import pickle

    (tmp_path / "classes.yaml").write_text("classes:\n  - {id: 0, name: ground}\n")
    (tmp_path / "notes.txt").write_text("checkpoint: r2/best.pt\n")
    for name, text in (("classes.yaml", "classes: - {id: 0, name: ground}"), ("notes.txt", "checkpoint: r2/best.pt")):
        with pytest.raises(InputError, match=f"not a PyTorch or safetensors file \\(text: '{re.escape(text)}'\\)"):
            load_checkpoint(tmp_path / name)
    marker = tmp_path / "RAN"
    (tmp_path / "evil0.pt").write_bytes(pickle.dumps(_Payload(marker), protocol=0))
    # in a dict ('(dp0 ... cposix system'): torch stops at another opcode; it was said as 'text: (dp0' (QA)
    (tmp_path / "dict0.pt").write_bytes(pickle.dumps({"state_dict": _Payload(marker)}, protocol=0))
    for name in ("evil0.pt", "dict0.pt"):
        with pytest.raises(InputError, match="refused.*(posix|nt).system.*could run code"):
            load_checkpoint(tmp_path / name)
    assert not marker.exists()


def test_old_training_state_with_numpy_rng_still_loads(tmp_path) -> None:
    """Training checkpoints saved np.random.get_state() (numpy arrays): the exact numpy globals are allowed."""
    demo = torch.load(DEMO, map_location="cpu", weights_only=True)
    torch.save({**demo, "train_state": {"rng": {"numpy": np.random.get_state()}}}, tmp_path / "old.pt")
    state = load_checkpoint(tmp_path / "old.pt")["train_state"]["rng"]["numpy"]
    assert state[0] == "MT19937" and state[1].dtype == np.uint32


# -- no silent garbage --------------------------------------------------------------------------------
def _scene(tmp_path: Path) -> dict[str, Path]:
    from rsmamba.synth import write_scene

    return write_scene(tmp_path / "scene", size=128, seed=5)


def test_nan_pixels_are_nodata_not_a_class_0_map(tmp_path) -> None:
    from rsmamba.predict import predict_raster

    paths = _scene(tmp_path)
    with rasterio.open(paths["ortho_t1"]) as src:
        profile, img = src.profile, src.read().astype(np.float32)
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 128, 200), rng.integers(0, 128, 200)
    img[:, rows, cols] = np.nan
    img[0, rows[:40], cols[:40]] = np.inf
    with rasterio.open(tmp_path / "nan.tif", "w", **{**profile, "dtype": "float32", "nodata": None}) as dst:
        dst.write(img)
    predict_raster(paths["ortho_t1"], tmp_path / "ref.tif", dsm=paths["dsm_t1"], window=128, overlap=32)
    predict_raster(tmp_path / "nan.tif", tmp_path / "nan_cls.tif", dsm=paths["dsm_t1"], window=128, overlap=32)
    ref, got = rasterio.open(tmp_path / "ref.tif").read(1), rasterio.open(tmp_path / "nan_cls.tif").read(1)
    bad = np.zeros(ref.shape, bool)
    bad[rows, cols] = True
    assert np.all(got[bad] == 255)  # nodata where the ortho had NaN/inf
    assert np.mean(got[~bad] == ref[~bad]) > 0.9  # the rest is the map, not one class
    assert len(np.unique(got[~bad])) > 2


def test_checkpoint_records_training_dtype_and_range(tmp_path) -> None:
    from tests.helpers.scenes import write_chips

    from rsmamba.datasets.chips import read_tiling

    norm = read_tiling(write_chips(tmp_path, size=64, chip=32)).normalization()["image"]
    assert norm["dtype"] == "uint8" and len(norm["minimum"]) == len(norm["mean"]) == len(norm["maximum"])


def test_tile_marks_chips_with_nan_pixels_as_not_fully_valid(tmp_path) -> None:
    import csv

    from rsmamba.tile import tile_scene

    paths = _scene(tmp_path)
    with rasterio.open(paths["ortho_t1"]) as src:
        profile, img = src.profile, src.read().astype(np.float32)
    img[:, 5:7, 5:7] = np.nan  # inside chip r00_c00
    with rasterio.open(tmp_path / "nan.tif", "w", **{**profile, "dtype": "float32", "nodata": None}) as dst:
        dst.write(img)
    tile_scene(tmp_path / "nan.tif", tmp_path / "chips", labels=paths["labels_t1"], size=64, min_valid=0.5)
    rows = {r["chip_id"]: r for r in csv.DictReader(open(tmp_path / "chips" / "manifest.csv"))}
    first = min(rows)
    assert float(rows[first]["valid_fraction"]) == pytest.approx(1 - 4 / 64**2, abs=1e-6)


# -- small rasters and conventions ------------------------------------------------------------------------
def test_olinda_and_a_1x1_raster_predict(tmp_path, caplog) -> None:
    from rsmamba.predict import predict_raster

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="rsmamba"):
        warnings.simplefilter("always")
        s = predict_raster(OLINDA / "L7_ETMs.tif", tmp_path / "olinda.tif", dsm=OLINDA / "olinda_dem_utm25s.tif",
                           bands=[3, 2, 1], window=512, overlap=128)
    assert (s.width, s.height) == (349, 352)
    assert not [w for w in caught if "padding='same'" in str(w.message)]
    assert sum("resampled" in r.getMessage() for r in caplog.records) <= 1  # logged once (once per process)
    with rasterio.open(tmp_path / "olinda.tif") as ds:
        classes = ds.read(1)
    assert classes.shape == (352, 349) and np.mean(classes == 255) < 0.01  # the DEM stops short of the last row
    assert len(np.unique(classes)) > 2

    with rasterio.open(OLINDA / "L7_ETMs.tif") as src:
        profile = {**src.profile, "width": 1, "height": 1, "count": 3}
        pixel = src.read([3, 2, 1], window=((100, 101), (100, 101)))
    with rasterio.open(tmp_path / "one.tif", "w", **profile) as dst:
        dst.write(pixel)
    with rasterio.open(tmp_path / "one_dsm.tif", "w", **{**profile, "count": 1, "dtype": "float32"}) as dst:
        dst.write(np.full((1, 1, 1), 40.0, np.float32))
    predict_raster(tmp_path / "one.tif", tmp_path / "one_cls.tif", dsm=tmp_path / "one_dsm.tif")
    with rasterio.open(tmp_path / "one_cls.tif") as ds:
        assert ds.read(1).shape == (1, 1) and ds.read(1)[0, 0] < 6


def test_change_takes_predicts_options_on_a_raster_no_stride_divides(tmp_path) -> None:
    from rsmamba.change import detect_change

    paths = _scene(tmp_path)
    for name in ("ortho_t1", "ortho_t2"):
        with rasterio.open(paths[name]) as src:
            profile, img = src.profile, src.read(window=((0, 77), (0, 93)))
        with rasterio.open(tmp_path / f"{name}.tif", "w", **{**profile, "width": 93, "height": 77,
                                                                   "transform": src.transform}) as dst:
            dst.write(img)
    t1, t2 = tmp_path / "ortho_t1.tif", tmp_path / "ortho_t2.tif"
    dry = detect_change(t1, t2, tmp_path / "dry.tif", dry_run=True)
    assert dry.dry_run and not (tmp_path / "dry.tif").exists()
    s = detect_change(t1, t2, tmp_path / "c.tif", tta=True, compress="zstd", window=64, overlap=16)
    with rasterio.open(tmp_path / "c.tif") as ds:
        assert ds.shape == (77, 93) and ds.profile["compress"].lower() == "zstd"
    assert s.windows >= 4
    with pytest.raises(InputError, match="--compress 'jpeg': lossy"):
        detect_change(t1, t2, tmp_path / "j.tif", compress="jpeg")
    with pytest.raises(InputError, match="--resume"):
        detect_change(t1, t2, tmp_path / "r.tif", resume=True)


def test_predict_in_row_slices_follows_quiet(monkeypatch, tmp_path) -> None:
    """``predict --slice-rows`` passes the progress choice on like every verb: bars on a terminal, none with -q."""
    import rsmamba.cli_options as options
    import rsmamba.predict.slices as slices

    seen = []

    class _Summary:
        def describe(self) -> str:
            return "sliced"

    def fake(*args, **kwargs):
        seen.append(kwargs["progress"])
        return _Summary()

    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "ortho.tif", random_image(32, 32))  # checked by preflight, never predicted
    monkeypatch.setattr(slices, "predict_slices", fake)
    monkeypatch.setattr(options, "_isatty", lambda stream: True)
    try:
        for flags, after in (([], []), (["-q"], []), ([], ["-q"])):
            assert cli.main([*flags, "predict", str(image), "-o", str(tmp_path / "o.tif"), "--slice-rows", "64",
                             *after]) == 0
    finally:
        cli.main(["synth", "--help"])  # back to the defaults for later tests
    assert seen == [True, False, False]


INTERRUPTED_CHILD = """
import sys, time
import rsmamba.synth
from rsmamba.cli import main

def slow(*args, **kwargs):
    try:  # READY inside: a signal right after it is already inside the try (else a race the test could lose)
        print('READY', flush=True)
        time.sleep(60)
    finally:
        print('UNWOUND', flush=True)  # finally blocks run: locks and temporary files are cleaned up

rsmamba.synth.write_scene = slow
sys.exit(main(['synth', '-o', sys.argv[1]]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig, code, line", [("SIGINT", 130, "rsmamba: interrupted"),
                                             ("SIGTERM", 143, "rsmamba: terminated (SIGTERM)")])
def test_ctrl_c_and_sigterm_unwind_and_say_so_in_one_line(tmp_path, sig, code, line) -> None:
    """Ctrl-C and a batch system's SIGTERM end a run with one line and a shell's exit code, after
    the run's cleanup (typer alone turned Ctrl-C into a silent 130; SIGTERM skipped every finally)."""
    import signal

    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED_CHILD, str(tmp_path / "scene")], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    try:
        assert child.stdout.readline().strip() == "READY"
        child.send_signal(getattr(signal, sig))
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == code and "UNWOUND" in out
    assert err.strip().splitlines() == [line]


SWALLOWING_CHILD = """
import sys, time
import rsmamba.synth
from rsmamba.cli import main

def swallowing(*args, **kwargs):
    ready = False
    while True:  # a C library's callback that catches what the handler raised (GDAL's log handler did) and goes on
        try:
            if not ready:  # READY inside the try: a signal right after it is swallowed, not a race the test loses
                ready = True
                print('READY', flush=True)
            time.sleep(60)
        except BaseException:
            print('SWALLOWED', flush=True)

rsmamba.synth.write_scene = swallowing
sys.exit(main(['synth', '-o', sys.argv[1]]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_sigterm_ends_a_run_whose_first_was_swallowed(tmp_path) -> None:
    """A SIGTERM raised inside GDAL's log callback was swallowed and the run went on for ever, deaf to every
    further SIGTERM (QA): the second one takes the default action, and the process ends."""
    import signal

    child = subprocess.Popen([sys.executable, "-c", SWALLOWING_CHILD, str(tmp_path / "scene")], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "READY"
        child.send_signal(signal.SIGTERM)
        assert child.stdout.readline().strip() == "SWALLOWED"
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGTERM


@pytest.mark.parametrize("error", [MemoryError("Unable to allocate 53.6 GiB for an array"),
                                   type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory"),
                                   # torch's CPU allocator (augment.scale 1000 in train): was a traceback, exit 1
                                   RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                                                "can't allocate memory: you tried to allocate 65536000000 bytes.")])
def test_running_out_of_memory_is_one_line_exit_2(tmp_path, monkeypatch, capsys, error) -> None:
    """`rsmamba synth --size 60000` asked numpy for 53.6 GiB and printed a traceback."""
    import rsmamba.synth

    def greedy(*args, **kwargs):
        raise error

    monkeypatch.setattr(rsmamba.synth, "write_scene", greedy)
    assert cli.main(["synth", "-o", str(tmp_path / "scene")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rsmamba: error: out of memory (") and str(error) in err[0]
    assert "(a smaller --size)" in err[0] and "--window" not in err[0]  # synth's option, not predict's


def test_out_of_memory_advice_names_the_options_of_the_verb_that_ran() -> None:
    """evaluate ran out of memory and was told of predict's --window and synth's --size."""
    from rsmamba.errors import environment_message

    error = MemoryError("Unable to allocate 74.5 GiB")
    assert "(a smaller --window or --batch-size)" in environment_message(error, "predict")
    assert "ask for less at once or use a machine with more memory" in environment_message(error, "evaluate")
    assert environment_message(RuntimeError("shape mismatch"), "train") is None  # a bug: its traceback


def test_a_vrts_source_is_an_input_of_vectorize_evaluate_and_tile(tmp_path, capsys) -> None:
    """predict refused writing over a VRT's source; vectorize, evaluate and tile replaced it (--overwrite)."""
    import hashlib

    import numpy as np
    import rasterio

    from tests.helpers.rasters import write_raster

    (tmp_path / "data").mkdir()
    src = write_raster(tmp_path / "data" / "lab.tif", np.random.default_rng(0).integers(0, 3, (32, 32)).astype(np.uint8))
    with rasterio.open(src) as ds:
        t, crs = ds.transform, ds.crs.to_wkt()
    band = (f'<VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename relativeToVRT="0">{src}'
            '</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>')
    vrt = tmp_path / "lab.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="32" rasterYSize="32"><SRS>{crs}</SRS>'
                   f'<GeoTransform>{t.c},{t.a},0,{t.f},0,{t.e}</GeoTransform>{band}</VRTDataset>')
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    for args in (["vectorize", str(vrt), "-o", str(src), "--format", "geojson", "--overwrite"],
                 ["evaluate", str(vrt), str(vrt), "-o", str(src), "--overwrite"],
                 ["tile", str(vrt), "-o", str(src.parent), "--size", "16", "--overwrite"]):
        assert cli.main(args) == 2, args
        assert "input" in capsys.readouterr().err
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


def test_a_file_name_not_in_utf8_is_one_line(tmp_path, capsys) -> None:
    """A Latin-1 name (an old Windows share) was a UnicodeEncodeError traceback from rasterio: as an
    argument, in a glob of a batch, and found by the library itself."""
    import shutil

    from rsmamba.cli import _environment_error

    name = os.fsdecode(b"orth\xe9.tif")
    shutil.copy(Path(__file__).parents[2] / "examples" / "scene" / "ortho.tif", tmp_path / name)
    assert cli.main(["predict", str(tmp_path / name), "-o", str(tmp_path / "out.tif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and r"orth\xe9.tif: the name is not UTF-8" in err
    assert cli.main(["predict", str(tmp_path / "*.tif"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and r"orth\xe9.tif: the name is not UTF-8" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tif").exists()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        assert "the name is not UTF-8" in _environment_error(exc)


def test_ctrl_c_while_the_libraries_load_is_one_line(monkeypatch, capsys) -> None:
    """A Ctrl-C in the first tenth of a second (importing rsmamba.cli) was a traceback of the imports."""
    import builtins

    from rsmamba.__main__ import run

    real = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "rsmamba.cli":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert run() == 130
    assert capsys.readouterr().err == "rsmamba: interrupted\n"


def test_workers_without_a_scheduler_is_said(tmp_path, capsys) -> None:
    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    assert cli.main(["-q", "predict", str(image), "-o", str(tmp_path / "c.tif"), "--workers", "3", "--no-tta"]) == 0
    assert "--workers 3: the workers of --scheduler local; without --scheduler" in capsys.readouterr().err


def test_an_interrupted_predict_says_how_to_go_on(tmp_path, monkeypatch, capsys) -> None:
    """predict and change keep their resume state on Ctrl-C; the line said nothing of it, then advised --resume
    even when no state had been saved yet (Ctrl-C during start-up), which --resume then refused."""
    import rsmamba.predict
    from rsmamba.atomic import resume_sidecar_path
    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "o.tif", random_image(32, 32))
    out = tmp_path / "c.tif"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rsmamba.predict, "predict_raster", interrupt)
    assert cli.main(["-q", "predict", str(image), "-o", str(out)]) == 130
    assert capsys.readouterr().err == ("rsmamba: interrupted; nothing was kept to resume yet: run the same command "
                                       "again (without --resume)\n")
    resume_sidecar_path(out).write_text("{}")  # the state a run saves once its first rows are written
    assert cli.main(["-q", "predict", str(image), "-o", str(out)]) == 130
    assert capsys.readouterr().err == "rsmamba: interrupted; the same command with --resume continues it\n"
    from rsmamba.cli import _interrupted

    _interrupted(["synth", "-o", "s"])
    assert capsys.readouterr().err == "rsmamba: interrupted\n"


@pytest.mark.parametrize("verb", ["predict", "change"])
def test_an_interrupted_batch_does_not_advise_resume(verb, tmp_path, monkeypatch, capsys) -> None:
    """A batch said 'the same command with --resume continues it', and a batch refuses --resume."""
    import rsmamba.change.many
    import rsmamba.predict.many

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rsmamba.predict.many, "predict_many", interrupt)
    monkeypatch.setattr(rsmamba.change.many, "change_many", interrupt)
    inputs = [str(tmp_path / "a" / "*.tif")] + (["{dir}/../b/{name}"] if verb == "change" else [])
    assert cli.main(["-q", verb, *inputs, "-o", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err == ("rsmamba: interrupted; run the same command again (without --resume, which is "
                                       "for one scene): it skips the finished scenes, takes up an interrupted one where it stopped and "
                                       "computes the others\n")
    # with --overwrite, the same command again computed every scene again (QA)
    assert cli.main(["-q", verb, *inputs, "-o", str(tmp_path / "out"), "--overwrite"]) == 130
    assert capsys.readouterr().err == ("rsmamba: interrupted; run the same command again (without --resume, which is "
                                       "for one scene, and without --overwrite, which computes every scene again): it "
                                       "skips the finished scenes, takes up an interrupted one where it stopped and computes the others\n")


def test_the_interrupt_line_loads_no_torch(tmp_path) -> None:
    """Ctrl-C while torch was still loading: the line's own import of torch (for the resume state's name) failed
    half-way ('partially initialized module'), a traceback and exit 1 instead of the one line."""
    code = ("import sys; from pathlib import Path; import rsmamba.cli as c; c._PREDICT_RUN.append(Path(sys.argv[1])); "
            "c._interrupted(['predict', 'a.tif', '-o', sys.argv[1]]); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.tif")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "False" and "nothing was kept to resume yet" in done.stderr


def test_existing_names_with_braces_or_a_leading_at_are_those_files(tmp_path, capsys) -> None:
    """'t2 {v2}.tif' was refused as a t2 template ('use {stem}, {name} or {dir}'), a batch --dsm 'dsm{1}.tif'
    likewise, and an existing '@a.tif' was read as the file list 'a.tif' (a UnicodeDecodeError traceback)."""
    import shutil

    scene = tmp_path / "scene"
    assert cli.main(["synth", "-o", str(scene), "--size", "128", "--seed", "0", "-q"]) == 0
    t2 = shutil.copy(scene / "ortho_t2.tif", tmp_path / "t2 {v2}.tif")
    dsm = shutil.copy(scene / "dsm_t1.tif", tmp_path / "dsm{1}.tif")
    at = shutil.copy(scene / "ortho_t1.tif", tmp_path / "@a.tif")
    assert cli.main(["change", str(scene / "ortho_t1.tif"), str(t2), "-o", str(tmp_path / "change.tif"), "-q"]) == 0
    assert cli.main(["predict", str(scene / "ortho_t1.tif"), "--dsm", str(dsm), "-o", f"{tmp_path / 'batch'}/",
                     "--no-tta", "-q"]) == 0
    assert cli.main(["predict", str(at), "-o", str(tmp_path / "at.tif"), "--no-tta", "-q"]) == 0
    assert "error" not in capsys.readouterr().err
    assert (tmp_path / "change.tif").is_file() and (tmp_path / "batch" / "ortho_t1.tif").is_file()
    assert (tmp_path / "at.tif").is_file()


@pytest.mark.parametrize("verb", ["predict", "tile", "vectorize"])
def test_version_after_a_verb_points_to_rsmamba_version(verb, capsys) -> None:
    """``rsmamba predict --version`` said 'No such option: --version (Possible options: --overwrite)'."""
    assert cli.main([verb, "--version"]) == 2
    err = capsys.readouterr().err
    assert err == "rsmamba: error: --version is an option of rsmamba itself, before the verb: rsmamba --version\n"


@pytest.mark.parametrize("args", [["--help"], ["predict", "--help"], ["change", "--help"], ["--version"]])
def test_output_into_a_closed_pipe_exits_as_sigpipe_without_a_word(args) -> None:
    """``rsmamba predict --help | head -3`` exited 1 (click's and rich's answer to EPIPE), as an error would; it now
    exits 141 as a Unix tool killed by SIGPIPE, nothing on stderr. The reader is closed before the child writes."""
    proc = subprocess.Popen([sys.executable, "-m", "rsmamba", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == b"", err


def test_a_broken_pipe_in_a_verb_exits_141_not_an_error_line(monkeypatch, capsys) -> None:
    def writing_app(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "app", writing_app)
    assert cli.main(["models"]) == 141
    assert capsys.readouterr().err == ""
