"""``rsmamba.datasets.chips``: a chip folder's split values and instance-target chips are checked as its images and
labels are: each problem one ``InputError`` naming the file and line (or chip), never a chip silently left out of
every split, a traceback, or targets that are not the folder's."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from rsmamba.datasets.chips import ChipDataset
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
