"""The parallel plan of tests/conftest.py names tests that exist: a renamed file would silently start last."""

from __future__ import annotations

from tests.conftest import LONGEST_FIRST, MAX_WORKERS, pytest_xdist_auto_num_workers
from tests.test_docs import DOCS, ROOT


def test_the_longest_units_exist() -> None:
    docs = {f"tests/test_docs.py::test_documented_commands_run[{p.relative_to(ROOT)}]" for p in DOCS}
    for unit in LONGEST_FIRST:
        assert unit in docs or (unit.endswith(".py") and (ROOT / unit).is_file()), unit


def test_auto_workers_are_the_cores_at_most_four(monkeypatch) -> None:
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert pytest_xdist_auto_num_workers(None) == MAX_WORKERS == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert pytest_xdist_auto_num_workers(None) == 2
