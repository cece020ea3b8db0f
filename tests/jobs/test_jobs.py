"""Many inputs: expansion, output plans, shards, idempotent re-runs, Dask with retries and killed workers."""

from __future__ import annotations

import re

import pytest

from rsmamba.jobs import expand_inputs, plan_jobs, plan_pair_jobs, select_shard
from rsmamba.jobs import JobsFailed, run_jobs
from rsmamba.errors import InputError
from tests.helpers import jobs


def _inputs(tmp_path, n=5, bad=()):
    paths = []
    for i in range(n):
        p = tmp_path / "in" / (f"bad_{i}.dat" if i in bad else f"scene_{i}.dat")
        p.parent.mkdir(exist_ok=True)
        p.write_text(f"scene {i}")
        paths.append(p)
    return paths


def test_expand_globs_lists_and_paths(tmp_path) -> None:
    paths = _inputs(tmp_path)
    lst = tmp_path / "list.txt"
    lst.write_text("in/scene_4.dat\n# comment\n\nin/scene_0.dat\n")
    got = expand_inputs([str(tmp_path / "in" / "scene_[12].dat"), f"@{lst}", str(paths[1])])
    assert [p.name for p in got] == ["scene_1.dat", "scene_2.dat", "scene_4.dat", "scene_0.dat"]
    with pytest.raises(InputError) as info:
        expand_inputs([str(tmp_path / "nothing_*.tif"), str(tmp_path / "missing.tif")])
    assert len(info.value.problems) == 2


def test_shards_are_a_disjoint_cover(tmp_path) -> None:
    jobs_ = plan_jobs(_inputs(tmp_path, 7), tmp_path / "out")
    shards = [select_shard(jobs_, f"{i}/3") for i in range(3)]
    names = [j.name for s in shards for j in s]
    assert sorted(names) == sorted(j.name for j in jobs_) and len(names) == 7
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(InputError):
            select_shard(jobs_, bad)


def test_a_shard_of_no_scene_writes_nothing_and_says_so(tmp_path, caplog) -> None:
    """--shard 5/8 over 4 scenes made the output folder and a batch record of nothing, exit 0 (QA)."""
    from rsmamba.jobs.run import run_many

    plan = plan_jobs(_inputs(tmp_path, 4), tmp_path / "out")
    with caplog.at_level("WARNING"):
        assert run_many(jobs.copy_job, plan, tmp_path / "out", kwargs={"tag": ""}, shard="5/8", progress=False) == []
    assert not (tmp_path / "out").exists() and "no scene of the 4 falls to this shard" in caplog.text


def test_output_name_clash_and_pairs(tmp_path) -> None:
    a = tmp_path / "a" / "s.tif"
    b = tmp_path / "b" / "s.tif"
    with pytest.raises(InputError, match="both write"):
        plan_jobs([a, b], tmp_path / "out")
    with pytest.raises(InputError, match="paired in order"):
        plan_pair_jobs([a, b], [a], tmp_path / "out")


def test_local_run_is_idempotent_and_reports_every_failure(tmp_path) -> None:
    paths = _inputs(tmp_path, 4, bad=(1, 3))
    plan = plan_jobs(paths, tmp_path / "out")
    with pytest.raises(JobsFailed) as info:
        run_jobs(jobs.failing_job, plan, progress=False)
    msg = str(info.value)
    assert "2 of 4 jobs failed" in msg and "bad_1.dat" in msg and "bad_3.dat" in msg
    assert "2 of 4 jobs failed; 2 done:" in msg  # what went through, said too (QA)
    from rsmamba.errors import one_line

    assert re.search(r"bad_1\.dat: [^;]*; \S*bad_3\.dat: ", one_line(msg))  # told apart on the CLI's one line
    results = run_jobs(jobs.copy_job, plan, kwargs={"tag": "!"}, progress=False)
    assert sorted(r.status for r in results) == ["done", "done", "skipped", "skipped"]


def test_dask_local_cluster_survives_a_killed_worker(tmp_path) -> None:
    pytest.importorskip("dask.distributed")
    paths = _inputs(tmp_path, 4)
    plan = plan_jobs(paths, tmp_path / "out")
    markers = tmp_path / "markers"
    markers.mkdir()
    results = run_jobs(jobs.dying_job, plan[:2] + plan[2:], kwargs={"marker_dir": str(markers)},
                       scheduler="local", n_workers=2, progress=False)
    assert sorted(r.status for r in results) == ["done"] * 4
    out_files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert out_files == [f"scene_{i}.tif" for i in range(4)]  # no partial or duplicate leftovers
    assert all(p.read_text() == f"scene {i}" for i, p in enumerate(sorted((tmp_path / "out").iterdir())))


