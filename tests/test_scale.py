"""Many scenes: in-process and Dask LocalCluster (2 worker processes) give byte-identical rasters."""

from __future__ import annotations

import hashlib

import pytest
import torch

from rsmamba.checkpoint import save_checkpoint
from rsmamba.classes import ISPRS_CLASSES
from rsmamba.cli import main
from rsmamba.models import create_model
from rsmamba.scale import predict_many
from rsmamba.synth import write_scene


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    images = []
    for seed in range(4):
        paths = write_scene(root / f"s{seed}", size=96, seed=seed, gsd=0.5)
        target = root / f"scene{seed}.tif"
        paths["ortho_t1"].rename(target)
        paths["dsm_t1"].rename(root / f"scene{seed}_dsm.tif")
        images.append(target)
    torch.manual_seed(0)
    model = create_model("fcn_baseline", in_chans=4, num_classes=6, width=8)
    ckpt = save_checkpoint(root / "model.pt", {
        "model": "fcn_baseline", "model_kwargs": {"in_chans": 4, "num_classes": 6, "width": 8},
        "state_dict": model.state_dict(), "bands": {"image": [1, 2, 3], "dsm": True},
        "normalization": {"image": {"mean": [120.0] * 3, "std": [50.0] * 3}, "dsm": {"mode": "minmax-window"}},
        "classes": [c.to_dict() for c in ISPRS_CLASSES],
    })
    return root, images, ckpt


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tif"))}


def test_local_cluster_equals_single_process(scenes, tmp_path) -> None:
    root, images, ckpt = scenes
    common = {"model": str(ckpt), "dsm_template": "{dir}/{stem}_dsm.tif", "window": 64, "overlap": 16,
              "progress": False}
    single = predict_many([str(root / "scene?.tif")], tmp_path / "single", **common)
    assert [r.status for r in single] == ["done"] * 4
    cluster = predict_many([str(p) for p in images], tmp_path / "cluster", scheduler="local", workers=2, **common)
    assert sorted(r.status for r in cluster) == ["done"] * 4
    assert _digests(tmp_path / "single") == _digests(tmp_path / "cluster")
    assert len(_digests(tmp_path / "single")) == 4
    again = predict_many([str(p) for p in images], tmp_path / "single", **common)
    assert [r.status for r in again] == ["skipped"] * 4


def test_cli_many_inputs_with_shards(scenes, tmp_path) -> None:
    root, images, ckpt = scenes
    out = tmp_path / "out"
    for i in range(2):
        code = main(["predict", str(root / "scene?.tif"), "-o", str(out), "--model", str(ckpt),
                     "--dsm", "{dir}/{stem}_dsm.tif", "--window", "64", "--overlap", "16", "--shard", f"{i}/2"])
        assert code == 0
        assert len(list(out.glob("*.tif"))) == 2 * (i + 1)
