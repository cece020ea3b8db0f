"""Module-level job functions for the batch/distributed tests (workers import them by name)."""

from __future__ import annotations

import os
from pathlib import Path

from rsmamba.atomic import atomic_output


def copy_job(src: Path, out: Path, *, tag: str = "", overwrite: bool = False) -> None:
    with atomic_output(out) as tmp:
        tmp.write_text(Path(src).read_text() + tag)


def guarded_copy_job(src: Path, out: Path, *, tag: str = "", overwrite: bool = False) -> None:
    """As predict and change do: an existing output is refused unless ``overwrite``; an input whose text starts
    with 'unreadable' is refused (a damaged raster)."""
    from rsmamba.errors import InputError

    if Path(src).read_text().startswith("unreadable"):
        raise InputError(f"{src}: unreadable")
    if Path(out).exists() and not overwrite:
        raise InputError(f"{out}: exists; --overwrite replaces it")
    copy_job(src, out, tag=tag)


def failing_job(src: Path, out: Path) -> None:
    """Fails on an input named ``bad*``, or any input in a folder named ``bad``."""
    if "bad" in Path(src).name or Path(src).parent.name == "bad":
        raise ValueError("cannot read this one")
    copy_job(src, out)


def dying_job(src: Path, out: Path, *, marker_dir: str) -> None:
    """Kills its worker process the first time it runs for an input (a crashed node mid-run)."""
    marker = Path(marker_dir) / f"{Path(src).name}.started"
    if not marker.exists():
        marker.write_text("x")
        with atomic_output(out) as tmp:
            tmp.write_text("partial")
            os._exit(1)
    copy_job(src, out)


def worker_settings_job(src: Path, out: Path, *, device: str = "cpu") -> None:
    """Writes what a job sees on its worker: torch threads, the malloc trim variable, the device."""
    import json

    import torch

    from rsmamba.jobs import setup_worker

    kwargs = setup_worker({"device": device})
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps({"threads": torch.get_num_threads(), "device": kwargs["device"],
                                   "malloc_trim": os.environ.get("MALLOC_TRIM_THRESHOLD_")}))


def refusing_job(src: Path, out: Path, *, marker_dir: str) -> None:
    """Refuses its input as a user's mistake (exit 2), counting its calls in ``marker_dir``."""
    from rsmamba.errors import InputError

    calls = Path(marker_dir) / f"{Path(src).name}.calls"
    calls.write_text(str(int(calls.read_text()) + 1 if calls.exists() else 1))
    raise InputError(f"{Path(src).name}: refused")


def full_disk_job(src: Path, out: Path, *, marker_dir: str) -> None:
    """Fails as a full disk does inside a publication (an OutputError, exit 2), counting its calls."""
    from rsmamba.atomic import OutputError

    calls = Path(marker_dir) / f"{Path(src).name}.calls"
    calls.write_text(str(int(calls.read_text()) + 1 if calls.exists() else 1))
    raise OutputError(f"{out}: no space left on device while writing")


def waiting_job(src: Path, out: Path, *, tag: str = "", gate: str = "") -> None:
    """Says it started (``gate.started``), then waits for the file ``gate``: a run still writing its folder."""
    import time

    Path(f"{gate}.started").write_text("x")
    for _ in range(600):
        if Path(gate).exists():
            break
        time.sleep(0.1)
    copy_job(src, out, tag=tag)


def stopping_job(src: Path, out: Path, *, marker_dir: str) -> None:
    """A ``bad`` input fails once the others run; they finish a moment after it (running as the run stops)."""
    import time

    marks = Path(marker_dir)
    (marks / f"{Path(src).name}.started").write_text("x")
    if "bad" in Path(src).name:
        for _ in range(200):  # the other scene on the second thread has started
            if len(list(marks.glob("*.started"))) > 1:
                break
            time.sleep(0.05)
        (marks / "failing").write_text("x")
        raise ValueError("cannot read this one")
    for _ in range(200):
        if (marks / "failing").exists():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    copy_job(src, out)


def interrupting_job(src: Path, out: Path, *, tag: str = "", overwrite: bool = False) -> None:
    """Copies as :func:`copy_job`, and is interrupted (Ctrl-C) at an input named ``*_1*``: the run stops there."""
    if "_1" in Path(src).name:
        raise KeyboardInterrupt
    copy_job(src, out, tag=tag)


def warning_job(src: Path, out: Path) -> None:
    """Warns about its input, with the stderr handler a worker's job attaches (``setup_worker``), then copies it."""
    import logging

    from rsmamba.runlog import attach_stderr_handler

    attach_stderr_handler(logging.INFO)
    logging.getLogger("rsmamba.test").warning("%s: DSM resampled onto the image grid", src)
    logging.getLogger("rsmamba.test").warning("a warning naming no input")
    copy_job(src, out)


def unshared_job(src: Path, out: Path) -> None:
    """A worker that does not share the caller's storage: it writes ``*written*`` inputs' outputs onto a disk of its
    own (none here), and does not find the others."""
    if "written" in Path(src).name:
        return
    raise FileNotFoundError(2, "No such file or directory", str(src))


def scheduler_killing_job(src: Path, out: Path, *, scheduler_pid: int) -> None:
    """Finishes its scene, then kills the scheduler before its result reaches the caller ('*kill*' inputs); the others
    wait for a scheduler gone."""
    import signal
    import time

    if "kill" in Path(src).name:
        copy_job(src, out)
        os.kill(scheduler_pid, signal.SIGKILL)
        time.sleep(0.5)
    else:
        time.sleep(2)