def test_local_cluster_workers_get_their_share_of_cores_and_no_malloc_trim(tmp_path) -> None:
    """Each of 2 workers on this machine gets cores // 2 torch threads; dask's 64 KiB trim threshold is dropped."""
    import json
    import os

    (tmp_path / "in").mkdir()
    for i in range(2):
        (tmp_path / "in" / f"s{i}.dat").write_text("x")
    inputs = expand_inputs([str(tmp_path / "in" / "*.dat")])
    results = run_jobs(jobs.worker_settings_job, plan_jobs(inputs, tmp_path / "out"),
                       scheduler="local", n_workers=2, progress=False)
    assert [r.status for r in results] == ["done", "done"]
    seen = [json.loads(r.job.output.read_text()) for r in results]
    cores = len(os.sched_getaffinity(0))
    assert all(s == {"threads": max(1, cores // 2), "device": "cpu", "malloc_trim": None} for s in seen), seen


def test_worker_device_spreads_workers_over_gpus() -> None:
    from rsmamba.jobs.worker import worker_device

    assert [worker_device("cuda", i, 2) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_device("cuda", "tcp://10.0.0.3:4000", 4) == "cuda"  # a hand-started worker: its own GPU
    assert worker_device("cuda:1", 0, 4) == "cuda:1"  # an explicit index is kept
    assert worker_device("cpu", 1, 4) == "cpu"
    assert worker_device("cuda", 1, 1) == "cuda"


def test_one_file_named_twice_is_one_scene(tmp_path, capsys) -> None:
    """'predict a.tif a.tif -o x.tif' said 'skipped 1 input given twice', then refused 'several scenes ... give one
    output each' (QA): it is one scene, written to x.tif."""
    from rsmamba.cli import main
    from rsmamba.jobs import is_batch
    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "a.tif", random_image(40, 50))
    assert not is_batch([str(image), str(tmp_path / "." / "a.tif")], tmp_path / "x.tif")
    assert is_batch([str(image), str(write_raster(tmp_path / "b.tif", random_image(40, 50)))], tmp_path / "x.tif")
    assert main(["predict", str(image), str(image), "-o", str(tmp_path / "x.tif"), "--no-tta", "--model",
                 "fcn_baseline", "--window", "32"]) == 0, capsys.readouterr().err
    assert (tmp_path / "x.tif").is_file()


def test_an_existing_file_named_like_a_glob_is_that_file(tmp_path) -> None:
    from rsmamba.jobs import is_batch, is_pattern

    (tmp_path / "scene1.tif").write_text("the other scene")
    literal = tmp_path / "scene[1].tif"
    literal.write_text("this scene")
    assert expand_inputs([str(literal)]) == [literal]
    assert not is_pattern(str(literal)) and not is_batch([str(literal)], tmp_path / "out.tif")
    # Without such a file the name is a pattern as before.
    literal.unlink()
    assert [p.name for p in expand_inputs([str(literal)])] == ["scene1.tif"]


def test_a_folder_never_mixes_outputs_of_two_settings(tmp_path) -> None:
    """Shard 0 with one setting, shard 1 with another: refused, not recorded over (the record is the folder's)."""
    from rsmamba.jobs import run_many

    plan = plan_jobs(_inputs(tmp_path, 4), tmp_path / "out")
    run_many(jobs.copy_job, plan, tmp_path / "out", kwargs={"tag": "a"}, shard="0/2", progress=False)
    with pytest.raises(InputError, match=r"2 outputs \(e.g. scene_0.tif\) were made with other settings \(tag\)"):
        run_many(jobs.copy_job, plan, tmp_path / "out", kwargs={"tag": "b"}, shard="1/2", progress=False)
    with pytest.raises(InputError, match="--overwrite recomputes only this run's outputs"):  # shard 0's would stay
        run_many(jobs.copy_job, plan, tmp_path / "out", kwargs={"tag": "b", "overwrite": True}, shard="1/2",
                 progress=False)
    run_many(jobs.copy_job, plan, tmp_path / "out", kwargs={"tag": "b", "overwrite": True}, progress=False)
    assert {p.read_text()[-1] for p in (tmp_path / "out").glob("*.tif")} == {"b"}


def test_an_output_made_from_another_input_is_refused_not_complete(tmp_path) -> None:
    """A list that gained a scene shifts {index}: scene_1.tif held the third scene's copy and counted as done."""
    import json
    import shutil

    from rsmamba.jobs import run_many

    paths, out = _inputs(tmp_path, 3), tmp_path / "out"
    name = "scene_{index}.tif"
    run_many(jobs.copy_job, plan_jobs([paths[0], paths[2]], out, template=name), out, kwargs={}, progress=False)
    grown = plan_jobs(paths, out, template=name)
    with pytest.raises(InputError, match=r"out/scene_1.tif was made from .*in/scene_2.dat, now .*in/scene_1.dat; "
                                         r"delete it and run again to recompute only it \(--overwrite recomputes "
                                         r"every scene of the run\)"):
        run_many(jobs.copy_job, grown, out, kwargs={}, progress=False)
    assert not (out / "scene_2.tif").exists()  # refused before any job
    # the advice holds: one big scene wrong, the others are kept (--overwrite recomputed them all, QA)
    kept = out.parent / "kept"
    shutil.copytree(out, kept)
    (kept / "scene_1.tif").unlink()
    redone = run_many(jobs.copy_job, plan_jobs(paths, kept, template=name), kept, kwargs={}, progress=False)
    assert {r.job.output.name: r.status for r in redone} == {"scene_0.tif": "skipped", "scene_1.tif": "done",
                                                              "scene_2.tif": "done"}
    assert [(kept / f"scene_{i}.tif").read_text() for i in range(3)] == ["scene 0", "scene 1", "scene 2"]
    done = run_many(jobs.copy_job, grown, out, kwargs={"overwrite": True}, progress=False)
    assert [r.status for r in done] == ["done"] * 3
    assert [(out / f"scene_{i}.tif").read_text() for i in range(3)] == ["scene 0", "scene 1", "scene 2"]
    again = run_many(jobs.copy_job, grown, out, kwargs={}, progress=False)
    assert [r.status for r in again] == ["skipped"] * 3
    # a folder recorded before inputs were: its outputs are complete when they exist, as they were then
    record = out / ".rsmamba-batch.json"
    record.write_text(json.dumps(json.loads(record.read_text())["settings"]))
    swapped = plan_jobs([paths[1], paths[0], paths[2]], out, template=name)
    assert [r.status for r in run_many(jobs.copy_job, swapped, out, kwargs={}, progress=False)] == ["skipped"] * 3


def test_a_run_with_other_settings_is_refused_while_another_writes_the_folder(tmp_path) -> None:
    """Shard 0 with --tta-rot180 still running, shard 1 plain: both ran, and the folder held both kinds of maps."""
    import threading

    from rsmamba.jobs import run_many

    plan, out, gate = plan_jobs(_inputs(tmp_path, 4), tmp_path / "out"), tmp_path / "out", tmp_path / "gate"
    first: list = []
    runner = threading.Thread(target=lambda: first.extend(run_many(
        jobs.waiting_job, plan, out, kwargs={"tag": "a", "gate": str(gate)}, shard="0/2", progress=False)))
    runner.start()
    try:
        for _ in range(600):
            if gate.with_name("gate.started").exists():
                break
            threading.Event().wait(0.05)
        with pytest.raises(InputError, match=r"another rsmamba run is writing into it with other settings \(tag\)"):
            run_many(jobs.waiting_job, plan, out, kwargs={"tag": "b", "gate": str(gate)}, shard="1/2", progress=False)
        with pytest.raises(InputError, match=r"another rsmamba run is writing into it with other settings \(tag\)"):
            run_many(jobs.waiting_job, plan, out, kwargs={"tag": "b", "gate": str(gate), "overwrite": True},
                     shard="1/2", progress=False)
    finally:
        gate.write_text("open")
        runner.join()
    assert [r.status for r in first] == ["done"] * 2
    second = run_many(jobs.waiting_job, plan, out, kwargs={"tag": "a", "gate": str(gate)}, shard="1/2", progress=False)
    assert [r.status for r in second] == ["done"] * 2
    assert {p.read_text()[-1] for p in out.glob("*.tif")} == {"a"}


def test_a_takeover_that_fails_part_way_leaves_no_old_output_counted_as_new(tmp_path) -> None:
    """--overwrite with other settings recomputes the folder's outputs one by one; one that failed kept its old
    output under the new record, and the next run without --overwrite skipped it as complete: a mixed folder."""
    from rsmamba.jobs import run_many

    paths = _inputs(tmp_path, 3)
    plan, out = plan_jobs(paths, tmp_path / "out"), tmp_path / "out"
    run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, progress=False)
    kept = paths[1].read_text()
    paths[1].unlink()  # its recomputation fails
    with pytest.raises(JobsFailed, match="1 of 3 jobs failed"):
        run_many(jobs.copy_job, plan, out, kwargs={"tag": "b", "overwrite": True}, progress=False)
    assert [(out / f"scene_{i}.tif").read_text()[-1] for i in range(3)] == ["b", "a", "b"]
    paths[1].write_text(kept)
    assert [r.status for r in run_many(jobs.copy_job, plan, out, kwargs={"tag": "b"}, shard="0/3",
                                       progress=False)] == ["skipped"]  # a shard without it skips the new map
    # the next run without --overwrite recomputes the old map it left, and only that one
    done = run_many(jobs.guarded_copy_job, plan, out, kwargs={"tag": "b"}, progress=False)
    assert {r.job.output.name: r.status for r in done} == {"scene_0.tif": "skipped", "scene_1.tif": "done",
                                                            "scene_2.tif": "skipped"}
    again = run_many(jobs.copy_job, plan, out, kwargs={"tag": "b"}, progress=False)
    assert [r.status for r in again] == ["skipped"] * 3
    assert [(out / f"scene_{i}.tif").read_text()[-1] for i in range(3)] == ["b"] * 3


def test_a_takeover_interrupted_part_way_counts_the_maps_it_published_as_new(tmp_path, caplog) -> None:
    """Ctrl-C after a takeover's first scene left every output listed as stale: the re-run without --overwrite
    refused the scene the new settings had made, and the exit-130 advice (run again: finished scenes are
    skipped) was untrue."""
    from rsmamba.jobs import run_many

    paths = _inputs(tmp_path, 3)
    plan, out = plan_jobs(paths, tmp_path / "out"), tmp_path / "out"
    run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_many(jobs.interrupting_job, plan, out, kwargs={"tag": "b", "overwrite": True}, progress=False)
    assert [(out / f"scene_{i}.tif").read_text()[-1] for i in range(3)] == ["b", "a", "a"]
    assert [r.status for r in run_many(jobs.copy_job, plan, out, kwargs={"tag": "b"}, shard="0/3",
                                       progress=False)] == ["skipped"]  # the scene the takeover made
    with caplog.at_level("WARNING"):  # the same command without --overwrite goes on where it stopped
        done = run_many(jobs.copy_job, plan, out, kwargs={"tag": "b"}, progress=False)
    assert sorted(r.status for r in done) == ["done", "done", "skipped"]
    assert [(out / f"scene_{i}.tif").read_text()[-1] for i in range(3)] == ["b"] * 3
    assert ("recomputing 2 outputs that an --overwrite run had not recomputed when it stopped: scene_1.tif, "
            "scene_2.tif") in caplog.text


def test_an_overwrite_with_the_same_settings_interrupted_goes_on_without_recomputing_what_it_finished(tmp_path) -> None:
    """Ctrl-C of 'predict tiles/*.tif -o out/ --overwrite' said 'run the same command again: it skips the finished
    scenes', but --overwrite recomputed every one, and without it the maps not yet recomputed were skipped (QA)."""
    from rsmamba.jobs import run_many

    paths = _inputs(tmp_path, 3)
    plan, out = plan_jobs(paths, tmp_path / "out"), tmp_path / "out"
    run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, progress=False)
    for i, p in enumerate(paths):
        (out / f"scene_{i}.tif").write_text("old")  # as a map made before a fix of the program
    with pytest.raises(KeyboardInterrupt):
        run_many(jobs.interrupting_job, plan, out, kwargs={"tag": "a", "overwrite": True}, progress=False)
    assert [(out / f"scene_{i}.tif").read_text() for i in range(3)] == ["scene 0a", "old", "old"]
    done = run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, progress=False)
    assert {r.job.output.name: r.status for r in done} == {"scene_0.tif": "skipped", "scene_1.tif": "done",
                                                            "scene_2.tif": "done"}
    assert [(out / f"scene_{i}.tif").read_text() for i in range(3)] == ["scene 0a", "scene 1a", "scene 2a"]


