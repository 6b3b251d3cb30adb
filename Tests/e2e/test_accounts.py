"""Accounts, through nginx: registration with an emailed code, verification, login and sessions, CSRF,
password reset and change, the profile, account deletion, and how the accounts endpoints behave when
Redis or PostgreSQL is down.

Mail goes to the SMTP fake (the session-wide `smtp` fixture in conftest.py). Every test makes its own
accounts with fresh addresses, so none depends on another. Waiting is never used to test time limits:
expiry is moved into the past in PostgreSQL, and the resend cooldown is lifted by deleting its Redis key.
"""
import datetime
import http.client
import json
import os
import re
import secrets
import subprocess
import time
import uuid
from email.utils import parseaddr, parsedate_to_datetime
from urllib.parse import urlparse

import pytest
import requests

from conftest import wait_until
from fakes.smtp import extract_code, find_codes

SESSION_COOKIE = "atelier_session"
SAME_ORIGIN = object()  # `call`'s default Origin: the site's own, as a browser sends it
EVIL_ORIGIN = "https://evil.test"
COMMON_PASSWORDS = ["password1", "12345678", "qwertyuiop"]
INVALID_USERNAMES = ["A!", "ab", "a" * 33, "has space", "ümlaut"]
SENSITIVE_KEYS = {"password", "password_hash", "code", "code_hmac", "token", "session"}
# The 429s the accounts API itself answers. Any other 429 is nginx's per-address request rate limit on
# the auth endpoints, which this suite (every request from 127.0.0.1) can reach; such a request never got
# to a function, so `call` waits and sends it again.
API_429_CODES = {"resend_cooldown", "too_many_codes", "code_locked", "too_many_attempts"}


# ---- helpers -----------------------------------------------------------------------------------------

def unique_email():
    return f"u-{uuid.uuid4().hex}@example.test"


def strong_password():
    return "Correct-Horse-" + uuid.uuid4().hex[:10]


def unique_username():
    return "u" + uuid.uuid4().hex[:12]


