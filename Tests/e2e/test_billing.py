"""Premium through Razorpay, black-box: plans, subscribing with Checkout, verifying Checkout's signature,
signed webhooks (tampering, redelivery, out-of-order delivery, the database down), billing periods and
the quota, cancelling, halting, expiry after the grace period and the renew-cron (its lock and its
reconciliation of subscriptions whose webhooks never came).

Everything but two tests runs on `billing_stack` (conftest.py): a stack of its own whose functions talk
to the Razorpay fake in fakes/razorpay.py, with one hour of grace after a period end
(PREMIUM_GRACE_SECONDS=3600) and reconciliation of stale subscriptions at once
(RAZORPAY_RECONCILE_AFTER_SECONDS=0). The fake never moves a subscription by itself: each test moves it
(authenticate / activate / charge / set_status), gets the webhook Razorpay would send, and delivers it
through nginx when it means to. Time is never waited for: periods are set in the past or future.
"""
import base64
import datetime
import hashlib
import json
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import wait_until
from fakes.razorpay import checkout_signature, new_id, webhook_signature
from test_accounts import assert_error, call, health_ok, register_and_verify, sql_text

DAY = 86_400
GRACE = 3600
WEBHOOK_DEADLINE = 5.0  # Razorpay counts a slower answer as a timeout and sends the event again


# ---- helpers -----------------------------------------------------------------------------------------

class Subscriber:
    """A verified user of one stack with a logged-in browser (`http`) and its CSRF token."""

    def __init__(self, stack, http, email, csrf):
        self.stack, self.http, self.email, self.csrf = stack, http, email, csrf
        r = self.call("GET", "/api/v1/profile")
        assert r.status_code == 200, r.text
        self.user_id = r.json()["id"]
        self.subscription_id = None

    def call(self, method, path, body=None, **options):
        if method not in ("GET", "HEAD"):
            options.setdefault("csrf", self.csrf)
        return call(self.stack, self.http, method, path, body, **options)

    def subscribe(self, **options):
        return self.call("POST", "/api/v1/subscription", {}, **options)

    def verify(self, payment_id, subscription_id, signature):
        return self.call("POST", "/api/v1/subscription/verify", {
            "razorpay_payment_id": payment_id, "razorpay_subscription_id": subscription_id,
            "razorpay_signature": signature})

    def profile(self):
        r = self.call("GET", "/api/v1/profile")
        assert r.status_code == 200, r.text
        return r.json()

    def premium_until(self):
        return epoch(self.stack, f"SELECT premium_until FROM users WHERE id = {sql_text(self.user_id)}")

    def quota(self):
        """(quota_used, quota_period_start as epoch seconds) from the database."""
        used = int(self.stack.psql(f"SELECT quota_used FROM users WHERE id = {sql_text(self.user_id)}"))
        return used, epoch(self.stack, f"SELECT quota_period_start FROM users WHERE id = {sql_text(self.user_id)}")

    def set_quota_used(self, used):
        self.stack.psql(f"UPDATE users SET quota_used = {int(used)} WHERE id = {sql_text(self.user_id)}")

    def row(self):
        """Our subscriptions row for the current subscription: status, period (epoch) and flags."""
        out = self.stack.psql(
            "SELECT row_to_json(s)::text FROM (SELECT status, extract(epoch FROM current_start)::bigint AS current_start, "
            "extract(epoch FROM current_end)::bigint AS current_end, cancel_at_cycle_end FROM subscriptions "
            f"WHERE razorpay_subscription_id = {sql_text(self.subscription_id)}) s")
        return json.loads(out) if out else None

    def payments(self):
        return int(self.stack.psql(f"SELECT count(*) FROM payments WHERE user_id = {sql_text(self.user_id)}"))

    def snapshot(self):
        """Everything billing may change for this user, updated_at included (any write shows)."""
        uid = sql_text(self.user_id)
        return self.stack.psql(f"""
            SELECT json_build_object(
              'user', (SELECT row_to_json(u) FROM (SELECT premium_until, quota_used, quota_period_start, quota_override,
                                                          updated_at FROM users WHERE id = {uid}) u),
              'subscriptions', (SELECT json_agg(s ORDER BY s.created_at) FROM subscriptions s WHERE s.user_id = {uid}),
              'payments', (SELECT json_agg(p ORDER BY p.created_at) FROM payments p WHERE p.user_id = {uid}))::text""")


def epoch(stack, sql):
    """The one timestamp `sql` selects as whole Unix seconds, or None."""
    out = stack.psql(f"SELECT extract(epoch FROM ({sql}))")
    return round(float(out)) if out else None


def new_subscriber(stack, smtp):
    http = requests.Session()
    email, _, csrf = register_and_verify(stack, smtp, http)
    subscriber = Subscriber(stack, http, email, csrf)
    # An account made a while ago (its free daily period started before any period a test sets).
    stack.psql(f"UPDATE users SET quota_period_start = now() - interval '60 days' WHERE id = {sql_text(subscriber.user_id)}")
    return subscriber


def subscribed(stack, smtp):
    """A new user who started Checkout: our subscription is `created`."""
    subscriber = new_subscriber(stack, smtp)
    r = subscriber.subscribe()
    assert r.status_code == 201, r.text
    subscriber.subscription_id = r.json()["subscription_id"]
    return subscriber


def deliver(stack, event, **options):
    """Delivers one webhook through nginx and checks it was answered within Razorpay's 5 seconds."""
    delivery = stack.fake.deliver(event, stack.url, **options)
    assert delivery.elapsed < WEBHOOK_DEADLINE, f"{event.name} took {delivery.elapsed:.2f}s: {delivery}"
    return delivery


def deliver_ok(stack, event, **options):
    delivery = deliver(stack, event, **options)
    assert 200 <= delivery.status < 300, f"{event.name}: {delivery}"
    return delivery


