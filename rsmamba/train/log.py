"""What a training run records per epoch: ``metrics.csv`` and ``metrics.jsonl`` in the run folder,
TensorBoard scalars when it is installed. Only the main process writes (DDP)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

__all__ = ["EpochLog"]


class EpochLog:
    """Per-epoch metrics to ``metrics.csv`` / ``metrics.jsonl`` and TensorBoard when installed."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, resume_epoch: int):
        self.out_dir, self.enabled = out_dir, enabled
        self.tb = None
        if enabled and resume_epoch == 0:
            for name in ("metrics.csv", "metrics.jsonl"):
                (out_dir / name).unlink(missing_ok=True)
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"))
            except Exception:  # tensorboard is optional
                self.tb = None

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        flat = {k: v for k, v in row.items() if not isinstance(v, dict)}
        with open(self.out_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        path = self.out_dir / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(flat))
            if new:
                writer.writeheader()
            writer.writerow(flat)
        if self.tb is not None:
            for k, v in flat.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self.tb.add_scalar(k, v, row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
