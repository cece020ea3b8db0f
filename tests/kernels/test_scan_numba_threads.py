"""The numba scan called from several Python threads at once (a dask worker with threads, a thread pool).

numba's workqueue layer, which the scan starts for speed, aborts the whole process (SIGABRT, no exception) when
two threads enter it at once; the calls are serialised. Runs in a subprocess: the layer is chosen once per
process, and an abort must fail this test, not end the test run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import threading
import numba
import torch
from rsmamba.kernels import scan_numba

print("config after import", numba.config.THREADING_LAYER)
g = torch.Generator().manual_seed(0)
b, d, n, length = 1, 64, 16, 1024  # b*d*L*N = 1 Mi: the parallel path (SERIAL_BELOW)
args = [torch.randn(b, d, length, generator=g), torch.rand(b, d, length, generator=g) * 0.1,
        -torch.rand(d, n, generator=g), torch.randn(b, 1, n, length, generator=g),
        torch.randn(b, 1, n, length, generator=g)]
serial = scan_numba.scan_numba(*args)
print("config after a scan", numba.config.THREADING_LAYER, "| started", numba.threading_layer())
got = []
start = threading.Barrier(4)

def run():
    start.wait()
    for _ in range(20):
        y, last = scan_numba.scan_numba(*args)
        got.append(torch.equal(y, serial[0]) and torch.equal(last, serial[1]))

threads = [threading.Thread(target=run) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("same", sum(got), "of", len(got))
"""


@pytest.fixture(scope="module")
def four_threads() -> subprocess.CompletedProcess:
    pytest.importorskip("numba")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)


def test_scan_from_four_threads_at_once_completes_and_matches_a_serial_run(four_threads) -> None:
    assert four_threads.returncode == 0, four_threads.stderr[-3000:]  # was -6: "workqueue ... Concurrent access"
    assert "same 80 of 80" in four_threads.stdout


def test_the_callers_numba_config_is_left_as_it_was(four_threads) -> None:
    """The scan starts numba's threads on the workqueue layer (the process's one layer from then on), but
    ``numba.config`` reads as the caller left it: importing rsmamba set it to workqueue for good."""
    assert "config after import default\n" in four_threads.stdout
    assert "config after a scan default | started workqueue\n" in four_threads.stdout


def test_a_threading_layer_numba_cannot_start_is_one_line() -> None:
    """NUMBA_THREADING_LAYER=bogus (or tbb without its library) was numba's ValueError traceback, exit 1."""
    pytest.importorskip("numba")
    script = ("import torch\nfrom rsmamba.kernels import scan_numba\nfrom rsmamba.kernels.selective_scan import "
              "ScanBackendError\ntry:\n    scan_numba.threading_layer()\nexcept ScanBackendError as exc:\n"
              "    print('refused:', exc)\n")
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, "NUMBA_THREADING_LAYER": "bogus"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("refused: NUMBA_THREADING_LAYER=bogus: numba cannot start that threading layer")
