#!/usr/bin/env python3
"""RELP receiver benchmark: canhgac's `syslog-relp` input beside rsyslog's `imrelp`.

In one run, measures how many messages a second each receiver takes from a RELP client that
keeps WINDOW frames unanswered (omrelp's `windowSize`, default 128), the same messages from
the same client, each receiver started afresh for the row:

  canhgac  `BIN run` with one `syslog-relp` input. It answers a message only once the store
           transaction holding it has committed (fsync included), so the window and the commit
           latency set the rate: at most WINDOW messages per commit and connection.
  rsyslog  a private rsyslogd (`-n`) with one `imrelp` input, whose ruleset writes every message
           with RSYSLOG_TraditionalFileFormat (as Debian writes auth.log) to a file on tmpfs.
           imrelp answers a message once it is in rsyslog's main queue (in memory), not once
           written, so the row ends when the file has every line as well.
  client   the same client against a trivial RELP server (C, in this script) that answers every
           frame as soon as it has read it: the client's and loopback's own ceiling.

Rows: window 128 and window 1024 over one connection, and 4 connections of window 128 (4
threads of one client process); each with the messages from ATTACKERS distinct addresses (1,000
and 20,000), so canhgac's detector tracks that many keys. Messages are RFC 3164 sshd failures,
`<38>Mmm dd hh:mm:ss bench sshd[PID]: Failed password for root from 10.A.B.C port 22 ssh2`,
stamped with the time of the run, cycling through the addresses; N per row (default 200,000).

The client is C, compiled with gcc at run time: a Python client would take a large share of the
two CPUs the receivers run on, and could set the rate itself. It opens its sessions (`open`,
offers relp_version=0, commands=syslog), waits until every session is open, then per connection
writes as many frames as the window allows in one write(2), reads answers (in order, each must be `200 OK`), and
refills the window as they come; at the end `close`. It records when each frame went out and
when its answer came (CLOCK_MONOTONIC, the clock of Python's time.monotonic).

Printed per row and receiver: msg/s = N over the time from the first frame sent until every
frame is answered and the receiver has counted all N (canhgac: `canhgac_input_lines_total` on
/metrics; rsyslog: lines in its output file), so it counts what the receiver took, not what it
acknowledged; CPU us/msg = utime + stime of the receiver's process (all threads, from
/proc/PID/stat) over the row, per message; the ratio canhgac / rsyslog of both; rtt = median
round trip of a window: for each run of WINDOW consecutive frames of a connection, from the
first one's write to the last one's answer (for canhgac also the p99). For canhgac also its
commits (canhgac_store_commits_total) and their mean duration (canhgac_store_commit_duration_seconds
sum over commits). The client's own CPU time per message (wait4 rusage, against the trivial
server) is printed as well: it shares the two CPUs with the receiver.

Environment: BIN (default /work/bin-main/canhgac-relp), RSYSLOGD (default rsyslogd on PATH or in
/usr/sbin), N (messages per row, 200000), ATTACKERS (1000,20000), ROWS (window x connections,
"128x1,1024x1,128x4"), BENCH_DIR (target/bench/relp: configs, state, logs, the client; a fresh
temporary directory per run, removed at the end unless KEEP=1), TIMEOUT (seconds a row may
take, 600). Needs gcc, rsyslogd with imrelp (Debian package rsyslog-relp) and Linux's /proc.
Every process it starts is killed on exit, on errors and Ctrl-C included (a `finally`, SIGTERM
turned into an exit, and PR_SET_PDEATHSIG in case this script is killed outright). It exits 0
whatever the numbers are.
"""
import ctypes, os, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.request

from benchlib import LineCounter, parse_metrics, write_rsyslog_conf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", "/work/bin-main/canhgac-relp")
N = int(os.environ.get("N", "200000"))
ATTACKERS = [int(a) for a in os.environ.get("ATTACKERS", "1000,20000").split(",")]
ROWS = [tuple(int(x) for x in r.split("x")) for r in os.environ.get("ROWS", "128x1,1024x1,128x4").split(",")]
BENCH_DIR = os.environ.get("BENCH_DIR", os.path.join(ROOT, "target/bench/relp"))
TIMEOUT = float(os.environ.get("TIMEOUT", "600"))
KEEP = os.environ.get("KEEP") == "1"
TICK = os.sysconf("SC_CLK_TCK")
# rsyslog's output goes to tmpfs so that the figure is its receiving and formatting, not a disk.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Every process started, killed by kill_all() on the way out, and rsyslog's scratch directories.
PROCS = []
SCRATCH_DIRS = []