def test_a_run_stopped_before_its_first_output_leaves_no_obstacle(tmp_path) -> None:
    """A run of other settings stopped before any output (Ctrl-C, fixed an option, ran again) was refused as
    'another run may be writing into it' when none was: with no output and no live run, the folder is taken over."""
    from rsmamba.jobs import run_many

    plan, out = plan_jobs(_inputs(tmp_path, 2), tmp_path / "out"), tmp_path / "out"
    run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, progress=False)
    for made in out.glob("*.tif"):  # as a run stopped before its first output leaves the folder: a record only
        made.unlink()
    assert (out / ".rsmamba-batch.json").exists()
    done = run_many(jobs.copy_job, plan, out, kwargs={"tag": "b"}, progress=False)
    assert [r.status for r in done] == ["done"] * 2


def test_shards_with_the_same_settings_that_start_together_both_run(tmp_path) -> None:
    """Each wrote the folder's record through its own lock: the second to get there failed as 'being written'."""
    import threading

    from rsmamba.jobs import run_many

    for attempt in range(8):
        out = tmp_path / f"out{attempt}"
        plan = plan_jobs(_inputs(tmp_path, 4), out)
        start, outcomes = threading.Barrier(2), []

        def shard(i: int) -> None:
            start.wait()
            try:
                outcomes.append([r.status for r in run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"},
                                                            shard=f"{i}/2", progress=False)])
            except Exception as exc:  # noqa: BLE001 - the test's verdict
                outcomes.append(str(exc))

        threads = [threading.Thread(target=shard, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes == [["done"] * 2] * 2, outcomes


def test_settings_compare_with_defaults_filled_and_without_how_a_run_goes(tmp_path) -> None:
    """A library call leaves out what the CLI passes, and a new option is missing from older records: both are
    the defaults. Lossless compression, COG layout and what a run may accept change no output value."""
    from rsmamba.jobs import run_many

    plan, out = plan_jobs(_inputs(tmp_path, 2), tmp_path / "out"), tmp_path / "out"
    cli = {"tag": "a", "level": 0, "compress": "deflate", "co": None, "force": False, "max_shift": 3.0,
           "allow_geographic_mix": False, "pixel_grid": False}
    run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, settings=cli, progress=False)
    again = run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, settings={"tag": "a"}, progress=False,
                     defaults={"level": 0, "new_option": 1})
    assert [r.status for r in again] == ["skipped"] * 2
    others = {**cli, "compress": "zstd", "co": {"LEVEL": "9"}, "force": True, "max_shift": 9.0,
              "allow_geographic_mix": True, "pixel_grid": True}
    again = run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, settings=others, progress=False,
                     defaults={"new_option": 1})
    assert [r.status for r in again] == ["skipped"] * 2
    with pytest.raises(InputError, match=r"2 outputs \(e.g. scene_0.tif\) were made with other settings \(level\)"):
        run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, settings={**cli, "level": 9}, progress=False,
                 defaults={"new_option": 1})
    with pytest.raises(InputError, match=r"were made with other settings \(new_option\)"):
        run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, settings={**cli, "new_option": 2},
                 defaults={"new_option": 1}, progress=False)
    (out / "scene_0.tif").unlink()
    with pytest.raises(InputError, match=r"1 output \(scene_1.tif\) was made with other settings \(level\)"):
        run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, settings={**cli, "level": 9}, progress=False,
                 defaults={"new_option": 1})


