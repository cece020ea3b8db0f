"""The layers of docs/architecture.md hold: import contracts, no private names across packages,
one definition per name in models/ and kernels/."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.helpers.architecture import ROOT, lint_imports, stage_package


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    return stage_package(tmp_path_factory.mktemp("staged"))


def test_import_contracts_are_kept(staged: Path) -> None:
    result = lint_imports(staged)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    # a kernel that reaches up to the CLI: the layers contract breaks
    ("rsmamba/kernels/cross_scan.py", "import rsmamba.cli", "CLI -> verbs"),
    # the engine (core) reaching up to a verb
    ("rsmamba/engine/run.py", "import rsmamba.predict.api", "CLI -> verbs"),
    # a shared layer importing an architecture
    ("rsmamba/models/layers.py", "import rsmamba.models.cmtunet", "Within models"),
    # a cycle between two sibling modules
    ("rsmamba/jobs/plan.py", "import rsmamba.jobs.run", "No import cycles"),
])
def test_a_back_import_breaks_a_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    staged = stage_package(tmp_path)
    target = staged / module
    target.write_text(target.read_text() + f"\n{line}  # deliberately introduced\n")
    result = lint_imports(staged)
    assert result.returncode != 0, result.stdout
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout, result.stdout


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[0] in ("models", "kernels"):
        parts = ["rsmamba", *parts]
    return ".".join(parts[:-1])


def _sources() -> list[Path]:
    return [p for d in ("rsmamba", "models", "kernels") for p in sorted((ROOT / d).rglob("*.py"))]


def test_no_private_name_is_imported_from_another_package() -> None:
    offenders = []
    for path in _sources():
        package = _package_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rsmamba"):
                source_package = node.module.rsplit(".", 1)[0] if node.module.count(".") else node.module
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private and not (source_package == package or node.module == package):
                    offenders.append(f"{path.relative_to(ROOT)}: from {node.module} import {', '.join(private)}")
    assert not offenders, "\n".join(offenders)


def test_models_and_kernels_define_each_name_once() -> None:
    defined = defaultdict(list)
    for path in [*sorted((ROOT / "models").glob("*.py")), *sorted((ROOT / "kernels").glob("*.py"))]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                defined[node.name].append(str(path.relative_to(ROOT)))
    twice = {name: files for name, files in defined.items() if len(files) > 1}
    assert not twice, twice


@pytest.mark.parametrize("verb", ["change", "evaluate", "predict", "synth", "tile", "train", "vectorize"])
def test_each_verb_lists_its_public_names(verb: str) -> None:
    """docs/architecture.md: a verb's library function is in its package 'with __all__' (tile and evaluate had
    none: `import *` took every helper they import)."""
    import importlib

    module = importlib.import_module(f"rsmamba.{verb}")
    names = module.__dict__.get("__all__")
    assert names, f"rsmamba.{verb} has no __all__"
    assert all(not name.startswith("_") and getattr(module, name, None) is not None for name in names)
