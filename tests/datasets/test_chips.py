"""``rsmamba.datasets.chips``: a chip folder's split values and instance-target chips are checked as its images and
labels are: each problem one ``InputError`` naming the file and line (or chip), never a chip silently left out of
every split, a traceback, or targets that are not the folder's. Where a chip has no data, the network gets what
predict gives it there."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from rsmamba.datasets.chips import ChipDataset, read_tiling
from rsmamba.errors import InputError
from rsmamba.tile import tile_scene
from tests.helpers.scenes import manifest_rows, save_manifest, write_scene


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A folder of 4 chips of 32 px (2 train, 2 val) with instance targets (footprints: the scene's buildings)."""
    folder = tmp_path_factory.mktemp("targets")
    paths = write_scene(folder / "scene", 64, 0)
    with rasterio.open(paths["labels"]) as src:
        profile, labels = src.profile, src.read(1)
    ids = np.where(labels == 1, 1 + np.arange(labels.size).reshape(labels.shape) // 200, 0).astype(np.int32)
    with rasterio.open(folder / "ids.tif", "w", **{**profile, "dtype": "int32", "nodata": None}) as dst:
        dst.write(ids[None])
    out = folder / "chips"
    tile_scene(paths["image"], out, labels=paths["labels"], size=32, block=32, split=(0.5, 0.5, 0.0),
               instance_targets=folder / "ids.tif")
    return out


def _copy(made: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "v"))


def _read_all(chips: Path, with_targets: bool = True) -> None:
    for split in ("train", "val"):
        ds = ChipDataset(chips, split)
        ds.target_bands = [0, 2] if with_targets else []  # interior, contact (train's model.instances)
        for i in range(len(ds)):
            ds[i]


