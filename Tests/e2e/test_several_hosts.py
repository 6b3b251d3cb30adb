"""Several hosts (deploy/README.md, "Several hosts"): nginx's upstreams reach the FastCGI functions over
TCP on other hosts. Two "hosts" (two loopback addresses, two `health` processes each on one listening
socket) sit behind one upstream of a small nginx of the test's own; one host goes down mid-load (its
processes killed, its socket closed) and nginx retries every idempotent request on the other: none fails."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from urllib.parse import urlparse

import requests

from conftest import ROOT, free_port, wait_until

HEALTH = "/api/v1/health"
# The line a function logs for each request it served (SharedKit's JSONLogHandler).
SERVED = '"http.path":"/api/v1/health"'


# ---- the documentation ----------------------------------------------------------------------------------

def several_hosts_section():
    with open(os.path.join(ROOT, "deploy", "README.md")) as f:
        text = f.read()
    match = re.search(r"^## Several hosts\s*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "deploy/README.md has no '## Several hosts' section"
    return match.group(1)


def test_deploy_readme_documents_tcp_upstreams():
    section = several_hosts_section()
    # nginx: an upstream whose servers are function hosts, host:port, at least two of them.
    servers = re.findall(r"\bserver\s+(\d{1,3}(?:\.\d{1,3}){3}):(\d+)\s*[;\s]", section)
    assert len(set(servers)) >= 2, f"no upstream with two or more host:port server lines:\n{section}"
    assert "fastcgi_next_upstream" in section and "max_fails" in section, section
    # systemd: the function's socket listens on TCP, on the same address and port an upstream names.
    listens = re.findall(r"ListenStream=(\d{1,3}(?:\.\d{1,3}){3}):(\d+)", section)
    assert listens, f"no ListenStream=host:port in the section:\n{section}"
    assert set(listens) <= set(servers), (listens, servers)

    # And deploy/generate-units.sh writes that socket as documented, with the access rule.
    host, port = listens[0]
    allowed = re.search(r"--allow\s+(\S+)", section)
    assert allowed, "the section does not show generate-units.sh's --allow"
    with tempfile.TemporaryDirectory(prefix="units-") as folder:
        subprocess.run([os.path.join(ROOT, "deploy", "generate-units.sh"), "--out", folder,
                        "--allow", allowed.group(1), f"health={host}:{port}"],
                       check=True, capture_output=True, text=True)
        with open(os.path.join(folder, "atelier-health.socket")) as f:
            unit = f.read().splitlines()
    assert f"ListenStream={host}:{port}" in unit, unit
    assert "IPAddressDeny=any" in unit and f"IPAddressAllow={allowed.group(1)}" in unit, unit


# ---- two hosts behind one upstream ----------------------------------------------------------------------

class Host:
    """A function host in miniature: one TCP listening socket on its own loopback address and `count`
    processes of one function accepting on it (as a systemd socket with several service instances would
    give them), each logging to a file of its own."""

    def __init__(self, stack, address, port, folder, function="health", count=2):
        self.address = address
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((address, port))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.logs, self.processes = [], []
        env = stack.app_env()
        env.pop("FCGI_WEB_SERVER_ADDRS", None)
        for n in range(count):
            path = os.path.join(folder, f"{function}-{address}-{n}.log")
            with open(path, "wb") as log:
                self.processes.append(subprocess.Popen(
                    [os.path.join(stack.bin_dir, function)], stdin=self.listener.fileno(),
                    stdout=log, stderr=log, env=env))
            self.logs.append(path)

    @property
    def server(self):
        return f"{self.address}:{self.port}"

    def served(self):
        """How many requests this host's processes logged as served."""
        total = 0
        for path in self.logs:
            with open(path, errors="replace") as f:
                total += sum(1 for line in f if SERVED in line)
        return total

    def go_down(self):
        """The host goes down: the socket's last copies go with the processes (SIGKILL), so connections
        queued on it are reset and new ones refused."""
        self.listener.close()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(timeout=10)

    close = go_down


def bind_two_hosts(stack, folder, hosts):
    """Host A on 127.0.0.2 and host B on 127.0.0.3, on the same port if it is free on both (as the
    documentation advises: the same port for a function on every host). Each is added to `hosts` as soon
    as it runs, for the caller to close."""
    hosts.append(Host(stack, "127.0.0.2", 0, folder))
    try:
        hosts.append(Host(stack, "127.0.0.3", hosts[0].port, folder))
    except OSError:
        hosts.append(Host(stack, "127.0.0.3", 0, folder))
    return hosts


