"""Selective-scan and other compute kernels (installed as ``rsmamba.kernels``)."""

from rsmamba.kernels.selective_scan import selective_scan, selective_scan_reference

__all__ = ["selective_scan", "selective_scan_reference"]
