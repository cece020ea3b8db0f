"""Multi-scale + flip test-time augmentation in predict (sliding windows) and in evaluation.

No augmentation is plain predict itself (same code path, identical bytes); a flip-equivariant
network is unchanged by flip TTA; scales respect ``input_multiple`` and are refused for a network
of one fixed input size; a recipe whose paper evaluates with multi-scale + flip (MAFMamba) turns
it on in the training evaluation and, with ``--tta-recipe``, in predict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml

from rsmamba.classes import ClassInfo
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from rsmamba.engine.model import LoadedModel
from rsmamba.engine.tta import TTAPlan, parse_tta, tta_average
from tests.helpers.predict_models import TinyConv
from tests.helpers.rasters import random_image, write_raster


def _classes(n: int) -> tuple[ClassInfo, ...]:
    return tuple(ClassInfo(i, f"c{i}", (i * 40, 0, 0)) for i in range(n))


def _run(tmp: Path, img: Path, model, name: str, **kw) -> tuple[np.ndarray, np.ndarray]:
    predict_raster(img, tmp / f"{name}.tif", model=model, window=32, overlap=8, probabilities=tmp / f"{name}_p.tif", **kw)
    with rasterio.open(tmp / f"{name}.tif") as a, rasterio.open(tmp / f"{name}_p.tif") as b:
        return a.read(1), b.read().astype(int)


class Pointwise(torch.nn.Module):
    """A 1x1 convolution: commutes with every mirror of the window."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 4.0


def test_identity_plan_is_plain_predict_and_flip_keeps_an_equivariant_model(tmp_path: Path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(40, 56))
    conv = LoadedModel(TinyConv(num_classes=4).eval(), classes=_classes(4))
    assert parse_tta("scales=1") == parse_tta(False) == TTAPlan()
    plain = _run(tmp_path, img, conv, "plain")
    same = _run(tmp_path, img, conv, "same", tta="scales=1")
    assert np.array_equal(plain[0], same[0]) and np.array_equal(plain[1], same[1])  # byte for byte

    point = LoadedModel(Pointwise().eval(), classes=_classes(4))
    p0, f0 = _run(tmp_path, img, point, "p0"), _run(tmp_path, img, point, "pf", tta="flip")
    assert np.array_equal(p0[0], f0[0]) and np.abs(p0[1] - f0[1]).max() <= 1  # uint8 probability rounding
    flipped = _run(tmp_path, img, conv, "cf", tta="flip")  # a 3x3 network is not mirror-symmetric
    assert np.abs(flipped[1] - plain[1]).max() > 3


def test_tta_average_undoes_each_view_and_averages() -> None:
    class Ramp(torch.nn.Module):  # logits: x and -x (position-dependent, not flip-invariant)
        def forward(self, x):
            return torch.cat([x, -x], 1)

    x = torch.linspace(-2, 2, 64).reshape(1, 1, 8, 8)
    net = lambda t: Ramp()(t).softmax(1)  # noqa: E731
    plain = net(x)
    for plan in (TTAPlan(flip=True), TTAPlan(d4=True)):
        assert torch.allclose(tta_average(net, x, plan), plain, atol=1e-6)  # every view mapped back
    ms = tta_average(net, x, TTAPlan(scales=(0.5, 1.0)))
    half = torch.nn.functional.interpolate(net(torch.nn.functional.interpolate(x, size=(4, 4), mode="bilinear")),
                                           size=(8, 8), mode="bilinear")
    assert torch.allclose(ms, (plain + half) / 2, atol=1e-6)
    assert TTAPlan(flip=True, scales=(0.75, 1.0, 1.25)).passes == 12 and TTAPlan(d4=True).spec() is True


def test_flip_tta_sees_every_view_of_geosegs_horizontal_times_vertical_flips() -> None:
    """The papers' flip evaluation (GeoSeg, ttach: HorizontalFlip x VerticalFlip) is 4 views; 3 left out both."""
    x = torch.arange(12.0).reshape(1, 1, 3, 4)  # no symmetry: each view is another array
    seen = []
    tta_average(lambda t: (seen.append(t.clone()), t)[1], x, TTAPlan(flip=True))
    want = [x, x.flip(-1), x.flip(-2), x.flip(-1, -2)]
    assert len(seen) == 4 and all(any(torch.equal(s, w) for s in seen) for w in want)


def test_scales_respect_input_multiple_and_fixed_sizes_are_refused(tmp_path: Path) -> None:
    img = write_raster(tmp_path / "img.tif", random_image(40, 56))
    net = TinyConv(num_classes=4).eval()
    multiple = LoadedModel(net, classes=_classes(4), input_multiple=32)
    plain = _run(tmp_path, img, multiple, "m")
    ms = _run(tmp_path, img, multiple, "ms", tta="flip+scales=0.75,1.25")  # 24 and 40 px views, padded to 32/64
    assert ms[0].shape == plain[0].shape and np.abs(ms[1] - plain[1]).max() > 3
    net.fixed_input_size = (32, 32)
    fixed = LoadedModel(net, classes=_classes(4), input_multiple=32, source="fixed.pt")
    with pytest.raises(InputError, match=r"fixed input size 32 x 32 px: multi-scale TTA \(scale 0.75\) is impossible"):
        _run(tmp_path, img, fixed, "bad", tta="scales=0.75,1")
    assert not (tmp_path / "bad.tif").exists()
    _run(tmp_path, img, fixed, "ok", tta="flip")  # mirrors keep the size
    with pytest.raises(InputError, match="unknown part 'rot'"):
        parse_tta("rot")