def live(stack, smtp, razorpay, start=None, end=None, payment_id=None):
    """A subscriber charged for the period [start, end) (default: started a minute ago, 30 days long) by a
    delivered subscription.charged. Returns (subscriber, start, end, the charged event)."""
    subscriber = subscribed(stack, smtp)
    now = int(time.time())
    start = now - 60 if start is None else start
    end = start + 30 * DAY if end is None else end
    event = razorpay.charge(subscriber.subscription_id, payment_id or new_id("pay"), 49900, start, end)
    deliver_ok(stack, event)
    return subscriber, start, end, event


def renew(stack):
    done = stack.renew_cron()
    assert done.returncode == 0, f"renew-cron exited {done.returncode}: {done.stdout}\n{done.stderr[-2000:]}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("renew:")]
    assert len(lines) == 1, f"renew-cron should print one `renew:` line: {done.stdout!r}"
    return lines[0]


def renew_counts(line):
    """`renew: a=1 b=2` -> {"a": 1, "b": 2}."""
    return {k: int(v) for k, v in (part.split("=", 1) for part in line.split()[1:])}


def wait_healthy(stack, timeout=60):
    assert wait_until(lambda: health_ok(stack), timeout=timeout, interval=0.5), "the stack did not become healthy"


@pytest.fixture
def rz(billing_stack, razorpay, smtp):
    """(stack, fake, smtp) for the billing tests."""
    return billing_stack, razorpay, smtp


# ---- signatures: Razorpay's published vectors ----------------------------------------------------------

def test_the_fakes_signatures_match_razorpays_published_test_vectors():
    """Checkout's subscription signature (payment_id|subscription_id, key secret) and the webhook signature
    (raw body, webhook secret) as Razorpay's SDK tests publish them."""
    assert checkout_signature("pay_IDZNwZZFtnjyym", "sub_ID6MOhgkcoHj9I", "EnLs21M47BllR3X8PSFtjtbd") == \
        "601f383334975c714c91a7d97dd723eb56520318355863dcf3821c0d07a17693"
    assert webhook_signature(b'{"a":1,"b":2,"c":{"d":3}}', "123456") == \
        "2fe04e22977002e6c7cb553adab8b460cb9e2a4970d5953cb27a8472752e3bbc"
    assert webhook_signature('{"a":1,"b":2,"c":{"d":3}}', "123456") == \
        "2fe04e22977002e6c7cb553adab8b460cb9e2a4970d5953cb27a8472752e3bbc"
    # The order matters: subscription first is another signature.
    assert checkout_signature("sub_ID6MOhgkcoHj9I", "pay_IDZNwZZFtnjyym", "EnLs21M47BllR3X8PSFtjtbd") != \
        "601f383334975c714c91a7d97dd723eb56520318355863dcf3821c0d07a17693"


def test_the_fake_checks_basic_auth_exactly(billing_stack, razorpay):
    """The fake refuses what Razorpay refuses: no auth, `basic`/`BASIC`, a wrong secret."""
    good = base64.b64encode(f"{razorpay.key_id}:{razorpay.key_secret}".encode()).decode()
    url = razorpay.base_url + "/subscriptions/sub_nope"
    for header in (None, "basic " + good, "BASIC " + good, "Basic " + base64.b64encode(b"rzp_test_x:wrong").decode()):
        r = requests.get(url, headers={} if header is None else {"Authorization": header}, timeout=5)
        assert r.status_code == 401, (header, r.text)
        assert r.json()["error"]["code"] == "BAD_REQUEST_ERROR"
        assert r.json()["error"]["description"] == "Authentication failed"
    r = requests.get(url, headers={"Authorization": "Basic " + good}, timeout=5)
    assert r.status_code == 400 and r.json()["error"]["description"] == "The id provided does not exist"


# ---- plans and payments not configured -----------------------------------------------------------------

def test_plans_show_the_configured_plan(billing_stack):
    """GET /api/v1/plans: the plan Atelier sells and payments_configured true, without logging in."""
    r = requests.get(billing_stack.api("/api/v1/plans"), timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"plans", "payments_configured"}, body
    assert body["payments_configured"] is True
    [plan] = body["plans"]
    assert set(plan) == {"id", "name", "price", "currency", "period", "quota", "video"}, plan
    assert plan["id"] == "plan_test"
    assert isinstance(plan["name"], str) and plan["name"]
    assert isinstance(plan["price"], int) and plan["price"] >= 100
    assert plan["currency"] == "INR"
    assert plan["period"] == "month"
    assert isinstance(plan["quota"], int) and plan["quota"] > 0
    assert plan["video"] is True
    assert billing_stack.fake.key_secret not in r.text and billing_stack.fake.webhook_secret not in r.text


def test_without_razorpay_keys_subscribing_is_503_payments_not_configured(stack, smtp):
    """The main stack has no Razorpay keys: /plans says payments_configured false and subscribing is
    503 payments_not_configured (nothing is created)."""
    r = requests.get(stack.api("/api/v1/plans"), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["payments_configured"] is False
    subscriber = new_subscriber(stack, smtp)
    assert_error(subscriber.subscribe(), 503, "payments_not_configured")
    assert stack.psql(f"SELECT count(*) FROM subscriptions WHERE user_id = {sql_text(subscriber.user_id)}") == "0"


# ---- subscribing and Checkout --------------------------------------------------------------------------

def test_subscribing_creates_one_subscription_at_razorpay_and_reuses_it_until_checkout_completes(rz):
    """POST /api/v1/subscription: 201 with what Checkout needs; the subscription was created at Razorpay
    with Basic auth, our plan and notes.user_id; asking again while it is `created` answers the same one;
    once it is live, 409 subscription_exists. Without the CSRF token, 403 and nothing is created."""
    stack, fake, smtp = rz
    subscriber = new_subscriber(stack, smtp)
    creates_before = len(fake.creates)
    assert_error(subscriber.subscribe(csrf=None), 403, "csrf_failed")
    assert len(fake.creates) == creates_before

    r = subscriber.subscribe()
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"subscription_id", "key_id", "name", "description", "prefill"}, body
    assert body["key_id"] == "rzp_test_x"
    assert isinstance(body["name"], str) and body["name"] and isinstance(body["description"], str)
    assert body["prefill"]["email"].lower() == subscriber.email.lower()
    assert "name" in body["prefill"]
    assert fake.key_secret not in r.text
    sub_id = body["subscription_id"]
    assert sub_id.startswith("sub_") and sub_id in fake.subscriptions

    assert len(fake.creates) == creates_before + 1
    create = fake.create_of(sub_id)["body"]
    assert create["plan_id"] == "plan_test"
    assert isinstance(create["total_count"], int) and create["total_count"] >= 1
    assert create["notes"]["user_id"] == subscriber.user_id
    [sent] = [e for e in fake.requests_to("POST", "/v1/subscriptions") if e["status"] == 200
              and json.loads(e["body"])["notes"].get("user_id") == subscriber.user_id]
    expected = "Basic " + base64.b64encode(f"rzp_test_x:{fake.key_secret}".encode()).decode()
    assert sent["headers"].get("Authorization") == expected
    subscriber.subscription_id = sub_id
    assert subscriber.row()["status"] == "created"

    again = subscriber.subscribe()
    assert again.status_code == 201, again.text
    assert again.json()["subscription_id"] == sub_id
    assert len(fake.creates) == creates_before + 1, "a second subscription was created at Razorpay"

    deliver_ok(stack, fake.authenticate(sub_id))
    assert subscriber.row()["status"] == "authenticated"
    assert_error(subscriber.subscribe(), 409, "subscription_exists")
    assert len(fake.creates) == creates_before + 1
    assert stack.psql(f"SELECT count(*) FROM subscriptions WHERE user_id = {sql_text(subscriber.user_id)}") == "1"


