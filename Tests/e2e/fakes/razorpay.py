"""A fake Razorpay for the black-box tests, in the standard library only.

It speaks the part of Razorpay's API Atelier uses (shared/reference/replicate-razorpay.md, part B) under
`/v1`:

    POST /v1/subscriptions               {plan_id, total_count, customer_notify?, notes?, ...}
    GET  /v1/subscriptions/{id}          the subscription as the fake has it now
    POST /v1/subscriptions/{id}/cancel   {cancel_at_cycle_end}: true keeps it active until current_end
                                         (cancelled at once when it has no period yet), false cancels now
    GET  /v1/plans/{id}                  the plan: period, interval, item {amount, currency, …} (B3)
    GET  /v1/subscriptions               ?plan_id, from, to (Unix seconds, on created_at), count (1-100,
                                         default 10), skip: {"entity":"collection","count","items"}, newest
                                         first (RZ "Fetch All Subscriptions")

Every /v1 request needs `Authorization: Basic base64(key_id:key_secret)` with `Basic` spelled exactly so
(401 `{"error":{"code":"BAD_REQUEST_ERROR","description":"Authentication failed",...}}` otherwise). An
unknown subscription or plan is 400 BAD_REQUEST_ERROR "The id provided does not exist", as Razorpay
answers; cancelling a cancelled/completed/expired one is 400 "... not cancellable in <status> status."

Nothing happens to a subscription by itself. A test moves it on with

    event = fake.authenticate(sub_id)                          # status authenticated
    event = fake.activate(sub_id, start, end)                  # active, current period [start, end)
    event = fake.charge(sub_id, "pay_1", 49900, start, end)    # active, the period, one payment captured
    event = fake.set_status(sub_id, "halted")                  # any status (cancelled sets ended_at)

each of which changes the fake's record of the subscription AND returns the webhook Razorpay would send
for it (a `WebhookEvent`: the JSON envelope as raw bytes, signed with the webhook secret, with its own
`x-razorpay-event-id`), taken at that moment, so an old event can be delivered after newer ones.
`fake.deliver(event, stack_url)` POSTs it to `<stack_url>/hooks/razorpay` (through nginx) and returns a
`Delivery` (status, text, elapsed seconds); its options flip one byte of the body after signing, send
another event id (a redelivery reuses the event's own), sign with another secret, or leave headers out.

Scenarios: `fail_next(n, status=500)` makes the next n API requests answer that status (429 or 5xx)
before acting on them; `lose_next_answers(n, how="500")` lets the next n POSTs act (a subscription is
created or cancelled) and then answers 500, or with "drop" cuts the connection unanswered, as when the
answer is lost on the way back; `delay_next(n, seconds)` makes the next n answer late, and
`slow_subscription(sub_id, seconds)` every request about one subscription. `reset()` clears them.

What happened is kept for assertions: `subscriptions` (id -> entity, live), `requests` (every API request:
method, path, headers, raw body, parsed JSON, status answered), `creates` and `cancels` (the JSON bodies
of those calls, with the subscription id), `deliveries` (every webhook sent and the status Atelier gave).

`checkout_signature` and `webhook_signature` are the two HMACs Razorpay documents (hex HMAC-SHA256 of
`payment_id|subscription_id` with the key secret, and of the raw webhook body with the webhook secret).
"""
import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from .serving import DispatchHandler, ServedFake

TERMINAL = ("cancelled", "completed", "expired")
# The webhook each status change fires (RZ-MD webhooks/subscriptions.md).
STATUS_EVENTS = {
    "authenticated": "subscription.authenticated",
    "active": "subscription.activated",
    "pending": "subscription.pending",
    "halted": "subscription.halted",
    "cancelled": "subscription.cancelled",
    "completed": "subscription.completed",
    "paused": "subscription.paused",
    "expired": "subscription.expired",
}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


# ---- signatures -------------------------------------------------------------------------------------

