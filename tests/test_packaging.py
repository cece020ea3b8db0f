"""The one distribution installs rsmamba, rsmamba.models and rsmamba.kernels, nothing top-level."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _listed_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def test_every_subpackage_is_listed_in_pyproject() -> None:
    mapping = {"rsmamba": ROOT / "rsmamba", "rsmamba.models": ROOT / "models", "rsmamba.kernels": ROOT / "kernels"}
    found = set()
    for prefix, folder in mapping.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            found.add(".".join([prefix, *rel.parts]) if rel.parts else prefix)
    assert found == _listed_packages()


def test_models_and_kernels_import_under_rsmamba() -> None:
    import rsmamba.kernels
    import rsmamba.models

    assert Path(rsmamba.models.__file__).parent == ROOT / "models"
    assert Path(rsmamba.kernels.__file__).parent == ROOT / "kernels"


def test_cli_lists_every_verb(capsys) -> None:
    from rsmamba.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("tile", "synth", "train", "evaluate", "predict", "change", "vectorize", "models"):
        assert verb in out
