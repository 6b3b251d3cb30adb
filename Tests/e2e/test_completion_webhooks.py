"""Completion webhooks for API clients, through nginx on a stack of their own (no cron on a timer: the
tests run maintenance-cron when they mean to).

The receiver here verifies what it gets from the Standard Webhooks specification
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md), not from
Atelier's code: the signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed with the
base64-decoded secret after `whsec_`, each signature `v1,<base64>`, space-separated. It is checked against
the specification's own test vector first.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import private_stack, wait_until
from test_accounts import register_and_verify
from test_replicate import Client

SPEC_VECTOR = {  # standard-webhooks: libraries/python/tests/test_webhooks.py, test_sign_function
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": "1614265330",
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def spec_signature(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verifies(secret, headers, body, tolerance=300):
    """The specification's verification: a fresh timestamp and one matching `v1` signature."""
    msg_id, timestamp, signatures = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = spec_signature(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(candidate, expected)
               for candidate in signatures.split(" ") if candidate.startswith("v1,"))


def test_the_receiver_matches_the_specifications_vector():
    v = SPEC_VECTOR
    assert spec_signature(v["secret"], v["id"], v["timestamp"], v["body"]) == v["signature"]


class Receiver:
    """An HTTP endpoint on loopback that records each POST and answers the next status of `answers`
    (200 once they run out)."""

    def __init__(self):
        receiver = self
        self.received = []
        self.answers = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": body, "path": self.path})
                    status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/atelier"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hooks_stack():
    with private_stack("hooks", {"WEBHOOK_ALLOW_LOOPBACK": "1"}) as stack:
        yield stack


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def client(hooks_stack, smtp):
    with requests.Session() as session:
        email, _, csrf = register_and_verify(hooks_stack, smtp, session)
        yield Client(hooks_stack, session, email, csrf)


def run_cron(stack):
    done = subprocess.run([os.path.join(stack.bin_dir, "maintenance-cron")], env=stack.app_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def secret_of(client):
    r = client.api("GET", "/api/v1/webhooks/secret")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) == 32, body
    return body["secret"]


