"""ResNet backbones for the hybrid models, written without torchvision.

* :class:`ResNet` — the classic (v1.5) ResNet-18/50 used by CMT-UNet and MAFMamba, returning the
  four stage outputs (strides 4, 8, 16, 32). Parameter names follow torchvision/timm
  (``conv1``, ``bn1``, ``layer1`` ...) so ImageNet weights saved locally load through
  ``model.pretrained`` (:mod:`rsmamba.pretrained`).
* :class:`ResNetV2` — the pre-activation ResNet with weight-standardised convolutions and
  GroupNorm of BiT / TransUNet (R50 units (3, 4, 9)), the two streams of FMTUNet.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor



class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck with the stride on the 3x3 (ResNet v1.5, ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_RESNET_LAYOUTS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet feature extractor: ``forward`` returns the outputs of layer1..layer4.

    ``width`` scales every stage (64 is the standard network; tiny presets use 8 or 16).
    """

    def __init__(self, depth: int = 18, in_chans: int = 3, width: int = 64) -> None:
        super().__init__()
        if depth not in _RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(_RESNET_LAYOUTS)}, got {depth}")
        block, layers = _RESNET_LAYOUTS[depth]
        self.conv1 = nn.Conv2d(in_chans, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        self.channels: list[int] = []
        for i, n in enumerate(layers):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, stride=2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion  # type: ignore[attr-defined]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.channels.append(cin)

    def stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.act1(self.bn1(self.conv1(x))))

    def stages(self) -> list[nn.Module]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages():
            x = stage(x)
            feats.append(x)
        return feats


class StdConv2d(nn.Conv2d):
    """Convolution with weight standardisation (BiT): zero-mean, unit-variance filters."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        var, mean = torch.var_mean(w, dim=[1, 2, 3], keepdim=True, unbiased=False)
        w = (w - mean) / torch.sqrt(var + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _groups(channels: int, groups: int = 32) -> int:
    """GroupNorm groups: 32 when it divides the channels (paper width), else the largest divisor."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return g


class PreActBottleneck(nn.Module):
    """The ResNetV2 bottleneck of TransUNet (stride on the 3x3, GroupNorm after each conv)."""

    def __init__(self, cin: int, cout: int, cmid: int, stride: int = 1) -> None:
        super().__init__()
        self.gn1 = nn.GroupNorm(_groups(cmid), cmid, eps=1e-6)
        self.conv1 = StdConv2d(cin, cmid, 1, bias=False)
        self.gn2 = nn.GroupNorm(_groups(cmid), cmid, eps=1e-6)
        self.conv2 = StdConv2d(cmid, cmid, 3, stride, 1, bias=False)
        self.gn3 = nn.GroupNorm(_groups(cout), cout, eps=1e-6)
        self.conv3 = StdConv2d(cmid, cout, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = StdConv2d(cin, cout, 1, stride, bias=False)
            self.gn_proj = nn.GroupNorm(cout, cout)

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.gn_proj(self.downsample(x))
        y = self.relu(self.gn1(self.conv1(x)))
        y = self.relu(self.gn2(self.conv2(y)))
        y = self.gn3(self.conv3(y))
        return self.relu(residual + y)


class ResNetV2(nn.Module):
    """ResNetV2 (R50 units (3, 4, 9) in TransUNet): a root at stride 2 and three blocks.

    Exposed piecewise (``root``, ``pool``, ``body``) because FMTUNet fuses two streams between
    the blocks. Channels: root ``width``, blocks ``4w, 8w, 16w`` at strides 4, 8, 16.
    """

    def __init__(self, in_chans: int = 3, units: tuple[int, ...] = (3, 4, 9), width: int = 64, pool_padding: int = 1) -> None:
        super().__init__()
        self.width = width
        self.root = nn.Sequential(
            OrderedDict(
                conv=StdConv2d(in_chans, width, 7, 2, 3, bias=False),
                gn=nn.GroupNorm(_groups(width), width, eps=1e-6),
                relu=nn.ReLU(inplace=True),
            )
        )
        # Padding 1 by default; TransUNet / FMTUNet pad none (pool_padding=0) and zero-fill the
        # smaller skips to the expected size (see FMTUNet's DualResNetV2).
        self.pool = nn.MaxPool2d(3, 2, pool_padding)
        blocks = []
        cin = width
        for i, n in enumerate(units):
            cout, cmid = width * 4 * 2**i, width * 2**i
            units_i = [PreActBottleneck(cin, cout, cmid, stride=1 if i == 0 else 2)]
            units_i += [PreActBottleneck(cout, cout, cmid) for _ in range(n - 1)]
            blocks.append(nn.Sequential(*units_i))
            cin = cout
        self.body = nn.ModuleList(blocks)
        self.channels = [width] + [width * 4 * 2**i for i in range(len(units))]

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = [self.root(x)]
        x = self.pool(feats[0])
        for block in self.body:
            x = block(x)
            feats.append(x)
        return feats

