"""A fake Replicate for the black-box tests, in the standard library only.

It speaks Replicate's HTTP API (shared/reference/replicate-razorpay.md, part A) under `/v1`:

    POST /v1/models/{owner}/{name}/predictions   {input, webhook?, webhook_events_filter?, stream?}
    POST /v1/predictions                         {version, input, webhook?, webhook_events_filter?, stream?}
    GET  /v1/account                             the token's account (401 for another token)
    GET  /v1/predictions/{id}                    the prediction as it is now
    POST /v1/predictions/{id}/cancel             cancels it unless it already ended
    GET  /v1/predictions                         newest first, one page
    GET  /v1/models/{owner}/{name}               the model with its latest version

Every /v1 request needs `Authorization: Bearer <token>` (401 problem JSON otherwise). A prediction lives
on a thread of its own: `starting`, then `processing` after `starting_delay` seconds, then `succeeded` after
`processing_delay` more, with the output shape the real model has (flux-schnell and flux-fill-dev: a list
of WebP URLs, flux-fill-dev's about one megapixel unless `megapixels` is "match_input"; real-esrgan: one PNG URL; minimax/video-01: one MP4 URL; the Llama models: a list of string
tokens). The output files are served under `/files/` (no authentication): real images of one colour per
prediction (`colour_of(id)`), and MP4 bytes that start with a valid `ftyp` box. Input files given as
http(s) URLs are downloaded when the prediction runs, as Replicate does; a URL that does not answer 200
fails the prediction.

Webhooks are POSTed to the prediction's `webhook` on the events of its `webhook_events_filter` (default:
output and completed), signed the Standard Webhooks way (`sign`), and the final one is retried on a non-2xx
answer. Scenarios for the next predictions (each prediction keeps the settings it was created under):

    fake.next_status("failed", error="NSFW content detected")   # the next prediction ends so
    fake.next_status("processing")       # the next one starts and then runs until finish() or cancel
    fake.rate_limit_next(2, retry_after=1)   # the next 2 creates answer 429 with Retry-After
    fake.suppress_webhooks(True)         # no webhook at all (the reconciler path)
    fake.duplicate_webhooks(True)        # every final webhook twice, with the same webhook-id
    fake.send_out_of_order(True)         # the `start` webhook held back and sent after the final one
    fake.forge_signatures(True)          # webhooks signed with a key Atelier does not know
    fake.multi_signatures(True)          # `v1,<unknown key's> v1,<right one>`, as during key rotation
    fake.fail_file_downloads(3)          # the next 3 GETs of /files/* answer 500
    fake.lose_next_create_answers(1, "500")  # the next create makes its prediction (billed, webhooks and
                                         # all) but answers 500, or with "drop" closes the connection
                                         # unanswered: a gateway error or a cut after Replicate acted
    fake.llm_tokens = ["A ", "fox"]      # what the Llama models answer (joined, "A fox")
    fake.reset()                         # all of the above back to normal

What happened is kept for assertions: `predictions` (id -> the prediction JSON, live), `create_requests`
(id -> the path, headers and body that made it), `creates` (every create attempt, throttled ones too),
`requests` (everything), `webhook_log` (every delivery and the status Atelier answered), `cancels`,
`file_gets`.
"""
import base64
import datetime
import hashlib
import hmac
import json
import math
import re
import secrets
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from .images import image_dimensions, solid_png, solid_webp
from .serving import DispatchHandler, ServedFake

DEFAULT_SECRET = "whsec_" + base64.b64encode(b"atelier replicate fake secret!!!").decode()

TERMINAL = ("succeeded", "failed", "canceled", "aborted")
EVENTS = ("start", "output", "logs", "completed")
DEFAULT_EVENTS = ("output", "completed")
# Backoff between attempts of a final webhook (Replicate retries it "several times on an exponential backoff").
WEBHOOK_BACKOFF = (0.25, 0.5, 1.0, 2.0)

UPSCALER_VERSION = "f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa"