def test_outputs_that_are_inputs_or_not_rasters_are_refused_when_planned(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    scenes = [folder / "a.tif", folder / "b.tif"]
    for p in scenes:
        p.write_text("x")
    with pytest.raises(InputError, match=r"output .*a.tif: is an input of this run \(2 such\)"):
        plan_jobs(scenes, folder)
    with pytest.raises(InputError, match=r"--name-template '\{stem\}' gives 'a': name the outputs \*.tif"):
        plan_jobs(scenes, tmp_path / "out", template="{stem}")


def test_a_dsm_template_is_filled_for_every_scene_before_any_job(tmp_path) -> None:
    from rsmamba.jobs import check_templates

    scenes = _inputs(tmp_path, 3)
    (tmp_path / "in" / "scene_0_dsm.dat").write_text("dsm")
    with pytest.raises(InputError, match=r"DSM template '\{dir\}/\{foo\}.dat': use \{stem\}"):
        check_templates("{dir}/{foo}.dat", scenes, "DSM")
    with pytest.raises(InputError, match=r"DSM not found: .*scene_1_dsm.dat \(for scene_1.dat\), .*scene_2_dsm.dat"):
        check_templates("{dir}/{stem}_dsm.dat", scenes, "DSM")


def test_a_named_pipe_among_many_inputs_is_refused_before_any_job_opens_it(tmp_path) -> None:
    """A worker's GDAL opening a FIFO waits for a writer for ever: said by stat, with the plan."""
    import os

    from rsmamba.jobs import check_templates

    scenes = _inputs(tmp_path, 2)
    os.mkfifo(tmp_path / "in" / "scene_9.dat")
    with pytest.raises(InputError, match=r"input .*scene_9.dat: not a regular file \(a named pipe"):
        expand_inputs([str(tmp_path / "in" / "*.dat")])
    for scene in scenes:
        os.mkfifo(tmp_path / "in" / f"{scene.stem}_dsm.dat")
    with pytest.raises(InputError, match=r"DSM .*scene_0_dsm.dat: not a regular file \(a named pipe"):
        check_templates("{dir}/{stem}_dsm.dat", scenes, "DSM")


def test_max_errors_says_what_it_did_not_run(tmp_path) -> None:
    plan = plan_jobs(_inputs(tmp_path, 5, bad=(0, 1)), tmp_path / "out")
    with pytest.raises(JobsFailed, match=r"2 of 5 jobs failed; 3 not run \(stopped by --max-errors\)"):
        run_jobs(jobs.failing_job, plan, max_errors=1, retries=0, progress=False)


def test_a_malformed_scheduler_address_is_one_line(tmp_path) -> None:
    plan = plan_jobs(_inputs(tmp_path, 1), tmp_path / "out")
    with pytest.raises(InputError, match="--scheduler bogus: cannot connect"):
        run_jobs(jobs.copy_job, plan, scheduler="bogus", progress=False)


def test_a_malformed_scheduler_address_makes_no_output_folder(tmp_path) -> None:
    from rsmamba.jobs import run_many

    plan = plan_jobs(_inputs(tmp_path, 1), tmp_path / "out")
    with pytest.raises(InputError, match="--scheduler tcp://host: missing port number"):
        run_many(jobs.copy_job, plan, tmp_path / "out", kwargs={}, scheduler="tcp://host", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_folder_given_as_an_input_says_how_to_give_its_rasters(tmp_path) -> None:
    (tmp_path / "scenes").mkdir()
    with pytest.raises(InputError, match=r"scenes: a folder, not a raster; give its rasters, e.g. '.*scenes/\*\.tif'"):
        expand_inputs([str(tmp_path / "scenes")])


def test_a_batch_whose_inputs_failed_exits_2_with_their_one_line_reasons(tmp_path, capsys) -> None:
    """A corrupt input of a batch was 'RasterioIOError: ... (_base.pyx:189)' and exit 1, as for a bug."""
    from pathlib import Path

    import rasterio
    from rasterio.windows import Window

    from rsmamba.cli import main

    with pytest.raises(JobsFailed) as info:
        run_jobs(jobs.failing_job, plan_jobs(_inputs(tmp_path, 2, bad=(1,)), tmp_path / "o2"), progress=False)
    assert info.value.exit_code == 1  # a ValueError of ours: a bug, with its place
    (tmp_path / "batch").mkdir()
    with rasterio.open(Path(__file__).parents[2] / "examples" / "scene" / "ortho.tif") as src:
        window = Window(0, 0, 128, 128)
        profile = {**src.profile, "width": 128, "height": 128, "transform": src.window_transform(window)}
        with rasterio.open(tmp_path / "batch" / "a.tif", "w", **profile) as dst:
            dst.write(src.read(window=window))
    (tmp_path / "batch" / "b.tif").write_bytes(b"II*\x00 truncated in a download")
    assert main(["-q", "predict", str(tmp_path / "batch" / "*.tif"), "-o", str(tmp_path / "out"), "--window", "128",
                 "--no-tta"]) == 2
    err = capsys.readouterr().err
    assert "1 of 2 jobs failed" in err and "b.tif" in err and "_base.pyx" not in err and "Error:" not in err
    assert (tmp_path / "out" / "a.tif").exists() and not (tmp_path / "out" / "b.tif").exists()


def test_local_cluster_workers_ignore_the_terminals_ctrl_c() -> None:
    """Ctrl-C reaches every process of the terminal's group: busy workers printed three tracebacks
    (KeyboardInterrupt, CancelledError, 'still alive after 4 s') before 'rsmamba: interrupted'; and
    workers closing mid-scene printed 'Failed to communicate with scheduler during heartbeat' with its
    traceback, at ERROR level, which the level they were given ('error') let through."""
    pytest.importorskip("dask.distributed")
    import logging
    import signal

    from dask.distributed import Client

    from rsmamba.jobs.run import local_cluster

    before = signal.getsignal(signal.SIGINT)
    cluster = local_cluster(1)
    try:
        with Client(cluster) as client:
            seen = client.run(lambda: int(signal.getsignal(signal.SIGINT) == signal.SIG_IGN))
            levels = client.run(lambda: logging.getLogger("distributed.worker").getEffectiveLevel())
    finally:
        cluster.close()
    assert list(seen.values()) == [1]
    assert list(levels.values()) == [logging.CRITICAL]
    assert all(logging.getLogger(name).getEffectiveLevel() == logging.CRITICAL  # this process: scheduler, nannies
               for name in ("distributed.scheduler", "distributed.nanny", "distributed.client"))
    assert signal.getsignal(signal.SIGINT) is before  # this process still takes the Ctrl-C


def test_a_refused_input_is_not_run_again(tmp_path) -> None:
    """A scene refused as the user's mistake fails the same way every time: it was run twice before its report."""
    paths = _inputs(tmp_path, 2)
    marks = tmp_path / "marks"
    marks.mkdir()
    with pytest.raises(JobsFailed) as info:
        run_jobs(jobs.refusing_job, plan_jobs(paths, tmp_path / "out"), kwargs={"marker_dir": str(marks)},
                 retries=2, progress=False)
    assert info.value.exit_code == 2
    assert sorted(p.read_text() for p in marks.iterdir()) == ["1", "1"]


def test_worker_counts_and_paths_are_checked_before_any_cluster(tmp_path) -> None:
    """workers=0 started a dask cluster that failed with "Nanny failed to start"; str paths were an AttributeError."""
    paths = _inputs(tmp_path, 2)
    plan = plan_jobs([str(p) for p in paths], str(tmp_path / "out"))  # str paths, as every public function takes
    assert [job.output.name for job in plan] == [p.with_suffix(".tif").name for p in paths]
    with pytest.raises(InputError, match=r"--workers must be a whole number >= 1, got 0"):
        run_jobs(jobs.copy_job, plan, scheduler="local", n_workers=0, progress=False)


def test_a_full_disk_is_retried_a_refused_input_is_not(tmp_path) -> None:
    """A full disk may pass (another job frees space); retries did nothing for it once exit-2 failures were final."""
    paths = _inputs(tmp_path, 1)
    marks = tmp_path / "marks"
    marks.mkdir()
    with pytest.raises(JobsFailed, match="no space left"):
        run_jobs(jobs.full_disk_job, plan_jobs(paths, tmp_path / "out"), kwargs={"marker_dir": str(marks)},
                 retries=2, progress=False)
    assert [p.read_text() for p in marks.iterdir()] == ["3"]


def test_max_errors_on_dask_counts_the_scenes_that_finished_as_done(tmp_path) -> None:
    """A scene running when another failed finished as the cluster closed: it was listed 'not run' beside its
    output (4 done + 1 failed + 2 not run = 7 of 6 jobs)."""
    pytest.importorskip("dask.distributed")
    marks = tmp_path / "marks"
    marks.mkdir()
    plan = plan_jobs(_inputs(tmp_path, 3, bad=(0,)), tmp_path / "out")
    with pytest.raises(JobsFailed) as info:  # one worker, two threads: the bad scene and scene_1 run together
        run_jobs(jobs.stopping_job, plan, kwargs={"marker_dir": str(marks)}, scheduler="local", n_workers=1,
                 threads_per_worker=2, max_errors=0, retries=0, progress=False)
    results = info.value.results
    assert len(results) == 3 and sorted(r.job.output.name for r in results) == [j.output.name for j in plan]
    status = {r.job.output.name: r.status for r in results}
    assert status["bad_0.tif"] == "failed" and status["scene_1.tif"] == "done"
    assert all((s == "done") == (tmp_path / "out" / name).exists() for name, s in status.items()), status


def test_the_failure_list_names_each_scene_by_its_path(tmp_path) -> None:
    """a/ortho.dat, bad/ortho.dat, c/ortho.dat: '1 of 3 jobs failed: ortho.dat: ...' said not which."""
    scenes = []
    for folder in ("a", "bad", "c"):
        (tmp_path / folder).mkdir()
        scenes.append(tmp_path / folder / "ortho.dat")
        scenes[-1].write_text(folder)
    with pytest.raises(JobsFailed) as info:
        run_jobs(jobs.failing_job, plan_jobs(scenes, tmp_path / "out", template="{parent}.tif"), progress=False)
    assert str(info.value).splitlines()[1].startswith(f"  {scenes[1]}: ValueError: cannot read this one (jobs.py:")


def test_name_template_fields_with_attribute_or_index_access_are_refused(tmp_path) -> None:
    """'{stem.upper}' named the outputs '<built-in method upper of str object at 0x...>.tif', new every run;
    '{stem[0]}' gave one letter, and names that collide."""
    scenes = _inputs(tmp_path, 2)
    for template in ("{stem.upper}.tif", "{stem[0]}.tif", "{index.real}_{stem}.tif"):
        field = template[1:template.index("}")]
        with pytest.raises(InputError, match=rf"^--name-template '{re.escape(template)}': use \{{stem\}}, .* \('{re.escape(field)}'\)$"):
            plan_jobs(scenes, tmp_path / "out", template=template)
    assert [j.output.name for j in plan_jobs(scenes, tmp_path / "out", template="{index:03d}_{stem!s}.tif")] == [
        "000_scene_0.tif", "001_scene_1.tif"]


def test_parent_and_relparent_are_the_folders_as_given_not_their_link_targets(tmp_path) -> None:
    """{parent} of campaign/2021 -> raw/flight_A was 'flight_A', and two linked files in y2021/ and y2023/
    stored side by side clashed as 'store_a.tif', with '{parent}_{stem}.tif' (the cause) as the advice."""
    import os

    for name in ("raw/flight_A", "raw/flight_B", "campaign", "store", "y2021", "y2023"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("raw/flight_A/a.tif", "raw/flight_B/a.tif", "store/a_2021.tif", "store/a_2023.tif"):
        (tmp_path / name).write_text(name)
    os.symlink("../raw/flight_A", tmp_path / "campaign" / "2021")
    os.symlink("../raw/flight_B", tmp_path / "campaign" / "2023")
    os.symlink("../store/a_2021.tif", tmp_path / "y2021" / "a.tif")
    os.symlink("../store/a_2023.tif", tmp_path / "y2023" / "a.tif")
    linked = expand_inputs([str(tmp_path / "campaign" / "2021" / "a.tif"), str(tmp_path / "campaign" / "2023" / "a.tif")])
    out = tmp_path / "out"
    assert [j.output for j in plan_jobs(linked, out, template="{parent}_{stem}.tif")] == [out / "2021_a.tif",
                                                                                           out / "2023_a.tif"]
    assert [j.output for j in plan_jobs(linked, out, template="{relparent}/{stem}.tif")] == [out / "2021" / "a.tif",
                                                                                              out / "2023" / "a.tif"]
    files = [tmp_path / "y2021" / "a.tif", tmp_path / "y2023" / "a.tif"]
    assert [j.output.name for j in plan_jobs(files, out, template="{parent}_{stem}.tif")] == ["y2021_a.tif",
                                                                                               "y2023_a.tif"]
    # a clash the template does make: the advice is another template, not the one given
    twins = [tmp_path / "raw" / "flight_A" / "a.tif", tmp_path / "raw" / "flight_A" / "a.tiff"]
    twins[1].write_text("x")
    with pytest.raises(InputError, match="both write a.tif") as info:
        plan_jobs(twins, out, template="{relparent}/{stem}.tif")
    assert "'{relparent}/{stem}.tif'" not in str(info.value) and "'{parent}_{stem}.tif'" not in str(info.value)
    assert str(info.value).endswith("e.g. '{index:04d}_{stem}.tif'")  # the one of the three that names them apart
    # one t1 with two t2s: the advice named {parent} and {relparent} of t1, which clash as well
    t2s = [tmp_path / "raw" / "flight_B" / "a.tif", tmp_path / "y2023" / "a.tif"]
    with pytest.raises(InputError, match=r"both write a.tif; name the outputs with --name-template, "
                                         r"e.g. '\{index:04d\}_\{stem\}.tif'$"):
        plan_pair_jobs([twins[0], twins[0]], t2s, out)
    pairs = plan_pair_jobs([twins[0], twins[0]], t2s, out, template="{index:04d}_{stem}.tif")
    assert [j.output.name for j in pairs] == ["0000_a.tif", "0001_a.tif"]


def test_an_input_given_twice_runs_once_and_a_warning_says_so(tmp_path, caplog) -> None:
    """dup/a_copy.tif -> a.tif among 3 inputs: '2 scenes predicted' without a word about the third."""
    import logging
    import os

    from rsmamba.jobs import pair_inputs

    a, b = _inputs(tmp_path, 2)
    os.symlink(a.name, a.parent / "a_copy.dat")
    with caplog.at_level(logging.WARNING, logger="rsmamba"):
        got = expand_inputs([str(a), str(a.parent / "a_copy.dat"), str(b), str(b)])
    assert got == [a, b]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [f"skipped 2 inputs given twice: {a.parent / 'a_copy.dat'} is the same file as {a}; {b} is given twice"]
    # change pairs: a t1 given twice with one t2 list no longer shifts or miscounts the pairs
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rsmamba"):
        t1, t2 = pair_inputs([str(a), str(a.parent / "a_copy.dat"), str(b)], [str(b), str(b), str(a)])
    assert (t1, t2) == ([a, b], [b, a])
    assert "the pair" in caplog.text and "is the same as" in caplog.text


def test_file_lists_not_utf8_with_a_bom_and_existing_at_names(tmp_path) -> None:
    """A Latin-1 list was a UnicodeDecodeError traceback, an existing '@a.tif' was read as the list 'a.tif'
    (a TIFF: a traceback), and Notepad's BOM made the first line 'input not found: \\ufeffa.tif'."""
    from rsmamba.jobs import is_pattern

    a, b = _inputs(tmp_path, 2)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(b"in/scene_0.dat\n\xe9t\xe9.dat\n")
    with pytest.raises(InputError, match=r"^file list .*latin1.txt: not UTF-8 \(byte 0xe9 at offset 15, line 2\)"):
        expand_inputs([f"@{latin}"])
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfin/scene_1.dat\r\nin/scene_0.dat\r\n")
    assert expand_inputs([f"@{bom}"]) == [b, a]
    at = tmp_path / "@scene.tif"
    at.write_bytes(b"II*\x00\xb2 not a list")
    assert not is_pattern(str(at)) and expand_inputs([str(at)]) == [at]
    (tmp_path / "@list.txt").write_text("in/scene_1.dat\n")  # '@' + an existing list: the list '@list.txt'
    assert expand_inputs([f"@{tmp_path / '@list.txt'}"]) == [b]


def test_an_existing_path_with_braces_is_that_file_not_a_template(tmp_path) -> None:
    """'t2 {v2}.tif' and a batch --dsm 'dsm{1}.tif' that exist were refused as templates with unknown fields."""
    from rsmamba.jobs import check_templates, pair_inputs, resolve_template

    a, b = _inputs(tmp_path, 2)
    t2 = tmp_path / "t2 {v2}.dat"
    t2.write_text("t2")
    dsm = tmp_path / "dsm{1}.dat"
    dsm.write_text("dsm")
    assert pair_inputs(str(a), str(t2)) == ([a], [t2])
    check_templates(str(dsm), [a, b], "DSM")
    assert resolve_template(str(dsm), a) == dsm
    assert resolve_template(str(tmp_path / "{stem}_x.dat"), a) == tmp_path / "scene_0_x.dat"  # no such file: a template
    dsm.unlink()
    with pytest.raises(InputError, match=r"DSM template .*dsm\{1\}.dat': use \{stem\}"):
        check_templates(str(dsm), [a, b], "DSM")


def _immutable(folder) -> bool:
    """``folder`` made one no file can be created in (chattr +i for root, who ignores permissions); False if not."""
    import os
    import subprocess

    if os.geteuid() == 0:
        return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    folder.chmod(0o555)
    return True


def test_a_batch_into_a_folder_it_cannot_write_into_says_so_as_one_file_does(tmp_path) -> None:
    """'[Errno 1] Operation not permitted: ro/.rsmamba-batch.runs', naming a hidden file."""
    import os
    import subprocess

    from rsmamba.jobs import run_many

    paths = _inputs(tmp_path, 2)
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _immutable(ro):
        pytest.skip("needs a file system with chattr +i")
    try:
        for plan in (plan_jobs(paths, ro), plan_jobs(paths[:1], ro)):
            with pytest.raises(InputError, match=rf"^output folder \(-o[^)]*\) {re.escape(str(ro))}: cannot write "
                                                 rf"into {re.escape(str(ro))} \("):
                run_many(jobs.copy_job, plan, ro, kwargs={}, progress=False)
        assert list(ro.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(ro)], check=True)
        ro.chmod(0o755)


def test_one_input_into_a_file_given_as_a_folder_is_not_said_to_be_several(tmp_path) -> None:
    """``predict one.tif -o afile/`` said 'output folder (-o, several inputs) afile' of one input."""
    from rsmamba.jobs import run_many

    paths = _inputs(tmp_path, 2)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(InputError, match=r"^output folder \(-o\) .*afile: a file stands where"):
        run_many(jobs.copy_job, plan_jobs(paths[:1], afile), afile, kwargs={}, progress=False)
    with pytest.raises(InputError, match=r"^output folder \(-o, several inputs\) .*afile: a file stands where"):
        run_many(jobs.copy_job, plan_jobs(paths, afile), afile, kwargs={}, progress=False)


def test_a_batch_whose_every_job_is_refused_leaves_no_record_of_outputs_it_never_wrote(tmp_path) -> None:
    """A new folder kept .rsmamba-batch.guard/.json/.runs after every scene was refused; an existing one kept
    the claims of outputs never written."""
    import json

    from rsmamba.jobs import run_many

    paths = _inputs(tmp_path, 2)
    new = tmp_path / "new" / "deeper"
    with pytest.raises(JobsFailed):
        run_many(jobs.refusing_job, plan_jobs(paths, new), new, kwargs={"marker_dir": str(tmp_path)}, progress=False)
    assert not (tmp_path / "new").exists()
    with pytest.raises(InputError, match="--workers"):  # refused before any job: the same
        run_many(jobs.copy_job, plan_jobs(paths, new), new, kwargs={}, workers=0, progress=False)
    assert not (tmp_path / "new").exists()
    # an existing folder with an output of an earlier run: it keeps its record, and nothing of this run's
    out = tmp_path / "out"
    run_many(jobs.copy_job, plan_jobs(paths[:1], out), out, kwargs={}, progress=False)
    before = json.loads((out / ".rsmamba-batch.json").read_text())
    (tmp_path / "more").mkdir()
    more = _inputs(tmp_path / "more", 2)
    with pytest.raises(JobsFailed):
        run_many(jobs.refusing_job, plan_jobs([more[1]], out, template="x_{stem}.tif"), out,
                 kwargs={"marker_dir": str(tmp_path)}, progress=False)
    assert json.loads((out / ".rsmamba-batch.json").read_text())["made_from"] == before["made_from"]
    # an existing folder without a record (a user's own files) gets none
    own = tmp_path / "own"
    own.mkdir()
    (own / "notes.txt").write_text("mine")
    with pytest.raises(JobsFailed):
        run_many(jobs.refusing_job, plan_jobs(paths, own), own, kwargs={"marker_dir": str(tmp_path)}, progress=False)
    assert sorted(p.name for p in own.iterdir()) == ["notes.txt"]


def test_a_batch_output_onto_the_file_behind_another_jobs_vrt_is_refused(tmp_path) -> None:
    """'predict v/*.vrt -o src/ --overwrite' replaced src/b.tif, the orthophoto behind v/b.vrt's sibling job, with a
    class map (exit 0, that VRT unreadable): only the listed inputs were compared with the outputs."""
    import numpy as np

    from tests.helpers.rasters import write_raster

    src, v = tmp_path / "src", tmp_path / "v"
    src.mkdir()
    v.mkdir()
    for name in ("a", "b"):
        tif = write_raster(src / f"{name}.tif", np.ones((8, 8), np.uint8))
        (v / f"{name}.vrt").write_text(
            f'<VRTDataset rasterXSize="8" rasterYSize="8"><SRS>EPSG:32632</SRS>'
            f'<GeoTransform>500000, 1, 0, 5000000, 0, -1</GeoTransform><VRTRasterBand dataType="Byte" band="1">'
            f'<SimpleSource><SourceFilename relativeToVRT="0">{tif}</SourceFilename><SourceBand>1</SourceBand>'
            f'</SimpleSource></VRTRasterBand></VRTDataset>')
    with pytest.raises(InputError, match="is an input of this run"):
        plan_jobs([v / "a.vrt", v / "b.vrt"], src)


def test_an_unreadable_batch_record_vouches_for_nothing(tmp_path) -> None:
    """A truncated .rsmamba-batch.json was read as no record: a re-run with other settings skipped the old
    outputs as complete and rewrote the record to say they were made with its settings."""
    from rsmamba.jobs import run_many

    plan, out = plan_jobs(_inputs(tmp_path, 2), tmp_path / "out"), tmp_path / "out"
    run_many(jobs.copy_job, plan[:1], out, kwargs={"tag": "a"}, progress=False)
    (out / ".rsmamba-batch.json").write_text('{"settings": ')
    with pytest.raises(InputError, match=r"\.rsmamba-batch\.json: the folder's batch record is unreadable"):
        run_many(jobs.copy_job, plan, out, kwargs={"tag": "b"}, progress=False)
    done = run_many(jobs.copy_job, plan, out, kwargs={"tag": "b", "overwrite": True}, progress=False)
    assert [r.status for r in done] == ["done"] * 2  # recomputed, not skipped


def test_a_local_cluster_hands_dasks_logger_levels_back(tmp_path) -> None:
    """A local cluster silences dask's loggers in this process while it runs; they stayed at CRITICAL for good, so a
    pipeline's own dask cluster's errors went unseen after one ``predict_many(scheduler="local")``."""
    pytest.importorskip("dask.distributed")
    import logging

    import distributed  # noqa: F401 - its import gives its loggers their levels

    names = ("distributed", "distributed.scheduler", "distributed.client")
    own = logging.getLogger("distributed.scheduler").level
    logging.getLogger("distributed.scheduler").setLevel(logging.INFO)  # the caller's choice
    try:
        before = {name: logging.getLogger(name).level for name in names}
        results = run_jobs(jobs.copy_job, plan_jobs(_inputs(tmp_path, 1), tmp_path / "out"), kwargs={"tag": ""},
                           scheduler="local", n_workers=1, progress=False)
        assert [r.status for r in results] == ["done"]
        assert {name: logging.getLogger(name).level for name in names} == before
    finally:
        logging.getLogger("distributed.scheduler").setLevel(own)


def test_a_local_cluster_says_nothing_of_a_dashboard_port_another_holds(tmp_path) -> None:
    """'rsmamba: WARNING: Port 8787 is already in use. (UserWarning)' (dask's dashboard, another cluster on its
    port): no user's business; the dashboard takes a free port."""
    import socket
    import warnings

    held = socket.socket()
    try:
        held.bind(("0.0.0.0", 8787))  # (taken already by another process: the case itself)
        held.listen()
    except OSError:
        pass
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            results = run_jobs(jobs.copy_job, plan_jobs(_inputs(tmp_path, 1), tmp_path / "out"), kwargs={"tag": ""},
                               scheduler="local", n_workers=1, progress=False)
    finally:
        held.close()
    assert [r.status for r in results] == ["done"]
    assert not [w for w in seen if "already in use" in str(w.message)], [str(w.message) for w in seen]


def test_a_worker_loads_a_replaced_checkpoint_again(tmp_path, monkeypatch) -> None:
    """A batch in the caller's process (or a long-lived dask worker) kept the model of a path after the file there
    was replaced (retrained weights): it mapped with the old weights while the batch record named the new file."""
    import os
    from pathlib import Path

    import rsmamba.jobs.worker as worker
    from rsmamba.jobs.worker import cached_model

    monkeypatch.setattr(worker, "_MODELS", {})  # this test's stand-ins never reach the process's other callers
    path = tmp_path / "best.pt"
    path.write_bytes(b"first")
    loads = []

    def loader(spec, **key):
        loads.append(Path(spec).read_bytes())
        return loads[-1]

    assert cached_model(str(path), loader, image_count=3) == b"first"
    assert cached_model(str(path), loader, image_count=3) == b"first" and len(loads) == 1  # kept while the same
    replaced = tmp_path / "new.pt"
    replaced.write_bytes(b"second")
    os.replace(replaced, path)
    assert cached_model(str(path), loader, image_count=3) == b"second" and len(loads) == 2
    assert cached_model(None, lambda spec, **k: "shipped", image_count=3) == "shipped"  # no file: kept as is
    assert cached_model(None, lambda spec, **k: "other", image_count=3) == "shipped"


def test_a_name_template_leaving_the_output_folder_is_refused(tmp_path) -> None:
    """'../x.tif' was refused, '/data/abs_{stem}.tif' written under the folder as data/abs_... with exit 0."""
    paths = _inputs(tmp_path, 2)
    for template, said in (("../{stem}.tif", "not a file name inside the output folder"),
                           (str(tmp_path / "abs_{stem}.tif"), "a name inside the output folder \\(-o\\), not an "
                                                              "absolute path")):
        with pytest.raises(InputError, match=said):
            plan_jobs(paths, tmp_path / "out", template=template)
    assert [j.output.name for j in plan_jobs(paths, tmp_path / "out", template="{relparent}/{stem}.tif")] == [
        "scene_0.tif", "scene_1.tif"]  # an empty {relparent} is no absolute path


def test_a_batch_rerun_without_a_dsm_skips_its_outputs_as_complete(tmp_path) -> None:
    """The record's dsm_template 'false' was read back as given ('true'): every batch without --dsm refused its own
    re-run as 'made with other settings (dsm_template)'."""
    from rsmamba.jobs import run_many

    plan, out = plan_jobs(_inputs(tmp_path, 2), tmp_path / "out"), tmp_path / "out"
    for template in (None, "{dir}/{stem}_dsm.tif"):
        run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"}, settings={"tag": "a", "dsm_template": template},
                 progress=False)
        again = run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"},
                         settings={"tag": "a", "dsm_template": template}, progress=False)
        assert [r.status for r in again] == ["skipped"] * 2
        with pytest.raises(InputError, match=r"other settings \(dsm_template\)"):  # given against not given
            run_many(jobs.copy_job, plan, out, kwargs={"tag": "a"},
                     settings={"tag": "a", "dsm_template": "{dir}/x.tif" if template is None else None}, progress=False)
        out = tmp_path / "out2"
        plan = plan_jobs(_inputs(tmp_path, 2), out)


