#!/usr/bin/python3
# Stand-in for `canhgac run`/`canhgac check`, used by systemd/boot-test.sh until
# the real daemon exists: under the unit's sandbox it does what the daemon will
# do (inotify on /var/log, read a root:adm 0640 log, SQLite with WAL + fsync in
# the state directory, bind 127.0.0.1:9717 and [::1], sd_notify READY=1,
# STATUS=, WATCHDOG=1, SIGHUP reload, SIGTERM clean exit) and checks that what
# the unit forbids fails. Prints PASS/FAIL lines to the journal.
import ctypes, errno, os, signal, socket, sqlite3, sys, time, resource

def say(msg):
    print(msg, flush=True)

if len(sys.argv) >= 2 and sys.argv[1] == "check":
    cfg = sys.argv[sys.argv.index("--config") + 1]
    open(cfg).read()
    say(f"check: {cfg} readable as uid={os.getuid()} groups={os.getgroups()}")
    sys.exit(0)

results = []
def ok(name, cond, detail=""):
    results.append(("PASS" if cond else "FAIL") + " " + name + (f" ({detail})" if detail else ""))

libc = ctypes.CDLL(None, use_errno=True)
ifd = libc.inotify_init1(0o4000 | 0o2000000)
ok("inotify_init1", ifd >= 0, os.strerror(ctypes.get_errno()) if ifd < 0 else "")
wd = libc.inotify_add_watch(ifd, b"/var/log/canhgac-test", 0x2 | 0x100)
ok("inotify_add_watch /var/log/canhgac-test", wd >= 0, os.strerror(ctypes.get_errno()) if wd < 0 else "")
try:
    data = open("/var/log/canhgac-test/auth.log", "rb").read()
    ok("read root:adm 0640 log", True, f"{len(data)} bytes")
except OSError as e:
    ok("read root:adm 0640 log", False, str(e))
try:
    open("/var/log/canhgac-test/auth.log", "ab")
    ok("write /var/log refused", False)
except OSError as e:
    ok("write /var/log refused", e.errno in (errno.EROFS, errno.EACCES), e.strerror)
try:
    db = sqlite3.connect("/var/lib/canhgac/canhgac.db")
    mode = db.execute("pragma journal_mode=wal").fetchone()[0]
    db.execute("pragma synchronous=full")
    db.execute("create table if not exists t(x)")
    db.execute("insert into t values (1)")
    db.commit()
    n = db.execute("select count(*) from t").fetchone()[0]
    fd = os.open("/var/lib/canhgac/f", os.O_WRONLY | os.O_CREAT, 0o640)
    os.write(fd, b"x"); os.fdatasync(fd); os.fsync(fd); os.close(fd)
    st = os.stat("/var/lib/canhgac/f")
    ok("sqlite wal + fsync/fdatasync in state dir", mode == "wal", f"rows={n} mode={oct(st.st_mode & 0o777)}")
except Exception as e:
    ok("sqlite wal + fsync/fdatasync in state dir", False, repr(e))
for path in ("/etc/canhgac/x", "/usr/x", "/var/lib/x"):
    try:
        open(path, "w")
        ok(f"write {path} refused", False)
    except OSError as e:
        ok(f"write {path} refused", True, e.strerror)
try:
    ok("/home hidden", not os.listdir("/home"))
except OSError as e:
    ok("/home hidden", True, e.strerror)
try:
    s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s4.bind(("127.0.0.1", 9717)); s4.listen(16)
    c = socket.create_connection(("127.0.0.1", 9717), timeout=2)
    a, _ = s4.accept(); c.sendall(b"ping"); got = a.recv(4)
    ok("bind + connect 127.0.0.1:9717", got == b"ping")
except OSError as e:
    ok("bind + connect 127.0.0.1:9717", False, str(e))
try:
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); s6.bind(("::1", 9718)); s6.listen(1)
    ok("bind [::1]:9718", True)
except OSError as e:
    ok("bind [::1]:9718", False, str(e))
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    ok("AF_NETLINK refused", False)
except OSError as e:
    ok("AF_NETLINK refused", True, e.strerror)
try:
    os.sched_setaffinity(0, {0})
    ok("sched_setaffinity refused (@resources)", False)
except OSError as e:
    ok("sched_setaffinity refused (@resources)", e.errno == errno.EPERM, e.strerror)
ok("RLIMIT_NOFILE from LimitNOFILE=", resource.getrlimit(resource.RLIMIT_NOFILE) == (16384, 16384), str(resource.getrlimit(resource.RLIMIT_NOFILE)))
try:
    os.setuid(0)
    ok("setuid refused", False)
except OSError as e:
    ok("setuid refused", True, e.strerror)
libc.mmap.restype = ctypes.c_void_p
p = libc.mmap(None, 4096, 0x1 | 0x2 | 0x4, 0x02 | 0x20, -1, 0)
ok("PROT_WRITE|PROT_EXEC mmap refused", p in (None, ctypes.c_void_p(-1).value), "MemoryDenyWriteExecute")
ok("other processes hidden", len([d for d in os.listdir("/proc") if d.isdigit()]) <= 3,
   f"{len([d for d in os.listdir('/proc') if d.isdigit()])} pids visible")
# /proc/sys is visible (journalctl needs the boot id) but read-only.
try:
    with open("/proc/sys/kernel/hostname", "w") as f:
        f.write("x")
    ok("/proc/sys read-only (ProtectKernelTunables)", False)
except OSError as e:
    ok("/proc/sys read-only (ProtectKernelTunables)", True, e.strerror)

ns = os.environ.get("NOTIFY_SOCKET")
def notify(msg):
    addr = ns if not ns.startswith("@") else "\0" + ns[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg.encode(), addr); s.close()

for r in results:
    say(r)
fails = sum(r.startswith("FAIL") for r in results)
notify(f"READY=1\nSTATUS=sandbox test: {len(results)-fails} passed, {fails} failed")
say(f"WATCHDOG_USEC={os.environ.get('WATCHDOG_USEC')}")

stop = False
def on_hup(sig, frm):
    say("SIGHUP: reload")
    notify("STATUS=reloaded")
def on_term(sig, frm):
    global stop
    stop = True
signal.signal(signal.SIGHUP, on_hup)
signal.signal(signal.SIGTERM, on_term)
while not stop:
    notify("WATCHDOG=1")
    time.sleep(1)
notify("STOPPING=1")
say("SIGTERM: drained, exiting 0")
sys.exit(0)
