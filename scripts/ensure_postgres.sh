#!/usr/bin/env bash
# Make sure a PostgreSQL server (initdb + postgres binaries) is installed for the cluster tests.
#
# The tests in tests/cluster/ start their own throwaway server in a temporary directory (as an
# unprivileged user, on 127.0.0.1): nothing here starts, configures or enables a service.
# Quick and idempotent when PostgreSQL is already present; otherwise installs Debian's
# `postgresql` package (needs root, or sudo).
set -euo pipefail

find_bindir() {
    local dir
    # Debian layout: /usr/lib/postgresql/<major>/bin; newest major first.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    # Other layouts: binaries on PATH.
    if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

if bindir=$(find_bindir); then
    echo "postgresql: found $("$bindir/postgres" --version) in $bindir"
    exit 0
fi

source "$(dirname "$0")/apt.sh"
need_apt postgresql "PostgreSQL (initdb, postgres)"
echo "postgresql: not found; installing Debian's postgresql package"
$SUDO apt-get update
# policy-rc.d exit 101: the package must not start (or leave running) its own cluster service.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" = 1 ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y --no-install-recommends postgresql

bindir=$(find_bindir) || { echo "postgresql: installed, but initdb/postgres were not found" >&2; exit 1; }
echo "postgresql: installed $("$bindir/postgres" --version) in $bindir"