def fastcgi_params():
    """The fastcgi_param lines of the repository's nginx.conf, which every function location inherits."""
    with open(os.path.join(ROOT, "nginx.conf")) as f:
        lines = [line.split("#", 1)[0].strip() for line in f if re.match(r"\s*fastcgi_param\s", line)]
    assert any("REQUEST_URI" in line for line in lines) and any("REQUEST_METHOD" in line for line in lines), lines
    return lines


class Nginx:
    """A small nginx of its own, in `folder`, with one upstream over TCP to the hosts."""

    def __init__(self, folder, hosts):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = os.path.join(folder, "nginx.conf")
        self.pidfile = os.path.join(folder, "nginx.pid")
        self.error_log = os.path.join(folder, "error.log")
        self.access_log = os.path.join(folder, "access.log")
        servers = "\n".join(f"        server {h.server} max_fails=1 fail_timeout=5s;" for h in hosts)
        params = "\n".join(f"            {line}" for line in fastcgi_params())
        user = "user root;" if os.getuid() == 0 else ""
        with open(self.conf, "w") as f:
            f.write(f"""{user}
worker_processes 1;
pid {self.pidfile};
error_log {self.error_log} warn;
events {{ worker_connections 256; }}
http {{
    log_format hosts '$status $request_time "$upstream_addr" "$upstream_status"';
    access_log {self.access_log} hosts;
    client_body_temp_path {folder}/body;
    fastcgi_temp_path {folder}/fastcgi;
    proxy_temp_path {folder}/proxy;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream health_hosts {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location = {HEALTH} {{
{params}
            fastcgi_connect_timeout 2s;
            fastcgi_read_timeout 30s;
            fastcgi_keep_conn off;
            fastcgi_pass health_hosts;
            fastcgi_next_upstream error timeout;
        }}
    }}
}}
""")
        subprocess.run(["nginx", "-p", folder, "-c", self.conf, "-e", self.error_log],
                       check=True, capture_output=True, text=True)

    def access_lines(self):
        with open(self.access_log) as f:
            return f.read().splitlines()

    def stop(self):
        stop_nginx(self.folder, self.conf, self.pidfile)


def stop_nginx(folder, conf, pidfile):
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return
    subprocess.run(["nginx", "-p", folder, "-c", conf, "-s", "quit"], capture_output=True)
    if not wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=5)


def tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as error:
        return repr(error)


def test_two_hosts_behind_one_upstream_lose_no_request_when_one_goes_down(stack):
    folder = os.path.join(stack.run_dir, "hosts-nginx")
    if os.path.isdir(folder):  # left by an interrupted run
        stop_nginx(folder, os.path.join(folder, "nginx.conf"), os.path.join(folder, "nginx.pid"))
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    hosts, nginx = [], None
    try:
        a, b = bind_two_hosts(stack, folder, hosts)
        nginx = Nginx(folder, hosts)
        url = nginx.url + HEALTH

        # Both hosts answer through nginx before the load starts (first requests open their connections).
        def both_serve():
            requests.get(url, timeout=5)
            return a.served() > 0 and b.served() > 0

        assert wait_until(both_serve, timeout=15, interval=0.05), \
            (a.served(), b.served(), tail(nginx.error_log), tail(a.logs[0]), tail(b.logs[0]))

        results, failures = [], []  # (monotonic time the response came, status)
        lock = threading.Lock()
        stop = threading.Event()
        deadline = time.monotonic() + 10  # a hard bound, whatever happens

        def load():
            with requests.Session() as s:
                count = 0
                while not stop.is_set() and count < 5000 and time.monotonic() < deadline:
                    count += 1
                    try:
                        status = s.get(url, timeout=10).status_code
                    except requests.RequestException as error:
                        with lock:
                            failures.append(repr(error))
                        continue
                    with lock:
                        results.append((time.monotonic(), status))

        clients = [threading.Thread(target=load) for _ in range(3)]
        for client in clients:
            client.start()
        try:
            time.sleep(1.5)
            a_before, b_before = a.served(), b.served()
            a.go_down()  # mid-load: requests are in flight to it
            killed_at = time.monotonic()
            a_down = a.served()  # all it will ever have logged: its processes are gone
            time.sleep(2.5)
        finally:
            stop.set()
            for client in clients:
                client.join()
        a_after, b_after = a.served(), b.served()

        statuses = [status for _, status in results]
        summary = ({s: statuses.count(s) for s in set(statuses)}, failures[:5], tail(nginx.error_log, 10))
        assert statuses, "no request was made"
        assert not failures and set(statuses) == {200}, summary
        after = [status for at, status in results if at > killed_at + 0.2]
        assert len(after) >= 20, (len(after), summary)

        # Host A is down for real: its processes are gone and connections to it are refused.
        assert all(p.poll() is not None for p in a.processes)
        try:
            socket.create_connection((a.address, a.port), timeout=2).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused, f"{a.server} still accepts connections"

        # Both hosts served under load before the kill; afterwards host B served everything.
        assert a_before > 0 and b_before > 0, (a_before, b_before)
        assert a_after == a_down, (a_before, a_down, a_after)
        assert b_after - b_before >= len(after), (b_before, b_after, len(after))
        # nginx really went to the next host: some request tried A first, then B, and still got 200.
        retried = [line for line in nginx.access_lines()
                   if line.startswith("200 ") and f'"{a.server}, {b.server}"' in line]
        assert retried, tail(nginx.access_log)
    finally:
        for host in hosts:
            host.close()
        if nginx is not None:
            nginx.stop()
        shutil.rmtree(folder, ignore_errors=True)


