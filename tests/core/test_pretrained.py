"""model.pretrained: a torchvision/timm ResNet-18 state dict (the public key layout, written here at a
tiny width) lands in the backbone tensor for tensor; a wrong file names the first misfit in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rsmamba.errors import InputError
from rsmamba.models import create_model
from rsmamba.pretrained import load_pretrained


def torchvision_resnet18_state(width: int = 8, in_chans: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision ``resnet18().state_dict()`` key names and layouts, with channels 64..512 scaled to ``width``."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, c: int) -> None:
        state[f"{prefix}.weight"] = torch.rand(c, generator=g)
        state[f"{prefix}.bias"] = torch.rand(c, generator=g)
        state[f"{prefix}.running_mean"] = torch.rand(c, generator=g)
        state[f"{prefix}.running_var"] = torch.rand(c, generator=g) + 0.5
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(7)

    state["conv1.weight"] = torch.randn(width, in_chans, 7, 7, generator=g)
    bn("bn1", width)
    cin = width
    for i, mult in enumerate((1, 2, 4, 8), start=1):
        planes = width * mult
        for b in range(2):
            p = f"layer{i}.{b}"
            state[f"{p}.conv1.weight"] = torch.randn(planes, cin if b == 0 else planes, 3, 3, generator=g)
            bn(f"{p}.bn1", planes)
            state[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=g)
            bn(f"{p}.bn2", planes)
            if b == 0 and i > 1:
                state[f"{p}.downsample.0.weight"] = torch.randn(planes, cin, 1, 1, generator=g)
                bn(f"{p}.downsample.1", planes)
        cin = planes
    state["fc.weight"] = torch.randn(1000, cin, generator=g)
    state["fc.bias"] = torch.randn(1000, generator=g)
    return state


def test_resnet18_state_dict_lands_in_the_backbone(tmp_path: Path) -> None:
    state = torchvision_resnet18_state(width=8)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)  # a DDP-saved checkpoint
    model = create_model("mafmamba_tiny", num_classes=6, in_chans=4)  # RGB + DSM stacked
    (report,) = load_pretrained(model, path, image_bands=3, dsm=True)
    own = model.state_dict()
    assert torch.equal(own["backbone.layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert torch.equal(own["backbone.layer2.0.downsample.1.running_var"], state["layer2.0.downsample.1.running_var"])
    assert torch.equal(own["backbone.conv1.weight"][:, :3], state["conv1.weight"]) and (
        own["backbone.conv1.weight"][:, 3] == 0).all()  # the DSM channel starts at zero
    assert report.resized == ["conv1.weight"] and report.unused == ["fc.weight", "fc.bias"]
    assert len(report.loaded) == len(state) - 3
    assert not any(n.startswith("backbone.") for n in report.left_random)
    assert any(n.startswith("ammb") for n in report.left_random)


def test_wrong_file_names_the_first_misfit(tmp_path: Path) -> None:
    model = create_model("mafmamba_tiny", num_classes=6)
    wide = tmp_path / "wide.pth"
    torch.save(torchvision_resnet18_state(width=16), wide)
    with pytest.raises(InputError, match=r"tensor conv1.weight has shape \(16, 3, 7, 7\) in the file but \(8, 3, 7, 7\)") as err:
        load_pretrained(model, wide)
    assert "\n" not in str(err.value)
    deeper = torchvision_resnet18_state(width=8)
    deeper["layer1.0.conv3.weight"] = torch.zeros(8, 8, 1, 1)  # a ResNet-50 bottleneck key
    path = tmp_path / "r50ish.pth"
    torch.save(deeper, path)
    with pytest.raises(InputError, match="layer1.0.conv3.weight .* has no place"):
        load_pretrained(model, path)
    with pytest.raises(InputError, match="has no 'backbone'"):
        load_pretrained(create_model("fcn_baseline", width=8), path)
