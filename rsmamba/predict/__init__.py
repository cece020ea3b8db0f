"""``rsmamba predict``: one scene (``predict_raster``), row slices across processes (``slices``), many
scenes (``many``). The streaming engine they drive is :mod:`rsmamba.engine`.

Names load on first use (PEP 562): the CLI checks options in milliseconds before the seconds
that torch takes.
"""

from importlib import import_module

_EXPORTS = {"PredictSummary": "api", "predict_raster": "api", "predict_many": "many"}

__all__ = ["PredictSummary", "predict_many", "predict_raster"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"rsmamba.predict.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rsmamba.predict' has no attribute {name!r}")
