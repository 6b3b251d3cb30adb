"""Black-box tests: HTTP through nginx to the FastCGI functions, against the stack `make test` started.

The stack's location comes from the environment scripts/test.sh exports; running these without it is a
failure, never a skip.
"""
import contextlib
import os
import shlex
import shutil
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
                # A binary replaced on disk (a rebuild) shows as "<path> (deleted)".
                if os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)") == binary:
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
    127.0.0.1:$SMTP_PORT with these credentials, which it takes only after STARTTLS with the run's
    certificate (scripts/test.sh). It listens for the whole session, from before the first test to after
    the last, whether or not a test asks for it."""
    from fakes.smtp import SMTPFake

    port = _required("SMTP_PORT")
    fake = SMTPFake(port=int(port), user="atelier", password="fake-pass",
                    tls=(_required("SMTP_FAKE_CERT"), _required("SMTP_FAKE_KEY")))
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


# ---- a second stack that uses Replicate (the fake in fakes/replicate.py) --------------------------------

def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateStack(Stack):
    """A stack of its own (run directory, PostgreSQL, Redis, nginx, functions) started by `private_stack`.
    `fake` is the provider fake it talks to (or None); `extra_env` is what the fixture set for the
    functions (app_env adds it, so a cron run as a process sees it even if stack.sh did not pass it on)."""

    def __init__(self, fake, script_env, extra_env):
        self.fake = fake
        self.script_env = script_env
        self.extra_env = extra_env
        self.url = f"http://127.0.0.1:{script_env['PORT']}"
        self.run_dir = script_env["RUN_DIR"]
        self.bin_dir = script_env["BIN_DIR"]
        written = self._env_file()
        self.database_url = written["DATABASE_URL"]
        self.redis_url = written["REDIS_URL"]

    def _env_file(self):
        values = {}
        with open(os.path.join(self.run_dir, "env")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    values[k] = shlex.split(v)[0] if v else ""
        return values

    def stack(self, *command):
        subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), *command], check=True, cwd=ROOT,
                       env=self.script_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def app_env(self):
        env = {k: v for k, v in self.script_env.items()}
        env.update(self._env_file())
        for k, v in self.extra_env.items():
            env.setdefault(k, v)
        return env


class BillingStack(PrivateStack):
    """A private stack selling premium through Razorpay, pointed at a RazorpayFake (`fake`). `webhook_url`
    is its /hooks/razorpay through nginx; `renew_cron()` runs the renew-cron once as a process."""

    @property
    def webhook_url(self):
        return self.url + "/hooks/razorpay"

    def renew_cron(self, timeout=60):
        return subprocess.run([os.path.join(self.bin_dir, "renew-cron")], env=self.app_env(),
                              capture_output=True, text=True, timeout=timeout)


# The main stack's own settings, which scripts/test.sh exports and which must not reach a private
# stack's env file (stack.sh prefers an exported value to its own default).
_MAIN_STACK_ONLY = ("DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "APP_SECRET", "MEDIA_ROOT", "MIGRATIONS_DIR",
                    "ATELIER_URL", "PORT", "PG_PORT", "REDIS_PORT", "PGBOUNCER_PORT", "DATABASE_PREPARED_STATEMENTS")


@contextlib.contextmanager
def private_stack(name, extra, processes=1, drop=(), cls=PrivateStack, fake=None):
    """Starts a stack of its own in RUN_DIR-<name> on free ports (clearing what an interrupted run left),
    with `extra` settings for its functions and no cron on a timer (tests run crons when they mean to);
    mail goes to the same SMTP fake as the main stack's. Stops it when the block ends."""
    run_dir = _required("RUN_DIR").rstrip("/") + "-" + name
    dropped = ("REPLICATE_", "RAZORPAY_") + tuple(drop)
    env = {k: v for k, v in os.environ.items() if k not in _MAIN_STACK_ONLY and not k.startswith(dropped)}
    env.update(extra)
    env.update({
        "RUN_DIR": run_dir,
        "BIN_DIR": _required("BIN_DIR"),
        "PORT": str(free_port()),
        "PG_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        # Through a PgBouncer of its own when the main stack has one.
        "PGBOUNCER_PORT": str(free_port()) if os.environ.get("PGBOUNCER_PORT") else "",
        "REDIS_SAVE": "",
        "PG_FSYNC": "off",
        "PROCESSES": str(processes),
        "CRON_INTERVALS": " ",
    })
    for variable in ("SMTP_URL", "MAIL_FROM"):
        if os.environ.get(variable):
            env[variable] = os.environ[variable]
    script = os.path.join(ROOT, "scripts", "stack.sh")

    def stop():
        subprocess.run([script, "stop"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    if os.path.isdir(run_dir):
        subprocess.run([script, "purge"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(run_dir, ignore_errors=True)
    started = subprocess.run([script, "start"], cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        if started.returncode != 0:
            raise RuntimeError(f"the {name} stack did not start (logs in {run_dir}/logs):\n"
                               f"{started.stdout[-2000:]}\n{started.stderr[-2000:]}")
        yield cls(fake, env, extra)
    finally:
        stop()


@pytest.fixture(scope="session")
def replicate_stack():
    """A private stack whose functions use Replicate, pointed at the Replicate fake."""
    from fakes.replicate import ReplicateFake, new_secret

    fake = ReplicateFake(secret=new_secret(), token="r8_test", port=0).start()
    extra = {
        "REPLICATE_API_TOKEN": fake.token,
        "REPLICATE_API_BASE": fake.base_url,
        "REPLICATE_WEBHOOK_SECRET": fake.secret,
        "RECONCILE_AFTER_SECONDS": "0",
        "GENERATION_TIMEOUT_SECONDS": "20",
    }
    try:
        with private_stack("replicate", extra, fake=fake) as stack:
            yield stack
    finally:
        fake.stop()


@pytest.fixture
def replicate(replicate_stack):
    """The Replicate fake of `replicate_stack`, its scenarios reset before and after the test."""
    replicate_stack.fake.reset()
    yield replicate_stack.fake
    replicate_stack.fake.reset()


@pytest.fixture(scope="session")
def admin_stack():
    """A private stack for the admin tests (Tests/e2e/test_admin.py), two processes per function so
    concurrent admin requests really run side by side: its users are only the ones those tests make, so
    it has exactly the admins they create and counts can be compared with SQL."""
    with private_stack("admin", {}, processes=2) as stack:
        yield stack


@pytest.fixture(scope="session")
def limits_stack():
    """A private stack with the product's default rate limits (Tests/e2e/test_public_api.py), where the main
    test stack's are generous: free generation 10 a minute with bursts of 5, premium 60/20, enhancement
    30/10; reads 50 a minute with bursts of 50 (the default is 600/100), so 100 concurrent reads meet the
    limit. A free user may make 100 images a day, so the quota never gets in the way."""
    extra = {"RATE_READ_PER_MINUTE": "50", "RATE_READ_BURST": "50", "QUOTA_FREE_DAILY": "100"}
    with private_stack("limits", extra, processes=2, drop=("RATE_", "QUOTA_")) as stack:
        yield stack


@pytest.fixture(scope="session")
def billing_stack():
    """A private stack configured for Razorpay with the fake in fakes/razorpay.py (Tests/e2e/test_billing.py):
    key rzp_test_x, a key secret and a webhook secret of its own, plan plan_test, one hour of grace after a
    period end, reconciliation of stale subscriptions at once."""
    from fakes.razorpay import RazorpayFake, new_secret

    fake = RazorpayFake(key_id="rzp_test_x", key_secret=new_secret(), webhook_secret=new_secret(),
                        plan_id="plan_test", port=0).start()
    extra = {
        "RAZORPAY_KEY_ID": fake.key_id,
        "RAZORPAY_KEY_SECRET": fake.key_secret,
        "RAZORPAY_WEBHOOK_SECRET": fake.webhook_secret,
        "RAZORPAY_PLAN_ID": fake.plan_id,
        "RAZORPAY_API_BASE": fake.base_url,
        "PREMIUM_GRACE_SECONDS": "3600",
        "RAZORPAY_RECONCILE_AFTER_SECONDS": "0",
    }
    try:
        with private_stack("billing", extra, drop=("PLAN_", "SUBSCRIPTION_", "PREMIUM_"), cls=BillingStack, fake=fake) as stack:
            yield stack
    finally:
        fake.stop()


@pytest.fixture
def razorpay(billing_stack):
    """The Razorpay fake of `billing_stack`, its scenarios reset before and after the test."""
    billing_stack.fake.reset()
    yield billing_stack.fake
    billing_stack.fake.reset()
