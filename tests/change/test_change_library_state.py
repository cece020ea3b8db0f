"""detect_change called from Python: epochs that are no regular file refused as the CLI refuses them, and the
caller's random streams handed back."""

from __future__ import annotations

import os

import numpy as np
import torch

from rsmamba.change import detect_change
from rsmamba.synth import write_scene
from tests.helpers.fifo import library_refusals
from tests.helpers.rasters import random_image, write_raster


def test_a_named_pipe_epoch_is_refused_by_the_library_function(tmp_path) -> None:
    """Only the CLI checked: detect_change opened the FIFO with GDAL and waited for a writer for ever."""
    write_raster(tmp_path / "t1.tif", random_image(32, 32))
    os.mkfifo(tmp_path / "pipe.tif")
    got = library_refusals(["from rsmamba.change import detect_change as f; f('t1.tif', 'pipe.tif', 'x.tif')",
                            "from rsmamba.change import detect_change as f; f('pipe.tif', 't1.tif', 'x.tif')"],
                           tmp_path)
    assert got == ["InputError: t2 pipe.tif: not a regular file (a named pipe, socket or device); give the file itself",
                   "InputError: t1 pipe.tif: not a regular file (a named pipe, socket or device); give the file itself"]
    assert not (tmp_path / "x.tif").exists()


def test_the_callers_random_streams_are_handed_back(tmp_path) -> None:
    """Building the network drew from the global torch generator: a seeded script got other numbers after it."""
    scene = write_scene(tmp_path / "scene", size=96, seed=11, gsd=0.5)
    torch.manual_seed(0)
    np.random.seed(0)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(0)
    np.random.seed(0)
    detect_change(scene["ortho_t1"], scene["ortho_t2"], tmp_path / "c.tif", model="mambafcs_tiny", window=96)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
