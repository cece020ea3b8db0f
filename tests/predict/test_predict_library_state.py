"""predict_raster called from Python: inputs that are no regular file refused as the CLI refuses them, and the
caller's random streams handed back."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from rsmamba.checkpoint import save_checkpoint
from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from tests.helpers.fifo import library_refusals
from tests.helpers.predict_models import tiny_rgb_checkpoint
from tests.helpers.rasters import random_image, write_raster


def test_a_named_pipe_image_or_dsm_is_refused_by_the_library_function(tmp_path) -> None:
    """Only the CLI checked: predict_raster opened the FIFO with GDAL and waited for a writer for ever."""
    write_raster(tmp_path / "img.tif", random_image(32, 32))
    os.mkfifo(tmp_path / "pipe.tif")
    got = library_refusals(["from rsmamba.predict import predict_raster as f; f('pipe.tif', 'x.tif')",
                            "from rsmamba.predict import predict_raster as f; f('img.tif', 'x.tif', dsm='pipe.tif')"],
                           tmp_path)
    refused = "pipe.tif: not a regular file (a named pipe, socket or device); give the file itself"
    assert got == [f"InputError: image {refused}", f"InputError: DSM {refused}"]
    assert not (tmp_path / "x.tif").exists()


def test_the_callers_random_streams_are_handed_back(tmp_path) -> None:
    """Building the network before its weights load drew from the global torch generator: a seeded script got
    other numbers after a predict_raster call, a failed one too."""
    image = write_raster(tmp_path / "img.tif", random_image(48, 48))
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(checkpoint, tiny_rgb_checkpoint())
    for bands in (None, [0]):  # a run, and one refused after the model was built
        torch.manual_seed(0)
        np.random.seed(0)
        expected = torch.rand(3), np.random.rand(3)
        torch.manual_seed(0)
        np.random.seed(0)
        if bands is None:
            predict_raster(image, tmp_path / "out.tif", model=checkpoint, window=32, overlap=8, overwrite=True)
        else:
            with pytest.raises(InputError):
                predict_raster(image, tmp_path / "out.tif", model=checkpoint, bands=bands, overwrite=True)
        assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
