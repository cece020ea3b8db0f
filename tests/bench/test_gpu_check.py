"""bench/gpu.sh on a machine without a GPU: it says so, installs nothing, writes nothing, exits 0;
and bench/gpu.py's own code runs end to end on CPU (its smoke mode), writing the documented keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "gpu.json"


def _load_gpu_bench():
    return load_script("bench/gpu.py", "bench_gpu")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_sh_without_gpu_says_so_and_exits_0(tmp_path):
    before = RESULTS.read_bytes()
    fake_bin = tmp_path / "bin"  # a pip that records being called: the no-GPU path must not install
    fake_bin.mkdir()
    marker = tmp_path / "pip-called"
    fake_py = fake_bin / "python"
    fake_py.write_text(
        f"#!/usr/bin/env bash\nif [ \"$1\" = -m ] && [ \"$2\" = pip ]; then touch {marker}; fi\n"
        f"exec {sys.executable} \"$@\"\n"
    )
    fake_py.chmod(0o755)
    env = {**os.environ, "RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU": "1", "PYTHON": str(fake_py)}
    out = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "no GPU" in out.stdout and "nothing measured" in out.stdout
    assert not marker.exists()
    assert RESULTS.read_bytes() == before


def test_gpu_py_without_gpu_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU", "1")
    out = tmp_path / "gpu.json"
    assert _load_gpu_bench().main(["--out", str(out)]) == 0
    assert "no GPU" in capsys.readouterr().out
    assert not out.exists()


def test_committed_results_are_measured_or_say_not_measured():
    data = json.loads(RESULTS.read_text())
    assert data["schema"] == 1
    if data["status"] == "not measured":
        assert data["scan"] == [] and data["predict"] == [] and data["environment"] is None
    else:
        assert data["status"] == "measured" and data["environment"]["gpu"]
        assert all("seconds" in r or "error" in r for r in data["scan"])


def test_gpu_py_smoke_on_cpu_writes_the_documented_keys(tmp_path, monkeypatch):
    gpu = _load_gpu_bench()
    # the Triton kernels are checked in test_scan_triton.py; in the interpreter they would take most of a minute here
    runs_here = gpu._runs_here
    monkeypatch.setattr(gpu, "_runs_here", lambda backend, u: backend != "triton" and runs_here(backend, u))
    out = tmp_path / "smoke.json"
    args = ["--device", "cpu", "--out", str(out), "--lengths", "24", "--channels", "4", "--reps", "1",
            "--skip-predict"]
    assert gpu.main(args) == 0
    data = json.loads(out.read_text())
    assert data["status"] == "cpu-smoke" and data["schema"] == 1
    backends = {r["backend"] for r in data["scan"]}
    assert "chunked" in backends
    for row in data["scan"]:
        assert set(row) >= {"L", "batch", "channels", "d_state", "backend", "mode", "block_d"}
        assert "seconds" in row, row.get("error")
        if row["mode"] == "fwd":
            assert row["max_rel_err"] < 1e-4 and row["err_against"] == "reference"
    readme = (ROOT / "bench" / "README.md").read_text()
    for key in ("schema", "status", "environment", "tests", "scan", "scan_summary", "predict", "seconds_total"):
        assert f"`{key}`" in readme
    with pytest.raises(SystemExit):  # a CPU smoke run never overwrites the results file
        gpu.main(["--device", "cpu"])