def test_a_verified_checkout_grants_provisional_premium(rz):
    """POST /api/v1/subscription/verify with Checkout's signature over OUR subscription id: 200
    {status: verified, premium: {active: true, until: about a day from now}}; the subscription is
    authenticated and the profile shows premium."""
    stack, fake, smtp = rz
    subscriber = subscribed(stack, smtp)
    assert subscriber.profile()["premium"]["active"] is False
    payment_id = new_id("pay")
    r = subscriber.verify(payment_id, subscriber.subscription_id,
                          checkout_signature(payment_id, subscriber.subscription_id, fake.key_secret))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "verified"
    assert body["premium"]["active"] is True
    until = datetime.datetime.fromisoformat(body["premium"]["until"].replace("Z", "+00:00")).timestamp()
    assert time.time() + DAY - 120 < until < time.time() + DAY + 120, body
    assert subscriber.row()["status"] == "authenticated"
    profile = subscriber.profile()
    assert profile["premium"]["active"] is True
    assert profile["quota"]["period"] == "month"


def test_a_checkout_signature_for_another_subscription_is_400_and_changes_nothing(rz):
    """Signatures that do not verify against the subscription id we stored for this user are 400
    invalid_signature and change nothing: one made over another subscription id, one made with the
    webhook secret, a subscription of another user with its own valid signature, an unknown id."""
    stack, fake, smtp = rz
    subscriber = subscribed(stack, smtp)
    other = subscribed(stack, smtp)
    before = subscriber.snapshot()
    payment_id = new_id("pay")
    own = subscriber.subscription_id
    cases = [
        ("signed for another subscription id", own, checkout_signature(payment_id, new_id("sub"), fake.key_secret)),
        ("signed for the other user's subscription", own,
         checkout_signature(payment_id, other.subscription_id, fake.key_secret)),
        ("signed with the webhook secret", own, checkout_signature(payment_id, own, fake.webhook_secret)),
        ("subscription and payment swapped", own, checkout_signature(own, payment_id, fake.key_secret)),
        ("another user's subscription", other.subscription_id,
         checkout_signature(payment_id, other.subscription_id, fake.key_secret)),
        ("an unknown subscription", "sub_unknown000000", checkout_signature(payment_id, "sub_unknown000000", fake.key_secret)),
        ("empty signature", own, ""),
    ]
    other_before = other.snapshot()
    for name, sub_id, signature in cases:
        r = subscriber.verify(payment_id, sub_id, signature)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature", f"{name}: {r.status_code} {r.text}"
        assert subscriber.snapshot() == before, f"{name}: something changed"
    assert other.snapshot() == other_before
    assert subscriber.profile()["premium"]["active"] is False


def test_a_replayed_checkout_signature_does_not_grant_premium_again(rz):
    """Checkout's signature never expires, so verify must not hand out a new provisional day each time
    the same Checkout response is posted: a user who verified once, cancelled (Razorpay cancels a
    subscription without a period at once) and let the provisional day run out does not get premium back
    by replaying the response, and neither does replaying it for a subscription that is still live."""
    stack, fake, smtp = rz
    subscriber = subscribed(stack, smtp)
    payment_id = new_id("pay")
    signature = checkout_signature(payment_id, subscriber.subscription_id, fake.key_secret)
    assert subscriber.verify(payment_id, subscriber.subscription_id, signature).status_code == 200
    r = subscriber.call("POST", "/api/v1/subscription/cancel", {})
    assert r.status_code == 200, r.text
    assert subscriber.row()["status"] == "cancelled"
    # The provisional day is over.
    stack.psql(f"UPDATE users SET premium_until = now() - interval '1 minute' WHERE id = {sql_text(subscriber.user_id)}")
    assert subscriber.profile()["premium"]["active"] is False

    # The signature is genuine, so the answer is 200 with the account as it is; the replay grants nothing.
    r = subscriber.verify(payment_id, subscriber.subscription_id, signature)
    assert r.status_code == 200 and r.json()["premium"]["active"] is False, r.text
    assert subscriber.profile()["premium"]["active"] is False, \
        f"replaying an old Checkout response for a cancelled subscription granted premium: {r.status_code} {r.text}"

    live_one = subscribed(stack, smtp)
    payment_id = new_id("pay")
    signature = checkout_signature(payment_id, live_one.subscription_id, fake.key_secret)
    assert live_one.verify(payment_id, live_one.subscription_id, signature).status_code == 200
    deliver_ok(stack, fake.authenticate(live_one.subscription_id))
    stack.psql(f"UPDATE users SET premium_until = now() - interval '1 minute' WHERE id = {sql_text(live_one.user_id)}")
    live_one.verify(payment_id, live_one.subscription_id, signature)
    assert live_one.profile()["premium"]["active"] is False, "a replayed Checkout response granted another provisional day"


