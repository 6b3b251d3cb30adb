"""A fake OpenAI API for the black-box tests, in the standard library only.

It speaks the parts of OpenAI's HTTP API that Atelier uses, under `/v1` (OPENAI_BASE_URL = `base_url`):

    POST /v1/images/generations   JSON: prompt, model, n, size, quality, response_format, style, user,
                                  background, moderation, output_format, output_compression
    POST /v1/images/edits         multipart/form-data: image (or image[]), mask, prompt, model, n, size,
                                  quality, response_format, user, background, output_format,
                                  output_compression, input_fidelity
    POST /v1/chat/completions     JSON: model, messages, and the usual optional knobs (stream too)
    GET  /v1/models, /v1/models/{id}
    GET  /files/{name}            the images answered as URLs (no authentication, like the real
                                  pre-signed blob URLs)

as OpenAI's API reference documents them:

    https://platform.openai.com/docs/api-reference/images/create
    https://platform.openai.com/docs/api-reference/images/createEdit
    https://platform.openai.com/docs/api-reference/chat/create
    https://platform.openai.com/docs/api-reference/authentication      (Authorization: Bearer)
    https://platform.openai.com/docs/api-reference/debugging-requests  (x-request-id, openai-processing-ms,
                                                                        openai-version)
    https://platform.openai.com/docs/guides/error-codes                (401 / 429 / 500 / 503)
    https://platform.openai.com/docs/guides/rate-limits                (x-ratelimit-* headers)
    https://platform.openai.com/docs/guides/image-generation           (gpt-image-1 output token counts)
    The reference's text as generated from the OpenAPI spec at the gpt-image-1 launch:
    https://github.com/openai/openai-python/blob/04448952820aa3029e61907c1785a7293c3ddbc2/src/openai/types/image_generate_params.py
    https://github.com/openai/openai-python/blob/04448952820aa3029e61907c1785a7293c3ddbc2/src/openai/types/image_edit_params.py
    https://github.com/openai/openai-python/blob/04448952820aa3029e61907c1785a7293c3ddbc2/src/openai/types/images_response.py
    and the error object of the spec (`{"error": {"message", "type", "param", "code"}}`):
    https://github.com/openai/openai-openapi/blob/006e34bedf5bc884774aa8550715f4f4daef3334/openapi.yaml

The per-model rules it enforces (each violation is a 400 `invalid_request_error` naming the param):

    model        prompt max   n      sizes                                     response_format
    dall-e-2     1000         1-10   256x256 512x512 1024x1024 (default 1024)  url (default) | b64_json
    dall-e-3     4000         1      1024x1024 1792x1024 1024x1792             url (default) | b64_json
    gpt-image-1  32000        1-10   1024x1024 1536x1024 1024x1536 auto (def.) not accepted: always b64_json

`model` defaults to dall-e-2 on both image endpoints, unless a gpt-image-1-only parameter (background,
moderation, output_format, output_compression, input_fidelity) is given. `style` is dall-e-3 only;
`quality` is standard|hd for dall-e-3, standard for dall-e-2, low|medium|high for gpt-image-1 (auto for
all). Edits take dall-e-2 (one square PNG under 4 MB, and without a mask it must have transparency) or
gpt-image-1 (up to 16 png/webp/jpeg images under 50 MB each); the multipart part's Content-Type must be
one of those image types (a part sent as application/octet-stream is refused, as the real API does).
The mask must be a PNG under 4 MB, with an alpha channel (colour type 4 or 6, or a tRNS chunk) and the
dimensions of the (first) image; its fully transparent pixels are counted (`edits[i]["transparent_pixels"]`)
because they are "where the image should be edited". Parameters a model does not take, and parameters
no endpoint knows, are refused as `Unknown parameter: 'x'.` (code unknown_parameter), as the real API
answers response_format for gpt-image-1 (observed, github.com/vercel/ai/issues/6102).

Error messages follow the real API's wording where it was seen in real answers (unknown_parameter,
invalid_value `Invalid value: '…'. Supported values are: …`, dall-e-3's `invalid_size`, dall-e-2's
`Uploaded image must be a PNG and less than 4 MB.`, `unsupported mimetype`, the 401s, 429, 500, 503 and
content-policy bodies); the others (square, mask dimensions, alpha) are this fake's own clear wording.

Images are real files: one solid colour per prompt, `colour_of(prompt)` — a fully saturated hue (one
channel 255, one 0), so never a colour the Replicate fake makes (its channels stay within 40..215).
PNG by default; gpt-image-1's output_format jpeg gives a baseline JPEG and webp a lossless WebP, and
background "transparent" gives an RGBA PNG whose outer eighth is fully transparent. Sizes: the requested
size; "auto" is 1024x1024 for a generation and, for an edit, the standard size nearest the image's
aspect ratio. dall-e-3 answers carry `revised_prompt`, gpt-image-1 answers `usage` (and the echoed
background / output_format / quality / size).

Every /v1 request needs `Authorization: Bearer <api_key>`: without one the answer is 401 "You didn't
provide an API key…" (code null, as the real API answers), with another key 401 "Incorrect API key
provided…" (code invalid_api_key). Scenarios (for the next requests that pass authentication):

    fake.fail_next(2, status=500)       # the next 2 /v1 requests answer 500 server_error ("The server had
                                        # an error while processing your request…"); 503 answers "That model
                                        # is currently overloaded…" (server_error); 502/504 an HTML gateway
                                        # page; 401/403/other 4xx an error object of that status
    fake.rate_limit_next(2, retry_after=1)  # 429 {type "requests", code "rate_limit_exceeded"} with
                                        # retry-after, retry-after-ms and x-ratelimit-* headers
    fake.quota_exceeded_next(1)         # 429 {type/code "insufficient_quota"}: not worth retrying
    fake.refuse_next_content_policy(1)  # the next valid image request is refused: 400 code
                                        # content_policy_violation (dall-e; type invalid_request_error) or
                                        # moderation_blocked (gpt-image-1; type image_generation_user_error);
                                        # code="content_policy_violation" forces that shape for every model
    fake.set_down(True)                 # every connection is closed at once, unanswered (a dead host)
    fake.delay = 2.5                    # each /v1 answer is computed (and recorded), then held this long
    fake.chat_answer = "…"              # what chat completions answer (or a function of the request body)
    fake.expire_urls()                  # the URLs answered so far now give 403 (their 60 minutes are up)
    fake.reset()                        # all of the above back to normal; what was recorded stays

Kept for assertions: `requests` (every request: method, path, headers, `json` body or `multipart` parts
with names, filenames, content types and sizes, the status answered and the error code), `generations`
(each successful generation or edit: model, prompt, params, the output images with their bytes),
`edits` (each successful edit: image and mask sizes, the count of fully transparent mask pixels, the
uploaded bytes), `chats` (each answered chat completion), `file_gets`, `dropped_connections`.
"""
import base64
import colorsys
import hashlib
import json
import math
import re
import secrets
import threading
import time
import urllib.parse

