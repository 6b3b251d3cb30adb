#!/usr/bin/env bash
# `make bench`: how fast Atelier answers through nginx, against a ceiling measured in the same run.
#
# It starts a private stack (scripts/stack.sh) in .run-bench on free ports, serves next to it a C libfcgi
# hello-world (bench/ceiling.c) with as many processes as the health function and behind the same nginx,
# and loads both with wrk. The scenarios (issue 9), each reported as a ratio to that ceiling:
#
#   health      GET /api/v1/health (PostgreSQL and Redis round trips)
#   gallery-limit  the gallery read written in C (bench/gallery.c), same processes as generate: the limit
#   gallery     GET /api/v1/images with a session cookie: a session lookup and one indexed query, 24 rows
#   videos, keys, generation, admin-users, admin-audit
#               the other listings with the same session (24 videos, 1 key, one generation, 50 users or
#               fewer, 50 of 60 audit entries): each is read against the gallery limit too
#   usage       GET /api/v1/usage with an API key
#   search      GET /api/v1/images?q=lighth with the same session once the bench user has SEARCH_IMAGES
#               (100,000) more images, one in a hundred with "lighthouse" in its prompt: a prefix search
#               over the GIN index, 24 rows; read against the gallery limit too
#   generate    POST /api/v1/images with an API key and the local provider, under the product's default
#               generation budget: most answers are 429 rate_limited; accepted and refused are counted apart
#   login       POST /api/v1/login, at BENCH_LOGIN_CONNECTIONS (4): argon2id dominates
#
# The bench user is registered and verified through the API (the code is read from the stack's outbox,
# SMTP_URL being unset) and makes its 24 images through POST /api/v1/images; the generation budget's bucket
# is emptied in Redis between those setup requests, and again between the generation scenario's warm-up and
# its measured run, so the measured run starts from a full burst. Reads get a budget no run can exhaust and
# the daily quota is the largest allowed (RATE_READ_*, QUOTA_FREE_DAILY), so neither is what is measured.
# nginx's per-address limit on the auth endpoints (10 r/s, all of wrk is one address) is lifted in this
# run's copy of the configuration, so that login measures the function, not the limit.
#
# Also measured: the memory of the whole bundle (PSS summed over every process) at rest and after the load,
# the first request to a function that has scaled to zero (billing, idle timeout 1 s, 20 tries, through
# nginx), the cold start of the health binary run as plain CGI, the resident memory of the
# health, generate, session and profile processes after the load, and the CPU instructions per gallery
# request of one generate process and of the C limit under callgrind (stable where req/s is noisy). It prints a markdown table and writes it,
# with a JSON copy, to results/bench-<timestamp>.{md,json}.
#
# A benchmark, not a test: it asserts nothing about the figures and exits 0 when everything ran. On this
# machine wrk shares the CPUs with nginx, the functions, PostgreSQL and Redis, so compare figures from the
# same machine only, and read them against the ceiling rather than as absolute numbers.
#
# Environment: PROCESSES (per function, 2), BENCH_CONNECTIONS (32), BENCH_LOGIN_CONNECTIONS (4),
# BENCH_THREADS (2), BENCH_WARMUP (3 s), BENCH_DURATION (10 s), BENCH_COLD_RUNS (20), BENCH_RSS_REQUESTS
# (10000), BENCH_CALLGRIND_REQUESTS (200), BENCH_GALLERY_IMAGES (24), NGINX_WORKERS (2).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# The stack reads these; exporting them makes every `scripts/stack.sh` call below agree.
export RUN_DIR=$ROOT/.run-bench
export BIN_DIR=${BIN_DIR:-$ROOT/.build/release}
export PROCESSES=${PROCESSES:-2}
# Writing an access log line per request would measure the disk, not Atelier.
export NGINX_ACCESS_LOG=off
# Reads are never refused and the quota never runs out; generation keeps the product's default budget
# (whatever the caller's environment says, e.g. scripts/test.sh's generous limits). Mail goes to the
# outbox, where the bench user's code is read. No cron runs during the load.
export RATE_READ_PER_MINUTE=1000000 RATE_READ_BURST=1000000 QUOTA_FREE_DAILY=1000000
unset RATE_GENERATE_FREE_PER_MINUTE RATE_GENERATE_FREE_BURST RATE_GENERATE_PREMIUM_PER_MINUTE RATE_GENERATE_PREMIUM_BURST
unset SMTP_URL
export CRON_INTERVALS=" "
# The product's default scaling (scripts/stack.sh), except billing, which idles out after one second so the
# first request to a function scaled to zero can be timed 20 times in a row.
unset RESIDENT RESIDENT_FUNCTIONS IDLE_SECONDS
export SCALING="billing=0:$PROCESSES:1"

