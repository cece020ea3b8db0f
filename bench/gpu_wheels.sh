#!/usr/bin/env bash
# Wheels for a GPU machine that cannot reach the package registry (the device machines lent to
# sessions: their image has torch, triton, numba, scipy, typer, pytest, but not rasterio).
# Run here, then carry .whl/ with the tree; bench/gpu.sh installs .whl/*.whl first when present.
#   bash bench/gpu_wheels.sh [PYTHON_VERSION]     # default 3.12, the device image's Python
set -euo pipefail
cd "$(dirname "$0")/.."
PYV="${1:-3.12}"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
git_dir="$(git rev-parse --git-common-dir 2>/dev/null || true)"
if [ -n "$git_dir" ] && ! grep -qx '/.whl/' "$git_dir/info/exclude" 2>/dev/null; then
    echo '/.whl/' >>"$git_dir/info/exclude"  # carried, never committed
fi
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
# what `import rsmamba.predict` needs beyond that image (checked: rasterio, affine, cligj, click-plugins)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    "${platforms[@]}" -d .whl rasterio affine cligj click-plugins
du -sh .whl
ls .whl
