"""The admin API (/api/v1/admin), through nginx, on a private stack (`admin_stack` in conftest.py) whose
users are only the ones these tests make, so counts and the last-admin rule can be checked exactly.

The rules: a browser session of an admin only (a normal user's session is 403 admin_required, an API key
or no session 401, a demoted admin is refused at once); search with filters and keyset pages that never
repeat or skip a user; a user's full record; promotion only with the acting admin's password again; the
last admin stays; premium grants and quota overrides; deletion with the user's email typed back and the
admin's password; sessions counted and revoked; exactly one audit row per change, carrying the request id
of the change (the operator CLI's rows have the actor "cli"); the service's numbers; a short idle timeout
for admin sessions; and the CLI's exit statuses.

Admins are made with `atelier create-admin --email E` (password on stdin) and log in through
POST /api/v1/login; everyone else registers. Tests run one after another on the private stack, so the
audit rows a mutation adds are exactly the rows with a larger id than before it.
"""
import datetime
import hashlib
import subprocess
import threading
import uuid

import pytest
import requests

from test_openapi import router_routes
from test_accounts import (SESSION_COOKIE, assert_error, call, get_session, login, parse_time, redis_cli, register,
                           register_and_verify, session_token, sql_text, strong_password, unique_email)

ADMIN = "/api/v1/admin"
# Every route of Functions/admin/main.swift, read from its router (so a new route is covered by the
# access tests the day it is added).
ENDPOINTS = sorted((method, path[len(ADMIN):]) for (method, path), function in router_routes().items()
                   if function == "admin")
assert ("GET", "/users") in ENDPOINTS and ("POST", "/generations/{id}/reconcile") in ENDPOINTS, ENDPOINTS
LISTED_KEYS = {"id", "email", "username", "verified", "is_admin", "premium", "quota", "created_at", "last_login_at"}
QUOTA_KEYS = {"used", "limit", "period", "period_start", "renews_at"}
DETAIL_KEYS = {"user", "subscription", "payments", "usage", "api_keys", "active_sessions", "history",
               "history_next_cursor"}