# `relpbench client PORT WINDOW CONNS FILE`: sends the lines of FILE (connection c gets lines
# c, c+CONNS, ...) and prints key=value figures; `relpbench serve PORT`: the trivial server.
RELP_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) die("write");
        p += w; n -= w;
    }
}

/* A growing receive buffer. */
struct rbuf { char *b; size_t len, cap; };

static int fill(int fd, struct rbuf *r) {
    if (r->cap - r->len < 65536) {
        r->cap = r->cap * 2 + 65536;
        r->b = realloc(r->b, r->cap);
        if (!r->b) die("realloc");
    }
    ssize_t got = read(fd, r->b + r->len, r->cap - r->len);
    if (got < 0) die("read");
    r->len += got;
    return got > 0;
}

/* One frame `TXNR SP COMMAND SP DATALEN [SP DATA] LF` at the start of b:
   1 = whole (used bytes), 0 = needs more, -1 = broken. */
static int frame(const char *b, size_t n, size_t *used, long *txnr, char *cmd,
                 const char **data, long *len) {
    size_t i = 0;
    while (i < n && (b[i] == '\n' || b[i] == '\r')) i++;
    long t = 0; int d = 0;
    for (; i < n && b[i] >= '0' && b[i] <= '9'; i++, d++) t = t * 10 + b[i] - '0';
    if (i == n) return 0;
    if (!d || b[i] != ' ') return -1;
    i++;
    int c = 0;
    for (; i < n && b[i] != ' ' && b[i] != '\n'; i++) {
        if (c >= 31) return -1;
        cmd[c++] = b[i];
    }
    cmd[c] = 0;
    if (i == n) return 0;
    if (b[i] != ' ') return -1;
    i++;
    long l = 0; d = 0;
    for (; i < n && b[i] >= '0' && b[i] <= '9'; i++, d++) l = l * 10 + b[i] - '0';
    if (i == n) return 0;
    if (!d) return -1;
    *txnr = t; *len = l;
    if (b[i] == '\n') {
        if (l) return -1;
        *data = b + i; *used = i + 1;
        return 1;
    }
    if (b[i] != ' ') return -1;
    i++;
    if (n < i + l + 1) return 0;
    if (b[i + l] != '\n') return -1;
    *data = b + i; *used = i + l + 1;
    return 1;
}

static void consume(struct rbuf *r, size_t used) {
    memmove(r->b, r->b + used, r->len - used);
    r->len -= used;
}

static const char OFFERS[] = "relp_version=0\nrelp_software=bench\ncommands=syslog";

/* ---- trivial server ---- */

static void *serve_conn(void *arg) {
    int fd = (int)(long)arg;
    struct rbuf r = {0};
    char *out = NULL; size_t ocap = 0;
    int closing = 0;
    while (!closing && fill(fd, &r)) {
        size_t olen = 0, used;
        long txnr, len; char cmd[32]; const char *data;
        int k;
        while ((k = frame(r.b, r.len, &used, &txnr, cmd, &data, &len)) == 1) {
            if (ocap - olen < 256) { ocap = ocap * 2 + 65536; out = realloc(out, ocap); }
            if (!strcmp(cmd, "syslog"))
                olen += sprintf(out + olen, "%ld rsp 6 200 OK\n", txnr);
            else if (!strcmp(cmd, "open"))
                olen += sprintf(out + olen, "%ld rsp %zu 200 OK\n%s\n", txnr,
                                strlen(OFFERS) + 7, OFFERS);
            else if (!strcmp(cmd, "close")) {
                olen += sprintf(out + olen, "%ld rsp 0\n", txnr);
                closing = 1;
            } else
                olen += sprintf(out + olen, "%ld rsp 28 500 command not supported\n", txnr);
            consume(&r, used);
        }
        if (k < 0) { fprintf(stderr, "serve: broken frame\n"); break; }
        if (olen) write_all(fd, out, olen);
    }
    close(fd);
    free(r.b); free(out);
    return NULL;
}

