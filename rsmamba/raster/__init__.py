"""Raster core: aligned image/DSM/label sources, window grids and normalisation."""

import os

# GDAL's default block cache is 5 % of RAM; rsmamba streams windows, so a big cache only
# inflates peak RSS. Read once by GDAL on first use, hence set before any raster is opened.
os.environ.setdefault("GDAL_CACHEMAX", "64")