# ---- webhooks ------------------------------------------------------------------------------------------

def test_a_webhook_with_one_flipped_byte_is_400_and_changes_nothing(rz):
    """The signature covers the raw body: one byte changed after signing (here a digit of current_end,
    so the JSON still parses) is 400, as are a missing signature and one made with the key secret; none
    changes anything or uses up the event id. The untouched event then applies."""
    stack, fake, smtp = rz
    subscriber = subscribed(stack, smtp)
    now = int(time.time())
    event = fake.charge(subscriber.subscription_id, new_id("pay"), 49900, now - 60, now + 30 * DAY)
    before = subscriber.snapshot()
    for name, options in [("flipped byte", {"flip_byte": True}), ("flipped first byte", {"flip_byte": 0}),
                          ("no signature", {"omit": ["X-Razorpay-Signature"]}),
                          ("signed with the key secret", {"secret": fake.key_secret, "body": event.body}),
                          ("uppercase hex of another body", {"signature": webhook_signature(b"{}", fake.webhook_secret).upper()})]:
        d = deliver(stack, event, **options)
        assert d.status == 400, f"{name}: {d}"
        assert subscriber.snapshot() == before, f"{name}: the database changed"
    assert stack.psql(f"SELECT count(*) FROM webhook_events WHERE event_id = {sql_text(event.event_id)}") == "0"

    deliver_ok(stack, event)
    assert subscriber.row()["status"] == "active"
    assert subscriber.payments() == 1


def test_the_same_event_delivered_three_times_has_one_effect(rz):
    """At-least-once delivery: the same subscription.charged (same x-razorpay-event-id) three times
    records one payment and resets the quota once; the same payment in an event with another id (a
    re-sent snapshot) does not reset it again either."""
    stack, fake, smtp = rz
    subscriber = subscribed(stack, smtp)
    subscriber.set_quota_used(7)
    now = int(time.time())
    start, end = now - 60, now + 30 * DAY
    payment_id = new_id("pay")
    event = fake.charge(subscriber.subscription_id, payment_id, 49900, start, end)
    deliver_ok(stack, event)
    assert subscriber.quota() == (0, start)
    assert subscriber.payments() == 1
    until = subscriber.premium_until()
    assert until == end + GRACE

    subscriber.set_quota_used(5)  # used since the period started
    for _ in range(2):
        deliver_ok(stack, event)
    assert subscriber.quota() == (5, start), "a redelivery reset the quota again"
    assert subscriber.payments() == 1
    assert subscriber.premium_until() == until
    signed = "sha256:" + hashlib.sha256(event.body).hexdigest()
    assert stack.psql(f"SELECT count(*) FROM webhook_events WHERE event_id = {sql_text(signed)}") == "1"

    resent = fake.event("subscription.charged", subscriber.subscription_id,
                        payment=event.payload["payload"]["payment"]["entity"])
    deliver_ok(stack, resent)
    assert subscriber.quota() == (5, start)
    assert subscriber.payments() == 1
    assert stack.psql(f"SELECT count(*) FROM payments WHERE razorpay_payment_id = {sql_text(payment_id)}") == "1"


def test_a_captured_delivery_replayed_under_a_new_event_id_is_a_duplicate(rz):
    """The x-razorpay-event-id header is not signed: a captured delivery sent again with another id is
    recognised by its signed body and answered as a duplicate, with no second effect."""
    stack, fake, smtp = rz
    subscriber = subscribed(stack, smtp)
    now = int(time.time())
    event = fake.charge(subscriber.subscription_id, new_id("pay"), 49900, now - 60, now + 30 * DAY)
    first = deliver_ok(stack, event)
    assert first.json()["duplicate"] is False, first.text
    subscriber.set_quota_used(3)
    replayed = deliver_ok(stack, event, event_id="evt_" + uuid.uuid4().hex[:14])
    assert replayed.json()["duplicate"] is True, replayed.text
    assert subscriber.quota()[0] == 3
    assert subscriber.payments() == 1


def test_charged_delivered_before_activated_ends_in_the_right_state(rz):
    """Events arrive out of order: subscription.charged first, then the (older) subscription.activated.
    The end state is what Razorpay's entity says: active, premium until current_end + grace, one
    payment, the quota period starting at current_start."""
    stack, fake, smtp = rz
    subscriber = subscribed(stack, smtp)
    subscriber.set_quota_used(3)
    now = int(time.time())
    start, end = now - 120, now + 30 * DAY
    authenticated = fake.authenticate(subscriber.subscription_id)  # status authenticated, no period yet
    activated = fake.activate(subscriber.subscription_id, start, end)
    charged = fake.charge(subscriber.subscription_id, new_id("pay"), 49900, start, end)
    deliver_ok(stack, charged)
    deliver_ok(stack, activated)
    deliver_ok(stack, authenticated)
    row = subscriber.row()
    assert row["status"] == "active", row
    assert (row["current_start"], row["current_end"]) == (start, end)
    assert subscriber.premium_until() == end + GRACE
    assert subscriber.payments() == 1
    assert subscriber.quota() == (0, start)
    assert subscriber.profile()["premium"]["active"] is True


def test_a_webhook_while_the_database_is_down_is_5xx_and_applies_once_when_redelivered(rz):
    """PostgreSQL down: the webhook answers 5xx (so Razorpay retries) within 5 seconds; the redelivery
    after it is back applies the event once."""
    stack, fake, smtp = rz
    subscriber = subscribed(stack, smtp)
    subscriber.set_quota_used(4)
    now = int(time.time())
    start, end = now - 60, now + 30 * DAY
    event = fake.charge(subscriber.subscription_id, new_id("pay"), 49900, start, end)
    stack.stack("pg-stop")
    try:
        d = deliver(stack, event)
        assert 500 <= d.status < 600, d
    finally:
        stack.stack("pg-start")
        wait_healthy(stack)
    assert subscriber.payments() == 0
    assert subscriber.row()["status"] == "created"

    deadline = time.monotonic() + 20
    while True:  # the function's connection may need a moment to come back: Razorpay would retry too
        d = deliver(stack, event)
        if 200 <= d.status < 300 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert 200 <= d.status < 300, d
    deliver_ok(stack, event)
    assert subscriber.payments() == 1
    assert subscriber.row()["status"] == "active"
    assert subscriber.premium_until() == end + GRACE
    assert subscriber.quota() == (0, start)


