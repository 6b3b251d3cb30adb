"""Generation through Replicate, black-box: a second stack (`replicate_stack` in conftest.py) whose
functions are configured with REPLICATE_API_TOKEN and point at the Replicate fake (fakes/replicate.py),
which speaks the real HTTP API and sends signed webhooks back to /hooks/replicate through nginx.

Covered: the request Atelier sends for each task (model, endpoint, input, webhook and its events), the
generation's states through the webhooks, our own copy of every output under /media/, webhook signature
checks (forged, tampered, missing, stale timestamp, key rotation), redeliveries and out-of-order
deliveries, failed and canceled predictions (refunded once), 429 with Retry-After on create, the
maintenance cron reconciling a job whose webhook never came, an output that could not be downloaded,
and a job past its timeout, then prompt enhancement and video.

Time limits are never waited out: a job is aged by moving its timestamps in PostgreSQL. The first tests
check the fake itself (its signing against the published Standard Webhooks test vector, its lifecycle)
and need no stack.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import threading
import time
import uuid
from urllib.parse import urlparse

import pytest
import requests

import imagefiles
from fakes.images import image_dimensions
from fakes.replicate import WEBHOOK_BACKOFF, ReplicateFake, new_secret, sign
from test_accounts import register_and_verify, sql_text
from conftest import wait_until

IMAGE_MODEL_PATH = "/v1/models/black-forest-labs/flux-schnell/predictions"
INPAINT_MODEL_PATH = "/v1/models/black-forest-labs/flux-fill-dev/predictions"
VIDEO_MODEL_PATH = "/v1/models/minimax/video-01/predictions"
ENHANCE_MODEL_PATH = "/v1/models/meta/meta-llama-3-8b-instruct/predictions"
UPSCALER = "nightmareai/real-esrgan"
UPSCALER_VERSION = "f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa"
# What SharedKit/Domain/Generation/Catalog.swift adds to a provider's prompt for these choices.
CINEMATIC_TERMS = "cinematic still, dramatic lighting, anamorphic, film grain"
WARM_TERMS = "warm colour palette, amber and crimson tones"
GENERATION_KEYS = {"id", "task", "status", "error", "cost", "refunded", "image_ids", "video_ids",
                   "created_at", "started_at", "completed_at"}
OPEN = ("queued", "running")
ENDED_UNSUCCESSFULLY = ("failed", "canceled")
TEST_VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330,
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


# ---- helpers -----------------------------------------------------------------------------------------

class Client:
    """A verified, logged-in user of the Replicate stack: a cookie jar and its CSRF token."""

    def __init__(self, stack, http, email, csrf):
        self.stack, self.http, self.email, self.csrf = stack, http, email, csrf

    def api(self, method, path, body=None, files=None, data=None, timeout=120):
        headers = {"X-CSRF-Token": self.csrf}
        if method not in ("GET", "HEAD"):
            headers["Origin"] = self.stack.url
        extra = {"json": body} if body is not None else {}
        return self.http.request(method, self.stack.api(path), headers=headers, files=files, data=data,
                                 timeout=timeout, **extra)

    def generation(self, generation_id):
        r = self.api("GET", f"/api/v1/generations/{generation_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def quota_used(self):
        r = self.api("GET", "/api/v1/profile")
        assert r.status_code == 200, r.text
        return r.json()["quota"]["used"]

    def wait_generation(self, generation_id, statuses, timeout=30.0):
        """Polls the generation until its status is one of `statuses`; fails naming the last one seen."""
        statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
        deadline = time.monotonic() + timeout
        while True:
            generation = self.generation(generation_id)
            if generation["status"] in statuses:
                return generation
            if time.monotonic() > deadline:
                raise AssertionError(f"generation still {generation['status']} after {timeout}s, "
                                     f"expected {statuses}: {generation}")
            time.sleep(0.2)

    def make_premium(self):
        self.stack.psql(f"UPDATE users SET premium_until = now() + interval '30 days' "
                        f"WHERE email = {sql_text(self.email)}")


@pytest.fixture
def client(replicate_stack, smtp):
    with requests.Session() as http:
        email, _, csrf = register_and_verify(replicate_stack, smtp, http)
        yield Client(replicate_stack, http, email, csrf)


def header(headers, name):
    """A header from a recorded request, whatever case the client wrote its name in."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def assert_generation(generation, task):
    assert GENERATION_KEYS <= set(generation), f"generation lacks {GENERATION_KEYS - set(generation)}: {generation}"
    uuid.UUID(generation["id"])
    assert generation["task"] == task, generation
    assert isinstance(generation["cost"], int) and generation["cost"] >= 1, generation
    return generation


def accepted(r, task):
    """A 202 carrying a queued (or already running) generation of `task`."""
    assert r.status_code == 202, f"expected 202 with a generation, got {r.status_code}: {r.text[:1000]}"
    generation = assert_generation(r.json()["generation"], task)
    assert generation["status"] in OPEN, generation
    assert generation["refunded"] is False and generation["completed_at"] is None, generation
    return generation


def create_image(client, fake, **body):
    """POST /api/v1/images; returns (generation, prediction id) after checking it made exactly one
    prediction at the fake."""
    body.setdefault("prompt", "a lighthouse on a cliff at dusk")
    mark = fake.mark()
    r = client.api("POST", "/api/v1/images", body)
    generation = accepted(r, "image")
    created = fake.created_since(mark)
    assert len(created) == 1, f"expected one prediction at Replicate, got {created}"
    return generation, created[0]


def transform(client, fake, fields, files):
    mark = fake.mark()
    r = client.api("POST", "/api/v1/images/transform", data=fields, files=files)
    created = fake.created_since(mark)
    return r, created


