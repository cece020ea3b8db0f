"""The shipped demo model: building IoU >= 0.8 on a fresh synthetic scene it has never seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.rasters import ROOT

DEMO = ROOT / "rsmamba" / "data" / "demo_model.pt"


@pytest.mark.slow
@pytest.mark.skipif(not DEMO.exists(), reason="demo model not built yet (python examples/make_demo_model.py)")
def test_demo_model_finds_buildings_on_unseen_scene(tmp_path: Path) -> None:
    from rsmamba.evaluate import evaluate_rasters
    from rsmamba.synth import write_scene
    from rsmamba.predict import predict_raster

    # 512 px = 128 m: enough buildings for a stable IoU (a 256 px scene holds one or two)
    scene = write_scene(tmp_path / "fresh", size=512, seed=4242, gsd=0.25)
    pred = predict_raster(scene["ortho_t1"], tmp_path / "pred.tif", dsm=scene["dsm_t1"], model=DEMO, window=128, overlap=32).outputs["classes"]
    metrics = evaluate_rasters(pred, scene["labels_t1"], tmp_path / "m.json")
    assert metrics["per_class"]["building"]["iou"] >= 0.8


def test_demo_config_is_valid() -> None:
    from rsmamba.train import load_config

    cfg = load_config(ROOT / "examples" / "train_demo.yaml", ["data.root=somewhere"])
    assert cfg["data"]["root"] == "somewhere" and cfg["train"]["epochs"] >= 1


def test_training_mosaic_for_the_change_model_keeps_both_epochs_and_the_change(tmp_path: Path) -> None:
    """The change recipe's mosaic: each scene's t2 ortho, t2 labels and change raster sit beside its t1."""
    import sys

    import numpy as np
    import rasterio

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from make_demo_models import SCENE_SEED0, TRAIN_GSD, training_mosaic
    finally:
        sys.path.remove(str(ROOT / "examples"))
    from rsmamba.synth import generate_scene
    from rsmamba.synth.style import training_style

    paths = training_mosaic(tmp_path, scenes=2, size=128, with_dsm=False, with_t2=True, change_rate=0.5)
    assert {"ortho", "labels", "ortho_t2", "labels_t2", "change"} <= set(paths) and "dsm" not in paths
    gsd = float(np.round(np.random.default_rng(SCENE_SEED0).uniform(*TRAIN_GSD), 3))
    second = generate_scene(128, seed=SCENE_SEED0, gsd=gsd, style=training_style(SCENE_SEED0, gsd), change_rate=0.5)
    with rasterio.open(paths["ortho_t2"]) as o2, rasterio.open(paths["change"]) as ch, \
            rasterio.open(paths["labels_t2"]) as l2:
        assert o2.shape == ch.shape == l2.shape == (128, 256)
        np.testing.assert_array_equal(o2.read()[:, :, :128], second.t2.ortho)
        np.testing.assert_array_equal(ch.read(1)[:, :128], second.change)
        np.testing.assert_array_equal(l2.read(1)[:, :128], second.t2.labels)


def test_default_style_scenes_follow_the_styled_ones_in_the_mosaic(tmp_path: Path) -> None:
    """``--default-scenes``: pairs in the generator's default style (as the example scene) after the styled ones."""
    import json
    import sys

    import numpy as np
    import rasterio

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from make_demo_models import SCENE_SEED0, training_mosaic
    finally:
        sys.path.remove(str(ROOT / "examples"))
    from rsmamba.synth import generate_scene

    paths = training_mosaic(tmp_path, scenes=1, size=160, with_dsm=False, with_t2=True, change_rate=0.5,
                            default_scenes=1)
    styles = json.loads((tmp_path / "styles.json").read_text())
    assert [s["family"] for s in styles][1:] == ["default"] and styles[1]["seed"] == SCENE_SEED0 + 1
    plain = generate_scene(160, seed=SCENE_SEED0 + 1, gsd=0.25, change_rate=0.5)
    with rasterio.open(paths["ortho"]) as o, rasterio.open(paths["change"]) as ch:
        assert o.shape == (160, 320)
        np.testing.assert_array_equal(o.read()[:, :, 160:], plain.t1.ortho)
        np.testing.assert_array_equal(ch.read(1)[:, 160:], plain.change)


