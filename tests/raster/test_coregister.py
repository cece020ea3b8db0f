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


def test_gate_refuses_shifted_epochs_unless_forced(tmp_path, caplog) -> None:
    from rsmamba.errors import InputError
    from rsmamba.raster.coregister import check_coregistration
    from rsmamba.raster.source import AlignedSource
    from tests.helpers.rasters import write_raster

    base = (_texture(300, 300, seed=2) * 40 + 128).clip(0, 255)
    t1 = write_raster(tmp_path / "t1.tif", np.stack([base] * 3).astype(np.uint8))
    moved = nd_shift(base, (0, 6), order=1, mode="nearest")
    t2 = write_raster(tmp_path / "t2.tif", np.stack([moved] * 3).astype(np.uint8))
    same = write_raster(tmp_path / "t2same.tif", np.stack([base] * 3).astype(np.uint8))
    with AlignedSource(t1, t2=same) as src:
        assert check_coregistration(src).magnitude < 0.3
    with AlignedSource(t1, t2=t2) as src:
        with pytest.raises(InputError, match="above the 3 px limit"):
            check_coregistration(src)
        with caplog.at_level("WARNING"):
            est = check_coregistration(src, force=True)
        assert abs(est.dx - 6) < 0.5 and "false change" in caplog.text


def test_a_non_finite_pixel_does_not_hide_a_shift(recwarn) -> None:
    """One NaN (a float ortho's nodata) or Inf pixel made the window's FFT all NaN: a scene sampled as one
    window had no estimate, and an 8 px shift went through as 'no textured windows agree'."""
    a = _texture(400, 400, seed=4)
    b = nd_shift(a, (0.0, 8.0), order=1, mode="nearest")

    def reader(arr):
        return lambda w: arr[None, w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]

    for bad in (np.nan, np.inf):
        c = b.copy()
        c[0, 0] = bad
        c[100:164, :] = np.nan  # a strip of no data too
        est = estimate_shift(reader(a), reader(c), 400, 400)
        assert est.windows_used >= 1 and abs(est.dx - 8.0) < 0.5 and abs(est.dy) < 0.5, est
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("size", [1024, 1600])
def test_a_part_of_t2_shifted_alone_is_refused(tmp_path, caplog, size) -> None:
    """A second flight strip or mosaic sheet 8 px off: the median over the scene said 0.05 px, and the false
    change there grew 18x, unsaid. A scene of at most 1.5 MPix was one window, which cannot show a part."""
    from rsmamba.errors import InputError
    from rsmamba.raster.coregister import check_coregistration
    from rsmamba.raster.source import AlignedSource
    from tests.helpers.rasters import write_raster

    base = (_texture(size, size, seed=3) * 40 + 128).clip(0, 255)
    moved = base.copy()
    east = slice(3 * size // 4, size)
    moved[:, east] = nd_shift(base, (0, 8), order=1, mode="nearest")[:, east]
    t1 = write_raster(tmp_path / "t1.tif", np.stack([base] * 3).astype(np.uint8))
    t2 = write_raster(tmp_path / "t2.tif", np.stack([moved] * 3).astype(np.uint8))
    same = write_raster(tmp_path / "same.tif", np.stack([base] * 3).astype(np.uint8))
    with AlignedSource(t1, t2=same) as src:
        assert check_coregistration(src).part_windows == 0
    with AlignedSource(t1, t2=t2) as src:
        with pytest.raises(InputError, match=r"part of t2 is shifted by 8\.\d\d px against t1 .* windows agree, within "
                                             r"columns \d+\.\.\d+.*Above the 3 px limit"):
            check_coregistration(src)
        with caplog.at_level("WARNING"):
            est = check_coregistration(src, force=True)
    assert est.magnitude < 1 and abs(est.part_dx - 8) < 0.5 and est.part_box[0] >= 3 * size // 4 - 256
    assert "part of t2 is shifted" in caplog.text
