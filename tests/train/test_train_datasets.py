"""Benchmark layouts (tiny fake folders), chip dataset normalisation and augmentation consistency."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from rsmamba.augment import Augment
from rsmamba.datasets.layouts import (
    SECOND_COLOURS,
    LoveDADataset,
    SECONDDataset,
    isprs_pairs,
    isprs_rgb_to_ids,
)
from rsmamba.errors import InputError


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = arr if arr.ndim == 3 else arr[None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="PNG", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                           dtype="uint8") as dst:
            dst.write(arr)


def test_isprs_colours_and_missing_tiles(tmp_path: Path) -> None:
    rgb = np.zeros((3, 2, 3), np.uint8)
    rgb[:, 0, 0] = (0, 0, 255)  # building
    rgb[:, 0, 1] = (255, 255, 255)  # impervious
    rgb[:, 0, 2] = (255, 0, 0)  # clutter
    rgb[:, 1, 0] = (1, 2, 3)  # unknown
    ids = isprs_rgb_to_ids(rgb)
    assert ids[0].tolist() == [1, 0, 5] and ids[1, 0] == 255
    with pytest.raises(InputError) as err:  # no top/ folder: said once, not as each of its tiles
        isprs_pairs(tmp_path, "vaihingen")
    assert err.value.problems == [f"{tmp_path / 'top'}: no such folder (the vaihingen images)"]
    (tmp_path / "top").mkdir()
    with pytest.raises(InputError) as err:
        isprs_pairs(tmp_path, "vaihingen")
    assert len(err.value.problems) == 33  # 16 train + 17 test tiles


def test_loveda_shifts_labels_and_ignores_nodata(tmp_path: Path) -> None:
    _png(tmp_path / "Train/Urban/images_png/1.png", np.full((3, 4, 4), 100, np.uint8))
    mask = np.array([[0, 1, 2, 7]] * 4, np.uint8)
    _png(tmp_path / "Train/Urban/masks_png/1.png", mask)
    ds = LoveDADataset(tmp_path, "Train", domains=("Urban",))
    sample = ds[0]
    assert sample["mask"][0].tolist() == [255, 0, 1, 6]
    assert sample["image"].shape == (3, 4, 4)
    from rsmamba.datasets.layouts import DEFAULT_STATS  # the layout's statistics, not a rounded copy

    assert ds.mean.flatten().tolist() == pytest.approx(DEFAULT_STATS["loveda"][0])


def test_second_change_and_semantics(tmp_path: Path) -> None:
    l1 = np.zeros((3, 2, 2), np.uint8)
    l2 = np.zeros((3, 2, 2), np.uint8)
    for arr, ids in ((l1, [[0, 5], [1, 0]]), (l2, [[0, 2], [4, 0]])):
        for r in range(2):
            for c in range(2):
                arr[:, r, c] = SECOND_COLOURS[ids[r][c]]
    for sub, arr in (("im1", np.full((3, 2, 2), 90, np.uint8)), ("im2", np.full((3, 2, 2), 120, np.uint8)),
                     ("label1", l1), ("label2", l2)):
        _png(tmp_path / "train" / sub / "a.png", arr)
    ds = SECONDDataset(tmp_path, "train")
    s = ds[0]
    # the reader's default statistics are the layout's, those training uses (they were a rounded copy: 116.3
    # for 116.45, 48.0 for 48.14), from their one home
    from rsmamba.datasets.benchmark import open_datasets
    from rsmamba.datasets.layouts import DEFAULT_STATS

    assert ds.mean.flatten().tolist() == pytest.approx(DEFAULT_STATS["second"][0])
    assert ds.std.flatten().tolist() == pytest.approx(DEFAULT_STATS["second"][1])
    trained, _ = open_datasets({"root": str(tmp_path), "layout": "second", "train_split": "train", "val_split": "val"},
                               use_dsm=False)
    assert torch.equal(trained[0]["image"], s["image"])
    assert s["change"].tolist() == [[0, 1], [1, 0]]
    assert s["mask"].tolist() == [[255, 4], [0, 255]]
    assert s["mask2"].tolist() == [[255, 1], [3, 255]]


def test_landsat_scd_layout(tmp_path) -> None:
    from rsmamba.datasets import LandsatSCDDataset
    from rsmamba.errors import InputError

    l1 = np.array([[[0, 3], [1, 0]]], np.uint8)
    l2 = np.array([[[0, 4], [2, 0]]], np.uint8)
    for sub, arr in (("A", np.full((3, 2, 2), 90, np.uint8)), ("B", np.full((3, 2, 2), 120, np.uint8)),
                     ("labelA", l1), ("labelB", l2)):
        _png(tmp_path / sub / "a.png", arr)
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "train.txt").write_text("a.png\n")
    s = LandsatSCDDataset(tmp_path, "train")[0]
    assert s["change"].tolist() == [[0, 1], [1, 0]]
    assert s["mask"].tolist() == [[255, 2], [0, 255]]
    assert s["mask2"].tolist() == [[255, 3], [1, 255]]
    with pytest.raises(InputError, match="no split list"):
        LandsatSCDDataset(tmp_path, "val")


def test_augment_moves_image_dsm_and_labels_together() -> None:
    h = 16
    base = torch.arange(h * h, dtype=torch.float32).reshape(h, h)
    sample = {"image": torch.stack([base, base * 2, base + 5]), "mask": base.long() % 7,
              "image2": torch.stack([base, base, base]), "change": base.long() % 2}
    aug = Augment(flips=True, rot90=True, scale=None, photometric=0.2, dsm_channels=1)
    for seed in range(6):
        aug.reseed(seed)
        out = aug({k: v.clone() for k, v in sample.items()})
        dsm, mask, change = out["image"][2], out["mask"], out["change"]
        valid = mask != 255
        # The DSM channel (not photometrically jittered) still encodes the same pixel as the mask.
        pix = (dsm - 5).round().long()
        inside = valid & (pix >= 0)
        assert torch.equal(pix[inside] % 7, mask[inside])
        assert torch.equal(pix[inside] % 2, change[inside])
    aug.reseed(3)
    a = aug({k: v.clone() for k, v in sample.items()})
    aug.reseed(3)
    b = aug({k: v.clone() for k, v in sample.items()})
    assert torch.equal(a["image"], b["image"])


def test_colour_and_channel_shuffle_jitter_the_spectral_bands_alike_and_leave_dsm_and_labels() -> None:
    h = 8
    rng = torch.Generator().manual_seed(1)
    rgb = torch.rand(3, h, h, generator=rng)
    dsm = torch.rand(1, h, h, generator=rng)
    sample = {"image": torch.cat([rgb, dsm]), "image2": torch.cat([rgb, dsm]), "mask": torch.ones(h, h).long()}
    aug = Augment(flips=False, rot90=False, colour=0.3, channel_shuffle=1.0, dsm_channels=1)
    seen = set()
    for seed in range(12):
        aug.reseed(seed)
        out = aug({k: v.clone() for k, v in sample.items()})
        assert torch.equal(out["image"], out["image2"])  # both epochs of a pair: the same draw
        assert torch.equal(out["image"][3], dsm[0]) and torch.equal(out["mask"], sample["mask"])
        # each output band is an affine map (gain within 1 +- 0.3, bias within +- 0.3) of one input band
        source = []
        for band in out["image"][:3]:
            fits = []
            for c in range(3):
                a = torch.stack([rgb[c].flatten(), torch.ones(h * h)], 1)
                gain, bias = torch.linalg.lstsq(a, band.flatten()[:, None]).solution.flatten().tolist()
                if torch.allclose(rgb[c] * gain + bias, band, atol=1e-5) and abs(gain - 1) <= 0.3 + 1e-6 \
                        and abs(bias) <= 0.3 + 1e-6:
                    fits.append(c)
            assert len(fits) == 1
            source.append(fits[0])
        assert sorted(source) == [0, 1, 2]  # a permutation of the bands
        seen.add(tuple(source))
    assert len(seen) > 1  # the permutation varies with the seed
    off = Augment(flips=False, rot90=False)  # the defaults draw nothing: older recipes replay unchanged
    assert torch.equal(off({k: v.clone() for k, v in sample.items()})["image"], sample["image"])


def test_grayscale_replaces_the_spectral_bands_by_their_mean_and_leaves_dsm_and_labels() -> None:
    h = 8
    rng = torch.Generator().manual_seed(2)
    rgb, dsm = torch.rand(3, h, h, generator=rng), torch.rand(1, h, h, generator=rng)
    sample = {"image": torch.cat([rgb, dsm]), "image2": torch.cat([rgb.flip(0), dsm]), "mask": torch.ones(h, h).long()}
    always = Augment(flips=False, rot90=False, grayscale=1.0, dsm_channels=1)
    out = always({k: v.clone() for k, v in sample.items()})
    for key, bands in (("image", rgb), ("image2", rgb.flip(0))):
        assert torch.allclose(out[key][:3], bands.mean(0, keepdim=True).expand(3, h, h))
        assert torch.equal(out[key][3], dsm[0])
    assert torch.equal(out["mask"], sample["mask"])
    half = Augment(flips=False, rot90=False, grayscale=0.5, dsm_channels=1)
    grey = []
    for seed in range(40):
        half.reseed(seed)
        img = half({k: v.clone() for k, v in sample.items()})["image"]
        grey.append(bool(torch.equal(img[0], img[1])))
        assert grey[-1] or torch.equal(img, sample["image"])  # all or nothing
    assert 0 < sum(grey) < 40  # a probability, not always and not never


def test_grayscale_out_of_range_is_refused() -> None:
    from rsmamba.train.config import load_config

    with pytest.raises(InputError, match="augment.grayscale: a probability"):
        load_config(None, ["data.root=x", "augment.grayscale=2"])


def test_scale_keeps_size_and_pads_labels_with_ignore() -> None:
    sample = {"image": torch.ones(4, 20, 20), "mask": torch.zeros(20, 20, dtype=torch.long)}
    out = Augment(flips=False, rot90=False, scale=(0.5, 0.5))(sample)
    assert out["image"].shape == (4, 20, 20) and out["mask"].shape == (20, 20)
    assert (out["mask"] == 255).sum() == 400 - 100 and (out["image"][0] == 0).sum() == 300
    assert torch.equal(out["mask"] == 0, out["image"][0] == 1)
    zoom = Augment(flips=False, rot90=False, scale=(2.0, 2.0))({"image": torch.ones(1, 8, 8),
                                                                  "mask": torch.zeros(8, 8, dtype=torch.long)})
    assert (zoom["mask"] == 0).all()


def _label_gaps(factor: float) -> torch.Tensor:
    """Label minus image after a zoom by ``factor``, where each pixel holds its column (then its row)."""
    n = 64
    cols = torch.arange(n).expand(n, n)
    gaps = []
    for ids in (cols, cols.T):
        out = Augment(flips=False, rot90=False, scale=(factor, factor))(
            {"image": ids[None].float().clone(), "mask": ids.clone()})
        inside = out["mask"] != 255
        inside[:, :2] = inside[:, -2:] = inside[:2, :] = inside[-2:, :] = False  # the bilinear edge clamps
        gap = out["mask"].float() - out["image"][0]
        gaps.append((gap if ids is cols else gap.T)[inside if ids is cols else inside.T])
    return torch.cat(gaps)


def test_scaled_labels_lie_under_the_scaled_image() -> None:
    """After a zoom a label must be the class of the source pixel nearest where the bilinear image was sampled.
    Labels were resampled 'nearest' (floor(i * in / out)), the image at pixel centres: over augment.scale
    0.75-1.25 they sat 0.475 px up-left on average (so models learnt to paint half a pixel south-east)."""
    factors = [0.75 + 0.5 * i / 40 for i in range(41)]
    gaps = [_label_gaps(f) for f in factors]
    assert max(float(g.abs().max()) for g in gaps) <= 0.5 + 1e-5  # never further than the nearest pixel
    assert abs(float(torch.stack([g.mean() for g in gaps]).mean())) < 0.05  # and no side taken


def test_colour_augmentation_settings_out_of_range_are_refused_together() -> None:
    from rsmamba.train.config import load_config

    with pytest.raises(InputError) as err:
        load_config(None, ["data.root=x", "augment.colour=-0.1", "augment.channel_shuffle=1.5"])
    text = str(err.value)
    assert "augment.colour: must be >= 0" in text and "augment.channel_shuffle: a probability" in text


def test_change_targets_stay_in_range_where_the_two_dates_disagree_or_are_unreadable(tmp_path: Path, caplog) -> None:
    """A date-2 pixel of unknown colour (or "unchanged") where date 1 says changed was target 254 (or -1):
    IndexError mid-run, a device-side assert on a GPU. An unknown date-1 colour was trained as "no change"."""
    from rsmamba.datasets import LandsatSCDDataset
    from rsmamba.datasets.layouts import scd_targets

    l1 = np.array([[0, 5, 5, 255], [2, 2, 0, 1]])
    l2 = np.array([[0, 255, 0, 3], [9 % 7, 255, 4, 1]])
    m1, m2, change = scd_targets(l1, l2)
    assert change.tolist() == [[0, 1, 1, 255], [1, 1, 0, 1]]
    assert m1.tolist() == [[255, 4, 4, 255], [1, 1, 255, 0]]
    assert m2.tolist() == [[255, 255, 255, 255], [1, 255, 255, 0]]
    # Through the readers: SECOND with a date-2 colour one grey level off, Landsat-SCD with a 9 and a 0.
    good, off = SECOND_COLOURS[5], tuple(v + 1 if v < 255 else v - 1 for v in SECOND_COLOURS[2])
    la, lb = np.zeros((3, 2, 2), np.uint8), np.zeros((3, 2, 2), np.uint8)
    la[:] = np.array(good, np.uint8)[:, None, None]
    lb[:] = np.array(SECOND_COLOURS[0], np.uint8)[:, None, None]  # white (unchanged) where date 1 is building
    lb[:, 0, 0] = off
    for sub, arr in (("im1", np.full((3, 2, 2), 90, np.uint8)), ("im2", np.full((3, 2, 2), 120, np.uint8)),
                     ("label1", la), ("label2", lb)):
        _png(tmp_path / "second" / "train" / sub / "a.png", arr)
    with caplog.at_level("WARNING", logger="rsmamba"):
        s = SECONDDataset(tmp_path / "second", "train")[0]
    assert s["mask2"].unique().tolist() == [255] and s["change"].unique().tolist() == [1]
    assert "label2/a.png: 25 % of the pixels read are of no class" in caplog.text
    lscd = tmp_path / "lscd"
    for sub, arr in (("A", np.full((3, 2, 2), 90, np.uint8)), ("B", np.full((3, 2, 2), 120, np.uint8)),
                     ("labelA", np.array([[[1, 2], [3, 9]]], np.uint8)),
                     ("labelB", np.array([[[0, 9], [4, 4]]], np.uint8))):
        _png(lscd / sub / "a.png", arr)
    (lscd / "train_list.txt").write_text("a.png\n")  # SCanNet's copy names its lists so
    s = LandsatSCDDataset(lscd, "train")[0]
    assert s["change"].tolist() == [[1, 1], [1, 255]]
    assert s["mask2"].tolist() == [[255, 255], [3, 255]]
    for t in (s["mask"], s["mask2"]):
        assert ((t >= 0) & (t < 4) | (t == 255)).all()


def test_folder_layouts_refuse_a_label_of_another_size_and_skip_hidden_files(tmp_path: Path) -> None:
    """A mask 2x its image stopped training with 'stack expects each tensor to be equal size' (a
    traceback), or with data.crop trained on labels of another place."""
    _png(tmp_path / "Train/Urban/images_png/1.png", np.full((3, 4, 4), 100, np.uint8))
    _png(tmp_path / "Train/Urban/masks_png/1.png", np.ones((8, 8), np.uint8))
    (tmp_path / "Train/Urban/images_png/._1.png").write_bytes(b"\x00\x05\x16\x07junk")  # macOS companion
    ds = LoveDADataset(tmp_path, "Train", domains=("Urban",))
    assert len(ds) == 1
    with pytest.raises(InputError, match=r"masks_png/1.png: 8 x 8 px, its image .*1.png 4 x 4 px"):
        ds[0]


def test_a_dataloader_workers_input_error_is_one_line_on_the_cli() -> None:
    from rsmamba.errors import one_line as _one_line

    wrapped = ("Caught InputError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise InputError("a")\n'
               "rsmamba.errors.InputError: masks_png/1.png: 8 x 8 px, its image 1.png 4 x 4 px\n")
    assert _one_line(wrapped) == "masks_png/1.png: 8 x 8 px, its image 1.png 4 x 4 px"


def test_chip_pixels_under_the_chips_mask_are_fed_as_zero(tmp_path: Path) -> None:
    """Chips of an orthophoto with an alpha band carry its mask (no nodata value): training read the black under
    it as imagery (about -2.1 once normalised), where predict gives the network 0 there."""
    from rasterio.enums import ColorInterp

    from rsmamba.datasets.chips import ChipDataset
    from rsmamba.tile import tile_scene
    from tests.helpers.rasters import write_raster

    rgb = np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype=np.uint8)
    rgb[:, :, :24] = 0
    alpha = np.full((1, 64, 64), 255, np.uint8)
    alpha[:, :, :24] = 0
    ortho = write_raster(tmp_path / "ortho.tif", np.concatenate([rgb, alpha]))
    with rasterio.open(ortho, "r+") as dst:
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    labels = write_raster(tmp_path / "labels.tif", np.ones((64, 64), np.uint8))
    tile_scene(ortho, tmp_path / "chips", labels=labels, size=64, split=(1, 0, 0), min_valid=0.1)
    sample = ChipDataset(tmp_path / "chips", split="train")[0]
    image = sample["image"].numpy()
    assert (image[:, :, :24] == 0).all() and (np.abs(image[:, :, 24:]).sum(0) > 0).all()


def test_rot90_keeps_a_non_square_chip_its_shape() -> None:
    """Chips of a raster narrower than --size are 64 x 40: a quarter turn made some 40 x 64, and train stopped on
    'samples of different sizes ... come from one tiling'."""
    sample = {"image": torch.rand(3, 40, 64), "mask": torch.zeros(40, 64, dtype=torch.long)}
    aug = Augment(flips=False, rot90=True, scale=None, photometric=0.0)
    turned = 0
    for seed in range(16):
        aug.reseed(seed)
        out = aug({k: v.clone() for k, v in sample.items()})
        assert out["image"].shape == (3, 40, 64) and out["mask"].shape == (40, 64)
        turned += not torch.equal(out["image"], sample["image"])
    assert turned  # by 180 degrees
    square = {"image": torch.rand(3, 32, 32)}
    seen = set()
    for seed in range(16):
        aug.reseed(seed)
        out = aug({"image": square["image"].clone()})["image"]
        seen.update(k for k in range(4) if torch.equal(out, torch.rot90(square["image"], k, dims=(-2, -1))))
    assert seen == {0, 1, 2, 3}  # a square chip still takes every quarter turn


@pytest.mark.parametrize("jitter", [{"photometric": 0.3}, {"colour": 0.3}])
def test_spectral_jitter_leaves_no_data_pixels_at_zero(jitter) -> None:
    """A chip's no-data pixels are 0 in every channel, as predict feeds them; photometric and colour jitter added
    their bias there (up to +-0.3 here), an input predict never gives (QA). Valid pixels are jittered as before."""
    g = torch.Generator().manual_seed(2)
    image = torch.randn(4, 16, 16, generator=g)
    image[:, :, :5] = 0.0  # the chip's no-data columns (image bands and DSM)
    for seed in range(20):
        aug = Augment(flips=False, rot90=False, dsm_channels=1, **jitter)
        aug.reseed(seed)
        out = aug({"image": image.clone(), "mask": torch.zeros(16, 16, dtype=torch.int64)})["image"]
        assert torch.equal(out[:, :, :5], torch.zeros(4, 16, 5))
        assert not torch.equal(out[:3, :, 5:], image[:3, :, 5:]) and torch.equal(out[3], image[3])
