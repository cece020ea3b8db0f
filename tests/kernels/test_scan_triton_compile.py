"""The Triton scan kernels compile for a Hopper GPU (sm_90) on a machine without one.

The interpreter runs the kernels' Python semantics but not Triton's compiler, which has its own
rules (types carried through loops, constexpr branches, layouts). Triton can compile ahead of
time for a named target with the ptxas it ships, so CI checks here that the forward and the
backward, plain and as the fused cross-scan, float32 and bfloat16, build down to a cubin.
Runs in a subprocess: conftest switches this process's triton to the interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

SCRIPT = r"""
import triton, triton.language as tl
from triton.compiler import ASTSource
from triton.backends.compiler import GPUTarget
from rsmamba.kernels import scan_triton as st

def signature(fn, pointers, consts):
    return {a: "constexpr" if a in consts else pointers.get(a, "*fp32") if a.endswith("_ptr") else "i32"
            for a in fn.arg_names}

cases = [(st._scan_fwd_kernel, False, True, "*fp32", {"SAVE_CKPT": True}),
         (st._scan_bwd_kernel, True, False, "*bf16", {})]
for kernel, cross, has_z, dtype, extra in cases:
    consts = dict(ACC=tl.float32, BLOCK_D=16, BLOCK_N=16, CHUNK_T=64, HAS_D=True, HAS_Z=has_z, HAS_BIAS=True,
                  SOFTPLUS=True, CROSS=cross, **extra)
    pointers = {p: dtype for p in ("u_ptr", "delta_ptr", "B_ptr", "C_ptr", "z_ptr")}
    compiled = triton.compile(ASTSource(kernel, signature(kernel, pointers, consts), constexprs=consts),
                              target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
    assert ".target sm_90" in compiled.asm["ptx"] and len(compiled.asm["cubin"]) > 1000
    print("compiled", kernel.__name__, "cross" if cross else "plain", dtype)
"""


def test_kernels_compile_for_sm90(tmp_path):
    try:
        from triton.backends import backends
    except Exception:
        pytest.skip("this triton has no backend registry")
    if "nvidia" not in backends:
        pytest.skip("this triton build has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)  # really compile, and leave the user's cache alone
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("compiled") == 2
