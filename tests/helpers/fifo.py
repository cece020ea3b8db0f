"""Library calls given a named pipe, in a subprocess: GDAL's open of a FIFO waits for a writer for ever (and
swallows SIGTERM), so a call that opens one ends at the timeout instead of hanging the test run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.rasters import ROOT

SCRIPT = r"""
import sys
from rsmamba.errors import InputError
for call in sys.argv[1:]:
    try:
        exec(call)
        print("no error")
    except InputError as exc:
        print("InputError:", exc)
"""


def library_refusals(calls: list[str], cwd: Path) -> list[str]:
    """The InputError line of each Python statement in ``calls`` (run one after another, in ``cwd``)."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *calls], cwd=cwd, capture_output=True, text=True,
                          timeout=90, env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()
