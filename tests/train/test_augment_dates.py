"""Mamba-FCS's per-date photometric jitter (augment.date_jitter) as its authors' loader does it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsmamba.augment import Augment
from rsmamba.train.config import load_config

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _pil(raw: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """The authors' random_photometric_imgs with these factors, as PIL's ImageEnhance computes it on uint8:
    each step blends with its degenerate image (black; the mean of the grey image, rounded; the grey
    image) and rounds to whole levels in 0..255. Grey is ITU-R 601-2 luma, rounded (``convert("L")``)."""
    def grey(x: np.ndarray) -> np.ndarray:
        return np.floor((x[0] * 299 + x[1] * 587 + x[2] * 114) / 1000 + 0.5)

    def blend(degenerate: np.ndarray, x: np.ndarray, f: float) -> np.ndarray:
        return np.clip(np.floor(degenerate + f * (x - degenerate) + 0.5), 0, 255)

    x = blend(np.zeros_like(raw), raw, brightness)
    x = blend(np.full_like(x, np.floor(grey(x).mean() + 0.5)), x, contrast)
    return blend(np.broadcast_to(grey(x), x.shape), x, saturation)


def test_each_date_gets_its_own_draw_of_the_authors_jitter() -> None:
    rng = np.random.default_rng(3)
    raw1 = rng.integers(0, 256, (3, 32, 32)).astype(np.float32)
    raw2 = rng.integers(0, 256, (3, 32, 32)).astype(np.float32)
    norm = lambda r: torch.from_numpy((r - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]).float()  # noqa: E731
    aug = Augment(flips=False, rot90=False, date_jitter=True, image_norm=(MEAN, STD))
    aug.reseed(11)
    replay = torch.Generator().set_state(aug.generator.get_state())  # the same draws, in the same order
    mask = torch.zeros(32, 32, dtype=torch.long)
    out = aug({"image": norm(raw1), "image2": norm(raw2), "mask": mask.clone(), "change": mask.clone()})
    factors = []
    for _ in range(2):  # image, then image2: brightness, contrast, saturation each
        f = [1 + s * float(torch.randn((), generator=replay)) for s in (0.1, 0.1, 0.05)]
        factors.append([min(max(f[0], 0.8), 1.2), min(max(f[1], 0.9), 1.1), min(max(f[2], 0.9), 1.1)])
    assert factors[0] != factors[1]  # a change of light between the dates
    for key, raw, f in (("image", raw1, factors[0]), ("image2", raw2, factors[1])):
        got = out[key].numpy() * np.array(STD)[:, None, None] + np.array(MEAN)[:, None, None]
        # PIL rounds to whole grey levels after each of its three steps: within 2 levels, mostly equal
        diff = np.abs(got - _pil(raw, *f))
        assert diff.max() <= 2.0 and diff.mean() < 0.7, (key, diff.max(), diff.mean())
    assert torch.equal(out["mask"], mask)  # labels untouched


def test_the_second_recipe_jitters_each_date_and_normalises_with_imagenet_statistics() -> None:
    second = load_config("mambafcs_second", ["data.root=x"])
    assert second["augment"]["date_jitter"] is True
    assert second["data"]["mean"] == MEAN and second["data"]["std"] == STD
    landsat = load_config("mambafcs_landsat_scd", ["data.root=x"])
    assert landsat["augment"]["date_jitter"] is False and landsat["data"]["mean"] == MEAN  # authors: commented out
    assert load_config(None, ["data.root=x"])["augment"]["date_jitter"] is False
    with pytest.raises(ValueError, match="image_norm"):
        Augment(date_jitter=True)


def test_date_jitter_on_chips_that_are_not_8_bit_is_refused(tmp_path) -> None:
    """Its 0..255 clamp saturated 12-bit chips to a mean of 254, and the run trained on that, unsaid."""
    from rsmamba.errors import InputError
    from rsmamba.tile import tile_scene
    from rsmamba.train import train
    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "u16.tif", random_image(64, 64).astype(np.uint16) * 16)
    labels = write_raster(tmp_path / "labels.tif", (random_image(64, 64)[0] > 128).astype(np.uint8))
    tile_scene(image, tmp_path / "chips", labels=labels, size=32, split=(0.5, 0.5, 0.0), block=32)
    cfg = {"data": {"root": str(tmp_path / "chips"), "batch_size": 1}, "out": str(tmp_path / "run"),
           "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}, "train": {"epochs": 1},
           "augment": {"date_jitter": True}, "tensorboard": False}
    with pytest.raises(InputError, match="the chips are uint16"):
        train(cfg, progress=False)