static int serve(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a)) die("bind");
    if (listen(s, 64)) die("listen");
    for (;;) {
        int fd = accept(s, NULL, NULL);
        if (fd < 0) die("accept");
        pthread_t t;
        pthread_create(&t, NULL, serve_conn, (void *)(long)fd);
        pthread_detach(t);
    }
}

/* ---- client ---- */

struct msg { const char *p; int len; };

struct conn {
    int port, window, fd;
    struct msg *msgs; long n;
    double *sent, *answered;
    long errors;
    char first_error[128];
};

static pthread_barrier_t opened;

static void expect_rsp(struct conn *c, struct rbuf *r, long want, const char *what) {
    for (;;) {
        size_t used; long txnr, len; char cmd[32]; const char *data;
        int k = frame(r->b, r->len, &used, &txnr, cmd, &data, &len);
        if (k < 0) { fprintf(stderr, "client: broken answer to %s\n", what); exit(1); }
        if (k == 0) {
            if (!fill(c->fd, r)) { fprintf(stderr, "client: closed before the answer to %s\n", what); exit(1); }
            continue;
        }
        if (!strcmp(cmd, "rsp") && txnr == want) {
            if (strcmp(what, "close") && (len < 3 || strncmp(data, "200", 3))) {
                fprintf(stderr, "client: %s refused: %.*s\n", what, (int)len, data);
                exit(1);
            }
            consume(r, used);
            return;
        }
        consume(r, used);   /* serverclose and the like */
    }
}