class Model:
    def __init__(self, output, required, official=True, versions=()):
        self.output = output          # "images" (a list of files), "image" (one file), "video", "tokens"
        self.required = required      # input fields the model's schema requires
        self.official = official      # official models take the models endpoint and answer version "hidden"
        self.versions = versions


MODELS = {
    "black-forest-labs/flux-schnell": Model("images", ("prompt",)),
    "black-forest-labs/flux-dev": Model("images", ("prompt",)),
    "black-forest-labs/flux-fill-dev": Model("images", ("prompt", "image")),
    "nightmareai/real-esrgan": Model("image", ("image",), official=False,
                                     versions=(UPSCALER_VERSION, "42fed1c4974146d4d2414e2be2c5277c7fcf05fcc3a73abf41610695738c1d7b")),
    "minimax/video-01": Model("video", ("prompt",)),
    "meta/meta-llama-3-8b-instruct": Model("tokens", ()),
    "meta/meta-llama-3-70b-instruct": Model("tokens", ()),
}
FILE_INPUTS = ("image", "mask", "first_frame_image", "subject_reference", "start_image")


# ---- signing ----------------------------------------------------------------------------------------

def sign(secret, webhook_id, timestamp, body):
    """The Standard Webhooks signature: `v1,` + base64 HMAC-SHA256 keyed with the base64-decoded part of
    the secret after `whsec_`, over `{id}.{timestamp}.{body}` (the raw body bytes)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    if isinstance(body, str):
        body = body.encode("utf-8")
    signed = f"{webhook_id}.{timestamp}.".encode("utf-8") + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def new_secret():
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _new_id(length=26, alphabet="abcdefghijklmnopqrstuvwxyz0123456789"):
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _webhook_id():
    return "msg_" + _new_id(27, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- output files -----------------------------------------------------------------------------------

def fake_mp4(seed):
    """Bytes that start with a valid `ftyp` box (what a server sniffs), then a `free` and an `mdat` box."""
    ftyp = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    free = struct.pack(">I", 16) + b"free" + b"\x00" * 8
    payload = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(128))
    mdat = struct.pack(">I", 8 + len(payload)) + b"mdat" + payload
    return ftyp + free + mdat


def _decode_data_uri(value):
    head, comma, data = value.partition(",")
    if not comma:
        return None
    try:
        if head.endswith(";base64"):
            return base64.b64decode(data, validate=True)
        return urllib.parse.unquote_to_bytes(data)
    except ValueError:
        return None


def _fill_size(source, megapixels):
    """What flux-fill-dev answers for a source of this size: about one megapixel ("1", the default) or a
    quarter ("0.25") at the source's aspect ratio, or the source's own size ("match_input") fitted within
    1440×1440; sides are multiples of 16 (the model's latent grid)."""
    width, height = source
    if megapixels == "match_input":
        factor = min(1.0, 1440 / width, 1440 / height)
    else:
        area = {"1": 1024 * 1024, "0.25": 512 * 512}.get(str(megapixels), 1024 * 1024)
        factor = math.sqrt(area / (width * height))
    return max(16, int(width * factor) // 16 * 16), max(16, int(height * factor) // 16 * 16)


def _aspect_size(aspect_ratio, area=256 * 256):
    match = re.fullmatch(r"(\d+):(\d+)", str(aspect_ratio or "1:1"))
    a, b = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
    width = math.sqrt(area * a / b)
    return max(16, round(width / 16) * 16), max(16, round(width * b / a / 16) * 16)


# ---- the fake ---------------------------------------------------------------------------------------

class _Prediction:
    """The fake's state for one prediction; `public` is the JSON the API shows."""

    def __init__(self, public, model, webhook, events, plan, settings, colour):
        self.public = public
        self.model = model
        self.webhook = webhook
        self.events = events
        self.plan = plan
        self.settings = settings
        self.colour = colour
        self.interrupted = threading.Event()   # canceled, finished by hand, or the fake stopping
        self.ended = threading.Event()
        self.held_start = None                 # (webhook-id, body) of a `start` webhook sent late
        self.inputs = {}                       # input field -> the bytes of a file input, as fetched


class _Handler(DispatchHandler):
    server_version = "ReplicateFake/1.0"


class ReplicateFake(ServedFake):
    handler_class, thread_name = _Handler, "replicate-fake"

    def __init__(self, secret=DEFAULT_SECRET, token="r8_test", port=0, host="127.0.0.1",
                 starting_delay=0.3, processing_delay=0.6):
        self.secret = secret
        self.token = token
        self.host = host
        self.port = port
        self.starting_delay = starting_delay
        self.processing_delay = processing_delay
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self._stopping = threading.Event()
        self._state = {}
        self.reset()
        self.predictions = {}
        self.create_requests = {}
        self.creates = []
        self.requests = []
        self.webhook_log = []
        self.cancels = []
        self.file_gets = []
        self.files = {}

    # ---- running ----

    def stop(self):
        self._stopping.set()
        with self._lock:
            for state in self._state.values():
                state.interrupted.set()
        super().stop()

    # ---- scenarios ----

    def reset(self):
        """Every scenario back to normal; what was recorded stays."""
        with self._lock:
            self._plans = []
            self._throttle = 0
            self._retry_after = 1
            self._suppress = False
            self._duplicate = False
            self._out_of_order = False
            self._forge = False
            self._multi = False
            self._failing_files = 0
            self._lose_answers = []
            self.llm_tokens = ["A ", "richer ", "prompt"]

    def next_status(self, status, error=None, output=None):
        """How the next prediction (each call queues one more) ends: `succeeded` (with `output` instead
        of the model's usual one if given), `failed` with `error`, `canceled`, or `processing` /
        `starting` to stay in that state until finish() or a cancel."""
        assert status in ("succeeded", "failed", "canceled", "aborted", "processing", "starting"), status
        if status == "failed" and error is None:
            error = "Prediction failed."
        with self._lock:
            self._plans.append({"status": status, "error": error, "output": output})

    def rate_limit_next(self, n, retry_after=1):
        with self._lock:
            self._throttle, self._retry_after = n, retry_after

    def suppress_webhooks(self, flag=True):
        with self._lock:
            self._suppress = flag

    def duplicate_webhooks(self, flag=True):
        with self._lock:
            self._duplicate = flag

    def send_out_of_order(self, flag=True):
        with self._lock:
            self._out_of_order = flag

    def forge_signatures(self, flag=True):
        with self._lock:
            self._forge = flag

    def multi_signatures(self, flag=True):
        with self._lock:
            self._multi = flag

    def lose_next_create_answers(self, n, how="500"):
        """The next `n` accepted creates make their prediction, but the answer is lost: "500" answers
        500 (as a proxy in front of Replicate can after the prediction was made), "drop" closes the
        connection without an answer."""
        assert how in ("500", "drop"), how
        with self._lock:
            self._lose_answers = [how] * n

    def fail_file_downloads(self, n):
        """The next `n` GETs of /files/* answer 500; 0 makes them work again."""
        with self._lock:
            self._failing_files = n

    def set_delays(self, starting=None, processing=None):
        if starting is not None:
            self.starting_delay = starting
        if processing is not None:
            self.processing_delay = processing

    # ---- reading what happened ----

    def mark(self):
        """A position in the list of created predictions, for `created_since`."""
        with self._lock:
            return len(self.create_requests)

    def created_since(self, mark):
        with self._lock:
            return list(self.create_requests)[mark:]

    def prediction(self, prediction_id):
        with self._lock:
            return json.loads(json.dumps(self.predictions[prediction_id]))

    def colour_of(self, prediction_id):
        return self._state[prediction_id].colour

    def inputs_fetched(self, prediction_id):
        """Input field -> the bytes the fake got for it (downloaded URL or decoded data URI)."""
        return dict(self._state[prediction_id].inputs)

    def webhooks_for(self, prediction_id):
        with self._lock:
            return [dict(entry) for entry in self.webhook_log if entry["prediction_id"] == prediction_id]

    def requests_to(self, method, path):
        with self._lock:
            return [dict(entry) for entry in self.requests if entry["method"] == method and entry["path"] == path]

    def output_files(self, prediction_id):
        """The (bytes, content type) of each output file of a prediction, in output order."""
        output = self.predictions[prediction_id]["output"]
        urls = output if isinstance(output, list) else [output]
        return [self.files[url.rsplit("/", 1)[1]] for url in urls if isinstance(url, str) and "/files/" in url]

    def wait_for(self, predicate, timeout=15.0, interval=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(interval)
        with self._lock:
            return predicate()

    def wait_status(self, prediction_id, statuses, timeout=15.0):
        statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
        ok = self.wait_for(lambda: self.predictions[prediction_id]["status"] in statuses, timeout)
        assert ok, f"prediction {prediction_id} is {self.predictions[prediction_id]['status']}, not {statuses}"

    # ---- driving a prediction by hand ----

    def finish(self, prediction_id, status="succeeded", output=None, error=None, send=True):
        """Ends a prediction now (one held by next_status("processing")): its output files are made as
        usual unless `output` is given. With `send`, the final webhook goes out (per its settings) before
        this returns. False when it had already ended."""
        state = self._state[prediction_id]
        state.interrupted.set()
        if status == "succeeded" and output is None:
            output = self._make_output(state)
        if status == "failed" and error is None:
            error = "Prediction failed."
        if not self._end(state, status, output, error):
            return False
        if send:
            self._send_final(state)
        return True

    def webhook_body(self, prediction_id, **changes):
        """The raw body a webhook for this prediction carries now, with `changes` applied to the JSON."""
        with self._lock:
            body = json.loads(json.dumps(self.predictions[prediction_id]))
        body.update(changes)
        return json.dumps(body).encode("utf-8")

    def deliver(self, prediction_id, body=None, webhook_id=None, timestamp=None, secret=None,
                signature=None, omit=(), url=None, event="manual"):
        """Sends one webhook now, outside the lifecycle, and returns (status, response text): `body`
        (bytes; the prediction as it is by default), signed with `secret` (the fake's by default) unless
        `signature` is given, without the headers named in `omit`. Logged with kind "manual"."""
        body = self.webhook_body(prediction_id) if body is None else body
        webhook_id = webhook_id or _webhook_id()
        timestamp = int(time.time()) if timestamp is None else timestamp
        if signature is None:
            signature = sign(secret or self.secret, webhook_id, timestamp, body)
        headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
        for name in omit:
            headers.pop(name, None)
        url = url or self._state[prediction_id].webhook
        return self._post(url, body, headers, {"prediction_id": prediction_id, "event": event, "kind": "manual",
                                               "webhook_id": webhook_id, "attempt": 1})

    # ---- HTTP ----

    def _dispatch(self, handler, method):
        try:
            body = self._read_body(handler)
            parts = urllib.parse.urlsplit(handler.path)
            path = parts.path
            entry = {"method": method, "path": path, "query": parts.query, "headers": dict(handler.headers.items()),
                     "body": body, "time": time.time(), "status": None}
            with self._lock:
                self.requests.append(entry)
            status, headers, payload = self._route(method, path, handler.headers, body, entry)
            entry["status"] = status
            if status is None:  # the connection is cut without an answer
                handler.close_connection = True
                handler.connection.shutdown(2)
                return
            self._respond(handler, method, status, headers, payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _read_body(handler):
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += handler.rfile.read(size)
                handler.rfile.readline()
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""

    @staticmethod
    def _respond(handler, method, status, headers, payload):
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload).encode("utf-8")
            content_type = "application/problem+json" if status >= 400 else "application/json"
            headers = [("Content-Type", content_type)] + list(headers)
        else:
            data = payload or b""
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    @staticmethod
    def _problem(status, title, detail, **extra):
        return status, [], {"type": "about:blank" if status != 429 else "https://replicate.com/docs/reference/http#rate-limits",
                            "title": title, "status": status, "detail": detail, **extra}

    def _route(self, method, path, headers, body, entry):
        if path.startswith("/files/"):
            return self._serve_file(method, path[len("/files/"):], headers)
        if not path.startswith("/v1/"):
            return self._problem(404, "Not found", "The requested resource could not be found.")
        auth = headers.get("Authorization", "")
        if auth != f"Bearer {self.token}":
            return self._problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        segments = path[len("/v1/"):].rstrip("/").split("/")
        if method == "POST" and len(segments) == 4 and segments[0] == "models" and segments[3] == "predictions":
            return self._create(f"{segments[1]}/{segments[2]}", path, headers, body)
        if method == "POST" and segments == ["predictions"]:
            return self._create(None, path, headers, body)
        if method == "GET" and segments == ["account"]:
            return 200, [], {"type": "organization", "username": "atelier-test", "name": "Atelier test",
                             "github_url": None}
        if method == "GET" and segments == ["predictions"]:
            with self._lock:
                results = [self.predictions[k] for k in reversed(list(self.predictions))][:100]
                return 200, [], {"next": None, "previous": None, "results": json.loads(json.dumps(results))}
        if method == "GET" and len(segments) == 2 and segments[0] == "predictions":
            with self._lock:
                if segments[1] not in self.predictions:
                    return self._problem(404, "Not found", "The requested resource could not be found.")
                return 200, [], json.loads(json.dumps(self.predictions[segments[1]]))
        if method == "POST" and len(segments) == 3 and segments[0] == "predictions" and segments[2] == "cancel":
            return self._cancel(segments[1])
        if method == "GET" and len(segments) == 3 and segments[0] == "models":
            name = f"{segments[1]}/{segments[2]}"
            if name not in MODELS:
                return self._problem(404, "Not found", "The requested resource could not be found.")
            model = MODELS[name]
            version = model.versions[0] if model.versions else hashlib.sha256(name.encode()).hexdigest()
            return 200, [], {"owner": segments[1], "name": segments[2], "url": f"https://replicate.com/{name}",
                             "visibility": "public", "latest_version": {"id": version, "created_at": _now_iso()}}
        return self._problem(404, "Not found", "The requested resource could not be found.")

    def _serve_file(self, method, name, headers):
        with self._lock:
            failing = self._failing_files > 0 and method == "GET"
            if failing:
                self._failing_files -= 1
            known = name in self.files
            self.file_gets.append({"name": name, "method": method, "time": time.time(),
                                   "authorization": headers.get("Authorization"),
                                   "status": 500 if failing else (200 if known else 404)})
        if failing:
            return 500, [("Content-Type", "text/plain")], b"Internal Server Error"
        if not known:
            return 404, [("Content-Type", "text/plain")], b"Not Found"
        data, content_type = self.files[name]
        return 200, [("Content-Type", content_type)], data

    def _create(self, model_name, path, headers, body):
        record = {"path": path, "headers": dict(headers.items()), "body": None, "time": time.time(),
                  "status": None, "prediction_id": None}
        with self._lock:
            self.creates.append(record)
        try:
            request = json.loads(body or b"null")
        except ValueError:
            record["status"] = 400
            return self._problem(400, "Bad request", "The request body is not valid JSON.")
        record["body"] = request
        with self._lock:
            if self._throttle > 0:
                self._throttle -= 1
                record["status"] = 429
                status, extra, payload = self._problem(
                    429, "Request was throttled",
                    f"Request was throttled. Your rate limit resets in ~{self._retry_after}s.")
                return status, extra + [("Retry-After", str(self._retry_after))], payload
        if not isinstance(request, dict):
            record["status"] = 422
            return self._problem(422, "Input validation failed", "The request body must be a JSON object.")
        allowed = {"input", "webhook", "webhook_events_filter", "stream"} | ({"version"} if model_name is None else set())
        problems = [f"- {key}: Additional property {key} is not allowed" for key in request if key not in allowed]
        version = "hidden"
        if model_name is None:
            model_name, version, problem = self._resolve_version(request.get("version"))
            if problem:
                problems.append(problem)
        model = MODELS.get(model_name)
        if model is None or (model.official is False and version == "hidden"):
            record["status"] = 404
            return self._problem(404, "Not found", f"The requested model {model_name} could not be found."
                                 + (" It is not an official model: give a version." if model else ""))
        inputs = request.get("input")
        if not isinstance(inputs, dict):
            problems.append("- input: Invalid type. Expected: object")
            inputs = {}
        for field in model.required:
            if inputs.get(field) in (None, ""):
                problems.append(f"- input.{field}: {field} is required")
        for field in FILE_INPUTS:
            value = inputs.get(field)
            if value is not None and not (isinstance(value, str) and re.match(r"(https?://|data:)", value)):
                problems.append(f"- input.{field}: Does not match format 'uri'")
        webhook = request.get("webhook")
        if webhook is not None and not (isinstance(webhook, str) and re.match(r"https?://", webhook)):
            problems.append("- webhook: Does not match format 'uri'")
        events = request.get("webhook_events_filter")
        if events is not None and not (isinstance(events, list) and all(e in EVENTS for e in events)):
            problems.append("- webhook_events_filter: must be a list of start, output, logs, completed")
        if problems:
            record["status"] = 422
            return self._problem(422, "Input validation failed", "\n".join(problems),
                                 invalid_fields=[{"type": "invalid", "field": p[2:].split(":")[0],
                                                  "description": p} for p in problems])
        prediction_id = _new_id()
        urls = {"get": f"{self.base_url}/predictions/{prediction_id}",
                "cancel": f"{self.base_url}/predictions/{prediction_id}/cancel",
                "web": f"https://replicate.com/p/{prediction_id}"}
        if request.get("stream"):
            urls["stream"] = f"{self.root_url}/stream/{prediction_id}"
        public = {"id": prediction_id, "model": model_name, "version": version, "input": inputs, "logs": "",
                  "output": None, "data_removed": False, "error": None, "status": "starting",
                  "created_at": _now_iso(), "started_at": None, "completed_at": None, "source": "api", "urls": urls}
        if webhook is not None:  # echoed in every prediction object (the JS client's Prediction type)
            public["webhook"] = webhook
            if events is not None:
                public["webhook_events_filter"] = events
        digest = hashlib.sha256(prediction_id.encode()).digest()
        colour = (40 + digest[0] % 176, 40 + digest[1] % 176, 40 + digest[2] % 176)
        with self._lock:
            plan = self._plans.pop(0) if self._plans else {"status": "succeeded", "error": None, "output": None}
            settings = {"suppress": self._suppress, "duplicate": self._duplicate, "out_of_order": self._out_of_order,
                        "forge": self._forge, "multi": self._multi}
            state = _Prediction(public, model, webhook, set(DEFAULT_EVENTS if events is None else events),
                                plan, settings, colour)
            self._state[prediction_id] = state
            self.predictions[prediction_id] = public
            self.create_requests[prediction_id] = {"path": path, "headers": record["headers"], "body": request}
            record["status"], record["prediction_id"] = 201, prediction_id
        threading.Thread(target=self._lifecycle, args=(state,), name=f"prediction-{prediction_id}", daemon=True).start()
        wait = re.fullmatch(r"\s*wait(?:=(\d+))?\s*", headers.get("Prefer", ""))
        if wait:
            state.ended.wait(min(60, int(wait.group(1) or 60)))
        with self._lock:
            lost = self._lose_answers.pop(0) if self._lose_answers else None
            if lost is not None:
                record["answer_lost"] = lost
            if lost == "500":
                return 500, [("Content-Type", "text/html")], b"<html><body>502 Bad Gateway</body></html>"
            if lost == "drop":
                return None, [], None
            return 201, [("Location", urls["get"])], json.loads(json.dumps(public))

    @staticmethod
    def _resolve_version(version):
        """(model name, version id, problem) for the three forms `version` takes."""
        if not isinstance(version, str) or not version:
            return None, None, "- version: version is required"
        name, _, version_id = version.partition(":")
        if re.fullmatch(r"[0-9a-f]{64}", name):
            for model_name, model in MODELS.items():
                if name in model.versions:
                    return model_name, name, None
            return None, None, "- version: Invalid version or not permitted"
        model = MODELS.get(name)
        if model is None:
            return name, None, None
        if not version_id:
            return name, "hidden", None
        if version_id not in model.versions:
            return name, None, "- version: Invalid version or not permitted"
        return name, version_id, None

    def _cancel(self, prediction_id):
        with self._lock:
            state = self._state.get(prediction_id)
            if state is None:
                return self._problem(404, "Not found", "The requested resource could not be found.")
            self.cancels.append({"prediction_id": prediction_id, "time": time.time(),
                                 "status_before": state.public["status"]})
        state.interrupted.set()
        if self._end(state, "canceled", None, None):
            threading.Thread(target=self._send_final, args=(state,), daemon=True).start()
        with self._lock:
            return 200, [], json.loads(json.dumps(state.public))

    # ---- the lifecycle ----

    def _pause(self, state, seconds):
        """Waits, or returns True as soon as the prediction is interrupted."""
        return state.interrupted.wait(seconds) or self._stopping.is_set()

    def _lifecycle(self, state):
        if self._pause(state, self.starting_delay) or state.plan["status"] == "starting":
            return
        with self._lock:
            if state.public["status"] in TERMINAL:
                return
            state.public.update(status="processing", started_at=_now_iso(),
                                logs=f"Using seed: {state.public['input'].get('seed', 0)}\n")
        if "start" in state.events:
            body = self._snapshot(state)
            if state.settings["out_of_order"]:
                state.held_start = (_webhook_id(), body)
            elif not state.settings["suppress"]:
                self._send(state, body, "start", _webhook_id(), retries=0)
        if state.plan["status"] == "processing" or self._pause(state, self.processing_delay):
            return
        status, error, output = state.plan["status"], state.plan["error"], state.plan["output"]
        if status == "succeeded":
            problem = self._fetch_inputs(state)
            if problem:
                status, error = "failed", problem
            elif output is None:
                output = self._make_output(state)
        if status == "succeeded" and "output" in state.events and not state.settings["suppress"]:
            with self._lock:
                state.public["output"] = output
            self._send(state, self._snapshot(state), "output", _webhook_id(), retries=0)
        if self._end(state, status, output, error):
            self._send_final(state)

    def _fetch_inputs(self, state):
        """Downloads file inputs as Replicate does; the error of a failed prediction when one fails."""
        for field in FILE_INPUTS:
            value = state.public["input"].get(field)
            if not isinstance(value, str):
                continue
            if value.startswith("data:"):
                data = _decode_data_uri(value)
                if data is None:
                    return f"Invalid data URI for input '{field}'."
                state.inputs[field] = data
                continue
            try:
                with urllib.request.urlopen(urllib.request.Request(value, headers={"User-Agent": "Replicate/1.0"}),
                                            timeout=10) as response:
                    state.inputs[field] = response.read()
            except (urllib.error.URLError, OSError, ValueError) as error:
                return f"Failed to download input '{field}' from {value}: {error}"
        return None

    def _make_output(self, state):
        """Makes and registers the model's output files; returns the `output` value."""
        model, inputs, pid = state.model, state.public["input"], state.public["id"]
        if model.output == "tokens":
            return list(self.llm_tokens)
        if model.output == "video":
            self.files[f"{pid}.mp4"] = (fake_mp4(pid), "video/mp4")
            return f"{self.root_url}/files/{pid}.mp4"
        source = image_dimensions(state.inputs.get("image", b""))
        if model.output == "image":
            scale = inputs.get("scale", 4)
            scale = scale if isinstance(scale, (int, float)) and 0 < scale <= 10 else 4
            width, height = (round(source[0] * scale), round(source[1] * scale)) if source else (256, 256)
            width, height = min(width, 4096), min(height, 4096)
            self.files[f"{pid}.png"] = (solid_png(width, height, state.colour), "image/png")
            return f"{self.root_url}/files/{pid}.png"
        width, height = source or _aspect_size(inputs.get("aspect_ratio"))
        if state.public["model"] == "black-forest-labs/flux-fill-dev" and source:
            width, height = _fill_size(source, inputs.get("megapixels", "1"))
        count = inputs.get("num_outputs", 1)
        count = count if isinstance(count, int) and 1 <= count <= 4 else 1
        fmt = inputs.get("output_format", "webp")
        urls = []
        for i in range(count):
            if fmt == "png":
                name, data, content_type = f"{pid}-{i}.png", solid_png(width, height, state.colour), "image/png"
            else:
                name, data, content_type = f"{pid}-{i}.webp", solid_webp(width, height, state.colour), "image/webp"
            self.files[name] = (data, content_type)
            urls.append(f"{self.root_url}/files/{name}")
        return urls

    def _end(self, state, status, output, error):
        """The terminal transition, once: False when the prediction had already ended."""
        with self._lock:
            public = state.public
            if public["status"] in TERMINAL:
                return False
            now = _now_iso()
            started = public["started_at"]
            public.update(status=status, completed_at=now, error=error if status == "failed" else None,
                          output=output if status == "succeeded" else public["output"])
            if status == "succeeded":
                public["logs"] += "Generated output.\n"
                public["metrics"] = {"predict_time": self.processing_delay, "total_time": self.starting_delay + self.processing_delay}
            if started is None and status in ("succeeded", "failed"):
                public["started_at"] = now
        state.ended.set()
        return True

    def _snapshot(self, state):
        with self._lock:
            return json.dumps(state.public).encode("utf-8")

    def _send_final(self, state):
        if "completed" not in state.events or state.settings["suppress"] or not state.webhook:
            if state.held_start and not state.settings["suppress"]:
                self._send(state, state.held_start[1], "start", state.held_start[0], retries=0, kind="stale")
            return
        body, webhook_id = self._snapshot(state), _webhook_id()
        self._send(state, body, "completed", webhook_id, retries=len(WEBHOOK_BACKOFF))
        if state.settings["duplicate"]:
            self._send(state, body, "completed", webhook_id, retries=0, kind="duplicate")
        if state.held_start:
            self._send(state, state.held_start[1], "start", state.held_start[0], retries=0, kind="stale")

    def _send(self, state, body, event, webhook_id, retries, kind="normal"):
        """POSTs one webhook event, retrying a non-2xx answer `retries` times; returns the last status."""
        if not state.webhook:
            return None
        status = None
        for attempt in range(retries + 1):
            if self._stopping.is_set():
                return status
            timestamp = int(time.time())
            signature = sign(new_secret() if state.settings["forge"] else self.secret, webhook_id, timestamp, body)
            if state.settings["multi"]:
                signature = sign(new_secret(), webhook_id, timestamp, body) + " " + signature
            headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
            status, _ = self._post(state.webhook, body, headers, {
                "prediction_id": state.public["id"], "event": event, "kind": kind, "webhook_id": webhook_id,
                "attempt": attempt + 1, "forged": state.settings["forge"]})
            if status is not None and 200 <= status < 300:
                return status
            if attempt < retries:
                time.sleep(WEBHOOK_BACKOFF[attempt])
        return status

    def _post(self, url, body, headers, entry):
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "Replicate-Webhooks/1.0", **headers})
        status, text, error = None, "", None
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, text = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as failure:
            status, text = failure.code, failure.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as failure:
            error = str(failure)
        try:
            prediction_status = json.loads(body).get("status")
        except (ValueError, AttributeError):
            prediction_status = None
        record = {**entry, "url": url, "timestamp": int(headers.get("webhook-timestamp", "0") or 0),
                  "prediction_status": prediction_status, "code": status, "response": text[:2000],
                  "error": error, "time": time.time(), "body": body}
        with self._lock:
            self.webhook_log.append(record)
        return status, text
