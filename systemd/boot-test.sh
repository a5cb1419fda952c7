#!/usr/bin/env bash
# End-to-end test of the .deb and the unit under a real systemd, for developers
# (not run by CI: it needs root, systemd-container, ~2 minutes, and boots a
# container; CI runs packaging/deb/test.sh, which needs no booted systemd).
#
#   sudo systemd/boot-test.sh [--deb target/debian/canhgac_X_amd64.deb] [--real-daemon]
#
# Boots this machine's own OS in systemd-nspawn (the host's / read-only under a
# tmpfs overlay, so nothing on the host changes; private network: loopback
# only), and inside it:
#   - installs the .deb with dpkg: user canhgac in adm, /var/lib/canhgac,
#     /etc/canhgac/rules.d, config file group, unit enabled;
#   - runs the real binary (`canhgac scan` on a root:adm 0640 log) under the
#     unit's exact sandbox;
#   - runs the service itself: by default with a stand-in daemon
#     (boot-test-daemon.py, which does what `canhgac run` will do: inotify,
#     reading /var/log through adm, SQLite WAL + fsync in the state directory,
#     binding 127.0.0.1 and ::1, sd_notify READY/STATUS/WATCHDOG, SIGHUP, SIGTERM,
#     and checks that writes outside the state directory, netlink sockets,
#     setuid, W+X memory, @resources calls and other processes are refused);
#     with --real-daemon, with the packaged binary's own `canhgac run`;
#   - with --real-daemon: sshd failures sent to the journal become an incident
#     (rsyslog stopped and auth.log removed first: the shipped config's journal
#     input, as on Debian 12 without rsyslog), and `canhgac
#     incidents` run as root leaves the store to canhgac;
#   - checks start, reload, a reload refused by a failing `check` (the daemon
#     keeps running), 35 s without a watchdog restart, a clean stop, the online
#     `systemd-analyze security` score, and purge (config removed, store kept).
# Prints PASS/FAIL lines and "N passed, M failed"; exits non-zero on a failure.
#
# Needs: a Debian or Ubuntu host, root, `apt-get install -y systemd-container`.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
deb=""
real_daemon=0
while [ $# -gt 0 ]; do
    case "$1" in
        --deb) deb="${2:?}"; shift 2 ;;
        --deb=*) deb="${1#--deb=}"; shift ;;
        --real-daemon) real_daemon=1; shift ;;
        -h|--help) sed -n '2,28s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "boot-test.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$deb" ]; then
    for f in "$repo"/target/debian/canhgac_*.deb; do
        if [ -f "$f" ] && { [ -z "$deb" ] || [ "$f" -nt "$deb" ]; }; then deb="$f"; fi
    done
fi
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
    echo "boot-test.sh: no .deb (run cargo deb, or pass --deb)" >&2
    exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "boot-test.sh: needs root" >&2; exit 2; }
command -v systemd-nspawn >/dev/null || { echo "boot-test.sh: apt-get install -y systemd-container" >&2; exit 2; }

work="$(mktemp -d /tmp/canhgac-boot-test.XXXXXX)"
nspawn_pid=""
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill "$nspawn_pid" 2>/dev/null || true
        sleep 5
    fi
    umount "$work/ov/merged" 2>/dev/null || true
    umount "$work/ov" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/ov" "$work/in" "$work/out"
# The overlay's upper layer must not live on the lower file system (/).
mount -t tmpfs -o size=2G canhgac-boot-test "$work/ov"
mkdir -p "$work/ov/upper" "$work/ov/work" "$work/ov/merged"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/ov/upper,workdir=$work/ov/work" "$work/ov/merged"

cp "$deb" "$work/in/canhgac.deb"
cp "$here/boot-test-daemon.py" "$work/in/daemon.py"
echo "$real_daemon" > "$work/in/real-daemon"

cat > "$work/in/boot-test.service" <<'EOF'
[Unit]
Description=canhgac boot test
After=multi-user.target
[Service]
Type=simple
ExecStart=/bin/bash /in/run.sh
StandardOutput=journal+console
EOF

