"""A model's own test-time augmentation: a checkpoint's ``inference`` TTA is what predict and change run
it with when the user names none (the shipped image-only model: D4); ``--no-tta`` runs one pass."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from rsmamba.checkpoint import load_checkpoint
from rsmamba.cli import main
from rsmamba.engine.model import DEMO_IMAGE_MODEL, LoadedModel, Predictor, inference_tta, load_model
from rsmamba.predict import predict_raster
from tests.helpers.predict_models import scene_and_checkpoints
from tests.helpers.rasters import ROOT
from tests.helpers.scripts import load_script


def test_given_beats_the_model_and_the_model_beats_plain() -> None:
    plain = LoadedModel(torch.nn.Identity())
    own = LoadedModel(torch.nn.Identity(), tta="flip")
    assert inference_tta(plain, None) == (False, "default")
    assert inference_tta(own, None) == ("flip", "the model's")
    assert inference_tta(own, False) == (False, "given")  # --no-tta
    assert inference_tta(own, True) == (True, "given")
    assert Predictor(own).tta.passes == 4 and Predictor(own).tta_source == "the model's"
    assert Predictor(own, tta=False).tta.passes == 1
    assert Predictor(plain).tta.passes == 1


@pytest.fixture(scope="module")
def scene_and_models(tmp_path_factory):
    """A 192 px scene, and one tiny network saved twice: plain, and naming flip TTA as its own."""
    return scene_and_checkpoints(tmp_path_factory.mktemp("tta"), size=192, seed=4,
                                 inference={"window": 64, "overlap": 16, "tta": "flip"})


def _probabilities(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def test_predict_runs_a_model_with_its_own_tta(scene_and_models, tmp_path) -> None:
    paths, plain, own = scene_and_models
    image = paths["ortho_t1"]
    mine = predict_raster(image, tmp_path / "own.tif", model=own, probabilities=tmp_path / "own_p.tif")
    assert mine.tta_views == 4 and mine.tta_source == "the model's"
    assert "4 passes per window (the model's; --no-tta for one)" in mine.describe()
    explicit = predict_raster(image, tmp_path / "explicit.tif", model=plain, window=64, overlap=16, tta="flip",
                              probabilities=tmp_path / "explicit_p.tif")
    assert "the model's" not in explicit.describe()
    # the same plan through the same code: the same bytes
    assert np.array_equal(_probabilities(tmp_path / "own_p.tif"), _probabilities(tmp_path / "explicit_p.tif"))
    one = predict_raster(image, tmp_path / "one.tif", model=own, tta=False, probabilities=tmp_path / "one_p.tif")
    unaugmented = predict_raster(image, tmp_path / "unaugmented.tif", model=plain, window=64, overlap=16,
                                 probabilities=tmp_path / "unaugmented_p.tif")
    assert one.tta_views == 1 and unaugmented.tta_views == 1
    assert np.array_equal(_probabilities(tmp_path / "one_p.tif"), _probabilities(tmp_path / "unaugmented_p.tif"))
    assert not np.array_equal(_probabilities(tmp_path / "one_p.tif"), _probabilities(tmp_path / "own_p.tif"))


def test_the_cli_no_tta_runs_one_pass_and_refuses_other_tta_options(scene_and_models, tmp_path, capsys) -> None:
    paths, _, own = scene_and_models
    image = str(paths["ortho_t1"])
    assert main(["predict", image, "-o", str(tmp_path / "own.tif"), "--model", str(own)]) == 0
    assert "4 passes per window (the model's" in capsys.readouterr().out
    assert main(["predict", image, "-o", str(tmp_path / "one.tif"), "--model", str(own), "--no-tta"]) == 0
    assert "passes per window" not in capsys.readouterr().out
    assert main(["predict", image, "-o", str(tmp_path / "d4.tif"), "--model", str(own), "--tta"]) == 0
    out = capsys.readouterr().out
    assert "8 passes per window" in out and "the model's;" not in out
    code = main(["predict", image, "-o", str(tmp_path / "both.tif"), "--model", str(own), "--no-tta", "--tta-flip"])
    err = capsys.readouterr().err
    assert code == 2 and "--no-tta" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "both.tif").exists()


def test_the_shipped_models_carry_the_recipe_tta() -> None:
    """D4 for the image-only model (examples/make_demo_models.py TTAS), chosen on its selection rows; none else."""
    recipe = load_script("examples/make_demo_models.py", "make_demo_models")
    for kind, name in recipe.NAMES.items():
        ckpt = load_checkpoint(ROOT / "rsmamba" / "data" / f"{name}.pt")
        assert ckpt["inference"].get("tta") == recipe.TTAS.get(kind), kind
    assert load_model(DEMO_IMAGE_MODEL, image_count=3).tta == "d4"
