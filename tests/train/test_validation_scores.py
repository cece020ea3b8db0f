"""Validation during training scores what the benchmarks score: each pixel once, SECOND's SCD metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from rsmamba.classes import ISPRS_CLASSES, SECOND_COLOURS
from rsmamba.datasets.benchmark import ISPRSDataset, grid_origins, seen_before
from rsmamba.datasets.chips import TilingInfo
from rsmamba.datasets.layouts import Pair, SECONDDataset
from rsmamba.errors import InputError
from rsmamba.metrics import confusion_matrix, segmentation_scores, semantic_change_scores_7class
from rsmamba.train import train
from rsmamba.train.trainer import check_metric, validate


def _write(path: Path, arr: np.ndarray, driver: str = "GTiff") -> None:
    with rasterio.open(path, "w", driver=driver, width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                       dtype="uint8") as dst:
        dst.write(arr.astype(np.uint8))


class FromBand(torch.nn.Module):
    """A segmentation "model" whose prediction is written in band 1 of its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(x[:, 0].round().long().clamp(0, 5), 6).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize(("h", "w", "crop"), [(5, 5, 3), (7, 11, 4), (9, 6, 9)])
def test_isprs_validation_crops_score_each_pixel_once(tmp_path: Path, h: int, w: int, crop: int) -> None:
    """The last crop of an axis overlaps the one before: its overlap is scored once, as one whole tile."""
    rng = np.random.default_rng(h * w)
    ref = rng.integers(0, 5, (h, w))
    pred = np.where(rng.random((h, w)) < 0.6, ref, rng.integers(0, 5, (h, w)))
    rgb = np.zeros((3, h, w), np.uint8)
    for c in ISPRS_CLASSES:
        rgb[:, ref == c.id] = np.array(c.color, np.uint8)[:, None]
    _write(tmp_path / "img.tif", np.stack([pred] * 3))
    _write(tmp_path / "lab.tif", rgb)
    info = TilingInfo(tmp_path, [1, 2, 3], [0.0] * 3, [1.0] * 3, None, None, [c.to_dict() for c in ISPRS_CLASSES],
                      None, {"layout": "isprs"})
    ds = ISPRSDataset([Pair(tmp_path / "img.tif", tmp_path / "lab.tif", "val", "t")], info, use_dsm=False,
                      dsm_mode="zscore", crop=crop, crops_per_image=1, random=False)
    assert sum(int((s["mask"] != 255).sum()) for s in ds) == h * w
    names = [c.name for c in ISPRS_CLASSES]
    got = validate(FromBand(), torch.utils.data.DataLoader(ds, batch_size=2), "segmentation", "image", 6,
                   torch.device("cpu"), [5], names)
    whole = segmentation_scores(confusion_matrix(ref, pred, 6), names, [5])
    assert (got["miou"], got["oa"]) == pytest.approx((whole["miou"], whole["oa"]))


def test_seen_before_is_the_overlap_with_the_previous_crop() -> None:
    assert grid_origins(10, 4, 4) == [(0, 0), (4, 0), (6, 0)]
    assert [seen_before(10, 4, 4, o) for o in grid_origins(10, 4, 4)] == [(0, 0), (0, 0), (2, 0)]


