"""Shared benchmark helpers: peak RSS of a child process, tables, JSON results."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def run_measured(code: str) -> tuple[float, float]:
    """Run ``code`` in a fresh Python; return (wall seconds, peak RSS in MiB) of that child alone.

    Peak RSS is VmHWM of the child's own address space: ``ru_maxrss`` would also count the
    parent's RSS at fork time on Linux, which inflates it.
    """
    wrapper = (
        "import resource, sys, time, json\n"
        "t0 = time.perf_counter()\n"
        f"exec(compile({code!r}, '<bench>', 'exec'))\n"
        "dt = time.perf_counter() - t0\n"
        "rss = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024\n"
        "print('BENCH', json.dumps([dt, rss]))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper], check=True, capture_output=True, text=True)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")][-1]
    dt, rss = json.loads(line[6:])
    return dt, rss


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def result_path(name: str, quick: bool = False) -> Path:
    """``results/NAME.json``; a ``--quick`` run writes ``NAME-quick.json`` and never replaces the full results."""
    return RESULTS / f"{name}{'-quick' if quick else ''}.json"


def write_result(name: str, data: dict, *, quick: bool = False) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = result_path(name, quick)
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2))
    return path


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return "" if v is None else str(v)


