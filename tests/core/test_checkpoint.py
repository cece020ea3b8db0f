"""A checkpoint that does not fit its model says how, in one line: keys, shapes, classes, format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rsmamba.checkpoint import FORMAT, build_from_checkpoint, load_checkpoint, save_checkpoint
from rsmamba.errors import InputError

DEMO = Path(__file__).resolve().parents[2] / "rsmamba" / "data" / "demo_image_model.pt"


def _edited(tmp_path: Path, name: str, **changes) -> Path:
    ckpt = load_checkpoint(DEMO)
    return save_checkpoint(tmp_path / name, {**ckpt, **changes})


def test_weights_that_do_not_fit_name_the_missing_unexpected_and_reshaped_tensors(tmp_path: Path) -> None:
    state = dict(load_checkpoint(DEMO)["state_dict"])
    first = [k for k in state if k.startswith("decoder.")][0]
    state.pop(first)
    state["extra.weight"] = torch.zeros(1)
    key = "backbone.conv1.weight"
    state[key] = torch.zeros(3, *state[key].shape[1:])
    path = _edited(tmp_path, "bad.pt", state_dict=state)
    with pytest.raises(InputError) as info:
        build_from_checkpoint(path, ("segmentation",), "predict")
    message = str(info.value)
    assert f"1 missing ({first})" in message and "1 unexpected (extra.weight)" in message
    assert f"{key} (3, " in message and "\n" not in message


def test_a_class_table_that_does_not_match_the_head_is_refused(tmp_path: Path) -> None:
    classes = load_checkpoint(DEMO)["classes"]
    with pytest.raises(InputError, match="the model has 6 outputs, its class table names 3 classes"):
        build_from_checkpoint(_edited(tmp_path, "few.pt", classes=classes[:3]), ("segmentation",), "predict")
    nameless = [{"id": c["id"]} for c in classes]
    with pytest.raises(InputError, match="classes need an integer id and a name"):
        load_checkpoint(_edited(tmp_path, "nameless.pt", classes=nameless))


def test_a_checkpoint_of_a_newer_format_says_so(tmp_path: Path) -> None:
    newer = FORMAT.rsplit("/", 1)[0] + "/99"
    with pytest.raises(InputError, match=f"checkpoint format {newer}, this rsmamba reads {FORMAT}"):
        load_checkpoint(_edited(tmp_path, "newer.pt", format=newer))


def test_bare_weights_given_as_a_checkpoint_point_to_import_weights(tmp_path: Path) -> None:
    """The authors' released weights (a bare or wrapped state dict) given to predict --model or train --init were
    'not an rsmamba checkpoint', which left the user to find the command that makes them one."""
    state = {"conv.weight": torch.zeros(2, 3, 1, 1)}
    for name, data in (("bare.pth", state), ("wrapped.pth", {"state_dict": state, "epoch": 3})):
        torch.save(data, tmp_path / name)
        with pytest.raises(InputError, match=rf"not an rsmamba checkpoint .*rsmamba import-weights .*{name} -c RECIPE"):
            load_checkpoint(tmp_path / name)
    torch.save({"epoch": 3}, tmp_path / "other.pth")  # no weights: no such advice
    with pytest.raises(InputError, match=r"not an rsmamba checkpoint \(expected format [^)]*\)$"):
        load_checkpoint(tmp_path / "other.pth")


def test_numpy_scalars_are_saved_as_python_numbers(tmp_path: Path) -> None:
    """The safe loader refuses NumPy scalars: a checkpoint is written without them."""
    import numpy as np

    ckpt = load_checkpoint(DEMO)
    norm = {**ckpt["normalization"], "dsm": {"mode": "zscore", "mean": np.float64(39.5), "std": 3.9}}
    path = save_checkpoint(tmp_path / "np.pt", {**ckpt, "normalization": norm, "metrics": {"val_miou": np.float32(0.5)}})
    again = load_checkpoint(path)
    assert type(again["normalization"]["dsm"]["mean"]) is float and type(again["metrics"]["val_miou"]) is float


def test_a_tensor_viewing_a_larger_storage_is_saved_alone(tmp_path: Path) -> None:
    """torch.save writes a tensor's whole storage: one weight slicing a 40 MB buffer made a 2.3 MB state dict a
    42 MB checkpoint. A view is saved as a copy of its values; tensors sharing one storage whole stay shared."""
    ckpt = load_checkpoint(DEMO)
    state = dict(ckpt["state_dict"])
    name = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    big = torch.zeros(10**7)  # 40 MB
    view = big[: state[name].numel()].view_as(state[name])
    view.copy_(state[name])
    plain = save_checkpoint(tmp_path / "plain.pt", ckpt).stat().st_size
    path = save_checkpoint(tmp_path / "view.pt", {**ckpt, "state_dict": {**state, name: view}})
    assert path.stat().st_size < plain + 100_000, (path.stat().st_size, plain)
    assert torch.equal(load_checkpoint(path)["state_dict"][name], state[name])
    assert view.untyped_storage().data_ptr() == big.untyped_storage().data_ptr()  # (the caller's left as they were)


def test_a_checkpoint_with_nan_weights_is_refused(tmp_path: Path) -> None:
    """A diverged run's best.pt predicted class 0 everywhere, exit 0."""
    ckpt = load_checkpoint(DEMO)
    state = dict(ckpt["state_dict"])
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone().fill_(float("nan"))
    path = save_checkpoint(tmp_path / "nan.pt", {**ckpt, "state_dict": state})
    with pytest.raises(InputError, match="NaN or inf"):
        build_from_checkpoint(path, ("segmentation",), "predict")
    from rsmamba.models import create_model
    from rsmamba.train.init import init_from_checkpoint

    model = create_model(ckpt["model"], **ckpt["model_kwargs"])  # train --init: NaN losses from the first step
    with pytest.raises(InputError, match="NaN or inf"):
        init_from_checkpoint(model, path, image_bands=3, dsm=True, num_classes=ckpt["model_kwargs"]["num_classes"])


