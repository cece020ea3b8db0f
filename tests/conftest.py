"""Make the helper modules beside the tests (``rasters``, ``jobs``, ``_hybrid_testing``, ...) importable
both as ``tests.x`` and as ``x``, whatever pytest's import mode."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
