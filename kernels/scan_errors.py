"""The scan kernels' one error, below every backend module: a backend or threading layer the user's settings
name that cannot run here (each backend raises it; :mod:`rsmamba.kernels.selective_scan` re-exports it)."""

from __future__ import annotations

__all__ = ["ScanBackendError"]


class ScanBackendError(ValueError):
    """A backend named (argument or RSMAMBA_SCAN_BACKEND), or a numba threading layer (NUMBA_THREADING_LAYER), that
    is unknown or cannot run here: the user's setting, which the CLI reports in one line."""
