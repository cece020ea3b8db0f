"""``rsmamba train``: config, trainer (single process or DDP under torchrun), checkpoints and logs."""

from rsmamba.train.config import DEFAULTS, apply_overrides, load_config
from rsmamba.train.trainer import TrainResult, train

__all__ = ["DEFAULTS", "TrainResult", "apply_overrides", "load_config", "train"]