# ---- two function hosts sharing the state engines -------------------------------------------------------

def test_an_image_made_through_host_a_is_listed_served_and_deleted_through_host_b(smtp):
    """Two complete function hosts (each its own nginx and processes) sharing what deploy/README.md says
    they share: PostgreSQL through host A's PgBouncer (transaction mode), one Redis, one S3 bucket (the
    strict fake) and the env file's APP_SECRET. A user signed up and logged in through host A makes an
    image there; through host B the same session lists it, its URL loads, and deleting it removes the
    object from the bucket, after which host A answers 404."""
    import secrets

    from conftest import private_stack
    from fakes.s3 import S3Fake
    from test_accounts import register_and_verify

    bucket, access_key, secret = "shared-media", "AKIASHAREDHOSTS", secrets.token_urlsafe(30)
    s3 = S3Fake("127.0.0.1", 0, access_key, secret, log=False).start()
    s3.create_bucket(bucket)
    common = {"S3_BUCKET": bucket, "S3_ENDPOINT": s3.url, "S3_ACCESS_KEY_ID": access_key, "S3_SECRET_ACCESS_KEY": secret,
              "APP_SECRET": secrets.token_urlsafe(40)}
    try:
        with private_stack("host-a", common, drop=("S3_",)) as a:
            shared = {"DATABASE_URL": a.database_url, "REDIS_URL": a.redis_url}
            with private_stack("host-b", {**common, **shared}, drop=("S3_",)) as b, requests.Session() as http:
                assert (b.database_url, b.redis_url) == (a.database_url, a.redis_url)
                if a.script_env.get("PGBOUNCER_PORT"):
                    assert f":{a.script_env['PGBOUNCER_PORT']}/" in b.database_url, b.database_url

                _, _, csrf = register_and_verify(a, smtp, http)
                r = http.post(a.api("/api/v1/images"), json={"prompt": "a lighthouse shared by two hosts"},
                              headers={"X-CSRF-Token": csrf, "Origin": a.url}, timeout=60)
                assert r.status_code == 201, r.text
                image = r.json()["image"]
                image_id = image["id"]
                key = urlparse(image["url"]).path.split(f"/{bucket}/", 1)[1]
                assert s3.get_object(bucket, key) is not None, "host A did not store the image in the bucket"

                listed = http.get(b.api("/api/v1/images"), timeout=10)
                assert listed.status_code == 200, listed.text
                assert image_id in [i["id"] for i in listed.json()["items"]], listed.text
                shown = http.get(b.api(f"/api/v1/images/{image_id}"), timeout=10).json()
                loaded = requests.get(shown["url"], timeout=10)
                assert loaded.status_code == 200 and loaded.content == s3.get_object(bucket, key)[0]

                r = http.delete(b.api(f"/api/v1/images/{image_id}"), headers={"X-CSRF-Token": csrf, "Origin": b.url}, timeout=10)
                assert r.status_code == 204, r.text
                assert s3.get_object(bucket, key) is None, "the object outlived its image"
                assert http.get(a.api(f"/api/v1/images/{image_id}"), timeout=10).status_code == 404
                refused = [e for e in s3.requests() if e["auth"] == "header" and e["status"] >= 400]
                assert refused == [], refused
    finally:
        s3.stop()
