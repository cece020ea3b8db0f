"""Class and change rasters to GIS polygon layers (``rsmamba vectorize``)."""

from rsmamba.vectorize.api import VectorizeSummary, vectorize_raster
from rsmamba.vectorize.polygonize import Piece, block_spans, polygonize_blocks

__all__ = ["Piece", "VectorizeSummary", "block_spans", "polygonize_blocks", "vectorize_raster"]
