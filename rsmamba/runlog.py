"""Warnings logged once per run: a run opens its inputs more than once, a user reads each warning once.

``new_run()`` starts a run (the CLI calls it for every command, so several commands in one process,
as in tests or a notebook, each show their warnings).
"""

from __future__ import annotations

import logging

__all__ = ["new_run", "warn_once"]

_LOGGED: set[str] = set()


def new_run() -> None:
    """Forget the warnings already shown: the next run shows its own again."""
    _LOGGED.clear()


def warn_once(log: logging.Logger, message: str) -> None:
    """``log.warning(message)`` unless this run has shown it already."""
    if message in _LOGGED:
        return
    if len(_LOGGED) > 10_000:
        _LOGGED.clear()
    _LOGGED.add(message)
    log.warning(message)
