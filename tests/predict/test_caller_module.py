"""predict_raster with a caller's own nn.Module: handed back as it came; a wrong output width is one line."""

from __future__ import annotations

import pytest
import torch.nn as nn

from rsmamba.errors import InputError
from rsmamba.predict import predict_raster
from tests.helpers.rasters import random_image, write_raster


def test_a_callers_module_comes_back_in_training_mode(tmp_path) -> None:
    """Validation inside a caller's training loop went on with BatchNorm frozen and dropout off."""
    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.Dropout2d(0.1))
    net.train()
    predict_raster(image, tmp_path / "a.tif", model=net, window=64, channels_last=True)
    assert net.training and all(m.training for m in net.modules())
    assert all(p.is_contiguous() for p in net.parameters())
    net.eval()
    predict_raster(image, tmp_path / "b.tif", model=net, window=64)
    assert not net.training  # an eval-mode module stays in eval mode


@pytest.mark.parametrize("channels", [2, 9])
def test_a_module_with_another_output_width_is_one_line(tmp_path, channels) -> None:
    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    with pytest.raises(InputError, match=rf"returns \(1, {channels}, 64, 64\) for a batch, not \(B, 6, H, W\)"):
        predict_raster(image, tmp_path / "a.tif", model=nn.Conv2d(3, channels, 1), window=64, batch_size=1)
