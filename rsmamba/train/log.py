"""What a training run records per epoch: ``metrics.csv`` and ``metrics.jsonl`` in the run folder,
TensorBoard scalars when it is installed. Only the main process writes (DDP).

The files are written whole from the epochs the run's checkpoint covers (``history``) each epoch, and
published with the checkpoints: a run killed between logging an epoch and saving it, then resumed,
logged that epoch twice; an ``--overwrite`` run deleted the previous run's logs before its first epoch.
TensorBoard follows the same rule (:class:`EpochLog`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

__all__ = ["EpochLog", "summary_writer"]


def summary_writer(logdir: Path, purge_step: int | None) -> Any:
    """A TensorBoard writer, or None without tensorboard (optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(str(logdir), purge_step=purge_step)


class EpochLog:
    """The per-epoch rows of a run (from ``history`` on): files on :meth:`write`, TensorBoard on :meth:`published`.

    TensorBoard gets an epoch once it is published, so its points are the checkpoints' epochs:
    a resumed run purges what a killed one logged past its last published epoch (``purge_step``),
    and a new run in an old run's folder (``--overwrite``) removes the old run's event files once it
    holds the folder, as it removes its other files.
    """

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, history: list[dict[str, Any]]):
        self.out_dir, self.enabled = out_dir, enabled
        self.rows: list[dict[str, Any]] = list(history)
        self.tensorboard = enabled and tensorboard
        self.tb: Any = None

    def add(self, row: dict[str, Any]) -> None:
        """The epoch's row, for :meth:`write` (published with its checkpoints)."""
        self.rows.append(row)

    def published(self, row: dict[str, Any], *, new_run: bool) -> None:
        """The epoch of ``row`` is on disk: TensorBoard gets it. ``new_run``: the first epoch of a run
        that did not resume, which now holds the folder; an earlier run's event files go."""
        if not self.tensorboard:
            return
        if self.tb is None:
            logdir = self.out_dir / "tensorboard"
            if new_run and logdir.is_dir():
                for old in logdir.glob("events.out.tfevents.*"):
                    old.unlink(missing_ok=True)
            self.tb = summary_writer(logdir, None if new_run else int(row["epoch"]))
            if self.tb is None:
                self.tensorboard = False
                return
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