from .images import (count_transparent, image_dimensions, make_image, png_has_alpha, png_info, png_mode,
                     sniff_format)
from .serving import DispatchHandler, DispatchServer, ServedFake

DEFAULT_API_KEY = "sk-test"
DEFAULT_CHAT_ANSWER = "A vivid fox in golden light, detailed fur"
MB = 1024 * 1024


class ImageModel:
    def __init__(self, prompt_max, n_max, sizes, default_size, qualities, response_format, edits, own_params):
        self.prompt_max = prompt_max
        self.n_max = n_max
        self.sizes = sizes
        self.default_size = default_size
        self.qualities = qualities                # besides "auto", the documented default
        self.response_format = response_format    # takes response_format (else always b64_json)
        self.edits = edits                        # usable on /v1/images/edits
        self.own_params = own_params              # parameters only this model takes


GPT_IMAGE_PARAMS = ("background", "moderation", "output_format", "output_compression", "input_fidelity")

IMAGE_MODELS = {
    "dall-e-2": ImageModel(1000, 10, ("256x256", "512x512", "1024x1024"), "1024x1024", ("standard",),
                           True, True, ()),
    "dall-e-3": ImageModel(4000, 1, ("1024x1024", "1792x1024", "1024x1792"), "1024x1024", ("standard", "hd"),
                           True, False, ("style",)),
    "gpt-image-1": ImageModel(32000, 10, ("1024x1024", "1536x1024", "1024x1536", "auto"), "auto",
                              ("low", "medium", "high"), False, True, GPT_IMAGE_PARAMS),
}
MODEL_ONLY = {"style": ("dall-e-3",), "response_format": ("dall-e-2", "dall-e-3"),
              **{p: ("gpt-image-1",) for p in GPT_IMAGE_PARAMS}}

GENERATION_PARAMS = ("prompt", "model", "n", "size", "quality", "response_format", "style", "user",
                     "background", "moderation", "output_format", "output_compression")
EDIT_PARAMS = ("image", "image[]", "mask", "prompt", "model", "n", "size", "quality", "response_format", "user",
               "background", "output_format", "output_compression", "input_fidelity", "stream")

# Output image tokens of gpt-image-1 by quality and size (the image-generation guide's table).
GPT_IMAGE_OUTPUT_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}

CHAT_PARAMS = ("model", "messages", "temperature", "top_p", "n", "stream", "stream_options", "stop", "max_tokens",
               "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
               "top_logprobs", "user", "response_format", "seed", "tools", "tool_choice", "parallel_tool_calls",
               "service_tier", "store", "metadata", "reasoning_effort", "modalities", "audio", "prediction",
               "web_search_options", "verbosity", "prompt_cache_key", "safety_identifier", "functions",
               "function_call")
CHAT_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
CHAT_MODEL_PREFIXES = ("gpt-3.5", "gpt-4", "gpt-5", "o1", "o3", "o4", "chatgpt-")
LISTED_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-3.5-turbo",
                 "gpt-image-1", "dall-e-2", "dall-e-3")



