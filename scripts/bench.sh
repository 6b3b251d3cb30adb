#!/usr/bin/env bash
# `make bench`: how fast Atelier answers through nginx, against a ceiling measured in the same run.
#
# It starts a private stack (scripts/stack.sh) in .run-bench on free ports, serves next to it a C libfcgi
# hello-world (bench/ceiling.c) with as many processes as the health function and behind the same nginx,
# and loads both with wrk. Also measured: the cold start of the health binary run as plain CGI, and the
# resident memory of the health processes after the load. It prints a markdown table and writes it, with a
# JSON copy, to results/bench-<timestamp>.{md,json}.
#
# A benchmark, not a test: it asserts nothing about the figures and exits 0 when everything ran. On this
# machine wrk shares the CPUs with nginx, the functions, PostgreSQL and Redis, so compare figures from the
# same machine only, and read them against the ceiling rather than as absolute numbers.
#
# Environment: PROCESSES (per function, 2), BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_WARMUP (3 s),
# BENCH_DURATION (10 s), BENCH_COLD_RUNS (20), BENCH_RSS_REQUESTS (10000), NGINX_WORKERS (2).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# The stack reads these; exporting them makes every `scripts/stack.sh` call below agree.
export RUN_DIR=$ROOT/.run-bench
export BIN_DIR=${BIN_DIR:-$ROOT/.build/release}
export PROCESSES=${PROCESSES:-2}
# Writing an access log line per request would measure the disk, not Atelier.
export NGINX_ACCESS_LOG=off

CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-3}
DURATION=${BENCH_DURATION:-10}
COLD_RUNS=${BENCH_COLD_RUNS:-20}
RSS_REQUESTS=${BENCH_RSS_REQUESTS:-10000}

LOG_DIR=$RUN_DIR/logs
SOCK_DIR=$RUN_DIR/sock
# One JSON object per measurement; the report at the end is rendered from this file alone.
MEASUREMENTS=$RUN_DIR/measurements.jsonl

say() { printf '\033[1m%s\033[0m\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---- tools -------------------------------------------------------------------------------------------

# `make bench` has already run `stack.sh deps`, but this script is also run on its own.
need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "Installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Ports outside the kernel's ephemeral range: wrk and the functions open thousands of outgoing connections,
# and one of them must not take a port between the moment it is chosen here and the moment a server
# binds it. The development stack's fixed ports are never chosen, even when free.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
count = int(sys.argv[1])
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
reserved = {8080, 8090, 55432, 56379}
held, ports = [], []
while len(ports) < count:
    port = random.randrange(10000, max(low, 10001))
    if port in reserved or port in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    held.append(s)  # held until all are chosen, so the ports are distinct and free at the same moment
    ports.append(port)
print(*ports)
PY
}

# ---- the stack and the ceiling -----------------------------------------------------------------------

CEILING_PID_FILE=$RUN_DIR/ceiling.pid

# The supervisor's way of serving a function, for a binary it does not know: one listening Unix socket
# handed to N processes as fd 0. The helper stays the parent so that stopping it stops them all.
CEILING_SPAWNER='
import os, signal, socket, subprocess, sys
path, count, binary, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if os.path.exists(path):
    os.unlink(path)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(path)
os.chmod(path, 0o660)
listener.listen(511)  # the supervisor'"'"'s backlog
with open(log, "ab") as out:
    children = [subprocess.Popen([binary], stdin=listener.fileno(), stdout=out, stderr=out) for _ in range(count)]
def stop(*_):
    for child in children:
        child.terminate()
    for child in children:
        child.wait()
    os.unlink(path)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
while True:
    signal.pause()
'