def other_code(code):
    """A 6-digit code that is not `code`."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def call(stack, http, method, path, body=None, csrf=None, origin=SAME_ORIGIN, cookie=None, headers=None):
    """One API request. `http` is a requests.Session (a browser with its cookie jar) or None (no cookies).
    State-changing requests carry the site's own Origin unless `origin` says otherwise (None: no Origin);
    `csrf` is sent as X-CSRF-Token; `cookie` sends that session token instead of the jar's."""
    sent = {}
    if method not in ("GET", "HEAD") and origin is not None:
        sent["Origin"] = stack.url if origin is SAME_ORIGIN else origin
    if csrf is not None:
        sent["X-CSRF-Token"] = csrf
    if cookie is not None:
        sent["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    sent.update(headers or {})
    extra = {} if body is None else {"json": body}
    deadline = time.monotonic() + 20
    while True:
        r = (http or requests).request(method, stack.api(path), headers=sent, timeout=30, **extra)
        if not is_edge_rate_limit(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def is_edge_rate_limit(r):
    """Whether a response is nginx's rate-limit refusal rather than an answer of the accounts API."""
    if r.status_code != 429:
        return False
    try:
        return r.json()["error"]["code"] not in API_429_CODES
    except (ValueError, KeyError, TypeError):
        return True


def assert_error(r, status, code):
    """The response is the API's error shape with this status and code, and names its request id."""
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text[:500]}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    error = r.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["request_id"] == r.headers.get("X-Request-Id"), (error, r.headers)
    return error


def without_request_id(r):
    body = r.json()
    body["error"].pop("request_id", None)
    return body


def assert_retry_after(r, low, high):
    value = r.headers.get("Retry-After")
    assert value is not None and value.strip().isdigit(), f"Retry-After should be whole seconds: {value!r}"
    assert low <= int(value) <= high, value
    return int(value)


def set_cookies(r):
    """The response's Set-Cookie headers: name -> (value, {attribute in lower case: value, or True})."""
    cookies = {}
    for header in r.raw.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        parsed = {}
        for attribute in attributes:
            key, eq, attr_value = attribute.partition("=")
            parsed[key.strip().lower()] = attr_value.strip() if eq else True
        cookies[name.strip()] = (value.strip(), parsed)
    return cookies


def session_token(r):
    """The session token a response sets, checking the cookie's attributes (http deployment: no Secure)."""
    cookies = set_cookies(r)
    assert SESSION_COOKIE in cookies, f"no {SESSION_COOKIE} cookie set: {r.raw.headers.getlist('Set-Cookie')}"
    value, attributes = cookies[SESSION_COOKIE]
    assert len(value) >= 20, f"session token too short to be unguessable: {value!r}"
    assert attributes.get("path") == "/", attributes
    assert attributes.get("httponly") is True, attributes
    assert str(attributes.get("samesite", "")).lower() == "lax", attributes
    assert "secure" not in attributes, attributes
    return value


def assert_no_session_cookie(r):
    cookies = set_cookies(r)
    if SESSION_COOKIE in cookies:
        assert is_clearing(cookies[SESSION_COOKIE]), f"a session cookie was set: {cookies[SESSION_COOKIE]}"


def is_clearing(cookie):
    """Whether a Set-Cookie value/attributes pair removes the cookie (Max-Age<=0 or Expires in the past)."""
    value, attributes = cookie
    max_age = attributes.get("max-age")
    if isinstance(max_age, str) and re.fullmatch(r"-?\d+", max_age) and int(max_age) <= 0:
        return True
    expires = attributes.get("expires")
    if isinstance(expires, str):
        try:
            when = parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            return False
        return when.timestamp() < time.time()
    return False


def parse_time(text):
    assert isinstance(text, str), f"expected an ISO 8601 timestamp, got {text!r}"
    when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert when.tzinfo is not None, f"timestamp without a time zone: {text!r}"
    return when


def assert_user(user, email, username=None):
    """The `user` object of the accounts API for a freshly made, verified, non-admin, non-premium user."""
    for key in ("id", "email", "username", "verified", "is_admin", "premium", "created_at"):
        assert key in user, f"user object lacks {key}: {user}"
    assert not SENSITIVE_KEYS & set(user), user
    uuid.UUID(str(user["id"]))
    assert user["email"].lower() == email.lower()
    assert user["verified"] is True
    assert user["is_admin"] is False
    assert user["premium"] == {"active": False, "until": None}
    created = parse_time(user["created_at"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 3600
    if username is not None:
        assert user["username"] == username
    else:
        assert user["username"] is None or isinstance(user["username"], str)


def sql_text(value):
    return "'" + value.replace("'", "''") + "'"


def user_count(stack, email):
    return int(stack.psql(f"SELECT count(*) FROM users WHERE email = {sql_text(email)}"))


def redis_cli(stack, *args):
    url = urlparse(stack.redis_url)
    command = ["redis-cli", "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379)]
    if url.path.strip("/"):
        command += ["-n", url.path.strip("/")]
    return subprocess.run(command + list(args), check=True, capture_output=True, text=True, timeout=10).stdout


def redis_delete(stack, pattern):
    """Deletes every Redis key matching `pattern`; returns how many there were."""
    keys = redis_cli(stack, "--scan", "--pattern", pattern).split()
    if keys:
        redis_cli(stack, "DEL", *keys)
    return len(keys)


def lift_cooldown(stack):
    """Ends every email-code cooldown now, as if 60 seconds had passed (the hourly counters stay)."""
    redis_delete(stack, "otp:cooldown:*")


def register(stack, http, email, password, username=None):
    body = {"email": email, "password": password}
    if username is not None:
        body["username"] = username
    return call(stack, http, "POST", "/api/v1/register", body)


def resend(stack, email):
    return call(stack, None, "POST", "/api/v1/register/resend", {"email": email})


def verify(stack, http, email, code):
    return call(stack, http, "POST", "/api/v1/verify-otp", {"email": email, "code": code})


def login(stack, http, email, password, origin=SAME_ORIGIN):
    return call(stack, http, "POST", "/api/v1/login", {"email": email, "password": password}, origin=origin)


def forgot(stack, email):
    return call(stack, None, "POST", "/api/v1/password/forgot", {"email": email})


def reset(stack, email, code, password):
    return call(stack, None, "POST", "/api/v1/password/reset", {"email": email, "code": code, "password": password})


def get_session(stack, http=None, token=None):
    return call(stack, http, "GET", "/api/v1/session", cookie=token)


def latest_code(smtp, email, count):
    """Waits for the `count`-th mail to `email` and returns the code in its text/plain part."""
    return extract_code(smtp.wait_for(email, count=count)[count - 1])


def mail_count(smtp, email):
    return len(smtp.messages_to(email))


def assert_no_mail(smtp, email, count=0, settle=1.0):
    """No mail beyond the first `count` reaches `email` within `settle` seconds."""
    time.sleep(settle)
    assert mail_count(smtp, email) == count, smtp.messages_to(email)


def register_and_verify(stack, smtp, http, username=None, password=None):
    """A new verified account; `http` holds its session cookie afterwards. Returns (email, password, csrf)."""
    email = unique_email()
    password = password or strong_password()
    r = register(stack, http, email, password, username)
    assert r.status_code == 202, r.text
    code = latest_code(smtp, email, 1)
    r = verify(stack, http, email, code)
    assert r.status_code == 200, r.text
    return email, password, r.json()["csrf_token"]


def login_ok(stack, http, email, password):
    """Logs `http` in; returns (session token, csrf token)."""
    r = login(stack, http, email, password)
    assert r.status_code == 200, r.text
    return session_token(r), r.json()["csrf_token"]


def request_reset_code(stack, smtp, email):
    """Asks for a reset code for an existing account and returns it."""
    lift_cooldown(stack)
    before = mail_count(smtp, email)
    r = forgot(stack, email)
    assert r.status_code == 202, r.text
    return latest_code(smtp, email, before + 1)


def expire_codes(stack, email, purpose):
    stack.psql(f"UPDATE email_codes SET expires_at = now() - interval '1 second' "
               f"WHERE email = {sql_text(email)} AND purpose = {sql_text(purpose)}")


def health_ok(stack):
    try:
        return requests.get(stack.api("/api/v1/health"), timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def browser():
    """Makes more browsers (cookie jars) for a test; each is closed at its end."""
    opened = []

    def new():
        session = requests.Session()
        opened.append(session)
        return session

    yield new
    for session in opened:
        session.close()


# ---- registration ------------------------------------------------------------------------------------

def test_register_sends_a_six_digit_code_that_verifies_the_account(stack, smtp, http):
    """Register answers 202 verification_sent and mails a 6-digit code from MAIL_FROM; the code verifies
    the account, answering the user, a CSRF token and an HttpOnly SameSite=Lax session cookie."""
    email, password, username = unique_email(), strong_password(), unique_username()
    r = register(stack, http, email, password, username)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "verification_sent" and isinstance(body["message"], str) and body["message"]
    assert_no_session_cookie(r)

    [message] = smtp.wait_for(email)
    assert "code" in message.subject.lower(), message.subject
    code = extract_code(message)
    assert re.fullmatch(r"\d{6}", code)
    assert [recipient.lower() for recipient in message.recipients] == [email.lower()]
    assert email.lower() in (message.header("To") or "").lower()
    sender = os.environ.get("MAIL_FROM") or stack.app_env().get("MAIL_FROM")
    assert sender, "MAIL_FROM is not in the environment scripts/test.sh gives the stack"
    assert parseaddr(message.header("From") or "")[1] == parseaddr(sender)[1] == message.mail_from
    assert code not in r.text

    r = verify(stack, http, email, code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_user(body["user"], email, username)
    assert isinstance(body["csrf_token"], str) and len(body["csrf_token"]) >= 16
    token = session_token(r)
    assert code not in r.text
    assert stack.psql(f"SELECT verified FROM users WHERE email = {sql_text(email)}") == "t"

    r = get_session(stack, http)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"].lower() == email.lower()
    assert get_session(stack, token=token).status_code == 200


def test_register_answers_identically_for_new_unverified_and_verified_emails(stack, smtp, http, browser):
    """Register's status and body are the same whether the email is new, registered but unverified, or a
    verified account: registration does not reveal who has an account."""
    new = register(stack, http, unique_email(), strong_password())
    unverified = unique_email()
    assert register(stack, browser(), unverified, strong_password()).status_code == 202
    verified, _, _ = register_and_verify(stack, smtp, browser())

    lift_cooldown(stack)  # the same sending history as the new address: none in the last minute
    again_unverified = register(stack, browser(), unverified, strong_password())
    again_verified = register(stack, browser(), verified, strong_password())

    for r in (new, again_unverified, again_verified):
        assert r.status_code == 202, r.text
        assert r.json() == new.json()
        assert r.json()["status"] == "verification_sent"
        assert_no_session_cookie(r)


def test_registering_a_verified_email_mails_a_notice_without_a_code_and_changes_nothing(stack, smtp, http, browser):
    """A registration attempt for a verified account mails its owner a notice (no code in it) and leaves
    the account as it was: the old password still logs in, the attempted one does not."""
    email, password, _ = register_and_verify(stack, smtp, http)
    hash_before = stack.psql(f"SELECT password_hash FROM users WHERE email = {sql_text(email)}")
    lift_cooldown(stack)
    attempted = strong_password()
    r = register(stack, browser(), email, attempted)
    assert r.status_code == 202, r.text

    notice = smtp.wait_for(email, count=2)[1]
    assert find_codes(notice) == [], f"the notice must not carry a code: {notice.text!r}"
    assert notice.text.strip(), "the notice has no text/plain part"
    assert stack.psql(f"SELECT password_hash FROM users WHERE email = {sql_text(email)}") == hash_before
    assert user_count(stack, email) == 1
    assert_error(login(stack, browser(), email, attempted), 401, "invalid_credentials")
    assert login(stack, browser(), email, password).status_code == 200


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.test", "a b@example.test", "", "a@b@example.test"])
def test_register_rejects_an_invalid_email(stack, http, email):
    """An address that is not an email is 400 invalid_email."""
    assert_error(register(stack, http, email, strong_password()), 400, "invalid_email")


def test_register_rejects_a_password_under_eight_characters(stack, smtp, http):
    """A password shorter than 8 characters is 400 password_too_short, and no account is made."""
    email = unique_email()
    assert_error(register(stack, http, email, "Xq7#vL2"), 400, "password_too_short")
    assert user_count(stack, email) == 0
    assert_no_mail(smtp, email, settle=0.2)


@pytest.mark.parametrize("password", COMMON_PASSWORDS)
def test_register_rejects_a_common_password(stack, http, password):
    """A guessable password (zxcvbn-weak) is 400 password_too_common, and no account is made."""
    email = unique_email()
    assert_error(register(stack, http, email, password), 400, "password_too_common")
    assert user_count(stack, email) == 0


def test_register_rejects_a_password_over_1024_bytes_quickly(stack, http):
    """Passwords over 1024 bytes (bytes, not characters) are 400 password_too_long, answered well under
    a second (no hashing of huge input); exactly 1024 bytes is accepted."""
    for password in ["Zq9-" + secrets.token_hex(1000), secrets.token_hex(512) + "x", "é" * 600]:
        email = unique_email()
        started = time.monotonic()
        r = register(stack, http, email, password)
        elapsed = time.monotonic() - started
        assert_error(r, 400, "password_too_long")
        assert elapsed < 1.0, f"{len(password.encode())}-byte password took {elapsed:.2f}s"
        assert user_count(stack, email) == 0
    email = unique_email()
    r = register(stack, http, email, secrets.token_hex(512))
    assert r.status_code == 202, r.text
    assert user_count(stack, email) == 1


def test_a_one_megabyte_password_is_refused_by_the_body_limit_quickly(stack, http):
    """A 1 MB password never reaches the function: nginx's 64 KiB API body cap answers 413 body_too_large
    in well under a second."""
    started = time.monotonic()
    r = register(stack, http, unique_email(), "a" * (1024 * 1024))
    elapsed = time.monotonic() - started
    assert_error(r, 413, "body_too_large")
    assert elapsed < 1.0, elapsed


@pytest.mark.parametrize("username", INVALID_USERNAMES)
def test_register_rejects_an_invalid_username(stack, http, username):
    """A username outside ^[a-z0-9_.-]{3,32}$ is 400 invalid_username, and no account is made."""
    email = unique_email()
    assert_error(register(stack, http, email, strong_password(), username), 400, "invalid_username")
    assert user_count(stack, email) == 0


def test_codes_are_stored_as_an_hmac_valid_for_ten_minutes(stack, smtp, http):
    """The code row holds an HMAC, never the code, and expires 10 minutes after it was made."""
    email = unique_email()
    assert register(stack, http, email, strong_password()).status_code == 202
    code = latest_code(smtp, email, 1)
    where = f"email = {sql_text(email)} AND purpose = 'verify'"
    row = stack.psql(f"SELECT code_hmac, attempts FROM email_codes WHERE {where}")
    code_hmac, attempts = row.split("|")
    assert code not in code_hmac and len(code_hmac) >= 32, code_hmac
    assert attempts == "0"
    lifetime = float(stack.psql(f"SELECT extract(epoch FROM expires_at - created_at) FROM email_codes WHERE {where}"))
    remaining = float(stack.psql(f"SELECT extract(epoch FROM expires_at - now()) FROM email_codes WHERE {where}"))
    assert 590 <= lifetime <= 610, lifetime
    assert 540 <= remaining <= 601, remaining


# ---- codes: resend, cooldown, hourly cap ------------------------------------------------------------

def test_resend_mails_a_new_code_that_replaces_the_previous_one(stack, smtp, http):
    """Resend answers 202 with register's body and mails a new code; there is one code per email and
    purpose, so the previous code no longer verifies and the new one does."""
    email = unique_email()
    first = register(stack, http, email, strong_password())
    old = latest_code(smtp, email, 1)
    lift_cooldown(stack)
    r = resend(stack, email)
    assert r.status_code == 202, r.text
    assert r.json() == first.json()
    message = smtp.wait_for(email, count=2)[1]
    assert "code" in message.subject.lower(), message.subject
    new = extract_code(message)
    assert stack.psql(f"SELECT count(*) FROM email_codes WHERE email = {sql_text(email)} AND purpose = 'verify'") == "1"
    if new != old:
        assert_error(verify(stack, http, email, old), 400, "invalid_code")
    assert verify(stack, http, email, new).status_code == 200


def test_resend_right_after_register_is_refused_with_retry_after(stack, smtp, http):
    """Register counts as a send: an immediate resend is 429 resend_cooldown with Retry-After 1..60,
    and no second mail goes out."""
    email = unique_email()
    assert register(stack, http, email, strong_password()).status_code == 202
    smtp.wait_for(email)
    r = resend(stack, email)
    assert_error(r, 429, "resend_cooldown")
    assert_retry_after(r, 1, 60)
    assert_no_mail(smtp, email, count=1, settle=0.5)


def test_a_second_resend_within_sixty_seconds_is_refused(stack, smtp, http):
    """After a resend, another within 60 s is 429 resend_cooldown with Retry-After 1..60."""
    email = unique_email()
    assert register(stack, http, email, strong_password()).status_code == 202
    smtp.wait_for(email)
    lift_cooldown(stack)
    assert resend(stack, email).status_code == 202
    smtp.wait_for(email, count=2)
    r = resend(stack, email)
    assert_error(r, 429, "resend_cooldown")
    assert_retry_after(r, 1, 60)
    assert_no_mail(smtp, email, count=2, settle=0.5)


def test_at_most_five_codes_per_hour_per_email(stack, smtp, http):
    """Register plus four resends make five sends; the sixth within the hour is 429 too_many_codes with
    a Retry-After, even with the cooldown over, and no sixth mail goes out."""
    email = unique_email()
    assert register(stack, http, email, strong_password()).status_code == 202
    smtp.wait_for(email)
    for sent in range(2, 6):
        lift_cooldown(stack)
        r = resend(stack, email)
        assert r.status_code == 202, f"send {sent}: {r.text}"
        smtp.wait_for(email, count=sent)
    lift_cooldown(stack)
    r = resend(stack, email)
    assert_error(r, 429, "too_many_codes")
    assert_retry_after(r, 1, 3600)
    assert_no_mail(smtp, email, count=5, settle=0.5)


def test_resend_answers_the_same_for_unknown_and_verified_emails(stack, smtp, http, browser):
    """Resend for an address with no account, or for a verified one, answers 202 with register's body,
    and mails no code to either."""
    reference = register(stack, http, unique_email(), strong_password())
    unknown = unique_email()
    verified, _, _ = register_and_verify(stack, smtp, browser())
    lift_cooldown(stack)
    for email in (unknown, verified):
        r = resend(stack, email)
        assert r.status_code == 202, r.text
        assert r.json() == reference.json()
    time.sleep(1.0)
    assert mail_count(smtp, unknown) == 0
    assert all(find_codes(m) == [] for m in smtp.messages_to(verified)[1:])


# ---- codes: verification ----------------------------------------------------------------------------

def test_a_wrong_code_is_invalid(stack, smtp, http):
    """A wrong code is 400 invalid_code and sets no cookie; the right code still works afterwards."""
    email = unique_email()
    register(stack, http, email, strong_password())
    code = latest_code(smtp, email, 1)
    r = verify(stack, http, email, other_code(code))
    assert_error(r, 400, "invalid_code")
    assert_no_session_cookie(r)
    assert stack.psql(f"SELECT verified FROM users WHERE email = {sql_text(email)}") == "f"
    assert verify(stack, http, email, code).status_code == 200


def test_five_wrong_codes_lock_the_code(stack, smtp, http):
    """Five wrong attempts kill the code: the sixth attempt, even with the right code, is 429
    400 invalid_code like any wrong code (no 429 that only a real account could earn). A new code (resend)
    then verifies."""
    email = unique_email()
    register(stack, http, email, strong_password())
    code = latest_code(smtp, email, 1)
    wrong = other_code(code)
    for attempt in range(5):
        assert_error(verify(stack, http, email, wrong), 400, "invalid_code")
    r = verify(stack, http, email, code)
    assert_error(r, 400, "invalid_code")  # locked, and saying so would tell that the address has an account
    assert_no_session_cookie(r)
    assert stack.psql(f"SELECT verified FROM users WHERE email = {sql_text(email)}") == "f"

    lift_cooldown(stack)
    assert resend(stack, email).status_code == 202
    fresh = latest_code(smtp, email, 2)
    assert verify(stack, http, email, fresh).status_code == 200


def test_a_code_works_once(stack, smtp, http, browser):
    """A used code is 400 invalid_code the second time."""
    email = unique_email()
    register(stack, http, email, strong_password())
    code = latest_code(smtp, email, 1)
    assert verify(stack, http, email, code).status_code == 200
    r = verify(stack, browser(), email, code)
    assert_error(r, 400, "invalid_code")
    assert_no_session_cookie(r)


def test_a_code_is_bound_to_its_email(stack, smtp, http, browser):
    """Another address's code is 400 invalid_code, and so is any code for an address with no account."""
    first, second = unique_email(), unique_email()
    register(stack, http, first, strong_password())
    register(stack, browser(), second, strong_password())
    first_code, second_code = latest_code(smtp, first, 1), latest_code(smtp, second, 1)
    if second_code != first_code:
        assert_error(verify(stack, http, first, second_code), 400, "invalid_code")
    assert_error(verify(stack, http, unique_email(), first_code), 400, "invalid_code")
    assert verify(stack, http, first, first_code).status_code == 200


def test_a_code_is_bound_to_its_purpose(stack, smtp, http, browser):
    """A verification code does not reset a password, and a reset code does not verify an email; each
    still works for its own purpose afterwards."""
    unverified = unique_email()
    register(stack, http, unverified, strong_password())
    verify_code = latest_code(smtp, unverified, 1)
    assert_error(reset(stack, unverified, verify_code, strong_password()), 400, "invalid_code")
    assert verify(stack, http, unverified, verify_code).status_code == 200

    email, password, _ = register_and_verify(stack, smtp, browser())
    reset_code = request_reset_code(stack, smtp, email)
    assert_error(verify(stack, browser(), email, reset_code), 400, "invalid_code")
    assert reset(stack, email, reset_code, strong_password()).status_code == 200


def test_an_expired_code_is_invalid(stack, smtp, http):
    """A code past its 10 minutes is 400 invalid_code and does not verify the account."""
    email = unique_email()
    register(stack, http, email, strong_password())
    code = latest_code(smtp, email, 1)
    expire_codes(stack, email, "verify")
    r = verify(stack, http, email, code)
    assert_error(r, 400, "invalid_code")
    assert_no_session_cookie(r)
    assert stack.psql(f"SELECT verified FROM users WHERE email = {sql_text(email)}") == "f"


def test_a_mail_server_failure_is_not_an_internal_error_and_a_later_send_works(stack, smtp, http):
    """When the mail server refuses the message (451), register still answers 202: mail is sent after the
    response (the answer never depends on the mailbox, so it tells nobody whether an account exists), and
    the failure is logged. Once the mail server is back a new code arrives and verifies the account."""
    email, password = unique_email(), strong_password()
    smtp.fail_next(1)
    try:
        r = register(stack, http, email, password)
        assert r.status_code == 202, r.text
    finally:
        smtp.fail_next(0)
    before = mail_count(smtp, email)
    lift_cooldown(stack)
    assert resend(stack, email).status_code == 202
    smtp.wait_for(email, count=before + 1)
    time.sleep(0.5)
    code = extract_code(smtp.messages_to(email)[-1])
    assert verify(stack, http, email, code).status_code == 200


# ---- login and sessions -----------------------------------------------------------------------------

def test_login_answers_the_user_and_a_new_session(stack, smtp, http, browser):
    """Login answers 200 with the user and a CSRF token and sets a new session cookie; the earlier
    session (from verification) stays valid on its own, with its own CSRF token."""
    email, password, first_csrf = register_and_verify(stack, smtp, http)
    first_token = http.cookies.get(SESSION_COOKIE)
    assert first_token
    other = browser()
    r = login(stack, other, email, password)
    assert r.status_code == 200, r.text
    body = r.json()
    assert_user(body["user"], email)
    assert isinstance(body["csrf_token"], str) and body["csrf_token"] != first_csrf
    token = session_token(r)
    assert token != first_token
    for jar, csrf in ((http, first_csrf), (other, body["csrf_token"])):
        r = get_session(stack, jar)
        assert r.status_code == 200, r.text
        assert r.json()["csrf_token"] == csrf
        assert r.json()["user"]["email"].lower() == email.lower()


def test_login_replaces_a_cookie_set_before_it(stack, smtp, browser):
    """Session fixation: a session cookie the browser had before login (planted, or an earlier session)
    is never the one after; each login issues a new token, the earlier real session stays its own, and a
    made-up token is 401."""
    email, password, _ = register_and_verify(stack, smtp, browser())
    jar = browser()
    planted = "planted-" + secrets.token_urlsafe(24)
    jar.cookies.set(SESSION_COOKIE, planted, domain=urlparse(stack.url).hostname, path="/")
    first, _ = login_ok(stack, jar, email, password)
    assert first != planted
    assert jar.cookies.get(SESSION_COOKIE) == first
    assert_error(get_session(stack, token=planted), 401, "not_authenticated")

    second, second_csrf = login_ok(stack, jar, email, password)
    assert second != first
    assert get_session(stack, token=first).status_code == 200
    r = get_session(stack, token=second)
    assert r.status_code == 200 and r.json()["csrf_token"] == second_csrf
    assert_error(get_session(stack, token=secrets.token_urlsafe(32)), 401, "not_authenticated")


def test_wrong_password_and_unknown_email_answer_identically(stack, smtp, browser):
    """A wrong password and an unknown email are both 401 invalid_credentials with the same body apart
    from the request id, and neither sets a cookie."""
    email, _, _ = register_and_verify(stack, smtp, browser())
    wrong_password = login(stack, browser(), email, strong_password())
    unknown_email = login(stack, browser(), unique_email(), strong_password())
    for r in (wrong_password, unknown_email):
        assert_error(r, 401, "invalid_credentials")
        assert_no_session_cookie(r)
    assert without_request_id(wrong_password) == without_request_id(unknown_email)


def test_an_unverified_account_cannot_log_in(stack, smtp, http, browser):
    """An unverified account with its password is 403 email_not_verified; with a wrong password it is
    the usual 401 invalid_credentials. Neither sets a cookie."""
    email, password = unique_email(), strong_password()
    register(stack, http, email, password)
    smtp.wait_for(email)
    r = login(stack, browser(), email, password)
    assert_error(r, 403, "email_not_verified")
    assert_no_session_cookie(r)
    r = login(stack, browser(), email, strong_password())
    assert_error(r, 401, "invalid_credentials")
    assert_no_session_cookie(r)


def test_ten_failed_logins_lock_the_account_for_a_while(stack, smtp, browser):
    """After 10 failed logins for one account, the next login is 429 too_many_attempts with a
    Retry-After, even with the right password; other accounts still log in. Clearing the counter in
    Redis (login:fail:*) lets the account in again (the per-address counter is cleared too, so the
    rest of the suite, all from 127.0.0.1, starts from zero)."""
    email, password, _ = register_and_verify(stack, smtp, browser())
    other_email, other_password, _ = register_and_verify(stack, smtp, browser())
    try:
        for attempt in range(10):
            assert_error(login(stack, None, email, f"Wrong-Guess-{attempt}-{uuid.uuid4().hex[:6]}"),
                         401, "invalid_credentials")
        r = login(stack, browser(), email, password)
        assert_error(r, 429, "too_many_attempts")
        assert_retry_after(r, 1, 15 * 60)
        assert_no_session_cookie(r)
        assert login(stack, browser(), other_email, other_password).status_code == 200
    finally:
        redis_delete(stack, "login:fail:*")
        redis_delete(stack, "login:ipfail:*")
    assert login(stack, browser(), email, password).status_code == 200


def test_session_answers_the_user_with_a_cookie_and_401_without(stack, smtp, http):
    """GET /session with a valid cookie answers the user and the session's CSRF token; without a cookie,
    or with an unknown or empty token, it is 401 not_authenticated."""
    email, _, csrf = register_and_verify(stack, smtp, http)
    r = get_session(stack, http)
    assert r.status_code == 200, r.text
    assert_user(r.json()["user"], email)
    assert r.json()["csrf_token"] == csrf
    assert_error(get_session(stack), 401, "not_authenticated")
    assert_error(get_session(stack, token=secrets.token_urlsafe(32)), 401, "not_authenticated")
    assert_error(get_session(stack, token=""), 401, "not_authenticated")


def test_logout_ends_the_session_and_the_old_cookie_stays_dead(stack, smtp, http):
    """Logout (with the CSRF token) is 204 and clears the cookie; the session is gone, so replaying the
    old cookie is 401."""
    _, _, csrf = register_and_verify(stack, smtp, http)
    token = http.cookies.get(SESSION_COOKIE)
    r = call(stack, http, "POST", "/api/v1/logout", csrf=csrf)
    assert r.status_code == 204, r.text
    cookies = set_cookies(r)
    assert SESSION_COOKIE in cookies and is_clearing(cookies[SESSION_COOKIE]), cookies
    assert cookies[SESSION_COOKIE][1].get("path") == "/"
    assert_error(get_session(stack, http), 401, "not_authenticated")
    assert_error(get_session(stack, token=token), 401, "not_authenticated")


# ---- CSRF -------------------------------------------------------------------------------------------

def _csrf_cases(stack, smtp, browser):
    """A logged-in browser plus what each CSRF case sends: (name, csrf, origin, extra headers)."""
    jar = browser()
    email, password, csrf = register_and_verify(stack, smtp, jar)
    _, other_csrf = login_ok(stack, browser(), email, password)
    assert other_csrf != csrf
    cases = [
        ("no token", None, SAME_ORIGIN, None),
        ("wrong token", secrets.token_urlsafe(24), SAME_ORIGIN, None),
        ("another session's token", other_csrf, SAME_ORIGIN, None),
        ("foreign Origin with the right token", csrf, EVIL_ORIGIN, None),
        ("cross-site fetch with the right token", csrf, None, {"Sec-Fetch-Site": "cross-site"}),
    ]
    return jar, email, password, csrf, cases


STATE_CHANGING = ["logout", "change username", "change password", "delete account"]


@pytest.mark.parametrize("action", STATE_CHANGING)
def test_state_changing_requests_need_the_sessions_csrf_token_and_our_origin(stack, smtp, browser, action):
    """Every cookie-authenticated POST/PATCH/DELETE without the session's own X-CSRF-Token (missing,
    wrong, another session's) or from another origin is 403 csrf_failed and changes nothing; with the
    token and our Origin it goes through."""
    jar, email, password, csrf, cases = _csrf_cases(stack, smtp, browser)
    new_password, new_username = strong_password(), unique_username()
    # Each with the one success status openapi.yaml documents for it.
    requests_by_action = {
        "logout": ("POST", "/api/v1/logout", None, 204),
        "change username": ("PATCH", "/api/v1/profile", {"username": new_username}, 200),
        "change password": ("POST", "/api/v1/profile/password", {"current": password, "new": new_password}, 200),
        "delete account": ("DELETE", "/api/v1/profile", {"password": password}, 204),
    }
    method, path, body, success = requests_by_action[action]
    for name, token, origin, headers in cases:
        r = call(stack, jar, method, path, body, csrf=token, origin=origin, headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed", f"{name}: {r.status_code} {r.text}"
        assert get_session(stack, jar).status_code == 200, f"{name}: the session changed"
        profile = call(stack, jar, "GET", "/api/v1/profile").json()
        assert profile["username"] != new_username, f"{name}: the username changed"
        assert user_count(stack, email) == 1, f"{name}: the account was deleted"
    assert_error(login(stack, browser(), email, new_password), 401, "invalid_credentials")
    assert login(stack, browser(), email, password).status_code == 200

    r = call(stack, jar, method, path, body, csrf=csrf)
    assert r.status_code == success, f"with the token: {r.status_code} {r.text}"


def test_login_from_another_origin_is_refused(stack, smtp, browser):
    """Login CSRF: a login posted from another site's page (foreign Origin) is 403 csrf_failed and sets
    no cookie."""
    email, password, _ = register_and_verify(stack, smtp, browser())
    r = login(stack, browser(), email, password, origin=EVIL_ORIGIN)
    assert_error(r, 403, "csrf_failed")
    assert_no_session_cookie(r)


def test_get_never_changes_state(stack, smtp, http):
    """GET on a state-changing endpoint is 405 and changes nothing: the session survives GET /logout, and
    GET /password/forgot mails nothing."""
    email, _, _ = register_and_verify(stack, smtp, http)
    r = call(stack, http, "GET", "/api/v1/logout")
    assert_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers.get("Allow", "")
    assert get_session(stack, http).status_code == 200
    lift_cooldown(stack)
    r = call(stack, http, "GET", f"/api/v1/password/forgot?email={email}")
    assert_error(r, 405, "method_not_allowed")
    assert_no_mail(smtp, email, count=1, settle=0.5)


# ---- password reset ---------------------------------------------------------------------------------

def test_forgot_answers_identically_for_known_and_unknown_emails(stack, smtp, http):
    """Forgot is always 202 reset_code_sent with the same body; only an existing account gets a mail,
    with a reset code in it."""
    email, _, _ = register_and_verify(stack, smtp, http)
    lift_cooldown(stack)
    unknown = unique_email()
    known_r, unknown_r = forgot(stack, email), forgot(stack, unknown)
    for r in (known_r, unknown_r):
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "reset_code_sent"
    assert known_r.json() == unknown_r.json()
    code = latest_code(smtp, email, 2)
    assert re.fullmatch(r"\d{6}", code)
    assert code not in known_r.text
    assert_no_mail(smtp, unknown, settle=0.5)


def test_reset_sets_the_new_password_and_ends_every_session(stack, smtp, http, browser):
    """Reset with the emailed code answers 200 password_reset; every session of the user ends (old
    cookies are 401); the new password logs in and the old one does not; the code works once."""
    email, old_password, _ = register_and_verify(stack, smtp, http)
    old_token = http.cookies.get(SESSION_COOKIE)
    second = browser()
    second_token, _ = login_ok(stack, second, email, old_password)
    code = request_reset_code(stack, smtp, email)

    new_password = strong_password()
    r = reset(stack, email, code, new_password)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "password_reset"
    assert code not in r.text
    for jar, token in ((http, old_token), (second, second_token)):
        assert_error(get_session(stack, jar), 401, "not_authenticated")
        assert_error(get_session(stack, token=token), 401, "not_authenticated")
    assert_error(login(stack, browser(), email, old_password), 401, "invalid_credentials")
    assert login(stack, browser(), email, new_password).status_code == 200
    assert_error(reset(stack, email, code, strong_password()), 400, "invalid_code")
    assert login(stack, browser(), email, new_password).status_code == 200


def test_reset_applies_the_password_policy(stack, smtp, http, browser):
    """Reset refuses a short or common new password (400) and leaves the password as it was; a wrong code
    is 400 invalid_code; the real code then still works."""
    email, password, _ = register_and_verify(stack, smtp, http)
    code = request_reset_code(stack, smtp, email)
    assert_error(reset(stack, email, code, "Xq7#vL2"), 400, "password_too_short")
    assert_error(reset(stack, email, code, "password1"), 400, "password_too_common")
    assert_error(reset(stack, email, code, "Zq9-" + secrets.token_hex(1000)), 400, "password_too_long")
    assert_error(reset(stack, email, other_code(code), strong_password()), 400, "invalid_code")
    assert login(stack, browser(), email, password).status_code == 200
    assert reset(stack, email, code, strong_password()).status_code == 200


def test_reset_with_an_expired_or_unknown_code_changes_nothing(stack, smtp, http, browser):
    """An expired reset code is 400 invalid_code and the password stays; so is a reset for an address
    with no account."""
    email, password, _ = register_and_verify(stack, smtp, http)
    code = request_reset_code(stack, smtp, email)
    expire_codes(stack, email, "reset")
    assert_error(reset(stack, email, code, strong_password()), 400, "invalid_code")
    assert login(stack, browser(), email, password).status_code == 200
    assert get_session(stack, http).status_code == 200
    assert_error(reset(stack, unique_email(), code, strong_password()), 400, "invalid_code")


# ---- profile ----------------------------------------------------------------------------------------

def test_profile_shows_the_account_and_its_quota(stack, smtp, http):
    """GET /profile answers the account with premium and quota (used, limit, day|month period, renewal
    in the future); without a session it is 401."""
    username = unique_username()
    email, _, _ = register_and_verify(stack, smtp, http, username=username)
    r = call(stack, http, "GET", "/api/v1/profile")
    assert r.status_code == 200, r.text
    profile = r.json()
    assert_user(profile, email, username)
    quota = profile["quota"]
    assert quota["used"] == 0
    assert isinstance(quota["limit"], int) and quota["limit"] > 0, quota
    assert quota["period"] in ("day", "month"), quota
    assert parse_time(quota["renews_at"]) > datetime.datetime.now(datetime.timezone.utc), quota
    assert_error(call(stack, None, "GET", "/api/v1/profile"), 401, "not_authenticated")


def test_profile_username_can_be_changed(stack, smtp, http):
    """PATCH /profile {username} answers the updated profile, and the change is stored; setting one's own
    current username again is fine."""
    email, _, csrf = register_and_verify(stack, smtp, http)
    username = unique_username()
    r = call(stack, http, "PATCH", "/api/v1/profile", {"username": username}, csrf=csrf)
    assert r.status_code == 200, r.text
    assert_user(r.json(), email, username)
    assert "quota" in r.json()
    assert call(stack, http, "GET", "/api/v1/profile").json()["username"] == username
    assert call(stack, http, "PATCH", "/api/v1/profile", {"username": username}, csrf=csrf).status_code == 200


@pytest.mark.parametrize("username", INVALID_USERNAMES)
def test_profile_rejects_an_invalid_username(stack, smtp, http, username):
    """PATCH /profile with a username outside ^[a-z0-9_.-]{3,32}$ is 400 invalid_username; the old one stays."""
    current = unique_username()
    _, _, csrf = register_and_verify(stack, smtp, http, username=current)
    r = call(stack, http, "PATCH", "/api/v1/profile", {"username": username}, csrf=csrf)
    assert_error(r, 400, "invalid_username")
    assert call(stack, http, "GET", "/api/v1/profile").json()["username"] == current


def test_profile_refuses_a_username_another_user_has(stack, smtp, http, browser):
    """A username another user has is 409 username_taken, compared case-insensitively."""
    taken = unique_username()
    register_and_verify(stack, smtp, browser(), username=taken)
    _, _, csrf = register_and_verify(stack, smtp, http)
    for attempt in (taken, taken.upper()):
        r = call(stack, http, "PATCH", "/api/v1/profile", {"username": attempt}, csrf=csrf)
        assert_error(r, 409, "username_taken")
    assert (call(stack, http, "GET", "/api/v1/profile").json()["username"] or "").lower() != taken


def test_password_change_keeps_this_session_and_ends_the_others(stack, smtp, http, browser):
    """POST /profile/password: a wrong current password is 403 invalid_credentials and changes nothing;
    the new password follows the policy; a good change answers password_changed, keeps this browser
    logged in, ends the user's other sessions, and only the new password logs in."""
    email, password, csrf = register_and_verify(stack, smtp, http)
    other = browser()
    other_token, _ = login_ok(stack, other, email, password)
    path = "/api/v1/profile/password"

    r = call(stack, http, "POST", path, {"current": strong_password(), "new": strong_password()}, csrf=csrf)
    assert_error(r, 403, "invalid_credentials")
    assert get_session(stack, other).status_code == 200
    assert_error(call(stack, http, "POST", path, {"current": password, "new": "Xq7#vL2"}, csrf=csrf),
                 400, "password_too_short")
    assert_error(call(stack, http, "POST", path, {"current": password, "new": "qwertyuiop"}, csrf=csrf),
                 400, "password_too_common")
    assert login(stack, browser(), email, password).status_code == 200

    new_password = strong_password()
    r = call(stack, http, "POST", path, {"current": password, "new": new_password}, csrf=csrf)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "password_changed"}
    assert get_session(stack, http).status_code == 200
    assert_error(get_session(stack, other), 401, "not_authenticated")
    assert_error(get_session(stack, token=other_token), 401, "not_authenticated")
    assert_error(login(stack, browser(), email, password), 401, "invalid_credentials")
    assert login(stack, browser(), email, new_password).status_code == 200


def test_deleting_the_account_removes_it_and_its_sessions(stack, smtp, http, browser):
    """DELETE /profile needs the password (a wrong one is 403 invalid_credentials and deletes nothing);
    with it the answer is 204, every session ends, login fails, and the users row is gone."""
    email, password, csrf = register_and_verify(stack, smtp, http)
    token = http.cookies.get(SESSION_COOKIE)
    other = browser()
    login_ok(stack, other, email, password)

    r = call(stack, http, "DELETE", "/api/v1/profile", {"password": strong_password()}, csrf=csrf)
    assert_error(r, 403, "invalid_credentials")
    assert user_count(stack, email) == 1
    assert get_session(stack, http).status_code == 200

    r = call(stack, http, "DELETE", "/api/v1/profile", {"password": password}, csrf=csrf)
    assert r.status_code == 204, r.text
    assert_error(get_session(stack, http), 401, "not_authenticated")
    assert_error(get_session(stack, token=token), 401, "not_authenticated")
    assert_error(get_session(stack, other), 401, "not_authenticated")
    assert_error(login(stack, browser(), email, password), 401, "invalid_credentials")
    assert user_count(stack, email) == 0


# ---- secrets at rest and in logs ----------------------------------------------------------------------

def test_passwords_are_stored_as_salted_argon2id(stack, smtp, http):
    """The stored hash is argon2id v19 with m >= 19456 KiB and t >= 2, salted (two accounts with one
    password have different hashes), and does not contain the password."""
    password = strong_password()
    hashes = []
    for _ in range(2):
        email = unique_email()
        assert register(stack, http, email, password).status_code == 202
        hashes.append(stack.psql(f"SELECT password_hash FROM users WHERE email = {sql_text(email)}"))
    for stored in hashes:
        match = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+", stored)
        assert match, stored
        memory, iterations, parallelism = map(int, match.groups())
        assert memory >= 19456 and iterations >= 2 and parallelism >= 1, stored
        assert password not in stored
    assert hashes[0] != hashes[1]


def _log_sizes(stack):
    sizes = {}
    for directory, _, files in os.walk(os.path.join(stack.run_dir, "logs")):
        for name in files:
            path = os.path.join(directory, name)
            sizes[path] = os.path.getsize(path)
    return sizes


def _logs_since(stack, sizes):
    """What every file under $RUN_DIR/logs gained since `sizes` was taken: path -> bytes."""
    written = {}
    for path, size in _log_sizes(stack).items():
        start = sizes.get(path, 0)
        if size < start:
            start = 0  # rotated or truncated
        with open(path, "rb") as f:
            f.seek(start)
            written[path] = f.read()
    return written


def test_codes_and_passwords_never_reach_responses_or_logs(stack, smtp, http, browser):
    """Through register, verify, a failed login, login, forgot, reset and a password change, no response
    carries a mailed code, and nothing written to $RUN_DIR/logs carries a code or a password."""
    sizes = _log_sizes(stack)
    email, first, wrong, second, third = unique_email(), strong_password(), strong_password(), strong_password(), strong_password()
    responses = [register(stack, http, email, first, unique_username())]
    codes = [latest_code(smtp, email, 1)]
    responses.append(verify(stack, http, email, other_code(codes[0])))
    responses.append(verify(stack, http, email, codes[0]))
    assert responses[-1].status_code == 200
    responses.append(login(stack, browser(), email, wrong))
    assert responses[-1].status_code == 401
    jar = browser()
    responses.append(login(stack, jar, email, first))
    lift_cooldown(stack)
    responses.append(forgot(stack, email))
    codes.append(latest_code(smtp, email, 2))
    responses.append(reset(stack, email, codes[1], second))
    assert responses[-1].status_code == 200
    responses.append(login(stack, jar, email, second))
    csrf = responses[-1].json()["csrf_token"]
    responses.append(call(stack, jar, "POST", "/api/v1/profile/password", {"current": second, "new": third}, csrf=csrf))
    assert responses[-1].status_code == 200
    responses.append(call(stack, jar, "GET", "/api/v1/profile"))
    responses.append(get_session(stack, jar))

    for r in responses:
        for code in codes:
            assert code not in r.text, f"{r.request.method} {r.request.path_url} answered the code {code}"
        for password in (first, wrong, second, third):
            assert password not in r.text, f"{r.request.method} {r.request.path_url} answered a password"

    time.sleep(0.5)
    written = _logs_since(stack, sizes)
    assert any(b"verify-otp" in data for data in written.values()), "the flows above left no trace in the logs"
    for path, data in written.items():
        for code in codes:
            assert not re.search(rb"(?<![\d.])" + code.encode() + rb"(?!\d)", data), f"code {code} logged in {path}"
        for password in (first, wrong, second, third):
            assert password.encode() not in data, f"a password was logged in {path}"


# ---- dependencies down --------------------------------------------------------------------------------

def assert_clean_503(r, code):
    assert_error(r, 503, code)
    assert_no_session_cookie(r)
    for leak in ("traceback", ".swift", "fatal error", "libpq", "hiredis", "econnrefused", "connection refused"):
        assert leak not in r.text.lower(), r.text


def test_login_with_redis_down_is_503_redis_unavailable(stack, smtp, browser):
    """With Redis stopped, a login with valid credentials is 503 redis_unavailable (not 200, not a 500),
    without internals in the body; once Redis is back the same login works."""
    email, password, _ = register_and_verify(stack, smtp, browser())
    stack.stack("redis-stop")
    try:
        assert_clean_503(login(stack, browser(), email, password), "redis_unavailable")
    finally:
        stack.stack("redis-start")
        assert wait_until(lambda: health_ok(stack), timeout=20)
    assert login(stack, browser(), email, password).status_code == 200


def test_login_with_postgres_down_is_503_database_unavailable(stack, smtp, browser):
    """With PostgreSQL stopped, a login with valid credentials is 503 database_unavailable (not 200, not a
    500), without internals in the body; once PostgreSQL is back the same login works."""
    email, password, _ = register_and_verify(stack, smtp, browser())
    stack.stack("pg-stop")
    try:
        assert_clean_503(login(stack, browser(), email, password), "database_unavailable")
    finally:
        stack.stack("pg-start")
        assert wait_until(lambda: health_ok(stack), timeout=30)
    assert login(stack, browser(), email, password).status_code == 200


# ---- sign-up takeover and enumeration (attack findings) ---------------------------------------------

def test_a_second_sign_up_of_a_pending_address_cannot_take_it_over(stack, smtp, http, browser):
    """Someone signs up an address that waits for its code with their own password: nothing on the account
    changes. The owner's own code still verifies it, with the owner's password and username; the other
    password never logs in. The second sign-up's code is mailed to the owner with a warning."""
    email, owner_password, owner_name = unique_email(), strong_password(), unique_username()
    assert register(stack, http, email, owner_password, owner_name).status_code == 202
    owner_code = latest_code(smtp, email, 1)
    hash_before = stack.psql(f"SELECT password_hash FROM users WHERE email = {sql_text(email)}")

    lift_cooldown(stack)  # the attacker waits out the minute, as in the report
    attacker_password = strong_password()
    r = register(stack, browser(), email, attacker_password, unique_username())
    assert r.status_code == 202, r.text
    second = smtp.wait_for(email, count=2)[1]
    assert "signed up again" in second.text, second.text
    assert stack.psql(f"SELECT password_hash FROM users WHERE email = {sql_text(email)}") == hash_before

    r = verify(stack, http, email, owner_code)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["username"] == owner_name
    assert_error(login(stack, browser(), email, attacker_password), 401, "invalid_credentials")
    assert login(stack, browser(), email, owner_password).status_code == 200
    # The other sign-up's code died with the verification.
    assert_error(verify(stack, browser(), email, extract_code(second)), 400, "invalid_code")


def test_the_code_entered_decides_which_sign_up_the_account_takes(stack, smtp, http, browser):
    """Two sign-ups of one pending address: entering the second one's code gives the account the second
    one's password (the code proved the mailbox); the first password does not log in."""
    email, first_password, second_password = unique_email(), strong_password(), strong_password()
    assert register(stack, http, email, first_password).status_code == 202
    smtp.wait_for(email, count=1)
    lift_cooldown(stack)
    assert register(stack, browser(), email, second_password).status_code == 202
    second_code = latest_code(smtp, email, 2)
    assert verify(stack, http, email, second_code).status_code == 200
    assert login(stack, browser(), email, second_password).status_code == 200
    assert_error(login(stack, browser(), email, first_password), 401, "invalid_credentials")


def test_a_taken_username_is_refused_alike_for_new_and_registered_addresses(stack, smtp, http, browser):
    """Sign-up with a username another account holds is 409 username_taken whether the address is new,
    pending or verified: the answer does not tell which addresses have accounts."""
    taken = unique_username()
    register_and_verify(stack, smtp, browser(), username=taken)
    verified, _, _ = register_and_verify(stack, smtp, browser())
    pending = unique_email()
    assert register(stack, browser(), pending, strong_password()).status_code == 202
    lift_cooldown(stack)
    answers = [register(stack, browser(), address, strong_password(), taken)
               for address in (unique_email(), pending, verified)]
    bodies = []
    for r in answers:
        assert_error(r, 409, "username_taken")
        bodies.append(without_request_id(r))
    assert bodies[0] == bodies[1] == bodies[2]


def test_signing_up_again_within_the_minute_answers_202_and_sends_nothing(stack, smtp, http, browser):
    """A sign-up for an address that got a code less than a minute ago answers the same 202 as any other
    (no 429 that would tell that the address is in use) and sends nothing; the first code still works."""
    email, password = unique_email(), strong_password()
    first = register(stack, http, email, password)
    assert first.status_code == 202, first.text
    code = latest_code(smtp, email, 1)
    again = register(stack, browser(), email, strong_password())
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert_no_mail(smtp, email, count=1, settle=0.5)
    assert verify(stack, http, email, code).status_code == 200
    assert login(stack, browser(), email, password).status_code == 200


def test_a_password_reset_revokes_the_accounts_api_keys(stack, smtp, http, browser):
    """Recovering an account by emailed code ends its sessions and revokes its API keys (whoever held the
    old password may have made them); the reset mail says so."""
    email, _, csrf = register_and_verify(stack, smtp, http)
    r = call(stack, http, "POST", "/api/v1/keys", {"name": "before the reset"}, csrf=csrf)
    assert r.status_code == 201, r.text
    key = r.json()["secret"]
    bearer = {"Authorization": f"Bearer {key}"}
    assert call(stack, None, "GET", "/api/v1/usage", headers=bearer).status_code == 200

    code = request_reset_code(stack, smtp, email)
    assert "API keys" in smtp.messages_to(email)[-1].text
    new_password = strong_password()
    assert reset(stack, email, code, new_password).status_code == 200
    assert_error(call(stack, None, "GET", "/api/v1/usage", headers=bearer), 401, "invalid_api_key")
    fresh = browser()
    login_ok(stack, fresh, email, new_password)
    keys = call(stack, fresh, "GET", "/api/v1/keys").json()["items"]
    assert [k["revoked"] for k in keys] == [True], keys


def test_the_answer_never_waits_for_the_mail_server(stack, smtp, http):
    """Sign-up and "forgot password" answer before their mail is handed to the SMTP server, so their
    timing cannot tell an address that gets mail from one that does not: with the mail server holding
    every message, both answer 202 while the message still waits, and the mail arrives once released."""
    email, _, _ = register_and_verify(stack, smtp, http)
    lift_cooldown(stack)
    before = mail_count(smtp, email)
    fresh = unique_email()
    smtp.hold()
    try:
        r = call(stack, None, "POST", "/api/v1/password/forgot", {"email": email})
        assert r.status_code == 202, r.text
        s = register(stack, None, fresh, strong_password())
        assert s.status_code == 202, s.text
        # Both answers came back while their messages were still being held by the mail server.
        assert wait_until(lambda: smtp.held() == 2, timeout=10), smtp.held()
        assert mail_count(smtp, email) == before and mail_count(smtp, fresh) == 0
    finally:
        smtp.release()
    smtp.wait_for(email, count=before + 1)
    smtp.wait_for(fresh, count=1)


def login_from(stack, address, email, password):
    """POST /api/v1/login from another loopback address: (status, error code)."""
    return post_from(stack, address, "/api/v1/login", {"email": email, "password": password})


def test_failed_logins_from_one_address_do_not_lock_the_owner_out_elsewhere(stack, smtp, browser):
    """Ten wrong passwords from one address lock the account for that address only (429 there, even with
    the right password); the owner, from another address, logs in with the right password."""
    email, password, _ = register_and_verify(stack, smtp, browser())
    try:
        for attempt in range(10):
            assert login_from(stack, "127.0.0.3", email, f"Wrong-Guess-{attempt}-{uuid.uuid4().hex[:6]}") == \
                (401, "invalid_credentials")
        assert login_from(stack, "127.0.0.3", email, password) == (429, "too_many_attempts")
        assert login_from(stack, "127.0.0.4", email, password) == (200, None)
    finally:
        redis_delete(stack, "login:fail:*")
        redis_delete(stack, "login:ipfail:*")


def test_a_locked_or_expired_code_answers_like_an_address_with_no_account(stack, smtp, http):
    """Reset codes of a real account, wrong five times, expired, or right after the lock, answer exactly
    what codes for an address with no account answer: 400 invalid_code with the same message."""
    email, _, _ = register_and_verify(stack, smtp, http)
    code = request_reset_code(stack, smtp, email)
    nobody = unique_email()
    answers = []
    for attempt in range(6):
        answers.append(reset(stack, email, other_code(code), strong_password()))
        answers.append(reset(stack, nobody, other_code(code), strong_password()))
    answers.append(reset(stack, email, code, strong_password()))  # the right code, locked
    fresh = request_reset_code(stack, smtp, email)
    expire_codes(stack, email, "reset")
    answers.append(reset(stack, email, fresh, strong_password()))
    bodies = set()
    for r in answers:
        assert_error(r, 400, "invalid_code")
        bodies.add(json.dumps(without_request_id(r), sort_keys=True))
    assert len(bodies) == 1, bodies


def test_wrong_codes_from_one_address_across_accounts_are_capped(stack, smtp, http):
    """One client address has a ceiling of wrong codes across every account; past it, codes from that
    address are 429 too_many_attempts (even a right one), while the owner elsewhere still verifies."""
    limit = int(stack.app_env().get("CODE_GUESSES_PER_ADDRESS_PER_HOUR") or 50)
    email = unique_email()
    assert register(stack, http, email, strong_password()).status_code == 202
    code = latest_code(smtp, email, 1)
    address = "127.0.0.5"
    redis_cli(stack, "SET", f"otp:ipfail:{address}", str(limit - 1), "EX", "3600")  # as if limit-1 guesses were made
    try:
        status, error = verify_from(stack, address, unique_email(), other_code(code))
        assert (status, error) == (400, "invalid_code")
        assert verify_from(stack, address, email, code) == (429, "too_many_attempts")
        assert verify_from(stack, "127.0.0.6", email, code) == (200, None)
    finally:
        redis_delete(stack, "otp:ipfail:*")


def verify_from(stack, address, email, code):
    """POST /api/v1/verify-otp from another loopback address: (status, error code)."""
    return post_from(stack, address, "/api/v1/verify-otp", {"email": email, "code": code})


def post_from(stack, address, path, body):
    """A JSON POST from another loopback address (nginx's $remote_addr): (status, error code)."""
    url = urlparse(stack.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(address, 0))
    try:
        connection.request("POST", path, body=json.dumps(body),
                           headers={"Content-Type": "application/json", "Origin": stack.url})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    return response.status, (json.loads(answer)["error"]["code"] if response.status >= 400 else None)


def test_someone_else_using_up_an_addresss_codes_does_not_lock_its_owner_out(stack, smtp, http):
    """One client asking for an address's codes until it is refused (429 too_many_codes) uses up only its
    own share: the owner, from another address, still gets a code at once."""
    email = unique_email()
    assert post_from(stack, "127.0.0.7", "/api/v1/register", {"email": email, "password": strong_password()}) == (202, None)
    smtp.wait_for(email, count=1)
    for sent in range(2, 6):
        lift_cooldown(stack)
        assert post_from(stack, "127.0.0.7", "/api/v1/register/resend", {"email": email}) == (202, None)
        smtp.wait_for(email, count=sent)
    lift_cooldown(stack)
    assert post_from(stack, "127.0.0.7", "/api/v1/register/resend", {"email": email}) == (429, "too_many_codes")
    assert post_from(stack, "127.0.0.8", "/api/v1/register/resend", {"email": email}) == (202, None)
    code = latest_code(smtp, email, 6)
    assert verify(stack, http, email, code).status_code == 200


def test_wrong_password_confirmations_count_like_failed_logins(stack, smtp, http, browser):
    """Re-confirming the password (delete account, change password) is no way around the login throttle:
    ten wrong ones lock the account for that address (429 too_many_attempts, even with the right password,
    nothing deleted), and the login from that address is locked too."""
    email, password, csrf = register_and_verify(stack, smtp, http)
    try:
        for _ in range(10):
            r = call(stack, http, "DELETE", "/api/v1/profile", {"password": strong_password()}, csrf=csrf)
            assert_error(r, 403, "invalid_credentials")
        r = call(stack, http, "DELETE", "/api/v1/profile", {"password": password}, csrf=csrf)
        assert_error(r, 429, "too_many_attempts")
        assert user_count(stack, email) == 1
        assert_error(login(stack, browser(), email, password), 429, "too_many_attempts")
    finally:
        redis_delete(stack, "login:fail:*")
        redis_delete(stack, "login:ipfail:*")
    assert call(stack, http, "DELETE", "/api/v1/profile", {"password": password}, csrf=csrf).status_code == 204


def login_from_with_wait(stack, address, email, password):
    """POST /api/v1/login from another loopback address: (status, error code, Retry-After or None)."""
    url = urlparse(stack.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(address, 0))
    try:
        connection.request("POST", "/api/v1/login", body=json.dumps({"email": email, "password": password}),
                           headers={"Content-Type": "application/json", "Origin": stack.url})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    code = json.loads(answer)["error"]["code"] if response.status >= 400 else None
    wait = response.getheader("Retry-After")
    return response.status, code, int(wait) if wait else None


def test_past_the_account_ceiling_each_failure_doubles_a_short_block_instead_of_a_lockout(stack, smtp, browser):
    """100 wrong passwords for one account spread over many addresses (none reaching its own limit of 10)
    do not lock the account for the rest of a 15-minute window (the lockout an attacker could hand the
    owner): they block it for 1 s, the next failure for 2 s, then 4 s … (each must wait for the block to
    end). A block nobody feeds ends, and the owner logs in from anywhere with the right password."""
    email, password, _ = register_and_verify(stack, smtp, browser())
    wrong = lambda: f"Wrong-Guess-{uuid.uuid4().hex[:10]}"
    try:
        addresses = [f"127.0.4.{n}" for n in range(1, 13)]
        failures = 0
        for address in addresses:
            for _ in range(9):
                if failures == 100:
                    break
                assert login_from_with_wait(stack, address, email, wrong())[:2] == (401, "invalid_credentials")
                failures += 1
        assert failures == 100
        status, code, wait = login_from_with_wait(stack, "127.0.4.20", email, password)
        assert (status, code) == (429, "too_many_attempts")
        assert wait == 1, f"Retry-After {wait}: the ceiling should block for a second, not lock the account"
        for expected in (2, 4):
            time.sleep(wait + 0.2)
            assert login_from_with_wait(stack, "127.0.4.21", email, wrong())[:2] == (401, "invalid_credentials")
            status, code, wait = login_from_with_wait(stack, "127.0.4.22", email, password)
            assert (status, code, wait) == (429, "too_many_attempts", expected)
        time.sleep(wait + 0.2)
        assert login_from_with_wait(stack, "127.0.4.23", email, password)[:2] == (200, None)
    finally:
        redis_delete(stack, "login:*")
