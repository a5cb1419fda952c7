# Sourced first by the bench scripts, once they set NAME (for messages): HERE (benches/) and ROOT
# (the repository), which their defaults build on; the messages, the Debian packages a bench
# needs, installed when missing, and the release build.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

die() { echo "$NAME: error: $*" >&2; exit 1; }
note() { echo "$NAME: $*" >&2; }

# apt_install PKG...: installs the packages with apt-get, as root or through sudo.
apt_install() {
    (($#)) || return 0
    note "installing $*"
    local sudo=()
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install $*"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >&2 \
        || die "apt-get install $* failed"
}

# build_release: `cargo build --release`, unless BUILD=0 (measure the binary already built).
build_release() {
    [[ ${BUILD:-1} != 0 ]] || return 0
    note "cargo build --release"
    (cd "$ROOT" && cargo build --release --locked --quiet) >&2 || die "cargo build --release failed"
}
