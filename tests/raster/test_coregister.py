"""Phase correlation recovers known shifts, integer and sub-pixel, and ignores textureless windows."""

from __future__ import annotations

import numpy as np
import rasterio
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


def _reader(arr):
    return lambda w: arr[None, w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width]


def test_a_small_scene_takes_no_chance_peak_for_a_shift() -> None:
    """A scene under 256 px is one window, and one correlation peak of unrelated content was taken for a shift:
    100 px crops of an aligned pair were refused as shifted by up to 39 px. Three of four corners must agree."""
    refused = 0
    for seed in range(60):  # unrelated content: the old estimate refused 13 of these 60 as shifted > 3 px
        est = estimate_shift(_reader(_texture(100, 100, seed)), _reader(_texture(100, 100, 1000 + seed)), 100, 100)
        refused += est.windows_used > 0 and est.magnitude > 3
    assert refused <= 1
    a = _texture(120, 120, seed=7)
    moved = nd_shift(a, (0.0, 6.0), order=1, mode="nearest")  # a real shift of a small scene is still measured
    est = estimate_shift(_reader(a), _reader(moved), 120, 120)
    assert est.windows_used == 1 and abs(est.dx - 6) < 0.5 and abs(est.dy) < 0.5


def test_a_rotated_t2_is_measured_on_local_windows() -> None:
    """The whole scene as one window did not correlate with a t2 rotated by 2 degrees (its ground off by 3 px
    near the centre, 25 px in the corners): 'could not estimate', and 3.2x the change went through. Its local
    windows measure it: each moved its own way."""
    from scipy.ndimage import rotate

    a = _texture(1024, 1024, seed=8)
    b = rotate(a, 2.0, reshape=False, order=1, mode="nearest")
    est = estimate_shift(_reader(a), _reader(b), 1024, 1024)
    assert est.windows_used >= 3 and est.spread > 3, est  # the median of windows moved every way is ~0
    same = estimate_shift(_reader(a), _reader(a), 1024, 1024)
    assert same.windows_used == 1 and same.spread < 1e-6
    moved = estimate_shift(_reader(a), _reader(nd_shift(a, (0.0, 5.0), order=1, mode="nearest")), 1024, 1024)
    assert abs(moved.dx - 5) < 0.5 and moved.spread < 0.5  # a translation moves every window alike


def test_a_small_scenes_shift_is_told_not_refused(tmp_path, caplog) -> None:
    """64 px crops of an aligned synthetic pair were refused as 'shifted by 5.33 px' (shadows moved with the sun,
    in all four corners): one window of a scene under MIN_TRUSTED_PX warns with its doubt instead. A real shift
    there is told the same way; from 160 px on it is refused as before."""
    from rasterio.windows import Window

    from rsmamba.errors import InputError
    from rsmamba.raster.coregister import check_coregistration
    from rsmamba.raster.source import AlignedSource
    from rsmamba.synth import write_scene
    from tests.helpers.rasters import write_raster

    scene = write_scene(tmp_path / "scene", size=256, seed=3)

    def crop(path, name):
        with rasterio.open(path) as src:
            return write_raster(tmp_path / name, src.read(window=Window(32, 160, 64, 64)), res=0.25,
                                transform=src.window_transform(Window(32, 160, 64, 64)))

    with AlignedSource(crop(scene["ortho_t1"], "c1.tif"), t2=crop(scene["ortho_t2"], "c2.tif")) as src:
        with caplog.at_level("WARNING"):
            est = check_coregistration(src)  # refused before
    assert est.uncertain and est.magnitude > 3 and "may be shifted" in caplog.text and "not refused" in caplog.text
    for size in (100, 160):  # MIN_TRUSTED_PX
        base = (_texture(size, size, seed=5) * 40 + 128).clip(0, 255)
        moved = nd_shift(base, (0, 6), order=1, mode="nearest")
        t1 = write_raster(tmp_path / f"t1_{size}.tif", np.stack([base] * 3).astype(np.uint8))
        t2 = write_raster(tmp_path / f"t2_{size}.tif", np.stack([moved] * 3).astype(np.uint8))
        caplog.clear()
        with AlignedSource(t1, t2=t2) as src:
            if size < 160:
                with caplog.at_level("WARNING"):
                    est = check_coregistration(src)
                assert abs(est.dx - 6) < 0.5 and "t2 may be shifted by 6" in caplog.text
                assert "above the 3 px limit" in caplog.text and "not refused" in caplog.text
            else:
                with pytest.raises(InputError, match="t2 is shifted by 6.* above the 3 px limit"):
                    check_coregistration(src)