def run_cron(stack, timeout=120):
    """Runs maintenance-cron once as a process with the stack's environment; it must exit 0."""
    binary = os.path.join(stack.bin_dir, "maintenance-cron")
    assert os.access(binary, os.X_OK), f"there is no maintenance-cron binary in {stack.bin_dir}"
    import subprocess

    done = subprocess.run([binary], env=stack.app_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (f"maintenance-cron exited {done.returncode}\nstdout: {done.stdout[-3000:]}\n"
                                  f"stderr: {done.stderr[-3000:]}")
    return done


def final_webhooks(fake, prediction_id, kind=None):
    return [e for e in fake.webhooks_for(prediction_id)
            if e["event"] == "completed" and (kind is None or e["kind"] == kind)]


def wait_final_webhook(fake, prediction_id, count=1, timeout=20.0):
    """Waits until `count` final-webhook deliveries for the prediction have been answered (or failed)."""
    assert fake.wait_for(lambda: len(final_webhooks(fake, prediction_id)) >= count, timeout), (
        f"{len(final_webhooks(fake, prediction_id))} final webhooks for {prediction_id}, expected {count}: "
        f"{fake.webhooks_for(prediction_id)}")
    return final_webhooks(fake, prediction_id)


def is_2xx(code):
    return code is not None and 200 <= code < 300


def media_response(stack, fake, url):
    """GETs a url Atelier gave for an output: it must be our storage under /media/, not the provider's."""
    assert isinstance(url, str) and url, f"no url: {url!r}"
    assert fake.root_url not in url and "replicate" not in url, f"the url points at the provider: {url}"
    full = url if url.startswith(("http://", "https://")) else stack.url + url
    assert urlparse(full).path.startswith("/media/"), f"not under /media/: {url}"
    r = requests.get(full, timeout=30)
    assert r.status_code == 200, f"{url}: {r.status_code}"
    return r


def assert_image_copy(stack, fake, prediction_id, image, expect_colour=True):
    """The image's url serves our copy of the prediction's output: an image whose centre has the colour
    the fake painted that prediction's output in."""
    r = media_response(stack, fake, image["url"])
    content_type = r.headers.get("Content-Type", "")
    assert content_type.split(";")[0] in ("image/webp", "image/png", "image/jpeg"), content_type
    suffix = {"image/webp": ".webp", "image/png": ".png", "image/jpeg": ".jpg"}[content_type.split(";")[0]]
    pixels = imagefiles.decode(r.content, suffix=suffix)
    if expect_colour:
        got = pixels.rgb(pixels.width // 2, pixels.height // 2)
        want = fake.colour_of(prediction_id)
        assert all(abs(a - b) <= 16 for a, b in zip(got, want)), (
            f"the stored image is not the provider's output: centre {got}, the output's colour {want}")
    return pixels


def show_image(client, image_id):
    r = client.api("GET", f"/api/v1/images/{image_id}")
    assert r.status_code == 200, r.text
    return r.json()


def images_of_generation(stack, generation_id):
    return int(stack.psql(f"SELECT count(*) FROM images WHERE generation_id = {sql_text(generation_id)}"))


def assert_rejected(code, text):
    """A refused webhook: 401 invalid_signature (or a 400)."""
    assert code in (400, 401), f"expected the webhook to be refused with 401 (or 400), got {code}: {text[:500]}"
    if code == 401:
        try:
            assert json.loads(text)["error"]["code"] == "invalid_signature", text
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"401 without the error shape naming invalid_signature: {text[:500]}")


def held_generation(client, fake, **body):
    """A generation whose prediction has succeeded at the fake but whose webhooks were never sent:
    a test then delivers them by hand."""
    fake.suppress_webhooks(True)
    fake.next_status("processing")
    generation, prediction_id = create_image(client, fake, **body)
    fake.wait_status(prediction_id, "processing")
    assert fake.finish(prediction_id, "succeeded", send=False)
    fake.suppress_webhooks(False)
    return generation, prediction_id


# ---- the fake itself ---------------------------------------------------------------------------------

def verify_standard_webhook(secret, headers, body, tolerance=300):
    """An independent Standard Webhooks verifier, written from the reference (part A9)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    if abs(time.time() - int(headers["webhook-timestamp"])) > tolerance:
        return False
    return any(hmac.compare_digest(part.split(",", 1)[1], expected)
               for part in headers["webhook-signature"].split(" ") if "," in part)


def test_signing_matches_the_published_standard_webhooks_test_vector():
    """The fake signs exactly as Replicate does: the test vector of the official clients."""
    v = TEST_VECTOR
    assert sign(v["secret"], v["id"], v["timestamp"], v["body"]) == v["signature"]
    assert sign(v["secret"], v["id"], str(v["timestamp"]), v["body"].decode()) == v["signature"]
    assert sign(v["secret"], v["id"], v["timestamp"] + 1, v["body"]) != v["signature"]


class _Receiver:
    """A webhook receiver for the fake's own tests: records each POST and answers `codes` in turn."""

    def __init__(self, codes=()):
        self.received, self.codes = [], list(codes)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/replicate"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lone_fake():
    fake = ReplicateFake(secret=new_secret(), starting_delay=0.05, processing_delay=0.1).start()
    receiver = _Receiver()
    yield fake, receiver
    receiver.close()
    fake.stop()


def test_the_fake_runs_predictions_with_the_real_output_shapes_and_signed_webhooks(lone_fake):
    fake, receiver = lone_fake
    auth = {"Authorization": "Bearer r8_test"}
    r = requests.post(fake.base_url + "/models/black-forest-labs/flux-schnell/predictions", json={"input": {"prompt": "x"}})
    assert r.status_code == 401 and r.json()["status"] == 401
    r = requests.post(fake.base_url + "/models/black-forest-labs/flux-schnell/predictions", headers=auth, json={
        "input": {"prompt": "x", "aspect_ratio": "16:9", "output_format": "webp", "num_outputs": 1},
        "webhook": receiver.url, "webhook_events_filter": ["start", "completed"]})
    assert r.status_code == 201, r.text
    prediction = r.json()
    assert prediction["status"] == "starting" and prediction["version"] == "hidden" and prediction["output"] is None
    assert prediction["urls"]["get"] == f"{fake.base_url}/predictions/{prediction['id']}"
    fake.wait_status(prediction["id"], "succeeded")
    assert fake.wait_for(lambda: len(receiver.received) == 2)
    statuses = [json.loads(body)["status"] for _, body in receiver.received]
    assert statuses == ["processing", "succeeded"]
    for headers, body in receiver.received:
        assert verify_standard_webhook(fake.secret, headers, body)
        assert not verify_standard_webhook(new_secret(), headers, body)
    output = requests.get(prediction["urls"]["get"], headers=auth).json()["output"]
    assert isinstance(output, list) and len(output) == 1 and output[0].endswith("-0.webp")
    file = requests.get(output[0])
    assert file.status_code == 200 and file.headers["Content-Type"] == "image/webp"
    pixels = imagefiles.decode(file.content, ".webp")
    assert pixels.width > pixels.height and pixels.rgb(3, 3) == fake.colour_of(prediction["id"])

    # The upscaler: the versions endpoint, one PNG URL, input downloaded; video: one MP4 URL.
    source = "data:image/png;base64," + base64.b64encode(imagefiles.stripes_png(40, 30)).decode()
    r = requests.post(fake.base_url + "/predictions", headers=auth,
                      json={"version": f"{UPSCALER}:{UPSCALER_VERSION}", "input": {"image": source, "scale": 2}})
    assert r.status_code == 201 and r.json()["version"] == UPSCALER_VERSION, r.text
    fake.wait_status(r.json()["id"], "succeeded")
    output = fake.prediction(r.json()["id"])["output"]
    assert isinstance(output, str) and output.endswith(".png")
    assert image_dimensions(requests.get(output).content) == (80, 60)
    r = requests.post(fake.base_url + "/models/minimax/video-01/predictions", headers={**auth, "Prefer": "wait=5"},
                      json={"input": {"prompt": "waves"}})
    assert r.status_code == 201 and r.json()["status"] == "succeeded", r.text
    assert requests.get(r.json()["output"]).content[4:12] == b"ftypmp42"

    # A non-official model on the models endpoint, a missing input, an unknown field.
    assert requests.post(fake.base_url + f"/models/{UPSCALER}/predictions", headers=auth,
                         json={"input": {"image": source}}).status_code == 404
    assert requests.post(fake.base_url + "/models/black-forest-labs/flux-schnell/predictions", headers=auth,
                         json={"input": {}}).status_code == 422
    assert requests.post(fake.base_url + "/models/black-forest-labs/flux-schnell/predictions", headers=auth,
                         json={"input": {"prompt": "x"}, "extra": 1}).status_code == 422


def test_the_fake_throttles_fails_cancels_and_retries_final_webhooks(lone_fake):
    fake, receiver = lone_fake
    auth = {"Authorization": "Bearer r8_test"}
    url = fake.base_url + "/models/black-forest-labs/flux-schnell/predictions"
    fake.rate_limit_next(1, retry_after=3)
    r = requests.post(url, headers=auth, json={"input": {"prompt": "x"}})
    assert r.status_code == 429 and r.headers["Retry-After"] == "3" and "throttled" in r.json()["detail"]

    fake.next_status("failed", error="NSFW content detected")
    receiver.codes = [500, 503]
    r = requests.post(url, headers=auth, json={"input": {"prompt": "x"}, "webhook": receiver.url,
                                               "webhook_events_filter": ["completed"]})
    failed = r.json()["id"]
    fake.wait_status(failed, "failed")
    assert fake.prediction(failed)["error"] == "NSFW content detected"
    assert fake.wait_for(lambda: len(final_webhooks(fake, failed)) == 3, timeout=5)
    attempts = final_webhooks(fake, failed)
    assert [a["code"] for a in attempts] == [500, 503, 200]
    assert len({a["webhook_id"] for a in attempts}) == 1

    fake.next_status("processing")
    r = requests.post(url, headers=auth, json={"input": {"prompt": "x"}, "webhook": receiver.url})
    held = r.json()["id"]
    fake.wait_status(held, "processing")
    r = requests.post(f"{fake.base_url}/predictions/{held}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert fake.cancels[-1]["prediction_id"] == held

    fake.fail_file_downloads(1)
    r = requests.post(url, headers={**auth, "Prefer": "wait"}, json={"input": {"prompt": "x"}})
    file_url = r.json()["output"][0]
    assert requests.get(file_url).status_code == 500
    assert requests.get(file_url).status_code == 200


# ---- images through Replicate ------------------------------------------------------------------------

def test_an_image_is_made_by_replicate_and_served_from_our_storage(replicate_stack, replicate, client):
    """POST /images answers 202 with a queued generation; Atelier asked flux-schnell on the models
    endpoint with its token, the prompt with the style's and colour's terms, the webhook and the start and
    completed events; the webhooks take the job to succeeded with one image, whose url serves our copy
    of the provider's output from /media/."""
    stack = replicate_stack
    before = client.quota_used()
    generation, prediction_id = create_image(client, replicate, prompt="a lighthouse on a cliff at dusk",
                                             style="cinematic", colour="warm", aspect_ratio="16:9", seed=1234)
    assert generation["image_ids"] == [] and generation["video_ids"] == []

    created = replicate.create_requests[prediction_id]
    assert created["path"] == IMAGE_MODEL_PATH, created["path"]
    assert header(created["headers"], "Authorization") == "Bearer r8_test"
    assert (header(created["headers"], "Content-Type") or "").startswith("application/json")
    body = created["body"]
    # The webhook URL names the generation, so a prediction whose create answer was lost is still found.
    assert body["webhook"] == (stack.app_env()["PUBLIC_BASE_URL"].rstrip("/") + "/hooks/replicate?generation="
                               + generation["id"]), body
    assert sorted(body["webhook_events_filter"]) == ["completed", "start"], body
    sent = body["input"]
    assert sent["prompt"] == f"a lighthouse on a cliff at dusk, {CINEMATIC_TERMS}, {WARM_TERMS}", sent
    assert sent["aspect_ratio"] == "16:9" and sent["seed"] == 1234, sent
    assert sent["output_format"] == "webp" and sent["num_outputs"] == 1, sent

    done = client.wait_generation(generation["id"], "succeeded")
    assert len(done["image_ids"]) == 1, done
    assert done["error"] is None and done["refunded"] is False, done
    assert done["started_at"] is not None and done["completed_at"] is not None, done
    hooks = replicate.webhooks_for(prediction_id)
    assert {e["event"] for e in hooks} == {"start", "completed"}, hooks
    assert all(is_2xx(e["code"]) for e in hooks), [(e["event"], e["code"], e["response"]) for e in hooks]
    assert any(g["status"] == 200 and g["name"].startswith(prediction_id) for g in replicate.file_gets), \
        "Atelier never downloaded the output file"

    image = show_image(client, done["image_ids"][0])
    if "generation_id" in image:
        assert image["generation_id"] == generation["id"], image
    assert image["kind"] == "generated", image
    assert_image_copy(stack, replicate, prediction_id, image)
    assert client.quota_used() == before + done["cost"]


def test_the_start_webhook_marks_the_job_running_until_the_final_one(replicate_stack, replicate, client):
    """After the `start` webhook the generation is running (started, not completed); the `completed`
    webhook ends it."""
    replicate.next_status("processing")
    generation, prediction_id = create_image(client, replicate)
    assert replicate.wait_for(lambda: any(e["event"] == "start" for e in replicate.webhooks_for(prediction_id)))
    [start] = [e for e in replicate.webhooks_for(prediction_id) if e["event"] == "start"]
    assert is_2xx(start["code"]), start
    running = client.generation(generation["id"])
    assert running["status"] == "running", running
    assert running["started_at"] is not None and running["completed_at"] is None, running
    assert running["image_ids"] == [], running

    assert replicate.finish(prediction_id, "succeeded")
    done = client.wait_generation(generation["id"], "succeeded")
    assert len(done["image_ids"]) == 1, done


def test_webhooks_signed_with_a_rotated_pair_of_keys_are_accepted(replicate_stack, replicate, client):
    """A webhook-signature header listing several signatures is valid when any of them is."""
    replicate.multi_signatures(True)
    generation, prediction_id = create_image(client, replicate)
    done = client.wait_generation(generation["id"], "succeeded")
    assert len(done["image_ids"]) == 1
    assert all(is_2xx(e["code"]) for e in replicate.webhooks_for(prediction_id))


# ---- webhook verification ----------------------------------------------------------------------------

def _forged(fake, pid):
    return fake.deliver(pid, secret=new_secret())


def _garbage(fake, pid):
    return fake.deliver(pid, signature="v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")


def _missing_signature(fake, pid):
    return fake.deliver(pid, omit=("webhook-signature",))


def _missing_id(fake, pid):
    return fake.deliver(pid, omit=("webhook-id",))


def _missing_timestamp(fake, pid):
    return fake.deliver(pid, omit=("webhook-timestamp",))


def _tampered(fake, pid):
    """Signed over the real body, sent with another output URL."""
    webhook_id, timestamp = "msg_tampered" + uuid.uuid4().hex[:12], int(time.time())
    signature = sign(fake.secret, webhook_id, timestamp, fake.webhook_body(pid))
    evil = fake.webhook_body(pid, output=["http://evil.test/x.webp"])
    return fake.deliver(pid, body=evil, webhook_id=webhook_id, timestamp=timestamp, signature=signature)


def _stale_timestamp(fake, pid):
    """Correctly signed, but its timestamp is ten minutes old (a replay)."""
    return fake.deliver(pid, timestamp=int(time.time()) - 600)


def _overflowing_timestamp(fake, pid):
    """A timestamp at the bottom of Int64: the age check must not overflow (it ended the process)."""
    return fake.deliver(pid, timestamp=-9223372036854775808)


@pytest.mark.parametrize("attempt", [_forged, _garbage, _missing_signature, _missing_id, _missing_timestamp,
                                     _tampered, _stale_timestamp, _overflowing_timestamp],
                         ids=["forged", "garbage", "no-signature", "no-id", "no-timestamp", "tampered-body",
                              "ten-minutes-old", "int64-min"])
def test_a_webhook_that_fails_verification_is_refused_and_changes_nothing(replicate_stack, replicate, client, attempt):
    """A final webhook with a bad, missing or stale signature is refused (401 invalid_signature, or 400)
    and the generation stays as it was; the same webhook correctly signed then completes it."""
    generation, prediction_id = held_generation(client, replicate)
    before = client.generation(generation["id"])
    assert before["status"] in OPEN, before

    code, text = attempt(replicate, prediction_id)
    assert_rejected(code, text)
    time.sleep(0.3)
    after = client.generation(generation["id"])
    assert after["status"] == before["status"] and after["image_ids"] == [], after
    assert images_of_generation(replicate_stack, generation["id"]) == 0

    code, text = replicate.deliver(prediction_id)
    assert is_2xx(code), f"a correctly signed webhook was answered {code}: {text[:500]}"
    done = client.wait_generation(generation["id"], "succeeded")
    assert len(done["image_ids"]) == 1, done


def test_each_refused_replicate_webhook_is_logged_with_its_reason(replicate_stack, replicate, client):
    """The answer to a refused webhook says only invalid_signature; the admins' log says why."""
    generation, prediction_id = create_image(client, replicate)
    client.wait_generation(generation["id"], "succeeded")
    replicate_stack.psql("DELETE FROM webhook_deliveries WHERE provider = 'replicate'")
    for attempt in (_stale_timestamp, _forged, _missing_timestamp):
        status, _ = attempt(replicate, prediction_id)
        assert status == 401, (attempt.__name__, status)
    outcomes = replicate_stack.psql("SELECT string_agg(outcome, ',' ORDER BY id) FROM webhook_deliveries WHERE provider = 'replicate'")
    assert outcomes == "stale_timestamp,invalid_signature,missing_headers", outcomes


def test_forged_webhooks_are_refused_and_the_reconciler_still_completes_the_job(replicate_stack, replicate, client):
    """Every delivery (and retry) of a webhook signed with an unknown key is refused; the job stays open
    until maintenance-cron asks Replicate and completes it."""
    replicate.forge_signatures(True)
    generation, prediction_id = create_image(client, replicate)
    attempts = wait_final_webhook(replicate, prediction_id, count=1 + len(WEBHOOK_BACKOFF))
    for entry in replicate.webhooks_for(prediction_id):
        assert_rejected(entry["code"], entry["response"])
    assert len({a["webhook_id"] for a in attempts}) == 1
    still = client.generation(generation["id"])
    assert still["status"] in OPEN and still["image_ids"] == [], still

    run_cron(replicate_stack)
    done = client.wait_generation(generation["id"], "succeeded", timeout=10)
    assert len(done["image_ids"]) == 1, done
    assert replicate.requests_to("GET", f"/v1/predictions/{prediction_id}"), "the cron never asked Replicate"
    assert_image_copy(replicate_stack, replicate, prediction_id, show_image(client, done["image_ids"][0]))


def test_a_redelivered_webhook_has_one_effect(replicate_stack, replicate, client):
    """The final webhook delivered twice with the same webhook-id, then once more under a new id: each
    is answered 2xx, and the job has one image and was charged once."""
    before = client.quota_used()
    replicate.duplicate_webhooks(True)
    generation, prediction_id = create_image(client, replicate)
    deliveries = wait_final_webhook(replicate, prediction_id, count=2)
    assert [d["kind"] for d in deliveries] == ["normal", "duplicate"], deliveries
    assert deliveries[0]["webhook_id"] == deliveries[1]["webhook_id"]
    assert all(is_2xx(d["code"]) for d in deliveries), [(d["code"], d["response"]) for d in deliveries]
    done = client.wait_generation(generation["id"], "succeeded")

    code, text = replicate.deliver(prediction_id)  # the same final state under a webhook-id never seen
    assert is_2xx(code), f"{code}: {text[:500]}"
    time.sleep(0.5)
    again = client.generation(generation["id"])
    assert again["status"] == "succeeded" and again["image_ids"] == done["image_ids"], again
    assert again["completed_at"] == done["completed_at"], again
    assert images_of_generation(replicate_stack, generation["id"]) == 1
    assert client.quota_used() == before + done["cost"]


def test_a_stale_webhook_after_the_final_one_does_not_move_the_job_back(replicate_stack, replicate, client):
    """The `start` webhook (status processing) arriving after `completed` leaves the job succeeded."""
    replicate.send_out_of_order(True)
    generation, prediction_id = create_image(client, replicate)
    assert replicate.wait_for(lambda: any(e["kind"] == "stale" for e in replicate.webhooks_for(prediction_id)), 20)
    [stale] = [e for e in replicate.webhooks_for(prediction_id) if e["kind"] == "stale"]
    assert stale["prediction_status"] == "processing"
    assert stale["code"] is not None and stale["code"] < 500, stale
    assert is_2xx(stale["code"]), f"a valid (if stale) webhook was answered {stale['code']}: {stale['response'][:300]}"
    done = client.wait_generation(generation["id"], "succeeded")
    time.sleep(0.3)
    after = client.generation(generation["id"])
    assert after == done, (done, after)
    assert len(after["image_ids"]) == 1


def test_a_webhook_for_an_unknown_prediction_is_not_a_server_error(replicate_stack, replicate, client):
    generation, prediction_id = held_generation(client, replicate)
    body = replicate.webhook_body(prediction_id, id="unknown" + uuid.uuid4().hex[:19])
    code, text = replicate.deliver(prediction_id, body=body)
    assert code is not None and code < 500, f"{code}: {text[:500]}"
    assert client.generation(generation["id"])["status"] in OPEN
    replicate.deliver(prediction_id)
    client.wait_generation(generation["id"], "succeeded")


# ---- failures, refunds and retries -------------------------------------------------------------------

@pytest.mark.parametrize("status,error", [("failed", "NSFW content detected"),
                                          ("failed", "CUDA out of memory. Tried to allocate 2.00 GiB"),
                                          ("canceled", None)],
                         ids=["nsfw", "provider-error", "canceled-at-provider"])
def test_a_prediction_that_does_not_succeed_fails_the_job_and_refunds_it(replicate_stack, replicate, client,
                                                                         status, error):
    """A failed (or canceled) prediction makes the generation failed (or canceled) with a message for the
    user, refunded, no image, and the quota back where it was."""
    before = client.quota_used()
    replicate.next_status(status, error=error)
    generation, prediction_id = create_image(client, replicate)
    done = client.wait_generation(generation["id"], ENDED_UNSUCCESSFULLY)
    if status == "failed":
        assert done["status"] == "failed", done
    assert isinstance(done["error"], str) and done["error"].strip(), done
    if error and error.startswith("NSFW"):
        assert re.search(r"safe|nsfw|filter|content|polic", done["error"], re.I), (
            f"the message does not say the safety filter refused the prompt: {done['error']!r}")
    assert done["refunded"] is True and done["image_ids"] == [], done
    assert client.quota_used() == before
    assert all(is_2xx(e["code"]) for e in final_webhooks(replicate, prediction_id))


def test_a_throttled_create_is_retried_after_retry_after(replicate_stack, replicate, client):
    """Two 429s with Retry-After: 1 on create: Atelier waits and tries again, and the job is created (202)
    and completes."""
    replicate.rate_limit_next(2, retry_after=1)
    first = len(replicate.creates)
    generation, prediction_id = create_image(client, replicate)
    attempts = replicate.creates[first:]
    assert [a["status"] for a in attempts] == [429, 429, 201], [a["status"] for a in attempts]
    gaps = [b["time"] - a["time"] for a, b in zip(attempts, attempts[1:])]
    assert all(gap >= 0.8 for gap in gaps), f"Retry-After: 1 was not honoured, gaps {gaps}"
    assert attempts[0]["body"] == attempts[-1]["body"]
    done = client.wait_generation(generation["id"], "succeeded")
    assert len(done["image_ids"]) == 1


def test_throttling_past_the_requests_patience_defers_the_job_to_the_cron(replicate_stack, replicate, client):
    """Replicate throttles with Retry-After: 30 (its limits reset on that scale), longer than a request
    waits: the create is not sent again within the request, which answers 202 with the job queued (a 429
    created nothing, so nothing is billed twice). While the throttling lasts, maintenance-cron tries once a
    run and leaves the job queued; once it ends, the cron starts the job and its webhook completes it."""
    before = client.quota_used()
    replicate.rate_limit_next(10_000, retry_after=30)
    first = len(replicate.creates)
    started = time.monotonic()
    r = client.api("POST", "/api/v1/images", {"prompt": "a patient fox"})
    took = time.monotonic() - started
    generation = accepted(r, "image")
    assert generation["status"] == "queued", generation
    assert took < 10, f"the request waited {took:.0f}s for a Retry-After it could not honour"
    assert [c["status"] for c in replicate.creates[first:]] == [429]
    run_cron(replicate_stack)
    assert [c["status"] for c in replicate.creates[first:]] == [429, 429]
    assert client.generation(generation["id"])["status"] == "queued"

    replicate.reset()
    run_cron(replicate_stack)
    created = [c for c in replicate.creates[first:] if c["status"] == 201]
    assert len(created) == 1, replicate.creates[first:]
    assert created[0]["body"]["input"]["prompt"].startswith("a patient fox"), created[0]["body"]
    done = client.wait_generation(generation["id"], "succeeded", timeout=20)
    assert len(done["image_ids"]) == 1, done
    assert client.quota_used() == before + done["cost"]


def test_a_deferred_job_that_never_starts_times_out_and_is_refunded(replicate_stack, replicate, client):
    before = client.quota_used()
    replicate.rate_limit_next(10_000, retry_after=30)
    try:
        generation = accepted(client.api("POST", "/api/v1/images", {"prompt": "a very patient fox"}), "image")
        replicate_stack.psql(f"UPDATE generations SET created_at = now() - interval '2 hours' WHERE id = '{generation['id']}'")
        run_cron(replicate_stack)
        done = client.wait_generation(generation["id"], ENDED_UNSUCCESSFULLY, timeout=10)
        assert done["refunded"] is True and done["error"], done
        assert client.quota_used() == before
    finally:
        replicate.reset()


@pytest.mark.parametrize("how", ["500", "drop"])
def test_a_create_whose_answer_is_lost_is_sent_once_and_its_webhook_completes_it(replicate_stack, replicate,
                                                                                 client, how):
    """Replicate made the prediction but the answer was lost (a 5xx from a gateway in front of it, or the
    connection cut): a second POST could start a second billed prediction. Atelier sends the create once,
    answers 202 with the job queued, and the prediction's own webhook, whose URL names the generation,
    completes it (the old client retried and made two predictions)."""
    before = client.quota_used()
    replicate.lose_next_create_answers(1, how)
    generation, prediction_id = create_image(client, replicate)  # exactly one prediction at the fake
    assert generation["status"] == "queued", generation
    assert "generation=" + generation["id"] in replicate.prediction(prediction_id)["webhook"]
    done = client.wait_generation(generation["id"], "succeeded", timeout=20)
    assert len(done["image_ids"]) == 1, done
    assert client.quota_used() == before + done["cost"]
    assert len([c for c in replicate.creates if c.get("prediction_id") == prediction_id]) == 1


def test_a_lost_create_answer_with_no_webhook_is_found_by_the_reconciler(replicate_stack, replicate, client):
    """The same, and no webhook ever comes: maintenance-cron lists the recent predictions, finds the one
    whose webhook URL names the generation, and completes the job from it."""
    replicate.suppress_webhooks(True)
    replicate.lose_next_create_answers(1, "500")
    generation, prediction_id = create_image(client, replicate)
    replicate.wait_status(prediction_id, "succeeded")
    assert client.generation(generation["id"])["status"] in OPEN
    run_cron(replicate_stack)
    assert replicate.requests_to("GET", "/v1/predictions"), "the cron never listed the predictions"
    done = client.wait_generation(generation["id"], "succeeded", timeout=10)
    assert len(done["image_ids"]) == 1, done


# ---- the maintenance cron ----------------------------------------------------------------------------

@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_the_cron_completes_a_job_whose_webhook_never_came(replicate_stack, replicate, client, outcome):
    """No webhook at all: the job stays open until maintenance-cron polls Replicate, which completes it
    (with our copy of the output) or fails and refunds it."""
    before = client.quota_used()
    replicate.suppress_webhooks(True)
    if outcome == "failed":
        replicate.next_status("failed", error="Prediction interrupted; please retry (code: PA)")
    generation, prediction_id = create_image(client, replicate)
    replicate.wait_status(prediction_id, outcome)
    time.sleep(0.3)
    waiting = client.generation(generation["id"])
    assert waiting["status"] in OPEN and waiting["image_ids"] == [], waiting
    assert replicate.webhooks_for(prediction_id) == []

    run_cron(replicate_stack)
    assert replicate.requests_to("GET", f"/v1/predictions/{prediction_id}"), "the cron never asked Replicate"
    if outcome == "succeeded":
        done = client.wait_generation(generation["id"], "succeeded", timeout=10)
        assert len(done["image_ids"]) == 1, done
        assert_image_copy(replicate_stack, replicate, prediction_id, show_image(client, done["image_ids"][0]))
        assert client.quota_used() == before + done["cost"]
    else:
        done = client.wait_generation(generation["id"], "failed", timeout=10)
        assert done["refunded"] is True and done["error"], done
        assert client.quota_used() == before


def test_an_output_that_cannot_be_downloaded_is_copied_by_the_cron_later(replicate_stack, replicate, client):
    """The output file answers 500: the final webhook is still answered 200, the job stays running (not
    failed, not refunded); a cron run while the files still fail changes nothing; once they are back the
    cron copies the output and the job succeeds."""
    replicate.fail_file_downloads(1_000_000)
    generation, prediction_id = create_image(client, replicate)
    [final] = wait_final_webhook(replicate, prediction_id)[:1]
    assert is_2xx(final["code"]), f"the webhook was answered {final['code']}: {final['response'][:300]}"
    # The copy runs right after the webhook is acknowledged.
    assert wait_until(lambda: any(g["status"] == 500 and g["name"].startswith(prediction_id) for g in replicate.file_gets)), \
        "Atelier never tried to download the output"
    time.sleep(0.5)
    pending = client.generation(generation["id"])
    assert pending["status"] == "running", pending
    assert pending["refunded"] is False and pending["image_ids"] == [], pending

    run_cron(replicate_stack)
    still = client.generation(generation["id"])
    assert still["status"] == "running" and still["image_ids"] == [], still

    replicate.fail_file_downloads(0)
    run_cron(replicate_stack)
    done = client.wait_generation(generation["id"], "succeeded", timeout=10)
    assert len(done["image_ids"]) == 1 and done["refunded"] is False, done
    assert_image_copy(replicate_stack, replicate, prediction_id, show_image(client, done["image_ids"][0]))


def test_a_job_past_its_timeout_is_canceled_at_the_provider_and_refunded_once(replicate_stack, replicate, client):
    """A prediction that never ends: once the job is older than GENERATION_TIMEOUT_SECONDS (its timestamps
    moved back in PostgreSQL), maintenance-cron cancels it at Replicate, ends it failed (or canceled) and
    refunds it; the cancel's own webhook and a second cron run refund nothing more."""
    stack = replicate_stack
    before = client.quota_used()
    replicate.next_status("processing")
    generation, prediction_id = create_image(client, replicate)
    client.wait_generation(generation["id"], "running")
    assert client.quota_used() == before + generation["cost"]
    stack.psql(f"UPDATE generations SET created_at = now() - interval '1 hour', started_at = now() - interval '1 hour', "
               f"updated_at = now() - interval '1 hour' WHERE id = {sql_text(generation['id'])}")

    run_cron(stack)
    assert any(c["prediction_id"] == prediction_id for c in replicate.cancels), "the cron did not cancel at Replicate"
    assert replicate.prediction(prediction_id)["status"] == "canceled"
    done = client.wait_generation(generation["id"], ENDED_UNSUCCESSFULLY, timeout=10)
    assert done["refunded"] is True and done["error"], done
    assert client.quota_used() == before

    # The cancel's own `completed` webhook (status canceled) and another cron run change nothing.
    wait_final_webhook(replicate, prediction_id)
    assert all(is_2xx(e["code"]) for e in final_webhooks(replicate, prediction_id))
    run_cron(stack)
    time.sleep(0.3)
    assert client.quota_used() == before
    final = client.generation(generation["id"])
    assert final["status"] == done["status"] and final["refunded"] is True, final
    used = stack.psql(f"SELECT quota_used FROM users WHERE email = {sql_text(client.email)}")
    assert int(used) == before


# ---- the stuck-job view ------------------------------------------------------------------------------

@pytest.fixture
def admin_client(replicate_stack, smtp):
    """A second verified user of the Replicate stack, made an admin."""
    with requests.Session() as http:
        email, _, csrf = register_and_verify(replicate_stack, smtp, http)
        replicate_stack.psql(f"UPDATE users SET is_admin = true WHERE email = {sql_text(email)}")
        yield Client(replicate_stack, http, email, csrf)


def stuck_items(admin):
    r = admin.api("GET", "/api/v1/admin/generations/stuck")
    assert r.status_code == 200, r.text
    return {item["id"]: item for item in r.json()["items"]}


def age(stack, generation_id, minutes):
    stack.psql(f"UPDATE generations SET created_at = now() - interval '{minutes} minutes', "
               f"updated_at = now() - interval '{minutes} minutes' WHERE id = {sql_text(generation_id)}")


def reconcile_audits(stack, generation_id):
    return stack.psql(f"SELECT count(*) FROM audit_log WHERE action = 'reconcile_generation' "
                      f"AND before->>'generation_id' = {sql_text(generation_id)}")


def test_admins_see_stuck_jobs_with_the_providers_last_word_and_reconcile_one(replicate_stack, replicate, client,
                                                                             admin_client):
    """A job whose webhook never came, older than an image should take, is listed for admins (and only for
    them) with its owner, age, what it waits for and Replicate's last status; reconciling it asks Replicate
    now and completes it with our copy of the output, audited; a job that is not open is a 409, an unknown
    one a 404. A job not yet overdue is not listed."""
    stack = replicate_stack
    replicate.suppress_webhooks(True)
    replicate.next_status("processing")
    generation, prediction_id = create_image(client, replicate)
    fresh, _ = create_image(client, replicate)
    replicate.wait_status(prediction_id, "processing")
    age(stack, generation["id"], 10)

    r = client.api("GET", "/api/v1/admin/generations/stuck")
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required", r.text
    assert client.api("POST", f"/api/v1/admin/generations/{generation['id']}/reconcile").status_code == 403

    items = stuck_items(admin_client)
    assert fresh["id"] not in items, "a job a minute old is not stuck"
    item = items[generation["id"]]
    assert item["user"]["email"] == client.email and item["provider"] == "replicate", item
    assert item["provider_id"] == prediction_id and item["waiting_for"] == "webhook", item
    # The last word heard: the create's answer (its webhooks never came), whatever the prediction did since.
    assert item["provider_status"] == "starting" and item["provider_checked_at"], item
    assert item["status"] in OPEN and item["age_seconds"] >= 590, item

    assert replicate.finish(prediction_id, "succeeded", send=False)
    r = admin_client.api("POST", f"/api/v1/admin/generations/{generation['id']}/reconcile")
    assert r.status_code == 200, r.text
    assert r.json()["step"] == "checked", r.text
    assert r.json()["generation"]["status"] == "succeeded" and r.json()["generation"]["provider_status"] == "succeeded", r.text
    assert replicate.requests_to("GET", f"/v1/predictions/{prediction_id}"), "Replicate was not asked"
    done = client.generation(generation["id"])
    assert done["status"] == "succeeded" and len(done["image_ids"]) == 1, done
    assert_image_copy(stack, replicate, prediction_id, show_image(client, done["image_ids"][0]))
    assert generation["id"] not in stuck_items(admin_client)
    assert reconcile_audits(stack, generation["id"]) == "1"
    audit = stack.psql(f"SELECT actor_label || ' ' || target_email || ' ' || (after->>'status') || ' ' || (after->>'step') "
                       f"FROM audit_log WHERE action = 'reconcile_generation' AND before->>'generation_id' = {sql_text(generation['id'])}")
    assert audit == f"{admin_client.email} {client.email} succeeded checked", audit

    r = admin_client.api("POST", f"/api/v1/admin/generations/{generation['id']}/reconcile")
    assert r.status_code == 409 and r.json()["error"]["code"] == "generation_not_open", r.text
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        r = admin_client.api("POST", f"/api/v1/admin/generations/{unknown}/reconcile")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    r = admin_client.api("GET", "/api/v1/admin/generations/stuck?older_than=soon")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_filter", r.text
    assert reconcile_audits(stack, generation["id"]) == "1", "a refused reconcile is not an action"


def test_reconciling_a_lost_create_finds_its_prediction_and_an_overdue_job_is_stopped(replicate_stack, replicate,
                                                                                      client, admin_client):
    """A job whose create answer was lost shows as waiting for a lost create; reconciling it finds the
    prediction by its webhook URL and completes the job. A job past its timeout whose prediction never ends
    is canceled at Replicate, failed and refunded once by the reconcile."""
    stack = replicate_stack
    replicate.suppress_webhooks(True)
    replicate.lose_next_create_answers(1, "500")
    lost, lost_prediction = create_image(client, replicate)
    replicate.wait_status(lost_prediction, "succeeded")
    age(stack, lost["id"], 10)
    item = stuck_items(admin_client)[lost["id"]]
    assert item["waiting_for"] == "lost_create" and item["provider_id"] is None, item
    r = admin_client.api("POST", f"/api/v1/admin/generations/{lost['id']}/reconcile")
    assert r.status_code == 200 and r.json()["step"] == "adopted", r.text
    assert client.generation(lost["id"])["status"] == "succeeded"

    before = client.quota_used()
    replicate.next_status("processing")
    overdue, prediction_id = create_image(client, replicate)
    replicate.wait_status(prediction_id, "processing")
    age(stack, overdue["id"], 60)
    r = admin_client.api("POST", f"/api/v1/admin/generations/{overdue['id']}/reconcile")
    assert r.status_code == 200 and r.json()["step"] == "timed_out", r.text
    assert any(c["prediction_id"] == prediction_id for c in replicate.cancels), "not canceled at Replicate"
    done = client.generation(overdue["id"])
    assert done["status"] in ENDED_UNSUCCESSFULLY and done["refunded"] is True, done
    assert client.quota_used() == before


# ---- transforms, enhancement, video ------------------------------------------------------------------

def test_upscaling_uses_real_esrgan_by_version_and_keeps_our_copy(replicate_stack, replicate, client):
    source = imagefiles.stripes_png(64, 48)
    r, created = transform(client, replicate, {"mode": "upscale", "scale": "2"},
                           {"image": ("source.png", source, "image/png")})
    generation = accepted(r, "upscale")
    assert len(created) == 1, created
    prediction_id = created[0]
    request = replicate.create_requests[prediction_id]
    assert request["path"] == "/v1/predictions", request["path"]
    assert request["body"]["version"] in (f"{UPSCALER}:{UPSCALER_VERSION}", UPSCALER_VERSION), request["body"]
    assert request["body"]["input"]["scale"] == 2, request["body"]
    assert sorted(request["body"]["webhook_events_filter"]) == ["completed", "start"]

    done = client.wait_generation(generation["id"], "succeeded")
    fetched = replicate.inputs_fetched(prediction_id).get("image")
    assert fetched is not None and image_dimensions(fetched) == (64, 48), "the provider did not get the source image"
    images = [show_image(client, i) for i in done["image_ids"]]
    upscaled = [i for i in images if i["kind"] == "upscaled"]
    assert len(upscaled) == 1, images
    pixels = assert_image_copy(replicate_stack, replicate, prediction_id, upscaled[0])
    assert (pixels.width, pixels.height) == (128, 96)


def test_inpainting_uses_flux_fill_with_the_image_and_mask(replicate_stack, replicate, client):
    source = imagefiles.stripes_png(64, 64)
    mask = imagefiles.mask_png(64, 64, (16, 16, 48, 48))
    r, created = transform(client, replicate, {"mode": "inpaint", "prompt": "a red balloon"},
                           {"image": ("source.png", source, "image/png"), "mask": ("mask.png", mask, "image/png")})
    generation = accepted(r, "inpaint")
    assert len(created) == 1, created
    prediction_id = created[0]
    request = replicate.create_requests[prediction_id]
    assert request["path"] == INPAINT_MODEL_PATH, request["path"]
    sent = request["body"]["input"]
    assert "a red balloon" in sent["prompt"], sent
    assert sent.get("image") and sent.get("mask"), sorted(sent)

    done = client.wait_generation(generation["id"], "succeeded")
    fetched = replicate.inputs_fetched(prediction_id)
    assert image_dimensions(fetched.get("image", b"")) == (64, 64) and image_dimensions(fetched.get("mask", b"")) == (64, 64), \
        "the provider did not get the image and the mask"
    inpainted = [i for i in (show_image(client, x) for x in done["image_ids"]) if i["kind"] == "inpainted"]
    assert len(inpainted) == 1, done
    assert_image_copy(replicate_stack, replicate, prediction_id, inpainted[0])


def test_inpainting_keeps_the_pictures_size_and_sends_the_mask_by_url(replicate_stack, replicate, client):
    """flux-fill-dev answers about one megapixel unless asked for `megapixels: "match_input"` (and then
    fits the input within 1440×1440, on a 16-pixel grid): Atelier asks for it and brings the result back
    to the source's exact size. The mask goes as a URL of our media storage (inline, it would come back
    inside every webhook) and is deleted once the job is done."""
    source = imagefiles.stripes_png(1000, 600)
    mask = imagefiles.mask_png(1000, 600, (100, 100, 400, 300))
    r, created = transform(client, replicate, {"mode": "inpaint", "prompt": "a kite"},
                           {"image": ("source.png", source, "image/png"), "mask": ("mask.png", mask, "image/png")})
    generation = accepted(r, "inpaint")
    [prediction_id] = created
    sent = replicate.create_requests[prediction_id]["body"]["input"]
    assert sent.get("megapixels") == "match_input", sent
    assert sent["mask"].startswith(replicate_stack.url + "/media/"), sent["mask"][:80]
    done = client.wait_generation(generation["id"], "succeeded")
    assert image_dimensions(replicate.inputs_fetched(prediction_id)["mask"]) == (1000, 600)
    [inpainted] = [i for i in (show_image(client, x) for x in done["image_ids"]) if i["kind"] == "inpainted"]
    assert (inpainted["width"], inpainted["height"]) == (1000, 600), inpainted
    pixels = assert_image_copy(replicate_stack, replicate, prediction_id, inpainted)
    assert (pixels.width, pixels.height) == (1000, 600)
    assert wait_until(lambda: requests.get(sent["mask"], timeout=5).status_code == 404, timeout=10), \
        "the mask is still in media storage after the job ended"


def test_prompt_enhancement_answers_the_prompt_alone_without_the_models_preamble(replicate_stack, replicate, client):
    """Chat models often answer "Here is a more vivid prompt:" and a quoted prompt, sometimes with a note
    after it: the suggestion is the prompt alone."""
    replicate.llm_tokens = ["Here is a more ", "vivid prompt:\n\n", "\"A lighthouse glowing ", "amber at dusk\"",
                            "\n\nI added lighting details."]
    r = client.api("POST", "/api/v1/prompts/enhance", {"prompt": "a lighthouse"})
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == "A lighthouse glowing amber at dusk", r.json()


def test_prompt_enhancement_asks_llama_and_answers_the_joined_tokens(replicate_stack, replicate, client):
    marker = uuid.uuid4().hex[:8]
    replicate.llm_tokens = ["A ", "lighthouse ", "glowing ", "amber ", "at ", "dusk", f" {marker}"]
    before = client.quota_used()
    mark = replicate.mark()
    r = client.api("POST", "/api/v1/prompts/enhance", {"prompt": "a lighthouse"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompt"].strip() == "".join(replicate.llm_tokens).strip(), body
    assert body["original"] == "a lighthouse", body
    created = replicate.created_since(mark)
    assert len(created) == 1, created
    request = replicate.create_requests[created[0]]
    assert request["path"] == ENHANCE_MODEL_PATH, request["path"]
    assert "a lighthouse" in json.dumps(request["body"]["input"]), request["body"]
    assert client.quota_used() == before


def test_video_offers_only_what_minimax_video_01_takes(replicate_stack, replicate, client):
    """minimax/video-01's inputs are a prompt, prompt_optimizer and reference images: no aspect ratio (its
    output is 16:9) and no seed. GET /api/v1/videos/options says so; asking for 9:16 or a seed is a 400
    that costs nothing and reaches no provider (the old code accepted both and silently dropped them);
    the video made records no seed, and the provider is sent only what the model takes."""
    client.make_premium()
    r = client.api("GET", "/api/v1/videos/options")
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "minimax/video-01", "aspect_ratios": ["16:9"], "seed": False}, r.json()
    before = client.quota_used()
    mark = replicate.mark()
    r = client.api("POST", "/api/v1/videos", {"prompt": "a tall waterfall", "aspect_ratio": "9:16"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_aspect_ratio", r.text
    assert "16:9" in r.json()["error"]["message"]
    r = client.api("POST", "/api/v1/videos", {"prompt": "a tall waterfall", "seed": 7})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_seed", r.text
    assert replicate.created_since(mark) == [] and client.quota_used() == before
    r = client.api("POST", "/api/v1/videos", {"prompt": "a tall waterfall", "aspect_ratio": "16:9"})
    generation = accepted(r, "video")
    [prediction_id] = replicate.created_since(mark)
    assert set(replicate.create_requests[prediction_id]["body"]["input"]) == {"prompt", "prompt_optimizer"}
    done = client.wait_generation(generation["id"], "succeeded")
    video = client.api("GET", f"/api/v1/videos/{done['video_ids'][0]}").json()
    assert video["seed"] is None, video


def test_a_premium_video_is_made_by_minimax_and_served_from_our_storage(replicate_stack, replicate, client):
    mark = replicate.mark()
    r = client.api("POST", "/api/v1/videos", {"prompt": "waves rolling onto a beach"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "premium_required", r.text
    assert replicate.created_since(mark) == []

    client.make_premium()
    before = client.quota_used()
    r = client.api("POST", "/api/v1/videos", {"prompt": "waves rolling onto a beach"})
    generation = accepted(r, "video")
    [prediction_id] = replicate.created_since(mark)
    request = replicate.create_requests[prediction_id]
    assert request["path"] == VIDEO_MODEL_PATH, request["path"]
    assert "waves rolling onto a beach" in request["body"]["input"]["prompt"], request["body"]
    assert request["body"]["webhook"].endswith("/hooks/replicate?generation=" + generation["id"])

    done = client.wait_generation(generation["id"], "succeeded")
    assert len(done["video_ids"]) == 1 and done["image_ids"] == [], done
    r = client.api("GET", f"/api/v1/videos/{done['video_ids'][0]}")
    assert r.status_code == 200, r.text
    video = r.json()
    served = media_response(replicate_stack, replicate, video["url"])
    [(mp4, _)] = replicate.output_files(prediction_id)
    # The provider's file, with the AI-content mark appended (test_ai_marking.py checks the mark).
    assert served.content[:len(mp4)] == mp4, "the stored video is not the provider's output"
    assert served.headers.get("Content-Type", "").startswith("video/mp4"), served.headers.get("Content-Type")
    assert client.quota_used() == before + done["cost"]


def doctor(stack, **changes):
    """`atelier doctor --json` with the stack's configuration and `changes`: {check: [(status, detail)]}."""
    import json
    import subprocess

    env = stack.app_env()
    env.update(changes)
    run = subprocess.run([os.path.join(stack.bin_dir, "atelier"), "doctor", "--json"], env=env,
                         capture_output=True, text=True, timeout=60)
    report = json.loads(run.stdout)
    assert run.returncode == (0 if report["ok"] else 1), (run.returncode, run.stdout)
    found = {}
    for item in report["checks"]:
        found.setdefault(item["check"], []).append((item["status"], item["detail"]))
    return found


def test_doctor_checks_replicate_against_the_service(replicate_stack, replicate):
    """The token (GET /v1/account), every configured model (GET /v1/models/…) and the webhook secret's
    form: each right, then each wrong, named in one line."""
    good = doctor(replicate_stack)
    assert good["replicate token"] == [("ok", "accepted")], good
    assert all(status == "ok" for status, _ in good["replicate model"]) and len(good["replicate model"]) == 5, good
    assert good["replicate webhook secret"][0][0] == "ok", good
    assert good["public url"][0][0] == "fail" and "cannot deliver webhooks" in good["public url"][0][1], good

    bad = doctor(replicate_stack, REPLICATE_API_TOKEN="r8_wrong", REPLICATE_MODEL_IMAGE="nobody/nothing",
                 REPLICATE_WEBHOOK_SECRET="not-a-secret")
    assert bad["replicate token"][0][0] == "fail" and "refused" in bad["replicate token"][0][1], bad
    assert bad["replicate webhook secret"] == [("fail", "REPLICATE_WEBHOOK_SECRET does not have the form whsec_<base64>")]
    unknown = doctor(replicate_stack, REPLICATE_MODEL_IMAGE="nobody/nothing")
    assert ("fail", "no model nobody/nothing on Replicate") in unknown["replicate model"], unknown
