"""Which selective-scan backend each device / installation gets, and the causal-conv fallback.

The installations are simulated by replacing the lazy loaders, so this runs (and means the
same) on every machine, GPU or not, with or without mamba-ssm / triton installed.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rsmamba.kernels import scan_numba
from rsmamba.models import mamba1d

ss = importlib.import_module("rsmamba.kernels.selective_scan")  # the package re-exports a function of that name

CPU_FIRST = "numba" if scan_numba.AVAILABLE else "chunked"

# (device, mamba_ssm importable, triton importable) -> automatic backend
TABLE = [
    ("cuda", True, True, "mamba_ssm"),
    ("cuda", True, False, "mamba_ssm"),
    ("cuda", False, True, "triton"),
    ("cuda", False, False, "chunked"),
    ("cpu", True, True, CPU_FIRST),
    ("cpu", False, True, CPU_FIRST),
    ("cpu", False, False, CPU_FIRST),
]


def _install(monkeypatch, mamba_ssm: bool, triton: bool) -> None:
    monkeypatch.setattr(ss, "mamba_ssm_scan_fn", lambda: object() if mamba_ssm else None)
    monkeypatch.setattr(ss, "triton_scan_module", lambda: object() if triton else None)


@pytest.mark.parametrize(
    "device,has_mamba_ssm,has_triton,expected",
    TABLE,
    ids=[f"{d}-{'mamba_ssm' if m else 'no_mamba_ssm'}-{'triton' if t else 'no_triton'}" for d, m, t, _ in TABLE],
)
def test_automatic_backend_per_device_and_installation(monkeypatch, device, has_mamba_ssm, has_triton, expected):
    _install(monkeypatch, has_mamba_ssm, has_triton)
    names = ss.backends_for(device)
    assert names[0] == expected
    assert names[-2:] == ["chunked", "reference"]  # always there, as the fallback and the oracle
    if device == "cpu":
        assert "triton" not in names and "mamba_ssm" not in names  # never picked automatically on CPU


def test_env_override_and_cpu_errors(monkeypatch):
    u = torch.zeros(1, 2, 3)
    _install(monkeypatch, False, False)
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "chunked")
    assert ss.resolve_backend(None, u) == "chunked"
    assert ss.resolve_backend("reference", u) == "reference"  # the argument beats the variable
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="cannot run on cpu"):
        ss.resolve_backend(None, u)  # compiled Triton needs CUDA tensors


def test_triton_on_cpu_only_by_name_under_the_interpreter(monkeypatch):
    pytest.importorskip("triton")
    if not ss.triton_scan_module().interpreting():
        pytest.skip("triton kernels were compiled (not interpreted) in this process")
    u = torch.zeros(1, 2, 3)
    monkeypatch.delenv("RSMAMBA_SCAN_BACKEND", raising=False)
    assert ss.resolve_backend(None, u) == CPU_FIRST
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "triton")
    assert ss.resolve_backend(None, u) == "triton"


def test_causal_conv_fallback_is_a_left_padded_depthwise_conv(monkeypatch):
    """Without causal_conv1d (or off CUDA), the Mamba block's conv is F.conv1d with groups and
    left padding only: output t sees inputs t-k+1..t and nothing later."""
    monkeypatch.setattr(mamba1d, "_CAUSAL_CONV1D_FN", None)
    torch.manual_seed(0)
    d, k, length = 3, 4, 10
    conv = nn.Conv1d(d, d, k, groups=d, padding=k - 1)
    x = torch.randn(2, d, length)
    y = mamba1d._causal_depthwise_conv(x, conv)
    expected = F.silu(F.conv1d(F.pad(x, (k - 1, 0)), conv.weight, conv.bias, groups=d))
    torch.testing.assert_close(y, expected)
    x2 = x.clone()
    x2[..., 6:] = 100.0  # the future does not leak into the past
    torch.testing.assert_close(mamba1d._causal_depthwise_conv(x2, conv)[..., :6], y[..., :6])


def test_an_unknown_scan_backend_in_the_environment_is_one_cli_line(tmp_path, monkeypatch, capsys) -> None:
    import numpy as np

    from rsmamba.cli import main
    from tests.helpers.rasters import write_raster

    image = write_raster(tmp_path / "img.tif", np.random.default_rng(0).integers(40, 200, (3, 64, 64), np.uint8),
                         res=0.25)
    monkeypatch.setenv("RSMAMBA_SCAN_BACKEND", "bogus")
    assert main(["predict", str(image), "-o", str(tmp_path / "out.tif"), "--no-tta", "--window", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("rsmamba: error: unknown selective-scan backend 'bogus'; known: mamba_ssm, triton, numba, "
                       "chunked, reference (RSMAMBA_SCAN_BACKEND)")
    assert not (tmp_path / "out.tif").exists()
