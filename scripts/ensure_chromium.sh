#!/usr/bin/env bash
# Make sure a headless-capable Chromium (`chromium` on PATH) is installed for the UI test.
#
# tests/results/test_ui.py loads the MLflow UI page that `sweeps ui` prints in
# `chromium --headless` and reads the rendered DOM. Nothing here starts a browser.
# Quick and idempotent when chromium is already present; otherwise installs Debian's
# `chromium` package (needs root, or sudo), refreshing the package lists only when apt does
# not know the package yet.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: found $(chromium --version 2>/dev/null || echo '(version unknown)') at $(command -v chromium)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: not found and apt-get is unavailable; install Chromium (a \`chromium\` command) first" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "chromium: not found; installing it needs root (or sudo)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
candidate=$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    echo "chromium: not known to apt yet; refreshing the package lists"
    $SUDO apt-get update
fi
echo "chromium: not found; installing Debian's chromium package"
$SUDO apt-get install -y --no-install-recommends chromium

command -v chromium >/dev/null 2>&1 || { echo "chromium: installed, but no chromium command on PATH" >&2; exit 1; }
echo "chromium: installed $(chromium --version 2>/dev/null || echo '(version unknown)') at $(command -v chromium)"