static void *client_conn(void *arg) {
    struct conn *c = arg;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(c->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a)) die("connect");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct rbuf r = {0};
    char open[256];
    int ol = sprintf(open, "1 open %zu %s\n", strlen(OFFERS), OFFERS);
    write_all(c->fd, open, ol);
    expect_rsp(c, &r, 1, "open");
    pthread_barrier_wait(&opened);

    size_t ocap = (size_t)c->window * 64 + 65536, olen;
    char *out = malloc(ocap);
    long next = 0, acked = 0;
    while (acked < c->n) {
        olen = 0;
        long upto = acked + c->window < c->n ? acked + c->window : c->n;
        for (; next < upto; next++) {
            struct msg *m = &c->msgs[next];
            if (ocap - olen < (size_t)m->len + 64) { ocap = ocap * 2 + m->len; out = realloc(out, ocap); }
            olen += sprintf(out + olen, "%ld syslog %d ", next + 2, m->len);
            memcpy(out + olen, m->p, m->len);
            olen += m->len;
            out[olen++] = '\n';
        }
        if (olen) {
            double t = now();
            write_all(c->fd, out, olen);
            for (long i = next - 1; i >= 0 && c->sent[i] == 0; i--) c->sent[i] = t;
        }
        if (!fill(c->fd, &r)) { fprintf(stderr, "client: connection closed, %ld of %ld answered\n", acked, c->n); exit(1); }
        double t = now();
        size_t used; long txnr, len; char cmd[32]; const char *data;
        int k;
        while ((k = frame(r.b, r.len, &used, &txnr, cmd, &data, &len)) == 1) {
            if (strcmp(cmd, "rsp")) {
                fprintf(stderr, "client: server sent %s at %ld of %ld answered\n", cmd, acked, c->n);
                exit(1);
            }
            if (txnr != acked + 2) {
                fprintf(stderr, "client: answer to %ld where %ld was due\n", txnr, acked + 2);
                exit(1);
            }
            if (len < 3 || strncmp(data, "200", 3)) {
                if (!c->errors++) snprintf(c->first_error, sizeof c->first_error, "%.*s", (int)len, data);
            }
            c->answered[acked++] = t;
            consume(&r, used);
        }
        if (k < 0) { fprintf(stderr, "client: broken answer\n"); exit(1); }
    }
    int cl = sprintf(open, "%ld close 0\n", c->n + 2);
    write_all(c->fd, open, cl);
    expect_rsp(c, &r, c->n + 2, "close");
    close(c->fd);
    free(out); free(r.b);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int client(int port, int window, int conns, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *buf = malloc(size);
    if (fread(buf, 1, size, f) != (size_t)size) die("fread");
    fclose(f);
    long count = 0;
    for (long i = 0; i < size; i++) count += buf[i] == '\n';
    struct conn *cs = calloc(conns, sizeof *cs);
    for (int j = 0; j < conns; j++) {
        long n = count / conns + (j < count % conns);
        cs[j] = (struct conn){.port = port, .window = window, .n = n};
        cs[j].msgs = malloc(n * sizeof(struct msg));
        cs[j].sent = calloc(n, sizeof(double));
        cs[j].answered = calloc(n, sizeof(double));
    }
    char *p = buf;
    for (long i = 0; i < count; i++) {
        char *e = memchr(p, '\n', buf + size - p);
        struct conn *c = &cs[i % conns];
        c->msgs[i / conns] = (struct msg){p, (int)(e - p)};
        p = e + 1;
    }
    pthread_barrier_init(&opened, NULL, conns);
    pthread_t *ts = malloc(conns * sizeof *ts);
    for (int j = 0; j < conns; j++) pthread_create(&ts[j], NULL, client_conn, &cs[j]);
    for (int j = 0; j < conns; j++) pthread_join(ts[j], NULL);
    double start = 1e300, end = 0;
    long answered = 0, errors = 0, blocks = 0;
    double *rtt = malloc((count / window + conns + 1) * sizeof(double));
    double *lat = malloc(count * sizeof(double));
    const char *first_error = "";
    for (int j = 0; j < conns; j++) {
        struct conn *c = &cs[j];
        if (c->n && c->sent[0] < start) start = c->sent[0];
        if (c->n && c->answered[c->n - 1] > end) end = c->answered[c->n - 1];
        for (long b = 0; b + window <= c->n; b += window)
            rtt[blocks++] = c->answered[b + window - 1] - c->sent[b];
        for (long i = 0; i < c->n; i++) lat[answered++] = c->answered[i] - c->sent[i];
        if (c->errors && !errors) first_error = c->first_error;
        errors += c->errors;
    }
    qsort(rtt, blocks, sizeof *rtt, cmp);
    qsort(lat, answered, sizeof *lat, cmp);
    printf("answered=%ld errors=%ld start=%.6f end=%.6f rtt_p50=%.6f rtt_p99=%.6f lat_p50=%.6f blocks=%ld\n",
           answered, errors, start, end, blocks ? rtt[blocks / 2] : 0,
           blocks ? rtt[(blocks * 99 + 99) / 100 - 1] : 0, answered ? lat[answered / 2] : 0, blocks);
    if (errors) fprintf(stderr, "client: %ld answers not 200, first: %s\n", errors, first_error);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "serve")) return serve(atoi(argv[2]));
    if (argc == 6 && !strcmp(argv[1], "client"))
        return client(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argv[5]);
    fprintf(stderr, "usage: relpbench serve PORT | relpbench client PORT WINDOW CONNS FILE\n");
    return 2;
}
"""


def die_with_parent():
    """preexec_fn: the child gets SIGKILL if this script dies without its `finally`."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start(args, **kw):
    proc = subprocess.Popen(args, preexec_fn=die_with_parent, **kw)
    PROCS.append(proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def kill_all():
    for proc in PROCS:
        stop(proc)


def rsyslogd():
    path = os.environ.get("RSYSLOGD") or shutil.which("rsyslogd") or shutil.which(
        "rsyslogd", path="/usr/sbin:/sbin")
    if not path:
        raise SystemExit("rsyslogd not found: apt-get install rsyslog rsyslog-relp")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    local = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        return any(l.split()[1] == local and l.split()[3] == "0A" for l in f.readlines()[1:])


def wait_listening(proc, port, what, log):
    deadline = time.time() + 30
    while not listening(port):
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"{what} did not start: " + (open(log).read() if log else ""))
        time.sleep(0.01)


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def messages(count, attackers):
    now = time.gmtime()
    stamp = time.strftime("%b %e %H:%M:%S", now).encode()
    out = []
    for i in range(count):
        a = i % attackers + 1
        out.append(b"<38>%s bench sshd[%d]: Failed password for root from 10.%d.%d.%d port 22 ssh2" % (
            stamp, 1000 + i % 30000, a >> 16 & 255, a >> 8 & 255, a & 255))
    return out


