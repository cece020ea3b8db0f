"""The OpenMP wait policy of inference processes, and the COG creation options (rsmamba.engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rsmamba.engine.writer import DEFLATE_LEVEL, creation_options

PROBE = """
import json, os, sys
{before}
from rsmamba.engine.options import passive_openmp_waits
first = passive_openmp_waits()
import torch
print(json.dumps({{"first": first, "again": passive_openmp_waits(), "policy": os.environ.get("OMP_WAIT_POLICY")}}))
"""


def _probe(before: str = "", **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], env=environ, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_passive_waits_only_before_torch_loads_and_never_over_the_user():
    assert _probe() == {"first": True, "again": False, "policy": "PASSIVE"}  # set before torch; no-op after
    assert _probe("import torch") == {"first": False, "again": False, "policy": None}  # too late: untouched
    assert _probe(OMP_WAIT_POLICY="ACTIVE") == {"first": False, "again": False, "policy": "ACTIVE"}


def test_predict_command_sets_the_policy_before_torch_loads(tmp_path):
    """``rsmamba predict`` (a fresh process, as users run it) loads torch under the passive policy."""
    code = ("import sys, os\nfrom rsmamba.cli import main\n"
            f"rc = main(['predict', 'examples/scene/ortho.tif', '-o', {str(tmp_path / 'c.tif')!r}, '--dry-run', "
            "'--no-tta', '--batch-size', '1'])\n"
            "import torch\nprint('RESULT', rc, os.environ.get('OMP_WAIT_POLICY'))\n")
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=environ, check=True, capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.strip().splitlines()[-1] == "RESULT 0 PASSIVE"


def test_cog_options_default_and_user_override():
    opts = creation_options("deflate")
    assert opts["LEVEL"] == DEFLATE_LEVEL == 5 and opts["PREDICTOR"] == "NO"
    assert "LEVEL" not in creation_options("zstd") and creation_options("zstd")["PREDICTOR"] == "NO"
    assert creation_options("deflate", {"level": "9", "PREDICTOR": "YES"})["LEVEL"] == "9"
    assert creation_options("deflate", {"PREDICTOR": "YES"})["PREDICTOR"] == "YES"


HEAP_PROBE = """
import json, sys
{setup}
import numpy as np

def rss():
    return [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')][0] / 1024

kept = {{}}
for mib in (6, 64):  # below and above the pipeline's 8 MiB mmap threshold
    a = np.ones(mib * 2**20 // 8)
    before_free = rss()
    del a
    kept[mib] = mib - (before_free - rss())  # MiB of the freed buffer still resident
print('RESULT', json.dumps({{"took": took, "kept_small": kept[6], "kept_big": kept[64]}}))
"""


def _heap_probe(setup: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", HEAP_PROBE.format(setup=setup)], env=environ, check=True,
                         capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))))
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and /proc: Linux only")
def test_pipeline_keeps_the_freed_heap_and_unmaps_big_buffers_unless_the_user_tunes_malloc(tmp_path):
    """Freed heap stays for the next batch (no trim and fault-in per forward pass); buffers above
    8 MiB still go back to the system (flat peak memory); a user's MALLOC_* setting wins."""
    limit = "from rsmamba.engine.pipeline import limit_heap_growth\ntook = limit_heap_growth()"
    default = _heap_probe("took = None")
    assert default["kept_small"] < 1 and default["kept_big"] < 1  # glibc's defaults: both given back
    mine = _heap_probe(limit)
    assert mine["took"] is True and mine["kept_small"] > 4 and mine["kept_big"] < 1
    user = _heap_probe(limit, MALLOC_TRIM_THRESHOLD_="131072")
    assert user["took"] is True and user["kept_small"] < 1  # the user's trim threshold, ours for the rest
    cli = _heap_probe("from rsmamba.cli import main\n"
                      f"took = main(['predict', 'examples/scene/ortho.tif', '-o', {str(tmp_path / 'c.tif')!r}, "
                      "'--dry-run', '--no-tta', '--batch-size', '1']) == 0")  # a dry run times a batch: one pass
    assert cli["took"] is True and cli["kept_small"] > 4  # as 'rsmamba predict' runs (its freed heap may
    # hold 64 MiB by now, which glibc reuses before mapping anew: kept_big depends on the run)
