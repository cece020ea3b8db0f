"""Per-window blending weights.

A network sees less context near a window border, so its predictions there are worse.
Weighting each window's class probabilities by a window that falls towards its borders, and
dividing by the summed weights, hides the seams. Windows touching the raster edge keep full
weight on that side: no other window can cover those pixels.
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from rsmamba.errors import InputError

BLEND_MODES = ("none", "mean", "hann", "gaussian", "spline")

# Weights never reach zero, so a pixel covered only by window borders still gets a value.
MIN_WEIGHT = 1e-3


def _profile(n: int, mode: str) -> np.ndarray:
    """1-D weights over ``n`` pixels, peak 1 in the middle."""
    centre = (np.arange(n, dtype=np.float64) + 0.5) / n  # pixel centres in (0, 1)
    if mode in ("mean", "none"):
        w = np.ones(n)
    elif mode == "hann":
        w = np.sin(np.pi * centre) ** 2
    elif mode == "gaussian":  # MONAI's choice: sigma = 0.125 x window
        w = np.exp(-0.5 * ((centre - 0.5) / 0.125) ** 2)
    elif mode == "spline":  # squared quadratic B-spline (the "smooth tiles" window), peak 1
        x = np.abs(2.0 * centre - 1.0)  # 0 at the centre, 1 at the borders
        w = np.where(x < 0.5, 1.0 - 2.0 * x**2, 2.0 * (1.0 - x) ** 2)
        w = w**2
    else:
        raise InputError(f"unknown blend mode {mode!r}; choose one of {', '.join(BLEND_MODES)}")
    return np.maximum(w, MIN_WEIGHT)


def _edge_aware(n: int, mode: str, at_start: bool, at_end: bool, crop: int) -> np.ndarray:
    """1-D weights; sides on the raster edge are flat (weight 1), inner sides lose ``crop`` pixels."""
    w = _profile(n, mode)
    half = n // 2
    if at_start:
        w[:half] = np.maximum(w[:half], w[half])
    if at_end:
        w[half:] = np.maximum(w[half:], w[half])
    if crop > 0:
        if not at_start:
            w[:crop] = 0.0
        if not at_end:
            w[n - crop:] = 0.0
    return w


def window_weights(
    window: Window, width: int, height: int, mode: str = "hann", crop: int = 0, edge_aware: bool = True
) -> np.ndarray:
    """(h, w) float32 weights for ``window`` of a ``height`` x ``width`` raster.

    ``crop`` drops that many pixels at each window side that is not on the raster edge (their
    weight is 0); the grid's overlap must be at least ``2 * crop`` so every pixel keeps a weight.
    ``edge_aware=False`` gives the plain window everywhere (what MONAI does), for comparisons.
    """
    col, row = int(window.col_off), int(window.row_off)
    w, h = int(window.width), int(window.height)
    wy = _edge_aware(h, mode, edge_aware and row == 0, edge_aware and row + h >= height, crop)
    wx = _edge_aware(w, mode, edge_aware and col == 0, edge_aware and col + w >= width, crop)
    return np.outer(wy, wx).astype(np.float32)