KEY_KEYS = {"id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "revoked"}
AUDIT_KEYS = {"id", "actor_id", "actor", "action", "target_user_id", "target_email", "before", "after", "request_id",
              "created_at"}
FREE_DAILY, PREMIUM_MONTHLY = 10, 500
NORMAL_IDLE, ADMIN_IDLE = 7 * 86_400, 1_800


# ---- helpers -----------------------------------------------------------------------------------------

class Person:
    """A logged-in account: its browser (cookie jar), credentials, session token and CSRF token."""

    def __init__(self, stack, http, email, password, csrf):
        self.stack, self.http, self.email, self.password, self.csrf = stack, http, email, password, csrf
        self.token = http.cookies.get(SESSION_COOKIE)
        self.id = stack.psql(f"SELECT id FROM users WHERE email = {sql_text(email)}")
        assert self.token and self.id, (email, self.token, self.id)

    def call(self, method, path, body=None, params=None, csrf=True, headers=None):
        """A request with this browser's cookie (and CSRF token and Origin for a state-changing one)."""
        sent = {}
        if method not in ("GET", "HEAD"):
            sent["Origin"] = self.stack.url
            if csrf:
                sent["X-CSRF-Token"] = self.csrf
        sent.update(headers or {})
        extra = {} if body is None else {"json": body}
        return self.http.request(method, self.stack.api(path), params=params, headers=sent, timeout=60, **extra)

    def admin(self, method, path, body=None, params=None, **kw):
        return self.call(method, ADMIN + path, body, params, **kw)

    def session_alive(self, token=None):
        r = get_session(self.stack, token=token or self.token)
        assert r.status_code in (200, 401), r.text
        return r.status_code == 200

    def profile(self):
        r = self.call("GET", "/api/v1/profile")
        assert r.status_code == 200, r.text
        return r.json()

    def generate(self, prompt):
        r = self.call("POST", "/api/v1/images", {"prompt": prompt})
        assert r.status_code == 201, r.text
        return r.json()

    def second_session(self):
        """Logs in again from another browser; returns that session's token."""
        jar = requests.Session()
        r = login(self.stack, jar, self.email, self.password)
        assert r.status_code == 200, r.text
        return session_token(r)


def cli(stack, *args, password=None):
    return subprocess.run([stack.bin_dir + "/atelier", *args], input=password or "", capture_output=True, text=True,
                          env=stack.app_env(), timeout=60)


@pytest.fixture
def people(admin_stack, smtp):
    """Makes users (`people.user()`) and admins (`people.admin()`) on the admin stack."""
    jars = []

    class Maker:
        stack = admin_stack

        @staticmethod
        def user(username=None):
            jar = requests.Session()
            jars.append(jar)
            email, password, csrf = register_and_verify(admin_stack, smtp, jar, username=username)
            return Person(admin_stack, jar, email, password, csrf)

        @staticmethod
        def admin():
            email = "admin-" + unique_email()
            password = strong_password()
            made = cli(admin_stack, "create-admin", "--email", email, password=password)
            assert made.returncode == 0, made.stderr
            jar = requests.Session()
            jars.append(jar)
            r = login(admin_stack, jar, email, password)
            assert r.status_code == 200, r.text
            session_token(r)
            return Person(admin_stack, jar, email, password, r.json()["csrf_token"])

    yield Maker
    for jar in jars:
        jar.close()


def last_audit_id(stack):
    return int(stack.psql("SELECT COALESCE(max(id), 0) FROM audit_log"))


def audit_since(stack, after_id):
    """The audit rows written after `after_id`, as the audit API shows them (from SQL, oldest first)."""
    import json

    text = stack.psql(f"""SELECT COALESCE(json_agg(json_build_object('id', id, 'actor_id', actor_id, 'actor', actor_label,
        'action', action, 'target_user_id', target_user_id, 'target_email', target_email, 'before', before,
        'after', after, 'request_id', request_id) ORDER BY id), '[]') FROM audit_log WHERE id > {after_id}""")
    return json.loads(text)


def audit_of(admin, target_id, **params):
    r = admin.admin("GET", "/audit", params={"user_id": target_id, **params})
    assert r.status_code == 200, r.text
    return r.json()


def same_time(a, b):
    if a is None or b is None:
        return a is None and b is None
    return parse_time(a) == parse_time(b)


def assert_one_audit_row(admin, since, response, action, target, before, after, actor=None):
    """The mutation answered by `response` left exactly one audit row: this action by this actor on this
    target, with these before/after fields and the response's X-Request-Id; the audit API shows it."""
    stack = admin.stack
    rows = audit_since(stack, since)
    assert len(rows) == 1, f"expected one audit row for {action}, got {rows}"
    [row] = rows
    actor = actor or admin
    assert row["action"] == action, row
    assert row["actor"] == actor.email and row["actor_id"] == actor.id, row
    assert row["target_user_id"] == target.id and row["target_email"].lower() == target.email.lower(), row
    request_id = response.headers.get("X-Request-Id")
    assert request_id and row["request_id"] == request_id, (row, response.headers)
    assert_fields(row["before"], before, row)
    assert_fields(row["after"], after, row)
    listed = [item for item in audit_of(admin, target.id)["items"] if item["id"] == row["id"]]
    assert len(listed) == 1, f"audit API does not show row {row['id']}"
    assert set(listed[0]) == AUDIT_KEYS, listed[0]
    assert listed[0]["request_id"] == request_id and listed[0]["action"] == action, listed[0]
    return row


def assert_fields(actual, expected, row):
    if expected is None:
        assert actual is None, row
        return
    assert isinstance(actual, dict) and set(actual) == set(expected), row
    for key, value in expected.items():
        if isinstance(value, str) and value[:4].isdigit():
            assert same_time(actual[key], value), (key, row)
        else:
            assert actual[key] == value, (key, row)


def is_admin_in_db(stack, user_id):
    return stack.psql(f"SELECT is_admin FROM users WHERE id = {sql_text(user_id)}") == "t"


def session_ttl(stack, token):
    return int(redis_cli(stack, "TTL", "session:" + hashlib.sha256(token.encode()).hexdigest()).strip())


def iso(when):
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_row_snapshot(stack, user_id):
    return stack.psql(f"SELECT is_admin, premium_until, quota_override, verified FROM users WHERE id = {sql_text(user_id)}")


def insert_user(stack, email, username=None, verified=True, is_admin=False, premium="NULL", created_at="now()"):
    """A user row made directly (search data, not an account anyone logs in to); returns its id."""
    return stack.psql(
        "INSERT INTO users (email, username, password_hash, verified, is_admin, premium_until, created_at) VALUES "
        f"({sql_text(email)}, {sql_text(username) if username else 'NULL'}, 'not-a-hash', {verified}, {is_admin}, "
        f"{premium}, {created_at}) RETURNING id").splitlines()[0]


def list_users(actor, **params):
    r = actor.admin("GET", "/users", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"items", "next_cursor"}, body
    return body


# ---- who may use the admin API -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def outsiders(admin_stack, smtp):
    """An admin with an API key, a normal user and the user they try to act on."""
    jars = []

    def user():
        jar = requests.Session()
        jars.append(jar)
        email, password, csrf = register_and_verify(admin_stack, smtp, jar)
        return Person(admin_stack, jar, email, password, csrf)

    email, password = "admin-" + unique_email(), strong_password()
    assert cli(admin_stack, "create-admin", "--email", email, password=password).returncode == 0
    jar = requests.Session()
    jars.append(jar)
    r = login(admin_stack, jar, email, password)
    assert r.status_code == 200, r.text
    admin = Person(admin_stack, jar, email, password, r.json()["csrf_token"])
    r = admin.call("POST", "/api/v1/keys", {"name": "admin's program"})
    assert r.status_code == 201, r.text
    admin.api_key = r.json()["secret"]
    normal, victim = user(), user()
    yield admin, normal, victim
    for jar in jars:
        jar.close()


def endpoint_request(method, template, victim, actor):
    path = ADMIN + template.replace("{id}", victim.id)
    body = None
    if method == "PATCH":
        body = {"is_admin": True, "premium_until": "2030-01-01T00:00:00Z", "quota_override": 99999,
                "password": actor.password}
    elif method == "DELETE" and template == "/users/{id}":
        body = {"confirm_email": victim.email, "password": actor.password}
    return path, body


@pytest.mark.parametrize("method,template", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_only_an_admins_browser_session_is_let_in(admin_stack, outsiders, method, template):
    """Every admin endpoint: a normal user's session (with its CSRF token) is 403 admin_required, an
    admin's own API key is 401, no session is 401; none of them changes anything."""
    stack = admin_stack
    admin, normal, victim = outsiders
    before, audit_before = user_row_snapshot(stack, victim.id), last_audit_id(stack)
    path, body = endpoint_request(method, template, victim, normal)
    r = normal.call(method, path, body)
    assert_error(r, 403, "admin_required")
    # A normal user acting on themself (e.g. promoting themself) is refused the same way.
    own_path, own_body = endpoint_request(method, template, normal, normal)
    assert_error(normal.call(method, own_path, own_body), 403, "admin_required")
    path, body = endpoint_request(method, template, victim, admin)
    sent = {"Authorization": f"Bearer {admin.api_key}"}
    if method != "GET":
        sent["Origin"] = stack.url
    r = requests.request(method, stack.api(path), json=body, headers=sent, timeout=30)
    assert r.status_code == 401, f"{method} {path} with an API key: {r.status_code} {r.text}"
    r = call(stack, None, method, path, body)
    assert_error(r, 401, "not_authenticated")
    assert user_row_snapshot(stack, victim.id) == before
    assert user_row_snapshot(stack, normal.id).startswith("f|")
    assert last_audit_id(stack) == audit_before
    assert normal.session_alive() and victim.session_alive()


def test_a_demoted_admin_is_refused_at_the_next_request(people):
    """An admin demoted by another admin (PATCH), or in PostgreSQL, gets 403 on the very next request
    with the session they already have."""
    first, second, third = people.admin(), people.admin(), people.admin()
    assert first.admin("GET", "/stats").status_code == 200
    r = second.admin("PATCH", f"/users/{first.id}", {"is_admin": False, "password": second.password})
    assert r.status_code == 200, r.text
    assert r.json()["is_admin"] is False
    assert_error(first.admin("GET", "/stats"), 403, "admin_required")
    assert_error(first.admin("GET", "/users"), 403, "admin_required")
    assert third.admin("GET", "/stats").status_code == 200
    people.stack.psql(f"UPDATE users SET is_admin = false WHERE id = {sql_text(third.id)}")
    assert_error(third.admin("GET", "/users"), 403, "admin_required")
    assert_error(third.admin("PATCH", f"/users/{first.id}", {"is_admin": True, "password": third.password}),
                 403, "admin_required")
    assert not is_admin_in_db(people.stack, first.id)


def test_admin_mutations_need_the_sessions_csrf_token(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    since, before = last_audit_id(stack), user_row_snapshot(stack, user.id)
    for method, template in ENDPOINTS:
        if method == "GET":
            continue
        path, body = endpoint_request(method, template, user, admin)
        assert_error(admin.call(method, path, body, csrf=False), 403, "csrf_failed")
    assert last_audit_id(stack) == since and user_row_snapshot(stack, user.id) == before
    assert user.session_alive()


# ---- search, filters and pages -----------------------------------------------------------------------

@pytest.mark.parametrize("query", ["q=&premium=&admin=&verified=&cursor=", "sort=", "limit=",
                                   "q=&premium=&admin=&verified=&sort=&cursor=&limit="])
def test_empty_query_parameters_count_as_absent(people, query):
    """`GET /users?q=&premium=&admin=&verified=&sort=&cursor=&limit=`: an empty parameter is no parameter."""
    admin = people.admin()
    r = admin.admin("GET", "/users?" + query)
    assert r.status_code == 200, r.text
    assert r.json()["items"], r.json()


def test_search_is_a_case_insensitive_substring_of_email_or_username_with_filters(people):
    stack = people.stack
    admin = people.admin()
    t = uuid.uuid4().hex[:8]
    ids = {
        "a": insert_user(stack, f"x-zebra-{t}-a@example.test"),
        "b": insert_user(stack, f"x-zebra-{t}-b@example.test", premium="now() + interval '10 days'"),
        "c": insert_user(stack, f"x-zebra-{t}-c@example.test", verified=False),
        "d": insert_user(stack, f"x-zebra-{t}-d@example.test", is_admin=True),
        "e": insert_user(stack, f"plain-{t}@example.test", username=f"zebra{t}"),
        "f": insert_user(stack, f"x-zebra-{t}-f@example.test", premium="now() - interval '1 day'"),
    }
    name_of = {v: k for k, v in ids.items()}

    def found(**params):
        items = list_users(admin, limit=200, **params)["items"]
        return {name_of[item["id"]] for item in items if item["id"] in name_of}, items

    assert found(q=f"ZEBRA-{t.upper()}")[0] == set("abcdf")
    got, items = found(q=f"ZEBRA{t.upper()}")
    assert got == {"e"} and len(items) == 1, items
    assert found(q=f"  X-Zebra-{t}-A@EXAMPLE.test ")[0] == {"a"}
    assert found(q=t.upper())[0] == set("abcdef")
    assert found(q=t, premium="true")[0] == {"b"}
    assert found(q=t, premium="false")[0] == set("acdef")
    assert found(q=t, admin="true")[0] == {"d"}
    assert found(q=t, admin="false")[0] == set("abcef")
    assert found(q=t, verified="false")[0] == {"c"}
    assert found(q=t, verified="true")[0] == set("abdef")
    assert found(q=t, premium="false", verified="true", admin="false")[0] == set("aef")
    # LIKE's wildcards are searched for literally.
    for q in ("%", "_", f"{t}%", f"x_zebra-{t}"):
        items = list_users(admin, q=q, limit=200)["items"]
        assert all(q.lower() in item["email"].lower() or q.lower() in (item["username"] or "") for item in items), (q, items)
    # Without q, every user (the admin itself among them).
    everyone = list_users(admin, limit=200)["items"]
    assert len(everyone) == int(stack.psql("SELECT count(*) FROM users")), everyone
    for params, code in (({"premium": "maybe"}, "invalid_filter"), ({"admin": "yes"}, "invalid_filter"),
                         ({"sort": "email"}, "invalid_sort"), ({"limit": "0"}, "invalid_limit"),
                         ({"limit": "201"}, "invalid_limit"), ({"cursor": "not-a-cursor"}, "invalid_cursor")):
        assert_error(admin.admin("GET", "/users", params=params), 400, code)


def test_listed_users_have_their_standing_and_quota(people):
    admin = people.admin()
    free, premium = people.user(), people.user()
    until = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=20)
    r = admin.admin("PATCH", f"/users/{premium.id}", {"premium_until": iso(until)})
    assert r.status_code == 200, r.text
    items = {item["id"]: item for item in list_users(admin, q="example.test", limit=200)["items"]}
    for person in (free, premium, admin):
        item = items[person.id]
        assert set(item) == LISTED_KEYS, item
        assert set(item["quota"]) == QUOTA_KEYS, item
        assert set(item["premium"]) == {"active", "until"}, item
        assert item["email"].lower() == person.email.lower() and item["verified"] is True, item
        parse_time(item["created_at"])
        parse_time(item["last_login_at"])
        for key in ("period_start", "renews_at"):
            parse_time(item["quota"][key])
    assert items[free.id]["premium"] == {"active": False, "until": None}
    assert items[free.id]["is_admin"] is False and items[admin.id]["is_admin"] is True
    assert items[free.id]["quota"]["limit"] == FREE_DAILY and items[free.id]["quota"]["period"] == "day"
    assert items[premium.id]["premium"]["active"] is True
    assert parse_time(items[premium.id]["premium"]["until"]) == until
    assert items[premium.id]["quota"]["limit"] == PREMIUM_MONTHLY and items[premium.id]["quota"]["period"] == "month"
    assert parse_time(items[premium.id]["quota"]["renews_at"]) == until


@pytest.mark.parametrize("sort", [None, "created_desc", "created_asc"])
def test_paging_while_users_register_has_no_duplicates_or_gaps(people, sort):
    """limit=2 pages through a search while new matching users register between page fetches: every user
    that existed at the start is seen exactly once, none twice, in (created_at, id) order. Some of the
    users share one created_at, so ties are broken by id."""
    stack = people.stack
    admin = people.admin()
    t = uuid.uuid4().hex[:8]
    for i in range(3):
        insert_user(stack, f"x-page-{t}-tie{i}@example.test", created_at="now() - interval '1 hour'")
    for i in range(3):
        insert_user(stack, f"x-page-{t}-old{i}@example.test", created_at=f"now() - interval '{i + 2} hours'")
    for i in range(2):
        r = register(stack, None, f"x-page-{t}-reg{i}@example.test", strong_password())
        assert r.status_code == 202, r.text
    initial = set(stack.psql(f"SELECT id FROM users WHERE email LIKE 'x-page-{t}-%'").split())
    assert len(initial) == 8
    params = {"q": f"X-PAGE-{t}", "limit": 2}
    if sort:
        params["sort"] = sort
    seen, cursor, added = [], None, 0
    for _ in range(40):
        page = list_users(admin, **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        r = register(stack, None, f"x-page-{t}-new{added}@example.test", strong_password())
        assert r.status_code == 202, r.text
        added += 1
    assert cursor is None, "paging did not end"
    assert len(seen) == len(set(seen)), f"a user was listed twice: {seen}"
    assert initial <= set(seen), f"users skipped: {initial - set(seen)}"
    order = stack.psql("SELECT id FROM users WHERE id IN ("
                       + ",".join(sql_text(i) for i in seen) + ") ORDER BY created_at "
                       + ("ASC, id ASC" if sort == "created_asc" else "DESC, id DESC")).split()
    assert seen == order


# ---- one user's record -------------------------------------------------------------------------------

def test_a_users_record_has_everything_but_secrets(people):
    stack = people.stack
    admin = people.admin()
    user = people.user()
    user.second_session()
    r = user.call("POST", "/api/v1/keys", {"name": "my script"})
    assert r.status_code == 201, r.text
    key = r.json()
    r = requests.get(stack.api("/api/v1/images"), headers={"Authorization": f"Bearer {key['secret']}"}, timeout=30)
    assert r.status_code == 200, r.text
    first = user.generate("an old lighthouse")
    second = user.generate("a new lighthouse")

    r = admin.admin("GET", f"/users/{user.id}")
    assert r.status_code == 200, r.text
    assert key["secret"] not in r.text
    body = r.json()
    assert set(body) == DETAIL_KEYS, body
    assert set(body["user"]) == LISTED_KEYS and body["user"]["id"] == user.id, body["user"]
    assert body["subscription"] is None and body["payments"] == []
    usage = body["usage"]
    assert len(usage) == 30 and all(set(day) == {"day", "count"} for day in usage), usage
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert [day["day"] for day in usage] == [(today - datetime.timedelta(days=29 - i)).isoformat() for i in range(30)]
    assert usage[-1]["count"] >= 1 and sum(day["count"] for day in usage[:-1]) == 0, usage
    [listed_key] = body["api_keys"]
    assert set(listed_key) == KEY_KEYS, listed_key
    assert listed_key["id"] == key["id"] and listed_key["name"] == "my script" and listed_key["prefix"] == key["prefix"]
    assert listed_key["revoked"] is False and listed_key["revoked_at"] is None
    assert body["active_sessions"] == 2
    history = body["history"]
    assert [g["prompt"] for g in history] == ["a new lighthouse", "an old lighthouse"], history
    for g, made in zip(history, (second, first)):
        assert {"status", "error", "prompt", "image_ids"} <= set(g), g
        assert g["id"] == made["generation"]["id"] and g["status"] == "succeeded" and g["error"] is None, g
        assert g["image_ids"] == [made["image"]["id"]], g
    assert body["history_next_cursor"] is None

    r = admin.admin("GET", f"/users/{user.id}", params={"limit": 1})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [g["prompt"] for g in page["history"]] == ["a new lighthouse"] and page["history_next_cursor"]
    r = admin.admin("GET", f"/users/{user.id}", params={"limit": 1, "history_cursor": page["history_next_cursor"]})
    assert r.status_code == 200, r.text
    assert [g["prompt"] for g in r.json()["history"]] == ["an old lighthouse"]
    assert r.json()["history_next_cursor"] is None

    # A revoked key is listed as revoked; a failed generation shows its error.
    r = user.call("POST", "/api/v1/keys", {"name": "old script"})
    assert r.status_code == 201, r.text
    revoked_id = r.json()["id"]
    assert user.call("DELETE", f"/api/v1/keys/{revoked_id}").status_code == 204
    stack.psql("INSERT INTO generations (user_id, task, provider, status, input, error, cost, quota_period_start, refunded) "
               f"VALUES ({sql_text(user.id)}, 'image', 'local', 'failed', '{{\"prompt\": \"doomed\"}}', "
               "'provider exploded', 1, now(), true)")
    r = admin.admin("GET", f"/users/{user.id}")
    assert r.status_code == 200, r.text
    keys = {k["id"]: k for k in r.json()["api_keys"]}
    assert set(keys) == {key["id"], revoked_id}
    assert keys[revoked_id]["revoked"] is True and parse_time(keys[revoked_id]["revoked_at"])
    newest = r.json()["history"][0]
    assert (newest["status"], newest["error"], newest["prompt"], newest["image_ids"]) == \
        ("failed", "provider exploded", "doomed", []), newest

    for unknown in (str(uuid.uuid4()), "not-a-user-id"):
        for method, template in ENDPOINTS:
            if "{id}" not in template:
                continue
            path, body = endpoint_request(method, template, type("U", (), {"id": unknown, "email": "x@example.test"}),
                                          admin)
            if method == "PATCH":
                body = {"quota_override": 5}
            assert_error(admin.call(method, path, body), 404, "not_found")


# ---- promotion and demotion --------------------------------------------------------------------------

def test_promotion_needs_the_acting_admins_password(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    for body in ({"is_admin": True}, {"is_admin": True, "password": "Wrong-Password-123"},
                 {"is_admin": True, "password": user.password}, {"is_admin": True, "password": ""},
                 {"is_admin": True, "password": "x" * 5000},
                 {"is_admin": True, "quota_override": 7, "premium_until": "2030-01-01T00:00:00Z"}):
        since = last_audit_id(stack)
        assert_error(admin.admin("PATCH", f"/users/{user.id}", body), 403, "reauthentication_required")
        assert user_row_snapshot(stack, user.id) == "f|||t", body
        assert last_audit_id(stack) == since
    assert_error(user.admin("GET", "/stats"), 403, "admin_required")

    since = last_audit_id(stack)
    r = admin.admin("PATCH", f"/users/{user.id}", {"is_admin": True, "password": admin.password})
    assert r.status_code == 200, r.text
    assert r.json()["is_admin"] is True and set(r.json()) == LISTED_KEYS
    assert is_admin_in_db(stack, user.id)
    assert_one_audit_row(admin, since, r, "promote_admin", user, {"is_admin": False}, {"is_admin": True})
    # The promoted user's existing session now opens the admin API.
    assert user.admin("GET", "/stats").status_code == 200

    since = last_audit_id(stack)
    r = admin.admin("PATCH", f"/users/{user.id}", {"is_admin": False, "password": admin.password})
    assert r.status_code == 200, r.text
    assert r.json()["is_admin"] is False and not is_admin_in_db(stack, user.id)
    assert_one_audit_row(admin, since, r, "demote_admin", user, {"is_admin": True}, {"is_admin": False})
    assert_error(user.admin("GET", "/stats"), 403, "admin_required")


def make_only_admins(stack, *keep):
    """Demotes every admin but `keep` (this stack is private to these tests); returns who to restore."""
    ids = ",".join(sql_text(p.id) for p in keep)
    others = stack.psql(f"SELECT id FROM users WHERE is_admin AND id NOT IN ({ids})").split()
    if others:
        stack.psql(f"UPDATE users SET is_admin = false WHERE id IN ({','.join(sql_text(i) for i in others)})")
    return others


def restore_admins(stack, ids):
    if ids:
        stack.psql(f"UPDATE users SET is_admin = true WHERE id IN ({','.join(sql_text(i) for i in ids)})")


def test_the_last_admin_cannot_be_demoted(people):
    stack = people.stack
    first, second = people.admin(), people.admin()
    others = make_only_admins(stack, first, second)
    try:
        since = last_audit_id(stack)
        r = first.admin("PATCH", f"/users/{second.id}", {"is_admin": False, "password": first.password})
        assert r.status_code == 200, r.text
        assert_one_audit_row(first, since, r, "demote_admin", second, {"is_admin": True}, {"is_admin": False})
        assert stack.psql("SELECT count(*) FROM users WHERE is_admin") == "1"
        since = last_audit_id(stack)
        assert_error(first.admin("PATCH", f"/users/{first.id}", {"is_admin": False, "password": first.password}),
                     409, "last_admin")
        assert is_admin_in_db(stack, first.id) and last_audit_id(stack) == since
        assert first.admin("GET", "/stats").status_code == 200
    finally:
        restore_admins(stack, others)


def test_two_admins_demoting_each_other_at_once_leave_one_admin(people):
    """Two admins, each demoting the other at the same moment: one wins (200), the other is refused (409
    last_admin, or 403 if its own demotion landed first); never both, never an internal error."""
    stack = people.stack
    for round_ in range(5):
        first, second = people.admin(), people.admin()
        others = make_only_admins(stack, first, second)
        try:
            since = last_audit_id(stack)
            results = {}
            barrier = threading.Barrier(2)

            def demote(actor, target):
                barrier.wait()
                results[actor.id] = actor.admin("PATCH", f"/users/{target.id}",
                                                {"is_admin": False, "password": actor.password})

            threads = [threading.Thread(target=demote, args=(first, second)),
                       threading.Thread(target=demote, args=(second, first))]
            [t.start() for t in threads]
            [t.join() for t in threads]
            statuses = sorted(r.status_code for r in results.values())
            detail = [(r.status_code, r.text[:300]) for r in results.values()]
            assert statuses[0] == 200 and statuses[1] in (403, 409), f"round {round_}: {detail}"
            assert stack.psql("SELECT count(*) FROM users WHERE is_admin") == "1", detail
            assert len(audit_since(stack, since)) == 1
        finally:
            restore_admins(stack, others)


# ---- premium and quota -------------------------------------------------------------------------------

def test_premium_is_granted_and_revoked(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    until = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=30)
    since = last_audit_id(stack)
    r = admin.admin("PATCH", f"/users/{user.id}", {"premium_until": iso(until)})
    assert r.status_code == 200, r.text
    assert r.json()["premium"]["active"] is True
    assert_one_audit_row(admin, since, r, "grant_premium", user, {"premium_until": None}, {"premium_until": iso(until)})
    profile = user.profile()
    assert profile["premium"]["active"] is True and parse_time(profile["premium"]["until"]) == until
    assert profile["quota"]["limit"] == PREMIUM_MONTHLY and profile["quota"]["period"] == "month", profile

    since = last_audit_id(stack)
    r = admin.admin("PATCH", f"/users/{user.id}", {"premium_until": None})
    assert r.status_code == 200, r.text
    assert r.json()["premium"] == {"active": False, "until": None}
    assert_one_audit_row(admin, since, r, "revoke_premium", user, {"premium_until": iso(until)}, {"premium_until": None})
    profile = user.profile()
    assert profile["premium"] == {"active": False, "until": None}
    assert profile["quota"]["limit"] == FREE_DAILY and profile["quota"]["period"] == "day", profile

    since = last_audit_id(stack)
    r = admin.admin("PATCH", f"/users/{user.id}", {"premium_until": "soon"})
    assert r.status_code == 400, r.text
    assert last_audit_id(stack) == since and user.profile()["premium"]["active"] is False


@pytest.mark.parametrize("value", ["2031-01-31", "2031-01-31T00:00:00.000Z", "2031-01-31T05:30:00+05:30"])
def test_premium_until_takes_any_iso_8601_form(people, value):
    """`premium_until` as an ISO date (as the CLI's --until takes it), or a timestamp with fractional
    seconds (JavaScript's toISOString()) or an offset, grants premium until 2031-01-31T00:00Z."""
    admin, user = people.admin(), people.user()
    r = admin.admin("PATCH", f"/users/{user.id}", {"premium_until": value})
    assert r.status_code == 200, r.text
    assert parse_time(user.profile()["premium"]["until"]) == datetime.datetime(2031, 1, 31, tzinfo=datetime.timezone.utc)


def test_a_quota_override_replaces_the_limit_until_cleared(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    since = last_audit_id(stack)
    r = admin.admin("PATCH", f"/users/{user.id}", {"quota_override": 3})
    assert r.status_code == 200, r.text
    assert r.json()["quota"]["limit"] == 3
    assert_one_audit_row(admin, since, r, "set_quota_override", user, {"quota_override": None}, {"quota_override": 3})
    assert user.profile()["quota"]["limit"] == 3

    since = last_audit_id(stack)
    r = admin.admin("PATCH", f"/users/{user.id}", {"quota_override": None})
    assert r.status_code == 200, r.text
    assert_one_audit_row(admin, since, r, "set_quota_override", user, {"quota_override": 3}, {"quota_override": None})
    assert user.profile()["quota"]["limit"] == FREE_DAILY

    for bad in (-1, 100_000_001, "3", 2.5):
        since = last_audit_id(stack)
        r = admin.admin("PATCH", f"/users/{user.id}", {"quota_override": bad})
        assert r.status_code == 400, (bad, r.text)
        assert last_audit_id(stack) == since and user.profile()["quota"]["limit"] == FREE_DAILY


# ---- deletion and sessions ---------------------------------------------------------------------------

def test_deleting_a_user_needs_their_email_and_the_admins_password_and_removes_everything(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    other_token = user.second_session()
    made = user.generate("something to be deleted")
    urls = [made["image"]["url"], made["image"]["thumbnail_url"]]
    assert all(requests.get(stack.api(url), timeout=30).status_code == 200 for url in urls)
    path = f"/users/{user.id}"
    since = last_audit_id(stack)
    assert_error(admin.admin("DELETE", path, {"confirm_email": "someone-else@example.test", "password": admin.password}),
                 400, "confirm_email_mismatch")
    assert_error(admin.admin("DELETE", path, {"confirm_email": user.email, "password": "Wrong-Password-123"}),
                 403, "reauthentication_required")
    assert_error(admin.admin("DELETE", path, {"confirm_email": user.email}), 403, "reauthentication_required")
    assert_error(admin.admin("DELETE", path, {"confirm_email": user.email, "password": user.password}),
                 403, "reauthentication_required")
    assert_error(admin.admin("DELETE", f"/users/{admin.id}", {"confirm_email": admin.email, "password": admin.password}),
                 409, "cannot_delete_self")
    assert last_audit_id(stack) == since
    assert stack.psql(f"SELECT count(*) FROM users WHERE id IN ({sql_text(user.id)}, {sql_text(admin.id)})") == "2"
    assert user.session_alive() and user.session_alive(other_token)

    r = admin.admin("DELETE", path, {"confirm_email": user.email, "password": admin.password})
    assert r.status_code == 204, r.text
    uid = sql_text(user.id)
    for table in ("users WHERE id", "images WHERE user_id", "generations WHERE user_id", "api_keys WHERE user_id"):
        assert stack.psql(f"SELECT count(*) FROM {table} = {uid}") == "0", table
    assert not user.session_alive() and not user.session_alive(other_token)
    for url in urls:
        assert requests.get(stack.api(url), timeout=30).status_code == 404, f"{url} outlived its account"
    assert_one_audit_row(admin, since, r, "delete_user", user, {"email": user.email, "is_admin": False}, None)
    assert_error(admin.admin("GET", path), 404, "not_found")


def test_sessions_are_counted_and_revoked(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    other_token = user.second_session()
    r = admin.admin("GET", f"/users/{user.id}/sessions")
    assert r.status_code == 200, r.text
    assert r.json() == {"active_sessions": 2}
    since = last_audit_id(stack)
    r = admin.admin("DELETE", f"/users/{user.id}/sessions")
    assert r.status_code == 204, r.text
    assert not user.session_alive() and not user.session_alive(other_token)
    assert_one_audit_row(admin, since, r, "revoke_sessions", user, {"active_sessions": 2}, {"active_sessions": 0})
    assert admin.admin("GET", f"/users/{user.id}/sessions").json() == {"active_sessions": 0}
    assert admin.session_alive()


# ---- the audit log -----------------------------------------------------------------------------------

def test_the_audit_log_pages_by_cursor_newest_first(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    for n in range(3):
        assert admin.admin("PATCH", f"/users/{user.id}", {"quota_override": n}).status_code == 200
    expected = stack.psql("SELECT id FROM audit_log ORDER BY id DESC").split()
    seen, cursor = [], None
    for _ in range(len(expected) + 2):
        r = admin.admin("GET", "/audit", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"items", "next_cursor"} and len(page["items"]) <= 2
        seen += [str(item["id"]) for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert cursor == seen[-1], "the cursor is the last row's id"
    assert seen == expected
    mine = audit_of(admin, user.id, limit=2)
    assert [item["after"] for item in mine["items"]] == [{"quota_override": 2}, {"quota_override": 1}]
    rest = audit_of(admin, user.id, limit=2, cursor=mine["next_cursor"])
    assert [item["after"] for item in rest["items"]] == [{"quota_override": 0}] and rest["next_cursor"] is None
    assert_error(admin.admin("GET", "/audit", params={"cursor": "abc"}), 400, "invalid_cursor")
    assert_error(admin.admin("GET", "/audit", params={"user_id": "nobody"}), 400, "invalid_filter")


def cli_rows(stack, since, target_id):
    rows = [row for row in audit_since(stack, since)]
    assert all(row["target_user_id"] == target_id for row in rows), rows
    return rows


def assert_cli_row(row, action, email, before, after):
    assert row["action"] == action and row["actor"] == "cli" and row["actor_id"] is None, row
    assert row["target_email"].lower() == email.lower() and row["request_id"] is None, row
    assert_fields(row["before"], before, row)
    assert_fields(row["after"], after, row)


def test_cli_actions_are_audited_with_the_actor_cli(people):
    stack = people.stack
    admin = people.admin()
    email = "cli-" + unique_email()
    since = last_audit_id(stack)
    made = cli(stack, "create-admin", "--email", email, password=strong_password())
    assert made.returncode == 0, made.stderr
    new_id = stack.psql(f"SELECT id FROM users WHERE email = {sql_text(email)}")
    [row] = cli_rows(stack, since, new_id)
    assert_cli_row(row, "create_admin", email, None, {"is_admin": True})
    assert [item["action"] for item in audit_of(admin, new_id)["items"]] == ["create_admin"]

    user = people.user()
    since = last_audit_id(stack)
    done = cli(stack, "grant-premium", "--email", user.email, "--until", "2027-01-31")
    assert done.returncode == 0, done.stderr
    [row] = cli_rows(stack, since, user.id)
    assert_cli_row(row, "grant_premium", user.email, {"premium_until": None}, {"premium_until": "2027-01-31T00:00:00Z"})
    assert parse_time(user.profile()["premium"]["until"]) == datetime.datetime(2027, 1, 31, tzinfo=datetime.timezone.utc)

    since = last_audit_id(stack)
    done = cli(stack, "grant-premium", "--email", user.email, "--until", "none")
    assert done.returncode == 0, done.stderr
    [row] = cli_rows(stack, since, user.id)
    assert_cli_row(row, "revoke_premium", user.email, {"premium_until": "2027-01-31T00:00:00Z"}, {"premium_until": None})

    since = last_audit_id(stack)
    done = cli(stack, "revoke-sessions", "--email", user.email)
    assert done.returncode == 0, done.stderr
    [row] = cli_rows(stack, since, user.id)
    assert_cli_row(row, "revoke_sessions", user.email, {"active_sessions": 1}, {"active_sessions": 0})
    assert not user.session_alive()

    login_again = login(stack, user.http, user.email, user.password)
    assert login_again.status_code == 200, login_again.text
    token = session_token(login_again)
    since = last_audit_id(stack)
    done = cli(stack, "delete-user", "--email", user.email)
    assert done.returncode == 0, done.stderr
    [row] = cli_rows(stack, since, user.id)
    assert_cli_row(row, "delete_user", user.email, {"email": user.email, "is_admin": False}, None)
    assert stack.psql(f"SELECT count(*) FROM users WHERE id = {sql_text(user.id)}") == "0"
    assert not user.session_alive(token)
    assert [item["action"] for item in audit_of(admin, user.id)["items"]] == \
        ["delete_user", "revoke_sessions", "revoke_premium", "grant_premium"]


def test_cli_create_admin_promotes_an_existing_user_with_its_before_state(people):
    stack = people.stack
    user = people.user()
    since = last_audit_id(stack)
    done = cli(stack, "create-admin", "--email", user.email)
    assert done.returncode == 0, done.stderr
    [row] = cli_rows(stack, since, user.id)
    assert_cli_row(row, "promote_admin", user.email, {"is_admin": False}, {"is_admin": True})


@pytest.mark.parametrize("args", [
    ["grant-premium", "--until", "2027-01-31"],
    ["revoke-sessions"],
    ["delete-user"],
], ids=lambda a: a[0])
def test_cli_commands_on_an_unknown_email_fail_with_one_line(admin_stack, args):
    since = last_audit_id(admin_stack)
    done = cli(admin_stack, args[0], "--email", "nobody-" + unique_email(), *args[1:])
    assert done.returncode != 0, done
    lines = done.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), f"stderr: {done.stderr!r}"
    assert last_audit_id(admin_stack) == since


@pytest.mark.parametrize("args", [
    ["delete-user", "--email", "EMAIL", "--force"],
    ["delete-user", "--email"],
    ["delete-user", "EMAIL"],
    ["grant-premium", "--email", "EMAIL"],
    ["revoke-sessions", "--emial", "EMAIL"],
], ids=["unknown-flag", "no-value", "positional", "missing-option", "misspelt-option"])
def test_cli_usage_mistakes_are_refused_with_the_usage_and_change_nothing(people, args):
    """An unknown flag, a missing value or option, or a stray argument is a usage error (status 64, the
    usage on stderr) before anything is done: `delete-user --email E --force` deletes nobody."""
    user = people.user()
    since = last_audit_id(people.stack)
    done = cli(people.stack, *[user.email if a == "EMAIL" else a for a in args])
    assert done.returncode == 64, (done.returncode, done.stdout, done.stderr)
    assert "Usage: atelier" in done.stderr, done.stderr
    assert last_audit_id(people.stack) == since
    assert people.stack.psql(f"SELECT count(*) FROM users WHERE id = {sql_text(user.id)}") == "1"
    assert user.session_alive()


def test_cli_grant_premium_refuses_a_bad_date_with_one_line(people):
    user = people.user()
    done = cli(people.stack, "grant-premium", "--email", user.email, "--until", "next tuesday")
    assert done.returncode != 0
    lines = done.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), f"stderr: {done.stderr!r}"
    assert user.profile()["premium"]["active"] is False


# ---- the numbers -------------------------------------------------------------------------------------

def test_stats_match_the_database(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    user.generate("counted today")
    r = admin.admin("GET", "/stats")
    assert r.status_code == 200, r.text
    stats = r.json()
    users = stats["users"]
    expected = stack.psql("SELECT count(*), count(*) FILTER (WHERE verified), "
                          "count(*) FILTER (WHERE premium_until > now()), count(*) FILTER (WHERE is_admin) FROM users")
    assert [users[k] for k in ("total", "verified", "premium", "admins")] == [int(n) for n in expected.split("|")], users
    assert all(type(users[k]) is int for k in ("total", "verified", "premium", "admins")), users
    today = stats["generations_today"]
    assert isinstance(today, dict) and today.get("succeeded", 0) >= 1, today
    rows = stack.psql("SELECT status, count(*) FROM generations "
                      "WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' GROUP BY status")
    assert today == {s: int(n) for s, n in (line.split("|") for line in rows.splitlines())}, today
    assert all(type(n) is int for n in today.values())


# ---- admin sessions ----------------------------------------------------------------------------------

def test_an_admins_session_idles_out_sooner(people):
    stack = people.stack
    admin, user = people.admin(), people.user()
    assert 0 < session_ttl(stack, admin.token) <= ADMIN_IDLE
    assert admin.admin("GET", "/stats").status_code == 200
    assert 0 < session_ttl(stack, admin.token) <= ADMIN_IDLE
    assert NORMAL_IDLE - 120 <= session_ttl(stack, user.token) <= NORMAL_IDLE
    assert user.profile()
    assert NORMAL_IDLE - 120 <= session_ttl(stack, user.token) <= NORMAL_IDLE


def test_a_promoted_users_session_idles_out_as_an_admins(people):
    """A user promoted while logged in uses the admin API with the session they had: that session's idle
    timeout is the admin one from then on."""
    stack = people.stack
    admin, user = people.admin(), people.user()
    r = admin.admin("PATCH", f"/users/{user.id}", {"is_admin": True, "password": admin.password})
    assert r.status_code == 200, r.text
    assert user.admin("GET", "/stats").status_code == 200
    assert 0 < session_ttl(stack, user.token) <= ADMIN_IDLE


@pytest.mark.parametrize("until", ["2027-13-45", "2027-02-30T00:00:00Z", "0000-01-01", "2027-01-01T24:00:00Z",
                                   "2027-01-01T10:61:00Z"])
def test_impossible_dates_are_refused_and_change_nothing(people, until):
    """A date that does not exist (month 13, 30 February, year 0, hour 24, minute 61) is 400, never
    silently moved to another day or a 500; the user keeps the standing they had."""
    stack = people.stack
    admin, user = people.admin(), people.user()
    before = user_row_snapshot(stack, user.id)
    r = admin.admin("PATCH", f"/users/{user.id}", {"premium_until": until})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("invalid_field", "invalid_date"), r.text
    assert user_row_snapshot(stack, user.id) == before


def test_the_last_admin_cannot_delete_their_own_account(people):
    """DELETE /profile applies the last-admin guard too: the only admin gets 409 last_admin and keeps the
    account; with a second admin the same request deletes it."""
    stack = people.stack
    first = people.admin()
    others = make_only_admins(stack, first)
    try:
        r = first.call("DELETE", "/api/v1/profile", {"password": first.password})
        assert_error(r, 409, "last_admin")
        assert is_admin_in_db(stack, first.id) and first.session_alive()
        second = people.admin()
        r = first.call("DELETE", "/api/v1/profile", {"password": first.password})
        assert r.status_code == 204, r.text
        assert stack.psql(f"SELECT count(*) FROM users WHERE id = {sql_text(first.id)}") == "0"
        assert is_admin_in_db(stack, second.id)
    finally:
        restore_admins(stack, others)
