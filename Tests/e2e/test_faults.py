"""Faults under load, against the main test stack: PostgreSQL restarted, Redis restarted, and both
`generate` processes killed with SIGKILL, each while client threads create images and read.

Every loop is bounded (a deadline and a request cap per thread) and every request has a timeout, so a
hang is a failure, never a stuck suite. What each test asserts:

- every answer is a success or a 503 in the API's JSON shape (never a 500, never a hang);
- the service comes back by itself (no process restarted by hand);
- nothing is lost or half-applied: the user's image rows are exactly the images the clients were
  answered 201 for (with a crash, at least those), the quota counter is the sum of the costs of the
  generations that were not refunded, and no generation is left open.

Each test makes its own user and restricts its database assertions to that user; its services are
restored in `finally`, so a failure leaves the stack as it found it. The main stack's generation limits
are generous (scripts/test.sh); its daily quota is 10, so each user gets a `quota_override` first.
"""
import os
import signal
import subprocess
import threading
import time

import requests

from conftest import wait_until
from test_accounts import SESSION_COOKIE, register_and_verify, sql_text

# A request that takes longer than this is a hang (nginx's own fastcgi_read_timeout is 30 s).
HTTP_TIMEOUT = (3, 12)
# Each client thread stops after this many requests even if nobody stops it.
REQUEST_CAP = 3000
QUOTA = 1_000_000
IMAGE_BODY = {"prompt": "a lighthouse in a storm, fault test", "style": "none", "aspect_ratio": "1:1"}


# ---- helpers -----------------------------------------------------------------------------------------

class Outcome:
    """One request as a client saw it: when it started and ended (time.monotonic), and what came back."""

    __slots__ = ("kind", "started", "ended", "status", "code", "image_id", "error")

    def __init__(self, kind, started, ended, status=None, code=None, image_id=None, error=None):
        self.kind, self.started, self.ended = kind, started, ended
        self.status, self.code, self.image_id, self.error = status, code, image_id, error

    def __repr__(self):
        what = self.error or f"{self.status} {self.code or ''}".strip()
        return f"<{self.kind} {what} after {self.ended - self.started:.2f}s>"


def outcome_of(kind, started, response):
    ended = time.monotonic()
    code = image_id = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):
            code = body["error"].get("code")
        elif kind == "health":
            code = body.get("status")  # health's own shape: {"status": "unavailable", "database": …}
        if response.status_code == 201 and isinstance(body.get("image"), dict):
            image_id = body["image"].get("id")
    return Outcome(kind, started, ended, response.status_code, code, image_id)


class Load:
    """Client threads, each repeating one kind of request until stopped (or REQUEST_CAP, or `limit`
    seconds), each with its own connection pool. All outcomes are kept, in order of completion."""

    def __init__(self, stack, limit=35.0):
        self.stack = stack
        self.deadline = time.monotonic() + limit
        self.outcomes = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def add(self, kind, method, path, headers=None, json_body=None, pause=0.0):
        def loop():
            with requests.Session() as http:
                for _ in range(REQUEST_CAP):
                    if self.stopping.is_set() or time.monotonic() > self.deadline:
                        return
                    started = time.monotonic()
                    try:
                        r = http.request(method, self.stack.api(path), headers=headers, json=json_body,
                                         timeout=HTTP_TIMEOUT)
                        outcome = outcome_of(kind, started, r)
                    except requests.RequestException as e:
                        outcome = Outcome(kind, started, time.monotonic(), error=f"{type(e).__name__}: {e}")
                    with self.lock:
                        self.outcomes.append(outcome)
                    if pause:
                        time.sleep(pause)

        thread = threading.Thread(target=loop, name=f"load-{kind}-{len(self.threads)}", daemon=True)
        self.threads.append(thread)
        return self

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=HTTP_TIMEOUT[0] + HTTP_TIMEOUT[1] + 5)
        assert not [t.name for t in self.threads if t.is_alive()], "a client thread is stuck"

    def snapshot(self):
        with self.lock:
            return list(self.outcomes)

    def wait_for(self, predicate, timeout):
        """Waits until `predicate(outcomes so far)` holds; returns whether it did."""
        return wait_until(lambda: predicate(self.snapshot()), timeout=timeout, interval=0.05)


