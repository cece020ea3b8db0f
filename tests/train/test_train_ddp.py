"""DDP with 2 gloo processes on CPU equals single-process training on the same global batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rsmamba.checkpoint import load_checkpoint
from tests.helpers.scenes import write_chips


def _config(chips: Path, out: Path) -> dict:
    # GroupNorm: a sample's output does not depend on its batch-mates (BatchNorm would need SyncBN).
    return {"data": {"root": str(chips), "batch_size": 4}, "out": str(out), "optim": {"name": "sgd", "lr": 0.05},
            "model": {"name": "fcn_baseline", "kwargs": {"width": 8, "norm": "group"}},
            "augment": {"photometric": 0.1}, "train": {"epochs": 2}, "tensorboard": False}


def _worker(rank: int, world: int, port: int, chips: str, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    from rsmamba.train import train

    train(_config(Path(chips), Path(out)), progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_ddp_two_processes_equals_single_process(tmp_path: Path) -> None:
    chips = write_chips(tmp_path, size=64, chip=16, split=(0.75, 0.25, 0.0))
    from rsmamba.train import train

    single = train(_config(chips, tmp_path / "single"), progress=False)
    mp.spawn(_worker, args=(2, _free_port(), str(chips), str(tmp_path / "ddp")), nprocs=2, join=True)
    a = load_checkpoint(single.last)
    b = load_checkpoint(tmp_path / "ddp" / "last.pt")
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    ha, hb = a["train_state"]["history"], b["train_state"]["history"]
    for ra, rb in zip(ha, hb):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-4)
        assert rb["val_miou"] == pytest.approx(ra["val_miou"], abs=1e-6)