CONNECTIONS=${BENCH_CONNECTIONS:-32}
LOGIN_CONNECTIONS=${BENCH_LOGIN_CONNECTIONS:-4}
GALLERY_IMAGES=${BENCH_GALLERY_IMAGES:-24}
SEARCH_IMAGES=${BENCH_SEARCH_IMAGES:-100000}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-3}
DURATION=${BENCH_DURATION:-10}
COLD_RUNS=${BENCH_COLD_RUNS:-20}
RSS_REQUESTS=${BENCH_RSS_REQUESTS:-10000}
CALLGRIND_REQUESTS=${BENCH_CALLGRIND_REQUESTS:-200}

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

# The C references run under a small Python parent each (their pid files below); stopping it stops them.
reference_pid_file() { echo "$RUN_DIR/$1.pid"; }

# The supervisor's way of serving a function, for a binary it does not know: one listening Unix socket
# handed to N processes as fd 0. The helper stays the parent so that stopping it stops them all.
SPAWNER='
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

# reference_start NAME PROCESSES: serves the compiled $RUN_DIR/NAME with PROCESSES processes at
# /bench/NAME, behind the same nginx as the stack (nginx is reloaded with the new location).
reference_start() {
  local name=$1 processes=$2
  python3 -c "$SPAWNER" "$SOCK_DIR/$name.sock" "$processes" "$RUN_DIR/$name" "$LOG_DIR/$name.log" \
    </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
  echo $! > "$(reference_pid_file "$name")"
  for _ in $(seq 100); do [ -S "$SOCK_DIR/$name.sock" ] && break; sleep 0.05; done
  [ -S "$SOCK_DIR/$name.sock" ] || die "$name did not open its socket (see $LOG_DIR/$name.log)"

  # The stack has no include hook for extra locations, so the location goes into this run's rendered copy
  # of nginx.conf, next to health's, and nginx reloads it.
  local conf=$RUN_DIR/nginx/atelier.conf
  sed -i "\#location = /api/v1/health #i\\    location = /bench/$name { fastcgi_pass unix:$SOCK_DIR/$name.sock; }" "$conf"
  grep -q "location = /bench/$name" "$conf" || die "no 'location = /api/v1/health' in $conf to put /bench/$name next to"
  nginx -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" -e "$LOG_DIR/nginx-error.log" -s reload
  # A reload is asynchronous: wait for the new workers to route the new location to the reference.
  local code
  for _ in $(seq 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/bench/$name")
    [ "$code" != 404 ] && [ "$code" != 000 ] && return 0
    sleep 0.1
  done
  die "nginx does not serve /bench/$name after the reload (see $LOG_DIR/nginx-error.log)"
}

reference_stop() {
  local file; file=$(reference_pid_file "$1")
  [ -f "$file" ] || return 0
  local pid; pid=$(cat "$file")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$file"
}

# The ceiling: a C hello-world (bench/ceiling.c) with as many processes as the health function.
ceiling_start() {
  cc -O2 -Wall "$ROOT/bench/ceiling.c" -lfcgi -o "$RUN_DIR/ceiling"
  reference_start ceiling "$1"
}

# The gallery limit: the gallery read written in C (bench/gallery.c) with as many processes as the
# generate function, on this stack's PostgreSQL and Redis. The stack's environment file gives it the URLs.
gallery_limit_start() {
  cc -O2 -Wall "$ROOT/bench/gallery.c" -I"$(pg_config --includedir)" -lfcgi -lpq -lhiredis -lsodium -o "$RUN_DIR/gallery"
  (
    set -a
    # shellcheck disable=SC1091  # written by scripts/stack.sh
    . "$RUN_DIR/env"
    set +a
    reference_start gallery "$1"
  )
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ $status -eq 0 ] || say "bench failed (status $status); logs are in $LOG_DIR/"
  reference_stop ceiling
  reference_stop gallery
  scripts/stack.sh stop || true
  exit $status
}

# The processes serving a function: the supervisor's children running its binary. (A pattern match on
# the binary's path would also find the development stack's processes.) A binary rebuilt since its
# processes started shows as "<path> (deleted)".
function_pids() {
  local pid binary exe
  binary=$(readlink -f "$BIN_DIR/$1")  # .build/release is a symlink; /proc/PID/exe is resolved
  for pid in $(pgrep -P "$(cat "$RUN_DIR/supervisor.pid")"); do
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    [ "${exe% (deleted)}" = "$binary" ] && echo "$pid"
  done
  return 0
}
health_pids() { function_pids health; }

reference_pids() { pgrep -P "$(cat "$(reference_pid_file "$1")")" || true; }

# ---- the bench user ----------------------------------------------------------------------------------

