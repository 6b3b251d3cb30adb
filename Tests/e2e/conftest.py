"""Black-box tests: HTTP through nginx to the FastCGI functions, against the stack `make test` started.

The stack's location comes from the environment scripts/test.sh exports; running these without it is a
failure, never a skip.
"""
import os
import shlex
import subprocess
import time

import pytest
import requests

ROOT = os.environ.get("ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _required(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the black-box suite with `make test`, which starts the stack")
    return value


class Stack:
    """The running stack: its URL, run directory, binaries and a way to stop and start its services."""

    def __init__(self):
        self.url = _required("ATELIER_URL")
        self.run_dir = _required("RUN_DIR")
        self.bin_dir = _required("BIN_DIR")
        self.database_url = _required("DATABASE_URL")
        self.redis_url = _required("REDIS_URL")

    def api(self, path):
        return self.url + path

    def stack(self, *command):
        subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), *command], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def function_pids(self, name):
        """The pids of one function's processes (children of the supervisor running that binary)."""
        supervisor = open(os.path.join(self.run_dir, "supervisor.pid")).read().strip()
        out = subprocess.run(["pgrep", "-P", supervisor], capture_output=True, text=True).stdout.split()
        binary = os.path.realpath(os.path.join(self.bin_dir, name))
        pids = []
        for pid in out:
            try:
                if os.readlink(f"/proc/{pid}/exe") == binary:
                    pids.append(int(pid))
            except OSError:
                pass
        return sorted(pids)

    def psql(self, sql, database_url=None):
        return subprocess.run(["psql", database_url or self.database_url, "-tAc", sql],
                              check=True, capture_output=True, text=True).stdout.strip()

    def app_env(self):
        env = dict(os.environ)
        with open(os.path.join(self.run_dir, "env")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = shlex.split(v)[0] if v else ""
        return env


@pytest.fixture(scope="session")
def stack():
    return Stack()


@pytest.fixture
def http():
    with requests.Session() as s:
        yield s


def wait_until(predicate, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="session", autouse=True)
def smtp():
    """The SMTP fake the stack's functions send mail to: SMTP_URL in the stack's environment points at
    127.0.0.1:$SMTP_PORT with these credentials (scripts/test.sh). It listens for the whole session,
    from before the first test to after the last, whether or not a test asks for it."""
    from fakes.smtp import SMTPFake

    port = _required("SMTP_PORT")
    fake = SMTPFake(port=int(port), user="atelier", password="fake-pass")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
