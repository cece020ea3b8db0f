"""Training datasets: chip folders written by ``rsmamba tile`` (and layouts converted to them)."""

from rsmamba.datasets.chips import ChipDataset, TilingInfo, read_tiling

__all__ = ["ChipDataset", "TilingInfo", "read_tiling"]
