"""``rsmamba train``: config, trainer (single process or DDP under torchrun), checkpoints and logs.

Names load on first use, so reading and checking a config (``rsmamba.train.config``) needs no torch.
"""

from importlib import import_module

_EXPORTS = {"DEFAULTS": "config", "apply_overrides": "config", "load_config": "config", "TrainResult": "trainer",
            "train": "trainer", "score_checkpoint": "trainer"}

__all__ = ["DEFAULTS", "TrainResult", "apply_overrides", "load_config", "score_checkpoint", "train"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"rsmamba.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rsmamba.train' has no attribute {name!r}")
