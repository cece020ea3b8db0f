"""Checks of predict/change run options that need no input file, and no torch unless CUDA is asked for.

Kept apart from ``api`` so the CLI answers a bad option before torch (seconds to import) loads.
"""

from __future__ import annotations

import math

from typing import TYPE_CHECKING

from rsmamba.errors import ProblemCollector
from rsmamba.engine.blend import BLEND_MODES
from rsmamba.raster.windows import PASSES_SAID, passes_per_pixel

if TYPE_CHECKING:
    from rsmamba.engine.model import LoadedModel


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def check_run_options(problems: ProblemCollector, *, blend: str, crop: int, overlap: int | None, batch_size: int,
                      device: str, compress: str | None = None, window: int | None = None,
                      change_threshold: float | None = None, prefetch: int = 4, max_shift: float = 3.0) -> None:
    """Options of predict and change that need no input file, all problems at once.

    ``window``/``overlap`` None: not given (the model's own are checked by :func:`check_window` once
    it is loaded); ``compress`` None: not given (deflate, or ``--co COMPRESS``'s).
    """
    from rsmamba.raster.compress import check_compress

    problem = check_compress(compress) if compress is not None else None
    if problem:
        problems.add(problem)
    if blend not in BLEND_MODES:
        problems.add(f"--blend {blend!r}: choose one of {', '.join(BLEND_MODES)}")
    if crop < 0:
        problems.add(f"--crop {crop}: needs 0 <= crop")
    check_window(problems, window, overlap, crop)
    if batch_size < 1:
        problems.add(f"--batch-size must be >= 1, got {batch_size}")
    if prefetch < 1:  # a queue of size <= 0 is unbounded: memory would follow the reader, not the model
        problems.add(f"prefetch must be >= 1 batch, got {prefetch}")
    if not (max_shift >= 0 and math.isfinite(max_shift)):  # NaN compared false: the guard was off
        problems.add(f"--max-shift must be a number of pixels >= 0, got {max_shift}")
    if change_threshold is not None and not 0.0 < change_threshold < 1.0:
        problems.add(f"--change-threshold {change_threshold}: must be between 0 and 1 (exclusive)")
    kind = device.split(":")[0]
    if kind not in ("auto", "cpu", "cuda", "mps"):  # (torch_device's DEVICE_TYPES, and auto) before torch loads
        problems.add(f"--device {device!r}: not a device rsmamba runs on (auto, cpu, cuda, cuda:1, mps)")
    elif device.startswith("cuda") and not _cuda_available():
        problems.add(f"--device {device}: CUDA is not available on this machine")
    elif device.startswith("mps") and not _mps_available():  # a traceback at the first .to() otherwise
        problems.add(f"--device {device}: Apple's Metal (MPS) is not available on this machine")


def check_window(problems: ProblemCollector, window: int | None, overlap: int | None, crop: int = 0) -> None:
    """Window, overlap and crop that fit together; a None is not known yet and not checked."""
    if window is not None and window < 1:
        problems.add(f"--window {window}: must be >= 1")
    if overlap is not None and crop > 0 and overlap < 2 * crop:
        problems.add(f"--crop {crop}: needs overlap >= 2 x crop (overlap is {overlap})")
    if window is not None and overlap is not None and not 0 <= overlap < window:
        problems.add(f"--overlap {overlap}: must be in [0, --window) (window is {window})")


def resolve_window(model: LoadedModel, window: int | None, overlap: int | None, crop: int = 0, *,
                   warn: bool = True) -> tuple[int, int, str]:
    """The run's (window, overlap, source): :func:`rsmamba.engine.model.inference_window`, checked with ``crop``;
    ``warn``: log :func:`overlap_cost` (False where a run's parts each resolve the window it said once)."""
    from rsmamba.engine.model import inference_window  # torch: only once a model is loaded

    window, overlap, source = inference_window(model, window, overlap)
    problems = ProblemCollector()
    check_window(problems, window, overlap, crop)
    problems.raise_if_any()
    note = overlap_cost(window, overlap)
    if warn and note:
        import logging

        logging.getLogger(__name__).warning(note)
    return window, overlap, source


def overlap_cost(window: int, overlap: int) -> str | None:
    """A warning when the overlap makes the network run over each pixel more than 16 times.

    ``--window 256 --overlap 255`` is a stride of 1 px: 65536 passes per pixel, a run some 37000 times as long as
    at the default overlap, said by nothing but a progress bar that hardly moved."""
    stride = window - overlap
    passes = passes_per_pixel(window, overlap)
    if passes <= PASSES_SAID:
        return None
    usual = passes_per_pixel(window, window // 4)
    return (f"--overlap {overlap} of a {window} px window: a stride of {stride} px runs the network about "
            f"{passes:,.0f} times over each pixel ({usual:.1f} at the default overlap {window // 4}); the run takes "
            f"about {passes / usual:,.0f}x as long")


def passive_openmp_waits() -> bool:
    """Let torch's OpenMP threads sleep between parallel regions instead of spinning; call before torch loads.

    Why: inference runs the network on torch's thread pool while the reader, the blending and
    the writer share the same cores. After every parallel region GNU OpenMP spins its idle threads
    for a while, and those spins took the cores the pipeline needed: on 2 cores a near-free-model
    ``predict`` of a 4096² scene used 1.3-1.5 CPU seconds spinning included, 1.2 passive, and ran
    about 18 % faster (``bench/predict.py --parts ceiling``), while the demo models' forward
    took the same wall time with a third less CPU. Training is the other way round (many small
    ops: a train step was 1.6x slower passive), so only ``predict`` and ``change`` call this.
    OpenMP reads the policy once, when torch loads it: a no-op once torch is imported, or when
    the user has set ``OMP_WAIT_POLICY``. Returns whether torch will load with the passive policy
    (False when torch is already loaded: its policy can no longer be known or changed).
    """
    import os
    import sys

    if "torch" in sys.modules:
        return False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"