def checkout_signature(payment_id, subscription_id, key_secret):
    """What Checkout returns as razorpay_signature for a subscription payment: hex HMAC-SHA256 keyed with
    the key secret over `payment_id|subscription_id` (payment id first)."""
    message = f"{payment_id}|{subscription_id}".encode("utf-8")
    return hmac.new(key_secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def webhook_signature(body, secret):
    """X-Razorpay-Signature: hex HMAC-SHA256 of the raw body keyed with the webhook secret."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def new_secret():
    return secrets.token_urlsafe(18)


def new_id(prefix):
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(14))


# ---- webhook events ---------------------------------------------------------------------------------

class WebhookEvent:
    """One webhook as Razorpay sends it: `name` (e.g. subscription.charged), `body` (the raw bytes that
    are signed), `event_id` (x-razorpay-event-id), `signature` (hex, with the fake's webhook secret) and
    `payload` (the parsed envelope, for reading)."""

    def __init__(self, name, body, event_id, signature):
        self.name = name
        self.body = body
        self.event_id = event_id
        self.signature = signature

    @property
    def payload(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<WebhookEvent {self.name} {self.event_id}>"


class Delivery:
    """What Atelier answered to one webhook delivery."""

    def __init__(self, status, text, elapsed, headers):
        self.status = status
        self.status_code = status
        self.text = text
        self.elapsed = elapsed
        self.headers = headers

    def json(self):
        return json.loads(self.text)

    def __repr__(self):
        return f"<Delivery {self.status} in {self.elapsed:.2f}s: {self.text[:200]}>"


# ---- the server -------------------------------------------------------------------------------------

class _Handler(DispatchHandler):
    server_version = "RazorpayFake/1.0"


class RazorpayFake(ServedFake):
    handler_class, thread_name = _Handler, "razorpay-fake"

    def __init__(self, key_id="rzp_test_x", key_secret=None, webhook_secret=None, plan_id="plan_test",
                 plan_amount=49900, account_id="acc_test", port=0, host="127.0.0.1"):
        self.key_id = key_id
        self.key_secret = key_secret or new_secret()
        self.webhook_secret = webhook_secret or new_secret()
        self.plan_id = plan_id
        self.plan_amount = plan_amount
        self.plan_fetches = 0
        self.account_id = account_id
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self.subscriptions = {}
        self.requests = []
        self.creates = []
        self.cancels = []
        self.deliveries = []
        self.reset()

    # ---- scenarios ----

    def reset(self):
        """Every scenario back to normal; subscriptions and what was recorded stay."""
        with self._lock:
            self._failing = 0
            self._failing_status = 500
            self._lose = []
            self._delays = 0
            self._delay_seconds = 0.0
            self._slow = {}

    def fail_next(self, n, status=500):
        with self._lock:
            self._failing, self._failing_status = n, status

    def lose_next_answers(self, n, how="500"):
        """The next `n` POSTs are acted on, then answered 500 ("500") or not at all ("drop")."""
        assert how in ("500", "drop"), how
        with self._lock:
            self._lose = [how] * n

    def delay_next(self, n, seconds):
        """The next `n` API requests are answered only after `seconds`."""
        with self._lock:
            self._delays, self._delay_seconds = n, seconds

    def slow_subscription(self, sub_id, seconds):
        """Every request about this subscription is answered only after `seconds` (until reset)."""
        with self._lock:
            self._slow[sub_id] = seconds

    # ---- reading what happened ----

    def subscription(self, sub_id):
        with self._lock:
            return json.loads(json.dumps(self.subscriptions[sub_id]))

    def requests_to(self, method, path):
        with self._lock:
            return [dict(entry) for entry in self.requests if entry["method"] == method and entry["path"] == path]

    def cancels_of(self, sub_id):
        with self._lock:
            return [dict(entry) for entry in self.cancels if entry["subscription_id"] == sub_id]

    def create_of(self, sub_id):
        """The create request (its JSON body) that made this subscription."""
        with self._lock:
            return next(dict(entry) for entry in self.creates if entry["subscription_id"] == sub_id)

    # ---- moving a subscription on (each returns the matching webhook) ----

    def add_subscription(self, status="created", notes=None, **fields):
        """A subscription made directly in the fake (not through the API); returns its id."""
        with self._lock:
            entity = self._new_entity({"plan_id": self.plan_id, "total_count": 12, "notes": notes or {}})
            entity["status"] = status
            entity.update(fields)
            self.subscriptions[entity["id"]] = entity
            return entity["id"]

    def authenticate(self, sub_id):
        """The customer completed the authentication payment."""
        with self._lock:
            entity = self.subscriptions[sub_id]
            entity["status"] = "authenticated"
            entity["auth_attempts"] = entity.get("auth_attempts", 0) + 1
            entity["customer_id"] = entity.get("customer_id") or new_id("cust")
            return self.event("subscription.authenticated", sub_id)

    def activate(self, sub_id, start, end):
        """The subscription is active with the billing period [start, end)."""
        with self._lock:
            entity = self.subscriptions[sub_id]
            entity.update({"status": "active", "current_start": int(start), "current_end": int(end),
                           "charge_at": int(end)})
            entity["customer_id"] = entity.get("customer_id") or new_id("cust")
            return self.event("subscription.activated", sub_id)

    def charge(self, sub_id, payment_id, amount, start, end, status="captured"):
        """A successful charge for the period [start, end): the subscription is active for it and the
        event carries the payment."""
        with self._lock:
            entity = self.subscriptions[sub_id]
            entity.update({"status": "active", "current_start": int(start), "current_end": int(end),
                           "charge_at": int(end)})
            entity["customer_id"] = entity.get("customer_id") or new_id("cust")
            entity["paid_count"] = entity.get("paid_count", 0) + 1
            entity["remaining_count"] = max(entity.get("total_count", 12) - entity["paid_count"], 0)
            payment = {
                "id": payment_id, "entity": "payment", "amount": int(amount), "currency": "INR", "status": status,
                "order_id": new_id("order"), "invoice_id": new_id("inv"), "international": False, "method": "card",
                "amount_refunded": 0, "refund_status": None, "captured": "1" if status == "captured" else False,
                "description": "Recurring payment", "card_id": new_id("card"), "bank": None, "wallet": None,
                "vpa": None, "email": "customer@example.test", "contact": "+919876543210",
                "customer_id": entity["customer_id"], "fee": 0, "tax": 0, "error_code": None,
                "error_description": None, "created_at": int(time.time()),
            }
            return self.event("subscription.charged", sub_id, payment=payment)

    def set_status(self, sub_id, status, event=None, **fields):
        """Any status (and other entity fields); the event is the one that status fires unless `event`."""
        with self._lock:
            entity = self.subscriptions[sub_id]
            entity["status"] = status
            if status in TERMINAL and entity.get("ended_at") is None:
                entity["ended_at"] = int(time.time())
            entity.update(fields)
            return self.event(event or STATUS_EVENTS.get(status, "subscription.updated"), sub_id)

    def event(self, name, sub_id, payment=None, created_at=None):
        """The webhook `name` for the subscription as the fake has it now (and `payment` if given)."""
        with self._lock:
            contains = ["subscription"] + (["payment"] if payment is not None else [])
            payload = {"subscription": {"entity": json.loads(json.dumps(self.subscriptions[sub_id]))}}
            if payment is not None:
                payload["payment"] = {"entity": payment}
        envelope = {"entity": "event", "account_id": self.account_id, "event": name, "contains": contains,
                    "payload": payload, "created_at": int(time.time()) if created_at is None else created_at}
        body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
        return WebhookEvent(name, body, new_id("evt"), webhook_signature(body, self.webhook_secret))

    # ---- delivering webhooks ----

    def deliver(self, event, to_url, flip_byte=None, event_id=None, secret=None, signature=None, body=None,
                omit=(), headers=None, timeout=30):
        """POSTs `event` to `to_url` (a stack's URL: /hooks/razorpay is added unless it is there already).
        `flip_byte`: True flips one byte of the signed body (a digit of the first current_end, so the
        body stays valid JSON and would change the period if it were believed), an int flips the byte at
        that index. `event_id`: another x-razorpay-event-id (by default the event's own, so delivering an
        event again is Razorpay's redelivery). `secret`: sign with this secret instead; `signature`: send
        this header value; `body`: send these bytes (signed unless `signature`). `omit`: header names to
        leave out. Returns a Delivery."""
        url = to_url if to_url.rstrip("/").endswith("/hooks/razorpay") else to_url.rstrip("/") + "/hooks/razorpay"
        raw = event.body if body is None else (body.encode("utf-8") if isinstance(body, str) else body)
        if signature is None:
            signature = event.signature if (secret is None and body is None) else \
                webhook_signature(raw, secret or self.webhook_secret)
        if flip_byte is not None and flip_byte is not False:
            raw = flip(raw, None if flip_byte is True else flip_byte)
        sent = {"Content-Type": "application/json", "X-Razorpay-Signature": signature,
                "x-razorpay-event-id": event_id or event.event_id, "User-Agent": "Razorpay-Webhook/v1"}
        for name in omit:
            for key in list(sent):
                if key.lower() == name.lower():
                    del sent[key]
        sent.update(headers or {})
        request = urllib.request.Request(url, data=raw, method="POST", headers=sent)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text, got = response.status, response.read().decode("utf-8", "replace"), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, text, got = error.code, error.read().decode("utf-8", "replace"), dict(error.headers)
        except (urllib.error.URLError, OSError) as error:
            status, text, got = 0, f"{type(error).__name__}: {error}", {}
        delivery = Delivery(status, text, time.monotonic() - started, got)
        with self._lock:
            self.deliveries.append({"event": event.name, "event_id": sent.get("x-razorpay-event-id"),
                                    "status": status, "elapsed": delivery.elapsed, "time": time.time()})
        return delivery

    # ---- HTTP ----

    def _dispatch(self, handler, method):
        try:
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length) if length else b""
            parts = urllib.parse.urlsplit(handler.path)
            entry = {"method": method, "path": parts.path, "query": parts.query,
                     "headers": dict(handler.headers.items()), "body": body, "json": None,
                     "time": time.time(), "status": None}
            with self._lock:
                self.requests.append(entry)
            status, payload = self._route(method, parts.path, handler.headers, body, entry)
            entry["status"] = status
            if method == "POST" and status < 400:
                with self._lock:
                    lost = self._lose.pop(0) if self._lose else None
                if lost == "drop":
                    entry["answer_lost"] = "drop"
                    handler.close_connection = True
                    handler.connection.shutdown(2)
                    return
                if lost == "500":
                    entry["answer_lost"] = "500"
                    status, payload = self._error(500, "The server encountered an error.", code="SERVER_ERROR")
            data = json.dumps(payload).encode("utf-8")
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _error(status, description, code="BAD_REQUEST_ERROR", field=None, reason="input_validation_failed"):
        return status, {"error": {"code": code, "description": description, "source": "business",
                                  "step": "payment_initiation", "reason": reason, "metadata": {}, "field": field}}

    def _authorised(self, headers):
        value = headers.get("Authorization") or ""
        scheme, _, credentials = value.partition(" ")
        if scheme != "Basic":  # exactly so: BASIC / basic are refused
            return False
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        key_id, sep, key_secret = decoded.partition(":")
        return bool(sep) and hmac.compare_digest(key_id, self.key_id) and hmac.compare_digest(key_secret, self.key_secret)

    @staticmethod
    def _parse(headers, body):
        if not body:
            return {}
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            return {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8")).items()}
        return json.loads(body)

    def _route(self, method, path, headers, body, entry):
        if not path.startswith("/v1/"):
            return 404, {"error": {"code": "BAD_REQUEST_ERROR", "description": "The requested URL was not found on the server."}}
        if not self._authorised(headers):
            return self._error(401, "Authentication failed", field=None, reason="authentication_failed")
        with self._lock:
            delay = self._delay_seconds if self._delays > 0 else 0
            self._delays = max(self._delays - 1, 0)
            about = re.match(r"/v1/subscriptions/([^/]+)", path)
            if about and about.group(1) in self._slow:
                delay = max(delay, self._slow[about.group(1)])
        if delay:
            time.sleep(delay)
        with self._lock:
            if self._failing > 0:
                self._failing -= 1
                status = self._failing_status
                return self._error(status, "Too many requests" if status == 429 else "The server encountered an error.",
                                   code="BAD_REQUEST_ERROR" if status == 429 else "SERVER_ERROR")
        try:
            data = self._parse(headers, body)
        except (ValueError, UnicodeDecodeError):
            return self._error(400, "The request body is not valid JSON.")
        if not isinstance(data, dict):
            return self._error(400, "The request body is not valid JSON.")
        entry["json"] = data

        if method == "POST" and path == "/v1/subscriptions":
            return self._create(data)
        match = re.fullmatch(r"/v1/plans/([^/]+)", path)
        if match and method == "GET":
            if match.group(1) != self.plan_id:
                return self._error(400, "The id provided does not exist", field="id")
            with self._lock:
                self.plan_fetches += 1
                return 200, {"id": self.plan_id, "entity": "plan", "interval": 1, "period": "monthly",
                             "item": {"id": "item_" + self.plan_id, "active": True, "name": "Atelier Premium",
                                      "description": None, "amount": self.plan_amount, "unit_amount": self.plan_amount,
                                      "currency": "INR", "type": "plan", "unit": None, "tax_inclusive": False,
                                      "hsn_code": None, "sac_code": None, "tax_rate": None, "tax_id": None,
                                      "tax_group_id": None, "created_at": 1580219935, "updated_at": 1580219935},
                             "notes": {}, "created_at": 1580219935}
        if method == "GET" and path == "/v1/subscriptions":
            return self._list(urllib.parse.parse_qs(entry["query"]))
        match = re.fullmatch(r"/v1/subscriptions/([^/]+)", path)
        if match and method == "GET":
            with self._lock:
                entity = self.subscriptions.get(match.group(1))
                if entity is None:
                    return self._error(400, "The id provided does not exist", field="id")
                return 200, json.loads(json.dumps(entity))
        match = re.fullmatch(r"/v1/subscriptions/([^/]+)/cancel", path)
        if match and method == "POST":
            return self._cancel(match.group(1), data)
        return self._error(400, "The requested URL was not found on the server.")

    def _new_entity(self, data):
        now = int(time.time())
        total = int(data.get("total_count") or 0)
        customer_notify = data.get("customer_notify", True)
        return {
            "id": new_id("sub"), "entity": "subscription", "plan_id": data["plan_id"], "customer_id": None,
            "status": "created", "current_start": None, "current_end": None, "ended_at": None,
            "quantity": int(data.get("quantity") or 1), "notes": data.get("notes") or {},
            "charge_at": data.get("start_at") or now, "start_at": data.get("start_at") or now,
            "end_at": None, "auth_attempts": 0, "total_count": total, "paid_count": 0,
            "customer_notify": bool(customer_notify) if customer_notify in (0, 1, True, False) else customer_notify,
            "created_at": now, "expire_by": data.get("expire_by"),
            "short_url": "https://rzp.io/i/" + secrets.token_urlsafe(6), "has_scheduled_changes": False,
            "change_scheduled_at": None, "source": "api", "offer_id": data.get("offer_id"),
            "remaining_count": total,
        }

    def _create(self, data):
        if not data.get("plan_id"):
            return self._error(400, "The plan id field is required.", field="plan_id")
        if data["plan_id"] != self.plan_id:
            return self._error(400, "The id provided does not exist", field="plan_id")
        total = data.get("total_count")
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            return self._error(400, "The total count field is required.", field="total_count")
        notes = data.get("notes")
        if notes is not None and (not isinstance(notes, dict) or len(notes) > 15):
            return self._error(400, "The notes must be key-value pairs, at most 15.", field="notes")
        with self._lock:
            entity = self._new_entity(data)
            self.subscriptions[entity["id"]] = entity
            self.creates.append({"subscription_id": entity["id"], "body": data})
            return 200, json.loads(json.dumps(entity))

    def _list(self, query):
        def number(name, default, low, high):
            values = query.get(name)
            if not values:
                return default, None
            try:
                value = int(values[-1])
            except ValueError:
                return None, self._error(400, f"The {name} must be an integer.", field=name)
            if not low <= value <= high:
                return None, self._error(400, f"The {name} must be between {low} and {high}.", field=name)
            return value, None
        count, problem = number("count", 10, 1, 100)
        if problem:
            return problem
        skip, problem = number("skip", 0, 0, 10**9)
        if problem:
            return problem
        start, problem = number("from", 0, 0, 2**40)
        if problem:
            return problem
        end, problem = number("to", 2**40, 0, 2**40)
        if problem:
            return problem
        plan = (query.get("plan_id") or [None])[-1]
        with self._lock:
            items = [e for e in self.subscriptions.values()
                     if start <= e["created_at"] <= end and (plan is None or e["plan_id"] == plan)]
            items.sort(key=lambda e: e["created_at"], reverse=True)
            page = json.loads(json.dumps(items[skip:skip + count]))
        return 200, {"entity": "collection", "count": len(page), "items": page}

    def _cancel(self, sub_id, data):
        at_cycle_end = data.get("cancel_at_cycle_end", False)
        if isinstance(at_cycle_end, str):
            at_cycle_end = at_cycle_end.lower() in ("1", "true")
        with self._lock:
            entity = self.subscriptions.get(sub_id)
            if entity is None:
                return self._error(400, "The id provided does not exist", field="id")
            self.cancels.append({"subscription_id": sub_id, "body": data})
            if entity["status"] in TERMINAL:
                return self._error(400, f"Subscription is not cancellable in {entity['status']} status.")
            if at_cycle_end and entity.get("current_end") is not None:
                # Stays as it is until the period ends; Razorpay then cancels it (a test does, with set_status).
                entity["has_scheduled_changes"] = True
                entity["change_scheduled_at"] = entity["current_end"]
                entity["end_at"] = entity["current_end"]
            else:
                entity["status"] = "cancelled"
                entity["ended_at"] = int(time.time())
            return 200, json.loads(json.dumps(entity))


def flip(raw, index=None):
    """`raw` with one byte changed. Without an index: the last digit of the first `"current_end":<n>`
    (so the JSON still parses), or the middle byte."""
    raw = bytearray(raw)
    if index is None:
        match = re.search(rb'"current_end":(\d+)', bytes(raw))
        index = match.end(1) - 1 if match else len(raw) // 2
    original = raw[index]
    raw[index] = original ^ 0x01
    if raw[index] in b'"\\' or raw[index] < 0x20:
        raw[index] = original ^ 0x02
    return bytes(raw)