def test_recipe_with_tta_turns_it_on_in_evaluation_and_predict(tmp_path: Path, monkeypatch, capsys) -> None:
    import rsmamba.train.trainer as trainer
    from rsmamba.cli import main
    from rsmamba.train.config import load_config
    from tests.helpers.scenes import write_chips

    recipe = load_config("mafmamba_vaihingen")["eval"]  # the paper: flip + multi-scale evaluation
    assert recipe["flip"] and len(recipe["scales"]) > 1
    calls = []
    real = trainer.tta_probabilities

    def spy(model, image, inputs, scales=(1.0,), flip=False):
        calls.append((tuple(scales), flip))
        return real(model, image, inputs, scales, flip)

    monkeypatch.setattr(trainer, "tta_probabilities", spy)
    chips = write_chips(tmp_path, size=64, chip=32, split=(0.75, 0.25, 0.0))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"root": str(chips), "batch_size": 2}, "out": str(tmp_path / "run"),
                                   "model": {"kwargs": {"width": 4}}, "train": {"epochs": 1}, "eval": recipe,
                                   "tensorboard": False}))
    assert main(["train", "--config", str(cfg)]) == 0
    assert calls and set(calls) == {(tuple(recipe["scales"]), True)}  # validation ran the recipe's TTA

    image = tmp_path / "scene" / "image.tif"
    ckpt = tmp_path / "run" / "last.pt"
    out = {}
    scales = ",".join(f"{s:g}" for s in recipe["scales"])
    for name, flags in (("plain", []), ("recipe", ["--tta-recipe"]), ("flags", ["--tta-flip", "--tta-scales", scales])):
        args = ["predict", str(image), "--model", str(ckpt), "-o", str(tmp_path / f"{name}.tif"), "--window", "32",
                "--overlap", "8", "--probabilities", str(tmp_path / f"{name}_p.tif"), *flags]
        assert main(args) == 0
        with rasterio.open(tmp_path / f"{name}_p.tif") as ds:
            out[name] = ds.read()
    assert np.array_equal(out["recipe"], out["flags"]) and not np.array_equal(out["recipe"], out["plain"])
    capsys.readouterr()  # the training's epoch lines
    assert main(["predict", str(image), "--model", str(ckpt), "-o", str(tmp_path / "x.tif"), "--tta-scales", "0,1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tta-scales" in err[0]


def test_rot180_cancels_a_networks_constant_offset() -> None:
    """The shipped image+DSM model's maps sit half a pixel south-east without TTA (stride-2 stems upsampled
    with align_corners=False; median building offset +0.5 px on three scenes): the identity and the half
    turn, averaged, put a constant shift d and -d together, at two passes instead of D4's eight."""
    plan = parse_tta("rot180")
    assert plan.passes == 2 and plan.spec() == "rot180" and parse_tta(plan.spec()) == plan

    def shifted(x: torch.Tensor) -> torch.Tensor:  # a 'network' whose answer lies one pixel east and south
        return torch.roll(x, shifts=(1, 1), dims=(2, 3))

    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0  # a one-pixel object in the middle
    out = tta_average(shifted, x, plan)[0, 0]
    assert out[5, 5] == out[3, 3] == 0.5 and out[4, 4] == 0 and float(out.sum()) == 1.0  # centred on (4, 4)
    ys, xs = torch.nonzero(out, as_tuple=True)
    assert (float((ys.float() * out[ys, xs]).sum()), float((xs.float() * out[ys, xs]).sum())) == (4.0, 4.0)
    assert torch.equal(tta_average(lambda t: t, x, plan), x)  # a network without offset is unchanged


def test_a_recipe_without_augmentation_says_it_runs_one_pass(caplog) -> None:
    """--tta-recipe on a checkpoint trained with a plain evaluation: one pass, and the user is told."""
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert parse_tta("recipe", {"eval": {"flip": False}}, "run/best.pt").passes == 1
    assert "run/best.pt was evaluated without flips or scales" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert parse_tta("recipe", {"eval": {"flip": True}}, "run/best.pt").passes == 4
    assert not caplog.text


def test_a_recipe_without_augmentation_beside_other_tta_says_the_passes_it_runs(caplog) -> None:
    """--tta-recipe --tta-rot180 on a plainly evaluated checkpoint warned 'one pass per window' and ran 2."""
    with caplog.at_level("WARNING", logger="rsmamba"):
        assert parse_tta("recipe+rot180", {"eval": {"flip": False}}, "plain/rot.pt").passes == 2
        assert parse_tta("recipe+scales=1,0.5", {"eval": {"flip": False}}, "plain/scales.pt").passes == 2
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and all("was evaluated without flips or scales (its config's eval); 2 passes per window, "
                                  "from the other TTA options alone" in m for m in said), said
