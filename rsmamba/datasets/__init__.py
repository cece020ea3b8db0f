"""Training datasets: chip folders written by ``rsmamba tile`` (and layouts converted to them)."""

from rsmamba.datasets.chips import ChipDataset, TilingInfo, read_tiling
from rsmamba.datasets.layouts import LandsatSCDDataset, LoveDADataset, SECONDDataset, isprs_pairs, isprs_rgb_to_ids

__all__ = ["ChipDataset", "LandsatSCDDataset", "LoveDADataset", "SECONDDataset", "TilingInfo", "isprs_pairs", "isprs_rgb_to_ids",
           "read_tiling"]
