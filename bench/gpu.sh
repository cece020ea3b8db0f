#!/usr/bin/env bash
# The prepared GPU check of issue #19, one call on a fresh GPU machine (< 8 min):
#   1. installs what it needs (rsmamba[dev,cuda] from the package registry; wheels in .whl/ when the
#      machine has no network; mamba-ssm tried with a short timeout, the run carries on without it),
#   2. runs the CUDA/Triton equality tests,
#   3. times the scan backends and `rsmamba predict` per paper model (bench/gpu.py),
#   4. writes bench/results/gpu.json (schema: bench/README.md).
# Without a GPU (or with RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU=1) it says so, installs nothing, writes
# nothing and exits 0.
#
#   bash bench/gpu.sh                 # everything
#   bash bench/gpu.sh --no-install    # use what is installed
#   bash bench/gpu.sh --quick         # other arguments go to bench/gpu.py
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3
fi
INSTALL=1
ARGS=()
for arg in "$@"; do
    case "$arg" in
        --no-install) INSTALL=0 ;;
        *) ARGS+=("$arg") ;;
    esac
done
LOGS="$(mktemp -d)"
TOTAL="${RSMAMBA_GPU_CHECK_SECONDS:-470}"  # the whole call stays under 8 minutes
left() { echo $(( TOTAL - SECONDS )); }

has_gpu() {
    [ "${RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU:-0}" = 0 ] || return 1
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then return 0; fi
    "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1
}

if ! has_gpu; then
    if [ "${RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU:-0}" != 0 ]; then why="RSMAMBA_GPU_CHECK_SIMULATE_NO_GPU is set"
    else why="no CUDA device found (nvidia-smi / torch.cuda)"
    fi
    echo "no GPU: $why; nothing installed, nothing measured, bench/results/gpu.json left as it is"
    exit 0
fi

echo "== GPU: $(nvidia-smi -L 2>/dev/null | head -1)"
if [ "$INSTALL" = 1 ]; then
    echo "== install (log: $LOGS/install.log)"
    {
        if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then  # carried wheels: a machine without network
            "$PY" -m pip install -q --no-index --no-deps --no-build-isolation .whl/*.whl
        fi
        if timeout 20 "$PY" -m pip download -q --no-deps --retries 0 --timeout 5 -d "$LOGS/probe" typer; then
            timeout 150 "$PY" -m pip install -q --retries 1 --timeout 20 -e ".[dev,cuda]" \
                || echo "install of .[dev,cuda] failed or timed out"
            timeout 60 "$PY" -m pip install -q --retries 0 --timeout 20 --no-build-isolation mamba-ssm causal-conv1d \
                || echo "mamba-ssm / causal-conv1d not installed (no wheel for this torch/CUDA, or no compile in time): carrying on without"
        else
            echo "package registry unreachable: using what is installed"
        fi
        "$PY" -c "import rsmamba" 2>/dev/null \
            || "$PY" -m pip install -q --no-deps --no-build-isolation -e . \
            || echo "rsmamba itself could not be installed"
    } >"$LOGS/install.log" 2>&1
    tail -5 "$LOGS/install.log"
fi

echo "== equality tests on CUDA (log: $LOGS/tests.log)"
timeout $(( $(left) / 3 )) "$PY" -m pytest -q -p no:cacheprovider tests/kernels/test_scan_triton.py tests/kernels/test_scan_dispatch.py \
    "tests/kernels/test_selective_scan.py::test_mamba_ssm_backend_matches_reference_on_cuda" 2>&1 | tee "$LOGS/tests.log"
tests_rc=${PIPESTATUS[0]}

echo "== timings"
install_log=()
[ -f "$LOGS/install.log" ] && install_log=(--install-log "$LOGS/install.log")
bench_s=$(( $(left) - 10 ))
# predict runs start only while --budget lasts (about 60 s is left for the last model's run)
timeout "$bench_s" "$PY" bench/gpu.py --budget $(( bench_s - 70 )) --tests-log "$LOGS/tests.log" \
    "${install_log[@]}" "${ARGS[@]}"
bench_rc=$?
[ "$bench_rc" = 0 ] || exit "$bench_rc"
exit "$tests_rc"