def test_a_new_billing_period_resets_the_quota_exactly_once(rz):
    """A charge for the next period (a later current_start) resets quota_used to 0 and moves the quota
    period and premium on; redeliveries, another snapshot of the same period and a renew-cron run do not
    reset it again."""
    stack, fake, smtp = rz
    now = int(time.time())
    first_start, first_end = now - 30 * DAY - 100, now - 100
    subscriber, _, _, _ = live(stack, smtp, fake, start=first_start, end=first_end)
    assert subscriber.quota() == (0, first_start)
    subscriber.set_quota_used(42)

    second_start, second_end = first_end, first_end + 30 * DAY
    event = fake.charge(subscriber.subscription_id, new_id("pay"), 49900, second_start, second_end)
    deliver_ok(stack, event)
    assert subscriber.quota() == (0, second_start)
    assert subscriber.premium_until() == second_end + GRACE
    assert subscriber.payments() == 2
    row = subscriber.row()
    assert (row["current_start"], row["current_end"]) == (second_start, second_end)

    subscriber.set_quota_used(3)
    deliver_ok(stack, event)
    deliver_ok(stack, fake.event("subscription.updated", subscriber.subscription_id))
    renew(stack)
    assert subscriber.quota() == (3, second_start)
    assert subscriber.payments() == 2
    assert subscriber.profile()["quota"]["used"] == 3


def test_an_event_for_a_subscription_that_is_not_ours_is_acknowledged_and_changes_nothing(rz):
    """A signed event for a subscription Atelier never made (no user in its notes) is answered 2xx, so
    Razorpay stops sending it, and creates nothing."""
    stack, fake, smtp = rz
    sub_id = fake.add_subscription(status="created", notes={"source": "dashboard"})
    now = int(time.time())
    deliver_ok(stack, fake.charge(sub_id, new_id("pay"), 49900, now - 60, now + 30 * DAY))
    assert stack.psql(f"SELECT count(*) FROM subscriptions WHERE razorpay_subscription_id = {sql_text(sub_id)}") == "0"


def test_the_price_shown_is_what_razorpay_will_charge(rz):
    """PLAN_PRICE can disagree with the plan in Razorpay's dashboard: GET /api/v1/plans shows the plan's
    own amount and period (GET /v1/plans/{id}), read once and kept for ten minutes."""
    stack, fake, smtp = rz
    subprocess.run(["redis-cli", "-u", stack.redis_url, "DEL", f"billing:plan:{fake.plan_id}"], check=True,
                   capture_output=True)
    old_amount = fake.plan_amount
    fake.plan_amount = 59900
    try:
        fetches = fake.plan_fetches
        for _ in range(3):
            r = requests.get(stack.url + "/api/v1/plans", timeout=10)
            assert r.status_code == 200, r.text
            [plan] = r.json()["plans"]
            assert (plan["price"], plan["currency"], plan["period"]) == (59900, "INR", "month"), plan
        assert fake.plan_fetches == fetches + 1
    finally:
        fake.plan_amount = old_amount
        subprocess.run(["redis-cli", "-u", stack.redis_url, "DEL", f"billing:plan:{fake.plan_id}"], capture_output=True)


def test_the_webhook_log_records_each_delivery_and_warns_admins(rz):
    """Every delivery to /hooks/razorpay is recorded with its outcome (refused: the reason; accepted;
    duplicate), newest first, in GET /api/v1/admin/webhooks (admins only), which warns when deliveries are
    refused and none accepted: the wrong-secret case an operator otherwise finds out from a customer."""
    stack, fake, smtp = rz
    now = int(time.time())
    subscriber = subscribed(stack, smtp)
    admin = new_subscriber(stack, smtp)
    assert admin.call("GET", "/api/v1/admin/webhooks").status_code == 403
    stack.psql(f"UPDATE users SET is_admin = true WHERE id = {sql_text(admin.user_id)}")
    stack.psql("DELETE FROM webhook_deliveries WHERE provider = 'razorpay'")

    event = fake.charge(subscriber.subscription_id, new_id("pay"), 49900, now - 60, now + 30 * DAY)
    assert deliver(stack, event, flip_byte=True).status == 400
    r = admin.call("GET", "/api/v1/admin/webhooks?provider=razorpay")
    assert r.status_code == 200, r.text
    log = r.json()
    assert [(d["outcome"], d["status"]) for d in log["items"]] == [("invalid_signature", 400)], log
    assert any("refused and none accepted" in w and "RAZORPAY_WEBHOOK_SECRET" in w for w in log["warnings"]), log

    deliver_ok(stack, event)
    deliver_ok(stack, event)
    log = admin.call("GET", "/api/v1/admin/webhooks?provider=razorpay").json()
    assert [d["outcome"] for d in log["items"]] == ["duplicate", "accepted", "invalid_signature"], log
    assert not any("Razorpay" in w for w in log["warnings"]), log
    assert admin.call("GET", "/api/v1/admin/webhooks?provider=stripe").status_code == 400


def test_doctor_checks_the_razorpay_keys_and_that_the_price_shown_matches_the_plan(rz):
    from test_replicate import doctor

    stack, fake, smtp = rz
    good = doctor(stack)
    assert good["razorpay"][0][0] == "ok" and "charges 49900 INR per month" in good["razorpay"][0][1], good
    fake.plan_amount = 59900
    try:
        mismatch = doctor(stack)
        assert mismatch["razorpay"][0][0] == "fail" and "59900 INR" in mismatch["razorpay"][0][1], mismatch
    finally:
        fake.plan_amount = 49900
    wrong = doctor(stack, RAZORPAY_KEY_SECRET="wrong-secret")
    assert wrong["razorpay"][0][0] == "fail" and "Authentication failed" in wrong["razorpay"][0][1], wrong


