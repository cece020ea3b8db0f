"""Streaming sliding-window inference: blend, stitch row bands, write a COG (issue #5)."""

from rsmamba.predict.api import PredictSummary, predict_raster
from rsmamba.predict.blend import BLEND_MODES, window_weights
from rsmamba.predict.stitch import RowBandStitcher

__all__ = ["BLEND_MODES", "PredictSummary", "RowBandStitcher", "predict_raster", "window_weights"]