class Canhgac:
    label = "canhgac"
    poll = 0.01

    def __init__(self, work, port):
        self.dir = tempfile.mkdtemp(prefix="canhgac-", dir=work)
        self.http = free_port()
        cfg = os.path.join(self.dir, "canhgac.toml")
        open(cfg, "w").write(
            f'agency = "bench-relp"\ntime_zone = "UTC"\nstate_dir = "state"\n[http]\n'
            f'listen = "127.0.0.1:{self.http}"\n[[input]]\nname = "relay"\ntype = "syslog-relp"\n'
            f'listen = "127.0.0.1:{port}"\n')
        self.log = os.path.join(self.dir, "canhgac.log")
        with open(self.log, "w") as err:
            self.proc = start([BIN, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=err)
        self.pid = self.proc.pid
        deadline = time.time() + 60
        while "ready:" not in open(self.log).read():
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit("canhgac not ready: " + open(self.log).read())
            time.sleep(0.02)
        wait_listening(self.proc, port, "canhgac's RELP listener", self.log)

    def metrics(self):
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=10).read().decode()
        return parse_metrics(body)

    def received(self):
        return int(self.metrics().get('canhgac_input_lines_total{input="relay"}', 0))

    def stop(self):
        stop(self.proc)


class Rsyslog:
    label = "rsyslog"
    poll = 0.002

    def __init__(self, work, port):
        self.dir = tempfile.mkdtemp(prefix="canhgac-relp-rsyslog-", dir=SCRATCH or work)
        SCRATCH_DIRS.append(self.dir)
        conf, out = write_rsyslog_conf(self.dir, "imrelp", port)
        self.log = os.path.join(self.dir, "rsyslogd.log")
        with open(self.log, "w") as log:
            self.proc = start([rsyslogd(), "-n", "-f", conf, "-i", os.path.join(self.dir, "pid")],
                              stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.out = LineCounter(out)
        wait_listening(self.proc, port, "rsyslogd", self.log)

    def received(self):
        return self.out.count()

    def stop(self):
        stop(self.proc)
        self.out.close()


class Trivial:
    """The C server that answers every frame at once: the client's ceiling."""
    label = "client"
    poll = 0

    def __init__(self, exe, port):
        self.proc = start([exe, "serve", str(port)])
        self.pid = self.proc.pid
        wait_listening(self.proc, port, "the trivial RELP server", None)

    def received(self):
        return None

    def stop(self):
        stop(self.proc)


class Run:
    def __init__(self, n, secs, cpu, client_cpu, figures, extra=""):
        self.n, self.secs, self.cpu, self.client_cpu = n, secs, cpu, client_cpu
        self.rtt = float(figures["rtt_p50"])
        self.rtt99 = float(figures["rtt_p99"])
        self.lat = float(figures["lat_p50"])
        self.extra = extra

    @property
    def rate(self):
        return self.n / self.secs

    @property
    def us(self):
        return 1e6 * self.cpu / self.n

    @property
    def client_us(self):
        return 1e6 * self.client_cpu / self.n


def bench(kind, exe, work, path, n, window, conns):
    port = free_port()
    recv = {"canhgac": lambda: Canhgac(work, port), "rsyslog": lambda: Rsyslog(work, port),
            "client": lambda: Trivial(exe, port)}[kind]()
    try:
        before = recv.metrics() if kind == "canhgac" else None
        cpu0 = cpu_secs(recv.pid)
        out_path = os.path.join(work, "client.out")
        with open(out_path, "wb") as out, open(out_path + ".err", "wb") as err:
            client = start([exe, "client", str(port), str(window), str(conns), path],
                           stdout=out, stderr=err)
        deadline = time.monotonic() + TIMEOUT
        timer = threading.Timer(TIMEOUT, client.kill)
        timer.start()
        # wait4, not wait: the client's own CPU time (it shares the CPUs with the receiver)
        _, status, usage = os.wait4(client.pid, 0)
        timer.cancel()
        client.returncode = os.waitstatus_to_exitcode(status)
        client_cpu = usage.ru_utime + usage.ru_stime
        err = open(out_path + ".err").read().strip()
        if client.returncode:
            raise SystemExit(f"client against {kind} failed ({client.returncode}): {err}")
        if err:
            print(f"  {kind}: {err}", file=sys.stderr)
        figures = dict(kv.split("=") for kv in open(out_path).read().split())
        if int(figures["answered"]) != n:
            raise SystemExit(f"client against {kind}: {figures['answered']} of {n} answered")
        end = float(figures["end"])
        got = recv.received()
        while got is not None and got < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{kind}: {got} of {n} messages after {TIMEOUT}s")
            time.sleep(recv.poll)
            got = recv.received()
            if got >= n:
                end = max(end, time.monotonic())
        cpu = cpu_secs(recv.pid) - cpu0
        extra = ""
        if kind == "canhgac":
            m = recv.metrics()
            commits = m["canhgac_store_commits_total"] - before["canhgac_store_commits_total"]
            dur = (m["canhgac_store_commit_duration_seconds_sum"]
                   - before["canhgac_store_commit_duration_seconds_sum"])
            extra = (f"{commits:.0f} commits, {n / commits:.0f} msg each, "
                     f"{1000 * dur / commits:.2f} ms mean" if commits else "no commit")
        return Run(n, end - float(figures["start"]), cpu, client_cpu, figures, extra)
    finally:
        recv.stop()


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("gcc"):
        raise SystemExit("gcc not found: the RELP client is C compiled at run time (apt-get install gcc)")
    version = " ".join(subprocess.run([rsyslogd(), "-v"], capture_output=True, text=True)
                       .stdout.split(" compiled")[0].split())
    os.makedirs(BENCH_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix="run-", dir=BENCH_DIR)
    rows = []
    try:
        src, exe = os.path.join(work, "relpbench.c"), os.path.join(work, "relpbench")
        open(src, "w").write(RELP_C)
        subprocess.run(["gcc", "-O2", "-pthread", "-o", exe, src], check=True)
        print(f"RELP benchmark: {N} sshd failures per row; attackers {', '.join(map(str, ATTACKERS))}")
        print(f"canhgac {BIN}; {version}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
              flush=True)
        for att in ATTACKERS:
            path = os.path.join(work, f"msgs-{att}")
            with open(path, "wb") as f:
                f.write(b"".join(m + b"\n" for m in messages(N, att)))
            for window, conns in ROWS:
                runs = {}
                for kind in ("client", "canhgac", "rsyslog"):
                    runs[kind] = bench(kind, exe, work, path, N, window, conns)
                label = f"w{window} x{conns}, {att // 1000}k att" if att % 1000 == 0 else f"w{window} x{conns}, {att} att"
                rows.append((label, runs))
                print(f"  done: {label} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    finally:
        kill_all()
        if not KEEP:
            for d in SCRATCH_DIRS + [work]:
                shutil.rmtree(d, ignore_errors=True)
    report(rows)


def report(rows):
    print()
    print(f"{'':<20} | {'client ceiling':<15} | {'canhgac':<32} | {'rsyslog imrelp':<24} | "
          f"canhgac / rsyslog")
    print(f"{'row':<20} | {'msg/s':>9}{'cl us':>6} | {'msg/s':>9}{'us/msg':>7}{'rtt ms':>8}{'p99':>8} | "
          f"{'msg/s':>9}{'us/msg':>7}{'rtt ms':>8} | {'rate':>6}{'cpu':>6}  canhgac commits")
    for label, r in rows:
        c, s, t = r["canhgac"], r["rsyslog"], r["client"]
        print(f"{label:<20} | {t.rate:>9,.0f}{t.client_us:>6.2f} | {c.rate:>9,.0f}{c.us:>7.2f}"
              f"{1000 * c.rtt:>8.2f}{1000 * c.rtt99:>8.2f} | {s.rate:>9,.0f}{s.us:>7.2f}"
              f"{1000 * s.rtt:>8.2f} | {c.rate / s.rate:>6.2f}{c.us / s.us:>6.2f}  {c.extra}")
    print()
    print("msg/s: messages over the time from the first frame sent until all are answered and counted"
          " by the receiver; us/msg: the receiver's CPU time (utime + stime) per message; cl us: the"
          " client's own CPU per message against the trivial server; rtt: median (p99) time from"
          " writing the first frame of a window to the answer to its last; rate, cpu: canhgac's"
          " msg/s and us/msg over rsyslog's.")


if __name__ == "__main__":
    main()
