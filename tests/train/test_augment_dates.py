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


def test_the_mambafcs_recipes_jitter_and_swap_dates_as_the_authors_loaders_do() -> None:
    """Buddhi19/MambaFCS@22f6505 changedetection/datasets/make_data_loader.py: the SECOND loader swaps the
    dates with their labels at p 0.5 (:105-109) and jitters each date (:111-112); the Landsat one jitters
    (:170-171, commented out only in 8024c1a) and does not swap. The Landsat recipe had no jitter, and
    neither recipe swapped."""
    second = load_config("mambafcs_second", ["data.root=x"])
    assert second["augment"]["date_jitter"] is True and second["augment"]["date_swap"] == 0.5
    assert second["data"]["mean"] == MEAN and second["data"]["std"] == STD
    landsat = load_config("mambafcs_landsat_scd", ["data.root=x"])
    assert landsat["augment"]["date_jitter"] is True and landsat["augment"]["date_swap"] == 0.0
    assert landsat["data"]["mean"] == MEAN
    default = load_config(None, ["data.root=x"])["augment"]
    assert default["date_jitter"] is False and default["date_swap"] == 0.0
    with pytest.raises(ValueError, match="image_norm"):
        Augment(date_jitter=True)


def test_date_jitter_on_chips_that_are_not_8_bit_is_refused(tmp_path) -> None:
    """Its 0..255 clamp saturated 12-bit chips to a mean of 254, and the run trained on that, unsaid."""
    from rsmamba.errors import InputError
    from rsmamba.tile import tile_scene
    from rsmamba.train import train
    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "u16.tif", random_image(64, 64).astype(np.uint16) * 16)
    t2 = write_raster(tmp_path / "u16_t2.tif", random_image(64, 64, seed=1).astype(np.uint16) * 16)
    labels = write_raster(tmp_path / "labels.tif", (random_image(64, 64)[0] > 128).astype(np.uint8))
    tile_scene(image, tmp_path / "chips", labels=labels, t2=t2, size=32, split=(0.5, 0.5, 0.0), block=32)
    cfg = {"data": {"root": str(tmp_path / "chips"), "batch_size": 1}, "out": str(tmp_path / "run"),
           "model": {"name": "mambafcs_tiny"}, "train": {"epochs": 1},
           "augment": {"date_jitter": True}, "tensorboard": False}
    with pytest.raises(InputError, match="the chips are uint16"):
        train(cfg, progress=False)


def _pair(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(3, 8, 8, generator=g), "image2": torch.rand(3, 8, 8, generator=g),
            "mask": torch.randint(0, 6, (8, 8), generator=g), "mask2": torch.randint(0, 6, (8, 8), generator=g),
            "change": torch.randint(0, 2, (8, 8), generator=g)}


def test_date_swap_swaps_each_date_with_its_labels_and_keeps_the_change_mask() -> None:
    """Mamba-FCS's SECOND loader swaps (pre, post) and (t1_label, t2_label) with p 0.5; the change label stays."""
    before = _pair(0)
    out = Augment(flips=False, rot90=False, date_swap=1.0)({k: v.clone() for k, v in before.items()})
    for a, b in (("image", "image2"), ("image2", "image"), ("mask", "mask2"), ("mask2", "mask")):
        assert torch.equal(out[a], before[b])
    assert torch.equal(out["change"], before["change"])
    swapped = []
    for seed in range(40):  # seeded like the rest: a reseeded Augment draws the same swaps
        runs = []
        for _ in range(2):
            aug = Augment(flips=False, rot90=False, date_swap=0.5)
            aug.reseed(seed)
            runs.append(torch.equal(aug(_pair(seed))["image"], _pair(seed)["image2"]))
        assert runs[0] == runs[1]
        swapped.append(runs[0])
    assert 0 < sum(swapped) < 40
    aug = Augment(date_swap=0.0)
    aug.reseed(5)
    state = aug.generator.get_state()
    plain = Augment()
    plain.reseed(5)
    a, b = aug(_pair(1)), plain(_pair(1))  # off: no draw, so older runs replay their augmentations
    assert all(torch.equal(a[k], b[k]) for k in a) and torch.equal(aug.generator.get_state(), plain.generator.get_state())
    assert not torch.equal(state, aug.generator.get_state())