def deliveries(client, **query):
    r = client.api("GET", "/api/v1/webhooks/deliveries" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def make_image(client, url, prompt="a paper boat on a pond"):
    r = client.api("POST", "/api/v1/images", {"prompt": prompt, "webhook_url": url})
    assert r.status_code == 201, r.text
    return r.json()["generation"]


def test_a_finished_generation_is_posted_signed_to_its_webhook(hooks_stack, client, receiver):
    secret = secret_of(client)
    generation = make_image(client, receiver.url)
    assert generation["webhook_url"] == receiver.url
    wait_until(lambda: receiver.received, timeout=15)
    message = receiver.received[0]
    assert message["path"] == "/hooks/atelier"
    assert message["headers"]["content-type"] == "application/json"
    assert message["headers"]["webhook-id"].startswith("msg_")
    assert verifies(secret, message["headers"], message["body"]), message["headers"]
    # A wrong secret does not verify (the check is real).
    assert not verifies("whsec_" + base64.b64encode(b"x" * 32).decode(), message["headers"], message["body"])
    payload = json.loads(message["body"])
    assert payload["type"] == "generation.succeeded"
    data = payload["data"]
    assert data["id"] == generation["id"] and data["status"] == "succeeded", data
    assert data["provider"] == "local" and len(data["image_ids"]) == 1 and data["refunded"] is False
    [delivery] = deliveries(client, generation_id=generation["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1 and delivery["last_status"] == 200, delivery
    assert delivery["event"] == "generation.succeeded" and delivery["next_attempt_at"] is None
    assert len(receiver.received) == 1


def test_failed_attempts_are_retried_with_backoff_then_delivered(hooks_stack, client, receiver):
    secret = secret_of(client)
    receiver.answers = [500, 503]
    generation = make_image(client, receiver.url)
    wait_until(lambda: len(receiver.received) == 1, timeout=15)
    wait_until(lambda: deliveries(client, generation_id=generation["id"])[0]["attempts"] == 1, timeout=15)
    [delivery] = deliveries(client, generation_id=generation["id"])
    assert delivery["status"] == "pending" and delivery["last_status"] == 500, delivery
    assert "500" in delivery["last_error"]
    # The next attempt is about a minute away (60 s ± 10%), not now: the cron leaves it.
    wait = hooks_stack.psql(
        f"SELECT extract(epoch FROM next_attempt_at - last_attempt_at)::int FROM completion_webhooks WHERE id = '{delivery['id']}'")
    assert 53 <= int(wait) <= 67, wait
    run_cron(hooks_stack)
    assert len(receiver.received) == 1
    # Time passes; the cron tries again (503), then again (200).
    for expected in (2, 3):
        hooks_stack.psql(f"UPDATE completion_webhooks SET next_attempt_at = now() WHERE id = '{delivery['id']}'")
        run_cron(hooks_stack)
        assert len(receiver.received) == expected
    [delivery] = deliveries(client, generation_id=generation["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3, delivery
    # Every attempt is the same message: the same id and the same bytes, each freshly signed.
    ids = {m["headers"]["webhook-id"] for m in receiver.received}
    assert len(ids) == 1
    assert len({m["body"] for m in receiver.received}) == 1
    assert all(verifies(secret, m["headers"], m["body"]) for m in receiver.received)


def test_a_410_stops_the_message_and_redelivery_sends_it_again(hooks_stack, client, receiver):
    receiver.answers = [410]
    generation = make_image(client, receiver.url)
    wait_until(lambda: deliveries(client, generation_id=generation["id"])[0]["attempts"] == 1, timeout=15)
    [delivery] = deliveries(client, generation_id=generation["id"])
    assert delivery["status"] == "failed" and delivery["last_status"] == 410, delivery
    r = client.api("POST", f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    run_cron(hooks_stack)
    assert len(receiver.received) == 2
    assert receiver.received[0]["headers"]["webhook-id"] == receiver.received[1]["headers"]["webhook-id"]
    assert deliveries(client, generation_id=generation["id"])[0]["status"] == "delivered"
    # Another user's delivery is not found.
    assert client.api("POST", "/api/v1/webhooks/deliveries/00000000-0000-0000-0000-000000000000/redeliver").status_code == 404


def test_rotation_signs_with_both_secrets_for_a_day(hooks_stack, client, receiver):
    old = secret_of(client)
    r = client.api("POST", "/api/v1/webhooks/secret/rotate")
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != old and r.json()["previous_valid_until"] is not None
    assert secret_of(client) == new
    make_image(client, receiver.url)
    wait_until(lambda: receiver.received, timeout=15)
    message = receiver.received[0]
    assert len(message["headers"]["webhook-signature"].split(" ")) == 2
    assert verifies(new, message["headers"], message["body"]) and verifies(old, message["headers"], message["body"])
    # A day later only the new secret signs.
    hooks_stack.psql(f"UPDATE users SET webhook_secret_rotated_at = now() - interval '25 hours' "
                     f"WHERE email = '{client.email}'")
    make_image(client, receiver.url, prompt="a second boat")
    wait_until(lambda: len(receiver.received) == 2, timeout=15)
    second = receiver.received[1]
    assert len(second["headers"]["webhook-signature"].split(" ")) == 1
    assert verifies(new, second["headers"], second["body"]) and not verifies(old, second["headers"], second["body"])


def test_the_secret_is_for_browser_sessions_only(hooks_stack, client):
    r = client.api("POST", "/api/v1/keys", {"name": "program"})
    assert r.status_code == 201, r.text
    key = r.json()["secret"]
    headers = {"Authorization": f"Bearer {key}"}
    r = requests.get(hooks_stack.api("/api/v1/webhooks/secret"), headers=headers, timeout=10)
    assert r.status_code == 401, r.text
    # Deliveries are readable by programs.
    r = requests.get(hooks_stack.api("/api/v1/webhooks/deliveries"), headers=headers, timeout=10)
    assert r.status_code == 200 and r.json() == {"items": []}, r.text


@pytest.mark.parametrize("url", [
    "http://example.com/hook",                 # not https (and not loopback)
    "https://10.0.0.8/hook",                   # private
    "https://172.20.1.1/hook",
    "https://192.168.0.10/hook",
    "https://169.254.169.254/latest/meta-data",  # cloud metadata (link-local)
    "https://100.64.0.1/hook",                 # carrier-grade NAT
    "https://0.0.0.0/hook",
    "https://[fd00:ec2::254]/hook",            # AWS metadata over IPv6 (unique local)
    "https://[fe80::1]/hook",                  # link-local
    "https://[::ffff:10.0.0.8]/hook",          # IPv4-mapped private
    "https://[64:ff9b::a9fe:a9fe]/hook",       # NAT64 of 169.254.169.254
    "https://[2002:c0a8:0001::1]/hook",        # 6to4 of 192.168.0.1
    "https://2130706433/hook",                 # 127.0.0.1 as one number
    "https://0x7f.1/hook",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://printer.local/hook",
    "https://user:secret@example.com/hook",    # credentials in the URL
    "https://example.com/hook#fragment",
    "ftp://example.com/hook",
    "not a url",
])
def test_webhook_urls_inside_the_network_are_refused_before_charging(hooks_stack, client, url):
    before = client.quota_used()
    count = hooks_stack.psql(f"SELECT count(*) FROM generations g JOIN users u ON u.id = g.user_id WHERE u.email = '{client.email}'")
    r = client.api("POST", "/api/v1/images", {"prompt": "a boat", "webhook_url": url})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_webhook_url", r.text
    assert "webhook_url" in r.json()["error"]["message"]
    assert client.quota_used() == before
    assert hooks_stack.psql(
        f"SELECT count(*) FROM generations g JOIN users u ON u.id = g.user_id WHERE u.email = '{client.email}'") == count


def test_transform_takes_a_webhook_url_too(hooks_stack, client, receiver):
    import imagefiles

    r = client.api("POST", "/api/v1/images/transform", data={"mode": "upscale", "scale": "2", "webhook_url": receiver.url},
                   files={"image": ("p.png", imagefiles.solid_png(16, 16), "image/png")})
    assert r.status_code == 201, r.text
    wait_until(lambda: receiver.received, timeout=15)
    payload = json.loads(receiver.received[0]["body"])
    assert payload["type"] == "generation.succeeded" and payload["data"]["task"] == "upscale"
    r = client.api("POST", "/api/v1/images/transform", data={"mode": "upscale", "webhook_url": "https://10.1.1.1/x"},
                   files={"image": ("p.png", imagefiles.solid_png(16, 16), "image/png")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_webhook_url", r.text