def test_a_device_torch_cannot_parse_is_one_line() -> None:
    from rsmamba.engine.model import torch_device

    with pytest.raises(InputError, match="--device '../x': not a device"):
        torch_device("../x")


@pytest.mark.parametrize("device", ["xpu", "meta", "xla"])
def test_a_device_torch_parses_but_rsmamba_cannot_run_on_is_one_line(device, tmp_path, capsys) -> None:
    """xpu, meta, xla: parsed by torch, then a traceback (exit 1) at the first tensor moved, in predict, change
    and train."""
    from rsmamba.cli import main
    from rsmamba.engine.model import torch_device

    with pytest.raises(InputError, match=f"train.device {device}: rsmamba runs on cpu, cuda, mps"):
        torch_device(device, "train.device")
    assert main(["predict", str(tmp_path / "any.tif"), "-o", str(tmp_path / "o.tif"), "--device", device]) == 2
    assert f"--device '{device}': not a device rsmamba runs on" in capsys.readouterr().err
    assert torch_device("cpu:0").type == "cpu"


def test_a_full_disk_while_saving_a_checkpoint_is_one_line(tmp_path, monkeypatch) -> None:
    """train on a full disk: torch.save's 'unexpected pos 845376 vs 845272' was a traceback, exit 1."""
    import torch

    import rsmamba.atomic as atomic
    from rsmamba.atomic import OutputError
    from rsmamba.checkpoint import save_checkpoint
    from tests.helpers.predict_models import tiny_rgb_checkpoint

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 845376 vs 845272")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(atomic, "NO_ROOM_BYTES", 1 << 62)
    with pytest.raises(OutputError, match="no space left on device while writing"):
        save_checkpoint(tmp_path / "last.pt", tiny_rgb_checkpoint())
    monkeypatch.setattr(atomic, "NO_ROOM_BYTES", 0)  # room enough: torch's error is another one
    with pytest.raises(RuntimeError, match="unexpected pos"):
        save_checkpoint(tmp_path / "last.pt", tiny_rgb_checkpoint())
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("key, value", [("in_chans", 10**5), ("num_classes", 10**6)])
def test_absurd_model_kwargs_are_refused_before_any_weight_is_allocated(tmp_path, monkeypatch, key, value) -> None:
    """A checkpoint's model_kwargs of in_chans 1e7 or num_classes 1e9 had 16 or 64 GB allocated before its
    weights were compared, and the failure blamed --window (QA): the network is first built on the meta device,
    without memory, and compared with the weights there."""
    import rsmamba.models as models

    ckpt = torch.load(DEMO, map_location="cpu", weights_only=True)
    torch.save({**ckpt, "model_kwargs": {**ckpt["model_kwargs"], key: value}}, tmp_path / "odd.pt")
    devices, real = [], models.create_model

    def create_model(*args, **kwargs):
        devices.append(torch.get_default_device().type)
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "create_model", create_model)
    with pytest.raises(InputError, match=r"odd.pt: weights do not fit model 'cmtunet_tiny' with its model_kwargs: .*"
                                         rf"vs \(.*{value}"):
        build_from_checkpoint(tmp_path / "odd.pt", ("segmentation",), "predict")
    assert devices == ["meta"]
    build_from_checkpoint(DEMO, ("segmentation",), "predict")  # a fitting one is built for real after
    assert devices == ["meta", "meta", "cpu"]
