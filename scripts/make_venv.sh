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
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${1:-.venv}
INSTALLER=${INSTALLER:-uv}
BIN=$VENV/bin

[ -x "$BIN/python" ] || "$PYTHON" -m venv "$VENV"

with_pip() {
    "$BIN/python" -m pip install --quiet --upgrade "pip>=24"
    "$BIN/python" -m pip install --quiet -c constraints.txt -e '.[dev]'
}

with_uv() {
    "$BIN/python" -m pip install --quiet -c constraints.txt uv &&
        "$BIN/uv" pip install --quiet --python "$BIN/python" -c constraints.txt -e '.[dev]'
}

case "$INSTALLER" in
    pip) with_pip ;;
    uv) with_uv || { echo "make_venv: installing with uv failed; using pip" >&2; with_pip; } ;;
    *) echo "make_venv: INSTALLER must be uv or pip, not '$INSTALLER'" >&2; exit 2 ;;
esac