def test_image_dsm_mosaic_carries_building_ids_unique_across_scenes_and_terraced_shares(tmp_path: Path) -> None:
    """The image+DSM recipe's mosaic: each scene's building ids, offset so that no two scenes share one, and
    its drawn terraced share (from a generator of its own: the GSD draws of the other recipes stay)."""
    import json

    import numpy as np
    import rasterio

    m = _recipe()
    from rsmamba.synth import generate_scene
    from rsmamba.synth.style import training_style

    paths = m.training_mosaic(tmp_path, scenes=2, size=160, with_dsm=True, terraced=(0.5, 0.75), with_instances=True)
    styles = json.loads((tmp_path / "styles.json").read_text())
    plain = m.training_mosaic(tmp_path / "plain", scenes=2, size=160, with_dsm=True)
    assert [s["gsd"] for s in styles] == [s["gsd"] for s in json.loads((tmp_path / "plain" / "styles.json").read_text())]
    assert all(0.5 <= s["terraced"] <= 0.75 for s in styles)
    with rasterio.open(paths["instances"]) as src:
        ids = src.read(1).astype(np.int64)
    first, second = ids[:, :160], ids[:, 160:]
    assert first.max() > 0 and second[second > 0].min() > first.max()  # unique across the mosaic
    s0 = styles[1]
    scene = generate_scene(160, seed=s0["seed"], gsd=s0["gsd"], style=training_style(s0["seed"], s0["gsd"]),
                           terraced=s0["terraced"])
    np.testing.assert_array_equal(second > 0, scene.t1.instances > 0)
    np.testing.assert_array_equal(np.where(second > 0, second - first.max(), 0), scene.t1.instances)
    assert "instances" not in plain


def _recipe():
    import sys

    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import make_demo_models
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return make_demo_models


def test_change_threshold_is_chosen_on_pooled_counts_of_training_styles_only() -> None:
    """Calibration scenes never come from the held-out family nor reuse a training or card seed."""
    from rsmamba.synth.style import HELD_OUT_FAMILIES

    m = _recipe()
    rows = m.calibration_rows()
    assert not {f for f, _, _ in rows} & {f.value for f in HELD_OUT_FAMILIES}
    seeds = [s for _, _, s in rows]
    assert len(set(seeds)) == len(seeds) and min(seeds) > m.EVAL_SEED0 + 3000  # cards: EVAL_SEED0 + i (+ 1000 k)
    # pooled, not averaged: 0.5 wins one small scene, 0.3 the two together (F1s averaged would pick 0.5)
    scenes = [{(0.5, 30.0): {"tp": 2, "predicted": 2, "reference": 3}, (0.3, 30.0): {"tp": 1, "predicted": 2, "reference": 3}},
              {(0.5, 30.0): {"tp": 10, "predicted": 30, "reference": 20}, (0.3, 30.0): {"tp": 14, "predicted": 30, "reference": 20}}]
    best, table = m.choose_threshold(scenes)
    assert best == (0.3, 30.0) and table[best]["tp"] == 15 and table[best]["f1"] == round(30 / 55, 4)
    one = {"tp": 1, "predicted": 1, "reference": 1}
    tie = [{(0.5, 48.0): one, (0.3, 30.0): one, (0.5, 30.0): one}]
    assert m.choose_threshold(tie)[0] == (0.5, 30.0)  # ties: the uncalibrated argmax, then the smallest area
    # a larger minimum area that drops speckle (fewer predicted, same hits) wins on F1
    speckle = [{(0.5, 30.0): {"tp": 8, "predicted": 14, "reference": 10},
                (0.5, 48.0): {"tp": 8, "predicted": 9, "reference": 10}}]
    assert m.choose_threshold(speckle)[0] == (0.5, 48.0)