ceiling_start() {
  local processes=$1
  cc -O2 -Wall "$ROOT/bench/ceiling.c" -lfcgi -o "$RUN_DIR/ceiling"
  python3 -c "$CEILING_SPAWNER" "$SOCK_DIR/ceiling.sock" "$processes" "$RUN_DIR/ceiling" "$LOG_DIR/ceiling.log" \
    </dev/null >>"$LOG_DIR/ceiling.log" 2>&1 &
  echo $! > "$CEILING_PID_FILE"
  for _ in $(seq 100); do [ -S "$SOCK_DIR/ceiling.sock" ] && break; sleep 0.05; done
  [ -S "$SOCK_DIR/ceiling.sock" ] || die "the ceiling did not open its socket (see $LOG_DIR/ceiling.log)"

  # The stack has no include hook for extra locations, so the ceiling's location goes into this run's
  # rendered copy of nginx.conf, next to health's, and nginx reloads it.
  local conf=$RUN_DIR/nginx/atelier.conf
  sed -i "\#location = /api/v1/health#i\\    location = /bench/ceiling { fastcgi_pass unix:$SOCK_DIR/ceiling.sock; }" "$conf"
  grep -q 'location = /bench/ceiling' "$conf" || die "no 'location = /api/v1/health' in $conf to put the ceiling next to"
  nginx -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" -e "$LOG_DIR/nginx-error.log" -s reload
  # A reload is asynchronous: wait for the new workers to answer for the new location.
  for _ in $(seq 50); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/bench/ceiling")" = 200 ] && return 0
    sleep 0.1
  done
  die "nginx does not serve /bench/ceiling after the reload (see $LOG_DIR/nginx-error.log)"
}

ceiling_stop() {
  [ -f "$CEILING_PID_FILE" ] || return 0
  local pid; pid=$(cat "$CEILING_PID_FILE")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$CEILING_PID_FILE"
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ $status -eq 0 ] || say "bench failed (status $status); logs are in $LOG_DIR/"
  ceiling_stop
  scripts/stack.sh stop || true
  exit $status
}

# The processes serving a function: the supervisor's children running its binary. (A pattern match on
# the binary's path would also find the development stack's processes.)
health_pids() {
  local pid binary
  binary=$(readlink -f "$BIN_DIR/health")  # .build/release is a symlink; /proc/PID/exe is resolved
  for pid in $(pgrep -P "$(cat "$RUN_DIR/supervisor.pid")"); do
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$binary" ] && echo "$pid"
  done
  return 0
}

ceiling_pids() { pgrep -P "$(cat "$CEILING_PID_FILE")" || true; }

# ---- measurements ------------------------------------------------------------------------------------

# Requests each scenario has received, warm-up included (the RSS reading wants a minimum on health).
declare -A SERVED=()
CEILING_RPS=""

# wrk's --latency report as "requests seconds req/s p50_ms p99_ms non_2xx_3xx socket_errors".
wrk_summary() {
  awk '
    function ms(text,   unit) { unit = text; sub(/^[0-9.]+/, "", unit)
      return (unit == "us") ? text / 1000 : (unit == "ms") ? text + 0 : (unit == "s") ? text * 1000 : text * 60000 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { requests = $1; seconds = $4 + 0 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); socket = $4 + $6 + $8 + $10 }
    END { printf "%d %.2f %.2f %.3f %.3f %d %d\n", requests, seconds, rps, p50, p99, non2xx, socket }'
}

# scenario NAME PATH [wrk args...]: a warm-up, then the measured run, recorded under NAME. Extra
# arguments go to wrk as they are, for what later scenarios need: -H "Cookie: session=…",
# -H "Authorization: Bearer …", -s bench/some-post.lua. The first scenario is the ceiling; every
# later one is reported as a ratio to it.
scenario() {
  local name=$1 path=$2; shift 2
  local url=$BASE_URL$path out=$RUN_DIR/wrk-$name.txt
  local wrk=(wrk -t"$THREADS" -c"$CONNECTIONS" --latency "$@")
  say "  $name: $path (${WARMUP} s warm-up, ${DURATION} s measured)"
  local warm
  warm=$("${wrk[@]}" -d"${WARMUP}s" "$url" | wrk_summary)
  "${wrk[@]}" -d"${DURATION}s" "$url" > "$out"
  local requests seconds rps p50 p99 non2xx socket
  read -r requests seconds rps p50 p99 non2xx socket < <(wrk_summary < "$out")
  SERVED[$name]=$(( ${SERVED[$name]:-0} + ${warm%% *} + requests ))
  [ -n "$CEILING_RPS" ] || CEILING_RPS=$rps
  # Errors make a run's speed meaningless (a 503 is fast); they are reported next to it, never hidden.
  [ "$non2xx" = 0 ] && [ "$socket" = 0 ] || say "  $name: $non2xx non-2xx responses, $socket socket errors (see $out)"
  printf '{"kind":"scenario","name":"%s","path":"%s","requests":%s,"seconds":%s,"rps":%s,"p50_ms":%s,"p99_ms":%s,"non_2xx":%s,"socket_errors":%s,"ratio":%s}\n' \
    "$name" "$path" "$requests" "$seconds" "$rps" "$p50" "$p99" "$non2xx" "$socket" \
    "$(awk -v a="$rps" -v b="$CEILING_RPS" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')" >> "$MEASUREMENTS"
}

