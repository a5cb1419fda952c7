#!/usr/bin/env bash
# The Debian package as a sysadmin meets it, in a throwaway Debian root
# (debootstrap, then chroot: no systemd runs there, as in a container):
# install, the files, the user, the directories, that only canhgac.service
# is enabled, `canhgac check` as the service user on the shipped config,
# a store command run as root, an upgrade over an edited config with no
# terminal, a store newer than the binary, remove and purge.
#
#   packaging/deb/test.sh          builds both packages first (build.sh), then
#                                  runs the rest as root (through sudo if need be)
#   BUILD=0 packaging/deb/test.sh  uses target/deb-test/{old,new}.deb as they are
#
# Needs root (or sudo), cargo-deb, debootstrap and the network (or a cached root in
# target/deb-test/bookworm.tar). Prints PASS/FAIL lines; exits non-zero on
# a failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
WORK=target/deb-test
mkdir -p "$WORK"
# The package as built, and the same as a later revision to upgrade to.
if [[ ${BUILD:-1} != 0 ]]; then
    packaging/deb/build.sh | tail -n 1 | xargs -I{} cp {} "$WORK/old.deb"
    DEB_VERSION=${VERSION}-2 packaging/deb/build.sh | tail -n 1 | xargs -I{} cp {} "$WORK/new.deb"
fi
# The packages are built as the caller (cargo need not be root's); the
# chroot needs root.
if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { echo "test.sh: needs root (chroot)" >&2; exit 2; }
    exec sudo BUILD=0 "$0"
fi
TARBALL=$WORK/bookworm.tar
if [[ ! -f $TARBALL ]]; then
    # minbase (with libsystemd0) and systemd (for systemd-sysusers and
    # systemd-tmpfiles), procps: what the package depends on, nothing more.
    debootstrap --variant=minbase --include=systemd,procps bookworm "$WORK/base" \
        http://deb.debian.org/debian >&2
    tar -C "$WORK/base" -cf "$TARBALL" .
    rm -rf "$WORK/base"
fi
R=$(mktemp -d "$PWD/$WORK/root.XXXXXX")
cleanup() {
    umount "$R/proc" 2>/dev/null || true
    rm -rf "$R"
}
trap cleanup EXIT
tar -C "$R" -xf "$TARBALL"
mount -t proc proc "$R/proc"
cp "$WORK/old.deb" "$WORK/new.deb" "$R/tmp/"

passed=0
failed=0
check() {
    local what=$1
    shift
    if "$@" >"$WORK/last.log" 2>&1; then
        echo "PASS $what"
        passed=$((passed + 1))
    else
        echo "FAIL $what"
        sed 's/^/    /' "$WORK/last.log"
        failed=$((failed + 1))
    fi
}
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
as_canhgac() { in_root setpriv --reuid canhgac --regid canhgac --init-groups -- "$@"; }
# Names as the root's own /etc/passwd has them.
owner() { chroot "$R" stat -c '%a %U:%G' "$1"; }
CONF=/etc/canhgac/canhgac.toml

in_root dpkg -i /tmp/old.deb </dev/null >"$WORK/install.log" 2>&1 || true
check "dpkg -i installs the package" in_root dpkg-query -W -f='${Status}' canhgac
check "postinst says the service waits for the agency id" grep -q "not started: set .agency." "$WORK/install.log"
check "user canhgac, in adm and systemd-journal" bash -c "in_root() { chroot '$R' \"\$@\"; }; in_root id -nG canhgac | grep -qw adm && in_root id -nG canhgac | grep -qw systemd-journal"
check "/var/lib/canhgac is 750 canhgac:canhgac" test "$(owner /var/lib/canhgac)" = "750 canhgac:canhgac"
check "$CONF is 640 root:canhgac" test "$(owner $CONF)" = "640 root:canhgac"
check "/etc/canhgac/rules.d exists" test -d "$R/etc/canhgac/rules.d"
check "canhgac.service is enabled" test -L "$R/etc/systemd/system/multi-user.target.wants/canhgac.service"
check "no socket unit is enabled" bash -c "! find '$R/etc/systemd/system' -name 'canhgac-syslog.socket' | grep -q ."
for f in /usr/bin/canhgac /usr/share/man/man1/canhgac.1.gz /usr/share/man/man1/canhgac-run.1.gz \
    /usr/share/man/man1/canhgac-import.1.gz /usr/share/bash-completion/completions/canhgac \
    /usr/share/zsh/vendor-completions/_canhgac /usr/share/fish/vendor_completions.d/canhgac.fish \
    /usr/share/doc/canhgac/copyright /usr/share/doc/canhgac/changelog.Debian.gz \
    /usr/share/doc/canhgac/rules.md /usr/share/doc/canhgac/install.md; do
    check "ships $f" test -s "$R$f"