@pytest.mark.skipif(not (ROOT / "rsmamba" / "data" / "demo_change_model.pt").exists(), reason="demo change model not built")
def test_calibrate_writes_a_new_checkpoint_that_carries_the_threshold(tmp_path: Path, monkeypatch, caplog) -> None:
    """A checkpoint of the recipe's training records the mosaic's one grid (0.25 m): calibrated with the training
    range (``train_gsd``), its 0.5 m pairs are measured as the shipped model runs them, without a GSD warning."""
    from rsmamba.checkpoint import load_checkpoint, save_checkpoint
    from rsmamba.engine.model import load_model

    m = _recipe()
    monkeypatch.setattr(m, "calibration_rows", lambda: [("suburban", 0.5, 95_000), ("default", 0.25, 95_008)])
    shipped = load_checkpoint(ROOT / "rsmamba" / "data" / "demo_change_model.pt")
    shipped["gsd_m"] = [0.25, 0.25]  # as run/best.pt records it
    src = tmp_path / "best.pt"
    save_checkpoint(src, shipped)
    before = src.read_bytes()
    with caplog.at_level("WARNING", logger="rsmamba"):
        calibration = m.calibrate_change(src, tmp_path / "out.pt", size=256, work=tmp_path / "work",
                                         train_gsd=(0.2, 0.6))
    assert "outside the" not in caplog.text
    assert load_checkpoint(tmp_path / "out.pt")["gsd_m"] == [0.2, 0.6]
    assert src.read_bytes() == before
    assert calibration["change_threshold"] in m.CALIBRATION_THRESHOLDS
    assert calibration["min_area_m2"] in m.CALIBRATION_MIN_AREAS
    assert set(calibration["pooled"]) == {f"{t:g}" for t in m.CALIBRATION_THRESHOLDS}
    assert all(set(row) == {f"{a:g}" for a in m.CALIBRATION_MIN_AREAS} for row in calibration["pooled"].values())
    assert load_checkpoint(tmp_path / "out.pt")["calibration"] == calibration
    loaded = load_model(tmp_path / "out.pt", image_count=3, verb="change")
    assert loaded.extra["change_threshold"] == calibration["change_threshold"]
    assert loaded.extra["change_min_area_m2"] == calibration["min_area_m2"]
    with pytest.raises(SystemExit):
        m.calibrate_change(tmp_path / "out.pt", tmp_path / "out.pt", size=256, work=tmp_path / "work")


@pytest.mark.parametrize(("kind", "result"), [("image", "image-stages.json"), ("change", "change-stages.json"),
                                              ("dsm", "dsm-recipe.json")])
def test_the_30_minute_recipes_are_the_defaults_that_were_measured(kind: str, result: str) -> None:
    """make_demo_models.py KIND without options runs the one-stage recipe whose numbers the cards quote."""
    import json
    import shlex

    recipe = _recipe()
    measured = json.loads((ROOT / "bench" / "results" / result).read_text())["one_stage_30_minutes"]
    words = shlex.split(measured["command"])
    assert words[:3] == ["python", "examples/make_demo_models.py", kind]
    given: dict[str, object] = {}
    rest = words[3:]
    while rest:  # --key value, or a flag (--ground-textures / --no-ground-textures)
        key = rest.pop(0)[2:].replace("-", "_")
        if rest and not rest[0].startswith("--"):
            given[key] = rest.pop(0)
        else:
            given[key.removeprefix("no_")] = not key.startswith("no_")
    defaults = {**recipe.GENERIC, **recipe.RECIPES[kind]}
    assert set(given) <= set(defaults)
    for key, value in defaults.items():
        if key == "init":  # a checkpoint under the repository, "town", or None (random weights)
            expected = str(Path(value).relative_to(ROOT)) if value and Path(value).is_absolute() else value
            assert given.get("init", expected) == expected
        elif isinstance(value, bool):
            assert given.get(key, False) is value, key  # a flag the measured run did not give was off
        else:
            assert type(value)(given.get(key, value)) == value, key


@pytest.mark.parametrize("options, said", [
    (["--scenes", "0"], "--scenes 0 --default-scenes 0: at least one training scene"),
    (["--scenes", "1", "--size", "32", "--chip", "64"], "--chip 64 is larger than a training scene (--size 32)"),
    (["--scenes", "1", "--size", "64", "--chip", "64"], "the scene must be at least 32 m wide"),  # rsmamba's own error
    (["--out", "AFILE"], "a file stands there; --out is the folder"),  # was a traceback after the whole training
    # the card's scenes (0.25 m) are drawn after training: refused by write_scene then, the run lost (QA)
    (["--scenes", "1", "--size", "160", "--chip", "64", "--eval-size", "64"], "--eval-size 64: its scenes at 0.25 m cannot be drawn: the scene must be at least 32 m"),
])
def test_options_that_make_no_model_are_one_line_exit_2(tmp_path: Path, capsys, options, said) -> None:
    """Too few scenes or chips ended in a traceback (rasterio's 0-width mosaic, rsmamba's InputError), exit 1 (QA)."""
    m = _recipe()
    (tmp_path / "AFILE").write_text("x")
    options = [str(tmp_path / o) if o == "AFILE" else o for o in options]
    with pytest.raises(SystemExit) as exit_:
        m.main(["image", "--epochs", "1", "--init", "none", "--work", str(tmp_path / "work"),
                "--out", str(tmp_path / "out"), *options])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("make_demo_models.py: error: "), err
    assert said in err[0]
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "work" / "run").exists()  # refused before training