# Until NAME has received at least N requests, more load on it (not recorded as a scenario).
top_up() {
  local name=$1 path=$2 wanted=$3 more
  while [ "${SERVED[$name]:-0}" -lt "$wanted" ]; do
    more=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d5s "$BASE_URL$path" | awk '/ requests in / { print $1 }')
    SERVED[$name]=$(( ${SERVED[$name]:-0} + ${more:-0} ))
    [ "${more:-0}" -gt 0 ] || die "no requests reached $path"
  done
}

# cold_start NAME BINARY PATH: the median wall time of the binary answering one request as plain CGI
# (nothing on fd 0), as a process started per request would: exec, configuration and, for a function,
# connecting to PostgreSQL and Redis. Only the app's environment and the CGI variables are passed.
cold_start() {
  python3 - "$1" "$2" "$3" "$RUN_DIR/env" "$COLD_RUNS" <<'PY' >> "$MEASUREMENTS"
import json, statistics, subprocess, sys, time
name, binary, path, env_file, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
env = {"PATH": "/usr/bin:/bin"}
for line in open(env_file):
    key, sep, value = line.rstrip("\n").partition("=")
    if sep:
        env[key] = value
env.update({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "REQUEST_URI": path,
            "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"})
def once():
    start = time.perf_counter()
    run = subprocess.run([binary], stdin=subprocess.DEVNULL, capture_output=True, env=env)
    elapsed = (time.perf_counter() - start) * 1000
    if run.returncode != 0 or not run.stdout.startswith(b"Status: 200"):
        head = (run.stdout[:200] + run.stderr[-400:]).decode(errors="replace")
        raise SystemExit(f"{name} as CGI: exit {run.returncode}, not a 200 response:\n{head}")
    return elapsed
once()  # the first run pays for reading the binary from disk, which no later start does
times = [once() for _ in range(runs)]
print(json.dumps({"kind": "cold_start", "name": name, "runs": runs, "median_ms": round(statistics.median(times), 3),
                  "min_ms": round(min(times), 3), "max_ms": round(max(times), 3)}))
PY
}

# rss NAME PID...: resident memory of a function's processes, max and mean, in MiB.
rss() {
  local name=$1; shift
  [ $# -gt 0 ] || die "no $name processes to measure"
  local pid kib=()
  for pid in "$@"; do kib+=("$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")"); done
  printf '%s\n' "${kib[@]}" | awk -v name="$name" -v served="${SERVED[$name]:-0}" '
    { sum += $1; if ($1 > max) max = $1 }
    END { printf "{\"kind\":\"rss\",\"name\":\"%s\",\"processes\":%d,\"after_requests\":%d,\"max_mib\":%.2f,\"mean_mib\":%.2f}\n",
          name, NR, served, max / 1024, sum / NR / 1024 }' >> "$MEASUREMENTS"
}

# ---- the report --------------------------------------------------------------------------------------

# Renders the measurements as the markdown table (stdout and results/…md) and as JSON (results/…json).
report() {
  local stamp=$1
  mkdir -p "$ROOT/results"
  local dirty=false
  [ -z "$(git status --porcelain 2>/dev/null)" ] || dirty=true
  STAMP=$stamp COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) DIRTY=$dirty CPUS=$(nproc) \
  LOAD_BEFORE=$LOAD_BEFORE PROCS=$HEALTH_PROCESSES WORKERS=${NGINX_WORKERS:-2} \
  THREADS=$THREADS CONNECTIONS=$CONNECTIONS WARMUP=$WARMUP DURATION=$DURATION \
  python3 - "$MEASUREMENTS" "$ROOT/results/bench-$stamp" <<'PY'
import json, os, sys
e = os.environ
measurements = [json.loads(line) for line in open(sys.argv[1])]
meta = {
    "timestamp": e["STAMP"], "commit": e["COMMIT"], "uncommitted_changes": e["DIRTY"] == "true",
    "cpus": int(e["CPUS"]), "load_average_before": e["LOAD_BEFORE"],
    "processes_per_function": int(e["PROCS"]), "nginx_workers": int(e["WORKERS"]),
    "wrk": {"threads": int(e["THREADS"]), "connections": int(e["CONNECTIONS"]),
            "warmup_s": int(e["WARMUP"]), "duration_s": int(e["DURATION"])},
}
wrk = meta["wrk"]
lines = [
    f"## Atelier benchmark {meta['timestamp']} ({meta['commit']}{', uncommitted changes' if meta['uncommitted_changes'] else ''})",
    "",
    f"wrk: {wrk['threads']} threads, {wrk['connections']} connections, {wrk['duration_s']} s after a {wrk['warmup_s']} s warm-up; "
    f"{meta['processes_per_function']} processes per function, {meta['nginx_workers']} nginx workers; "
    f"{meta['cpus']} CPUs shared with wrk; load average before: {meta['load_average_before']}.",
    "",
    "| scenario | req/s | p50 | p99 | ratio to ceiling | errors |",
    "|---|---:|---:|---:|---:|---:|",
]
for s in (m for m in measurements if m["kind"] == "scenario"):
    errors = s["non_2xx"] + s["socket_errors"]
    lines.append(f"| {s['name']} | {s['rps']:,.0f} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | {s['ratio']:.2f} | {errors} |")
lines.append("")
for m in (m for m in measurements if m["kind"] == "cold_start"):
    lines.append(f"- Cold start, {m['name']} as CGI: median {m['median_ms']:.2f} ms of {m['runs']} runs "
                 f"(min {m['min_ms']:.2f}, max {m['max_ms']:.2f})")
for m in (m for m in measurements if m["kind"] == "rss"):
    lines.append(f"- RSS, {m['name']} after {m['after_requests']:,} requests: max {m['max_mib']:.1f} MiB, "
                 f"mean {m['mean_mib']:.1f} MiB ({m['processes']} processes)")
text = "\n".join(lines) + "\n"
print(text, end="")
with open(sys.argv[2] + ".md", "w") as f:
    f.write(text)
with open(sys.argv[2] + ".json", "w") as f:
    json.dump({**meta, "measurements": measurements}, f, indent=2)
    f.write("\n")
PY
  say "Written: results/bench-$stamp.md and results/bench-$stamp.json"
}

