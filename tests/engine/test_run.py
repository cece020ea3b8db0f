"""The words a run's summary is made of (rsmamba.engine.run)."""

from __future__ import annotations


def test_a_raster_smaller_than_its_window_is_said_as_it_is_run():
    """change said '1 window of 128 px (overlap 32)' for a 100 x 60 px pair (predict had been mended alone)."""
    from rsmamba.engine.run import grid_text

    assert grid_text(100, 60, 1, 128, 32) == "raster 100 x 60 px, 1 window of 100 x 60 px (the whole raster)"
    assert grid_text(1000, 600, 54, 128, 32) == "raster 1000 x 600 px, 54 windows of 128 px (overlap 32)"