class ApiError(Exception):
    """An answer in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status, message, type_="invalid_request_error", param=None, code=None, headers=(),
                 extra=None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = list(headers)
        self.extra = extra or {}

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code,
                          **self.extra}}


# ---- the colour of a prompt ---------------------------------------------------------------------------

def colour_of(prompt):
    """The one colour of every image the fake makes for `prompt`: a fully saturated, fully bright hue
    from the prompt's SHA-256 (so one channel is 255 and one is 0, unlike the Replicate fake's colours)."""
    digest = hashlib.sha256(str(prompt).encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, 1.0, 1.0))


# ---- multipart/form-data ------------------------------------------------------------------------------

def _header_params(value):
    """The main value and the parameters of a header like Content-Type or Content-Disposition."""
    main, _, rest = value.partition(";")
    params, pos = {}, 0
    pattern = re.compile(r'\s*([^=;\s]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^;]*)\s*;?')
    while pos < len(rest):
        match = pattern.match(rest, pos)
        if not match:
            break
        name, raw, quoted = match.group(1).lower(), match.group(2), match.group(3)
        params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else raw.strip()
        pos = match.end()
    return main.strip().lower(), params


def parse_multipart(body, content_type):
    """The parts of a multipart/form-data body, each {"name", "filename", "content_type", "data"}.
    Raises ValueError when the body is not one."""
    main, params = _header_params(content_type or "")
    if main != "multipart/form-data":
        raise ValueError("not multipart/form-data")
    boundary = params.get("boundary")
    if not boundary:
        raise ValueError("no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise ValueError("the boundary does not occur in the body")
    pos, parts = start + len(delimiter), []
    while True:
        if body[pos:pos + 2] == b"--":
            return parts
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            raise ValueError("the body ends inside a delimiter line")
        pos = line_end + 2
        if body[pos:pos + 2] == b"\r\n":
            raw_headers, data_start = b"", pos + 2
        else:
            head_end = body.find(b"\r\n\r\n", pos)
            if head_end < 0:
                raise ValueError("a part's headers do not end")
            raw_headers, data_start = body[pos:head_end], head_end + 4
        following = body.find(b"\r\n" + delimiter, data_start)
        if following < 0:
            raise ValueError("a part does not end with the boundary")
        headers = {}
        for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        disposition, dparams = _header_params(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in dparams:
            raise ValueError("a part has no form-data name")
        filename = dparams.get("filename")
        if filename is None and "filename*" in dparams:
            filename = urllib.parse.unquote(dparams["filename*"].split("''", 1)[-1])
        parts.append({"name": dparams["name"], "filename": filename,
                      "content_type": headers.get("content-type"), "data": body[data_start:following]})
        pos = following + 2 + len(delimiter)


# ---- validation helpers -------------------------------------------------------------------------------

def _json_kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _listing(values):
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _invalid_type(param, expected, value):
    return ApiError(400, f"Invalid type for '{param}': expected {expected}, but got {_json_kind(value)} instead.",
                    param=param, code="invalid_type")


def _invalid_value(param, value, allowed):
    return ApiError(400, f"Invalid value: '{value}'. Supported values are: {_listing(allowed)}.",
                    param=param, code="invalid_value")


def _missing(param):
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _unknown(param):
    return ApiError(400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def _enum(param, value, allowed):
    if not isinstance(value, str):
        raise _invalid_type(param, "one of " + _listing(allowed), value)
    if value not in allowed:
        raise _invalid_value(param, value, allowed)
    return value


def _integer(param, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(param, "an integer", value)
    if value < low:
        raise ApiError(400, f"Invalid '{param}': integer below minimum value. Expected a value >= {low}, but got "
                            f"{value} instead.", param=param, code="integer_below_min_value")
    if value > high:
        raise ApiError(400, f"Invalid '{param}': integer above maximum value. Expected a value <= {high}, but got "
                            f"{value} instead.", param=param, code="integer_above_max_value")
    return value


def _prompt(value, maximum):
    if value is None:
        raise _missing("prompt")
    if not isinstance(value, str):
        raise _invalid_type("prompt", "a string", value)
    if value == "":
        raise ApiError(400, "Invalid 'prompt': string too short. Expected a string with minimum length 1, but got an "
                            "empty string instead.", param="prompt", code="empty_string")
    if len(value) > maximum:
        raise ApiError(400, f"Invalid 'prompt': string too long. Expected a string with maximum length {maximum}, but "
                            f"got a string with length {len(value)} instead.", param="prompt",
                       code="string_above_max_length")
    return value


def _form_integer(param, value):
    """A multipart text field that must hold an integer."""
    if value is None or isinstance(value, int):
        return value
    if re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ApiError(400, f"Invalid type for '{param}': expected an integer, but got a string instead.",
                   param=param, code="invalid_type")


def _tokens(text):
    return max(1, math.ceil(len(text) / 4))


def _redact(key):
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "*" * len(key)


def _nearest_size(width, height):
    ratio = width / height if height else 1
    if ratio >= 1.25:
        return "1536x1024"
    if ratio <= 0.8:
        return "1024x1536"
    return "1024x1024"


# ---- the HTTP server ----------------------------------------------------------------------------------

class _Handler(DispatchHandler):
    server_version = "OpenAIFake/1.0"


class _Server(DispatchServer):
    def verify_request(self, request, client_address):
        """While the fake is down, each new connection is closed at once, unanswered."""
        fake = self.fake
        if fake._down:
            with fake._lock:
                fake.dropped_connections += 1
            return False
        return True


class OpenAIFake(ServedFake):
    server_class, handler_class, thread_name = _Server, _Handler, "openai-fake"

    def __init__(self, api_key=DEFAULT_API_KEY, port=0, host="127.0.0.1"):
        self.api_key = api_key
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._server = None
        self._thread = None
        self.requests = []
        self.generations = []
        self.edits = []
        self.chats = []
        self.file_gets = []
        self.files = {}                 # name -> (bytes, content type)
        self.expired = set()            # names of files whose URL has expired
        self.dropped_connections = 0
        self.reset()

    # ---- scenarios ----

    def reset(self):
        """Every scenario back to normal; what was recorded stays (see clear())."""
        with self._lock:
            self._failures = []          # statuses of the next failing /v1 requests
            self._throttle = 0
            self._retry_after = 1
            self._quota = 0
            self._refusals = []          # forced codes (None: per model) of the next refused image requests
            self._down = False
            self.delay = 0
            self.chat_answer = DEFAULT_CHAT_ANSWER
            self.expired = set()

    def clear(self):
        """Forgets what was recorded."""
        with self._lock:
            for name in ("requests", "generations", "edits", "chats", "file_gets"):
                getattr(self, name).clear()
            self.dropped_connections = 0

    def fail_next(self, n, status=500):
        """The next `n` authenticated /v1 requests answer `status` with an error object (and do nothing)."""
        with self._lock:
            self._failures = [int(status)] * n

    def rate_limit_next(self, n, retry_after=1):
        """The next `n` authenticated /v1 requests answer 429 rate_limit_exceeded, Retry-After `retry_after`."""
        with self._lock:
            self._throttle, self._retry_after = n, retry_after

    def quota_exceeded_next(self, n):
        """The next `n` authenticated /v1 requests answer 429 insufficient_quota (no credit left)."""
        with self._lock:
            self._quota = n

    def refuse_next_content_policy(self, n, code=None):
        """The next `n` image requests that pass validation are refused by the "safety system": 400
        content_policy_violation for the DALL·E models, moderation_blocked for gpt-image-1; `code`
        ("content_policy_violation" or "moderation_blocked") forces that answer for every model."""
        assert code in (None, "content_policy_violation", "moderation_blocked"), code
        with self._lock:
            self._refusals = [code] * n

    def set_down(self, down=True):
        """While down, every connection (new or kept alive) is closed without an answer."""
        with self._lock:
            self._down = bool(down)

    def expire_urls(self):
        """The image URLs answered so far stop working (403), as they do 60 minutes after generation."""
        with self._lock:
            self.expired = set(self.files)

    # ---- reading what happened ----

    colour_of = staticmethod(colour_of)

    def requests_to(self, method, path):
        with self._lock:
            return [dict(entry) for entry in self.requests if entry["method"] == method and entry["path"] == path]

    def file_for_url(self, url):
        """(bytes, content type) of an image URL the fake answered."""
        return self.files[url.rsplit("/", 1)[1]]

    def wait_for(self, predicate, timeout=15.0, interval=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(interval)
        with self._lock:
            return predicate()

    # ---- HTTP ----

    def _dispatch(self, handler, method):
        try:
            if self._down:
                with self._lock:
                    self.dropped_connections += 1
                self._cut(handler)
                return
            body = self._read_body(handler)
            parts = urllib.parse.urlsplit(handler.path)
            path = parts.path
            headers = handler.headers
            entry = {"method": method, "path": path, "query": parts.query, "headers": dict(headers.items()),
                     "json": None, "multipart": None, "body_size": len(body), "time": time.time(),
                     "status": None, "error_code": None, "scenario": None}
            content_type = headers.get("Content-Type", "")
            if "json" in content_type.lower() or (body[:1] in (b"{", b"[") and "multipart" not in content_type):
                try:
                    entry["json"] = json.loads(body)
                except ValueError:
                    pass
            elif content_type.lower().startswith("multipart/"):
                try:
                    entry["multipart"] = [
                        {"name": p["name"], "filename": p["filename"], "content_type": p["content_type"],
                         "size": len(p["data"]),
                         "value": None if p["filename"] is not None else p["data"].decode("utf-8", "replace")}
                        for p in parse_multipart(body, content_type)]
                except ValueError:
                    pass
            with self._lock:
                self.requests.append(entry)
            if path == "/v1" or path.startswith("/v1/"):
                status, extra_headers, payload = self._v1(method, path, headers, body, entry)
                if self.delay:
                    time.sleep(self.delay)
                if self._down:
                    self._cut(handler)
                    return
            else:
                status, extra_headers, payload = self._serve_file(method, path, headers)
            entry["status"] = status
            self._respond(handler, method, status, extra_headers, payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _cut(handler):
        handler.close_connection = True
        try:
            handler.connection.shutdown(2)
        except OSError:
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
        headers = list(headers)
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload, indent=2).encode("utf-8")
            headers = [("Content-Type", "application/json")] + headers
        else:
            data = payload or b""
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    def _common_headers(self, started, remaining=499):
        return [("openai-version", "2020-10-01"), ("openai-organization", "user-fake"),
                ("openai-processing-ms", str(max(1, int((time.monotonic() - started) * 1000)))),
                ("x-request-id", "req_" + secrets.token_hex(16)),
                ("x-ratelimit-limit-requests", "500"), ("x-ratelimit-remaining-requests", str(remaining)),
                ("x-ratelimit-reset-requests", "120ms"),
                ("x-ratelimit-limit-tokens", "200000"), ("x-ratelimit-remaining-tokens", "199950"),
                ("x-ratelimit-reset-tokens", "15ms")]

    def _v1(self, method, path, headers, body, entry):
        started = time.monotonic()
        try:
            self._authenticate(headers)
            self._scenario(path, entry)
            status, extra, payload = self._route(method, path, headers, body, entry)
            return status, self._common_headers(started) + extra, payload
        except ApiError as error:
            entry["error_code"] = error.code or error.type
            if error.status == 502 or error.status == 504:   # a gateway's page, not an API error object
                return error.status, [("Content-Type", "text/html")] + error.headers, (
                    f"<html><head><title>{error.status} {error.message}</title></head><body><center><h1>"
                    f"{error.status} {error.message}</h1></center><hr><center>cloudflare</center></body></html>"
                ).encode("utf-8")
            overridden = {name.lower() for name, _ in error.headers}
            common = [(k, v) for k, v in self._common_headers(started, 0 if error.status == 429 else 499)
                      if k.lower() not in overridden]
            return error.status, common + error.headers, error.body()

    def _authenticate(self, headers):
        auth = headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
                                "field (with blank username) if you're accessing the API from your browser and are "
                                "prompted for a username and password. You can obtain an API key from "
                                "https://platform.openai.com/account/api-keys.")
        if key != self.api_key:
            raise ApiError(401, f"Incorrect API key provided: {_redact(key)}. You can find your API key at "
                                "https://platform.openai.com/account/api-keys.", code="invalid_api_key")

    def _scenario(self, path, entry):
        with self._lock:
            if self._failures:
                status = self._failures.pop(0)
                entry["scenario"] = f"fail {status}"
            elif self._throttle > 0:
                self._throttle -= 1
                entry["scenario"] = "rate limit"
                status = 429
            elif self._quota > 0:
                self._quota -= 1
                entry["scenario"] = "quota"
                status = -429
            else:
                return
            retry_after = self._retry_after
        if status == 429:
            what = ("images per minute (IPM)", "images per min") if "/images/" in path else (
                "requests per min (RPM)", "requests per min")
            raise ApiError(429, f"Rate limit reached for {'images' if '/images/' in path else 'gpt-4o-mini'} in "
                                f"organization org-fake on {what[0]}: Limit 5, Used 5, Requested 1. Please try again "
                                f"in {retry_after}s. Visit https://platform.openai.com/account/rate-limits to learn "
                                "more.", type_="requests", code="rate_limit_exceeded",
                           headers=[("retry-after", str(retry_after)),
                                    ("retry-after-ms", str(int(float(retry_after) * 1000))),
                                    ("x-ratelimit-reset-requests", f"{retry_after}s")])
        if status == -429:
            raise ApiError(429, "You exceeded your current quota, please check your plan and billing details. For more "
                                "information on this error, read the docs: "
                                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                           type_="insufficient_quota", code="insufficient_quota")
        if status == 500:
            raise ApiError(500, "The server had an error while processing your request. Sorry about that!",
                           type_="server_error")
        if status == 503:
            raise ApiError(503, "That model is currently overloaded with other requests. You can retry your request, "
                                "or contact us through our help center at help.openai.com if the error persists.",
                           type_="server_error")
        if status in (502, 504):
            raise ApiError(status, "Bad Gateway" if status == 502 else "Gateway Time-out", type_="server_error")
        if status >= 500:
            raise ApiError(status, "The server had an error while processing your request. Sorry about that!",
                           type_="server_error")
        if status == 401:
            raise ApiError(401, "Incorrect API key provided. You can find your API key at "
                                "https://platform.openai.com/account/api-keys.", code="invalid_api_key")
        if status == 403:
            raise ApiError(403, "Country, region, or territory not supported", type_="request_forbidden",
                           code="unsupported_country_region_territory")
        raise ApiError(status, f"The request failed with status {status}.")

    def _route(self, method, path, headers, body, entry):
        if method == "POST" and path == "/v1/images/generations":
            return self._generate(body, entry)
        if method == "POST" and path == "/v1/images/edits":
            return self._edit(headers, body, entry)
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(body, entry)
        if method == "GET" and path == "/v1/models":
            return 200, [], {"object": "list", "data": [self._model_object(m) for m in LISTED_MODELS]}
        if method == "GET" and path.startswith("/v1/models/"):
            model = urllib.parse.unquote(path[len("/v1/models/"):])
            if model in LISTED_MODELS or self._is_chat_model(model):
                return 200, [], self._model_object(model)
            raise ApiError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
        raise ApiError(404, f"Invalid URL ({method} {path})")

    @staticmethod
    def _model_object(model):
        return {"id": model, "object": "model", "created": 1698785189,
                "owned_by": "system" if model.startswith(("dall-e", "gpt-image")) else "openai"}

    @staticmethod
    def _is_chat_model(model):
        return isinstance(model, str) and model.startswith(CHAT_MODEL_PREFIXES) and not model.startswith("gpt-image")

    @staticmethod
    def _json_body(body):
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but "
                                "what was sent was not valid JSON. If you have trouble figuring out how to fix this, "
                                "please contact us through our help center at help.openai.com.)")
        return request

    # ---- images ----

    @staticmethod
    def _pick_model(given, params, endpoint):
        """The image model a request names, or the documented default."""
        allowed = ("dall-e-2", "dall-e-3", "gpt-image-1") if endpoint == "generations" else ("dall-e-2", "gpt-image-1")
        if given is None:
            return "gpt-image-1" if any(params.get(p) is not None for p in GPT_IMAGE_PARAMS) else "dall-e-2"
        if not isinstance(given, str):
            raise _invalid_type("model", "a string", given)
        if given not in allowed:
            raise _invalid_value("model", given, allowed)
        return given

    @staticmethod
    def _check_common(model_name, model, params):
        """The checks generations and edits share, on already typed values; returns the resolved options."""
        for param, models in MODEL_ONLY.items():
            if params.get(param) is not None and model_name not in models:
                raise _unknown(param)
        _prompt(params.get("prompt"), model.prompt_max)
        n = params.get("n")
        n = 1 if n is None else _integer("n", n, 1, model.n_max)
        size = params.get("size")
        if size is None:
            size = model.default_size
        elif model_name == "dall-e-3" and (not isinstance(size, str) or size not in model.sizes):
            raise ApiError(400, "The size is not supported by this model.", code="invalid_size")
        else:
            _enum("size", size, model.sizes)
        quality = params.get("quality")
        quality = "auto" if quality is None else _enum("quality", quality, model.qualities + ("auto",))
        response_format = params.get("response_format")
        if response_format is not None:
            _enum("response_format", response_format, ("url", "b64_json"))
        if params.get("style") is not None:
            _enum("style", params["style"], ("vivid", "natural"))
        if params.get("user") is not None and not isinstance(params["user"], str):
            raise _invalid_type("user", "a string", params["user"])
        background = params.get("background")
        if background is not None:
            _enum("background", background, ("transparent", "opaque", "auto"))
        if params.get("moderation") is not None:
            _enum("moderation", params["moderation"], ("low", "auto"))
        if params.get("input_fidelity") is not None:
            _enum("input_fidelity", params["input_fidelity"], ("high", "low"))
        output_format = params.get("output_format")
        if output_format is None:
            output_format = "png"
        else:
            _enum("output_format", output_format, ("png", "jpeg", "webp"))
        compression = params.get("output_compression")
        if compression is not None:
            _integer("output_compression", compression, 0, 100)
            if output_format == "png" and compression < 100:
                raise ApiError(400, "Invalid 'output_compression': compression below 100 is only supported for the "
                                    "'jpeg' and 'webp' output formats.", param="output_compression",
                               code="invalid_value")
        if background == "transparent" and output_format == "jpeg":
            raise ApiError(400, "Invalid 'background': a transparent background needs an output format that supports "
                                "transparency ('png' or 'webp'), not 'jpeg'.", param="background", code="invalid_value")
        if params.get("stream") not in (None, False, "false"):
            raise ApiError(400, "Streaming image answers (stream=true) are not implemented by this fake.",
                           param="stream", code="unsupported_by_fake")
        return {"n": n, "size": size, "quality": quality, "output_format": output_format,
                "response_format": response_format or ("b64_json" if model_name == "gpt-image-1" else "url"),
                "background": background or "auto"}

    def _refusal(self, model_name):
        with self._lock:
            if not self._refusals:
                return None
            forced = self._refusals.pop(0)
        code = forced or ("moderation_blocked" if model_name == "gpt-image-1" else "content_policy_violation")
        if code == "moderation_blocked":
            request_id = "req_" + secrets.token_hex(16)
            return ApiError(400, "Your request was rejected by the safety system. If you believe this is an error, "
                                 f"contact us at help.openai.com and include the request ID {request_id}. "
                                 "safety_violations=[violence].", type_="image_generation_user_error",
                            code="moderation_blocked")
        return ApiError(400, "Your request was rejected as a result of our safety system. Your prompt may contain text "
                             "that is not allowed by our safety system.", code="content_policy_violation")

    def _outputs(self, model_name, prompt, options, width, height):
        """Makes the images of an answer: (the `data` items, the records of the images)."""
        colour = colour_of(prompt)
        fmt = options["output_format"] if model_name == "gpt-image-1" else "png"
        transparent = model_name == "gpt-image-1" and options["background"] == "transparent"
        items, records = [], []
        for _ in range(options["n"]):
            data, content_type, extension = make_image(fmt, width, height, colour, transparent)
            name = f"img-{secrets.token_hex(12)}.{extension}"
            item, url = {}, None
            if options["response_format"] == "url":
                url = f"{self.root_url}/files/{name}"
                with self._lock:
                    self.files[name] = (data, content_type)
                item["url"] = url
            else:
                item["b64_json"] = base64.b64encode(data).decode("ascii")
            if model_name == "dall-e-3":
                item["revised_prompt"] = self._revised(prompt)
            items.append(item)
            records.append({"name": name, "url": url, "width": width, "height": height, "colour": colour,
                            "format": fmt, "content_type": content_type, "data": data})
        return items, records

    @staticmethod
    def _revised(prompt):
        return f"{prompt.rstrip('. ')}, rendered in rich, vivid detail with careful lighting and composition."

    @staticmethod
    def _answer(model_name, created, items, options, size, input_text, input_images=0):
        answer = {"created": created, "data": items}
        if model_name == "gpt-image-1":
            quality = options["quality"] if options["quality"] in GPT_IMAGE_OUTPUT_TOKENS else "medium"
            per_image = GPT_IMAGE_OUTPUT_TOKENS[quality].get(size, 1056)
            text_tokens, image_tokens = _tokens(input_text), 272 * input_images
            output_tokens = per_image * len(items)
            answer.update({
                "background": "transparent" if options["background"] == "transparent" else "opaque",
                "output_format": options["output_format"], "quality": quality, "size": size,
                "usage": {"input_tokens": text_tokens + image_tokens,
                          "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
                          "output_tokens": output_tokens,
                          "total_tokens": text_tokens + image_tokens + output_tokens}})
        return answer

    def _generate(self, body, entry):
        request = self._json_body(body)
        for key in request:
            if key not in GENERATION_PARAMS:
                raise _unknown(key)
        model_name = self._pick_model(request.get("model"), request, "generations")
        model = IMAGE_MODELS[model_name]
        options = self._check_common(model_name, model, request)
        refusal = self._refusal(model_name)
        if refusal:
            entry["scenario"] = "content policy"
            raise refusal
        size = "1024x1024" if options["size"] == "auto" else options["size"]
        width, height = (int(v) for v in size.split("x"))
        created = int(time.time())
        items, records = self._outputs(model_name, request["prompt"], options, width, height)
        answer = self._answer(model_name, created, items, options, size, request["prompt"])
        with self._lock:
            self.generations.append({
                "endpoint": "generations", "model": model_name, "prompt": request["prompt"], "n": options["n"],
                "size": request.get("size"), "output_size": (width, height), "quality": options["quality"],
                "response_format": options["response_format"], "style": request.get("style"),
                "params": request, "created": created, "outputs": records,
                "revised_prompt": self._revised(request["prompt"]) if model_name == "dall-e-3" else None})
        return 200, [], answer

    def _edit(self, headers, body, entry):
        content_type = headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(400, f"Invalid Content-Type header ({content_type or 'none'}), expected "
                                "multipart/form-data. (HINT: If you're using curl, you can pass -H 'Content-Type: "
                                "multipart/form-data')")
        try:
            parts = parse_multipart(body, content_type)
        except ValueError as error:
            raise ApiError(400, f"Could not parse multipart form: {error}.") from None
        fields, images, mask = {}, [], None
        for part in parts:
            name = part["name"]
            if name not in EDIT_PARAMS:
                raise _unknown(name)
            if name in ("image", "image[]"):
                if part["filename"] is None:
                    raise _invalid_type(name.replace("[]", ""), "a file", "")
                images.append(part)
            elif name == "mask":
                if part["filename"] is None:
                    raise _invalid_type("mask", "a file", "")
                mask = part
            else:
                fields[name] = part["data"].decode("utf-8", "replace")
        params = dict(fields)
        for name in ("n", "output_compression"):
            params[name] = _form_integer(name, params.get(name))
        params["stream"] = {"true": True, "false": False}.get(str(params.get("stream")).lower(), params.get("stream"))
        model_name = self._pick_model(params.get("model"), params, "edits")
        model = IMAGE_MODELS[model_name]
        if not images:
            raise _missing("image")
        options = self._check_common(model_name, model, params)
        if model_name == "dall-e-2" and len(images) > 1:
            raise ApiError(400, "Invalid 'image': dall-e-2 edits take exactly one image, but got "
                                f"{len(images)}.", param="image", code="invalid_value")
        if len(images) > 16:
            raise ApiError(400, f"Invalid 'image': array too long. Expected an array with maximum length 16, but got "
                                f"an array with length {len(images)} instead.", param="image",
                           code="array_above_max_length")
        checked = [self._check_image(model_name, part, index, len(images) > 1 or part["name"] == "image[]",
                                     has_mask=mask is not None)
                   for index, part in enumerate(images)]
        first = checked[0]
        mask_info = self._check_mask(mask, first) if mask is not None else None
        refusal = self._refusal(model_name)
        if refusal:
            entry["scenario"] = "content policy"
            raise refusal
        if options["size"] == "auto":
            size = _nearest_size(*first["size"])
        else:
            size = options["size"]
        width, height = (int(v) for v in size.split("x"))
        created = int(time.time())
        prompt = params["prompt"]
        items, records = self._outputs(model_name, prompt, options, width, height)
        answer = self._answer(model_name, created, items, options, size, prompt, input_images=len(images))
        if mask_info is not None:
            transparent, total, source = mask_info["transparent"], mask_info["total"], "mask"
        else:
            transparent, total, source = first.get("transparent"), first.get("total"), "image"
        edit = {"model": model_name, "prompt": prompt, "n": options["n"], "size": params.get("size"),
                "output_size": (width, height), "image_size": first["size"],
                "image_sizes": [c["size"] for c in checked],
                "image_format": first["format"], "image_content_type": first["content_type"],
                "image_filename": images[0]["filename"], "image_bytes": len(images[0]["data"]),
                "mask_size": mask_info["size"] if mask_info else None,
                "mask_bytes": len(mask["data"]) if mask is not None else None,
                "mask_mode": mask_info["mode"] if mask_info else None,
                "mask_filename": mask["filename"] if mask is not None else None,
                "transparent_pixels": transparent, "pixels": total, "transparent_source": source,
                "image": images[0]["data"], "images": [p["data"] for p in images],
                "mask": mask["data"] if mask is not None else None,
                "params": {k: v for k, v in fields.items()}, "created": created}
        with self._lock:
            self.edits.append(edit)
            self.generations.append({
                "endpoint": "edits", "model": model_name, "prompt": prompt, "n": options["n"],
                "size": params.get("size"), "output_size": (width, height), "quality": options["quality"],
                "response_format": options["response_format"], "style": None, "params": edit["params"],
                "created": created, "outputs": records, "revised_prompt": None})
        return 200, [], answer

    @staticmethod
    def _check_image(model_name, part, index, as_array, has_mask):
        """Checks one uploaded image against the model's documented requirements."""
        param = f"image[{index}]" if as_array else "image"
        allowed = ("image/png",) if model_name == "dall-e-2" else ("image/jpeg", "image/png", "image/webp")
        mimetype = (part["content_type"] or "application/octet-stream").split(";")[0].strip().lower()
        if mimetype not in allowed:
            raise ApiError(400, f"Invalid file '{param}': unsupported mimetype ('{mimetype}'). Supported file formats "
                                f"are {_listing(allowed)}.", param=param, code="unsupported_file_mimetype")
        data = part["data"]
        fmt = sniff_format(data)
        result = {"format": fmt, "content_type": mimetype}
        if model_name == "dall-e-2":
            info = png_info(data) if fmt == "png" else None
            if info is None or len(data) >= 4 * MB:
                raise ApiError(400, "Uploaded image must be a PNG and less than 4 MB.", param=param,
                               code="invalid_image_format")
            width, height = info["width"], info["height"]
            if width != height:
                raise ApiError(400, f"Invalid input image - '{param}' must be square, got {width}x{height}.",
                               param=param, code="invalid_image_format")
            if not has_mask:
                if not png_has_alpha(info):
                    raise ApiError(400, f"Invalid input image - format must be in ['RGBA', 'LA', 'L'], got "
                                        f"{png_mode(info)}. Without a mask, '{param}' must have transparency, which is "
                                        "used as the mask.", param=param, code="invalid_image_format")
                try:
                    counted = count_transparent(data, info)
                except ValueError as error:
                    raise ApiError(400, f"Invalid image file '{param}': {error}.", param=param,
                                   code="invalid_image_file") from None
                if counted:
                    result["transparent"], result["total"] = counted
            result["size"] = (width, height)
            return result
        if len(data) >= 50 * MB:
            raise ApiError(400, f"Invalid file '{param}': the file must be less than 50 MB, but it is {len(data)} "
                                "bytes.", param=param, code="file_too_large")
        expected = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}[mimetype]
        dimensions = image_dimensions(data) if fmt == expected else None
        if dimensions is None:
            raise ApiError(400, f"Invalid image file or mode for '{param}' (declared {mimetype}, but the bytes are "
                                f"{'a ' + fmt + ' file' if fmt else 'not an image this API reads'}), please check your "
                                "image file.", param=param, code="invalid_image_file")
        result["size"] = dimensions
        return result

    @staticmethod
    def _check_mask(part, first):
        mimetype = (part["content_type"] or "application/octet-stream").split(";")[0].strip().lower()
        if mimetype != "image/png":
            raise ApiError(400, f"Invalid file 'mask': unsupported mimetype ('{mimetype}'). Supported file formats are "
                                "'image/png'.", param="mask", code="unsupported_file_mimetype")
        data = part["data"]
        info = png_info(data)
        if info is None or len(data) >= 4 * MB:
            raise ApiError(400, "Invalid mask image - 'mask' must be a valid PNG file and less than 4 MB.",
                           param="mask", code="invalid_image_format")
        if not png_has_alpha(info):
            raise ApiError(400, f"Invalid mask image - 'mask' must have an alpha channel (format must be in ['RGBA', "
                                f"'LA'] or carry a tRNS chunk), got {png_mode(info)}: its fully transparent areas "
                                "mark where the image is edited.", param="mask", code="invalid_image_format")
        size = (info["width"], info["height"])
        if size != first["size"]:
            raise ApiError(400, f"Invalid mask image - 'mask' must have the same dimensions as 'image': the mask is "
                                f"{size[0]}x{size[1]}, the image {first['size'][0]}x{first['size'][1]}.",
                           param="mask", code="invalid_image_dimensions")
        try:
            counted = count_transparent(data, info)
        except ValueError as error:
            raise ApiError(400, f"Invalid mask image - 'mask' could not be decoded: {error}.", param="mask",
                           code="invalid_image_file") from None
        transparent, total = counted if counted else (None, size[0] * size[1])
        return {"size": size, "mode": png_mode(info), "transparent": transparent, "total": total}

    # ---- chat completions ----

    def _chat(self, body, entry):
        request = self._json_body(body)
        model = request.get("model")
        if model is None:
            raise ApiError(400, "you must provide a model parameter")
        for key in request:
            if key not in CHAT_PARAMS:
                raise ApiError(400, f"Unrecognized request argument supplied: {key}")
        if not isinstance(model, str):
            raise _invalid_type("model", "a string", model)
        messages = request.get("messages")
        if messages is None:
            raise _missing("messages")
        if not isinstance(messages, list):
            raise _invalid_type("messages", "an array", messages)
        if not messages:
            raise ApiError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                                "empty array instead.", param="messages", code="empty_array")
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(message, dict):
                raise _invalid_type(where, "an object", message)
            if "role" not in message:
                raise _missing(f"{where}.role")
            _enum(f"{where}.role", message["role"], CHAT_ROLES)
            content = message.get("content")
            if content is None:
                if message["role"] in ("assistant",) and (message.get("tool_calls") or message.get("function_call")):
                    continue
                raise _missing(f"{where}.content")
            if isinstance(content, list):
                for j, item in enumerate(content):
                    if not isinstance(item, dict) or "type" not in item:
                        raise _missing(f"{where}.content[{j}].type")
                    if item["type"] == "text" and not isinstance(item.get("text"), str):
                        raise _missing(f"{where}.content[{j}].text")
            elif not isinstance(content, str):
                raise _invalid_type(f"{where}.content", "one of a string or array of objects", content)
            if message["role"] == "tool" and not message.get("tool_call_id"):
                raise _missing(f"{where}.tool_call_id")
        temperature = request.get("temperature")
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
                raise _invalid_type("temperature", "a decimal", temperature)
            if not 0 <= temperature <= 2:
                below = temperature < 0
                raise ApiError(400, f"Invalid 'temperature': decimal {'below minimum' if below else 'above maximum'} "
                                    f"value. Expected a value {'>= 0' if below else '<= 2'}, but got {temperature} "
                                    "instead.", param="temperature",
                               code="decimal_below_min_value" if below else "decimal_above_max_value")
        n = request.get("n")
        n = 1 if n is None else _integer("n", n, 1, 128)
        if not self._is_chat_model(model):
            raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           code="model_not_found")
        answer_text = self.chat_answer(request) if callable(self.chat_answer) else str(self.chat_answer)
        prompt_text = "".join(m["content"] if isinstance(m.get("content"), str) else
                              "".join(p.get("text", "") for p in m.get("content") or [] if isinstance(p, dict))
                              for m in messages)
        prompt_tokens, completion_tokens = _tokens(prompt_text) + 4 * len(messages), _tokens(answer_text)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens * n,
                 "total_tokens": prompt_tokens + completion_tokens * n,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        completion_id = "chatcmpl-" + secrets.token_urlsafe(22).replace("-", "x").replace("_", "y")
        created = int(time.time())
        stream = bool(request.get("stream"))
        with self._lock:
            self.chats.append({"model": model, "messages": messages, "params": request, "answer": answer_text,
                               "stream": stream, "id": completion_id, "created": created})
        if not stream:
            return 200, [], {
                "id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": i, "message": {"role": "assistant", "content": answer_text, "refusal": None,
                                                     "annotations": []},
                             "logprobs": None, "finish_reason": "stop"} for i in range(n)],
                "usage": usage, "service_tier": "default", "system_fingerprint": "fp_fake"}
        events = []

        def chunk(choices, **extra):
            events.append({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                           "system_fingerprint": "fp_fake", "choices": choices, **extra})

        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage")
        for i in range(n):
            chunk([{"index": i, "delta": {"role": "assistant", "content": "", "refusal": None}, "logprobs": None,
                    "finish_reason": None}])
            for piece in re.findall(r"\S+\s*|\s+", answer_text):
                chunk([{"index": i, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])
            chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
        if include_usage:
            chunk([], usage=usage)
        data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return 200, [("Content-Type", "text/event-stream; charset=utf-8")], data.encode("utf-8")

    # ---- files ----

    def _serve_file(self, method, path, headers):
        if not path.startswith("/files/") or method not in ("GET", "HEAD"):
            return 404, [("Content-Type", "text/plain")], b"Not Found"
        name = path[len("/files/"):]
        with self._lock:
            known, expired = name in self.files, name in self.expired
            status = 403 if known and expired else (200 if known else 404)
            self.file_gets.append({"name": name, "method": method, "time": time.time(),
                                   "authorization": headers.get("Authorization"), "status": status})
        if status == 403:
            return 403, [("Content-Type", "application/xml")], (
                b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed '
                b"to authenticate the request. Make sure the value of Authorization header is formed correctly "
                b"including the signature.\nSigned expiry time has passed.</Message></Error>")
        if status == 404:
            return 404, [("Content-Type", "application/xml")], (
                b'<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code><Message>The specified blob '
                b"does not exist.</Message></Error>")
        data, content_type = self.files[name]
        return 200, [("Content-Type", content_type)], data