def test_the_same_batch_started_twice_leaves_each_scene_to_the_run_that_holds_it(tmp_path) -> None:
    """Both runs exited 2: each failed the scenes the other was writing ('being written by another rsmamba run') or
    had published since it looked ('exists, use --overwrite'). A scene the other run holds is its to make."""
    from rsmamba.atomic import OutputBusyError
    from rsmamba.jobs.run import _run_one

    (job,) = plan_jobs(_inputs(tmp_path, 1), tmp_path / "out")
    job.output.parent.mkdir()

    def busy(src, out):
        raise OutputBusyError(f"output {out} is being written by another rsmamba run (pid 1)")

    assert _run_one(busy, job, {}, skip_complete=True).status == "elsewhere"
    # with --overwrite too: both runs made every scene once, and each exited 2 for the scenes the other made (QA)
    assert _run_one(busy, job, {}).status == "elsewhere"

    def published_meanwhile(src, out):  # the other run published it while this one loaded its model
        out.write_text("theirs")
        raise InputError(f"classes: output {out} exists (use --overwrite to replace it)")

    assert _run_one(published_meanwhile, job, {}, skip_complete=True).status == "skipped"
    (tmp_path / "two").mkdir()
    first, second = plan_jobs(_inputs(tmp_path / "two", 2), tmp_path / "two" / "out")
    second.output.parent.mkdir(exist_ok=True)

    def other_run_publishes_the_next(src, out):  # while this run computes the first, the other publishes the second
        if out == second.output:
            pytest.fail("ran a scene another run had published")
        second.output.write_text("theirs")
        out.write_text("mine")

    assert [r.status for r in run_jobs(other_run_publishes_the_next, [first, second], progress=False)] == [
        "done", "skipped"]


