"""Co-registration check for two epochs: the residual shift by phase correlation.

Change detection compares pixels of two dates; a residual misregistration of a pixel or two
turns every building edge into false change. Before a change run we estimate the shift of
epoch 2 against epoch 1 (both on epoch 1's grid) on a lattice of sample windows and take the
median of the confident estimates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from rsmamba.raster.windows import sample_windows


def phase_correlation(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Sub-pixel shift (dy, dx) such that ``b`` ≈ ``a`` moved by (dy, dx), and the peak strength.

    Both inputs are (h, w) float arrays. The strength is the normalised correlation peak
    (1 for a pure translation of identical content, close to 0 for unrelated images).
    """
    a = a - a.mean()
    b = b - b.mean()
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa = np.fft.fft2(a * window)
    fb = np.fft.fft2(b * window)
    cross = fb * np.conj(fa)
    cross /= np.maximum(np.abs(cross), 1e-12)
    corr = np.fft.ifft2(cross).real
    peak = np.unravel_index(np.argmax(corr), corr.shape)
    strength = float(corr[peak])
    shifts = []
    for axis, p in enumerate(peak):
        n = corr.shape[axis]
        # parabolic interpolation around the peak along this axis
        idx = [peak[0], peak[1]]
        idx[axis] = (p - 1) % n
        left = corr[tuple(idx)]
        idx[axis] = (p + 1) % n
        right = corr[tuple(idx)]
        denom = left - 2 * corr[peak] + right
        frac = 0.5 * (left - right) / denom if denom != 0 else 0.0
        s = p + frac
        if s > n / 2:
            s -= n
        shifts.append(float(s))
    return shifts[0], shifts[1], strength


@dataclass(frozen=True)
class ShiftEstimate:
    """Median residual shift of epoch 2 against epoch 1, in pixels, over the confident windows."""

    dy: float
    dx: float
    windows_used: int
    windows_sampled: int

    @property
    def magnitude(self) -> float:
        return float(np.hypot(self.dy, self.dx))


def estimate_shift(
    read_a: Callable[[Window], np.ndarray],
    read_b: Callable[[Window], np.ndarray],
    width: int,
    height: int,
    *,
    window: int = 256,
    max_pixels: int = 1_500_000,
    min_strength: float = 0.05,
) -> ShiftEstimate:
    """Estimate the shift between two co-gridded rasters given window readers of (bands, h, w) arrays.

    Windows with little texture or too little agreement (a changed area) are ignored.
    """
    estimates = []
    sampled = sample_windows(width, height, max_pixels, window)
    for win in sampled:
        a = read_a(win).astype(np.float64).mean(axis=0)
        b = read_b(win).astype(np.float64).mean(axis=0)
        if a.std() < 1e-6 or b.std() < 1e-6 or min(a.shape) < 16:
            continue
        dy, dx, strength = phase_correlation(a, b)
        if strength >= min_strength:
            estimates.append((dy, dx))
    if not estimates:
        return ShiftEstimate(float("nan"), float("nan"), 0, len(sampled))
    arr = np.asarray(estimates)
    return ShiftEstimate(float(np.median(arr[:, 0])), float(np.median(arr[:, 1])), len(estimates), len(sampled))


def check_coregistration(
    src,  # AlignedSource with a second epoch
    *,
    warn_above: float = 1.0,
    max_shift: float = 3.0,
    force: bool = False,
) -> ShiftEstimate:
    """Estimate the residual t2-vs-t1 shift; warn above ``warn_above`` px, refuse above ``max_shift``.

    ``force`` turns the refusal into a warning. An estimate that cannot be made (no texture)
    is reported as a warning, not an error.
    """
    import logging

    from rsmamba.errors import InputError

    log = logging.getLogger(__name__)
    est = estimate_shift(src.read_image, src.read_t2, src.width, src.height)
    if est.windows_used == 0:
        log.warning("co-registration: could not estimate the t1/t2 shift (no textured windows agree)")
        return est
    text = (f"t2 is shifted by {est.magnitude:.2f} px against t1 (dy {est.dy:+.2f}, dx {est.dx:+.2f}; "
            f"{est.windows_used}/{est.windows_sampled} windows)")
    if est.magnitude > max_shift and not force:
        raise InputError(f"{text}, above the {max_shift:g} px limit: co-register the epochs or pass --force")
    if est.magnitude > warn_above:
        log.warning("co-registration: %s; expect false change along edges", text)
    else:
        log.debug("co-registration: %s", text)  # the summary says the residual shift
    return est
