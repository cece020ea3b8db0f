"""Streaming sliding-window inference: blend, stitch row bands, write a COG (issue #5).

Names load on first use (PEP 562), so light submodules (``options``, ``blend``) import without
torch: the CLI checks options in milliseconds before the seconds that torch takes.
"""

from importlib import import_module

_EXPORTS = {"PredictSummary": "api", "predict_raster": "api", "BLEND_MODES": "blend", "window_weights": "blend",
            "RowBandStitcher": "stitch"}

__all__ = ["BLEND_MODES", "PredictSummary", "RowBandStitcher", "predict_raster", "window_weights"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"rsmamba.predict.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rsmamba.predict' has no attribute {name!r}")
