"""Many scenes: in-process and Dask LocalCluster (2 worker processes) give byte-identical rasters."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
import torch

from rsmamba.checkpoint import save_checkpoint
from rsmamba.classes import ISPRS_CLASSES
from rsmamba.cli import main
from rsmamba.models import create_model
from rsmamba.jobs import JobsFailed
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from rsmamba.predict.slices import predict_slices
from rsmamba.predict.many import predict_many
from rsmamba.synth import write_scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    images = []
    for seed in range(4):
        paths = write_scene(root / f"s{seed}", size=96, seed=seed, gsd=0.5)
        target = root / f"scene{seed}.tif"
        paths["ortho_t1"].rename(target)
        paths["dsm_t1"].rename(root / f"scene{seed}_dsm.tif")
        images.append(target)
    torch.manual_seed(0)
    model = create_model("fcn_baseline", in_chans=4, num_classes=6, width=8)
    ckpt = save_checkpoint(root / "model.pt", {
        "model": "fcn_baseline", "model_kwargs": {"in_chans": 4, "num_classes": 6, "width": 8},
        "state_dict": model.state_dict(), "bands": {"image": [1, 2, 3], "dsm": True},
        "normalization": {"image": {"mean": [120.0] * 3, "std": [50.0] * 3}, "dsm": {"mode": "minmax-window"}},
        "classes": [c.to_dict() for c in ISPRS_CLASSES],
    })
    return root, images, ckpt


@contextlib.contextmanager
def _as_two_local_workers():
    """Torch threads as each of 2 local workers has them (``worker_thread_env``): float sums round with the
    thread count, so a single-process reference equals a cluster's files only at the workers' count."""
    from rsmamba.jobs.run import worker_thread_env

    before = torch.get_num_threads()
    torch.set_num_threads(int(worker_thread_env(2)["OMP_NUM_THREADS"]))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tif"))}


def test_a_scheduler_whose_workers_run_in_another_folder_takes_relative_paths(scenes, tmp_path, monkeypatch) -> None:
    """The documented ``rsmamba predict 'campaign/*.tif' --dsm 'dsm/{stem}.tif' -o out/ --model model.pt --scheduler
    tcp://...``: workers started elsewhere read 'campaign/a.tif' in their own folder ('No such file or directory'
    for every scene, and the outputs would land there, QA). Paths go to the workers absolute."""
    import shutil

    from rsmamba.jobs.run import local_cluster

    root, images, ckpt = scenes
    project = tmp_path / "project"
    for sub in ("campaign", "dsm"):
        (project / sub).mkdir(parents=True)
    for image in images[:2]:
        shutil.copy(image, project / "campaign" / image.name)
        shutil.copy(root / f"{image.stem}_dsm.tif", project / "dsm" / f"{image.stem}.tif")
    shutil.copy(ckpt, project / "model.pt")
    common = {"model": "model.pt", "dsm_template": "dsm/{stem}.tif", "window": 64, "overlap": 16, "progress": False}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the workers' folder
    cluster = local_cluster(1)
    try:
        monkeypatch.chdir(project)  # the user's
        results = predict_many(["campaign/*.tif"], "out/", scheduler=cluster.scheduler_address, **common)
    finally:
        cluster.close()
    assert [r.status for r in results] == ["done", "done"], [r.error for r in results]
    assert sorted(str(r.job.inputs[0]) for r in results) == ["campaign/scene0.tif", "campaign/scene1.tif"]  # as given
    assert [p.name for p in elsewhere.iterdir() if not p.name.startswith("dask-")] == []
    assert sorted(_digests(project / "out")) == ["scene0.tif", "scene1.tif"]


def test_local_cluster_equals_single_process(scenes, tmp_path) -> None:
    root, images, ckpt = scenes
    common = {"model": str(ckpt), "dsm_template": "{dir}/{stem}_dsm.tif", "window": 64, "overlap": 16,
              "progress": False}
    with _as_two_local_workers():
        single = predict_many([str(root / "scene?.tif")], tmp_path / "single", **common)
    assert [r.status for r in single] == ["done"] * 4
    cluster = predict_many([str(p) for p in images], tmp_path / "cluster", scheduler="local", workers=2, **common)
    assert sorted(r.status for r in cluster) == ["done"] * 4
    assert _digests(tmp_path / "single") == _digests(tmp_path / "cluster")
    assert len(_digests(tmp_path / "single")) == 4
    again = predict_many([str(p) for p in images], tmp_path / "single", **common)
    assert [r.status for r in again] == ["skipped"] * 4


def test_a_rerun_with_other_settings_does_not_count_old_outputs_as_done(scenes, tmp_path) -> None:
    root, images, ckpt = scenes
    common = {"model": str(ckpt), "dsm_template": "{dir}/{stem}_dsm.tif", "overlap": 16, "progress": False}
    first = predict_many([str(p) for p in images[:2]], tmp_path / "out", window=64, **common)
    assert [r.status for r in first] == ["done"] * 2
    with pytest.raises(InputError, match=r"2 outputs \(e.g. scene0.tif\) were made with other settings \(window\)"):
        predict_many([str(p) for p in images[:2]], tmp_path / "out", window=32, **common)
    redone = predict_many([str(p) for p in images[:2]], tmp_path / "out", window=32, overwrite=True, **common)
    assert [r.status for r in redone] == ["done"] * 2
    more = predict_many([str(p) for p in images[:3]], tmp_path / "out", window=32, **common)  # same settings
    assert sorted(r.status for r in more) == ["done", "skipped", "skipped"]
    bigger = predict_many([str(p) for p in images[:3]], tmp_path / "out", window=32, batch_size=8, **common)
    assert [r.status for r in bigger] == ["skipped"] * 3  # how a run goes is no setting of its outputs


def test_a_map_made_with_other_dsms_is_not_complete(scenes, tmp_path, monkeypatch) -> None:
    """The record held each map's ortho and the --dsm template as text: run again from another folder, whose
    'dsm/{stem}.tif' are other DSMs, every scene was skipped as complete (19-38 % of the pixels differ)."""
    import json
    import shutil

    root, images, ckpt = scenes
    for cwd in ("a", "b"):
        (tmp_path / cwd / "dsm").mkdir(parents=True)
        for i, image in enumerate(images[:2]):  # b's DSMs are the other scene's
            source = root / f"scene{i if cwd == 'a' else 1 - i}_dsm.tif"
            shutil.copy(source, tmp_path / cwd / "dsm" / f"{image.stem}.tif")
    common = {"model": str(ckpt), "dsm_template": "dsm/{stem}.tif", "window": 64, "progress": False}
    monkeypatch.chdir(tmp_path / "a")
    assert [r.status for r in predict_many([str(p) for p in images[:2]], tmp_path / "out", **common)] == ["done"] * 2
    record = json.loads((tmp_path / "out" / ".rsmamba-batch.json").read_text())
    assert record["made_from"]["scene0.tif"] == [str(images[0].resolve()), str(tmp_path / "a" / "dsm" / "scene0.tif")]
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(InputError, match=r"scene0.tif was made from \S+scene0.tif \+ \.\./a/dsm/scene0.tif, now \S+ \+ dsm/scene0.tif"):
        predict_many([str(p) for p in images[:2]], tmp_path / "out", **common)
    monkeypatch.chdir(tmp_path / "a")  # the same DSMs named by another template: no other setting
    same = {**common, "dsm_template": str(tmp_path / "a" / "dsm" / "{stem}.tif")}
    assert [r.status for r in predict_many([str(p) for p in images[:2]], tmp_path / "out", **same)] == ["skipped"] * 2
    with pytest.raises(InputError, match=r"window\); --overwrite recomputes this run's outputs once the others are "
                                         r"gone \(or run every scene with it\)"):  # it said '--overwrite recomputes them'
        predict_many([str(images[0])], tmp_path / "out", **{**common, "window": 32})
    # a folder recorded before the DSMs were: its maps are complete as they were then
    record["made_from"] = {k: v[:1] for k, v in record["made_from"].items()}
    (tmp_path / "out" / ".rsmamba-batch.json").write_text(json.dumps(record))
    monkeypatch.chdir(tmp_path / "a")
    assert [r.status for r in predict_many([str(p) for p in images[:2]], tmp_path / "out", **common)] == ["skipped"] * 2


def test_one_scene_written_into_a_batch_folder_is_checked_and_recorded(scenes, tmp_path, capsys) -> None:
    """predict tile0.tif -o out/tile2.tif --overwrite put tile0's map under tile2's name, and a run of one scene
    with --tta added a map of other settings; the batch re-run then skipped both as complete."""
    root, images, ckpt = scenes
    out = tmp_path / "out"
    batch = ["predict", str(root / "scene?.tif"), "--dsm", "{dir}/{stem}_dsm.tif", "--model", str(ckpt),
             "--window", "64", "-o", f"{out}/"]
    assert main(["-q", *batch]) == 0
    one = ["predict", str(images[1]), "--dsm", str(root / "scene1_dsm.tif"), "--model", str(ckpt), "--window", "64"]
    capsys.readouterr()
    assert main(["-q", *one, "-o", str(out / "scene1.tif")]) == 0  # the same scene, settings and DSM: complete
    assert "0 scenes predicted, 1 already complete" in capsys.readouterr().out
    assert main(["-q", *one, "-o", str(out / "scene1.tif"), "--tta"]) == 2
    assert "were made with other settings (tta)" in capsys.readouterr().err
    assert main(["-q", *one, "-o", str(out / "scene2.tif"), "--overwrite"]) == 0  # scene1's map as scene2: recorded
    assert main(["-q", *batch]) == 2
    err = capsys.readouterr().err
    assert "scene2.tif was made from" in err and "scene1.tif + " in err and "now " in err
    assert main(["-q", *one, "-o", str(out / "x.tif"), "--probabilities", str(tmp_path / "p.tif")]) == 2
    assert "is a batch run's folder" in capsys.readouterr().err


def test_one_scene_written_into_a_mirrored_batchs_subfolder_is_checked_and_recorded(scenes, tmp_path, capsys) -> None:
    """A batch with --name-template '{relparent}/{stem}.tif' writes out/a/s.tif under out/'s record; one scene run
    into out/a/s.tif --overwrite (another scene's ortho) was not seen as the batch's, and the batch re-run then
    skipped that other scene's map as complete (QA)."""
    import shutil

    root, images, ckpt = scenes
    for i, sub in enumerate("ab"):
        (tmp_path / sub).mkdir()
        shutil.copy(images[i], tmp_path / sub / "s.tif")
        shutil.copy(root / f"scene{i}_dsm.tif", tmp_path / sub / "s_dsm.tif")
    out = tmp_path / "out"
    batch = ["predict", str(tmp_path / "a" / "s.tif"), str(tmp_path / "b" / "s.tif"), "--dsm", "{dir}/{stem}_dsm.tif",
             "--model", str(ckpt), "--window", "64", "-o", f"{out}/", "--name-template", "{relparent}/{stem}.tif"]
    assert main(["-q", *batch]) == 0 and (out / "a" / "s.tif").exists()
    one = ["predict", str(tmp_path / "b" / "s.tif"), "--dsm", str(tmp_path / "b" / "s_dsm.tif"), "--model", str(ckpt),
           "--window", "64"]
    assert main(["-q", *one, "-o", str(out / "a" / "s.tif"), "--tta", "--overwrite"]) == 2
    assert "made with other settings (tta)" in capsys.readouterr().err
    assert main(["-q", *one, "-o", str(out / "a" / "s.tif"), "--overwrite"]) == 0  # b's map as a's: recorded
    assert main(["-q", *batch]) == 2
    err = capsys.readouterr().err
    assert "a/s.tif was made from" in err and "b/s.tif + " in err
    # a file the batch does not know, in a folder below it, is no batch's (a batch run into the home folder once)
    assert main(["-q", *one, "-o", str(out / "c" / "s.tif"), "--tta"]) == 0 and (out / "c" / "s.tif").exists()


def test_an_unreadable_scene_that_sorts_first_changes_no_setting(scenes, tmp_path) -> None:
    """A corrupt a0.tif before b1/b2 left the settings unresolved: every finished output was refused as made with
    other settings (model, overlap, tta, window), or a folder begun with it refused them once it was gone."""
    import shutil

    root, images, ckpt = scenes
    folder, dsms = tmp_path / "img", tmp_path / "dsm"
    folder.mkdir()
    dsms.mkdir()
    for i in (1, 2):
        shutil.copy(images[i], folder / f"b{i}.tif")
        shutil.copy(root / f"scene{i}_dsm.tif", dsms / f"b{i}.tif")
    common = {"model": str(ckpt), "dsm_template": "{dir}/../dsm/{stem}.tif", "progress": False, "retries": 0}
    assert [r.status for r in predict_many([str(folder / "*.tif")], tmp_path / "out", **common)] == ["done"] * 2
    (folder / "a0.tif").write_bytes(images[3].read_bytes()[:3000])
    shutil.copy(root / "scene3_dsm.tif", dsms / "a0.tif")
    with pytest.raises(JobsFailed, match=r"1 of 3 jobs failed") as info:
        predict_many([str(folder / "*.tif")], tmp_path / "out", **common)
    assert sorted(r.status for r in info.value.results) == ["failed", "skipped", "skipped"]
    with pytest.raises(JobsFailed, match=r"1 of 3 jobs failed"):  # a folder begun with the bad scene first
        predict_many([str(folder / "*.tif")], tmp_path / "fresh", max_errors=1, **common)
    (folder / "a0.tif").unlink()
    assert [r.status for r in predict_many([str(folder / "*.tif")], tmp_path / "fresh", **common)] == ["skipped"] * 2


def test_cli_and_library_folders_accept_each_other_and_options_that_change_no_pixel(scenes, tmp_path, capsys) -> None:
    """The record held only the options passed: a library call into a CLI folder was refused as (allow_geographic_mix,
    amp, bands, blend, co, compress, crop, pixel_grid); --bands naming the model's own bands, a lossless --compress
    or --co LEVEL=9 were refused too."""
    root, images, ckpt = scenes
    out = tmp_path / "out"
    base = ["predict", str(root / "scene?.tif"), "-o", str(out), "--model", str(ckpt), "--dsm", "{dir}/{stem}_dsm.tif",
            "--window", "64", "--overlap", "16"]
    assert main(base) == 0
    lib = predict_many([str(root / "scene?.tif")], out, model=str(ckpt), dsm_template="{dir}/{stem}_dsm.tif",
                       window=64, overlap=16, progress=False)
    assert [r.status for r in lib] == ["skipped"] * 4
    capsys.readouterr()
    assert main([*base, "--bands", "1,2,3", "--compress", "zstd", "--co", "LEVEL=9", "--co", "BLOCKSIZE=256",
                 "--allow-geographic-mix"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"0 scenes predicted, 4 already complete, into {out}")
    assert main([*base, "--bands", "3,2,1"]) == 2
    assert "were made with other settings (bands)" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--dry-run"], ["--probabilities", "p.tif"], ["--resume"]])
def test_one_scene_options_with_many_inputs_are_refused_not_ignored(scenes, tmp_path, capsys, option) -> None:
    """--dry-run over many scenes wrote every output ('write nothing' was ignored on the batch path)."""
    root, images, ckpt = scenes
    out = tmp_path / "out"
    code = main(["predict", str(root / "scene?.tif"), "-o", str(out), "--model", str(ckpt),
                 "--dsm", "{dir}/{stem}_dsm.tif", *option])
    assert code == 2 and f"{option[0]}: works on one scene at a time" in capsys.readouterr().err
    assert not out.exists() or not list(out.glob("*.tif"))


def test_a_copy_of_the_model_is_the_same_model_and_a_shard_checks_its_own_dsms(scenes, tmp_path) -> None:
    """Slurm jobs stage the model to node-local scratch: the same bytes, another path and mtime."""
    import shutil

    root, images, ckpt = scenes
    copy = tmp_path / "node" / "model.pt"
    copy.parent.mkdir()
    shutil.copy(ckpt, copy)
    common = {"dsm_template": "{dir}/{stem}_dsm.tif", "window": 64, "overlap": 16, "progress": False}
    predict_many([str(p) for p in images[:2]], tmp_path / "out", model=str(ckpt), shard="0/2", **common)
    second = predict_many([str(p) for p in images[:2]], tmp_path / "out", model=str(copy), shard="1/2", **common)
    assert [r.status for r in second] == ["done"]
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(images[0], lone / "a.tif")
    shutil.copy(images[0].with_name(images[0].stem + "_dsm.tif"), lone / "a_dsm.tif")
    shutil.copy(images[1], lone / "b.tif")  # its DSM is missing: shard 1's problem, not shard 0's
    done = predict_many([str(lone / "a.tif"), str(lone / "b.tif")], tmp_path / "out2", model=str(ckpt),
                        shard="0/2", **common)
    assert [r.status for r in done] == ["done"]
    with pytest.raises(InputError, match="DSM not found: .*b_dsm.tif"):
        predict_many([str(lone / "a.tif"), str(lone / "b.tif")], tmp_path / "out2", model=str(ckpt),
                     shard="1/2", **common)


def test_slice_rows_with_many_inputs_is_refused_not_ignored(scenes, tmp_path, capsys) -> None:
    root, images, ckpt = scenes
    code = main(["predict", str(root / "scene?.tif"), "-o", str(tmp_path / "out"), "--model", str(ckpt),
                 "--dsm", "{dir}/{stem}_dsm.tif", "--slice-rows", "64"])
    assert code == 2 and "--slice-rows splits one scene" in capsys.readouterr().err


def test_cli_many_inputs_with_shards(scenes, tmp_path) -> None:
    root, images, ckpt = scenes
    out = tmp_path / "out"
    for i in range(2):
        code = main(["predict", str(root / "scene?.tif"), "-o", str(out), "--model", str(ckpt),
                     "--dsm", "{dir}/{stem}_dsm.tif", "--window", "64", "--overlap", "16", "--shard", f"{i}/2"])
        assert code == 0
        assert len(list(out.glob("*.tif"))) == 2 * (i + 1)


@pytest.fixture(scope="module")
def tall_scene(scenes, tmp_path_factory):
    """A scene of three row slices at ``slice_rows=256`` (the last one short), plus its single-process result."""
    root = tmp_path_factory.mktemp("tall")
    paths = write_scene(root / "s", size=560, seed=7, gsd=0.5)
    ckpt = scenes[2]
    kw = {"dsm": paths["dsm_t1"], "model": str(ckpt), "window": 96, "overlap": 32, "strip_width": 256}
    with _as_two_local_workers():
        predict_raster(paths["ortho_t1"], root / "single.tif", confidence=root / "single_conf.tif", **kw)
    return paths["ortho_t1"], kw, root / "single.tif", root / "single_conf.tif"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_scene_in_row_slices_on_local_cluster_equals_single_process(tall_scene, tmp_path) -> None:
    image, kw, single, single_conf = tall_scene
    summary = predict_slices(image, tmp_path / "bands.tif", confidence=tmp_path / "conf.tif", slice_rows=256,
                            scheduler="local", workers=2, progress=False, **kw)
    assert summary.slices == [(0, 256), (256, 512), (512, 560)]
    assert summary.window_ratio == pytest.approx(12 / 9)  # grid rows 0,64,..,448,464: 4 + 6 + 2 run, 9 in one pass
    assert sorted(r.status for r in summary.results) == ["done"] * 3
    assert _sha(tmp_path / "bands.tif") == _sha(single)
    assert _sha(tmp_path / "conf.tif") == _sha(single_conf)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bands.tif", "bands.tif.aux.xml", "conf.tif"]  # no parts


def test_row_slices_rerun_computes_only_missing_bands(tall_scene, tmp_path, monkeypatch) -> None:
    """A band that fails leaves the others' parts; the re-run computes just that band, same result."""
    import rsmamba.predict as predict_pkg

    image, kw, single, _ = tall_scene
    real = predict_pkg.predict_raster
    calls, lost = [], [True]

    def flaky(*args, rows, **kwargs):
        calls.append(rows)
        if rows == (256, 512) and lost[0]:
            raise OSError("node lost")
        return real(*args, rows=rows, **kwargs)

    monkeypatch.setattr(predict_pkg, "predict_raster", flaky)
    with pytest.raises(JobsFailed, match=r"1 of 3 jobs failed; 2 done:\n  .*slice-00001.classes.tif.*node lost"):
        predict_slices(image, tmp_path / "bands.tif", slice_rows=256, retries=0, progress=False, **kw)
    assert not (tmp_path / "bands.tif").exists()
    calls.clear()
    lost[0] = False
    again = predict_slices(image, tmp_path / "bands.tif", slice_rows=256, progress=False, **kw)
    assert calls == [(256, 512)]
    assert sorted(r.status for r in again.results) == ["done", "skipped", "skipped"]
    assert _sha(tmp_path / "bands.tif") == _sha(single)


def test_a_whole_run_removes_the_parts_a_failed_sliced_run_left(tall_scene, tmp_path, monkeypatch) -> None:
    """A --slice-rows run killed (or failed) keeps its parts for a rerun; the output then made without slices left
    them hidden beside it for good (QA)."""
    import rsmamba.predict as predict_pkg

    image, kw, single, _ = tall_scene
    real = predict_pkg.predict_raster

    def flaky(*args, rows, **kwargs):
        if rows == (256, 512):
            raise OSError("node lost")
        return real(*args, rows=rows, **kwargs)

    monkeypatch.setattr(predict_pkg, "predict_raster", flaky)
    with pytest.raises(JobsFailed):
        predict_slices(image, tmp_path / "bands.tif", slice_rows=256, retries=0, progress=False, **kw)
    monkeypatch.setattr(predict_pkg, "predict_raster", real)
    assert list(tmp_path.glob(".bands.tif.parts-*"))
    predict_raster(image, tmp_path / "bands.tif", **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bands.tif", "bands.tif.aux.xml"]
    assert _sha(tmp_path / "bands.tif") == _sha(single)


def test_cli_one_scene_in_row_slices(tall_scene, tmp_path) -> None:
    image, kw, single, _ = tall_scene
    common = ["--model", kw["model"], "--dsm", str(kw["dsm"]), "--window", "96", "--overlap", "32"]
    assert main(["predict", str(image), "-o", str(tmp_path / "a.tif"), "--slice-rows", "300", *common]) == 0
    assert main(["predict", str(image), "-o", str(tmp_path / "b.tif"), *common]) == 0
    assert _sha(tmp_path / "a.tif") == _sha(tmp_path / "b.tif")
    assert main(["predict", str(image), "-o", str(tmp_path / "c.tif"), "--slice-rows", "300", "--resume", *common]) == 2


def test_row_slices_report_every_bad_option_before_any_work(tall_scene, tmp_path) -> None:
    image, kw, _, _ = tall_scene
    with pytest.raises(InputError) as err:
        predict_slices(image, tmp_path / "x.tif", confidence=tmp_path / "x.tif", slice_rows=256, progress=False,
                      **{**kw, "blend": "bogus", "batch_size": 0})
    text = str(err.value)
    assert "--blend 'bogus'" in text and "--batch-size" in text and "different files" in text
    assert list(tmp_path.iterdir()) == []


def test_row_slices_without_a_dsm_run_the_image_only_default(tmp_path) -> None:
    """No --model and no DSM: every slice runs the shipped image-only model (with its window and TTA),
    as a single-process run does, not the image+DSM model (which would refuse the DSM-less slices)."""
    paths = write_scene(tmp_path / "s", size=320, seed=8, gsd=0.25)
    single = predict_raster(paths["ortho_t1"], tmp_path / "single.tif")
    assert "image-only" in single.model and single.tta_views == 8
    sliced = predict_slices(paths["ortho_t1"], tmp_path / "sliced.tif", slice_rows=256, progress=False)
    assert sorted(r.status for r in sliced.results) == ["done"] * 2
    assert _sha(tmp_path / "sliced.tif") == _sha(tmp_path / "single.tif")


def test_the_models_own_window_named_or_omitted_is_the_same_setting(scenes, tmp_path) -> None:
    """A batch folder compares settings as the runs resolve them: an omitted --window is the model's own,
    and giving that same window later is no other setting (it was refused as one)."""
    root, images, ckpt = scenes
    common = {"model": str(ckpt), "dsm_template": "{dir}/{stem}_dsm.tif", "progress": False}
    from rsmamba.engine.model import load_model

    own = load_model(str(ckpt), image_count=3, has_dsm=True).window or (512, 128)
    first = predict_many([str(p) for p in images[:2]], tmp_path / "out", **common)
    assert [r.status for r in first] == ["done"] * 2
    again = predict_many([str(p) for p in images[:2]], tmp_path / "out", window=own[0], overlap=own[1], **common)
    assert [r.status for r in again] == ["skipped"] * 2


def test_the_next_batch_run_removes_what_a_killed_scene_left(scenes, tmp_path) -> None:
    """docs/scale-out.md: a scene killed mid-run leaves its lock, partial copies and resume state (it said only
    a .partial file); the next run to that output removes them all."""
    root, images, ckpt = scenes
    out = tmp_path / "out"
    out.mkdir()
    left = [f".scene0.tif.{rest}" for rest in ("lock", "partial-999999-0badcafe.tif", "predict-resume.json",
                                                  "predict-scratch.tif")]
    for name in left:
        (out / name).write_text("left by a killed run")
    results = predict_many([str(images[0])], out, model=str(ckpt), dsm_template="{dir}/{stem}_dsm.tif", window=64,
                           overlap=16, progress=False)
    assert [r.status for r in results] == ["done"]
    assert sorted(p.name for p in out.iterdir()) == [".rsmamba-batch.guard", ".rsmamba-batch.json",
                                                     ".rsmamba-batch.runs", "scene0.tif",
                                                     "scene0.tif.aux.xml"]  # the folder's own


def test_a_batch_rerun_takes_up_its_interrupted_scene_where_it_stopped(tmp_path, monkeypatch, caplog) -> None:
    """A batch keeps an interrupted scene's resume state, but refuses --resume; its re-run ('run the same command
    again') computed that scene from row 0 again (hours of a big scene, QA). It takes it up now, after the checks
    of --resume, and the map equals an uninterrupted run's byte for byte."""
    import json
    from pathlib import Path

    import rsmamba.predict.api as api
    from rsmamba.atomic import resume_sidecar_path
    from rsmamba.raster.windows import WindowGrid
    from tests.helpers.predict_models import TinyConv, register_test_models
    from tests.helpers.rasters import random_image, write_raster

    register_test_models()
    net = TinyConv(in_chans=3, num_classes=4)
    ckpt = save_checkpoint(tmp_path / "m.pt", {
        "model": "test_tinyconv", "model_kwargs": {"in_chans": 3, "num_classes": 4}, "state_dict": net.state_dict(),
        "bands": {"image": [1, 2, 3], "dsm": False},
        "normalization": {"image": {"mean": [100.0] * 3, "std": [50.0] * 3}},
        "classes": [c.to_dict() for c in ISPRS_CLASSES[:4]]})
    images = [str(write_raster(tmp_path / f"{n}.tif", random_image(600, 90, seed=i))) for i, n in enumerate("ab")]
    common = dict(model=str(ckpt), window=64, overlap=16, batch_size=1, progress=False)
    predict_many(images, tmp_path / "ref", **common)

    windows: list[int] = []  # each batch's count of windows the model sees
    forward = TinyConv.forward
    monkeypatch.setattr(TinyConv, "forward", lambda self, x: windows.append(x.shape[0]) or forward(self, x))

    def stop(name, output=None):  # a Ctrl-C in scene b, once its first tile row is durable
        if name == "predict-rows-durable" and Path(output).name == "b.tif":
            raise KeyboardInterrupt

    out = tmp_path / "out"
    monkeypatch.setattr(api, "fault_point", stop)
    with pytest.raises(KeyboardInterrupt):
        predict_many(images, out, **common)
    monkeypatch.undo()
    state = json.loads(resume_sidecar_path(out / "b.tif").read_text())
    assert state["rows_done"] == 256 and not (out / "b.tif").exists()

    windows.clear()
    monkeypatch.setattr(TinyConv, "forward", lambda self, x: windows.append(x.shape[0]) or forward(self, x))
    import rsmamba.engine.resume as resume

    threads = resume.torch_threads()
    monkeypatch.setattr(resume, "torch_threads", lambda: threads + 3)  # as if another thread count took it up
    with caplog.at_level("WARNING", logger="rsmamba"):
        results = predict_many(images, out, **common)
    assert [r.status for r in results] == ["skipped", "done"]
    assert [r.taken_up for r in results] == [False, True]  # the summary line says it (it was said at INFO only, QA)
    from rsmamba.cli import _not_done

    assert _not_done(results) == "1 of them taken up where an interrupted run stopped, 1 already complete"
    # said as what it is (the batch was given no --resume; it began '--resume:', QA)
    assert f"b.tif: taking up the interrupted run: this run has {threads + 3} torch threads" in caplog.text
    grid = WindowGrid(90, 600, 64, 16)  # the windows holding a row from 256 on: those not yet done
    assert sum(windows) == sum(y + 64 > 256 for y in grid.row_offsets) * len(grid.col_offsets)
    assert _digests(out) == _digests(tmp_path / "ref")
    assert not resume_sidecar_path(out / "b.tif").exists()
