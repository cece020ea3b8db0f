"""Raster core: aligned image/DSM/label sources, window grids and normalisation."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

GDAL_CACHE_MB = 64  # GDAL's block cache of a verb's call, MiB


@contextlib.contextmanager
def gdal_cache_capped(mb: int = GDAL_CACHE_MB) -> Iterator[None]:
    """GDAL's block cache capped at ``mb`` MiB for one call (a verb function is decorated with it), unless the
    caller chose a size (``GDAL_CACHEMAX`` in the environment) or runs it in a ``rasterio.Env`` of its own.

    GDAL's default is 5 % of RAM; rsmamba streams windows, so a big cache only inflates peak RSS. Scoped to the
    call: set in ``os.environ`` at import, it capped the caller's own GDAL work, and its subprocesses', too.
    """
    import rasterio
    from rasterio.env import hasenv

    # a caller's own rasterio.Env is left as it is, whatever it sets: an Env nested in it sets GDAL's cache size
    # for good (rasterio restores the caller's options, and the cache size is none of them), 64 MiB after the call
    if "GDAL_CACHEMAX" in os.environ or hasenv():
        yield
        return
    with rasterio.Env(GDAL_CACHEMAX=mb * 2**20):
        yield
