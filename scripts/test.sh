#!/usr/bin/env bash
# `make test`: the Swift suites and the black-box suite against a private stack on free ports (never
# the ones `make run` uses), stopped again whatever the outcome. Exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export RUN_DIR=${TEST_RUN_DIR:-$ROOT/.run-test}
export BIN_DIR=$ROOT/.build/release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export PORT=$(free_port) PG_PORT=$(free_port) REDIS_PORT=$(free_port)
# Every stack the tests start reaches PostgreSQL through a PgBouncer of its own in transaction mode, as a
# deployment on several hosts does (PGBOUNCER_PORT=none: directly).
[ "${PGBOUNCER_PORT:-}" = none ] && export PGBOUNCER_PORT="" || export PGBOUNCER_PORT=$(free_port)
export REDIS_SAVE="" PG_FSYNC=off PROCESSES=${PROCESSES:-2}
# The hot functions keep both processes resident (the fault tests kill them); every other function scales
# to zero after two idle seconds, so the whole suite runs against functions that start and stop.
export RESIDENT=${RESIDENT:-2} IDLE_SECONDS=${IDLE_SECONDS:-2}
# The main test stack has generous rate limits so suites about other things are not throttled; the
# rate-limit tests start their own stack with the product's defaults (Tests/e2e/test_public_api.py).
export RATE_GENERATE_FREE_PER_MINUTE=60000 RATE_GENERATE_FREE_BURST=10000 RATE_GENERATE_PREMIUM_PER_MINUTE=60000 \
  RATE_GENERATE_PREMIUM_BURST=10000 RATE_READ_PER_MINUTE=600000 RATE_READ_BURST=100000 RATE_ENHANCE_PER_MINUTE=60000 \
  RATE_ENHANCE_BURST=10000
# Every request of the suite comes from 127.0.0.1: its ceilings on wrong codes and on codes sent across
# addresses are lifted the same way (their own tests use other loopback addresses).
export CODE_GUESSES_PER_ADDRESS_PER_HOUR=100000 CODE_SENDS_PER_ADDRESS_PER_HOUR=100000
# Completion webhooks may reach the tests' receivers on loopback (and only loopback: every other refusal
# holds, and the unit tests prove each refusal with this off).
export WEBHOOK_ALLOW_LOOPBACK=1
# Mail goes to the SMTP fake the black-box suite runs on this port (Tests/e2e/fakes/smtp.py). It takes
# credentials only after STARTTLS, with a certificate made for this run that the functions trust through
# SMTP_CA_FILE, so every mail of the suite travels the way it does in production.
export SMTP_PORT=$(free_port)
export SMTP_URL="smtp://atelier:fake-pass@127.0.0.1:$SMTP_PORT" MAIL_FROM="Atelier <no-reply@atelier.test>"

# A clean slate each run: a stale stack from an interrupted run is stopped and its data removed.
scripts/stack.sh purge >/dev/null 2>&1 || true
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"

mkdir -p "$RUN_DIR/smtp-tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$RUN_DIR/smtp-tls/key.pem" -out "$RUN_DIR/smtp-tls/cert.pem" >/dev/null 2>&1 \
  || { echo "test: openssl could not make the SMTP fake's certificate" >&2; exit 1; }
export SMTP_CA_FILE=$RUN_DIR/smtp-tls/cert.pem SMTP_FAKE_CERT=$RUN_DIR/smtp-tls/cert.pem SMTP_FAKE_KEY=$RUN_DIR/smtp-tls/key.pem

cleanup() {
  scripts/stack.sh stop >/dev/null 2>&1 || true
  [ -n "${S3_FAKE_PID:-}" ] && kill "$S3_FAKE_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Python for the black-box tools only: pytest and requests, installed when missing.
PY_PACKAGES="pytest requests selenium openapi-spec-validator schemathesis prometheus-client"
ensure_python() {
  python3 -c 'import pytest, requests, selenium, openapi_spec_validator, schemathesis, prometheus_client' 2>/dev/null && return 0
  python3 -m pip install -q $PY_PACKAGES 2>/dev/null && return 0
  python3 -m pip install -q --break-system-packages $PY_PACKAGES 2>/dev/null && return 0
  return 1
}
ensure_python || { echo "test: cannot install pytest and requests" >&2; exit 1; }

echo "== starting the test stack on port $PORT (PostgreSQL $PG_PORT, Redis $REDIS_PORT)"
scripts/stack.sh start || { echo "test: the stack did not start; logs in $RUN_DIR/logs" >&2; exit 1; }
set -a; . "$RUN_DIR/env"; set +a

# The Swift integration tests get their own database and Redis database number.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U atelier atelier_swift_test
export TEST_DATABASE_URL="postgresql://atelier@127.0.0.1:$PG_PORT/atelier_swift_test"
export TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/1"

# A strict S3 server (Tests/e2e/fakes/s3.py: Signature V4 checked as AWS documents it) for the Swift
# S3 media storage tests.
S3_PORT=$(free_port)
export TEST_S3_ACCESS_KEY=AKIATESTATELIER TEST_S3_SECRET_KEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
python3 Tests/e2e/fakes/s3.py --host 127.0.0.1 --port "$S3_PORT" --access-key "$TEST_S3_ACCESS_KEY" \
  --secret-key "$TEST_S3_SECRET_KEY" >"$RUN_DIR/logs/s3-fake.log" 2>&1 &
S3_FAKE_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$S3_PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
export TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

status=0
# The formatter's rules (.swift-format, line length 140 as Hummingbird's): `swift-format format -i -r …`
# with the same paths fixes what it reports.
echo "== swift-format lint"
if ! swift-format lint --strict --recursive SharedKit Functions CLI Tests/SharedKitTests Tests/Fixtures Package.swift; then
  echo "test: the Swift sources are not formatted as .swift-format says (fix: swift-format format -i -r SharedKit Functions CLI Tests/SharedKitTests Tests/Fixtures Package.swift)"
  status=1
fi

echo "== Swift tests"
if swift build --build-tests >"$RUN_DIR/swift-build-tests.log" 2>&1; then
  # Test-by-test progress goes to the log; failures and the summary are shown.
  swift test --skip-build 2>&1 | tee "$RUN_DIR/swift-test.log" \
    | awk '/Test run with/ || !(/ started/ || / passed after/ || /^\[/ || /Executed 0 tests/ || /debug.xctest/ || /All tests/)' 
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  grep -E "error:" "$RUN_DIR/swift-build-tests.log" | sort -u | head -40
  echo "test: the Swift tests did not build (full log: $RUN_DIR/swift-build-tests.log)"
  status=1
fi

echo "== black-box tests through nginx"
export ATELIER_URL="http://127.0.0.1:$PORT" ROOT
python3 -m pytest -q -p no:cacheprovider Tests/e2e "$@" || status=1

if [ $status -ne 0 ]; then
  echo "test: FAILED (logs in $RUN_DIR/logs)"
else
  echo "test: all suites passed"
fi
exit $status