def _rewrite(path: Path, change: Callable[[np.ndarray, dict], tuple[np.ndarray, dict]]) -> None:
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    data, extra = change(data, profile)
    profile.update(count=len(data), height=data.shape[1], width=data.shape[2], **extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def test_an_untouched_folder_with_targets_reads(made: Path) -> None:
    ds = ChipDataset(made, "train")
    ds.target_bands = [0, 2]
    sample = ds[0]
    assert sample["targets"].shape == (2, 32, 32) and set(sample["targets"].unique().tolist()) <= {0, 1, 255}


# -- split values (a chip whose split is no split was never read, by any split, without a word) ------------------
def test_split_values_and_counts_are_reported_together(made: Path, tmp_path: Path) -> None:
    chips = _copy(made, tmp_path)
    rows = manifest_rows(chips)
    rows[0]["split"], rows[1]["split"], rows[2]["split"] = "", "trian", "holdout"
    save_manifest(chips, rows)
    with pytest.raises(InputError) as caught:
        ChipDataset(chips, "train")
    said = caught.value.problems
    assert f"{chips / 'manifest.csv'} line 2: chip {rows[0]['chip_id']!r} has no split" in said[0]
    assert "line 3: split 'trian' is none of tiling.json's splits (train, val, test): no run" in said[1]
    assert "line 4: split 'holdout' is none of tiling.json's splits" in said[2]
    # and the counts per split, against tiling.json's (one error: every problem of the file at once)
    assert said[3].endswith("tiling.json's splits says train 2, val 2, test 0; re-tile, or make tiling.json's "
                            "splits say what the manifest holds"), said
    assert len(str(caught.value).splitlines()) == 1


def test_split_counts_agree_with_tiling_json(made: Path, tmp_path: Path) -> None:
    chips = _copy(made, tmp_path)
    rows = manifest_rows(chips)
    moved = next(r for r in rows if r["split"] == "val")
    moved["split"] = "train"  # a val chip moved to train by hand: trained on, and the val scores of one chip
    save_manifest(chips, rows)
    with pytest.raises(InputError) as caught:
        ChipDataset(chips, "train")
    assert caught.value.problems == [
        f"{chips / 'manifest.csv'}: chips per split train 3, val 1, test 0, where tiling.json's splits says train 2, "
        "val 2, test 0; re-tile, or make tiling.json's splits say what the manifest holds"]
    meta = json.loads((chips / "tiling.json").read_text())
    meta["splits"] = {"train": 3, "val": 1, "test": 0}  # the folder says so too: read
    (chips / "tiling.json").write_text(json.dumps(meta))
    assert len(ChipDataset(chips, "train")) == 3
    del meta["splits"]  # an older tiling.json without splits: the names are not checked, the empty one is
    (chips / "tiling.json").write_text(json.dumps(meta))
    assert len(ChipDataset(chips, "val")) == 1


# -- instance-target chips, checked as the image and label chips are -----------------------------------------------
CASES = {
    "targets file missing": (lambda c, r: (c / r["targets"]).unlink(), "targets/{id}.tif: missing from"),
    "no targets column": (lambda c, r: save_manifest(c, [{k: v for k, v in x.items() if k != "targets"} for x in manifest_rows(c)]),
                          "manifest.csv: no targets column, but tiling.json's instance_targets says"),
    "row without targets": (lambda c, r: save_manifest(c, [dict(x, targets="") if x is r else x for x in [r, *manifest_rows(c)[1:]]]),
                            "line 2: chip '{id}' names no targets chip"),
    "2-band targets": (lambda c, r: _rewrite(c / r["targets"], lambda a, p: (a[:2], {})),
                       "chip {id} has 2 band(s) of 32 x 32 px; its folder says 3 of 32 x 32 px"),
    "16 px targets": (lambda c, r: _rewrite(c / r["targets"], lambda a, p: (a[:, :16, :16], {})),
                      "chip {id} has 3 band(s) of 16 x 16 px; its folder says 3 of 32 x 32 px"),
    "float targets": (lambda c, r: _rewrite(c / r["targets"], lambda a, p: (a.astype(np.float32) * 0.5,
                                                                            {"dtype": "float32"})),
                      "targets/{id}.tif: chip {id} holds instance target values 0.5 (float32)"),
    "targets past 1": (lambda c, r: _rewrite(c / r["targets"], lambda a, p: (a * 0 + 7, {})),
                       "targets/{id}.tif: chip {id} holds instance target values 7"),
    "targets of another window": (lambda c, r: _rewrite(c / r["targets"], lambda a, p: (
        a, {"transform": p["transform"] * Affine.translation(32, 0)})),
                                  "targets/{id}.tif: chip {id} is not on the grid of its image chip"),
    "instance_targets text": (lambda c, r: (c / "tiling.json").write_text(json.dumps(
        dict(json.loads((c / "tiling.json").read_text()), instance_targets="targets"))),
                              "tiling.json: instance_targets must be an object"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_targets_chip_is_one_line_naming_it(made: Path, tmp_path: Path, case: str) -> None:
    chips = _copy(made, tmp_path)
    row = manifest_rows(chips)[0]
    edit, said = CASES[case]
    edit(chips, row)
    with pytest.raises(InputError) as caught:
        _read_all(chips)
    assert said.format(id=row["chip_id"]) in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_targets_chips_are_not_read_for_a_model_without_instance_outputs(made: Path, tmp_path: Path) -> None:
    chips = _copy(made, tmp_path)
    _rewrite(chips / manifest_rows(chips)[0]["targets"], lambda a, p: (a * 0 + 7, {}))
    _read_all(chips, with_targets=False)


# -- pixels without data: the network's input is predict's (a DSM hole kept its image bands in training only) -----
def _network_inputs(monkeypatch) -> list[np.ndarray]:
    """The batches predict and change hand the network, as a spy on :class:`Predictor` keeps them."""
    import rsmamba.engine.model as engine_model

    seen: list[np.ndarray] = []
    call = engine_model.Predictor.__call__

    def spy(self, batch: np.ndarray):  # noqa: ANN202 - the predictor's own return
        seen.append(batch.copy())
        return call(self, batch)

    monkeypatch.setattr(engine_model.Predictor, "__call__", spy)
    return seen


def test_a_dsm_hole_gives_the_network_what_predict_gives_it(tmp_path: Path, monkeypatch) -> None:
    """A 20 x 20 px NaN hole in the DSM: predict zeroes every channel there; training kept the image bands."""
    from rsmamba.checkpoint import save_checkpoint
    from rsmamba.classes import ISPRS_CLASSES
    from rsmamba.models import create_model
    from rsmamba.predict import predict_raster
    from tests.helpers.rasters import write_raster
    from tests.helpers.scenes import scene_arrays

    image, labels, dsm = scene_arrays(96, 3)
    dsm[30:50, 40:60] = np.nan
    paths = {"image": write_raster(tmp_path / "image.tif", image, res=0.5),
             "labels": write_raster(tmp_path / "labels.tif", labels, res=0.5),
             "dsm": write_raster(tmp_path / "dsm.tif", dsm, res=0.5, nodata=float("nan"))}
    tile_scene(paths["image"], tmp_path / "chips", dsm=paths["dsm"], labels=paths["labels"], size=96, block=96,
               split=(1.0, 0.0, 0.0))
    ds = ChipDataset(tmp_path / "chips", "train", use_dsm=True)
    trained = ds[0]["image"].numpy()
    torch.manual_seed(0)
    net = create_model("fcn_baseline", in_chans=4, num_classes=6, width=8)
    save_checkpoint(tmp_path / "m.pt", {
        "model": "fcn_baseline", "model_kwargs": {"in_chans": 4, "num_classes": 6, "width": 8},
        "state_dict": net.state_dict(), "bands": {"image": [1, 2, 3], "dsm": True},
        "normalization": ds.info.normalization("zscore"), "classes": [c.to_dict() for c in ISPRS_CLASSES]})
    seen = _network_inputs(monkeypatch)
    predict_raster(paths["image"], tmp_path / "pred.tif", dsm=paths["dsm"], model=tmp_path / "m.pt", window=96,
                   overlap=0, device="cpu", tta=False)
    assert len(seen) == 1 and seen[0].shape == (1, 4, 96, 96)
    hole = np.isnan(dsm)
    assert (trained[:, hole] == 0).all() and (trained[:3, ~hole] != 0).any()
    np.testing.assert_allclose(trained, seen[0][0], rtol=0, atol=1e-5)


def test_a_change_chip_blanks_both_dates_where_either_has_no_data(tmp_path: Path, monkeypatch) -> None:
    """t2's nodata hole and t1's: change gives the network 0 in both dates' channels at either; a change chip zeroed
    each date by its own mask only."""
    from rsmamba.change import detect_change
    from rsmamba.engine.model import LoadedModel
    from tests.helpers.rasters import write_raster
    from tests.helpers.scenes import scene_arrays

    image, labels, _ = scene_arrays(96, 4)
    t2 = image.copy()
    t2[:, 60:80, 10:40] = 0  # (scene values are 1..255: 0 is the hole alone)
    image[:, 10:25, 50:90] = 0
    t1_path = write_raster(tmp_path / "t1.tif", image, res=0.5, nodata=0)
    t2_path = write_raster(tmp_path / "t2.tif", t2, res=0.5, nodata=0)
    tile_scene(t1_path, tmp_path / "chips", t2=t2_path, size=96, block=96, split=(1.0, 0.0, 0.0))
    sample = ChipDataset(tmp_path / "chips", "train", use_dsm=False)[0]
    trained = np.concatenate([sample["image"].numpy(), sample["image2"].numpy()])
    info = read_tiling(tmp_path / "chips")

    class Mean(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.cat([a.mean(1, keepdim=True), b.mean(1, keepdim=True)], 1)

    model = LoadedModel(Mean(), inputs="t1+t2", image_norm={"mean": info.image_mean, "std": info.image_std})
    seen = _network_inputs(monkeypatch)
    detect_change(t1_path, t2_path, tmp_path / "c.tif", model=model, window=96, overlap=0, device="cpu",
                  epoch_norm="checkpoint", tta=False)
    assert len(seen) == 1 and seen[0].shape == (1, 6, 96, 96)
    either = (image == 0).all(0) | (t2 == 0).all(0)
    assert (trained[:, either] == 0).all() and (trained[:, ~either] != 0).any()
    np.testing.assert_allclose(trained, seen[0][0], rtol=0, atol=1e-5)
