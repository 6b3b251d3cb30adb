#!/usr/bin/env bash
# Starts and stops Atelier's whole stack on this machine: a private PostgreSQL and Redis, the schema,
# every function under the supervisor (FastCGI), and nginx. `make run` and `make test` both use it.
#
#   scripts/stack.sh deps                install the Debian packages that are missing
#   scripts/stack.sh run                 start everything, print where it is, stop it all on Ctrl-C
#   scripts/stack.sh start | stop        the same in the background (tests)
#   scripts/stack.sh purge               stop, then delete the run directory and the database with it
#   scripts/stack.sh pg-stop | pg-start | redis-stop | redis-start | reload FUNCTION
#
# Environment: RUN_DIR (.run), PORT (8080), PG_PORT (55432), REDIS_PORT (56379), BIN_DIR
# (.build/release), PUBLIC_BASE_URL, the scaling below, and any Atelier variable to pass on.
# PGBOUNCER_PORT (unset): the functions reach PostgreSQL through Debian's PgBouncer in transaction mode on
# that port, as on several hosts (statement preparation off: DATABASE_PREPARED_STATEMENTS=off).
#
# Scaling: every function runs at most PROCESSES (2) processes. The hot ones (RESIDENT_FUNCTIONS: health,
# session, generate) keep RESIDENT (1) of them running; every other function, and a hot one's processes
# beyond RESIDENT, start when a connection arrives and exit after IDLE_SECONDS (60) without one, so a
# function nobody calls holds no memory. SCALING="name=MIN:MAX:IDLE …" overrides single functions.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR=${RUN_DIR:-.run}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
PORT=${PORT:-8080}
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-}
BIN_DIR=${BIN_DIR:-$ROOT/.build/release}
PROCESSES=${PROCESSES:-2}
RESIDENT=${RESIDENT:-1}
RESIDENT_FUNCTIONS=${RESIDENT_FUNCTIONS:-"health session generate"}
IDLE_SECONDS=${IDLE_SECONDS:-60}
SCALING=${SCALING:-}
# Cron functions and their interval in seconds under `make run` (production: deploy/ timers).
CRON_INTERVALS=${CRON_INTERVALS:-"renew-cron=300 maintenance-cron=60"}

LOG_DIR=$RUN_DIR/logs
SOCK_DIR=$RUN_DIR/sock
MEDIA_DIR=${MEDIA_ROOT:-$RUN_DIR/media}

# Debian packages the build, the stack and the tests need.
PACKAGES="pkg-config libfcgi-dev libfcgi-bin libpq-dev libhiredis-dev libcurl4-openssl-dev libsodium-dev
  libvips-dev libvips-tools libzxcvbn-dev postgresql redis-server nginx-light wrk curl ca-certificates python3 systemd
  procps iproute2 chromium chromium-driver python3-pip openssl pgbouncer libimage-exiftool-perl"