cat > "$work/in/run.sh" <<'EOF'
#!/bin/bash
exec >/out/log 2>&1
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; }
check() { local name="$1"; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
sleep 3
# A Debian 12 host without rsyslog, as the shipped config expects to meet:
# sshd, sudo and su log only to the journal.
systemctl stop rsyslog.service syslog.socket 2>/dev/null
rm -f /var/log/auth.log
mkdir -p /var/log/canhgac-test
echo "Oct 31 01:00:05 host sshd[1]: Failed password for root from 203.0.113.45 port 22 ssh2" > /var/log/canhgac-test/auth.log
chown root:adm /var/log/canhgac-test/auth.log
chmod 0640 /var/log/canhgac-test/auth.log

check "dpkg -i installs the package" dpkg -i /in/canhgac.deb
check "user canhgac is in adm" bash -c 'id -nG canhgac | grep -qw adm'
check "/var/lib/canhgac is 750 canhgac:canhgac" bash -c '[ "$(stat -c "%a %U:%G" /var/lib/canhgac)" = "750 canhgac:canhgac" ]'
check "/etc/canhgac/canhgac.toml is 640 root:canhgac" bash -c '[ "$(stat -c "%a %U:%G" /etc/canhgac/canhgac.toml)" = "640 root:canhgac" ]'
check "/etc/canhgac/rules.d exists" test -d /etc/canhgac/rules.d
check "unit is enabled" bash -c '[ "$(systemctl is-enabled canhgac)" = enabled ]'
check "the install did not start it (no agency id yet)" bash -c '! systemctl is-active --quiet canhgac'
check "the syslog socket is not enabled" bash -c '[ "$(systemctl is-enabled canhgac-syslog.socket)" = disabled ]'
sed -i 's/^agency = ""/agency = "so-tttt-boot-test"/' /etc/canhgac/canhgac.toml

# The real binary under the unit's sandbox: the unit turned into a oneshot `scan`.
sed -e 's/^Type=notify/Type=oneshot/' -e '/^ExecStartPre=/d' -e '/^ExecReload=/d' \
    -e '/^WatchdogSec=/d' -e '/^Restart/d' -e '/^\[Install\]/,$d' \
    -e 's|^ExecStart=.*|ExecStart=/usr/bin/canhgac scan --events /var/log/canhgac-test/auth.log|' \
    /usr/lib/systemd/system/canhgac.service > /etc/systemd/system/canhgac-scantest.service
systemctl daemon-reload
check "canhgac scan runs under the sandbox" systemctl start canhgac-scantest
journalctl -u canhgac-scantest --no-pager -o cat | sed 's/^/  | /'
check "scan inside the sandbox read the adm-only log" bash -c 'journalctl -u canhgac-scantest -o cat | grep -q ssh-failed-password'

if [ "$(cat /in/real-daemon)" != 1 ]; then
    install -m 0755 /in/daemon.py /usr/bin/canhgac
fi
systemctl reset-failed canhgac 2>/dev/null
check "systemctl restart canhgac" systemctl restart canhgac
sleep 2
systemctl status canhgac --no-pager
check "service is active after READY=1" systemctl is-active --quiet canhgac
if [ "$(cat /in/real-daemon)" != 1 ]; then
    journalctl -u canhgac --no-pager -o cat | grep -E '^(PASS|FAIL) ' | sed 's/^\(PASS\|FAIL\) /\1 sandbox: /'
fi
if [ "$(cat /in/real-daemon)" = 1 ]; then
    # As sshd logs; no auth.log here: the shipped config reads the journal.
    for i in 1 2 3 4 5 6 7 8; do
        logger -i -p authpriv.info -t sshd "Failed password for root from 203.0.113.77 port 4000$i ssh2"
    done
    sleep 5
    check "sshd failures in the journal became an incident" bash -c 'canhgac incidents --config /etc/canhgac/canhgac.toml | grep -q 203.0.113.77'
    check "incidents run as root left the store to canhgac" bash -c '! find /var/lib/canhgac -user root | grep -q .'
fi
check "systemctl reload canhgac" systemctl reload canhgac
sleep 1
chmod 0600 /etc/canhgac/canhgac.toml   # `canhgac check` as canhgac cannot read it now
check "reload refused when check fails" bash -c '! systemctl reload canhgac'
check "daemon still running after refused reload" systemctl is-active --quiet canhgac
chmod 0640 /etc/canhgac/canhgac.toml
sleep 35
systemctl show canhgac -p NRestarts -p SubState -p WatchdogUSec -p StatusText
check "no restart in 35 s with WatchdogSec=30s" bash -c '[ "$(systemctl show canhgac -p NRestarts --value)" = 0 ] && systemctl is-active --quiet canhgac'
check "systemctl stop: clean exit 0" bash -c 'systemctl stop canhgac && [ "$(systemctl show canhgac -p Result --value)" = success ] && [ "$(systemctl show canhgac -p ExecMainStatus --value)" = 0 ]'
journalctl -u canhgac --no-pager -o cat | tail -30 | sed 's/^/  | /'
systemd-analyze security canhgac --no-pager | tail -n 1
check "online exposure <= 2.0" systemd-analyze security --threshold=20 canhgac --no-pager
check "dpkg --purge" dpkg --purge canhgac
check "purge removed the config" test ! -e /etc/canhgac/canhgac.toml
check "purge kept the incident store" test -d /var/lib/canhgac
echo BOOT-TEST-DONE
systemctl poweroff
EOF

extra=()
if [ ! -d /run/systemd/system ]; then
    # No systemd on the host: no machined to register with, no scope to create.
    extra=(--register=no --keep-unit)
fi
echo "booting the host OS in a container (about 2 minutes)..."
timeout 600 systemd-nspawn -D "$work/ov/merged" --private-network --link-journal=no \
    --machine=canhgac-boot-test "${extra[@]}" \
    --bind-ro="$work/in:/in" --bind="$work/out:/out" \
    --bind-ro="$work/in/boot-test.service:/etc/systemd/system/canhgac-boot-test.service" \
    -b -- systemd.wants=canhgac-boot-test.service >"$work/console.log" 2>&1 </dev/null &
nspawn_pid=$!
wait "$nspawn_pid" || true
nspawn_pid=""

cat "$work/out/log" 2>/dev/null || { echo "no log from the container; console:"; tail -40 "$work/console.log"; exit 1; }
passed="$(grep -c '^PASS ' "$work/out/log" || true)"
failed="$(grep -c '^FAIL ' "$work/out/log" || true)"
if ! grep -q BOOT-TEST-DONE "$work/out/log"; then
    echo "FAIL the test did not finish"
    failed=$((failed + 1))
fi
echo
grep -E '^(PASS|FAIL) ' "$work/out/log" || true
echo "boot-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