# bench_user: registers and verifies a user through the API (the code from the newest .eml in the outbox),
# issues it an API key, and makes it GALLERY_IMAGES images through POST /api/v1/images (emptying its
# generation bucket in Redis before each, as the default budget admits 5 at once). Checks that its gallery's
# first page has 24 rows. Prints BENCH_* shell assignments: session token, CSRF token, API key, email,
# password, user id.
bench_user() {
  python3 - "$BASE_URL" "$RUN_DIR" "$REDIS_PORT" "$GALLERY_IMAGES" <<'PY'
import email, email.policy, glob, json, os, re, shlex, subprocess, sys, time, urllib.error, urllib.request, uuid
base, run_dir, redis_port, images = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def call(method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Origin": base, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")

def expect(status, answer, what):
    if answer[0] != status:
        raise SystemExit(f"bench user: {what} answered {answer[0]}, not {status}: {answer[2]}")
    return answer

address = f"bench-{uuid.uuid4().hex[:12]}@example.test"
password = "Bench-Horse-" + uuid.uuid4().hex[:12]
expect(202, call("POST", "/api/v1/register", {"email": address, "password": password}), "POST /api/v1/register")

code, deadline = None, time.monotonic() + 15
while code is None:
    mails = sorted(glob.glob(os.path.join(run_dir, "outbox", "*.eml")), key=os.path.getmtime)
    if mails:
        with open(mails[-1], "rb") as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        plain = message.get_body(preferencelist=("plain",))
        found = re.search(r"\b(\d{6})\b", plain.get_content() if plain else "")
        code = found and found.group(1)
    if code is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench user: no code mailed to {run_dir}/outbox within 15 s")
        time.sleep(0.1)

_, headers, body = expect(200, call("POST", "/api/v1/verify-otp", {"email": address, "code": code}), "POST /api/v1/verify-otp")
cookies = [c.split(";", 1)[0].split("=", 1) for c in headers.get_all("Set-Cookie") or []]
session = dict(cookies).get("atelier_session")
if not session:
    raise SystemExit(f"bench user: no atelier_session cookie from verify-otp: {headers.get_all('Set-Cookie')}")
csrf, user_id = body["csrf_token"], body["user"]["id"]
browser = {"Cookie": f"atelier_session={session}", "X-CSRF-Token": csrf}

_, _, key = expect(201, call("POST", "/api/v1/keys", {"name": "bench"}, browser), "POST /api/v1/keys")

for n in range(images):
    subprocess.run(["redis-cli", "-p", redis_port, "DEL", f"rl:generate:u:{user_id}"], check=True, capture_output=True)
    expect(201, call("POST", "/api/v1/images", {"prompt": f"bench gallery image {n}", "style": "none"}, browser),
           f"POST /api/v1/images ({n + 1} of {images})")
subprocess.run(["redis-cli", "-p", redis_port, "DEL", f"rl:generate:u:{user_id}"], check=True, capture_output=True)

_, _, page = expect(200, call("GET", "/api/v1/images", headers=browser), "GET /api/v1/images")
if len(page["items"]) != min(images, 24):
    raise SystemExit(f"bench user: the gallery's first page has {len(page['items'])} rows, not {min(images, 24)}")
for name, value in [("SESSION", session), ("CSRF", csrf), ("API_KEY", key["secret"]), ("EMAIL", address),
                    ("PASSWORD", password), ("USER_ID", user_id)]:
    print(f"BENCH_{name}={shlex.quote(value)}")
PY
}

