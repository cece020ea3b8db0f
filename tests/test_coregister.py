"""Phase correlation recovers known shifts, integer and sub-pixel, and ignores textureless windows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, shift as nd_shift

from rsmamba.raster.coregister import estimate_shift, phase_correlation


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    return gaussian_filter(np.random.default_rng(seed).normal(size=(h, w)), 2.0)


@pytest.mark.parametrize("dy,dx", [(0, 0), (3, -2), (-5, 7), (1.5, -0.25)])
def test_phase_correlation_recovers_shift(dy: float, dx: float) -> None:
    a = _texture(128, 128)
    b = nd_shift(a, (dy, dx), order=3, mode="wrap")
    got_dy, got_dx, strength = phase_correlation(a, b)
    assert abs(got_dy - dy) < 0.2 and abs(got_dx - dx) < 0.2
    assert strength > 0.1


def test_estimate_shift_over_a_raster() -> None:
    a = _texture(600, 700, seed=1)
    b = nd_shift(a, (2.0, -3.0), order=1, mode="nearest")
    flat = np.zeros_like(a)

    def reader(arr):
        return lambda w: arr[None, w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]

    est = estimate_shift(reader(a), reader(b), 700, 600, max_pixels=400_000)
    assert est.windows_used >= 2
    assert abs(est.dy - 2.0) < 0.3 and abs(est.dx + 3.0) < 0.3
    assert est.magnitude == pytest.approx(np.hypot(2, 3), abs=0.4)
    none = estimate_shift(reader(flat), reader(flat), 700, 600, max_pixels=200_000)
    assert none.windows_used == 0 and np.isnan(none.dx)
