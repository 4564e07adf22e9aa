# Sourced by the ensure_*.sh scripts: `need_apt NAME WHAT` checks that Debian's apt-get can
# install NAME here, and sets SUDO ("" as root, "sudo" otherwise); it exits with a message
# naming WHAT (what to install by hand) when it cannot.
need_apt() {
    local name=$1 what=$2
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$name: not found and apt-get is unavailable; install $what first" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO="sudo"
        else
            echo "$name: not found; installing it needs root (or sudo)" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
}
