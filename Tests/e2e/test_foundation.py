"""The foundation: routing through nginx, dependency failures, process supervision, CGI and FastCGI
behaviour of a function binary, configuration errors and migrations."""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import requests

from conftest import wait_until

# Strict-Transport-Security is sent over https only (the test stacks speak http; see the HSTS test).
SECURITY_HEADERS = ["X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy",
                    "Permissions-Policy", "X-Request-Id"]


def health(stack, timeout=5):
    return requests.get(stack.api("/api/v1/health"), timeout=timeout)


def test_health_is_ok_with_security_headers(stack):
    r = health(stack)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    for name in SECURITY_HEADERS:
        assert name in r.headers, name
    assert r.headers["Cache-Control"] == "no-store"


def test_hsts_is_not_sent_over_plain_http(stack):
    """HSTS means nothing over http (RFC 6797 8.1: browsers ignore it there): it is sent over https only."""
    for path in ("/api/v1/health", "/", "/api/v1/does-not-exist"):
        r = requests.get(stack.api(path))
        assert "Strict-Transport-Security" not in r.headers, (path, r.headers)


def test_nginx_own_429_page_keeps_the_security_headers(stack):
    """nginx's own 429 (the per-address limit on the auth endpoints) is the API's JSON error with
    Retry-After and every security header, like any other answer."""
    url = urllib.parse.urlparse(stack.url)
    limited = None
    for _ in range(200):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10, source_address=("127.0.0.9", 0))
        try:
            connection.request("POST", "/api/v1/register", body="{}", headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status == 429:
            limited = (response, body)
            break
    assert limited is not None, "no 429 from nginx within 200 quick requests"
    response, body = limited
    assert json.loads(body)["error"]["code"] == "rate_limited"
    assert response.getheader("Retry-After") == "1"
    for name in SECURITY_HEADERS:
        assert response.getheader(name), (name, response.getheaders())


def test_unknown_api_path_is_json_404_with_headers(stack):
    r = requests.get(stack.api("/api/v1/does-not-exist"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    for name in SECURITY_HEADERS:
        assert name in r.headers, name


def test_wrong_method_is_405_with_allow(stack):
    r = requests.delete(stack.api("/api/v1/health"))
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_request_id_reaches_the_function(stack):
    r = requests.delete(stack.api("/api/v1/health"))
    assert r.json()["error"]["request_id"] == r.headers["X-Request-Id"]


def test_body_over_the_nginx_limit_is_413(stack):
    r = requests.post(stack.api("/api/v1/health"), data=b"x" * (64 * 1024 + 1),
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def test_landing_page_is_served(stack):
    r = requests.get(stack.url + "/")
    assert r.status_code == 200
    assert "Atelier" in r.text
    assert "Content-Security-Policy" in r.headers


def test_redis_down_is_503_naming_redis_then_recovers_without_restart(stack):
    pids = stack.function_pids("health")
    assert len(pids) >= 1
    stack.stack("redis-stop")
    try:
        started = time.monotonic()
        r = health(stack)
        assert time.monotonic() - started < 2.0
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "database": "ok", "redis": "unavailable"}
    finally:
        stack.stack("redis-start")
    assert wait_until(lambda: health(stack).status_code == 200)
    assert stack.function_pids("health") == pids


def test_postgres_down_is_503_naming_the_database_then_recovers_without_restart(stack):
    pids = stack.function_pids("health")
    stack.stack("pg-stop")
    try:
        started = time.monotonic()
        r = health(stack)
        assert time.monotonic() - started < 2.0
        assert r.status_code == 503
        assert r.json() == {"status": "unavailable", "database": "unavailable", "redis": "ok"}
    finally:
        stack.stack("pg-start")
    assert wait_until(lambda: health(stack).status_code == 200, timeout=20)
    assert stack.function_pids("health") == pids


def test_hung_redis_still_answers_within_two_seconds(stack):
    pid = int(open(os.path.join(stack.run_dir, "redis.pid")).read())
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = health(stack, timeout=10)
        elapsed = time.monotonic() - started
        assert r.status_code == 503
        assert r.json()["redis"] == "unavailable"
        assert elapsed < 2.0, elapsed
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: health(stack).status_code == 200)


def test_hung_postgres_still_answers_within_two_seconds(stack):
    data_dir = open(os.path.join(stack.run_dir, "pg.datadir")).read().strip()
    postmaster = int(open(os.path.join(data_dir, "postmaster.pid")).readline())
    backends = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    frozen = [postmaster] + [int(p) for p in backends]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = health(stack, timeout=10)
        elapsed = time.monotonic() - started
        assert r.status_code == 503
        assert r.json()["database"] == "unavailable"
        assert elapsed < 2.0, elapsed
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: health(stack).status_code == 200, timeout=20)


def test_kill_9_of_a_function_process_loses_no_request(stack):
    before = stack.function_pids("health")
    assert len(before) == 2
    statuses = []
    stop = threading.Event()

    def load():
        with requests.Session() as s:
            while not stop.is_set() and len(statuses) < 5000:
                statuses.append(s.get(stack.api("/api/v1/health"), timeout=5).status_code)

    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(0.3)
    os.kill(before[0], signal.SIGKILL)
    time.sleep(0.5)
    stop.set()
    worker.join()
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert wait_until(lambda: len(stack.function_pids("health")) == 2)
    after = stack.function_pids("health")
    assert before[0] not in after and before[1] in after


def run_cgi(stack, binary, uri, method="GET", env_extra=None, body=b""):
    env = stack.app_env()
    env.update({"REQUEST_METHOD": method, "REQUEST_URI": uri, "REMOTE_ADDR": "127.0.0.9"})
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = "application/json"
    env.update(env_extra or {})
    return subprocess.run([os.path.join(stack.bin_dir, binary)], input=body, env=env, capture_output=True, timeout=10)


def parse_cgi(output):
    head, _, body = output.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("Status: ")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_head_answers_the_gets_headers_and_length_without_a_body(stack):
    """HEAD is GET without the body (RFC 9110 §9.3.2): the same status and Content-Length the GET has."""
    got = run_cgi(stack, "runtime-probe", "/probe/items/42?q=lighthouse")
    head = run_cgi(stack, "runtime-probe", "/probe/items/42?q=lighthouse", method="HEAD")
    status, headers, body = parse_cgi(got.stdout)
    head_status, head_headers, head_body = parse_cgi(head.stdout)
    assert status == head_status == 200
    assert head_body == b"" and body
    assert head_headers["Content-Length"] == headers["Content-Length"] == str(len(body)), (headers, head_headers)
    assert head_headers["Content-Type"] == headers["Content-Type"]


def test_a_function_answers_as_plain_cgi(stack):
    result = run_cgi(stack, "health", "/api/v1/health")
    assert result.returncode == 0, result.stderr
    status, headers, body = parse_cgi(result.stdout)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert b'"status":"ok"' in body


def test_cgi_json_body_errors_name_the_field(stack):
    result = run_cgi(stack, "runtime-probe", "/probe/echo", method="POST", body=b'{"name": "x", "count": "many"}')
    status, _, body = parse_cgi(result.stdout)
    assert status == 400
    assert b"invalid_field" in body and b"'count'" in body


def test_missing_configuration_stops_the_process_with_one_line(stack):
    env = stack.app_env()
    del env["DATABASE_URL"]
    result = subprocess.run([os.path.join(stack.bin_dir, "health")], env=env, capture_output=True, timeout=10,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 78
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL" in lines[0]
    env = stack.app_env()
    env["APP_SECRET"] = "short"
    result = subprocess.run([os.path.join(stack.bin_dir, "health")], env=env, capture_output=True, timeout=10,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 78 and b"APP_SECRET" in result.stderr


class FastCGIProcess:
    """One function process on its own Unix socket, spoken to with libfcgi's cgi-fcgi client."""

    def __init__(self, stack, binary, **env):
        self.dir = tempfile.mkdtemp(prefix="fcgi-", dir=stack.run_dir)
        self.path = os.path.join(self.dir, "probe.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(16)
        self.env = dict(stack.app_env(), **env)
        self.log = open(os.path.join(self.dir, "stderr.log"), "wb")
        self.process = subprocess.Popen([os.path.join(stack.bin_dir, binary)], stdin=self.listener.fileno(),
                                        stdout=self.log, stderr=self.log, env=self.env)

    def request(self, uri, method="GET"):
        env = dict(self.env, REQUEST_METHOD=method, REQUEST_URI=uri, REMOTE_ADDR="127.0.0.5")
        result = subprocess.run(["cgi-fcgi", "-bind", "-connect", self.path], env=env, capture_output=True,
                                timeout=15, stdin=subprocess.DEVNULL)
        return parse_cgi(result.stdout)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.listener.close()
        self.log.close()


def test_one_fastcgi_process_survives_an_unexpected_error(stack):
    probe = FastCGIProcess(stack, "runtime-probe")
    try:
        status, _, body = probe.request("/probe/boom")
        assert status == 500
        assert b'"code":"internal_error"' in body and b'"request_id"' in body
        assert b"Boom" not in body
        status, _, body = probe.request("/probe/ok")
        assert status == 200 and b'"path":"/probe/ok"' in body
        assert probe.process.poll() is None
        status, _, body = probe.request("/probe/teapot")
        assert status == 418 and b'"code":"teapot"' in body
        log = open(os.path.join(probe.dir, "stderr.log")).read()
        assert "Boom" in log  # the detail goes to the log only
    finally:
        probe.close()


def test_sigterm_finishes_the_current_request_then_exits(stack):
    probe = FastCGIProcess(stack, "runtime-probe")
    try:
        result = {}
        started = os.path.join(probe.dir, "started")
        t = threading.Thread(target=lambda: result.update(r=probe.request(f"/probe/slow?ms=800&started={started}")))
        t.start()
        deadline = time.monotonic() + 10
        while not os.path.exists(started) and time.monotonic() < deadline:  # the request is in the handler
            time.sleep(0.01)
        assert os.path.exists(started), "the slow request never started"
        probe.process.send_signal(signal.SIGTERM)
        t.join()
        assert result["r"][0] == 200 and b'"slept_ms":800' in result["r"][2]
        assert probe.process.wait(timeout=5) == 0
    finally:
        probe.close()


def test_sigterm_while_idle_exits_promptly(stack):
    probe = FastCGIProcess(stack, "runtime-probe")
    try:
        assert probe.request("/probe/ok")[0] == 200
        probe.process.send_signal(signal.SIGTERM)
        assert probe.process.wait(timeout=3) == 0
    finally:
        probe.close()


def test_a_reused_postgres_connection_survives_pg_terminate_backend(stack):
    # Straight to PostgreSQL (not through the stack's PgBouncer, whose backend ids are its own): the
    # connection the server ended is noticed and replaced.
    direct = f"postgresql://atelier@127.0.0.1:{os.environ['PG_PORT']}/atelier"
    probe = FastCGIProcess(stack, "runtime-probe", DATABASE_URL=direct, DATABASE_PREPARED_STATEMENTS="on")
    try:
        import json
        first = json.loads(probe.request("/probe/db")[2])["pid"]
        assert stack.psql(f"SELECT pg_terminate_backend({first})") == "t"
        time.sleep(0.2)
        status, _, body = probe.request("/probe/db")
        assert status == 200
        assert json.loads(body)["pid"] != first
    finally:
        probe.close()


def test_migrations_apply_once_even_when_two_runs_race(stack):
    name = "migrate_" + uuid.uuid4().hex[:8]
    stack.psql(f"CREATE DATABASE {name}")
    url = stack.database_url.rsplit("/", 1)[0] + "/" + name
    env = dict(stack.app_env(), DATABASE_URL=url)
    atelier = os.path.join(stack.bin_dir, "atelier")
    migrations = os.path.join(os.environ["ROOT"], "Migrations")
    runs = [subprocess.Popen([atelier, "migrate", "--dir", migrations], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [r.communicate(timeout=60) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outputs
    files = sorted(f for f in os.listdir(migrations) if f.endswith(".sql"))
    recorded = stack.psql("SELECT count(*), count(DISTINCT version) FROM schema_migrations", url)
    assert recorded == f"{len(files)}|{len(files)}"
    again = subprocess.run([atelier, "migrate", "--dir", migrations], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert stack.psql("SELECT count(*) FROM schema_migrations", url) == str(len(files))


def raw_exchange(stack, data):
    """Sends bytes as they are (no client library would send these) and returns the status and the body."""
    host, port = urllib.parse.urlsplit(stack.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        received = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head.decode(errors="replace"), body


def test_a_request_nginx_cannot_read_is_a_json_400_not_a_500(stack):
    """A malformed request line (a URI escaping the root, a control byte, an encoded NUL, no HTTP at all)
    is nginx's own 400 in the API's error shape with the security headers; it was a 500 ("empty URI in
    redirect to named location")."""
    for line in (b"GET /../../etc/passwd HTTP/1.1", b"GET /api/v1/x\x01y HTTP/1.1", b"GET /api/v1/images%00 HTTP/1.1",
                 b"GARBAGE", b"GET /api/v1/videos?q=" + b"%C3%B8" * 3000 + b" HTTP/1.1"):  # 18 KB: past nginx's buffers
        status, head, body = raw_exchange(stack, line + b"\r\nHost: atelier.test\r\nConnection: close\r\n\r\n")
        assert status == 400, (line, head)
        assert json.loads(body)["error"]["code"] == "bad_request", (line, body)
        assert "X-Content-Type-Options: nosniff" in head, (line, head)


def test_the_error_pages_cannot_be_requested_directly(stack, http):
    r = http.get(stack.api("/_atelier/bad-request"), allow_redirects=False)
    assert r.status_code == 404, r.text