def test_a_dsm_template_is_checked_and_fills_in_for_one_scene_too(tmp_path, capsys) -> None:
    """'--dsm dsm/{parent}/{stem}.tif' over many scenes was a KeyError traceback ('{stem.upper}' a path of a bound
    method's repr); with one scene and -o FILE the template was read as a file name: not found (QA)."""
    import numpy as np

    from rsmamba.cli import main
    from tests.helpers.rasters import random_image, write_raster

    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        write_raster(tmp_path / "in" / f"{name}.tif", random_image(40, 50), res=0.25)
        write_raster(tmp_path / "in" / f"{name}_dsm.tif", np.full((40, 50), 30.0, np.float32), res=0.25)
    for template in ("{dir}/{parent}_dsm.tif", "{dir}/{stem.upper}_dsm.tif", "{dir}/{stem:>99}_dsm.tif", "{dir}/{0}"):
        assert main(["predict", str(tmp_path / "in" / "[ab].tif"), "--dsm", template, "-o",
                     str(tmp_path / "out") + "/"]) == 2, template
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "template" in err[0] and "use {stem}, {name} or {dir}" in err[0], err
    assert not (tmp_path / "out").exists()
    assert main(["predict", str(tmp_path / "in" / "a.tif"), "--dsm", "{dir}/{stem}_dsm.tif", "-o",
                 str(tmp_path / "one.tif"), "--no-tta"]) == 0, capsys.readouterr().err
    assert (tmp_path / "one.tif").is_file()


