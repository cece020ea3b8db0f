"""Make the helper modules beside the tests (``rasters``, ``jobs``, ``_hybrid_testing``, ...) importable
both as ``tests.x`` and as ``x``, whatever pytest's import mode."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# Triton kernels run on CPU tensors in Triton's interpreter; it must be switched on before any
# kernel is decorated (import time). Only where there is no GPU: there the kernels are compiled.
# Nothing else in the suite uses triton, so this changes no other test.
import os  # noqa: E402

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
