"""Co-registration check for two epochs: the residual shift by phase correlation.

Change detection compares pixels of two dates; a residual misregistration of a pixel or two
turns every building edge into false change. Before a change run we estimate the shift of
epoch 2 against epoch 1 (both on epoch 1's grid) on a lattice of sample windows and take the
median of the confident estimates; a part of the scene on which several windows agree on a larger
shift (t2 mosaicked from sheets or strips, one of them shifted) is checked against the same limits.
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
    """Median residual shift of epoch 2 against epoch 1, in pixels, over the confident windows; and the
    largest shift a part of the scene agrees on (``part_*``: a mosaic sheet or flight strip of t2 shifted
    alone, which the median over the whole scene hides)."""

    dy: float
    dx: float
    windows_used: int
    windows_sampled: int
    part_dy: float = 0.0
    part_dx: float = 0.0
    part_windows: int = 0  # windows agreeing on the part's shift (0: no part stands out)
    part_box: tuple[int, int, int, int] | None = None  # col0, row0, col1, row1 of those windows
    spread: float = 0.0  # the local windows' median deviation from the scene's shift (a rotated t2: large)
    spread_windows: int = 0  # the local windows it was measured on (0: too few to say)
    uncertain: bool = False  # one window of a scene under MIN_TRUSTED_PX: a moved shadow reads as a shift too

    @property
    def magnitude(self) -> float:
        return float(np.hypot(self.dy, self.dx))

    @property
    def part_magnitude(self) -> float:
        return float(np.hypot(self.part_dy, self.part_dx))


PART_AGREE_PX = 1.0  # windows whose shifts lie this close agree on one shift
PART_MIN_SHARE = 0.1  # a part: this share of the confident windows (at least PART_MIN_WINDOWS) agreeing
PART_MIN_WINDOWS = 3  # random peaks of changed windows agree by chance in pairs, hardly in threes
# A scene whose shorter side is under this is one window whose shift is told, not refused on: crops of aligned
# synthetic pairs (sun 38 -> 46 degrees high) took shadows that moved 4-10 px, in all four corners, for t2's shift:
# at a 16 px stride 4 of 169 64 px crops were refused, 2 of 100 at 100 px, 3 of 972 at 128 px over 12 scenes, 0 of
# 588 at 160 px (QA).
MIN_TRUSTED_PX = 160


def _local_windows(width: int, height: int, sampled: list[Window], window: int) -> list[Window]:
    """Windows for the local estimates: the sample's lattice, or a small scene's own tiling (its sample is
    the whole scene, whose one estimate cannot show a part shifted alone)."""
    if len(sampled) > 1 or min(width, height) < 2 * window:
        return sampled
    return [Window(c, r, window, window) for r in range(0, height - window + 1, window)
            for c in range(0, width - window + 1, window)]


def _shifted_part(estimates: list[tuple[float, float, Window]], scene: tuple[float, float]
                  ) -> tuple[float, float, int, tuple | None]:
    """The largest shift off the ``scene``'s that enough windows agree on: (dy, dx, windows, their box)."""
    if not estimates:
        return 0.0, 0.0, 0, None
    arr = np.asarray([(dy, dx) for dy, dx, _ in estimates])
    need = max(PART_MIN_WINDOWS, int(np.ceil(PART_MIN_SHARE * len(arr))))
    best = (0.0, 0.0, 0, None)
    off = np.abs(arr - np.asarray(scene)).max(axis=1) > PART_AGREE_PX  # windows the scene's shift does not explain
    for i in np.argsort(-np.hypot(arr[:, 0], arr[:, 1])):
        if not off[i]:
            continue
        members = np.flatnonzero(np.abs(arr - arr[i]).max(axis=1) <= PART_AGREE_PX)
        if members.size >= need:
            dy, dx = (float(v) for v in np.median(arr[members], axis=0))
            wins = [estimates[m][2] for m in members]
            box = (min(int(w.col_off) for w in wins), min(int(w.row_off) for w in wins),
                   max(int(w.col_off + w.width) for w in wins), max(int(w.row_off + w.height) for w in wins))
            best = (dy, dx, int(members.size), box)
            break  # the largest shift first: the first part found is the worst
    return best


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
    def shift_of(win: Window) -> tuple[float, float] | None:
        a = read_a(win).astype(np.float64).mean(axis=0)
        b = read_b(win).astype(np.float64).mean(axis=0)
        if min(a.shape) < 16:
            return None
        valid = np.isfinite(a) & np.isfinite(b)  # a NaN/Inf pixel (a float ortho's nodata) made the FFT all NaN
        if valid.mean() < 0.5:
            return None
        if not valid.all():  # each epoch's own mean there: after centring, no edge of its own
            a[~valid], b[~valid] = a[valid].mean(), b[valid].mean()
        if a.std() < 1e-6 or b.std() < 1e-6:
            return None
        dy, dx, strength = phase_correlation(a, b)
        return (dy, dx) if strength >= min_strength else None

    sampled = sample_windows(width, height, max_pixels, window)
    found = [(win, shift_of(win)) for win in sampled]
    if (len(found) == 1 and found[0][1] is not None and min(width, height) < window  # a small scene: one peak
            and not _confirmed(found[0], shift_of)):
        found = [(sampled[0], None)]
    local = _local_windows(width, height, sampled, window)
    local_found = found if local is sampled else [(win, shift_of(win)) for win in local]
    # the whole scene as one window uncorrelated (a t2 rotated 2 degrees: its ground off by 3 px here, 25 px
    # in the corners): the local windows measure it, each its own shift (their spread, below)
    estimates, counted = [e for _, e in found if e is not None], len(sampled)
    if not estimates:
        estimates, counted = [e for _, e in local_found if e is not None], len(local)
    if not estimates:
        return ShiftEstimate(float("nan"), float("nan"), 0, counted)
    arr = np.asarray(estimates)
    scene = (float(np.median(arr[:, 0])), float(np.median(arr[:, 1])))
    local_estimates = [(e[0], e[1], win) for win, e in local_found if e is not None]
    part = _shifted_part(local_estimates, scene)
    return ShiftEstimate(*scene, len(estimates), counted, *part, *_spread(local_estimates, scene),
                         uncertain=len(sampled) == 1 and min(width, height) < MIN_TRUSTED_PX)


