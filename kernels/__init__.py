"""Selective-scan and other compute kernels (installed as ``rsmamba.kernels``)."""

from rsmamba.kernels.mamba1d import BiMamba, Mamba, mamba_parameter_count
from rsmamba.kernels.selective_scan import selective_scan, selective_scan_reference

__all__ = ["BiMamba", "Mamba", "mamba_parameter_count", "selective_scan", "selective_scan_reference"]