@pytest.mark.parametrize("how", ["500", "drop"])
def test_a_subscription_whose_create_answer_is_lost_is_found_not_made_twice(rz, how):
    """Razorpay made the subscription but the answer was lost (a 500 after acting, a cut connection):
    Atelier does not POST again (the old client did, leaving a second `created` subscription behind);
    it looks the subscription up (GET /v1/subscriptions, by its notes' user id) and Checkout goes on
    with that one."""
    stack, fake, smtp = rz
    subscriber = new_subscriber(stack, smtp)
    posts = len(fake.requests_to("POST", "/v1/subscriptions"))
    fake.lose_next_answers(1, how)
    r = subscriber.subscribe()
    assert r.status_code == 201, r.text
    made = [e for e in fake.subscriptions.values() if e["notes"].get("user_id") == subscriber.user_id]
    assert len(made) == 1, made
    assert len(fake.requests_to("POST", "/v1/subscriptions")) == posts + 1
    assert r.json()["subscription_id"] == made[0]["id"]
    subscriber.subscription_id = made[0]["id"]
    assert subscriber.row()["status"] == "created"
    # And again: the same subscription, nothing new at Razorpay.
    again = subscriber.subscribe()
    assert again.status_code == 201 and again.json()["subscription_id"] == made[0]["id"], again.text
    assert len(fake.requests_to("POST", "/v1/subscriptions")) == posts + 1


def test_a_cancel_whose_answer_is_lost_is_read_back_not_sent_again(rz):
    """The cancel took effect but its answer was lost: Atelier reads the subscription back (its cancel
    is scheduled for the cycle end) and answers as if the answer had come; one cancel reached Razorpay."""
    stack, fake, smtp = rz
    now = int(time.time())
    subscriber = subscribed(stack, smtp)
    deliver_ok(stack, fake.charge(subscriber.subscription_id, new_id("pay"), 49900, now - DAY, now + 29 * DAY))
    fake.lose_next_answers(1, "500")
    r = subscriber.call("POST", "/api/v1/subscription/cancel", {})
    assert r.status_code == 200, r.text
    assert len(fake.cancels_of(subscriber.subscription_id)) == 1
    assert r.json()["subscription"]["cancel_at_cycle_end"] is True


# ---- cancelling, halting, expiry -------------------------------------------------------------------------

def test_cancel_is_at_cycle_end_and_premium_lasts_until_the_period_end(rz):
    """POST /api/v1/subscription/cancel asks Razorpay to cancel at the cycle end (cancel_at_cycle_end true)
    and premium stays; the subscription.cancelled webhook at the period end keeps premium until
    current_end (no grace: no renewal is coming), and a stale subscription.activated delivered after it
    does not revive the subscription."""
    stack, fake, smtp = rz
    now = int(time.time())
    subscriber = subscribed(stack, smtp)
    start, end = now - DAY, now + 29 * DAY
    activated = fake.activate(subscriber.subscription_id, start, end)
    deliver_ok(stack, fake.charge(subscriber.subscription_id, new_id("pay"), 49900, start, end))
    assert subscriber.premium_until() == end + GRACE

    assert_error(subscriber.call("POST", "/api/v1/subscription/cancel", {}, csrf=None), 403, "csrf_failed")
    assert fake.cancels_of(subscriber.subscription_id) == []
    r = subscriber.call("POST", "/api/v1/subscription/cancel", {})
    assert r.status_code == 200, r.text
    [cancel] = fake.cancels_of(subscriber.subscription_id)
    assert cancel["body"].get("cancel_at_cycle_end") is True, cancel
    body = r.json()
    assert body["subscription"]["id"] == subscriber.subscription_id
    assert body["subscription"]["cancel_at_cycle_end"] is True
    assert body["premium"]["active"] is True
    assert subscriber.row()["status"] == "active"
    assert subscriber.row()["cancel_at_cycle_end"] is True
    assert subscriber.premium_until() >= end
    assert subscriber.profile()["premium"]["active"] is True

    deliver_ok(stack, fake.set_status(subscriber.subscription_id, "cancelled"))
    assert subscriber.row()["status"] == "cancelled"
    assert subscriber.premium_until() == end, "after cancellation premium ends at current_end, without grace"
    assert subscriber.profile()["premium"]["active"] is True

    deliver_ok(stack, activated)
    deliver_ok(stack, fake.event("subscription.activated", subscriber.subscription_id, created_at=now - DAY))
    assert subscriber.row()["status"] == "cancelled"
    assert subscriber.premium_until() == end
    assert_error(subscriber.call("POST", "/api/v1/subscription/cancel", {}), 404, "no_subscription")


def test_halted_ends_premium_at_the_period_end(rz):
    """subscription.halted (every retry failed): premium ends at current_end, not current_end + grace."""
    stack, fake, smtp = rz
    now = int(time.time())
    subscriber, start, end, _ = live(stack, smtp, fake, start=now - 29 * DAY, end=now + DAY)
    assert subscriber.premium_until() == end + GRACE
    deliver_ok(stack, fake.set_status(subscriber.subscription_id, "pending"))
    assert subscriber.premium_until() == end + GRACE
    deliver_ok(stack, fake.set_status(subscriber.subscription_id, "halted"))
    assert subscriber.row()["status"] == "halted"
    assert subscriber.premium_until() == end


