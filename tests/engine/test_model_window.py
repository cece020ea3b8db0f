"""A model's own window: a checkpoint's ``inference`` window is what predict and change run it at when
no ``--window`` is given (the shipped image+DSM and change models: 128/32, image-only: 512/128)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from rsmamba.checkpoint import load_checkpoint, save_checkpoint
from rsmamba.cli import main
from rsmamba.engine.model import DEFAULT_WINDOW, DEMO_CHANGE_MODEL, LoadedModel, inference_window
from rsmamba.engine.options import overlap_cost
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from rsmamba.predict.slices import predict_slices
from rsmamba.synth import write_scene
from tests.helpers.predict_models import scene_and_checkpoints
from tests.helpers.rasters import ROOT
from tests.helpers.scripts import load_script


def test_given_beats_the_model_and_the_model_beats_the_default() -> None:
    plain = LoadedModel(torch.nn.Identity())
    own = LoadedModel(torch.nn.Identity(), window=(128, 32))
    assert inference_window(plain, None, None) == (DEFAULT_WINDOW, DEFAULT_WINDOW // 4, "default")
    assert inference_window(plain, None, 10) == (DEFAULT_WINDOW, 10, "default")
    assert inference_window(own, None, None) == (128, 32, "the model's")
    assert inference_window(own, None, 8) == (128, 8, "the model's")
    assert inference_window(own, 256, None) == (256, 64, "given")  # a given window: a quarter, not the model's 32
    assert inference_window(own, 256, 0) == (256, 0, "given")


@pytest.fixture(scope="module")
def scene_and_models(tmp_path_factory):
    """A 320 px scene (two row slices of 256), and one tiny network saved twice: without a window of its own and with 64/16."""
    return scene_and_checkpoints(tmp_path_factory.mktemp("window"), size=320, seed=3,
                                 inference={"window": 64, "overlap": 16})


def _classes(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_predict_runs_a_model_at_its_own_window(scene_and_models, tmp_path) -> None:
    paths, plain, own = scene_and_models
    image = paths["ortho_t1"]
    mine = predict_raster(image, tmp_path / "own.tif", model=own)
    assert (mine.window, mine.overlap) == (64, 16)
    assert "windows of 64 px (overlap 16, the model's window)" in mine.describe()
    explicit = predict_raster(image, tmp_path / "explicit.tif", model=plain, window=64, overlap=16)
    assert "the model's window" not in explicit.describe()
    assert np.array_equal(_classes(tmp_path / "own.tif"), _classes(tmp_path / "explicit.tif"))
    default = predict_raster(image, tmp_path / "plain.tif", model=plain)
    assert (default.window, default.overlap) == (DEFAULT_WINDOW, DEFAULT_WINDOW // 4)
    given = predict_raster(image, tmp_path / "given.tif", model=own, window=96)
    assert (given.window, given.overlap) == (96, 24)


def test_row_slices_share_the_model_window(scene_and_models, tmp_path) -> None:
    paths, _, own = scene_and_models
    single = predict_raster(paths["ortho_t1"], tmp_path / "single.tif", model=own)
    sliced = predict_slices(paths["ortho_t1"], tmp_path / "sliced.tif", model=str(own), slice_rows=256,
                            progress=False)
    assert len(sliced.slices) == 2 and single.window == 64
    assert np.array_equal(_classes(tmp_path / "single.tif"), _classes(tmp_path / "sliced.tif"))


def test_an_overlap_that_does_not_fit_the_model_window_is_one_line(scene_and_models, tmp_path, capsys) -> None:
    paths, _, own = scene_and_models
    code = main(["predict", str(paths["ortho_t1"]), "-o", str(tmp_path / "o.tif"), "--model", str(own),
                 "--overlap", "64"])
    err = capsys.readouterr().err
    assert code == 2 and "--overlap 64: must be in [0, --window) (window is 64)" in err and "Traceback" not in err
    assert not (tmp_path / "o.tif").exists()


def test_an_overlap_near_the_window_says_what_it_costs(scene_and_models, tmp_path, caplog) -> None:
    """--window 256 --overlap 255 ran 65536 passes per pixel, said by nothing but a progress bar that hardly moved."""
    assert overlap_cost(512, 128) is None and overlap_cost(512, 384) is None  # the default; 16 passes
    assert "stride of 1 px runs the network about 65,536 times over each pixel (1.8 at the default overlap 64)" \
        in overlap_cost(256, 255)
    paths, _, own = scene_and_models
    with caplog.at_level("WARNING"):
        predict_raster(paths["ortho_t1"], tmp_path / "o.tif", model=own, overlap=52)  # stride 12 of 64
    said = [r.getMessage() for r in caplog.records if "--overlap 52 of a 64 px window" in r.getMessage()]
    assert len(said) == 1 and "about 28 times over each pixel" in said[0] and "16x as long" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        predict_raster(paths["ortho_t1"], tmp_path / "p.tif", model=own)  # the model's own 64/16: nothing said
    assert not [r for r in caplog.records if "stride" in r.getMessage()]


@pytest.mark.parametrize("bad, what", [
    ({"inference": {"window": 64, "overlap": 64}}, "inference window"), ({"inference": {"window": "wide"}}, "inference window"),
    ({"inference": {"window": 0}}, "inference window"),
    ({"inference": {"tta": "d5"}}, "inference tta"), ({"inference": {"tta": "scales=9"}}, "inference tta"),
    ({"inference": {"tta": "recipe"}}, "inference tta"),  # this checkpoint holds no training config for a recipe
    ({"gsd_m": [0.6, 0.2]}, "gsd_m"), ({"gsd_m": "fine"}, "gsd_m"), ({"gsd_m": [0, 1]}, "gsd_m"),
])
def test_a_bad_inference_in_a_checkpoint_is_refused(scene_and_models, tmp_path, bad, what) -> None:
    """A bad window, TTA (tests/engine/test_model_tta.py) or training pixel size is the checkpoint's fault, in one line."""
    paths, plain, _ = scene_and_models
    ckpt = {**load_checkpoint(plain), **bad}
    save_checkpoint(tmp_path / "bad.pt", {k: v for k, v in ckpt.items() if k not in ("format", "created")})
    with pytest.raises(InputError, match=f"checkpoint {what}"):
        predict_raster(paths["ortho_t1"], tmp_path / "o.tif", model=tmp_path / "bad.pt")
    assert not (tmp_path / "o.tif").exists()


