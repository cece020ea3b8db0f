"""Stage the package as it installs, for the import-contract check (tests/test_architecture.py).

``models/`` and ``kernels/`` install as ``rsmamba.models`` and ``rsmamba.kernels``
(setuptools ``package-dir``), so the source tree has no folder import-linter could read as one
package; a copy laid out like the installed package has.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stage_package(dest: Path) -> Path:
    """Copy the sources to ``dest/rsmamba`` (with models/ and kernels/ inside) and the contracts beside."""
    ignore = shutil.ignore_patterns("__pycache__", "data")
    shutil.copytree(ROOT / "rsmamba", dest / "rsmamba", ignore=ignore)
    shutil.copytree(ROOT / "models", dest / "rsmamba" / "models", ignore=ignore)
    shutil.copytree(ROOT / "kernels", dest / "rsmamba" / "kernels", ignore=ignore)
    shutil.copy(ROOT / ".importlinter", dest / ".importlinter")
    return dest


def lint_imports(staged: Path) -> subprocess.CompletedProcess:
    """Run import-linter over a staged copy (the installed package stays out of its way)."""
    env = {**os.environ, "PYTHONPATH": str(staged)}
    return subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
                           cwd=staged, env=env, capture_output=True, text=True, timeout=300)