def test_date_swap_is_refused_where_a_swap_would_mislabel(tmp_path) -> None:
    """A segmentation model has no second date to swap, and chips labelled on the first date only would
    have those labels trained against the second date's image: one-line errors before training."""
    from rsmamba.errors import InputError
    from rsmamba.tile import tile_scene
    from rsmamba.train import train
    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "t1.tif", random_image(64, 64))
    t2 = write_raster(tmp_path / "t2.tif", random_image(64, 64, seed=1))
    labels = write_raster(tmp_path / "labels.tif", (random_image(64, 64)[0] > 128).astype(np.uint8))
    tile_scene(image, tmp_path / "single", labels=labels, size=32, split=(0.5, 0.5, 0.0), block=32)
    tile_scene(image, tmp_path / "pairs", labels=labels, t2=t2, size=32, split=(0.5, 0.5, 0.0), block=32)
    base = {"data": {"batch_size": 1}, "train": {"epochs": 1}, "augment": {"date_swap": 0.5}, "tensorboard": False}
    seg = {**base, "data": {**base["data"], "root": str(tmp_path / "single")}, "out": str(tmp_path / "r1"),
           "model": {"name": "fcn_baseline", "kwargs": {"width": 4}}}
    with pytest.raises(InputError, match="date_swap: swaps the two dates of a change pair"):
        train(seg, progress=False)
    jitter = {**seg, "augment": {"date_jitter": True}}  # it jittered the one image unsaid (QA)
    with pytest.raises(InputError, match="date_jitter: jitters each date of a change pair on its own; 'fcn_baseline' "
                                         "is a segmentation model"):
        train(jitter, progress=False)
    change = {**base, "data": {**base["data"], "root": str(tmp_path / "pairs")}, "out": str(tmp_path / "r2"),
              "model": {"name": "mambafcs_tiny"}}
    with pytest.raises(InputError, match="labels of one date only"):
        train(change, progress=False)


def test_val_chips_without_a_changed_pixel_are_said_once(tmp_path, caplog) -> None:
    """A change model's val chips holding no changed pixel: val_change_f1 0 whatever the model predicts, and best.pt
    picked on it, unsaid (QA; the classes the val chips miss were said for segmentation). Said once a run."""
    import csv

    import rasterio

    from rsmamba.tile import tile_scene
    from rsmamba.train import train
    from tests.helpers.rasters import random_image, write_raster

    image = write_raster(tmp_path / "t1.tif", random_image(64, 64))
    t2 = write_raster(tmp_path / "t2.tif", random_image(64, 64, seed=1))
    changed = np.zeros((64, 64), np.uint8)
    changed[8:56, 8:56] = 1  # in every chip
    change = write_raster(tmp_path / "change.tif", changed)
    tile_scene(image, tmp_path / "pairs", t2=t2, change=change, size=32, split=(0.5, 0.5, 0.0), block=32)
    with open(tmp_path / "pairs" / "manifest.csv") as f:
        val = [r["change"] for r in csv.DictReader(f) if r["split"] == "val"]
    assert val
    for name in val:  # the val chips' change masks emptied: no changed pixel to score
        with rasterio.open(tmp_path / "pairs" / name, "r+") as dst:
            dst.write(np.zeros((1, dst.height, dst.width), np.uint8))
    cfg = {"data": {"root": str(tmp_path / "pairs"), "batch_size": 2}, "train": {"epochs": 2},
           "model": {"name": "mambafcs_tiny"}, "tensorboard": False, "out": str(tmp_path / "run")}
    with caplog.at_level("WARNING", logger="rsmamba"):
        train(cfg, progress=False)
    assert caplog.text.count("the val chips hold no changed pixel: their change scores") == 1