def _spread(estimates: list[tuple[float, float, Window]], scene: tuple[float, float]) -> tuple[float, int]:
    """The local shifts' median deviation from the scene's (the larger of dy, dx) and how many windows it took.

    A rotation about the scene's centre moves its windows every way: their median shift was 0.00 px for a t2
    rotated 2 degrees (the ground off by up to 25 px), where half its windows deviate by 9 px or more.
    """
    if len(estimates) < PART_MIN_WINDOWS:
        return 0.0, 0
    arr = np.asarray([(dy, dx) for dy, dx, _ in estimates])
    return float(np.median(np.abs(arr - np.asarray(scene)).max(axis=1))), len(estimates)


def _confirmed(found: tuple[Window, tuple[float, float]], shift_of: Callable[[Window], tuple[float, float] | None],
               share: float = 0.75, agree: int = 3) -> bool:
    """Whether ``agree`` of the four corner windows (``share`` of the window's sides) find its shift too.

    A small window's correlation peak is not evidence enough: on 100 px crops of an aligned pair, 49 of 169
    took a chance peak for shifts up to 39 px (refused as misregistered); with three corners agreeing, 2
    (0 of 49 at 160 px, 4 before). From 256 px on (0 of 16 wrong) one window's peak is trusted as it is.
    """
    win, (dy, dx) = found
    w, h = int(win.width * share), int(win.height * share)
    corners = [Window(win.col_off + c, win.row_off + r, w, h)
               for r in (0, int(win.height) - h) for c in (0, int(win.width) - w)]
    hits = [shift_of(c) for c in corners]
    return sum(1 for e in hits if e is not None and max(abs(e[0] - dy), abs(e[1] - dx)) <= PART_AGREE_PX) >= agree


def check_coregistration(
    src,  # AlignedSource with a second epoch
    *,
    warn_above: float = 1.0,
    max_shift: float = 3.0,
    force: bool = False,
) -> ShiftEstimate:
    """Estimate the residual t2-vs-t1 shift; warn above ``warn_above`` px, refuse above ``max_shift``: the
    scene's median shift, the local windows' disagreement (a rotated t2), and a part of the scene shifted alone
    (several windows agreeing on it).

    ``force`` turns the refusal into a warning. An estimate that cannot be made (no texture)
    is reported as a warning, not an error.
    """
    import logging

    from rsmamba.errors import InputError

    log = logging.getLogger(__name__)
    est = estimate_shift(src.read_image, src.read_t2, src.width, src.height)
    if est.windows_used == 0:
        log.warning("co-registration: could not estimate the t1/t2 shift (the windows' correlations are weak or "
                    "disagree: little texture, much change, or a rotated or warped t2); not checked")
        return est
    text = (f"t2 {'may be' if est.uncertain else 'is'} shifted by {est.magnitude:.2f} px against t1 (dy "
            f"{est.dy:+.2f}, dx {est.dx:+.2f}; {est.windows_used}/{est.windows_sampled} windows)")
    if est.uncertain and est.magnitude > warn_above:  # told with its doubt; a refusal would often be wrong here
        log.warning("co-registration: %s%s, from one window of a scene under %d px, where a moved shadow or a "
                    "changed building reads as a shift too: not refused; if the epochs are off, expect false change "
                    "along edges", text, f", above the {max_shift:g} px limit" if est.magnitude > max_shift else "",
                    MIN_TRUSTED_PX)
    elif est.magnitude > max_shift and not force:
        raise InputError(f"{text}, above the {max_shift:g} px limit: co-register the epochs or pass --force")
    elif est.magnitude > warn_above:
        log.warning("co-registration: %s; expect false change along edges", text)
    else:
        log.debug("co-registration: %s", text)  # the summary says the residual shift
    if est.spread > warn_above:
        spread = (f"t2's local shifts against t1 disagree by {est.spread:.2f} px (the median deviation over "
                  f"{est.spread_windows} windows from the scene's {est.magnitude:.2f} px): a rotated, scaled or warped t2?")
        if est.spread > max_shift and not force:
            raise InputError(f"{spread} Above the {max_shift:g} px limit: co-register the epochs or pass --force")
        log.warning("co-registration: %s; expect false change", spread)
    if est.part_windows and est.part_magnitude > max(warn_above, est.magnitude + PART_AGREE_PX):
        c0, r0, c1, r1 = est.part_box
        part = (f"part of t2 is shifted by {est.part_magnitude:.2f} px against t1 (dy {est.part_dy:+.2f}, dx "
                f"{est.part_dx:+.2f}; {est.part_windows} windows agree, within columns {c0}..{c1}, rows {r0}..{r1}), "
                f"the scene by {est.magnitude:.2f} px: a mosaic sheet or flight strip of its own?")
        if est.part_magnitude > max_shift and not force:
            raise InputError(f"{part} Above the {max_shift:g} px limit: co-register the epochs or pass --force")
        log.warning("co-registration: %s; expect false change along its edges", part)
    return est