# Empties the generation budget's buckets (the user's and the API key's) so a run starts from a full burst.
# First the warm-up's last requests must have drained: the ones nginx had already queued on the function's
# socket are still served after wrk has gone, and would spend the new burst.
reset_generation_budget() {
  local keys
  sleep 2
  keys=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'rl:generate:*')
  # shellcheck disable=SC2086  # one key per word
  [ -z "$keys" ] || redis-cli -p "$REDIS_PORT" DEL $keys >/dev/null
}

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
# arguments go to wrk as they are: -H "Cookie: …", -H "Authorization: Bearer …", -s bench/login.lua. The
# first scenario is the ceiling; every later one is reported as a ratio to it. Set for one call:
# SCENARIO_CONNECTIONS (instead of BENCH_CONNECTIONS), SCENARIO_BEFORE_MEASURE (a command run between the
# warm-up and the measured run). A script that prints "status <status> <error code> <count>" lines
# (bench/statuses.lua) has its answers recorded by status too.
scenario() {
  local name=$1 path=$2; shift 2
  local url=$BASE_URL$path out=$RUN_DIR/wrk-$name.txt
  local connections=${SCENARIO_CONNECTIONS:-$CONNECTIONS}
  local threads=$(( THREADS < connections ? THREADS : connections ))
  local wrk=(wrk -t"$threads" -c"$connections" --latency "$@")
  say "  $name: $path ($connections connections, ${WARMUP} s warm-up, ${DURATION} s measured)"
  local warm
  warm=$("${wrk[@]}" -d"${WARMUP}s" "$url" | wrk_summary)
  [ -z "${SCENARIO_BEFORE_MEASURE:-}" ] || eval "$SCENARIO_BEFORE_MEASURE"
  local before after
  before=$(cpu_ticks)
  "${wrk[@]}" -d"${DURATION}s" "$url" > "$out"
  after=$(cpu_ticks)
  local requests seconds rps p50 p99 non2xx socket
  read -r requests seconds rps p50 p99 non2xx socket < <(wrk_summary < "$out")
  cpu_per_request "$name" "$requests" "$before" "$after" >> "$MEASUREMENTS"
  SERVED[$name]=$(( ${SERVED[$name]:-0} + ${warm%% *} + requests ))
  [ -n "$CEILING_RPS" ] || CEILING_RPS=$rps
  # {"201 -": 6, "429 rate_limited": 4000} from the script's lines, or {} without them.
  local statuses
  statuses=$(awk '$1 == "status" { printf "%s\"%s %s\":%d", sep, $2, $3, $4; sep = "," } BEGIN { printf "{" } END { printf "}" }' "$out")
  # Errors make a run's speed meaningless (a 503 is fast); they are reported next to it, never hidden.
  [ "$non2xx" = 0 ] && [ "$socket" = 0 ] || say "  $name: $non2xx non-2xx responses, $socket socket errors (see $out)"
  printf '{"kind":"scenario","name":"%s","path":"%s","connections":%s,"requests":%s,"seconds":%s,"rps":%s,"p50_ms":%s,"p99_ms":%s,"non_2xx":%s,"socket_errors":%s,"ratio":%s,"statuses":%s}\n' \
    "$name" "$path" "$connections" "$requests" "$seconds" "$rps" "$p50" "$p99" "$non2xx" "$socket" \
    "$(awk -v a="$rps" -v b="$CEILING_RPS" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')" "$statuses" >> "$MEASUREMENTS"
}

# CPU time (clock ticks, user + system) spent so far by each part of the machine's work, as JSON: the
# function processes (all the supervisor's children, live and reaped, and the C references), PostgreSQL, Redis and nginx
# (wrk has exited by the second reading). Two readings around a measured run say where its CPU went.
cpu_ticks() {
  python3 - "$RUN_DIR" <<'PY'
import json, os, sys
run_dir = sys.argv[1]
def pids_of(parent):
    try:
        return [int(p) for p in open(f"/proc/{parent}/task/{parent}/children").read().split()]
    except OSError:
        return []
groups = {"functions": [], "references": [], "postgres": [], "redis": [], "nginx": []}
supervisor = int(open(f"{run_dir}/supervisor.pid").read())
groups["functions"] = pids_of(supervisor)
for name in ("ceiling", "gallery"):
    try:
        groups["references"] += pids_of(int(open(f"{run_dir}/{name}.pid").read()))
    except OSError:
        pass
groups["redis"] = [int(open(f"{run_dir}/redis.pid").read())]
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        comm = open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        continue
    if comm in ("postgres", "nginx"):
        groups[comm].append(int(pid))
def stat(pid):
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
ticks = {}
for group, pids in groups.items():
    total = 0
    for pid in pids:
        try:
            fields = stat(pid)
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    ticks[group] = total
# Function processes come and go (scale to zero): what the exited ones spent is in the supervisor's
# cutime/cstime once it has reaped them, so live + reaped only grows.
fields = stat(supervisor)
ticks["functions"] += int(fields[13]) + int(fields[14])
print(json.dumps(ticks))
PY
}

