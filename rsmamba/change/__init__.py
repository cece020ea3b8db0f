"""Bi-temporal (semantic) change detection: ``rsmamba change`` (issue #7). Names load on first use."""

from importlib import import_module

__all__ = ["ChangeSummary", "detect_change", "load_change_model"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module("rsmamba.change.api"), name)
    raise AttributeError(f"module 'rsmamba.change' has no attribute {name!r}")