done
check "canhgac(1) is a man page of the installed binary's options" bash -c "zcat '$R/usr/share/man/man1/canhgac-run.1.gz' | grep -q 'log\\\\-format'"
check "no shipped rule copies that are never read" test ! -e "$R/usr/share/canhgac/rules"

# The shipped config, checked as the service user, as the unit does.
check "check refuses the shipped config until the agency is set" bash -c "! chroot '$R' setpriv --reuid canhgac --regid canhgac --init-groups -- canhgac check --config $CONF 2>'$WORK/check.err'; grep -q 'agency is not set' '$WORK/check.err'"
sed -i 's/^agency = ""/agency = "so-tttt-test"/' "$R$CONF"
as_canhgac canhgac check --config "$CONF" >"$WORK/check.out" 2>"$WORK/check.err" || true
check "check passes once the agency is set" grep -q "^ok: config $CONF: agency so-tttt-test" "$WORK/check.out"
check "without auth.log, sshd/sudo/su come from the journal" grep -q "ok: input auth: /var/log/auth.log does not exist; input auth-journal reads the same lines" "$WORK/check.out"
: >"$R/var/log/auth.log"
chroot "$R" chown root:adm /var/log/auth.log
chroot "$R" chmod 640 /var/log/auth.log
as_canhgac canhgac check --config "$CONF" >"$WORK/check.out" 2>"$WORK/check.err" || true
check "with auth.log, the journal input is left out" grep -q "ok: input auth-journal not read: /var/log/auth.log exists" "$WORK/check.out"
check "a web server input that matches nothing is warned about, with its config line" grep -q "warning: $CONF:[0-9]*:[0-9]*: input nginx-access: directory /var/log/nginx does not exist" "$WORK/check.err"

# A store command run as root writes as the store's owner.
printf '%s\n' "Oct 31 10:00:0$((1)) h sshd[1]: Failed password for root from 203.0.113.9 port 22 ssh2" >"$R/tmp/auth.log.1"
chmod 644 "$R/tmp/auth.log.1"
in_root canhgac import --config "$CONF" --year 2026 /tmp/auth.log.1 >"$WORK/import.log" 2>&1 || true
check "import run as root leaves the store to canhgac" bash -c "[ \"\$(chroot '$R' stat -c %U /var/lib/canhgac/canhgac.db)\" = canhgac ] && ! find '$R/var/lib/canhgac' -user root | grep -q ."

# Upgrade over the edited config, with no terminal (unattended).
in_root dpkg -i --force-confold /tmp/new.deb </dev/null >"$WORK/upgrade.log" 2>&1 || true
check "unattended upgrade with --force-confold" bash -c "chroot '$R' dpkg-query -W -f='\${Version} \${Status}' canhgac | grep -q '^${VERSION}-2 install ok installed'"
check "the upgrade kept the edited config" grep -q '^agency = "so-tttt-test"' "$R$CONF"
check "the upgrade kept the store" test -s "$R/var/lib/canhgac/canhgac.db"

# A store from a newer canhgac: check refuses it, as the daemon would.
python3 - "$R/var/lib/canhgac/canhgac.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
version = db.execute("PRAGMA user_version").fetchone()[0]
db.execute(f"PRAGMA user_version = {version + 1}")
db.commit()
PY
check "check refuses a store newer than the binary" bash -c "! chroot '$R' setpriv --reuid canhgac --regid canhgac --init-groups -- canhgac check --config $CONF 2>'$WORK/check.err'; grep -q 'is newer than this canhgac knows' '$WORK/check.err'"

in_root dpkg -r canhgac </dev/null >"$WORK/remove.log" 2>&1 || true
check "remove: the program is gone" test ! -e "$R/usr/bin/canhgac"
check "remove: the config stays" test -f "$R$CONF"
in_root dpkg -P canhgac </dev/null >"$WORK/purge.log" 2>&1 || true
check "purge removes /etc/canhgac" test ! -e "$R/etc/canhgac"
check "purge keeps the store, and says so" bash -c "test -s '$R/var/lib/canhgac/canhgac.db' && grep -q 'kept /var/lib/canhgac' '$WORK/purge.log'"

echo "$passed passed, $failed failed"
((failed == 0))
