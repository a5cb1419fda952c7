#!/usr/bin/env bash
# Report and import benchmark, in one run:
#   1. generates two years of nginx access logs (MONTHS months from January 2019, PER_MONTH
#      attacks a month, each from its own address and so one incident each, among FILLER benign
#      lines per attack), one plain file per month, as logrotate leaves them;
#   2. `canhgac scan` on those files (the reference: the same analysis, no store), then
#      `canhgac import` of the same files into a fresh store, then `canhgac import` of gzip
#      copies of GZ_MONTHS of them into another store;
#   3. `canhgac report --month REPORT_MONTH` in every format, RUNS times each (median), against
#      the same five window counts done by Python's sqlite3 on the same store (the cheapest
#      possible query, no process start) and a bare `canhgac --version` (process start alone).
# Python 3 stdlib only; no root. Exits 0 whatever the numbers are.
#
# Environment:
#   PER_MONTH=30000   incidents per month          MONTHS=24        months of logs
#   FILLER=2          benign lines per attack      GZ_MONTHS=3      months imported from gzip
#   RUNS=5            report runs per format       REPORT_MONTH=2020-10
#   BENCH_DIR=<repo>/target/bench-report           BUILD=1 (0 skips cargo build --release)
set -euo pipefail

NAME=report.sh
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${PER_MONTH:=30000}" "${MONTHS:=24}" "${FILLER:=2}" "${GZ_MONTHS:=3}" "${RUNS:=5}" "${REPORT_MONTH:=2020-10}"
: "${BENCH_DIR:=$ROOT/target/bench-report}"
BIN=$ROOT/target/release/canhgac
build_release
mkdir -p "$BENCH_DIR"

export BIN BENCH_DIR PER_MONTH MONTHS FILLER GZ_MONTHS RUNS REPORT_MONTH
exec python3 - <<'PY'
import datetime as dt, gzip, json, os, re, shutil, sqlite3, statistics, subprocess, time

BIN = os.environ["BIN"]; D = os.environ["BENCH_DIR"]
PER_MONTH = int(os.environ["PER_MONTH"]); MONTHS = int(os.environ["MONTHS"])
FILLER = int(os.environ["FILLER"]); GZ_MONTHS = int(os.environ["GZ_MONTHS"])
RUNS = int(os.environ["RUNS"]); MONTH = os.environ["REPORT_MONTH"]
TZ = dt.timezone(dt.timedelta(hours=7))

logs = os.path.join(D, "logs"); gz = os.path.join(D, "gz")
marker = os.path.join(D, "logs.json")
spec = {"per_month": PER_MONTH, "months": MONTHS, "filler": FILLER}
if not (os.path.exists(marker) and json.load(open(marker)) == spec):
    shutil.rmtree(logs, ignore_errors=True); os.makedirs(logs)
    t0 = time.time(); n = 0
    kinds = [
        '"GET /product.php?id=1%27%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1" 200 512 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"',
        '"GET /uploads/wso.php HTTP/1.1" 200 512 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"',
        '"GET / HTTP/1.1" 200 512 "-" "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)"',
    ]
    benign = '"GET /index.html HTTP/1.1" 200 5120 "https://portal.example.gov.vn/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"'
    for k in range(MONTHS):
        y, m = 2019 + k // 12, k % 12 + 1
        start = dt.datetime(y, m, 1, tzinfo=TZ)
        end = dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=TZ)
        step = (end - start).total_seconds() / PER_MONTH
        out = []
        for i in range(PER_MONTH):
            t = start + dt.timedelta(seconds=int(i * step))
            stamp = t.strftime("%d/%b/%Y:%H:%M:%S %z")
            n += 1
            ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            out.append(f'{ip} - - [{stamp}] {kinds[i % 3]}\n')
            for f in range(FILLER):
                out.append(f'192.0.2.{(i + f) % 250 + 1} - - [{stamp}] {benign}\n')
        path = os.path.join(logs, f"access.log.{MONTHS - k}")
        with open(path, "w") as fh:
            fh.writelines(out)
        os.utime(path, (end.timestamp(), end.timestamp()))
    json.dump(spec, open(marker, "w"))
    print(f"generated {MONTHS} files in {time.time() - t0:.1f} s")
files = sorted((os.path.join(logs, f) for f in os.listdir(logs)), key=lambda p: -int(p.rsplit(".", 1)[1]))
total_bytes = sum(os.path.getsize(f) for f in files)
shutil.rmtree(gz, ignore_errors=True); os.makedirs(gz)
gz_files = []
for f in files[-GZ_MONTHS:]:
    g = os.path.join(gz, os.path.basename(f) + ".gz")
    with open(f, "rb") as src, gzip.open(g, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst)
    gz_files.append(g)

