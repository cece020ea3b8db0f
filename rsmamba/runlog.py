"""Warnings logged once per run: a run opens its inputs more than once, a user reads each warning once.

``run_scope()`` is a run: the CLI's command and each library entry point (``predict_raster``, ``detect_change``,
``tile_scene``) are one. The outermost scope starts afresh, so several runs in one process (a notebook, tests,
a batch's scenes) each show their warnings; a scope inside another (the CLI's command around the library's
call) shares its memory. ``scene_scope()`` is one scene of a batch: its warnings say which scene they are about.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["LOG_LEVEL_ENV", "attach_stderr_handler", "relayed_warnings", "run_scope", "scene_scope", "warn_once"]

LOG_LEVEL_ENV = "RSMAMBA_LOG_LEVEL"  # the CLI's -q/-v level, for the worker processes it starts (dask local)

_LOGGED: set[str] = set()
_SCENE: ContextVar[tuple[str, tuple[str, ...]] | None] = ContextVar("rsmamba_scene", default=None)
# a Dask worker's job: its warnings, collected for the caller to say (a worker's stderr is not the user's terminal)
_RELAY: ContextVar[list[tuple[int, str]] | None] = ContextVar("rsmamba_relay", default=None)
_SCOPES = threading.local()  # how deep this thread is in runs (the threads of a dask scheduler: one run each)


class _StderrHandler(logging.StreamHandler):
    """One line each on stderr, resolved at each record (redirected or captured stderr gets the lines), and
    written around live progress bars (tqdm.write): a line under a bar left a dead bar and split the next."""

    _rsmamba = True

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN202
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass

    def emit(self, record: logging.LogRecord) -> None:
        relay = _RELAY.get()
        if relay is not None and record.levelno >= logging.WARNING:  # said by the caller, once
            relay.append((record.levelno, record.getMessage()))  # (the scene's name put in by _SceneNamer)
            return
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own contract: a handler never raises
            self.handleError(record)


class _SceneNamer(logging.Filter):
    """In a batch, a warning that names none of its scene's inputs starts with the scene's name: 'co-registration:
    could not estimate the t1/t2 shift' among 500 pairs said nothing of which pair."""

    def filter(self, record: logging.LogRecord) -> bool:
        scene = _SCENE.get()
        if scene is not None and record.levelno >= logging.WARNING:
            label, names = scene
            message = record.getMessage()
            if not any(name in message for name in names):
                record.msg, record.args = f"{label}: {message}", None
        return True


@contextmanager
def relayed_warnings() -> Iterator[list[tuple[int, str]]]:
    """The warnings logged in this context (a job on a Dask worker), as (level, message), in the list it gives, not on
    this process's stderr: the caller says them. A worker started by hand logs to its own terminal or file, and a
    batch on ``--scheduler tcp://...`` showed none of them ('DSM ... resampled onto the image grid', QA)."""
    caught: list[tuple[int, str]] = []
    token = _RELAY.set(caught)
    try:
        yield caught
    finally:
        _RELAY.reset(token)


@contextmanager
def scene_scope(label: str, names: Sequence[str] = ()) -> Iterator[None]:
    """One scene of a batch (in this thread): its warnings name it, as ``label`` unless they name one of ``names``."""
    token = _SCENE.set((label, tuple(names) or (label,)))
    try:
        yield
    finally:
        _SCENE.reset(token)


def attach_stderr_handler(level: int) -> None:
    """``rsmamba: LEVEL: message`` lines for the ``rsmamba`` loggers, at ``level`` (once per process: the CLI,
    a worker; a later call leaves the level to whoever set it since)."""
    logger = logging.getLogger("rsmamba")
    if not any(getattr(h, "_rsmamba", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("rsmamba: %(levelname)s: %(message)s"))
        handler.addFilter(_SceneNamer())
        logger.addHandler(handler)
        logger.setLevel(level)


@contextmanager
def run_scope() -> Iterator[None]:
    """One run (also a decorator): the outermost forgets the warnings shown before, so this run shows its own."""
    depth = getattr(_SCOPES, "depth", 0)
    if depth == 0:
        _LOGGED.clear()
    _SCOPES.depth = depth + 1
    try:
        yield
    finally:
        _SCOPES.depth = depth


def warn_once(log: logging.Logger, message: str) -> None:
    """``log.warning(message)`` unless this run has shown it already."""
    if message in _LOGGED:
        return
    if len(_LOGGED) > 10_000:
        _LOGGED.clear()
    _LOGGED.add(message)
    log.warning(message)
