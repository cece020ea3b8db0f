"""One model of several scenes: ``data.root`` a list of chip folders, each scene tiled on its own, trains on the
union of their splits, validates on the union of their val splits, and everything that reads ``data.root``
(--resume's fingerprint, --dry-run, --test, the checkpoint's normalisation) reads the union."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from rsmamba.checkpoint import load_checkpoint
from rsmamba.cli import main
from rsmamba.datasets.chips import read_tiling
from rsmamba.datasets.folders import pooled_tiling
from rsmamba.synth import write_scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Path, list[str]]:
    """Two synthetic scenes (``rsmamba synth --seed 1`` and ``--seed 2``), each tiled into its own chip folder."""
    root = tmp_path_factory.mktemp("scenes")
    folders = []
    for seed in (1, 2):
        scene = write_scene(root / f"scene{seed}", size=256, seed=seed)
        folders.append(str(root / f"chips{seed}"))
        assert main(["tile", str(scene["ortho_t1"]), "--dsm", str(scene["dsm_t1"]), "--labels",
                     str(scene["labels_t1"]), "--size", "64", "--split-block", "64", "--split", "0.75,0.25,0",
                     "--seed", str(seed), "-o", folders[-1]]) == 0
    return root, folders


def _args(folders: list[str], out: Path, *more: str) -> list[str]:
    return ["train", "--set", f"data.root=[{', '.join(folders)}]", "--set", "data.batch_size=4", "--set",
            "optim.lr=0.02", "--set", "model.kwargs.width=8", "--set", "tensorboard=false", "--set",
            f"out={out}", *more]


def _val_counts(folders: list[str]) -> Counter:
    counts: Counter = Counter()
    for folder in folders:
        for row in csv.DictReader(open(Path(folder) / "manifest.csv")):
            if row["split"] == "val":
                counts.update({int(k): v for k, v in json.loads(row["class_hist"]).items() if int(k) != 255})
    return counts


def test_two_scenes_train_one_model_that_learns(scenes, capsys) -> None:
    root, folders = scenes
    assert main(_args(folders, root / "run", "--set", "train.epochs=6")) == 0
    best = load_checkpoint(root / "run" / "best.pt")
    # Trivial baseline: the majority class of the union of the val chips everywhere.
    counts = _val_counts(folders)
    trivial = max(counts.values()) / sum(counts.values()) / len(counts)
    assert best["metrics"]["val_miou"] > max(0.2, 2.5 * trivial)
    # the normalisation predict will use is the folders' pooled one, recorded as for one folder
    pooled = pooled_tiling([read_tiling(f) for f in folders])
    assert best["normalization"]["image"]["mean"] == pytest.approx(pooled.image_mean)
    assert best["normalization"]["dsm"] == {"mode": "zscore", "mean": pytest.approx(pooled.dsm_mean),
                                            "std": pytest.approx(pooled.dsm_std)}
    assert best["normalization"]["image"]["dtype"] == "uint8" and best["inference"]["window"] == 64
    assert best["config"]["data"]["root"] == folders
    capsys.readouterr()

    # --dry-run counts the union's chips; --test scores the union of the val splits with the checkpoint
    train_chips = sum(json.loads((Path(f) / "tiling.json").read_text())["splits"]["train"] for f in folders)
    assert main(_args(folders, root / "plan", "--dry-run")) == 0
    planned = capsys.readouterr().out
    assert f"training samples {train_chips} (" in planned and "validation samples 8" in planned
    assert main(_args(folders, root / "run", "--test", str(root / "run" / "best.pt"))) == 0
    scored = json.loads((root / "run" / "test_val.json").read_text())
    assert scored["root"] == folders and scored["samples"] == 8
    assert scored["scores"]["miou"] == pytest.approx(best["metrics"]["val_miou"])


def test_resume_takes_the_same_folders_in_any_order_and_refuses_others(scenes, capsys) -> None:
    root, folders = scenes
    out = root / "resumed"
    assert main(_args(folders, out, "--set", "train.epochs=1", "--set", "model.kwargs.width=4")) == 0
    again = _args(folders[::-1], out, "--set", "train.epochs=2", "--set", "model.kwargs.width=4", "--resume")
    assert main(again) == 0
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 2
    capsys.readouterr()
    one = _args(folders[:1], out, "--set", "train.epochs=3", "--set", "model.kwargs.width=4", "--resume")
    assert main(one) == 2
    err = capsys.readouterr().err
    assert "--resume continues that run on the chips it trained on" in err and "of 2 folders" in err


def test_a_list_of_paths_is_checked_as_paths(scenes, capsys) -> None:
    root, folders = scenes
    assert main(_args([folders[0], "2024"], root / "x")) == 2  # YAML reads 2024 as a number: quote it
    assert "data.root: expected a path (quote one YAML reads otherwise: '2024'), or a list" in capsys.readouterr().err
    assert main(_args([folders[0], folders[0] + "/"], root / "x")) == 2  # said before --resume compares the data
    assert "data.root lists " in capsys.readouterr().err
    assert main(["train", "--set", f"data.root=[{folders[0]}, {folders[1]}]", "--set", "data.layout=loveda",
                 "--set", f"out={root / 'y'}"]) == 2
    assert "several folders are chip folders" in capsys.readouterr().err


def test_one_scene_trains_and_another_is_held_out_to_validate_or_test(scenes, capsys) -> None:
    """Scene-level hold-out, the main reason to list folders: a folder tiled --split 0,1,0 (or 0,0,1) was refused
    with 'no chips in split train'. It adds none to training, and validation (train --test) scores its chips."""
    root, folders = scenes
    scene = write_scene(root / "held", size=128, seed=3)
    held = {}
    for split, name in (("0,1,0", "val"), ("0,0,1", "test")):
        held[name] = str(root / f"held_{name}")
        assert main(["tile", str(scene["ortho_t1"]), "--dsm", str(scene["dsm_t1"]), "--labels",
                     str(scene["labels_t1"]), "--size", "64", "--split", split, "-o", held[name]]) == 0
    capsys.readouterr()
    out = root / "held_run"
    assert main(_args([folders[0], held["val"]], out, "--set", "train.epochs=1", "--set", "model.kwargs.width=4",
                      "--set", "model.name=fcn_baseline")) == 0
    assert f"{held['val']}: no chips in split 'train': training reads the other folders' chips" in \
        capsys.readouterr().err
    best = load_checkpoint(out / "best.pt")
    assert best["normalization"]["image"]["mean"] == pytest.approx(read_tiling(folders[0]).image_mean)
    assert main(_args([folders[0], held["test"]], out, "--set", "data.val_split=test", "--set",
                      "model.name=fcn_baseline", "--set", "model.kwargs.width=4", "--test", str(out / "best.pt"))) == 0
    assert json.loads((out / "test_test.json").read_text())["samples"] == 4
