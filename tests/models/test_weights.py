"""rsmamba.models.weights: weight files are read without running code, and a refusal says how to go on."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from rsmamba.errors import InputError
from rsmamba.models.weights import load_weights_file


def test_a_training_runs_settings_beside_its_weights_are_refused_with_the_way_on(tmp_path: Path) -> None:
    """A Lightning .ckpt whose hyper_parameters hold an argparse Namespace (or a yacs / omegaconf config) was refused
    with no way on: the weights are in it, beside settings the safe loader cannot rebuild. The refusal now says how
    to save the weights alone; a file naming any other global (os.system) gets no such advice."""
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"args": argparse.Namespace(lr=0.1)}},
               tmp_path / "run.ckpt")
    with pytest.raises(InputError, match=r"\(argparse\.Namespace\); loading it could run code \(a training run's "
                                         r"settings beside its weights\? .*\['state_dict'\], 'weights\.pth'\)") as said:
        load_weights_file(tmp_path / "run.ckpt", "weights")
    # the way on is torch's safe loader with that one class allowed, never weights_only=False; and it works
    assert "weights_only=False" not in str(said.value)
    assert "with torch.serialization.safe_globals([argparse.Namespace]): torch.save(torch.load(FILE)" in str(said.value)
    with torch.serialization.safe_globals([argparse.Namespace]):
        torch.save(torch.load(tmp_path / "run.ckpt")["state_dict"], tmp_path / "weights.pth")
    assert torch.equal(load_weights_file(tmp_path / "weights.pth", "weights")["w"], torch.zeros(2))

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(InputError, match=r"system\); loading it could run code$"):
        load_weights_file(tmp_path / "evil.pth", "weights")


def test_unwrap_state_knows_rsmamba_checkpoints_by_the_format_checkpoint_writes() -> None:
    from rsmamba.checkpoint import FORMAT
    from rsmamba.models.weights import CHECKPOINT_FAMILY, unwrap_state

    assert FORMAT.startswith(CHECKPOINT_FAMILY)
    with pytest.raises(InputError, match="already an rsmamba checkpoint"):
        unwrap_state({"format": FORMAT, "model": "m", "state_dict": {"w": torch.zeros(1)}}, "best.pt")