def test_the_shipped_models_carry_the_recipe_windows() -> None:
    """The windows their cards are measured at (examples/make_demo_models.py WINDOWS)."""
    recipe = load_script("examples/make_demo_models.py", "make_demo_models")
    for kind, name in recipe.NAMES.items():
        ckpt = load_checkpoint(ROOT / "rsmamba" / "data" / f"{name}.pt")
        assert (ckpt["inference"]["window"], ckpt["inference"]["overlap"]) == recipe.WINDOWS[kind], kind
    assert "window 128, overlap 32" in load_checkpoint(DEMO_CHANGE_MODEL)["calibration"]["chosen_on"]


def test_the_card_recipes_take_scores_with_nothing_to_count() -> None:
    """evaluate's 0/0 scores are None (a scene with no change polygon): the card sweep stopped on round(None)."""
    recipe = load_script("examples/make_demo_models.py", "make_demo_models")
    assert recipe.card_score(None) is None and recipe.card_score(0.123456) == 0.1235
    assert recipe.card_cell(None) == "n/a" and recipe.card_cell(0.5) == "0.500"
    assert load_script("examples/make_demo_model.py", "make_demo_model").card_score(None) == "n/a"


def test_change_runs_the_shipped_model_at_its_own_window(tmp_path) -> None:
    from rsmamba.change import detect_change

    pair = write_scene(tmp_path / "pair", size=256, seed=5, gsd=0.25)
    summary = detect_change(pair["ortho_t1"], pair["ortho_t2"], tmp_path / "c.tif")
    assert summary.windows == 9  # 128 px windows every 96 px over 256 px: 3 x 3 (512/128 would be one)


def test_a_device_this_machine_lacks_is_one_line(monkeypatch) -> None:
    """--device mps on a machine without Metal was a RuntimeError traceback at the first .to()."""
    import rsmamba.engine.options as options
    from rsmamba.engine.model import torch_device
    from rsmamba.errors import ProblemCollector

    monkeypatch.setattr(options, "_mps_available", lambda: False)
    problems = ProblemCollector()
    options.check_run_options(problems, blend="hann", crop=0, overlap=None, batch_size=1, device="mps")
    assert problems and "MPS" in str(problems.problems[0])
    assert torch_device("auto").type in ("cpu", "cuda")  # a remote worker resolves auto on its own machine


def test_a_mixed_precision_run_says_so_in_its_summary(tmp_path) -> None:
    """--amp ran the network in bf16 on the CPU (9338 of 540000 probability values differed from a plain run) while
    the summary said 'model: ... on cpu' as for a full-precision run (QA)."""
    from rsmamba.engine.model import LoadedModel, Predictor, default_classes
    from rsmamba.predict import predict_raster
    from tests.helpers.predict_models import TinyConv
    from tests.helpers.rasters import random_image, write_raster

    net = LoadedModel(TinyConv(num_classes=4).eval(), classes=default_classes(4))
    assert Predictor(net).placement() == "cpu"
    assert Predictor(net, amp=True).placement() == "cpu in mixed precision (bf16)"
    path = write_raster(tmp_path / "img.tif", random_image(40, 50))
    plain = predict_raster(path, tmp_path / "a.tif", model=net, window=32, overlap=8)
    mixed = predict_raster(path, tmp_path / "b.tif", model=net, window=32, overlap=8, amp=True)
    assert plain.model.endswith(" on cpu") and mixed.model.endswith(" on cpu in mixed precision (bf16)")
