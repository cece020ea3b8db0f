"""Errors the CLI turns into one line and a non-zero exit.

Input checks collect every problem before failing (orthoseg style), so a user fixes
all of them in one go instead of re-running once per mistake.
"""

from __future__ import annotations

from collections.abc import Iterable


class RsmambaError(Exception):
    """Any error that is the user's input or environment, not a bug: printed without a traceback."""

    exit_code = 1


class InputError(RsmambaError):
    """One or more problems with the inputs; ``problems`` lists them all."""

    exit_code = 2

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class ProblemCollector:
    """Gather input problems, then raise them together.

    >>> p = ProblemCollector()
    >>> p.add("image.tif: no CRS")
    >>> p.raise_if_any()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise InputError(self.problems)


def missing_files(paths: Iterable[object], where: str, shown: int = 10) -> InputError | None:
    """One error listing the files of a dataset that do not exist (the first ``shown``, then a count),
    or None: found up front, before training starts, rather than one per run when a worker reaches it."""
    from pathlib import Path

    missing = [str(p) for p in paths if not Path(str(p)).is_file()]
    if not missing:
        return None
    more = [f"... and {len(missing) - shown} more missing from {where}"] if len(missing) > shown else []
    return InputError([f"{m}: missing from {where}" for m in missing[:shown]] + more)


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (GDAL, dask and safetensors write several), or its type."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
