"""K-independence on every x86-64 BLAS kernel and NumPy SIMD level, not just this machine's.

OpenBLAS picks its kernels at run time from the CPU (``OPENBLAS_CORETYPE`` overrides the
choice) and NumPy dispatches its loops by SIMD level (``NPY_DISABLE_CPU_FEATURES`` lowers
it), so one machine can run the rule of ``core/network.py`` as a CPU without AVX-512 would.
Each case runs ``test_bit_identical.py`` in a child process after checking that the child
really got the kernel and the level asked for (an ignored variable would pass silently).
"""
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                                reason="OpenBLAS core types and NumPy levels named here are x86-64's")
BIT_IDENTITY_TESTS = Path(__file__).with_name("test_bit_identical.py")
X86_V3_ONLY = "AVX512_ICL AVX512_SPR X86_V4"         # NumPy's AVX-512 loops off
X86_V2_ONLY = X86_V3_ONLY + " X86_V3"                 # and its AVX2 loops too

# the child's own check: the kernel OpenBLAS runs and the level NumPy's exp dispatches to
CHECK_THEN_TEST = """
import sys, numpy, threadpoolctl, pytest
from numpy.lib.introspect import opt_func_info
kernel = [i["architecture"] for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
level = opt_func_info(func_name="^exp$", signature="float64")["exp"]["dd"]["current"]
want_kernel, want_level = sys.argv[1], sys.argv[2]
assert kernel and (want_kernel == "any" or kernel[0].lower() in want_kernel.lower().split("|")), kernel
assert want_level == "any" or want_level in level, level
print("kernel", kernel[0], "level", level, flush=True)
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", sys.argv[3]]))
"""


def _has_avx512() -> bool:
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


CASES = [  # OPENBLAS_CORETYPE, the kernel(s) the child must report, NumPy features off, level
    pytest.param("Haswell", "Haswell", None, "any", id="openblas-haswell"),
    # this OpenBLAS build runs its Haswell kernels for Zen; another build may have Zen's own
    pytest.param("Zen", "Zen|Haswell", None, "any", id="openblas-zen"),
    pytest.param("Sandybridge", "Sandybridge", None, "any", id="openblas-sandybridge"),
    pytest.param("SkylakeX", "SkylakeX", None, "any", id="openblas-skylakex",
                 marks=pytest.mark.skipif(not _has_avx512(), reason="this CPU has no AVX-512")),
    pytest.param(None, "any", X86_V3_ONLY, "X86_V3", id="numpy-x86_v3"),
    pytest.param(None, "any", X86_V2_ONLY, "X86_V2", id="numpy-x86_v2"),
]


@pytest.mark.parametrize("coretype, kernels, disabled, level", CASES)
def test_variants_are_bit_identical_on_every_kernel(coretype, kernels, disabled, level):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    if disabled:
        env["NPY_DISABLE_CPU_FEATURES"] = disabled
    child = subprocess.run(
        [sys.executable, "-c", CHECK_THEN_TEST, kernels, level, str(BIT_IDENTITY_TESTS)],
        env=env, cwd=BIT_IDENTITY_TESTS.parents[2], capture_output=True, text=True, timeout=900)
    assert child.returncode == 0, f"{coretype or disabled}:\n{child.stdout[-3000:]}\n{child.stderr[-3000:]}"
    assert " passed" in child.stdout and "failed" not in child.stdout
