"""The suite mirrors the package (``tests/predict`` tests ``rsmamba.predict``, ...); shared helpers and
synthetic-data writers are ``tests.helpers.*``, test data made by scripts is in ``tests/data``."""

from __future__ import annotations

# Triton kernels run on CPU tensors in Triton's interpreter; it must be switched on before any
# kernel is decorated (import time). Only where there is no GPU: there the kernels are compiled.
# Nothing else in the suite uses triton, so this changes no other test.
import os  # noqa: E402

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