class PerfectLandCoverNoChange(torch.nn.Module):
    """Both dates' land cover right (read from band 1), and no change predicted anywhere."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        def one_hot(x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(x[:, 0].round().long(), 6).permute(0, 3, 1, 2).float()
        change = torch.zeros(a.shape[0], 2, *a.shape[-2:])
        change[:, 0] = 1
        return {"change": change, "sem1": one_hot(a), "sem2": one_hot(b)}


def test_semantic_change_validation_scores_as_second_does(tmp_path: Path) -> None:
    """A model that finds no change has SeK 0 and a low SECOND mIoU, however right its land cover:
    the scores best.pt is chosen by are the benchmark's (SCanNet's evaluation), the land cover is sem_*."""
    split = tmp_path / "test"
    for sub in ("im1", "im2", "label1", "label2"):
        (split / sub).mkdir(parents=True)
    l1, l2 = np.zeros((8, 8), int), np.zeros((8, 8), int)  # SECOND ids: 0 unchanged, 1..6 land cover
    l1[2:6, 2:6], l2[2:6, 2:6] = 3, 5
    colours = np.array(SECOND_COLOURS, np.uint8)
    for k, ids in ((1, l1), (2, l2)):
        _write(split / f"im{k}" / "a.png", np.stack([np.where(ids > 0, ids - 1, 0)] * 3), "PNG")
        _write(split / f"label{k}" / "a.png", colours[ids].transpose(2, 0, 1), "PNG")
    ds = SECONDDataset(tmp_path, "test", mean=(0, 0, 0), std=(1, 1, 1))
    got = validate(PerfectLandCoverNoChange(), torch.utils.data.DataLoader(ds, batch_size=1), "semantic-change",
                   "t1+t2", 6, torch.device("cpu"), [], [str(i) for i in range(6)])
    lc1, lc2 = np.where(l1 > 0, l1 - 1, 0), np.where(l2 > 0, l2 - 1, 0)
    want = semantic_change_scores_7class(lc1, lc2, np.zeros((8, 8)), lc1, lc2, l1 > 0)
    assert got["sem_miou"] == 1.0 and got["change_f1"] == 0.0
    assert (got["sek"], got["miou"], got["oa"]) == pytest.approx((want["sek"], want["miou"], want["oa"]))
    assert got["sek"] == 0.0 and got["miou"] == pytest.approx(0.375)
    assert got["score"] == pytest.approx(0.3 * 0.375)


def test_a_metric_the_task_does_not_score_is_refused() -> None:
    check_metric("sek", "semantic-change")
    check_metric("miou", "segmentation")
    with pytest.raises(InputError, match="train.metric 'sek'.*segmentation"):
        check_metric("sek", "segmentation")
    with pytest.raises(InputError, match="choose one of sek"):
        check_metric("mIoU", "semantic-change")


def test_training_refuses_an_unscored_metric_before_any_step(tmp_path: Path) -> None:
    from tests.helpers.scenes import write_chips

    chips = write_chips(tmp_path / "chips", size=64, chip=32)
    cfg = {"data": {"root": str(chips), "batch_size": 2}, "model": {"name": "fcn_baseline", "kwargs": {"width": 4}},
           "train": {"epochs": 1, "metric": "sek"}, "out": str(tmp_path / "run"), "tensorboard": False}
    with pytest.raises(InputError, match="train.metric 'sek'"):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_checkpoint_of_other_classes_is_not_scored_or_loaded_as_these(tmp_path: Path) -> None:
    """The demo change model's six ISPRS classes are not SECOND's six: its class heads are re-initialised
    by --init and a --test of it is refused (its 'impervious' was scored as 'water')."""
    import tests.helpers.layout_fixtures as F
    from rsmamba.train import load_config, score_checkpoint
    from rsmamba.train.trainer import prepare

    root = F.second(tmp_path / "s", n=2, size=16)
    base = {"data": {"root": str(root), "layout": "second", "batch_size": 2, "val_split": "test"},
            "out": str(tmp_path / "run"), "tensorboard": False}
    prep = prepare(load_config(None, ["model.init=demo-change"], base=base))
    assert prep.init_report.reinitialised and prep.init_report.loaded
    assert all("change" not in name for name in prep.init_report.reinitialised)  # the change head is kept
    demo = Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_change_model.pt"
    with pytest.raises(InputError, match="re-initialised for the new classes"):
        score_checkpoint(base, checkpoint=demo, progress=False)


def test_no_semantic_change_scores_without_land_cover_of_the_changed_pixels(tmp_path: Path) -> None:
    """Chips of change labels alone (no --labels/--labels-t2): every changed pixel's land cover is unlabelled, and
    SeK and the SCD score of them would reward a model finding no change; the SCD mIoU is the change masks'."""
    split = tmp_path / "test"
    for sub in ("im1", "im2", "label1", "label2"):
        (split / sub).mkdir(parents=True)
    l1 = np.zeros((8, 8), int)
    l1[2:6, 2:6] = 3
    colours = np.array(SECOND_COLOURS, np.uint8)
    for k in (1, 2):
        _write(split / f"im{k}" / "a.png", np.zeros((3, 8, 8)), "PNG")
        _write(split / f"label{k}" / "a.png", colours[l1 if k == 1 else l1 + (l1 > 0)].transpose(2, 0, 1), "PNG")
    ds = SECONDDataset(tmp_path, "test", mean=(0, 0, 0), std=(1, 1, 1))

    class Unlabelled(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(ds)

        def __getitem__(self, i: int) -> dict:
            item = dict(ds[i])
            item["mask"] = torch.full_like(item["mask"], 255)
            item["mask2"] = torch.full_like(item["mask2"], 255)
            return item

    got = validate(PerfectLandCoverNoChange(), torch.utils.data.DataLoader(Unlabelled(), batch_size=1),
                   "semantic-change", "t1+t2", 6, torch.device("cpu"), [], [str(i) for i in range(6)])
    assert "change_f1" in got and not {"sek", "score"} & set(got)
    # the SCD mIoU is the mean of the no-change and change IoU: from the change masks (48 of 64 pixels found as no
    # change, the 16 changed ones missed: 0.75 and 0): the default train.metric, scored (it was left out)
    assert got["miou"] == pytest.approx((0.75 + 0.0) / 2) and got["change_iou"] == 0.0


class MeanSensitive(torch.nn.Module):
    """Class 0 where band 1 is above its mean over the whole input the network is given: its padding counts."""

    input_multiple = 4  # as predict pads: to at least 32 px (rsmamba.engine.model.model_input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        above = x[:, :1] - x[:, :1].mean((2, 3), keepdim=True)
        return torch.cat([above, torch.zeros_like(above), torch.full_like(above.expand(-1, 4, -1, -1), -9.0)], 1)


@pytest.mark.parametrize(("side", "scales", "flip"), [(32, (0.75, 1.0), True), (20, (1.0,), False)])
def test_validation_runs_the_network_on_the_windows_predict_gives_it(side: int, scales, flip: bool) -> None:
    """A 24 px view of multi-scale evaluation (or a 20 px chip) ran unpadded in validation, where predict pads it
    to 32 px: train's val mIoU was not the map's (0.465 against 0.491 of predict --tta-recipe on the same windows,
    QA). Both now give the network the same padded input."""
    from rsmamba.engine.model import LoadedModel, Predictor
    from rsmamba.engine.tta import TTAPlan

    g = torch.Generator().manual_seed(side)
    samples = [{"image": torch.rand(3, side, side, generator=g) * torch.linspace(0, 2, side),
                "mask": torch.randint(0, 2, (side, side), generator=g)} for _ in range(4)]
    loader = torch.utils.data.DataLoader(samples, batch_size=2)
    names = [c.name for c in ISPRS_CLASSES]
    got = validate(MeanSensitive(), loader, "segmentation", "image", 6, torch.device("cpu"), [], names,
                   scales=scales, flip=flip)
    predictor = Predictor(LoadedModel(MeanSensitive(), input_multiple=4), tta=TTAPlan(flip=flip, scales=scales))
    hist = sum(confusion_matrix(s["mask"].numpy(), predictor(s["image"][None].numpy()).argmax(1)[0].numpy(), 6)
               for s in samples)
    want = segmentation_scores(hist, names)
    assert (got["miou"], got["oa"]) == pytest.approx((want["miou"], want["oa"]), abs=1e-12)