def test_pending_grants_no_free_cycle(rz):
    """subscription.pending: the renewal charge failed and Razorpay retries it. Its entity's period may
    already be the unpaid cycle: premium still ends at the paid period's end plus the grace, the quota is
    not renewed, and our record keeps the paid period; the charge that succeeds later renews both."""
    stack, fake, smtp = rz
    now = int(time.time())
    subscriber, start, end, _ = live(stack, smtp, fake, start=now - 30 * DAY + 3600, end=now + 3600)
    subscriber.set_quota_used(40)
    deliver_ok(stack, fake.set_status(subscriber.subscription_id, "pending",
                                      current_start=end, current_end=end + 30 * DAY))
    assert subscriber.row()["status"] == "pending"
    assert subscriber.premium_until() == end + GRACE
    assert subscriber.quota()[0] == 40
    deliver_ok(stack, fake.charge(subscriber.subscription_id, new_id("pay"), 49900, end, end + 30 * DAY))
    assert subscriber.premium_until() == end + 30 * DAY + GRACE


def test_halted_after_pending_ends_premium_at_the_paid_period_end(rz):
    """Every retry failed: subscription.halted carries the unpaid cycle as its period, and premium ends
    at the end of the period that was paid for."""
    stack, fake, smtp = rz
    now = int(time.time())
    subscriber, start, end, _ = live(stack, smtp, fake, start=now - 30 * DAY + 3600, end=now + 3600)
    deliver_ok(stack, fake.set_status(subscriber.subscription_id, "pending",
                                      current_start=end, current_end=end + 30 * DAY))
    deliver_ok(stack, fake.set_status(subscriber.subscription_id, "halted"))
    assert subscriber.row()["status"] == "halted"
    assert subscriber.premium_until() == end


def test_premium_past_its_grace_period_is_over_and_renew_cron_starts_a_daily_period(rz):
    """A period that ended more than the grace period ago: the profile shows premium inactive and the free
    daily quota; renew-cron then starts today's period (quota_used 0) once."""
    stack, fake, smtp = rz
    now = int(time.time())
    subscriber, start, end, _ = live(stack, smtp, fake, start=now - 32 * DAY, end=now - 2 * DAY)
    assert subscriber.premium_until() == end + GRACE
    subscriber.set_quota_used(50)
    profile = subscriber.profile()
    assert profile["premium"]["active"] is False, profile
    assert profile["quota"]["period"] == "day", profile
    assert profile["quota"]["used"] == 0, profile
    free_daily = profile["quota"]["limit"]

    line = renew(stack)
    assert line != "renew: skipped"
    assert renew_counts(line).get("expired", 0) >= 1, line
    today = epoch(stack, "SELECT date_trunc('day', now())")
    assert subscriber.quota() == (0, today)
    subscriber.set_quota_used(2)  # used today, after the cron ran
    renew(stack)
    assert subscriber.quota() == (2, today)
    profile = subscriber.profile()
    assert profile["premium"]["active"] is False
    assert profile["quota"] == {**profile["quota"], "period": "day", "used": 2, "limit": free_daily}


# ---- the renew-cron ------------------------------------------------------------------------------------

class _RenewLease:
    """Another renew-cron run's unexpired lease in cron_leases, until `release()`."""

    def __init__(self, stack):
        self.stack = stack
        stack.psql("INSERT INTO cron_leases (name, holder, expires_at) VALUES ('renew-cron', 'another-run', now() + interval '5 minutes') "
                   "ON CONFLICT (name) DO UPDATE SET holder = 'another-run', expires_at = EXCLUDED.expires_at")

    def release(self):
        self.stack.psql("DELETE FROM cron_leases WHERE name = 'renew-cron' AND holder = 'another-run'")


def _hold_renew_lock(stack):
    return _RenewLease(stack)


def _run_concurrently(stack, n):
    results = [None] * n

    def one(i):
        results[i] = stack.renew_cron()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return results


def test_renew_cron_skips_while_another_run_holds_its_lock(rz):
    """The renew-cron takes its lease in cron_leases: while another run holds it, runs print `renew:
    skipped` and exit 0; once it is free a run does the work. Two runs at once (one kept busy by a slow
    Razorpay answer) give one that works and one that skips, both exit 0."""
    stack, fake, smtp = rz
    holder = _hold_renew_lock(stack)
    try:
        for done in _run_concurrently(stack, 2):
            assert done.returncode == 0, (done.stdout, done.stderr[-1000:])
            assert "renew: skipped" in done.stdout.splitlines(), done.stdout
    finally:
        holder.release()
    line = renew(stack)
    assert line != "renew: skipped" and "expired=" in line, line

    # Something to reconcile, and Razorpay slow to answer: the first run holds the lock meanwhile.
    subscriber = subscribed(stack, smtp)
    payment_id = new_id("pay")
    assert subscriber.verify(payment_id, subscriber.subscription_id, checkout_signature(
        payment_id, subscriber.subscription_id, fake.key_secret)).status_code == 200
    fake.delay_next(1, 3.0)
    results = [None, None]

    def first():
        results[0] = stack.renew_cron()

    worker = threading.Thread(target=first)
    worker.start()
    assert wait_until(lambda: any(e["path"].startswith("/v1/subscriptions/") and e["method"] == "GET"
                                  and e["status"] is None for e in list(fake.requests)), timeout=20)
    results[1] = stack.renew_cron()
    worker.join(60)
    outputs = sorted(next(l for l in r.stdout.splitlines() if l.startswith("renew:")) for r in results)
    assert [r.returncode for r in results] == [0, 0], [(r.stdout, r.stderr[-500:]) for r in results]
    assert outputs[1] == "renew: skipped" and outputs[0] != "renew: skipped", outputs


