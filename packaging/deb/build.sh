#!/usr/bin/env bash
# Builds the Debian package: the release binary, the man pages and shell
# completions generated from it, then `cargo deb --no-build`, then lintian
# (when installed) on the result.
#
#   packaging/deb/build.sh                 -> target/debian/canhgac_<version>-1_<arch>.deb
#   DEB_VERSION=0.1.1-1 packaging/deb/build.sh    another version (upgrade tests)
#   MAINTAINER="Name <address>" packaging/deb/build.sh
#
# Needs cargo-deb (`cargo install cargo-deb`); lintian is optional.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

cargo build --release --locked
ASSETS=target/deb-assets
rm -rf "$ASSETS"
mkdir -p "$ASSETS/man" "$ASSETS/completions"
target/release/canhgac generate man "$ASSETS/man"
# -n: no name or time stamp in the gzip header, so the package is reproducible.
gzip -9n "$ASSETS"/man/*.1
target/release/canhgac generate completions bash >"$ASSETS/completions/canhgac"
target/release/canhgac generate completions zsh >"$ASSETS/completions/_canhgac"
target/release/canhgac generate completions fish >"$ASSETS/completions/canhgac.fish"

args=(--no-build --locked)
[[ -n ${DEB_VERSION:-} ]] && args+=(--deb-version "$DEB_VERSION")
[[ -n ${MAINTAINER:-} ]] && args+=(--maintainer "$MAINTAINER")
deb=$(cargo deb "${args[@]}" | tail -n 1)
echo "$deb"

if command -v lintian >/dev/null 2>&1; then
    # Errors and warnings fail the build; the package's own overrides
    # (packaging/deb/lintian-overrides) say why each exception is one.
    lintian --fail-on error,warning "$deb" >&2
fi