def test_an_input_replaced_in_place_is_recomputed_not_skipped_as_complete(tmp_path, caplog) -> None:
    """An ortho re-delivered under the same name (new content and time stamp) kept its old map: the re-run said
    '0 scenes predicted, 6 already complete' (the record held the inputs' paths only; QA)."""
    import json
    import os

    from rsmamba.jobs import run_many

    paths, out = _inputs(tmp_path, 3), tmp_path / "out"
    plan = plan_jobs(paths, out)
    assert [r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)] == ["done"] * 3
    paths[1].write_text("scene 1, flown again")
    st = paths[1].stat()
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a later time whatever the clock
    with caplog.at_level("WARNING"):
        again = run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)
    assert {r.job.output.name: r.status for r in again} == {"scene_0.tif": "skipped", "scene_1.tif": "done",
                                                             "scene_2.tif": "skipped"}
    assert (out / "scene_1.tif").read_text() == "scene 1, flown again"
    assert "recomputing 1 output whose input changed since it was made: scene_1.tif" in caplog.text
    assert [r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)] == ["skipped"] * 3
    # a recompute that fails keeps the old map and its old record: the next run tries again
    paths[2].write_text("unreadable")
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    with pytest.raises(JobsFailed, match="1 of 3 jobs failed; 2 already complete"):
        run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)
    assert (out / "scene_2.tif").read_text() == "scene 2"
    paths[2].write_text("scene 2 again")
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    assert sorted(r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)) == [
        "done", "skipped", "skipped"]
    assert (out / "scene_2.tif").read_text() == "scene 2 again"
    # a folder recorded before the inputs' versions were: complete when they exist, as it was then
    record = out / ".rsmamba-batch.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({k: v for k, v in data.items() if k != "input_stamps"}))
    paths[0].write_text("scene 0 again")
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 4_000_000_000))
    assert [r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)] == ["skipped"] * 3


def test_a_vrt_source_replaced_in_place_recomputes_the_vrts_output(tmp_path) -> None:
    """The VRT's XML is unchanged when a tile behind it is delivered again: its map was skipped as complete (QA)."""
    import os

    import numpy as np

    from rsmamba.jobs import run_many
    from tests.helpers.rasters import write_raster

    tif = write_raster(tmp_path / "tile.tif", np.ones((8, 8), np.uint8))
    vrt = tmp_path / "v" / "mosaic.vrt"
    vrt.parent.mkdir()
    vrt.write_text(f'<VRTDataset rasterXSize="8" rasterYSize="8"><SRS>EPSG:32632</SRS>'
                   f'<GeoTransform>500000, 1, 0, 5000000, 0, -1</GeoTransform><VRTRasterBand dataType="Byte" band="1">'
                   f'<SimpleSource><SourceFilename relativeToVRT="0">{tif}</SourceFilename><SourceBand>1</SourceBand>'
                   f'</SimpleSource></VRTRasterBand></VRTDataset>')
    out = tmp_path / "out"
    plan = plan_jobs([vrt], out)
    assert [r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)] == ["done"]
    assert [r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)] == ["skipped"]
    st = tif.stat()
    write_raster(tif, np.full((8, 8), 2, np.uint8))
    os.utime(tif, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert [r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)] == ["done"]


def test_a_file_read_beside_an_input_deleted_after_its_map_was_made_keeps_the_map_complete(tmp_path) -> None:
    """A DSM removed once its map was made (intermediate data cleaned up) is no newer DSM: the map stays complete,
    not recomputed into a failure."""
    from dataclasses import replace

    from rsmamba.jobs import run_many

    paths, out = _inputs(tmp_path, 2), tmp_path / "out"
    dsm = tmp_path / "dsm.dat"
    dsm.write_text("heights")
    plan = [replace(job, reads=(dsm,)) for job in plan_jobs(paths, out)]
    assert [r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)] == ["done"] * 2
    dsm.unlink()
    assert [r.status for r in run_many(jobs.guarded_copy_job, plan, out, kwargs={}, progress=False)] == ["skipped"] * 2


