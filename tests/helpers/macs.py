"""thop MACs for the tests: a real run and the meta-device count (``rsmamba.models.params``)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import torch
import torch.nn as nn

from rsmamba.models.params import shape_only_scan as scan_stubbed  # noqa: F401
from rsmamba.models.params import thop_macs_meta as meta_macs  # noqa: F401


def thop_macs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """thop.profile's MACs on real tensors (hooks on module types, as the papers counted)."""
    import thop

    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        macs, _ = thop.profile(model.eval(), inputs=tuple(inputs), verbose=False)
    return float(macs)
