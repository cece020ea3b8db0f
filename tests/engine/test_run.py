"""The words a run's summary is made of (rsmamba.engine.run)."""

from __future__ import annotations


def test_a_raster_smaller_than_its_window_is_said_as_it_is_run():
    """change said '1 window of 128 px (overlap 32)' for a 100 x 60 px pair (predict had been mended alone)."""
    from rsmamba.engine.run import grid_text

    assert grid_text(100, 60, 1, 128, 32) == "raster 100 x 60 px, 1 window of 100 x 60 px (the whole raster)"
    assert grid_text(1000, 600, 54, 128, 32) == "raster 1000 x 600 px, 54 windows of 128 px (overlap 32)"


def test_a_resume_after_every_row_was_done_says_so():
    """It said 'resumed at row 0'."""
    from rsmamba.engine.resume import resume_note

    assert resume_note((1, 0), 1) == ", resumed: every row had been computed; only the outputs were written"
    assert resume_note((0, 512), 1) == ", resumed at row 512"
    assert resume_note((1, 256), 3) == ", resumed at strip 2 of 3, row 256"


def test_a_resume_with_another_batch_size_is_said(tmp_path, caplog):
    """The batches round the float sums as the thread count does: a resume with another --batch-size spliced a file
    equal to neither uninterrupted run (7 and 12 probability values off by 1/254), without a word."""
    import json

    from rsmamba.engine.resume import ResumeState

    state = ResumeState(tmp_path / "c.tif", {"x": 1}, 100, batch_size=4)
    state.save(0, 32)
    assert json.loads(state.path.read_text())["batch_size"] == 4
    assert ResumeState(tmp_path / "c.tif", {"x": 1}, 100, batch_size=1).load([]) == (0, 32)
    assert "--batch-size is 1, the interrupted one's 4" in caplog.text
    caplog.clear()
    ResumeState(tmp_path / "c.tif", {"x": 1}, 100, batch_size=4).load([])
    assert "--batch-size" not in caplog.text


def test_a_resume_record_named_through_a_symlink_and_dotdot_is_found(tmp_path):
    """``-o lnk/../b.tif``: the record was written beside the link and looked for beside its target ('no interrupted
    run to resume (.b.tif.predict-resume.json not found)' while it lay there)."""
    from rsmamba.engine.resume import ResumeState

    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "lnk").symlink_to("data/sub")
    final = tmp_path / "lnk" / ".." / "b.tif"
    ResumeState(final, {"x": 1}, 100).save(0, 32)
    assert [p.name for p in (tmp_path / "data").iterdir() if p.is_file()] == [".b.tif.predict-resume.json"]
    assert ResumeState(final, {"x": 1}, 100).load([]) == (0, 32)


def test_the_pipeline_estimate_holds_no_more_windows_in_a_batch_than_the_scene_has() -> None:
    """One 1024 px window at --batch-size 16 was estimated at 2946 MiB (669 MiB used): 16 windows a batch."""
    from rsmamba.engine.run import pipeline_bytes, plan_strips
    from rsmamba.raster.windows import WindowGrid

    one = WindowGrid(1024, 1024, 1024, 0)
    strips = plan_strips(one, 1024, 4096)
    size = {b: pipeline_bytes(one, strips, num_classes=6, in_chans=4, batch_size=b, prefetch=2, layers_bands=1,
                              probabilities=False) for b in (1, 16)}
    assert size[16] == size[1]
    many = WindowGrid(4096, 4096, 512, 128)  # plenty of windows: a batch of 16 is 16
    strips = plan_strips(many, 4096, 4096)
    assert pipeline_bytes(many, strips, num_classes=6, in_chans=4, batch_size=16, prefetch=2, layers_bands=1,
                          probabilities=False) > pipeline_bytes(many, strips, num_classes=6, in_chans=4, batch_size=1,
                                                                prefetch=2, layers_bands=1, probabilities=False)


def test_a_long_run_says_its_windows_and_time_before_it_starts(tmp_path, monkeypatch, caplog) -> None:
    """A 1e6 px square VRT started a run of ~140 days of network passes without a word (no terminal, no bar): a run
    whose network time (timed on one batch) passes LONG_RUN_SECONDS says so first, with its windows and output size;
    a short one is not timed and says nothing (QA)."""
    import rsmamba.engine.run as run
    from rsmamba.engine.model import LoadedModel, default_classes
    from rsmamba.predict import predict_raster
    from tests.helpers.predict_models import TinyConv
    from tests.helpers.rasters import random_image, write_raster

    path = write_raster(tmp_path / "img.tif", random_image(200, 150))
    net = LoadedModel(TinyConv(num_classes=4).eval(), classes=default_classes(4))
    timed = []
    monkeypatch.setattr(run, "estimate_seconds", lambda *a: timed.append(a[-1]) or (3 * 86400.0, 0))
    with caplog.at_level("WARNING", logger="rsmamba"):
        summary = predict_raster(path, tmp_path / "a.tif", model=net, window=64, overlap=16)
    assert timed == [] and "a long run" not in caplog.text  # 20 passes: under LONG_RUN_PASSES, not timed
    monkeypatch.setattr(run, "LONG_RUN_PASSES", 1)
    with caplog.at_level("WARNING", logger="rsmamba"):
        predict_raster(path, tmp_path / "b.tif", model=net, window=64, overlap=16, probabilities=tmp_path / "p.tif")
    assert timed == [summary.windows]
    said = [r.getMessage() for r in caplog.records if "a long run" in r.getMessage()]
    assert said == [f"{path}: a long run: {summary.windows} windows of 64 px left, the network passes alone about "
                    f"3 days (timed on one batch; reading, blending and writing come on top), output "
                    f"{run.output_size(200 * 150 * 5)} uncompressed; --dry-run shows the plan without running, less "
                    "--overlap or no TTA shortens it, Ctrl-C stops it and --resume continues"]


def test_a_duration_is_said_in_minutes_hours_or_days() -> None:
    from rsmamba.engine.run import duration_text

    assert [duration_text(s) for s in (3600, 7200, 86400, 140 * 86400)] == [
        "60 minutes", "2 hours", "24 hours", "140 days"]


def test_a_dry_runs_long_time_is_said_in_days_too() -> None:
    """'network passes about 1138149 s' for a 1e6 px square VRT: 13 days, left to the reader to work out (QA)."""
    from rsmamba.engine.run import eta_text

    assert eta_text(16) == "network passes about 16 s (reading, blending and writing come on top)"
    assert eta_text(1138149) == ("network passes about 1138149 s = 13 days (reading, blending and writing come "
                                 "on top)")