def of(outcomes, *kinds):
    return [o for o in outcomes if o.kind in kinds]


def tally(outcomes):
    counts = {}
    for o in outcomes:
        key = (o.kind, o.error.split(":")[0] if o.error else f"{o.status} {o.code or ''}".strip())
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def assert_answered(outcomes, allowed):
    """Every request got an answer (no timeout, no reset connection) with an allowed status; every 503
    is the API's JSON (an error code, or health's own shape)."""
    summary = tally(outcomes)
    failed = [o for o in outcomes if o.error]
    assert not failed, f"requests without an answer: {failed[:5]} (all: {summary})"
    wrong = [o for o in outcomes if o.status not in allowed.get(o.kind, ())]
    assert not wrong, f"unexpected statuses: {wrong[:5]} (all: {summary})"
    shapeless = [o for o in outcomes if o.status == 503 and not o.code]
    assert not shapeless, f"503s without a JSON error code: {shapeless[:5]} (all: {summary})"


def health_ok(stack):
    try:
        return requests.get(stack.api("/api/v1/health"), timeout=3).status_code == 200
    except requests.RequestException:
        return False


class FaultUser:
    """A verified user with a session (cookie + CSRF token) and a quota that never runs out."""

    def __init__(self, stack, smtp):
        self.stack = stack
        with requests.Session() as http:
            email, _, self.csrf = register_and_verify(stack, smtp, http)
            self.token = http.cookies.get(SESSION_COOKIE)
        assert self.token, "no session cookie after verification"
        self.id = stack.psql(f"SELECT id FROM users WHERE email = {sql_text(email)}")
        stack.psql(f"UPDATE users SET quota_override = {QUOTA} WHERE id = {sql_text(self.id)}")

    @property
    def session_headers(self):
        return {"Cookie": f"{SESSION_COOKIE}={self.token}"}

    @property
    def post_headers(self):
        return dict(self.session_headers, **{"X-CSRF-Token": self.csrf, "Origin": self.stack.url})

    def api_key(self):
        r = requests.post(self.stack.api("/api/v1/keys"), json={"name": "fault test"}, headers=self.post_headers,
                          timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["secret"]

    def sql(self, query):
        return self.stack.psql(query.replace(":user", sql_text(self.id)))

    def image_ids(self):
        return set(self.sql("SELECT id FROM images WHERE user_id = :user").split())

    def open_generations(self):
        return self.sql("SELECT id || ' ' || status FROM generations WHERE user_id = :user "
                        "AND status IN ('queued', 'running')").splitlines()


def assert_books_balance(user):
    """The quota counter is the sum of what the generations that were not refunded cost; every succeeded
    generation has its image and every image its succeeded generation; every failed one was refunded."""
    used, charged = user.sql("""
        SELECT u.quota_used, COALESCE((SELECT sum(g.cost) FROM generations g
                                       WHERE g.user_id = u.id AND NOT g.refunded
                                         AND g.quota_period_start = u.quota_period_start), 0)
        FROM users u WHERE u.id = :user""").split("|")
    assert int(used) == int(charged), f"quota_used {used} but the generations not refunded cost {charged}"
    succeeded_without_image = user.sql("""
        SELECT count(*) FROM generations g WHERE g.user_id = :user AND g.status = 'succeeded'
           AND NOT EXISTS (SELECT 1 FROM images i WHERE i.generation_id = g.id)""")
    assert succeeded_without_image == "0", f"{succeeded_without_image} succeeded generations without an image"
    images_without_success = user.sql("""
        SELECT count(*) FROM images i LEFT JOIN generations g ON g.id = i.generation_id
        WHERE i.user_id = :user AND (g.id IS NULL OR g.status <> 'succeeded')""")
    assert images_without_success == "0", f"{images_without_success} images without a succeeded generation"
    unrefunded_failures = user.sql("""
        SELECT count(*) FROM generations WHERE user_id = :user AND status IN ('failed', 'canceled') AND NOT refunded""")
    assert unrefunded_failures == "0", f"{unrefunded_failures} failed generations were not refunded"


def created_ids(outcomes):
    ids = [o.image_id for o in outcomes if o.status == 201]
    assert all(ids), "a 201 without an image id"
    return ids


def within(outcomes, start, end):
    """Requests that began after `start` and were answered before `end`."""
    return [o for o in outcomes if o.started >= start and o.ended <= end]


# ---- PostgreSQL restarted under load -------------------------------------------------------------------

def test_postgres_restart_under_load_loses_and_half_applies_nothing(stack, smtp):
    user = FaultUser(stack, smtp)
    load = Load(stack)
    for _ in range(4):
        load.add("create", "POST", "/api/v1/images", headers=user.post_headers, json_body=IMAGE_BODY)
    load.add("health", "GET", "/api/v1/health", pause=0.05)
    load.start()
    stopped = restarted = None
    try:
        assert load.wait_for(lambda seen: sum(o.status == 201 for o in seen) >= 4, timeout=10), tally(load.snapshot())
        try:
            stack.stack("pg-stop")
            stopped = time.monotonic()
            time.sleep(2.0)
        finally:
            restarted = time.monotonic()  # the outage ends, at the latest, when starting begins
            stack.stack("pg-start")
        # Back by itself: health, then a new image, with nothing restarted but PostgreSQL.
        assert wait_until(lambda: health_ok(stack), timeout=20), "health did not return to 200 within 20 s"
        recovered = time.monotonic()
        assert load.wait_for(lambda seen: any(o.status == 201 and o.started > recovered for o in seen), timeout=10), \
            f"no image created after PostgreSQL came back: {tally(load.snapshot())}"
    finally:
        load.stop()

    outcomes = load.snapshot()
    print(tally(outcomes))  # shown with the failure, or with -s
    assert_answered(outcomes, {"create": (201, 503), "health": (200, 503)})
    down = within(outcomes, stopped, restarted)
    assert of(down, "create") and all(o.status == 503 for o in of(down, "create")), tally(down)
    assert of(down, "health") and all(o.status == 503 for o in of(down, "health")), tally(down)

    created = created_ids(outcomes)
    assert user.image_ids() == set(created), (
        f"{len(created)} images answered 201, {len(user.image_ids())} rows: {tally(outcomes)}")
    assert_books_balance(user)
    # A job whose request met the outage must be failed and refunded by that request (or never begun):
    # left open it holds the user's quota until maintenance times it out, long after the 503 said that
    # nothing was changed.
    assert user.open_generations() == [], f"generations left open after the restart: {user.open_generations()}"


# ---- Redis restarted under load ------------------------------------------------------------------------

def test_redis_restart_under_load_fails_generation_closed_and_keeps_key_reads(stack, smtp):
    user = FaultUser(stack, smtp)
    key = {"Authorization": f"Bearer {user.api_key()}"}
    load = Load(stack)
    for _ in range(3):
        load.add("create", "POST", "/api/v1/images", headers=key, json_body=IMAGE_BODY)
    load.add("read", "GET", "/api/v1/images", headers=key, pause=0.02)
    load.add("read", "GET", "/api/v1/usage", headers=key, pause=0.02)
    load.add("health", "GET", "/api/v1/health", pause=0.05)
    load.start()
    stopped = restarted = None
    try:
        assert load.wait_for(lambda seen: sum(o.status == 201 for o in seen) >= 3, timeout=10), tally(load.snapshot())
        try:
            stack.stack("redis-stop")
            stopped = time.monotonic()
            time.sleep(2.0)
        finally:
            restarted = time.monotonic()  # the outage ends, at the latest, when starting begins
            stack.stack("redis-start")
        assert wait_until(lambda: health_ok(stack), timeout=20), "health did not return to 200 within 20 s"
        recovered = time.monotonic()
        assert load.wait_for(lambda seen: any(o.status == 201 and o.started > recovered for o in seen), timeout=10), \
            f"no image created after Redis came back: {tally(load.snapshot())}"
    finally:
        load.stop()

    outcomes = load.snapshot()
    print(tally(outcomes))  # shown with the failure, or with -s
    assert_answered(outcomes, {"create": (201, 503), "read": (200,), "health": (200, 503)})
    down = within(outcomes, stopped, restarted)
    # Generation fails closed: without the rate limiter, nothing is made.
    assert of(down, "create"), tally(down)
    assert {(o.status, o.code) for o in of(down, "create")} == {(503, "redis_unavailable")}, tally(down)
    # Reads with an API key need PostgreSQL only (their rate limit fails open).
    assert len(of(down, "read")) >= 5, tally(down)
    assert of(down, "health") and all(o.status == 503 for o in of(down, "health")), tally(down)
    # Every 503 of a POST, whenever it came, is the rate limiter's.
    assert {o.code for o in of(outcomes, "create") if o.status == 503} <= {"redis_unavailable"}, tally(outcomes)

    created = created_ids(outcomes)
    assert user.image_ids() == set(created), (
        f"{len(created)} images answered 201, {len(user.image_ids())} rows: {tally(outcomes)}")
    assert user.open_generations() == [], f"generations left open: {user.open_generations()}"
    assert_books_balance(user)


# ---- function processes killed under load ---------------------------------------------------------------

def run_maintenance(stack):
    """maintenance-cron once, timing out every open job older than a second. It refuses a timeout of 0
    (its range is 1 to 86400), so it waits a little over that second first. This fails open jobs of
    every user of the shared database; the test's assertions are about its own user only."""
    time.sleep(1.2)
    env = dict(stack.app_env(), GENERATION_TIMEOUT_SECONDS="1")
    done = subprocess.run([os.path.join(stack.bin_dir, "maintenance-cron")], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"maintenance-cron exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def test_kill_9_of_both_generate_processes_under_load(stack, smtp):
    user = FaultUser(stack, smtp)
    before = stack.function_pids("generate")
    assert len(before) == 2, before
    load = Load(stack)
    for _ in range(3):
        load.add("create", "POST", "/api/v1/images", headers=user.post_headers, json_body=IMAGE_BODY)
    for _ in range(2):
        load.add("list", "GET", "/api/v1/images", headers=user.session_headers)
    load.start()
    try:
        assert load.wait_for(lambda seen: sum(o.status == 201 for o in seen) >= 3, timeout=10), tally(load.snapshot())
        for victim in before:
            os.kill(victim, signal.SIGKILL)
            # The supervisor starts a replacement (at once, or after a second for a process that lived
            # less than one); the next one is killed once the pair is complete again.
            assert wait_until(lambda: victim not in stack.function_pids("generate")
                              and len(stack.function_pids("generate")) == 2, timeout=10), \
                f"generate did not get back to two processes: {stack.function_pids('generate')}"
            time.sleep(0.5)
        after = stack.function_pids("generate")
        assert len(after) == 2 and not set(after) & set(before), (before, after)
        killed = time.monotonic()
        assert load.wait_for(lambda seen: any(o.status == 201 and o.started > killed for o in seen), timeout=10), \
            f"no image created by the new processes: {tally(load.snapshot())}"
        time.sleep(0.5)
    finally:
        load.stop()

    outcomes = load.snapshot()
    print(tally(outcomes))  # shown with the failure, or with -s
    # GETs are retried by nginx on another process; a POST in flight may be lost with its process (503).
    assert_answered(outcomes, {"create": (201, 503), "list": (200,)})
    rows = user.image_ids()
    missing = set(created_ids(outcomes)) - rows
    assert not missing, f"images answered 201 but not in the database: {sorted(missing)}"

    # A job whose process died mid-request is open until maintenance times it out and refunds it.
    run_maintenance(stack)
    assert user.open_generations() == [], f"generations still open after maintenance: {user.open_generations()}"
    assert_books_balance(user)