# ---- the run -----------------------------------------------------------------------------------------

need_packages wrk libfcgi-dev curl python3
command -v cc >/dev/null || need_packages gcc
[ -x "$BIN_DIR/health" ] || die "no build in $BIN_DIR: run 'make build' first"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
# Other work on the machine (a build) skews everything; the report says how busy it was.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

read -r PORT PG_PORT REDIS_PORT < <(free_ports 3) || true
[ -n "${REDIS_PORT:-}" ] || die "could not find free ports"
export PORT PG_PORT REDIS_PORT
BASE_URL=http://127.0.0.1:$PORT

trap cleanup EXIT
trap 'exit 130' INT TERM

# Whatever a previous, interrupted run left running goes first: a PostgreSQL still running on this data
# directory would be reused on its old port. Logs start empty so that they show this run only.
mkdir -p "$RUN_DIR"
ceiling_stop
scripts/stack.sh stop
rm -rf "$LOG_DIR" "$SOCK_DIR" "$MEASUREMENTS" "$RUN_DIR"/wrk-*.txt

say "Starting the stack in $RUN_DIR (http $PORT, PostgreSQL $PG_PORT, Redis $REDIS_PORT)"
scripts/stack.sh start >/dev/null
HEALTH_PROCESSES=$(health_pids | wc -l)
[ "$HEALTH_PROCESSES" -gt 0 ] || die "no health processes under the supervisor (see $LOG_DIR/)"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/api/v1/health")" = 200 ] \
  || die "GET /api/v1/health is not 200 before the benchmark (see $LOG_DIR/)"
ceiling_start "$HEALTH_PROCESSES"

say "Load (wrk)"
scenario ceiling /bench/ceiling
scenario health /api/v1/health
# More scenarios go here, e.g.:
#   scenario me /api/v1/me -H "Cookie: session=$SESSION"
#   scenario upload /api/v1/uploads -H "Authorization: Bearer $API_KEY" -s bench/upload.lua

say "Memory"
top_up health /api/v1/health "$RSS_REQUESTS"
# shellcheck disable=SC2046  # one pid per word
rss health $(health_pids)
# shellcheck disable=SC2046
rss ceiling $(ceiling_pids)

say "Cold start (CGI, $COLD_RUNS runs each)"
cold_start health "$BIN_DIR/health" /api/v1/health
cold_start ceiling "$RUN_DIR/ceiling" /bench/ceiling

report "$STAMP"
