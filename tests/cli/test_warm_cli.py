"""The warm-fork runner of the bad-input matrix (tests/helpers/warm_cli.py) ends a command line as the
installed console script does: same exit code, stdout and stderr, in the working folder it is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.warm_cli import WarmCLI

SCRIPT = Path(sys.executable).parent / "rsmamba"


def test_warm_runs_match_the_console_script(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "text.tif").write_text("not a raster\n")  # found only from the right folder
    io = tmp_path / "io"
    io.mkdir()
    cases = [["--version"], ["predict", "missing.tif", "-o", "c.tif"],
             ["predict", "text.tif", "-o", "c.tif"], ["models", "--bogus"]]
    warm = WarmCLI(env)
    try:
        for argv in cases:
            fresh = subprocess.run([str(SCRIPT), *argv], cwd=tmp_path / "here", env=env, capture_output=True,
                                   text=True, stdin=subprocess.DEVNULL, timeout=120)
            assert warm.run(argv, cwd=tmp_path / "here", env=env, io_dir=io) == (
                fresh.returncode, fresh.stdout, fresh.stderr), argv
    finally:
        warm.close()
    assert list(io.iterdir()) == []
