"""What a training run records per epoch: ``metrics.csv`` and ``metrics.jsonl`` in the run folder,
TensorBoard scalars when it is installed. Only the main process writes (DDP).

The files are written whole from the epochs the run's checkpoint covers (``history``) each epoch, and
published with the checkpoints: a run killed between logging an epoch and saving it, then resumed,
logged that epoch twice; an ``--overwrite`` run deleted the previous run's logs before its first epoch.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

__all__ = ["EpochLog"]


class EpochLog:
    """The per-epoch rows of a run (from ``history`` on): files on :meth:`write`, TensorBoard on :meth:`add`."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, history: list[dict[str, Any]]):
        self.out_dir, self.enabled = out_dir, enabled
        self.rows: list[dict[str, Any]] = list(history)
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tensorboard"))
            except Exception:  # tensorboard is optional
                self.tb = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.enabled and self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
                    self.tb.add_scalar(k, v, row["epoch"])
            self.tb.flush()

    def write(self, csv_path: Path, jsonl_path: Path) -> None:
        """Both files, whole (the caller publishes them with the epoch's checkpoints)."""
        jsonl_path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        flat = [{k: v for k, v in row.items() if not isinstance(v, dict)} for row in self.rows]
        fields = list(dict.fromkeys(k for row in flat for k in row))  # every epoch's columns, in first-seen order
        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(flat)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
