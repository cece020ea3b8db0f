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


class Twice(nn.Module):
    """The main head and an auxiliary one, as many segmentation networks return them."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.conv, self.kind = nn.Conv2d(3, 6, 1), kind

    def forward(self, x):
        y = self.conv(x)
        return (y, y * 0) if self.kind == "tuple" else {"logits": y}


def test_a_tuple_answer_is_its_main_head_and_an_unknown_dict_is_one_line(tmp_path) -> None:
    image = write_raster(tmp_path / "img.tif", random_image(64, 64))
    predict_raster(image, tmp_path / "a.tif", model=Twice("tuple"), window=64)  # was AttributeError on .dim
    with pytest.raises(InputError, match=r"returns a dict of \['logits'\]; predict reads its 'out' or 'seg'"):
        predict_raster(image, tmp_path / "b.tif", model=Twice("dict"), window=64)  # was KeyError 'seg'


def test_a_change_model_of_another_output_width_is_one_line(tmp_path) -> None:
    from rsmamba.change import detect_change

    class ChangeWrong(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(6, 3, 1)

        def forward(self, a, b):
            import torch

            return self.conv(torch.cat([a, b], 1))

    t1 = write_raster(tmp_path / "t1.tif", random_image(64, 64))
    t2 = write_raster(tmp_path / "t2.tif", random_image(64, 64, seed=1))
    with pytest.raises(InputError, match=r"as 'change' for a batch, not \(B, 2, H, W\)"):
        detect_change(t1, t2, tmp_path / "c.tif", model=ChangeWrong(), window=64, force=True)