def test_a_webhook_is_answered_in_time_while_renew_cron_waits_on_a_slow_razorpay(rz):
    """The renew-cron asks Razorpay about stale subscriptions one after another. While it waits for a slow
    answer about one subscription, a webhook for another one it already reconciled must still be answered
    within Razorpay's 5 seconds (no row lock held across the cron's HTTP calls)."""
    stack, fake, smtp = rz
    first, second = subscribed(stack, smtp), subscribed(stack, smtp)
    for subscriber in (first, second):
        fake.authenticate(subscriber.subscription_id)  # no webhook: both stay `created` at our end
        stack.psql("UPDATE subscriptions SET created_at = now() - interval '2 days' "
                   f"WHERE razorpay_subscription_id = {sql_text(subscriber.subscription_id)}")
    # Only these two are stale, the first the older one (the cron goes by updated_at).
    stack.psql("UPDATE subscriptions SET updated_at = now() + interval '1 day' WHERE razorpay_subscription_id NOT IN "
               f"({sql_text(first.subscription_id)}, {sql_text(second.subscription_id)})")
    stack.psql("UPDATE subscriptions SET updated_at = now() - interval '2 hours' "
               f"WHERE razorpay_subscription_id = {sql_text(first.subscription_id)}")
    stack.psql("UPDATE subscriptions SET updated_at = now() - interval '1 hour' "
               f"WHERE razorpay_subscription_id = {sql_text(second.subscription_id)}")
    fake.slow_subscription(second.subscription_id, 8.0)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("done", stack.renew_cron()))
    worker.start()
    try:
        path = f"/v1/subscriptions/{second.subscription_id}"
        assert wait_until(lambda: any(e["status"] is None for e in fake.requests_to("GET", path)), timeout=20), \
            "the cron did not ask about the second subscription"
        now = int(time.time())
        d = deliver(stack, fake.charge(first.subscription_id, new_id("pay"), 49900, now - 60, now + 30 * DAY))
        assert 200 <= d.status < 300, d
    finally:
        worker.join(60)
        fake.reset()
    assert result["done"].returncode == 0, result["done"].stderr[-2000:]
    assert first.row()["status"] == "active"


def test_renew_cron_reconciles_a_subscription_whose_webhooks_never_came(rz):
    """Razorpay has the subscription active with a period, but no webhook reached us: our row is
    `authenticated` (Checkout verified) or `created` (not even that) with no period. After renew-cron the
    row has Razorpay's status and period and the user is premium until current_end + grace."""
    stack, fake, smtp = rz
    now = int(time.time())
    start, end = now - 60, now + 30 * DAY

    verified = subscribed(stack, smtp)
    payment_id = new_id("pay")
    assert verified.verify(payment_id, verified.subscription_id, checkout_signature(
        payment_id, verified.subscription_id, fake.key_secret)).status_code == 200
    fake.activate(verified.subscription_id, start, end)  # the webhook is lost

    unverified = subscribed(stack, smtp)
    # The checkout was completed a day ago, and the browser closed before verify.
    stack.psql("UPDATE subscriptions SET created_at = now() - interval '2 days', updated_at = now() - interval '2 days' "
               f"WHERE razorpay_subscription_id = {sql_text(unverified.subscription_id)}")
    fake.charge(unverified.subscription_id, new_id("pay"), 49900, start, end)  # this one is lost too
    assert unverified.profile()["premium"]["active"] is False
    gets_before = len(fake.requests_to("GET", f"/v1/subscriptions/{unverified.subscription_id}"))

    line = renew(stack)
    assert renew_counts(line).get("reconciled", 0) >= 2, line
    assert renew_counts(line).get("reconcile_failed", 0) == 0, line
    assert len(fake.requests_to("GET", f"/v1/subscriptions/{unverified.subscription_id}")) == gets_before + 1
    for subscriber in (verified, unverified):
        row = subscriber.row()
        assert row["status"] == "active", row
        assert (row["current_start"], row["current_end"]) == (start, end), row
        assert subscriber.premium_until() == end + GRACE
        assert subscriber.profile()["premium"]["active"] is True
    assert unverified.quota() == (0, start)


def test_renew_cron_reconciles_a_fresh_checkout_whose_webhook_never_came(rz):
    """The same with a checkout completed minutes ago (row `created`, not verified, no webhook): with
    RAZORPAY_RECONCILE_AFTER_SECONDS=0 the cron asks Razorpay and the paying user becomes premium."""
    stack, fake, smtp = rz
    now = int(time.time())
    start, end = now - 60, now + 30 * DAY
    subscriber = subscribed(stack, smtp)
    fake.charge(subscriber.subscription_id, new_id("pay"), 49900, start, end)  # the webhook is lost
    renew(stack)
    assert subscriber.row()["status"] == "active", subscriber.row()
    assert subscriber.premium_until() == end + GRACE


# ---- showing the subscription ----------------------------------------------------------------------------

def test_the_subscription_endpoint_shows_the_subscription_premium_and_payments(rz):
    """GET /api/v1/subscription: {subscription: null, premium, payments: []} before subscribing; after a
    charge, the subscription (id, status, period, cancel flag), premium and the payment."""
    stack, fake, smtp = rz
    subscriber = new_subscriber(stack, smtp)
    r = subscriber.call("GET", "/api/v1/subscription")
    assert r.status_code == 200, r.text
    assert r.json() == {"subscription": None, "premium": {"active": False, "until": None}, "payments": []}
    assert requests.get(stack.api("/api/v1/subscription"), timeout=10).status_code == 401

    r = subscriber.subscribe()
    subscriber.subscription_id = r.json()["subscription_id"]
    now = int(time.time())
    start, end = now - 60, now + 30 * DAY
    payment_id = new_id("pay")
    deliver_ok(stack, fake.charge(subscriber.subscription_id, payment_id, 49900, start, end))

    r = subscriber.call("GET", "/api/v1/subscription")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"subscription", "premium", "payments"}, body
    sub = body["subscription"]
    assert sub["id"] == subscriber.subscription_id
    assert sub["status"] == "active"
    assert sub["plan_id"] == "plan_test"
    assert sub["cancel_at_cycle_end"] is False
    for key, value in (("current_start", start), ("current_end", end)):
        when = datetime.datetime.fromisoformat(sub[key].replace("Z", "+00:00"))
        assert when.tzinfo is not None and round(when.timestamp()) == value, (key, sub[key])
    assert body["premium"]["active"] is True
    until = datetime.datetime.fromisoformat(body["premium"]["until"].replace("Z", "+00:00")).timestamp()
    assert round(until) == end + GRACE
    [payment] = body["payments"]
    assert payment["id"] == payment_id
    assert payment["amount"] == 49900 and payment["currency"] == "INR" and payment["status"] == "captured"
    assert fake.key_secret not in r.text
