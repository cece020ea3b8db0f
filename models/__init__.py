"""Network architectures of rsmamba (installed as ``rsmamba.models``).

Importing this package registers every architecture with the registry.
"""

from rsmamba.models.registry import ModelInfo, create_model, list_models, model_info, register_model

from rsmamba.models import baseline  # noqa: E402,F401  (registers fcn_baseline, siam_diff_baseline)

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]

# Architectures: importing a module registers its presets.
from rsmamba.models import mambaseg  # noqa: E402,F401
from rsmamba.models import mambafcs  # noqa: E402,F401
from rsmamba.models import cmtunet  # noqa: E402,F401
from rsmamba.models import fmtunet  # noqa: E402,F401
from rsmamba.models import mafmamba  # noqa: E402,F401