# cpu_per_request NAME REQUESTS BEFORE AFTER: the CPU each part spent per request of a measured run, in µs.
cpu_per_request() {
  python3 - "$1" "$2" "$3" "$4" "$(getconf CLK_TCK)" <<'PY'
import json, sys
name, requests, before, after, hz = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
per = {k: round((after[k] - before[k]) * 1_000_000 / hz / max(requests, 1)) for k in after}
print(json.dumps({"kind": "cpu", "name": name, "requests": requests, "us_per_request": per}))
PY
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
import json, shlex, statistics, subprocess, sys, time
name, binary, path, env_file, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
env = {"PATH": "/usr/bin:/bin"}
for line in open(env_file):  # KEY='value' lines, shell-quoted (scripts/stack.sh, write_env)
    key, sep, value = line.rstrip("\n").partition("=")
    if sep:
        env[key] = shlex.split(value)[0] if value else ""
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

# pss WHEN: the proportional set size (each shared page divided among the processes that map it) summed
# over the supervisor and every function process it runs, from /proc/PID/smaps_rollup: what the bundle
# costs the machine. Processes per function are counted too (a function scaled to zero has none).
pss() {
  local when=$1 supervisor pid kib total=0 count=0 per=""
  supervisor=$(cat "$RUN_DIR/supervisor.pid")
  for pid in "$supervisor" $(pgrep -P "$supervisor"); do
    kib=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
    [ -n "$kib" ] || continue
    total=$(( total + kib )); count=$(( count + 1 ))
  done
  for dir in "$ROOT"/Functions/*/; do
    local name; name=$(basename "$dir")
    case $name in *-cron) continue ;; esac
    per="$per${per:+,}\"$name\":$(function_pids "$name" | wc -l)"
  done
  printf '{"kind":"pss","when":"%s","processes":%d,"pss_mib":%.1f,"per_function":{%s}}\n' \
    "$when" "$count" "$(awk -v k="$total" 'BEGIN { print k / 1024 }')" "$per" >> "$MEASUREMENTS"
}

# first_request NAME FUNCTION PATH COOKIE: the time through nginx of a request to a function that has
# scaled to zero (no process: the supervisor starts one when the connection arrives), COLD_RUNS times,
# waiting each time until the previous process has idled out. Every answer must be a 200.
first_request() {
  local name=$1 function=$2 path=$3 cookie=$4 times=() i out
  for i in $(seq "$COLD_RUNS"); do
    for _ in $(seq 200); do [ -z "$(function_pids "$function")" ] && break; sleep 0.05; done
    [ -z "$(function_pids "$function")" ] || die "$function did not scale to zero"
    out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -H "Cookie: atelier_session=$cookie" "$BASE_URL$path")
    [ "${out% *}" = 200 ] || die "$path answered ${out% *} on a cold start"
    times+=("${out#* }")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" -v fn="$function" -v path="$path" '
    { t[NR] = $1 * 1000 }
    END { p99 = int(NR * 0.99 + 0.999); if (p99 > NR) p99 = NR
          printf "{\"kind\":\"first_request\",\"name\":\"%s\",\"function\":\"%s\",\"path\":\"%s\",\"runs\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f}\n",
                 name, fn, path, NR, t[int((NR + 1) / 2)], t[p99], t[NR] }' >> "$MEASUREMENTS"
}

# rss NAME SERVED PID...: resident memory of a function's processes, max and mean, in MiB, after they
# served SERVED requests (warm-ups included).
rss() {
  local name=$1 served=$2; shift 2
  [ $# -gt 0 ] || die "no $name processes to measure"
  local pid kib=()
  for pid in "$@"; do kib+=("$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")"); done
  printf '%s\n' "${kib[@]}" | awk -v name="$name" -v served="$served" '
    { sum += $1; if ($1 > max) max = $1 }
    END { printf "{\"kind\":\"rss\",\"name\":\"%s\",\"processes\":%d,\"after_requests\":%d,\"max_mib\":%.2f,\"mean_mib\":%.2f}\n",
          name, NR, served, max / 1024, sum / NR / 1024 }' >> "$MEASUREMENTS"
}

# instructions NAME BINARY PATH COOKIE: CPU instructions per request in one process of BINARY serving PATH
# over FastCGI, counted by callgrind: a warm-up, then the counters zeroed, CALLGRIND_REQUESTS requests
# (sent with cgi-fcgi straight to the process's socket, the session cookie as nginx would pass it), the
# counters dumped and divided. Unlike req/s this does not move with the machine's noise.
instructions() {
  local name=$1 binary=$2 path=$3 cookie=$4
  local sock=$SOCK_DIR/callgrind-$name.sock out=$RUN_DIR/callgrind-$name wrapper=$RUN_DIR/callgrind-$name.sh
  rm -f "$out".*
  printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s.%%p %s\n' "$out" "$binary" > "$wrapper"
  chmod +x "$wrapper"
  (
    set -a
    # shellcheck disable=SC1091  # written by scripts/stack.sh
    . "$RUN_DIR/env"
    set +a
    python3 -c "$SPAWNER" "$sock" 1 "$wrapper" "$LOG_DIR/callgrind-$name.log" </dev/null >>"$LOG_DIR/callgrind-$name.log" 2>&1 &
    echo $! > "$RUN_DIR/callgrind-$name.pid"
  )
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  [ -S "$sock" ] || die "callgrind: $name did not open its socket (see $LOG_DIR/callgrind-$name.log)"
  local requests
  requests=$(python3 - "$sock" "$path" "$cookie" "$CALLGRIND_REQUESTS" "$out" <<'PY'
import glob, os, subprocess, sys, time
sock, path, cookie, count, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
uri, _, query = path.partition("?")
env = {"PATH": "/usr/bin:/bin", "REQUEST_METHOD": "GET", "REQUEST_URI": path, "QUERY_STRING": query,
       "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_COOKIE": f"atelier_session={cookie}"}
def once():
    run = subprocess.run(["cgi-fcgi", "-bind", "-connect", sock], env=env, capture_output=True, stdin=subprocess.DEVNULL)
    if b"Status: 200" not in run.stdout[:40]:
        raise SystemExit(f"callgrind: {path} did not answer 200: {run.stdout[:300]!r}")
for _ in range(20):
    once()
pid = subprocess.run(["pgrep", "-f", f"callgrind-out-file={out}"], capture_output=True, text=True).stdout.split()
pid = [p for p in pid if os.path.exists(f"/proc/{p}")][0]
subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
for _ in range(count):
    once()
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
time.sleep(0.5)
print(count)
PY
) || die "callgrind: $name failed"
  kill -TERM "$(cat "$RUN_DIR/callgrind-$name.pid")" 2>/dev/null || true
  sleep 1
  # The dump made after the counters were zeroed holds exactly the measured requests.
  local dump total
  dump=$(ls "$out".*.1 2>/dev/null | head -n 1)
  [ -n "$dump" ] || die "callgrind: no dump for $name in $RUN_DIR"
  total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  printf '{"kind":"instructions","name":"%s","path":"%s","requests":%s,"per_request":%s}\n' \
    "$name" "$path" "$requests" "$(( total / requests ))" >> "$MEASUREMENTS"
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
  THREADS=$THREADS CONNECTIONS=$CONNECTIONS LOGIN_CONNECTIONS=$LOGIN_CONNECTIONS WARMUP=$WARMUP DURATION=$DURATION \
  python3 - "$MEASUREMENTS" "$ROOT/results/bench-$stamp" <<'PY'
import json, os, sys
e = os.environ
measurements = [json.loads(line) for line in open(sys.argv[1])]
meta = {
    "timestamp": e["STAMP"], "commit": e["COMMIT"], "uncommitted_changes": e["DIRTY"] == "true",
    "cpus": int(e["CPUS"]), "load_average_before": e["LOAD_BEFORE"],
    "processes_per_function": int(e["PROCS"]), "nginx_workers": int(e["WORKERS"]),
    "wrk": {"threads": int(e["THREADS"]), "connections": int(e["CONNECTIONS"]), "login_connections": int(e["LOGIN_CONNECTIONS"]),
            "warmup_s": int(e["WARMUP"]), "duration_s": int(e["DURATION"])},
}
wrk = meta["wrk"]
lines = [
    f"## Atelier benchmark {meta['timestamp']} ({meta['commit']}{', uncommitted changes' if meta['uncommitted_changes'] else ''})",
    "",
    f"wrk: {wrk['threads']} threads, {wrk['connections']} connections, {wrk['duration_s']} s after a {wrk['warmup_s']} s warm-up; "
    f"{meta['processes_per_function']} processes per function, {meta['nginx_workers']} nginx workers; "
    f"{meta['cpus']} CPUs shared with wrk; load average before: {meta['load_average_before']}. "
    "Generation under the product's default budget (10 a minute, bursts of 5); reads and quota unlimited; "
    "nginx's per-address auth limit lifted for login.",
    "",
    "| scenario | connections | req/s | p50 | p99 | ratio to ceiling | ratio to gallery limit | non-2xx | socket errors |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
scenarios = [m for m in measurements if m["kind"] == "scenario"]
# The listings are read against the C gallery (bench/gallery.c): the same work by hand, same processes.
limit = next((s["rps"] for s in scenarios if s["name"] == "gallery-limit"), 0)
listings = {"gallery", "videos", "keys", "usage", "generation", "admin-users", "admin-audit", "search"}
for s in scenarios:
    to_limit = f"{s['rps'] / limit:.3f}" if limit and s["name"] in listings else ""
    s["ratio_to_gallery_limit"] = round(s["rps"] / limit, 3) if to_limit else None
    lines.append(f"| {s['name']} | {s['connections']} | {s['rps']:,.0f} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms "
                 f"| {s['ratio']:.3f} | {to_limit} | {s['non_2xx']:,} | {s['socket_errors']:,} |")
lines.append("")
for s in scenarios:
    if s.get("statuses"):
        answers = ", ".join(f"{count:,} × {key.replace(' -', '')}" for key, count in
                            sorted(s["statuses"].items(), key=lambda item: -item[1]))
        lines.append(f"- Answers, {s['name']} (measured run): {answers}")
        if s["name"] == "generate":
            accepted = sum(c for k, c in s["statuses"].items() if k.startswith("201"))
            refused = sum(c for k, c in s["statuses"].items() if k.startswith("429"))
            lines.append(f"- generate: {accepted:,} accepted (201), {refused:,} refused (429) in {s['seconds']:.1f} s: "
                         f"{accepted / s['seconds']:.2f} accepted/s, {refused / s['seconds']:,.0f} refused/s, "
                         f"{s['rps']:,.0f} req/s for the endpoint as a whole")
for m in (m for m in measurements if m["kind"] == "cold_start"):
    lines.append(f"- Cold start, {m['name']} as CGI: median {m['median_ms']:.2f} ms of {m['runs']} runs "
                 f"(min {m['min_ms']:.2f}, max {m['max_ms']:.2f})")
cpu = [m for m in measurements if m["kind"] == "cpu"]
if cpu:
    lines += ["", "CPU per request of each measured run, µs (user + system, from /proc):", "",
              "| scenario | function | PostgreSQL | Redis | nginx |", "|---|---:|---:|---:|---:|"]
    for m in cpu:
        u = m["us_per_request"]
        function = u["references"] if m["name"] in ("ceiling", "gallery-limit") else u["functions"]
        lines.append(f"| {m['name']} | {function} | {u['postgres']} | {u['redis']} | {u['nginx']} |")
    lines.append("")
for m in (m for m in measurements if m["kind"] == "instructions"):
    lines.append(f"- Instructions per request, {m['name']} ({m['path']}, one process under callgrind, {m['requests']} requests): "
                 f"{m['per_request']:,}")
for m in (m for m in measurements if m["kind"] == "pss"):
    running = ", ".join(f"{k} {v}" for k, v in m["per_function"].items() if v)
    lines.append(f"- PSS {m['when']}: {m['pss_mib']:.1f} MiB summed over {m['processes']} processes "
                 f"(supervisor and functions; running: {running})")
for m in (m for m in measurements if m["kind"] == "first_request"):
    lines.append(f"- First request to a function scaled to zero, {m['function']} ({m['path']}, through nginx, "
                 f"{m['runs']} tries): p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms")
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

need_packages wrk valgrind libfcgi-bin libfcgi-dev libpq-dev libhiredis-dev libsodium-dev curl python3
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
reference_stop ceiling
reference_stop gallery
scripts/stack.sh stop
rm -rf "$LOG_DIR" "$SOCK_DIR" "$MEASUREMENTS" "$RUN_DIR"/wrk-*.txt

say "Starting the stack in $RUN_DIR (http $PORT, PostgreSQL $PG_PORT, Redis $REDIS_PORT)"
scripts/stack.sh start >/dev/null
[ "$(health_pids | wc -l)" -gt 0 ] || die "no health processes under the supervisor (see $LOG_DIR/)"
sleep 1
pss "at rest (default scaling, nothing called yet)"
# Under load each function runs PROCESSES processes (the supervisor starts them when connections wait);
# the C references get as many.
HEALTH_PROCESSES=$PROCESSES
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE_URL/api/v1/health")" = 200 ] \
  || die "GET /api/v1/health is not 200 before the benchmark (see $LOG_DIR/)"
# nginx refuses more than 10 auth requests a second from one address, and wrk is one address: this run's
# copy of the configuration lifts that, so the login scenario measures the function (the reload in
# ceiling_start applies it).
sed -i -E 's#(zone=atelier_auth:[0-9]+m) rate=[0-9]+r/s#\1 rate=1000000r/s#' "$RUN_DIR/nginx/atelier.conf"
grep -q 'zone=atelier_auth:[0-9]*m rate=1000000r/s' "$RUN_DIR/nginx/atelier.conf" \
  || die "no atelier_auth limit_req_zone in $RUN_DIR/nginx/atelier.conf to lift"
ceiling_start "$HEALTH_PROCESSES"
gallery_limit_start "$PROCESSES"

say "The bench user ($GALLERY_IMAGES images through POST /api/v1/images)"
USER_VARS=$(bench_user) || die "could not make the bench user (see $LOG_DIR/)"
eval "$USER_VARS"
export BENCH_API_KEY BENCH_EMAIL BENCH_PASSWORD BENCH_LUA_DIR=$ROOT/bench
# The other listings get rows of their own: the bench user's images again as videos, an admin's flag
# (the admin listings), and audit entries; the generation read is one of its images' generations.
bench_sql() { psql -qtA -h 127.0.0.1 -p "$PG_PORT" -U atelier -d atelier -v ON_ERROR_STOP=1 -c "$1"; }
bench_sql "INSERT INTO videos (user_id, storage_key, poster_key, prompt, style, colour, width, height, duration_seconds,
                               model, seed, status, completed_at)
           SELECT user_id, storage_key, thumbnail_key, prompt, style, colour, width, height, 3, model, seed, 'succeeded', now()
           FROM images WHERE user_id = '$BENCH_USER_ID'" >/dev/null
bench_sql "UPDATE users SET is_admin = true WHERE id = '$BENCH_USER_ID'" >/dev/null
bench_sql "INSERT INTO audit_log (actor_id, actor_label, action, target_user_id, target_email, before, after, request_id)
           SELECT '$BENCH_USER_ID', '$BENCH_EMAIL', 'grant_premium', '$BENCH_USER_ID', '$BENCH_EMAIL',
                  '{\"premium_until\": null}', jsonb_build_object('premium_until', now() + n * interval '1 day'), md5(n::text)
           FROM generate_series(1, 60) AS n" >/dev/null
BENCH_GENERATION_ID=$(bench_sql "SELECT generation_id FROM images WHERE user_id = '$BENCH_USER_ID' LIMIT 1")
[ -n "$BENCH_GENERATION_ID" ] || die "the bench user has no generation to read"

say "Load (wrk)"
scenario ceiling /bench/ceiling
scenario health /api/v1/health
scenario gallery-limit /bench/gallery -H "Cookie: atelier_session=$BENCH_SESSION"
scenario gallery /api/v1/images -H "Cookie: atelier_session=$BENCH_SESSION"
scenario videos /api/v1/videos -H "Cookie: atelier_session=$BENCH_SESSION"
scenario keys /api/v1/keys -H "Cookie: atelier_session=$BENCH_SESSION"
scenario generation "/api/v1/generations/$BENCH_GENERATION_ID" -H "Cookie: atelier_session=$BENCH_SESSION"
scenario admin-users /api/v1/admin/users -H "Cookie: atelier_session=$BENCH_SESSION"
scenario admin-audit /api/v1/admin/audit -H "Cookie: atelier_session=$BENCH_SESSION"
scenario usage /api/v1/usage -H "Authorization: Bearer $BENCH_API_KEY"
# Search: the bench user's gallery grows to SEARCH_IMAGES more rows (their files are its first image's),
# one in a hundred about a lighthouse; the listings above were measured on 24.
bench_sql "INSERT INTO images (user_id, storage_key, thumbnail_key, prompt, style, kind, width, height, model, seed, status,
                               completed_at, created_at)
           SELECT i.user_id, i.storage_key, i.thumbnail_key,
                  (ARRAY['a misty', 'an old', 'a red', 'a quiet', 'a tiny', 'a golden', 'a ruined'])[1 + n % 7] || ' '
                  || CASE WHEN n % 100 = 0 THEN 'lighthouse'
                          ELSE (ARRAY['fox', 'harbour', 'forest', 'city', 'garden', 'river', 'mountain', 'robot', 'cat'])[1 + n % 9] END
                  || ' at ' || (ARRAY['dawn', 'dusk', 'night', 'noon'])[1 + n % 4] || ', picture ' || n,
                  i.style, 'generated', i.width, i.height, i.model, n, 'succeeded', now(), now() - n * interval '1 second'
           FROM generate_series(1, $SEARCH_IMAGES) AS n,
                (SELECT * FROM images WHERE user_id = '$BENCH_USER_ID' ORDER BY created_at LIMIT 1) i" >/dev/null
bench_sql "ANALYZE images" >/dev/null
scenario search "/api/v1/images?q=lighth" -H "Cookie: atelier_session=$BENCH_SESSION"
SCENARIO_BEFORE_MEASURE=reset_generation_budget scenario generate /api/v1/images -s "$ROOT/bench/generate.lua"
# Last: every login starts a session, and these are the only requests that do.
SCENARIO_CONNECTIONS=$LOGIN_CONNECTIONS scenario login /api/v1/login -s "$ROOT/bench/login.lua"

say "Memory"
top_up health /api/v1/health "$RSS_REQUESTS"
# shellcheck disable=SC2046  # one pid per word
rss health "${SERVED[health]}" $(function_pids health)
# shellcheck disable=SC2046
rss generate "$(( ${SERVED[gallery]:-0} + ${SERVED[generate]:-0} + GALLERY_IMAGES ))" $(function_pids generate)
# shellcheck disable=SC2046
rss session "${SERVED[login]:-0}" $(function_pids session)
# shellcheck disable=SC2046
rss profile "${SERVED[usage]:-0}" $(function_pids profile)
# shellcheck disable=SC2046
rss ceiling "${SERVED[ceiling]}" $(reference_pids ceiling)
# shellcheck disable=SC2046
rss gallery-limit "${SERVED[gallery-limit]}" $(reference_pids gallery)

pss "after the load"

say "First request to a function scaled to zero ($COLD_RUNS tries)"
first_request subscription billing /api/v1/subscription "$BENCH_SESSION"

say "Instructions per request (callgrind, $CALLGRIND_REQUESTS requests each)"
instructions gallery "$BIN_DIR/generate" "/api/v1/images?limit=20" "$BENCH_SESSION"
instructions gallery-limit "$RUN_DIR/gallery" "/bench/gallery?limit=20" "$BENCH_SESSION"

say "Cold start (CGI, $COLD_RUNS runs each)"
cold_start health "$BIN_DIR/health" /api/v1/health
cold_start ceiling "$RUN_DIR/ceiling" /bench/ceiling

report "$STAMP"
