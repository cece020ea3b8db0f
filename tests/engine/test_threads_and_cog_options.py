"""The OpenMP wait policy of inference processes, and the COG creation options (rsmamba.engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
            f"rc = main(['predict', 'examples/scene/ortho.tif', '-o', {str(tmp_path / 'c.tif')!r}, '--dry-run'])\n"
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
