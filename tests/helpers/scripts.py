"""Load a script of bench/ or examples/ as a module (they are not packages), with its neighbours importable."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.helpers.rasters import ROOT


def load_script(relative: str, name: str) -> ModuleType:
    """``relative`` to the repository root, e.g. ``"bench/cards.py"``; bench/ and examples/ go on sys.path,
    since bench scripts import the recipe (``make_demo_models``)."""
    for folder in ("bench", "examples"):
        if str(ROOT / folder) not in sys.path:
            sys.path.insert(0, str(ROOT / folder))
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
