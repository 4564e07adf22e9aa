#!/usr/bin/env bash
# Create the virtualenv VENV (default .venv) with the pinned packages: `make venv` runs this.
#
# The installer is uv (a PyPI package, pinned in constraints.txt), installed into the venv with
# the venv's own pip: it resolves and installs the ~120 pinned wheels several times faster
# than pip. INSTALLER=pip installs with pip alone, and pip is used anyway, with a message,
# when uv cannot be installed or fails. Both read the same constraints.txt.
#
# uv does not read pip's configuration (pip.conf, PIP_* variables): it uses PyPI, or the
# indexes given by its own UV_* variables (UV_INDEX_URL, UV_CACHE_DIR, ...).
#
# Both installers compile every module they install to bytecode (.pyc): pip by default, uv
# only when asked (--compile-bytecode). Where PYTHONDONTWRITEBYTECODE is set (as on the
# development machines and in the Docker image) Python never writes a .pyc itself, so without
# them every process (the driver, each Ray worker, the plot helper) compiles MLflow, Ray and
# pandas from source on every start: measured here, `import mlflow` 2.9 s instead of 1.1 s and
# `sweeps run configs/card.yaml` 15.2 s instead of 8.7 s. It costs a new venv ~14 s once (20 s
# instead of 6 with uv's cache warm).
# uv compiles only what it installs, so a venv made before (nothing left to install) is
# compiled by compileall, which skips every module whose .pyc is current (~2 s when all are).
#
# search.method: gp runs on PyTorch, the optional `gp` extra. PyPI offers only its CUDA build
# (~3.8 GB with its libraries), so it is not installed from there. Where pip is configured to
# reach a CPU-only build of the pinned version (a find-links directory, or
# https://download.pytorch.org/whl/cpu as an index), that build is installed (~190 MB, ~30 s),
# and gp works and is tested; elsewhere gp's tests skip, saying why. TORCH=no leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${1:-.venv}
INSTALLER=${INSTALLER:-uv}
BIN=$VENV/bin

existing=yes
[ -x "$BIN/python" ] || { "$PYTHON" -m venv "$VENV"; existing=; }

with_pip() {
    "$BIN/python" -m pip install --quiet --upgrade "pip>=24"
    "$BIN/python" -m pip install --quiet --compile -c constraints.txt -e '.[dev]'
}

with_uv() {
    "$BIN/python" -m pip install --quiet -c constraints.txt uv &&
        "$BIN/uv" pip install --quiet --compile-bytecode --python "$BIN/python" \
            -c constraints.txt -e '.[dev]'
}

with_cpu_torch() {
    local version
    version=$(sed -n 's/^torch==//p' constraints.txt)
    # The gp extra's packages. The local label "+cpu" matches only a CPU build: PyPI (no
    # local labels) never does.
    "$BIN/python" -m pip install --quiet --only-binary=:all: -c constraints.txt \
        "torch==$version+cpu" greenlet 2>/dev/null ||
        echo "make_venv: no CPU build of torch $version reachable by pip;" \
            "search.method: gp stays unavailable (its tests skip)" >&2
}

case "$INSTALLER" in
    pip) with_pip ;;
    uv) with_uv || { echo "make_venv: installing with uv failed; using pip" >&2; with_pip; } ;;
    *) echo "make_venv: INSTALLER must be uv or pip, not '$INSTALLER'" >&2; exit 2 ;;
esac
[ "${TORCH:-yes}" = no ] || "$BIN/python" -c 'import torch, greenlet' 2>/dev/null || with_cpu_torch

if [ -n "$existing" ]; then
    # Modules that fail to compile (test data, other Pythons' syntax) are skipped, as pip and
    # uv skip them.
    "$BIN/python" -m compileall -q -j 0 \
        "$("$BIN/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
        >/dev/null || true
fi
