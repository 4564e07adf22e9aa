"""The numerical environment a sweep trained in, as ``env.*`` params of its parent run.

Training is deterministic on one machine, but NumPy's BLAS build, the BLAS kernel it runs
(OpenBLAS picks one per CPU; ``OPENBLAS_CORETYPE`` overrides it) and the SIMD level NumPy's
loops dispatch to decide the last bits of a floating-point result (never the pack a variant
trained in: see ``core/network.py``). `sweeps verify` compares these
params with the machine it runs on, so a difference in the numbers can be told apart:
"another BLAS or CPU" versus "the logged params do not reproduce the run".

`numerics_fingerprint` is the part of that which decides a variant's bits, recorded on every
child run (``sweep.numerics``) by the process that trained it: a sweep reuses a stored variant
only under an equal fingerprint (`sweeps.tracking.reuse`).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import numpy as np

import core

PREFIX = "env."


def machine_params() -> dict[str, str]:
    """``env.numpy``, ``env.blas``, ``env.blas_kernel``, ``env.simd``, ``env.cpu``,
    ``env.python`` of this process."""
    build, detail, simd = _numpy_build()
    return {
        f"{PREFIX}numpy": np.__version__,
        f"{PREFIX}blas": f"{build} ({detail})" if detail else build,
        f"{PREFIX}blas_kernel": _blas_kernel(),
        f"{PREFIX}simd": " ".join(simd) or "none",
        f"{PREFIX}cpu": f"{platform.machine()} {_cpu_model()}".strip(),
        f"{PREFIX}python": platform.python_version(),
    }


def _numpy_build() -> tuple[str, str, list[str]]:
    """(BLAS name and version, OpenBLAS's configuration line or "", SIMD levels found)."""
    config = _numpy_config()
    blas = config.get("Build Dependencies", {}).get("blas", {}) or {}
    build = " ".join(str(blas.get(k, "")) for k in ("name", "version")).strip() or "unknown"
    simd = (config.get("SIMD Extensions", {}) or {}).get("found", []) or []
    return build, blas.get("openblas configuration") or "", list(simd)


@functools.lru_cache(maxsize=1)
def numerics_fingerprint() -> str:
    """What a variant's numbers depend on beyond its key (its settings and data), as one line:
    core's ``NUMERICS_VERSION``, NumPy's version (its ufunc loops: exp, tanh, log), the BLAS
    build and the kernel it picked for this CPU at run time (OpenBLAS's ``DYNAMIC_ARCH``
    chooses Haswell, SkylakeX, ... by CPUID: another kernel sums a matmul in another order),
    and the SIMD extensions NumPy dispatches to. Not in it: the CPU's model name (two CPUs
    that take the same code paths give the same bits), the Python version (core's arithmetic
    is NumPy's) and BLAS threads (workers run one; a GEMM splits rows, not its sums, among
    threads). No single quotes, so it fits in an MLflow filter string.
    """
    build, _, simd = _numpy_build()
    text = (f"core={core.NUMERICS_VERSION} numpy={np.__version__} blas={build} "
            f"kernel={_blas_kernel()} simd={'+'.join(simd) or 'none'}")
    return text.replace("'", "")


def machine_differences(logged: dict[str, str]) -> list[str]:
    """Lines ``env.blas: <logged> -> <here>`` for every env param that differs from now.

    logged : the parent run's params (other keys are ignored); none logged -> one line
    saying the sweep did not record its environment.
    """
    here = machine_params()
    recorded = {k: v for k, v in logged.items() if k.startswith(PREFIX)}
    if not recorded:
        return ["the sweep recorded no env.* params (logged before they existed)"]
    return [f"{key}: {recorded.get(key, '(not recorded)')} -> {value}"
            for key, value in here.items() if recorded.get(key) != value]


def _numpy_config() -> dict:
    try:
        return np.show_config(mode="dicts") or {}
    except Exception:  # noqa: BLE001 - NumPy < 1.26 has no dicts mode
        return {}


def _blas_kernel() -> str:
    """The kernel NumPy's BLAS runs here (OpenBLAS: ``Haswell``, ``SkylakeX``, ...)."""
    try:
        from threadpoolctl import threadpool_info
        return " ".join(sorted({str(lib.get("architecture")) for lib in threadpool_info()
                                if lib.get("user_api") == "blas"})) or "unknown"
    except Exception:  # noqa: BLE001 - threadpoolctl absent or unable to read the library
        return "unknown"


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