say() { printf '\033[1m%s\033[0m\n' "$*"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

deps() {
  local missing=()
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "Installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v swift >/dev/null || die "swift is not on PATH (Swift 6 toolchain required)"
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# PostgreSQL refuses to run as root: as root it runs as the 'postgres' system user, with its data where
# that user can reach it.
pg_user() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_data() {
  local dir=$RUN_DIR/pg
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$dir" && chown postgres: "$dir" && chmod 700 "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      dir=/var/tmp/atelier-pg-$(printf '%s' "$RUN_DIR" | md5sum | cut -c1-12)
      mkdir -p "$dir" && chown postgres: "$dir" && chmod 700 "$dir"
    fi
  fi
  echo "$dir"
}

DATABASE_URL_DEFAULT="postgresql://atelier@127.0.0.1:$PG_PORT/atelier"

pg_start() {
  local bin data
  bin=$(pg_bin); [ -n "$bin" ] || die "PostgreSQL server binaries not found"
  data=$(pg_data)
  echo "$data" > "$RUN_DIR/pg.datadir"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$data" -U atelier --auth=trust -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1 \
      || die "initdb failed (see $LOG_DIR/initdb.log)"
  fi
  # A stale pid file after a crash is handled by pg_ctl itself; a live server on our port is reused.
  if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    # The server writes its own log, as the postgres user when we are root: in the logs folder when it can
    # reach it, else next to its data (a checkout in a folder only root may enter, such as /root's), with
    # a link from the logs folder.
    local pglog=$LOG_DIR/postgres.log
    [ -L "$pglog" ] && rm -f "$pglog"
    touch "$pglog"; chmod 666 "$pglog"
    if ! as_pg test -w "$pglog"; then
      rm -f "$pglog"
      pglog=$data.log
      as_pg touch "$pglog"
      ln -sfn "$pglog" "$LOG_DIR/postgres.log"
    fi
    as_pg "$bin/pg_ctl" -D "$data" -l "$pglog" -w -t 30 start \
      -o "-p $PG_PORT -k '' -c listen_addresses=127.0.0.1 -c fsync=${PG_FSYNC:-on} -c max_connections=200" >/dev/null \
      || die "PostgreSQL did not start (see $LOG_DIR/postgres.log)"
  fi
  for _ in $(seq 50); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U atelier -d postgres && break; sleep 0.1
  done
  "$bin/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U atelier -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='atelier'" \
    | grep -q 1 || "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U atelier atelier
}

pg_stop() {
  local bin data
  bin=$(pg_bin); data=$(cat "$RUN_DIR/pg.datadir" 2>/dev/null || true)
  [ -n "$data" ] && [ -f "$data/PG_VERSION" ] || return 0
  as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# PgBouncer in transaction mode in front of this run's PostgreSQL (PGBOUNCER_PORT set): its files next to
# the PostgreSQL data, where the postgres user it runs as (when we are root) can write. The functions send
# TimeZone, DateStyle and statement_timeout as startup options, which a transaction pooler cannot pass
# per client: PgBouncer ignores them and sets the same on each server connection (timezone, datestyle)
# and bounds queries itself (query_timeout).
pgbouncer_dir() { echo "$(cat "$RUN_DIR/pg.datadir").bouncer"; }

pgbouncer_start() {
  [ -n "$PGBOUNCER_PORT" ] || return 0
  local bin; bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
  [ -x "$bin" ] || die "pgbouncer is not installed (make deps installs it)"
  local dir; dir=$(pgbouncer_dir)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ -f "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then return 0; fi
  printf '"atelier" ""\n' > "$dir/userlist.txt"
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
atelier = host=127.0.0.1 port=$PG_PORT dbname=atelier timezone=UTC datestyle=ISO
* = host=127.0.0.1 port=$PG_PORT timezone=UTC datestyle=ISO

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 1000
ignore_startup_parameters = options
query_timeout = 60
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  ln -sfn "$dir/pgbouncer.log" "$LOG_DIR/pgbouncer.log"
  if [ "$(id -u)" = 0 ]; then "$bin" -q -d -u postgres "$dir/pgbouncer.ini"; else "$bin" -q -d "$dir/pgbouncer.ini"; fi \
    || die "PgBouncer did not start (see $dir/pgbouncer.log)"
  local pgbin; pgbin=$(pg_bin)
  for _ in $(seq 50); do
    "$pgbin/psql" -q -h 127.0.0.1 -p "$PGBOUNCER_PORT" -U atelier -d atelier -tAc "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1
  done
  die "PgBouncer does not answer on port $PGBOUNCER_PORT (see $dir/pgbouncer.log)"
}

pgbouncer_stop() {
  [ -f "$RUN_DIR/pg.datadir" ] || return 0
  local pidfile; pidfile=$(pgbouncer_dir)/pgbouncer.pid
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

redis_start() {
  mkdir -p "$RUN_DIR/redis"
  if [ -f "$RUN_DIR/redis.pid" ] && kill -0 "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null; then return 0; fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes --daemonize yes \
    --pidfile "$RUN_DIR/redis.pid" --logfile "$LOG_DIR/redis.log" --dir "$RUN_DIR/redis" \
    --save "${REDIS_SAVE:-60 1}" --appendonly no --maxmemory-policy noeviction
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "Redis did not start (see $LOG_DIR/redis.log)"
}

redis_stop() {
  [ -f "$RUN_DIR/redis.pid" ] || return 0
  local pid; pid=$(cat "$RUN_DIR/redis.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$RUN_DIR/redis.pid"
}

# The app's configuration for the functions, written once per run directory as shell-quoted lines.
write_env() {
  local secret_file=$RUN_DIR/app_secret
  [ -s "$secret_file" ] || (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > "$secret_file")
  quote() { local v=${2//\'/\'\\\'\'}; printf "%s='%s'\n" "$1" "$v"; }
  {
    if [ -n "$PGBOUNCER_PORT" ]; then
      quote DATABASE_URL "${DATABASE_URL:-postgresql://atelier@127.0.0.1:$PGBOUNCER_PORT/atelier}"
      quote DATABASE_PREPARED_STATEMENTS off
    else
      quote DATABASE_URL "${DATABASE_URL:-$DATABASE_URL_DEFAULT}"
    fi
    quote REDIS_URL "${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
    quote PUBLIC_BASE_URL "${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
    quote APP_SECRET "${APP_SECRET:-$(cat "$secret_file")}"
    quote RUN_DIR "$RUN_DIR"
    quote MEDIA_ROOT "$MEDIA_DIR"
    quote MIGRATIONS_DIR "$ROOT/Migrations"
    # Everything else the operator set (REPLICATE_*, RAZORPAY_*, SMTP_URL, quotas …) passes through.
    local name
    for name in $(compgen -e | grep -E '^(REPLICATE_|OPENAI_|PROVIDERS|PROVIDER_|WEBHOOK_|RAZORPAY_|SMTP_URL|SMTP_TLS|SMTP_CA_FILE|MAIL_|S3_|QUOTA_|COST_|RATE_|SESSION_|ADMIN_SESSION_|RECONCILE_|GENERATION_|VIDEO_TIMEOUT|PLAN_|SUBSCRIPTION_|PREMIUM_|API_KEYS_|CODE_GUESSES_|CODE_SENDS_|DATABASE_PREPARED_STATEMENTS|LOG_LEVEL|DEPENDENCY_TIMEOUT_MS|METRICS_)'); do
      quote "$name" "${!name}"
    done
  } > "$RUN_DIR/env"
  chmod 600 "$RUN_DIR/env"
}

load_env() { set -a; . "$RUN_DIR/env"; set +a; }

migrate() { "$BIN_DIR/atelier" migrate --dir "$ROOT/Migrations"; }

# A first admin for `make run`, created once; its generated password is kept in the run directory
# (readable by this user only) so later runs can show where it is.
seed_admin() {
  local credentials=$RUN_DIR/admin-credentials
  [ -s "$credentials" ] && return 0
  local email=${ADMIN_EMAIL:-admin@atelier.local}
  local out; out=$("$BIN_DIR/atelier" create-admin --email "$email" </dev/null) || die "could not create the first admin"
  local password="(unchanged: the account already existed)"
  case $out in *" with password "*) password=${out##* with password } ;; esac
  (umask 077; printf 'email: %s\npassword: %s\n' "$email" "$password" > "$credentials")
}

# nginx's configuration: the repository's nginx.conf with this run's paths and port, inside a minimal
# main configuration.
render_nginx() {
  mkdir -p "$RUN_DIR/nginx"
  sed -e "s#/run/atelier/#$SOCK_DIR/#g" \
      -e "s#/usr/share/atelier/web#$ROOT/web#g" \
      -e "s#/usr/share/atelier/openapi.yaml#$ROOT/openapi.yaml#g" \
      -e "s#/var/lib/atelier/media/#$MEDIA_DIR/#g" \
      -e "s#listen 80 default_server;#listen 127.0.0.1:$PORT default_server;#" \
      "$ROOT/nginx.conf" > "$RUN_DIR/nginx/atelier.conf"
  # With media in S3, the pages may load images and videos from the bucket's origin too.
  local origin; origin=$("$BIN_DIR/atelier" media-origin) || die "S3 media are misconfigured (atelier media-origin)"
  if [ -n "$origin" ]; then
    sed -i "/^map \$scheme \$atelier_media_origin {/,/^}/ s#default     \"\";#default     \"$origin\";#" "$RUN_DIR/nginx/atelier.conf"
  fi
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root;"
  cat > "$RUN_DIR/nginx/nginx.conf" <<CONF
$user_line
worker_processes ${NGINX_WORKERS:-2};
pid $RUN_DIR/nginx/nginx.pid;
error_log $LOG_DIR/nginx-error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log ${NGINX_ACCESS_LOG:-$LOG_DIR/nginx-access.log};
    client_body_temp_path $RUN_DIR/nginx/body;
    fastcgi_temp_path $RUN_DIR/nginx/fastcgi;
    proxy_temp_path $RUN_DIR/nginx/proxy;
    uwsgi_temp_path $RUN_DIR/nginx/uwsgi;
    scgi_temp_path $RUN_DIR/nginx/scgi;
    sendfile on;
    include $RUN_DIR/nginx/atelier.conf;
}
CONF
}

nginx_start() {
  render_nginx
  nginx_stop
  nginx -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" -e "$LOG_DIR/nginx-error.log" \
    || die "nginx did not start (see $LOG_DIR/nginx-error.log)"
}

nginx_stop() {
  local pidfile=$RUN_DIR/nginx/nginx.pid
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  kill -QUIT "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
}

# FastCGI functions are the folders of Functions/ that are not cron functions (named *-cron), each as
# name=MIN:MAX:IDLE for the supervisor.
function_list() {
  local list=() name minimum spec item
  for dir in "$ROOT"/Functions/*/; do
    name=$(basename "$dir")
    case $name in *-cron) continue ;; esac
    minimum=0
    case " $RESIDENT_FUNCTIONS " in *" $name "*) minimum=$(( RESIDENT < PROCESSES ? RESIDENT : PROCESSES )) ;; esac
    spec="$minimum:$PROCESSES:$IDLE_SECONDS"
    for item in ${SCALING//,/ }; do [ "${item%%=*}" = "$name" ] && spec=${item#*=}; done
    list+=("$name=$spec")
  done
  (IFS=,; echo "${list[*]}")
}

cron_list() {
  local list=() item
  for item in $CRON_INTERVALS; do
    [ -x "$BIN_DIR/${item%%=*}" ] && list+=("$item")
  done
  (IFS=,; echo "${list[*]:-}")
}

supervisor_start() {
  supervisor_stop
  local cron; cron=$(cron_list)
  local args=(supervise --sockets "$SOCK_DIR" --bin "$BIN_DIR" --logs "$LOG_DIR" --functions "$(function_list)")
  [ -n "$cron" ] && args+=(--cron "$cron")
  "$BIN_DIR/atelier" "${args[@]}" </dev/null >>"$LOG_DIR/supervisor.log" 2>&1 &
  echo $! > "$RUN_DIR/supervisor.pid"
  for _ in $(seq 100); do
    local ready=1
    for item in $(function_list | tr , ' '); do [ -S "$SOCK_DIR/${item%%=*}.sock" ] || ready=0; done
    [ $ready = 1 ] && return 0
    sleep 0.05
  done
  die "the supervisor did not open every socket (see $LOG_DIR/supervisor.log)"
}

supervisor_stop() {
  local pidfile=$RUN_DIR/supervisor.pid
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

start() {
  mkdir -p "$LOG_DIR" "$SOCK_DIR" "$MEDIA_DIR"
  [ -x "$BIN_DIR/atelier" ] || die "no build in $BIN_DIR: run 'make build' first"
  write_env
  load_env
  pg_start
  pgbouncer_start
  redis_start
  migrate
  supervisor_start
  nginx_start
}

stop() {
  nginx_stop
  supervisor_stop
  redis_stop
  pgbouncer_stop
  pg_stop
}

run() {
  trap 'echo; say "Stopping…"; stop; exit 0' INT TERM
  start
  seed_admin
  local outbox="$RUN_DIR/outbox/  (no SMTP_URL: mail is written here as .eml files)"
  [ -n "${SMTP_URL:-}" ] && outbox="sent through ${SMTP_URL%%://*}://${SMTP_URL##*@}"
  local images="embedded (rendered in-process; set REPLICATE_API_TOKEN for Replicate)"
  [ -n "${REPLICATE_API_TOKEN:-}" ] && images="Replicate (${REPLICATE_API_BASE:-https://api.replicate.com/v1}), webhooks to $PUBLIC_BASE_URL/hooks/replicate"
  [ -n "${OPENAI_API_KEY:-}" ] && images="$images; OpenAI (${OPENAI_BASE_URL:-https://api.openai.com/v1})"
  [ -n "${PROVIDERS:-}" ] && images="$images; in the order PROVIDERS=$PROVIDERS"
  local payments="not configured (set RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET, RAZORPAY_PLAN_ID …)"
  [ -n "${RAZORPAY_KEY_ID:-}" ] && payments="Razorpay (key ${RAZORPAY_KEY_ID})"
  local media="$MEDIA_DIR (served by nginx under /media/)"
  [ -n "${S3_BUCKET:-}" ] && media="S3 bucket $S3_BUCKET at ${S3_ENDPOINT:-AWS}"
  cat <<INFO

  Atelier is running on http://127.0.0.1:$PORT

  first admin $(sed -n 's/^email: //p' "$RUN_DIR/admin-credentials") / $(sed -n 's/^password: //p' "$RUN_DIR/admin-credentials")
              (kept in $RUN_DIR/admin-credentials)
  mail        $outbox
  generation  $images
  payments    $payments
  media       $media
  scaling     health session generate keep $RESIDENT resident; other functions start on demand, idle out after ${IDLE_SECONDS}s
  logs        $LOG_DIR/  (one file per function, nginx, postgres, redis, supervisor)
  database    $DATABASE_URL
  redis       $REDIS_URL
  run dir     $RUN_DIR

  Ctrl-C stops everything.
INFO
  # What works and what does not, one line each (never stops the start).
  "$BIN_DIR/atelier" doctor | sed 's/^/  /' || true
  while kill -0 "$(cat "$RUN_DIR/supervisor.pid")" 2>/dev/null; do sleep 1; done
  say "The supervisor stopped; stopping the rest."
  stop
}

reload() {
  local name=${1:?usage: stack.sh reload FUNCTION}
  [ -x "$BIN_DIR/$name" ] || die "no function named $name in $BIN_DIR"
  # Appended, not overwritten: the supervisor consumes the file, so quick successive reloads all count.
  echo "$name" >> "$SOCK_DIR/reload"
  kill -HUP "$(cat "$RUN_DIR/supervisor.pid")"
  # Wait for the rollout to finish (the supervisor logs it), so the caller knows when it is done.
  local log=$LOG_DIR/supervisor.log before
  before=$(grep -c "reloaded $name \|reload of $name stopped" "$log" || true)
  for _ in $(seq 300); do
    [ "$(grep -c "reloaded $name \|reload of $name stopped" "$log" || true)" -gt "$before" ] && break
    sleep 0.1
  done
  tail -n 1 "$log"
}

# Stops everything and deletes the run directory, and PostgreSQL's data where it had to live elsewhere.
purge() {
  stop
  local data; data=$(cat "$RUN_DIR/pg.datadir" 2>/dev/null || true)
  case $data in /var/tmp/atelier-pg-*) rm -rf "$data" "$data.log" "$data.bouncer" ;; esac
  rm -rf "$RUN_DIR"
}

case ${1:-} in
  deps) deps ;;
  purge) purge ;;
  run) run ;;
  start) start ;;
  stop) stop ;;
  pg-start) pg_start ;;
  pg-stop) pg_stop ;;
  redis-start) redis_start ;;
  redis-stop) redis_stop ;;
  reload) shift; reload "$@" ;;
  env) write_env; cat "$RUN_DIR/env" ;;
  *) sed -n '2,12p' "$0"; exit 64 ;;
esac