def test_a_file_another_command_wrote_at_an_unrun_shards_output_is_refused_not_complete(tmp_path) -> None:
    """Shard 0/2 of a batch, then a one-scene run (with --tta) at an output of shard 1/2: shard 1 skipped that file as
    complete, a map of other settings in the folder (QA). A record that lists its outputs knows it is none of them.
    A record of the settings alone (written before inputs were recorded) keeps its outputs complete, then and after."""
    import json

    from rsmamba.jobs import run_many

    paths, out = _inputs(tmp_path, 2), tmp_path / "out"
    plan = plan_jobs(paths, out)
    assert [r.status for r in run_many(jobs.copy_job, plan, out, kwargs={}, shard="0/2", progress=False)] == ["done"]
    (out / "scene_1.tif").write_text("made with --tta")
    with pytest.raises(InputError, match=r"out/scene_1.tif: not made by this batch \(its record .*rsmamba-batch.json "
                                         r"does not list it; .*delete it and run again to compute it, --overwrite"):
        run_many(jobs.copy_job, plan, out, kwargs={}, shard="1/2", progress=False)
    (out / "scene_1.tif").unlink()
    assert [r.status for r in run_many(jobs.copy_job, plan, out, kwargs={}, shard="1/2", progress=False)] == ["done"]
    assert [r.status for r in run_many(jobs.copy_job, plan, out, kwargs={}, progress=False)] == ["skipped"] * 2

    record = out / ".rsmamba-batch.json"  # a folder recorded before inputs were, run again with one scene more
    record.write_text(json.dumps(json.loads(record.read_text())["settings"]))
    grown = plan_jobs(_inputs(tmp_path, 3), out)
    assert [r.status for r in run_many(jobs.copy_job, grown, out, kwargs={}, progress=False)] == [
        "skipped", "skipped", "done"]
    assert [r.status for r in run_many(jobs.copy_job, grown, out, kwargs={}, progress=False)] == ["skipped"] * 3


def test_a_file_another_command_wrote_before_a_folders_first_batch_is_refused_not_complete(tmp_path) -> None:
    """'predict a.tif -o out/a.tif --tta', then 'predict in/*.tif -o out/': the first batch skipped a.tif as complete
    (a map of other settings), and recorded nothing of it, so that its next run refused it (QA)."""
    from rsmamba.jobs import run_many

    paths, out = _inputs(tmp_path, 2), tmp_path / "out"
    out.mkdir()
    (out / "scene_0.tif").write_text("made with --tta")
    with pytest.raises(InputError, match=r"out/scene_0.tif: not made by this batch \(.*out holds no batch record; "):
        run_many(jobs.copy_job, plan_jobs(paths, out), out, kwargs={}, progress=False)
    assert [p.name for p in out.iterdir()] == ["scene_0.tif"]  # before any job; no hidden lock files left (QA)
    done = run_many(jobs.copy_job, plan_jobs(paths, out), out, kwargs={"overwrite": True}, progress=False)
    assert [r.status for r in done] == ["done"] * 2 and (out / "scene_0.tif").read_text() == "scene 0"


def test_warnings_of_a_dask_worker_are_said_by_the_caller_once_naming_the_paths_as_given(tmp_path, monkeypatch,
                                                                                          caplog, capfd) -> None:
    """A batch on ``--scheduler tcp://...`` said none of its scenes' warnings ('DSM ... resampled onto the image
    grid'): they went to the workers' own terminals or logs. The caller says them now, once, naming the inputs as
    given (the workers get them absolute) or the scene; a local cluster's workers no longer print them too."""
    pytest.importorskip("dask.distributed")
    import logging

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.dat").write_text("a")
    with caplog.at_level(logging.WARNING, logger="rsmamba"):
        results = run_jobs(jobs.warning_job, plan_jobs(expand_inputs(["in/a.dat"]), "out/"), scheduler="local",
                           n_workers=1, progress=False)
    assert [r.status for r in results] == ["done"]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == ["in/a.dat: DSM resampled onto the image grid", "in/a.dat: a warning naming no input"]
    assert str(tmp_path / "in" / "a.dat") not in capfd.readouterr().err  # the worker's own stderr, its paths absolute


@pytest.mark.parametrize("reply", [b"", b"HTTP/1.0 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n"],
                         ids=["silent", "web-server"])
def test_a_scheduler_address_where_no_dask_scheduler_answers_is_one_line_in_dasks_connect_time(tmp_path, reply) -> None:
    """A server that is no Dask scheduler (the dashboard's port 8787 for the scheduler's 8786): one that waits for
    a request held the run in distributed's handshake for good; one that replies (a web server) had its reply read
    as a frame length: 'out of memory (Unable to allocate 3.07 EiB ...)'."""
    pytest.importorskip("dask.distributed")
    import socket
    import threading

    import dask

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if reply:
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            run_jobs(jobs.copy_job, plan_jobs(_inputs(tmp_path, 1), tmp_path / "out"),
                     scheduler=f"tcp://127.0.0.1:{server.getsockname()[1]}", progress=False)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - looked at below
            outcome.append(exc)

    try:
        with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
            runner = threading.Thread(target=run, daemon=True)
            runner.start()
            runner.join(60)  # (Dask's connect timeout, 1 s, and 5 s more for the handshake)
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert outcome, "still waiting for the handshake"
    assert isinstance(outcome[0], InputError), outcome[0]
    assert "no Dask scheduler answered there" in str(outcome[0]) and "\n" not in str(outcome[0])


def test_a_worker_without_the_callers_storage_fails_its_scenes_saying_so(tmp_path) -> None:
    """A worker writing onto a disk of its own made a batch say '2 scenes predicted' and exit 0 with no output
    here; one that did not find an input that this machine has said only 'No such file or directory'."""
    pytest.importorskip("dask.distributed")
    paths = []
    for name in ("a_written.dat", "b_missing.dat"):
        paths.append(tmp_path / name)
        paths[-1].write_text(name)
    with pytest.raises(JobsFailed) as failed:
        run_jobs(jobs.unshared_job, plan_jobs(paths, tmp_path / "out"), scheduler="local", n_workers=1, retries=0,
                 progress=False)
    assert failed.value.exit_code == 2
    written, missing = (r.error for r in sorted(failed.value.results, key=lambda r: r.job.name))
    assert written.startswith("written on the worker tcp://") and "which this machine does not see" in written
    assert "on the worker tcp://" in missing and "though this machine has the inputs" in missing
    assert "on storage they share" in written and "on storage they share" in missing


def test_a_scheduler_lost_mid_run_fails_the_unfinished_scenes_in_one_line_each(tmp_path) -> None:
    """A scheduler killed mid-run: every scene 'FutureCancelledError: _run_one-... cancelled for reason: unknown', exit
    1 as a bug, the scenes finished meanwhile among them, and dask's timestamped ERROR line before it."""
    pytest.importorskip("dask.distributed")
    import subprocess
    import sys
    import time

    import dask

    file = tmp_path / "scheduler.json"
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen([*dask_cli, "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(file)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        for _ in range(600):
            if file.exists() and file.read_text().strip():
                break
            time.sleep(0.1)
        import json

        address = json.loads(file.read_text())["address"]
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                   "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        paths = []
        for name in ("a_kill.dat", "b_wait.dat"):
            paths.append(tmp_path / name)
            paths[-1].write_text(name)
        with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
            from distributed import Client

            with Client(address, timeout=60) as client:  # the worker up before the run
                client.wait_for_workers(1, timeout=60)
            with pytest.raises(JobsFailed) as failed:
                run_jobs(jobs.scheduler_killing_job, plan_jobs(paths, tmp_path / "out"),
                         kwargs={"scheduler_pid": scheduler.pid}, scheduler=address, retries=0, progress=False)
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.kill()
                proc.wait()
    done, lost = sorted(failed.value.results, key=lambda r: r.job.name)
    assert done.status == "done" and done.job.output.exists()
    assert lost.status == "failed" and "was lost before this scene was finished" in lost.error
    assert failed.value.exit_code == 2
