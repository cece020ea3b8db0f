"""A chip folder or benchmark layout received from others is checked, not believed: ``tiling.json`` and
``manifest.csv`` field by field, each chip against them when read, names within the folder, no named pipe
opened. Each problem is one ``InputError`` naming the file and field (or chip), never a traceback or a
model trained on something else than the folder says."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import rasterio

from rsmamba.cli import main
from rsmamba.datasets.chips import ChipDataset
from rsmamba.datasets.layouts import LandsatSCDDataset, isprs_pairs
from rsmamba.errors import InputError
from rsmamba.synth.benchmarks import write_layout
from tests.helpers.scenes import manifest_rows, save_manifest, write_chips


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    return write_chips(tmp_path_factory.mktemp("made"), size=96, chip=32, split=(0.5, 0.5, 0.0))


def _copy(made: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made, tmp_path / "v", symlinks=True))


def _meta(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(chips: Path) -> None:
        meta = json.loads((chips / "tiling.json").read_text())
        edit(meta)
        (chips / "tiling.json").write_text(json.dumps(meta))
    return apply


def _manifest(edit: Callable[[list[dict[str, str]]], object]) -> Callable[[Path], None]:
    def apply(chips: Path) -> None:
        rows = manifest_rows(chips)
        save_manifest(chips, edit(rows) or rows)
    return apply


def _read_all(chips: Path) -> None:
    for split in ("train", "val"):
        ds = ChipDataset(chips, split)
        for i in range(len(ds)):
            ds[i]


def _rewrite_chip(path: Path, change: Callable) -> None:
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    data, extra = change(data)
    profile.update(count=len(data), height=data.shape[1], width=data.shape[2], **extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


CASES = {
    "nan mean": (_meta(lambda m: m["stats"]["image"].update(mean=[float("nan")] * 3)),
                 "tiling.json: stats.image.mean must be a list of finite numbers"),
    "nan std": (_meta(lambda m: m["stats"]["image"].update(std=[float("nan")] * 3)),
                "tiling.json: stats.image.std must be a list of finite numbers >= 0"),
    "std text": (_meta(lambda m: m["stats"]["image"].update(std="abc")), "tiling.json: stats.image.std"),
    "stats a list": (_meta(lambda m: m.update(stats=[1, 2])), "tiling.json: no image statistics"),
    "dsm stats empty": (_meta(lambda m: m["stats"].update(dsm={"mean": [], "std": []})),
                        "tiling.json: stats.dsm.mean must be a list"),
    "bands text": (_meta(lambda m: m.update(bands=["1", "2", "x"])), "tiling.json: bands must be 3 band numbers"),
    "classes text": (_meta(lambda m: m.update(classes="building")), "tiling.json: classes: a list of"),
    "class id 1e9": (_meta(lambda m: m["classes"].append({"id": 10**9, "name": "x", "color": [1, 2, 3]})),
                     "tiling.json: classes[6]: id must be 6"),
    "splits text": (_meta(lambda m: m.update(splits={"train": "x"})), "tiling.json: splits must map"),
    "nested deep": (lambda c: (c / "tiling.json").write_text("[" * 100000 + "]" * 100000),
                    "tiling.json: nested too deeply"),
    "no split column": (_manifest(lambda rows: [r.pop("split") for r in rows] and None),
                        "manifest.csv: no split column"),
    "latin-1 byte": (lambda c: open(c / "manifest.csv", "ab").write(b"caf\xe9,train\n"), "manifest.csv: not UTF-8"),
    "short row": (lambda c: open(c / "manifest.csv", "a").write("x,train\n"), "fields, the header names"),
    "class_hist not json": (_manifest(lambda rows: rows[0].update(class_hist="{bad")),
                            "manifest.csv line 2: class_hist"),
    "class_hist not ids": (_manifest(lambda rows: rows[0].update(class_hist='{"abc": 5}')),
                           "manifest.csv line 2: class_hist"),
    "chip in two splits": (_manifest(lambda rows: rows + [dict(rows[0], split="val")]),
                           "chip 'r00_c00' is listed again (line 2, in split"),
    "chip twice": (_manifest(lambda rows: rows + rows[:1]), "chip 'r00_c00' is listed again (line 2)"),
    "absolute path": (lambda c: _manifest(lambda rows: rows[0].update(image=str(c.parent / "out.tif")))(c),
                      "manifest.csv line 2: image '/"),
    "dotdot path": (_manifest(lambda rows: rows[0].update(image="../out.tif")),
                    "manifest.csv line 2: image '../out.tif' leads outside"),
    "sizes differ": (_manifest(lambda rows: rows[1].update(width="16")), "manifest.csv: chips of 2 sizes"),
    "1-band chip": (lambda c: _rewrite_chip(c / "images" / "r00_c00.tif",
                                            lambda a: (a[:1], {"photometric": "MINISBLACK"})),
                    "r00_c00.tif: chip r00_c00 has 1 band(s) of 32 x 32 px; its folder says 3 of 32 x 32 px"),
    "16 px chip": (lambda c: _rewrite_chip(c / "images" / "r00_c00.tif", lambda a: (a[:, :16, :16], {})),
                   "r00_c00.tif: chip r00_c00 has 3 band(s) of 16 x 16 px; its folder says 3 of 32 x 32 px"),
    "label past the table": (lambda c: _rewrite_chip(c / "labels" / "r00_c32.tif", lambda a: (a * 0 + 200, {})),
                             "r00_c32.tif: chip r00_c32 holds label values 200, past its folder's classes 0..5"),
    "named pipe chip": (lambda c: (c / "images" / "r00_c00.tif").unlink() or os.mkfifo(c / "images" / "r00_c00.tif"),
                        "images/r00_c00.tif: not a regular file (a named pipe, socket or device) in"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_received_chip_folder_that_contradicts_itself_is_one_error(made: Path, tmp_path: Path, case: str) -> None:
    chips = _copy(made, tmp_path)
    shutil.copy(made / "images" / "r00_c00.tif", tmp_path / "out.tif")
    edit, said = CASES[case]
    edit(chips)
    with pytest.raises(InputError) as caught:
        _read_all(chips)
    assert said in str(caught.value)


def test_an_untouched_folder_reads_and_a_bad_label_chip_is_one_line_mid_training(made: Path, tmp_path: Path,
                                                                                  capsys) -> None:
    chips = _copy(made, tmp_path)
    _read_all(chips)
    _rewrite_chip(chips / "labels" / "r00_c32.tif", lambda a: (a * 0 + 200, {}))  # its class_hist still says 0..5
    args = ["train", "--set", f"data.root={chips}", "--set", "data.batch_size=2", "--set", "train.epochs=1",
            "--set", "model.name=fcn_baseline", "--set", "model.kwargs.width=4", "--set", "tensorboard=false",
            "--set", f"out={tmp_path / 'run'}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rsmamba: error:") and "chip r00_c32 holds label values 200" in err[-1], err
    assert not any("Traceback" in line for line in err)


def test_a_named_pipe_in_a_benchmark_layout_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    root = write_layout("vaihingen", tmp_path / "v", size=32)
    tile = root / "top" / "top_mosaic_09cm_area1.tif"
    tile.unlink()
    os.mkfifo(tile)  # GDAL's open of it waited for a writer for ever (train --dry-run too)
    with pytest.raises(InputError, match=f"{tile}: not a regular file .* in the vaihingen layout"):
        isprs_pairs(root, "vaihingen")


def test_a_landsat_scd_split_list_names_files_within_the_dataset_in_utf8(tmp_path: Path) -> None:
    root = write_layout("landsat-scd", tmp_path / "ls", size=32)
    listed = root / "list" / "train.txt"
    names = listed.read_bytes()
    (tmp_path / "outside").mkdir()
    for sub in ("A", "B", "labelA", "labelB"):  # a real sample outside: the list read it, without a word
        shutil.copy(root / sub / names.split()[0].decode(), tmp_path / "outside" / f"{sub}.png")
    for line in (b"../../outside/A.png", str(tmp_path / "outside" / "A.png").encode()):
        listed.write_bytes(names + line + b"\n")
        with pytest.raises(InputError, match=f"{listed}: '.*A.png' leads outside {root}"):
            LandsatSCDDataset(root, "train")
    listed.write_bytes(names + b"caf\xe9.png\n")
    with pytest.raises(InputError, match=f"{listed}: not UTF-8 text"):
        LandsatSCDDataset(root, "train")


def test_chips_linked_from_shared_storage_are_read(made: Path, tmp_path: Path) -> None:
    """A folder whose images/ is a link to another disk is the user's own arrangement, not a received trick: read
    as it was (only names with '..' or absolute names, which tile never writes, are refused)."""
    chips = _copy(made, tmp_path)
    shared = tmp_path / "shared"
    shutil.move(chips / "images", shared)
    os.symlink(shared, chips / "images")
    ds = ChipDataset(chips, "train")
    assert len(ds) and ds[0]["image"].shape[0] == 3