def config(name):
    d = os.path.join(D, name); shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
    path = os.path.join(d, "canhgac.toml")
    open(path, "w").write(f'''agency = "bench"
time_zone = "Asia/Ho_Chi_Minh"
state_dir = "state"
[http]
listen = "127.0.0.1:9"
[[input]]
name = "web"
path = "/var/log/nginx/access.log"
type = "nginx"
''')
    return path

def timed(args, **kw):
    t0 = time.perf_counter()
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{args[:3]} failed: {p.stderr.decode()[-2000:]}")
    return took, p

mb = total_bytes / 1e6
print(f"canhgac {subprocess.run([BIN, '--version'], capture_output=True, text=True).stdout.strip()}; "
      f"{MONTHS} months x {PER_MONTH} incidents, {mb:.0f} MB of access logs; "
      f"CPU: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")

scan_s, p = timed([BIN, "scan", "--type", "nginx", "--tz", "Asia/Ho_Chi_Minh", "--format", "json", *files])
scan_line = p.stderr.decode().strip().splitlines()[-1]
cfg = config("store")
import_s, p = timed([BIN, "import", "--config", cfg, *files])
import_line = p.stderr.decode().strip().splitlines()[-1]
cfg_gz = config("store-gz")
gz_bytes = sum(os.path.getsize(f) for f in files[-GZ_MONTHS:])
gz_s, p = timed([BIN, "import", "--config", cfg_gz, *gz_files])
reimport_s, p = timed([BIN, "import", "--config", cfg, *files])
skipped = re.search(r"(\d+) already imported", p.stderr.decode()).group(1)
db = os.path.join(os.path.dirname(cfg), "state", "canhgac.db")
incidents = sqlite3.connect(db).execute("SELECT COUNT(*) FROM incidents").fetchone()[0]

scan_incidents = re.search(r"(\d+) incidents", scan_line).group(1)
print()
print(f"| what | seconds | MB/s | incidents |")
print(f"|---|---:|---:|---:|")
print(f"| scan, {len(files)} plain files (reference) | {scan_s:.2f} | {mb / scan_s:.1f} | {scan_incidents} |")
print(f"| import, same files, fresh store | {import_s:.2f} | {mb / import_s:.1f} | {incidents} |")
print(f"| import, {GZ_MONTHS} gzip files ({gz_bytes / 1e6:.0f} MB decompressed) | {gz_s:.2f} | {gz_bytes / 1e6 / gz_s:.1f} | |")
print(f"| import again, all {skipped} files already imported | {reimport_s:.2f} | {mb / reimport_s:.1f} | 0 |")
print(f"import / scan time: {import_s / scan_s:.2f}x")
print(f"  scan:   {scan_line}")
print(f"  import: {import_line}")

print()
print(f"report --month {MONTH} on {incidents} incidents ({os.path.getsize(db) / 1e6:.0f} MB store), median of {RUNS}:")
print("| format | ms |")
print("|---|---:|")
for fmt in ["table", "json", "csv", "markdown", "html"]:
    times = [timed([BIN, "report", "--config", cfg, "--month", MONTH, "--format", fmt])[0] for _ in range(RUNS)]
    print(f"| {fmt} | {statistics.median(times) * 1e3:.1f} |")
ver = [timed([BIN, "--version"])[0] for _ in range(RUNS)]
print(f"| reference: `canhgac --version` (process start) | {statistics.median(ver) * 1e3:.1f} |")

# Reference: the five window counts by category, straight SQL, no process.
y, m = map(int, MONTH.split("-"))
def start(y, m):
    return int(dt.datetime(y, m, 1, tzinfo=TZ).timestamp() * 1e6)
def nxt(y, m):
    return (y + (m == 12), m % 12 + 1)
py_, pm_ = (y - (m == 1), (m - 2) % 12 + 1)
windows = [(start(y, m), start(*nxt(y, m))), (start(py_, pm_), start(y, m)),
           (start(y - 1, m), start(*nxt(y - 1, m))), (start(y, 1), start(*nxt(y, m))),
           (start(y - 1, 1), start(*nxt(y - 1, m)))]
conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
times = []
for _ in range(RUNS):
    t0 = time.perf_counter()
    for a, b in windows:
        conn.execute("SELECT category, COUNT(*) FROM incidents WHERE first_seen_us >= ? AND first_seen_us < ? GROUP BY category", (a, b)).fetchall()
    times.append(time.perf_counter() - t0)
print(f"| reference: the 5 window counts in Python's sqlite3 | {statistics.median(times) * 1e3:.1f} |")
PY
