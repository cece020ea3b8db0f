"""The suite mirrors the package (``tests/predict`` tests ``rsmamba.predict``, ...); shared helpers and
synthetic-data writers are ``tests.helpers.*``, test data made by scripts is in ``tests/data``."""

from __future__ import annotations

# Triton kernels run on CPU tensors in Triton's interpreter; it must be switched on before any
# kernel is decorated (import time). Only where there is no GPU: there the kernels are compiled.
# Nothing else in the suite uses triton, so this changes no other test.
import os  # noqa: E402

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


# -- Parallel runs (``make test``: pytest-xdist, ``-n auto --dist loadfile``) -----------------------------------
# Each test file runs on one worker, so that its module fixtures are made once (the bad-input matrix builds
# checkpoints and runs 270 subprocesses). The files with the longest tests go first: started last, one would
# leave the other workers idle. (Not --dist loadgroup: with pytest 9 it no longer groups, xdist 3.8.)
LONGEST_FIRST = (
    "tests/test_docs.py::test_documented_commands_run[README.md]",  # about 200 s on 2 cores
    "tests/cli/test_cli_bad_inputs.py",  # about 300 s
)
MAX_WORKERS = 4  # each worker holds up to about 2 GB; more than 4 gain little on the suite's long files


def _share_cores_between_workers() -> None:
    """Each xdist worker (and the CLI processes its tests start) computes on its share of the cores.

    Why: every worker's torch, numba and OpenMP took all the cores, so two workers ran four spinning threads
    on two cores; a parallel region then waits for a thread the other worker has descheduled. A tiny
    MAFMamba recipe's two training steps and validation took 162 s that way and 3.6 s at one thread each
    (same machine, same load); the suite of a fresh clone on 2 cores took 818 s before, 407 s after. Variables the user set
    are kept; results do not depend on the count (tests that compare runs compare runs at one count)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if workers <= 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // workers)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(name, str(share))  # read by the subprocesses, and by numba when it loads
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # this process: torch has already loaded


_share_cores_between_workers()


def pytest_xdist_auto_num_workers(config) -> int:  # noqa: ANN001 (pytest's hook signature)
    """``-n auto``: one worker per core, at most ``MAX_WORKERS``."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001
    """Under xdist (its workers collect): the files of ``LONGEST_FIRST`` first, in that order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item) -> int:  # noqa: ANN001
        for i, prefix in enumerate(LONGEST_FIRST):
            if item.nodeid == prefix or item.nodeid.startswith(prefix + "::"):
                return i
        return len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order
