"""Raster core: aligned image/DSM/label sources, window grids and normalisation."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

GDAL_CACHE_MB = 64  # GDAL's block cache of a verb's call, MiB


@contextlib.contextmanager
def gdal_cache_capped(mb: int = GDAL_CACHE_MB) -> Iterator[None]:
    """GDAL's block cache capped at ``mb`` MiB for one call (a verb function is decorated with it), unless the
    caller chose a size (``GDAL_CACHEMAX`` in the environment, or a ``rasterio.Env`` around the call).

    GDAL's default is 5 % of RAM; rsmamba streams windows, so a big cache only inflates peak RSS. Scoped to the
    call: set in ``os.environ`` at import, it capped the caller's own GDAL work, and its subprocesses', too.
    """
    import rasterio
    from rasterio.env import getenv, hasenv

    if "GDAL_CACHEMAX" in os.environ or (hasenv() and "GDAL_CACHEMAX" in getenv()):
        yield
        return
    with rasterio.Env(GDAL_CACHEMAX=mb * 2**20):
        yield
