"""Compute kernels (installed as ``rsmamba.kernels``): the selective scan and its backends, the cross scan.

Network layers built on them live in :mod:`rsmamba.models`.
"""

from rsmamba.kernels.selective_scan import selective_scan, selective_scan_reference

__all__ = ["selective_scan", "selective_scan_reference"]
