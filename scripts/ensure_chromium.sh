#!/usr/bin/env bash
# Make sure a headless-capable Chromium (`chromium` on PATH) is installed for the UI test.
#
# tests/tracking/test_ui_browser.py loads the MLflow UI page that `sweeps ui` prints in
# headless Chromium and reads what it renders. Nothing here starts a browser.
# Quick and idempotent when chromium is already present; otherwise installs Debian's
# `chromium` package (needs root, or sudo), refreshing the package lists only when apt does
# not know the package yet.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: found $(chromium --version 2>/dev/null || echo '(version unknown)') at $(command -v chromium)"
    exit 0
fi

source "$(dirname "$0")/apt.sh"
need_apt chromium "Chromium (a \`chromium\` command)"
candidate=$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    echo "chromium: not known to apt yet; refreshing the package lists"
    $SUDO apt-get update
fi
echo "chromium: not found; installing Debian's chromium package"
$SUDO apt-get install -y --no-install-recommends chromium

command -v chromium >/dev/null 2>&1 || { echo "chromium: installed, but no chromium command on PATH" >&2; exit 1; }
echo "chromium: installed $(chromium --version 2>/dev/null || echo '(version unknown)') at $(command -v chromium)"
