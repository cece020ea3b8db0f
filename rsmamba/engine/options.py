"""Checks of predict/change run options that need no input file, and no torch unless CUDA is asked for.

Kept apart from ``api`` so the CLI answers a bad option before torch (seconds to import) loads.
"""

from __future__ import annotations

from rsmamba.errors import ProblemCollector
from rsmamba.engine.blend import BLEND_MODES


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_run_options(problems: ProblemCollector, *, blend: str, crop: int, overlap: int, batch_size: int,
                      device: str, compress: str = "deflate", window: int | None = None,
                      change_threshold: float | None = None) -> None:
    """Options of predict and change that need no input file, all problems at once."""
    from rsmamba.raster.compress import check_compress

    problem = check_compress(compress)
    if problem:
        problems.add(problem)
    if blend not in BLEND_MODES:
        problems.add(f"--blend {blend!r}: choose one of {', '.join(BLEND_MODES)}")
    if crop < 0 or (crop > 0 and overlap < 2 * crop):
        problems.add(f"--crop {crop}: needs 0 <= crop and overlap >= 2 x crop (overlap is {overlap})")
    if window is not None and not 0 <= overlap < window:
        problems.add(f"--overlap {overlap}: must be in [0, --window) (window is {window})")
    if batch_size < 1:
        problems.add(f"--batch-size must be >= 1, got {batch_size}")
    if change_threshold is not None and not 0.0 < change_threshold < 1.0:
        problems.add(f"--change-threshold {change_threshold}: must be between 0 and 1 (exclusive)")
    if device.startswith("cuda") and not _cuda_available():
        problems.add(f"--device {device}: CUDA is not available on this machine")
