"""Class and change rasters to GIS polygon layers (``rsmamba vectorize``)."""

from rsmamba.vectorize.api import VectorizeSummary, vectorize_raster
from rsmamba.vectorize.many import vectorize_many
from rsmamba.vectorize.mosaic import check_common_grid, write_mosaic_vrt
from rsmamba.vectorize.polygonize import Piece, block_spans, polygonize_blocks

__all__ = [
    "Piece", "VectorizeSummary", "block_spans", "check_common_grid", "polygonize_blocks", "vectorize_many",
    "vectorize_raster", "write_mosaic_vrt",
]
