"""Bi-temporal (semantic) change detection: ``rsmamba change`` (issue #7)."""

from rsmamba.change.api import ChangeSummary, detect_change, load_change_model

__all__ = ["ChangeSummary", "detect_change", "load_change_model"]
