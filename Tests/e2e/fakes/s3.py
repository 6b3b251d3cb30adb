"""A strict fake S3 for the black-box tests, in the standard library only.

It replaces moto, which checks no signature in our setup, so that a client signing wrongly fails here as it
would against AWS. Everything about authentication is written from AWS's own documentation, not from any
client's code:

    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-auth-using-authorization-header.html
    https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html   (canonical request,
        string to sign, signing key; its "Examples: Signature Calculations" are the known answers in
        Tests/e2e/test_s3_fake.py)
    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html    (pre-signed URLs)
    https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html             (error codes)

What it serves, path-style (`/{bucket}/{key}`) or virtual-hosted (`Host: {bucket}.{suffix}[:port]`, the
path being the key; the suffix is `--virtual-host-suffix`, "localhost" unless told):

    PUT    /{bucket}          creates the bucket (an owner's re-create: 200 in us-east-1, 409
                              BucketAlreadyOwnedByYou elsewhere, as S3 does)
    HEAD   /{bucket}          200 or 404
    GET    /{bucket}          ListObjects (v1, or v2 with list-type=2): prefix and max-keys, one page
    DELETE /{bucket}          204, 409 BucketNotEmpty, 404
    PUT    /{bucket}/{key}    stores the body, its Content-Type (binary/octet-stream if none) and
                              x-amz-meta-*; ETag is the quoted MD5; Content-MD5 checked when sent
    GET    /{bucket}/{key}    the object (one byte range with `Range`, 206), 404 NoSuchKey
    HEAD   /{bucket}/{key}    the same without a body
    DELETE /{bucket}/{key}    204, for a missing key too
    GET    /                  unauthenticated: 200 "ok" (the health probe); signed: ListBuckets

Keys may hold slashes. Anything else (multipart uploads, ACLs, tagging, copies, versions ...) answers 501
NotImplemented rather than pretending. Every request but the health probe and `/_fake/*` must carry AWS
Signature Version 4, in an `Authorization` header or in the query (a pre-signed URL), and is refused the
way S3 refuses it (an XML `<Error>` with S3's code and status):

    403 AccessDenied                 no authentication at all; x-amz-* headers (or host) not signed;
                                     "Request has expired" for a pre-signed URL past X-Amz-Expires
    403 InvalidAccessKeyId           another access key
    403 SignatureDoesNotMatch        any other signature, or a header named in SignedHeaders that the
                                     request does not carry (old libcurl signs an `Expect` it never sends)
    403 RequestTimeTooSkewed         x-amz-date (or a pre-signed X-Amz-Date) over 15 minutes from now
    400 InvalidRequest               "Missing required header for this request: x-amz-content-sha256"
    400 XAmzContentSHA256Mismatch    the body's SHA-256 is not the x-amz-content-sha256 sent
    400 AuthorizationHeaderMalformed a wrong credential scope (date, region, service) in the header
    400 AuthorizationQueryParametersError  a malformed pre-signed URL, X-Amz-Expires outside 1..604800
    400 EntityTooLarge               a body over --max-object-bytes (5 GiB, S3's single-PUT limit)
    411 MissingContentLength, 501 NotImplemented (Transfer-Encoding, STREAMING-* payloads)

For the tests, without authentication:

    POST   /_fake/clock?offset=SECONDS  "now" becomes time.time() + SECONDS (expire a pre-signed URL
                                        without waiting); GET /_fake/clock shows it
    GET    /_fake/requests              JSON: the last 200 requests (method, path, host, status, code,
                                        reason, auth, signed_headers), oldest first; DELETE clears them

Run it (`python3 Tests/e2e/fakes/s3.py --host 127.0.0.1 --port PORT --access-key KEY --secret-key SECRET`);
it prints "s3 fake listening on http://HOST:PORT" when ready, logs every request on stderr and serves until
killed. Or in-process: `S3Fake(host, port, access_key, secret_key, region).start()` ... `.stop()`.
"""
import argparse
import base64
import collections
import datetime
import email.utils
import hashlib
import hmac
import http.server
import json
import re
import secrets
import sys
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW_SECONDS = 15 * 60                # "within 15 minutes of the Amazon S3 system time"
MAX_EXPIRES_SECONDS = 7 * 24 * 60 * 60    # X-Amz-Expires: "maximum ... 604800 seconds (seven days)"
DEFAULT_MAX_OBJECT_BYTES = 5 * 1024 ** 3  # a single PUT: up to 5 GiB
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
REQUEST_LOG_SIZE = 200
DRAIN_LIMIT = 64 * 1024 * 1024            # an unread body up to this is read and dropped before answering
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"        # ISO 8601 basic: 20130524T000000Z

# The pre-signed URL's own query parameters (names are case-sensitive).
QUERY_AUTH_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                     "X-Amz-SignedHeaders", "X-Amz-Signature")
# Sub-resources and parameters of operations this fake does not implement: 501, never a silent success.
UNIMPLEMENTED_PARAMS = frozenset((
    "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption", "intelligent-tiering",
    "inventory", "legal-hold", "lifecycle", "location", "logging", "metrics", "notification", "object-lock",
    "ownershipControls", "partNumber", "policy", "policyStatus", "publicAccessBlock", "replication",
    "requestPayment", "restore", "retention", "select", "tagging", "torrent", "uploadId", "uploads",
    "versionId", "versioning", "versions", "website",
))
# Headers stored with an object and given back on GET/HEAD (besides x-amz-meta-*).
STORED_HEADERS = ("Content-Type", "Content-Encoding", "Content-Disposition", "Content-Language",
                  "Cache-Control", "Expires")
# GET's response-* parameters override the stored headers.
RESPONSE_OVERRIDES = {"response-content-type": "Content-Type", "response-content-language": "Content-Language",
                      "response-expires": "Expires", "response-cache-control": "Cache-Control",
                      "response-content-disposition": "Content-Disposition",
                      "response-content-encoding": "Content-Encoding"}
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


# ---- Signature Version 4 ----------------------------------------------------------------------------
#
# Canonical request (sig-v4-header-based-auth.html, "Task 1: Create a Canonical Request"):
#
#     <HTTPMethod>\n<CanonicalURI>\n<CanonicalQueryString>\n<CanonicalHeaders>\n<SignedHeaders>\n<HashedPayload>
#
# where CanonicalHeaders is one `lowercase-name:trimmed-value\n` per signed header, sorted by name, and
# HashedPayload is the x-amz-content-sha256 value (UNSIGNED-PAYLOAD for pre-signed URLs).

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def uri_encode(value, keep_slash=False):
    """AWS's UriEncode: every byte (of the UTF-8 form) but the unreserved characters A-Z a-z 0-9 - . _ ~
    becomes %XX with upper-case hex; a space is %20 (never +); '/' is encoded too unless keep_slash (the
    object key in the path)."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return "".join(chr(b) if b in _UNRESERVED or (keep_slash and b == 0x2F) else "%{:02X}".format(b) for b in data)


def canonical_uri(raw_path):
    """The path as sent, decoded once and encoded once with UriEncode, slashes kept. S3 neither encodes
    twice nor normalises the path ('//', '.' and '..' stay as they are)."""
    return uri_encode(urllib.parse.unquote_to_bytes(raw_path or "/"), keep_slash=True) or "/"


def _query_pairs(raw_query):
    """The raw query as (name, value) byte pairs, each decoded once; `name` alone is `name=` (empty value);
    '+' is a plus, not a space."""
    pairs = []
    for part in (raw_query or "").split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((urllib.parse.unquote_to_bytes(name), urllib.parse.unquote_to_bytes(value)))
    return pairs


def canonical_query_string(raw_query, exclude=()):
    """Every parameter's name and value UriEncoded (slashes too), sorted by encoded name (then value),
    joined as name=value with '&'. `exclude` names parameters left out (X-Amz-Signature, pre-signed)."""
    excluded = {name.encode("utf-8") for name in exclude}
    encoded = sorted((uri_encode(name), uri_encode(value)) for name, value in _query_pairs(raw_query)
                     if name not in excluded)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_header_value(values):
    """A header's canonical value: each value trimmed, runs of spaces made one, several values (the header
    sent more than once) joined with commas."""
    return ",".join(re.sub(" +", " ", value.strip()) for value in values)


def canonical_request(method, uri, query, headers, signed_headers, payload_hash):
    """`headers` maps each lower-case name of `signed_headers` (a list, in order) to its canonical value."""
    lines = "".join(f"{name}:{headers[name]}\n" for name in signed_headers)
    return "\n".join((method, uri, query, lines, ";".join(signed_headers), payload_hash))


def credential_scope(date, region, service="s3"):
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date, scope, canonical):
    """"AWS4-HMAC-SHA256\\n" + timestamp + "\\n" + scope + "\\n" + hex(SHA256(canonical request))."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return "\n".join((ALGORITHM, amz_date, scope, digest))


def _hmac(key, message):
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key, date, region, service="s3"):
    """kDate = HMAC("AWS4" + secret, date); kRegion = HMAC(kDate, region); kService = HMAC(kRegion, service);
    kSigning = HMAC(kService, "aws4_request")."""
    k_date = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def signature(key, to_sign):
    """Hex HMAC-SHA256 of the string to sign under the signing key."""
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_amz_date(text):
    """Seconds since the epoch for `20130524T000000Z`, or None."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{8}T\d{6}Z", text):
        return None
    try:
        moment = datetime.datetime.strptime(text, AMZ_DATE_FORMAT)
    except ValueError:
        return None
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- refusals ---------------------------------------------------------------------------------------

class Refusal(Exception):
    """An S3 error answer: status, code, message, extra elements for the XML, and the reason logged."""

    def __init__(self, status, code, message, reason=None, **extra):
        super().__init__(f"{status} {code}: {reason or message}")
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason or message
        self.extra = extra

    def xml(self, resource, request_id):
        parts = [f"<Code>{escape(self.code)}</Code>", f"<Message>{escape(self.message)}</Message>"]
        parts += [f"<{name}>{escape(str(value))}</{name}>" for name, value in self.extra.items()]
        parts += [f"<Resource>{escape(resource)}</Resource>", f"<RequestId>{request_id}</RequestId>",
                  f"<HostId>{escape(base64.b64encode(request_id.encode()).decode())}</HostId>"]
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>").encode("utf-8")


def _access_denied(reason):
    return Refusal(403, "AccessDenied", "Access Denied", reason)


def _not_implemented(reason, **extra):
    return Refusal(501, "NotImplemented", "A header you provided implies functionality that is not implemented",
                   reason, **extra)


def _header_malformed(detail):
    return Refusal(400, "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}")


def _query_malformed(message):
    return Refusal(400, "AuthorizationQueryParametersError", message)


# ---- verifying a request ----------------------------------------------------------------------------

Auth = collections.namedtuple("Auth", "kind signed_headers payload_hash")


class Verifier:
    """Checks a request's Signature Version 4 against one access key, its secret and the region.

    `check(method, raw_path, raw_query, headers, now)` takes the request as sent (the raw path and query,
    the headers as (name, value) pairs) and returns an `Auth` (kind "header" or "query", the signed header
    names, the payload hash to check the body against or UNSIGNED-PAYLOAD), or raises `Refusal`.
    """

    def __init__(self, access_key, secret_key, region="us-east-1"):
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    def check(self, method, raw_path, raw_query, headers, now):
        by_name = collections.defaultdict(list)
        for name, value in headers:
            by_name[name.lower()].append(value)
        query = {name.decode("utf-8", "replace"): value.decode("utf-8", "replace")
                 for name, value in _query_pairs(raw_query)}
        in_query = [name for name in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature") if name in query]
        if "authorization" in by_name:
            if in_query:
                raise Refusal(400, "InvalidArgument",
                              "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                              "Signature query string parameter or the Authorization header should be specified")
            return self._check_header(method, raw_path, raw_query, by_name, now)
        if in_query:
            return self._check_query(method, raw_path, raw_query, query, by_name, now)
        if "Signature" in query or "AWSAccessKeyId" in query:
            raise Refusal(400, "InvalidRequest", "The authorization mechanism you have provided is not supported. "
                          "Please use AWS4-HMAC-SHA256.", "Signature Version 2 query authentication")
        raise _access_denied("no authentication (neither an Authorization header nor X-Amz-* query parameters)")

    # -- the Authorization header --

    def _check_header(self, method, raw_path, raw_query, by_name, now):
        header = by_name["authorization"][0]
        algorithm, _, rest = header.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise Refusal(400, "InvalidRequest", "The authorization mechanism you have provided is not supported. "
                          "Please use AWS4-HMAC-SHA256.", f"Authorization algorithm {algorithm!r}")
        fields = {}
        for part in rest.split(","):
            name, equals, value = part.strip().partition("=")
            if equals:
                fields[name] = value
        missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
        if missing:
            raise _header_malformed(f"missing {', '.join(missing)} in {header!r}")
        credential = fields["Credential"].split("/")
        if len(credential) != 5:
            raise _header_malformed(f"the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/"
                                    f"aws4_request\".")
        access_key, date, region, service, terminal = credential
        if access_key != self.access_key:
            raise Refusal(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
                          f"access key {access_key!r}", AWSAccessKeyId=access_key)

        # x-amz-content-sha256 is required on every request signed in the header.
        if "x-amz-content-sha256" not in by_name:
            raise Refusal(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        payload_hash = by_name["x-amz-content-sha256"][0].strip()
        self._check_payload_hash(payload_hash)

        if "x-amz-date" not in by_name:
            raise Refusal(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header",
                          "no x-amz-date header")
        amz_date = by_name["x-amz-date"][0].strip()
        moment = parse_amz_date(amz_date)
        if moment is None:
            raise Refusal(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header",
                          f"x-amz-date {amz_date!r} is not YYYYMMDD'T'HHMMSS'Z'")
        if date != amz_date[:8]:
            raise _header_malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
        if region != self.region:
            raise _header_malformed(f"the region '{region}' is wrong; expecting '{self.region}'")
        if service != "s3":
            raise _header_malformed(f"incorrect service '{service}'. This endpoint belongs to 's3'.")
        if terminal != "aws4_request":
            raise _header_malformed(f"incorrect terminal '{terminal}'. This endpoint uses 'aws4_request'.")
        if abs(now - moment) > MAX_SKEW_SECONDS:
            raise Refusal(403, "RequestTimeTooSkewed", "The difference between the request time and the current "
                          "time is too large.", f"x-amz-date {amz_date} is {int(moment - now)} s from now",
                          RequestTime=amz_date, ServerTime=_iso(now), MaxAllowedSkewMilliseconds=MAX_SKEW_SECONDS * 1000)

        signed = self._signed_headers(fields["SignedHeaders"], by_name)
        scope = credential_scope(date, region, service)
        self._compare(method, raw_path, canonical_query_string(raw_query), by_name, signed, payload_hash,
                      amz_date, scope, fields["Signature"])
        return Auth("header", signed, payload_hash)

    @staticmethod
    def _check_payload_hash(payload_hash):
        if payload_hash.startswith("STREAMING-"):
            raise _not_implemented(f"x-amz-content-sha256 {payload_hash} (chunked signing) is not implemented here",
                                   Header="x-amz-content-sha256")
        if payload_hash != UNSIGNED_PAYLOAD and not re.fullmatch(r"[0-9a-f]{64}", payload_hash):
            raise Refusal(400, "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                          "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.",
                          f"x-amz-content-sha256 {payload_hash!r}", ArgumentName="x-amz-content-sha256",
                          ArgumentValue=payload_hash)

    # -- the query string (pre-signed URLs) --

    def _check_query(self, method, raw_path, raw_query, query, by_name, now):
        if any(not query.get(name) for name in QUERY_AUTH_PARAMS):
            raise _query_malformed("Query-string authentication version 4 requires the X-Amz-Algorithm, "
                                   "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
                                   "and X-Amz-Expires parameters.")
        if query["X-Amz-Algorithm"] != ALGORITHM:
            raise _query_malformed('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
        credential = query["X-Amz-Credential"].split("/")
        if len(credential) != 5:
            raise _query_malformed('Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; '
                                   'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
        access_key, date, region, service, terminal = credential
        if region != self.region:
            raise _query_malformed(f"Error parsing the X-Amz-Credential parameter; the region '{region}' is wrong; "
                                   f"expecting '{self.region}'")
        if service != "s3":
            raise _query_malformed(f"Error parsing the X-Amz-Credential parameter; incorrect service '{service}'. "
                                   f"This endpoint belongs to 's3'.")
        if terminal != "aws4_request":
            raise _query_malformed(f"Error parsing the X-Amz-Credential parameter; incorrect terminal "
                                   f"'{terminal}'. This endpoint uses 'aws4_request'.")
        if access_key != self.access_key:
            raise Refusal(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
                          f"access key {access_key!r}", AWSAccessKeyId=access_key)
        amz_date = query["X-Amz-Date"]
        moment = parse_amz_date(amz_date)
        if moment is None:
            raise _query_malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
        if date != amz_date[:8]:
            raise _query_malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
        expires_text = query["X-Amz-Expires"]
        if not re.fullmatch(r"[0-9]+", expires_text):
            raise _query_malformed("X-Amz-Expires should be a number")
        expires = int(expires_text)
        if expires < 1:
            raise _query_malformed("X-Amz-Expires must be non-negative and at least 1 second")
        if expires > MAX_EXPIRES_SECONDS:
            raise _query_malformed("X-Amz-Expires must be less than a week (in seconds) that is 604800")
        if moment - now > MAX_SKEW_SECONDS:
            raise Refusal(403, "RequestTimeTooSkewed", "The difference between the request time and the current "
                          "time is too large.", f"X-Amz-Date {amz_date} is {int(moment - now)} s in the future",
                          RequestTime=amz_date, ServerTime=_iso(now), MaxAllowedSkewMilliseconds=MAX_SKEW_SECONDS * 1000)
        if now > moment + expires:
            raise Refusal(403, "AccessDenied", "Request has expired",
                          f"pre-signed URL expired {int(now - moment - expires)} s ago",
                          **{"X-Amz-Expires": expires, "Expires": _iso(moment + expires), "ServerTime": _iso(now)})

        signed = self._signed_headers(query["X-Amz-SignedHeaders"], by_name)
        # A pre-signed URL's payload is UNSIGNED-PAYLOAD, unless the request signs an x-amz-content-sha256.
        payload_hash = UNSIGNED_PAYLOAD
        if "x-amz-content-sha256" in by_name:
            payload_hash = by_name["x-amz-content-sha256"][0].strip()
            self._check_payload_hash(payload_hash)
        scope = credential_scope(date, region, service)
        self._compare(method, raw_path, canonical_query_string(raw_query, exclude=("X-Amz-Signature",)), by_name,
                      signed, payload_hash, amz_date, scope, query["X-Amz-Signature"])
        return Auth("query", signed, payload_hash)

    # -- shared --

    @staticmethod
    def _signed_headers(text, by_name):
        """SignedHeaders as a list, after checking it: lower-case names, sorted, no repeats; `host` and every
        x-amz-* header the request carries among them; and every one of them present in the request."""
        names = text.split(";")
        if not all(names) or names != sorted(set(names)) or any(name != name.lower() for name in names):
            raise Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.",
                          f"SignedHeaders {text!r} is not lower-case, sorted and without repeats")
        unsigned = sorted(name for name in by_name if name.startswith("x-amz-") and name not in names)
        if "host" not in names:
            unsigned.insert(0, "host")
        if unsigned:
            raise Refusal(403, "AccessDenied", "There were headers present in the request which were not signed",
                          f"headers not signed: {', '.join(unsigned)}", HeadersNotSigned=", ".join(unsigned))
        absent = [name for name in names if name not in by_name]
        if absent:
            raise Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.",
                          f"signed header(s) not in the request: {', '.join(absent)}")
        return names

    def _compare(self, method, raw_path, query, by_name, signed, payload_hash, amz_date, scope, provided):
        headers = {name: canonical_header_value(by_name[name]) for name in signed}
        canonical = canonical_request(method, canonical_uri(raw_path), query, headers, signed, payload_hash)
        to_sign = string_to_sign(amz_date, scope, canonical)
        date, region, service = scope.split("/")[:3]
        expected = signature(signing_key(self.secret_key, date, region, service), to_sign)
        if not hmac.compare_digest(expected.encode("ascii"), provided.strip().encode("ascii", "replace")):
            raise Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.",
                          "signature mismatch (canonical request: " + json.dumps(canonical) + ")",
                          AWSAccessKeyId=self.access_key, StringToSign=to_sign, SignatureProvided=provided,
                          CanonicalRequest=canonical)


# ---- the store --------------------------------------------------------------------------------------

class _Object:
    def __init__(self, body, headers, metadata, modified):
        self.body = body
        self.headers = headers      # the STORED_HEADERS sent with the PUT
        self.metadata = metadata    # x-amz-meta-* (lower-case names)
        self.etag = '"' + hashlib.md5(body).hexdigest() + '"'
        self.modified = modified


def _parse_range(value, size):
    """(first, last) for a single `bytes=` range, None to ignore the header (malformed, or several ranges:
    the whole object is sent), or "unsatisfiable"."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value or "")
    if not match or (match.group(1) == "" and match.group(2) == ""):
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    first = int(first)
    if last != "" and int(last) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, size - 1 if last == "" else min(int(last), size - 1)


# ---- HTTP -------------------------------------------------------------------------------------------

class _Request:
    """One request as the fake sees it: where it goes (bucket, key), its raw path and query, headers."""

    def __init__(self, handler, method, fake):
        self.method = method
        self.handler = handler
        target = handler.path
        if target.startswith(("http://", "https://")):  # absolute-form request target
            target = urllib.parse.urlunsplit(("", "") + urllib.parse.urlsplit(target)[2:])
        self.raw_path, _, self.raw_query = target.partition("?")
        self.raw_path = self.raw_path or "/"
        self.headers = list(handler.headers.items())
        self.host = handler.headers.get("Host", "")
        self.query = {name.decode("utf-8", "replace"): value.decode("utf-8", "replace")
                      for name, value in _query_pairs(self.raw_query)}
        self.request_id = secrets.token_hex(8).upper()
        self.auth = None
        self.refusal = None
        self.body = None
        length = handler.headers.get("Content-Length")
        self.length = int(length) if length is not None and length.strip().isdigit() else None

        path = urllib.parse.unquote(self.raw_path)
        self.virtual_bucket = fake._virtual_bucket(self.host)
        if self.virtual_bucket is not None:
            self.bucket = self.virtual_bucket
            self.key = path[1:] or None
        else:
            bucket, _, key = path[1:].partition("/")
            self.bucket, self.key = bucket or None, key or None

    def claimed_signed_headers(self):
        """The names the request says it signed (SignedHeaders or X-Amz-SignedHeaders), refused or not."""
        if self.auth is not None:
            return list(self.auth.signed_headers)
        found = re.search(r"SignedHeaders=([^,\s]*)", self.handler.headers.get("Authorization", ""))
        text = found.group(1) if found else self.query.get("X-Amz-SignedHeaders", "")
        return [name for name in text.split(";") if name]

    @property
    def resource(self):
        if self.bucket is None:
            return "/"
        return f"/{self.bucket}" + (f"/{self.key}" if self.key else "")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonS3"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name; the fake logs for itself
        pass

    def version_string(self):
        return self.server_version

    def handle_expect_100(self):
        """`Expect: 100-continue`: S3 answers the final refusal instead of 100 when the headers alone fail."""
        return self.server.fake._expect_100(self)

    def do_GET(self):
        self.server.fake._dispatch(self, "GET")

    def do_HEAD(self):
        self.server.fake._dispatch(self, "HEAD")

    def do_PUT(self):
        self.server.fake._dispatch(self, "PUT")

    def do_POST(self):
        self.server.fake._dispatch(self, "POST")

    def do_DELETE(self):
        self.server.fake._dispatch(self, "DELETE")

    def do_PATCH(self):
        self.server.fake._dispatch(self, "PATCH")

    def do_OPTIONS(self):
        self.server.fake._dispatch(self, "OPTIONS")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class S3Fake:
    """The fake S3 server. `S3Fake(host, port, access_key, secret_key, region).start()` serves on a thread
    (port 0: a free one, see `.port` / `.url`); `.stop()` ends it."""

    def __init__(self, host="127.0.0.1", port=0, access_key="test-access-key", secret_key="test-secret-key",
                 region="us-east-1", virtual_host_suffix="localhost", max_object_bytes=DEFAULT_MAX_OBJECT_BYTES,
                 log=True):
        self.host = host
        self.port = port
        self.region = region
        self.virtual_host_suffix = virtual_host_suffix.lower().strip(".")
        self.max_object_bytes = max_object_bytes
        self.log = log
        self.verifier = Verifier(access_key, secret_key, region)
        self.clock_offset = 0.0
        self._buckets = {}    # name -> {key: _Object}
        self._created = {}    # name -> creation time
        self._requests = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # -- life --

    def start(self):
        self._server = _Server((self.host, self.port), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="s3-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def now(self):
        return time.time() + self.clock_offset

    # -- for tests in-process --

    def create_bucket(self, name):
        with self._lock:
            self._buckets.setdefault(name, {})
            self._created.setdefault(name, self.now())

    def put_object(self, bucket, key, body, content_type=DEFAULT_CONTENT_TYPE):
        """Stores an object directly (the bucket is made if missing), as a signed PUT would."""
        self.create_bucket(bucket)
        stored = _Object(bytes(body), {"Content-Type": content_type}, {}, self.now())
        with self._lock:
            self._buckets[bucket][key] = stored
        return stored.etag

    def get_object(self, bucket, key):
        """(body, content type) of a stored object, or None."""
        with self._lock:
            found = self._buckets.get(bucket, {}).get(key)
        return None if found is None else (found.body, found.headers.get("Content-Type", DEFAULT_CONTENT_TYPE))

    def requests(self):
        with self._lock:
            return list(self._requests)

    def clear_requests(self):
        with self._lock:
            self._requests.clear()

    # -- routing --

    def _virtual_bucket(self, host):
        """The bucket of a virtual-hosted request (`bucket.suffix[:port]`), else None."""
        host = host.strip().lower()
        if host.startswith("["):  # an IPv6 literal is never virtual-hosted
            return None
        name = host.rsplit(":", 1)[0] if ":" in host else host
        suffix = "." + self.virtual_host_suffix
        if self.virtual_host_suffix and name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
        return None

    def _is_fake_endpoint(self, request):
        return request.virtual_bucket is None and request.raw_path.startswith("/_fake/")

    def _is_health_probe(self, request):
        return (request.method in ("GET", "HEAD") and request.virtual_bucket is None and request.raw_path == "/"
                and not request.raw_query and "Authorization" not in request.handler.headers)

    def _header_checks(self, request):
        """What can be refused before the body is read: framing, authentication, the declared size."""
        if request.handler.headers.get("Transfer-Encoding"):
            raise _not_implemented("Transfer-Encoding is not supported (S3 needs a Content-Length)",
                                   Header="Transfer-Encoding")
        request.auth = self.verifier.check(request.method, request.raw_path, request.raw_query,
                                           request.headers, self.now())
        if request.method == "PUT" and request.key is not None and request.length is None:
            raise Refusal(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        if request.length is not None and request.length > self.max_object_bytes:
            raise Refusal(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                          f"{request.length} bytes over the {self.max_object_bytes} allowed",
                          ProposedSize=request.length, MaxSizeAllowed=self.max_object_bytes)

    def _expect_100(self, handler):
        request = _Request(handler, handler.command, self)
        if not (self._is_fake_endpoint(request) or self._is_health_probe(request)):
            try:
                self._header_checks(request)
            except Refusal as refusal:
                handler.close_connection = True
                self._answer(request, *self._error(request, refusal), close=True)
                return False
        handler.send_response_only(100)
        handler.end_headers()
        return True

    def _dispatch(self, handler, method):
        request = _Request(handler, method, self)
        try:
            if self._is_fake_endpoint(request):
                answer = self._fake_endpoint(request)
            elif self._is_health_probe(request):
                self._read_body(request)
                answer = (200, [("Content-Type", "text/plain")], b"ok")
            else:
                self._header_checks(request)
                self._read_body(request)
                hashed = request.auth.payload_hash
                if hashed != UNSIGNED_PAYLOAD:
                    computed = hashlib.sha256(request.body).hexdigest()
                    if not hmac.compare_digest(computed, hashed):
                        raise Refusal(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header "
                                      "does not match what was computed.",
                                      f"body SHA-256 {computed}, x-amz-content-sha256 {hashed}",
                                      ClientComputedContentSHA256=hashed, S3ComputedContentSHA256=computed)
                answer = self._operation(request)
        except Refusal as refusal:
            answer = self._error(request, refusal)
        except (ConnectionError, TimeoutError):
            handler.close_connection = True
            return
        except Exception as error:  # a bug here: say so, in S3's words and on stderr, rather than hang up
            answer = self._error(request, Refusal(500, "InternalError", "We encountered an internal error. "
                                                  "Please try again.", f"fake failure: {error!r}"))
        # A chunked body is never read (refused above): the connection cannot be reused after it.
        close = bool(handler.headers.get("Transfer-Encoding"))
        if not close and request.body is None and request.length:
            # The body was not read: drop it if it is small, else close the connection after answering.
            if request.length <= DRAIN_LIMIT:
                try:
                    self._read_body(request)
                except (ConnectionError, TimeoutError, ValueError):
                    close = True
            else:
                close = True
        self._answer(request, *answer, close=close)

    def _read_body(self, request):
        if request.body is not None:
            return
        length = request.length or 0
        chunks, left = [], length
        while left > 0:
            chunk = request.handler.rfile.read(min(left, 1 << 20))
            if not chunk:
                raise ConnectionError("the client closed the connection before sending the whole body")
            chunks.append(chunk)
            left -= len(chunk)
        request.body = b"".join(chunks)

    def _error(self, request, refusal):
        request.refusal = refusal
        body = b"" if request.method == "HEAD" else refusal.xml(request.resource, request.request_id)
        return refusal.status, [("Content-Type", "application/xml")], body

    def _answer(self, request, status, headers, body, close=False):
        handler = request.handler
        refusal = request.refusal
        reason = f"{refusal.code}: {refusal.reason}" if refusal else ""
        entry = {"method": request.method, "path": request.raw_path, "query": request.raw_query,
                 "host": request.host, "status": status, "code": refusal.code if refusal else None,
                 "reason": reason, "auth": request.auth.kind if request.auth else None,
                 "signed_headers": request.claimed_signed_headers(),
                 "time": self.now()}
        if not self._is_fake_endpoint(request):
            with self._lock:
                self._requests.append(entry)
        if self.log:
            line = f"s3 fake: {request.method} {request.host}{request.raw_path}"
            line += f"?{request.raw_query}" if request.raw_query else ""
            sys.stderr.write(f"{line} -> {status}" + (f" {reason}" if reason else "") + "\n")
            sys.stderr.flush()
        try:
            handler.send_response(status)
            names = {name.lower() for name, _ in headers}
            for name, value in headers:
                handler.send_header(name, value)
            handler.send_header("x-amz-request-id", request.request_id)
            if status not in (204, 304) and "content-length" not in names:
                handler.send_header("Content-Length", str(len(body)))
            if close:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            if request.method != "HEAD" and status not in (204, 304) and body:
                handler.wfile.write(body)
        except (ConnectionError, TimeoutError):
            handler.close_connection = True

    # -- the test endpoints --

    def _fake_endpoint(self, request):
        self._read_body(request)
        path, method = request.raw_path, request.method

        def as_json(status, value):
            return status, [("Content-Type", "application/json")], json.dumps(value).encode("utf-8")

        if path == "/_fake/clock" and method == "POST":
            try:
                offset = float(request.query.get("offset", ""))
            except ValueError:
                return as_json(400, {"error": "offset must be a number of seconds"})
            self.clock_offset = offset
            return as_json(200, {"offset": self.clock_offset, "now": self.now()})
        if path == "/_fake/clock" and method == "GET":
            return as_json(200, {"offset": self.clock_offset, "now": self.now()})
        if path == "/_fake/requests" and method == "GET":
            return as_json(200, self.requests())
        if path == "/_fake/requests" and method == "DELETE":
            self.clear_requests()
            return as_json(200, [])
        return as_json(404, {"error": f"no fake endpoint {method} {path}"})

    # -- S3 operations --

    def _operation(self, request):
        unimplemented = sorted(name for name in request.query if name in UNIMPLEMENTED_PARAMS)
        if unimplemented:
            raise _not_implemented(f"sub-resource/parameter {', '.join(unimplemented)} is not implemented here")
        if request.handler.headers.get("x-amz-copy-source"):
            raise _not_implemented("CopyObject is not implemented here", Header="x-amz-copy-source")
        if request.bucket is None:
            if request.method in ("GET", "HEAD"):
                return self._list_buckets()
            raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed against this resource.",
                          Method=request.method, ResourceType="SERVICE")
        if request.key is None:
            return self._bucket_operation(request)
        return self._object_operation(request)

    def _list_buckets(self):
        with self._lock:
            buckets = sorted(self._created.items())
        items = "".join(f"<Bucket><Name>{escape(name)}</Name><CreationDate>{_iso(created)}</CreationDate></Bucket>"
                        for name, created in buckets)
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult><Owner><ID>s3fake</ID>'
               f'<DisplayName>s3fake</DisplayName></Owner><Buckets>{items}</Buckets></ListAllMyBucketsResult>')
        return 200, [("Content-Type", "application/xml")], xml.encode("utf-8")

    def _no_such_bucket(self, request):
        return Refusal(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=request.bucket)

    def _bucket_operation(self, request):
        name, method = request.bucket, request.method
        if method == "PUT":
            if not BUCKET_NAME.fullmatch(name) or ".." in name:
                raise Refusal(400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=name)
            with self._lock:
                exists = name in self._buckets
                if not exists:
                    self._buckets[name] = {}
                    self._created[name] = self.now()
            if exists and self.region != "us-east-1":
                raise Refusal(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket "
                              "succeeded and you already own it.", BucketName=name)
            return 200, [("Location", f"/{name}")], b""
        with self._lock:
            objects = self._buckets.get(name)
            listing = None if objects is None else sorted(objects.items())
        if listing is None:
            raise self._no_such_bucket(request)
        if method == "HEAD":
            return 200, [("x-amz-bucket-region", self.region)], b""
        if method == "DELETE":
            with self._lock:
                if self._buckets.get(name):
                    raise Refusal(409, "BucketNotEmpty", "The bucket you tried to delete is not empty",
                                  BucketName=name)
                self._buckets.pop(name, None)
                self._created.pop(name, None)
            return 204, [], b""
        if method == "GET":
            return self._list_objects(request, listing)
        raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed against this resource.",
                      Method=method, ResourceType="BUCKET")

    def _list_objects(self, request, listing):
        prefix = request.query.get("prefix", "")
        try:
            max_keys = max(0, min(1000, int(request.query.get("max-keys", "1000"))))
        except ValueError:
            raise Refusal(400, "InvalidArgument", "Provided max-keys not an integer or within integer range",
                          ArgumentName="max-keys", ArgumentValue=request.query.get("max-keys"))
        v2 = request.query.get("list-type") == "2"
        after = request.query.get("start-after" if v2 else "marker", "")
        matching = [(key, obj) for key, obj in listing if key.startswith(prefix) and key > after]
        page, truncated = matching[:max_keys], len(matching) > max_keys
        contents = "".join(
            f"<Contents><Key>{escape(key)}</Key><LastModified>{_iso(obj.modified)}</LastModified>"
            f"<ETag>{escape(obj.etag)}</ETag><Size>{len(obj.body)}</Size><StorageClass>STANDARD</StorageClass>"
            "</Contents>" for key, obj in page)
        head = (f"<Name>{escape(request.bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
                f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if v2:
            head += f"<KeyCount>{len(page)}</KeyCount>"
        else:
            head += f"<Marker>{escape(after)}</Marker>"
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult '
               f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{head}{contents}</ListBucketResult>')
        return 200, [("Content-Type", "application/xml")], xml.encode("utf-8")

    def _object_operation(self, request):
        method, headers = request.method, request.handler.headers
        with self._lock:
            objects = self._buckets.get(request.bucket)
        if objects is None:
            raise self._no_such_bucket(request)
        if method == "PUT":
            return self._put_object(request, objects)
        if method == "DELETE":
            with self._lock:
                objects.pop(request.key, None)
            return 204, [], b""
        if method not in ("GET", "HEAD"):
            raise Refusal(405, "MethodNotAllowed", "The specified method is not allowed against this resource.",
                          Method=method, ResourceType="OBJECT")
        with self._lock:
            found = objects.get(request.key)
        if found is None:
            raise Refusal(404, "NoSuchKey", "The specified key does not exist.", Key=request.key)

        answer = [("ETag", found.etag), ("Last-Modified", email.utils.formatdate(found.modified, usegmt=True)),
                  ("Accept-Ranges", "bytes")]
        stored = dict(found.headers)
        stored.setdefault("Content-Type", DEFAULT_CONTENT_TYPE)
        for parameter, header in RESPONSE_OVERRIDES.items():
            if parameter in request.query:
                stored[header] = request.query[parameter]
        answer += sorted(stored.items()) + sorted(found.metadata.items())
        if_match, if_none_match = headers.get("If-Match"), headers.get("If-None-Match")
        if if_match is not None and if_match.strip() not in ("*", found.etag):
            raise Refusal(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                          Condition="If-Match")
        if if_none_match is not None and if_none_match.strip() in ("*", found.etag):
            return 304, [("ETag", found.etag)], b""

        body, status = found.body, 200
        byte_range = _parse_range(headers.get("Range"), len(body)) if headers.get("Range") else None
        if byte_range == "unsatisfiable":
            raise Refusal(416, "InvalidRange", "The requested range is not satisfiable",
                          RangeRequested=headers.get("Range"), ActualObjectSize=len(body))
        if byte_range is not None:
            first, last = byte_range
            answer.append(("Content-Range", f"bytes {first}-{last}/{len(body)}"))
            body, status = body[first:last + 1], 206
        answer.append(("Content-Length", str(len(body))))
        return status, answer, body

    def _put_object(self, request, objects):
        headers, body = request.handler.headers, request.body
        md5 = headers.get("Content-MD5")
        if md5 is not None:
            try:
                digest = base64.b64decode(md5.strip(), validate=True)
            except ValueError:
                digest = b""
            if len(digest) != 16:
                raise Refusal(400, "InvalidDigest", "The Content-MD5 you specified was invalid.",
                              **{"Content-MD5": md5})
            if digest != hashlib.md5(body).digest():
                raise Refusal(400, "BadDigest", "The Content-MD5 you specified did not match what we received.",
                              ExpectedDigest=md5, CalculatedDigest=base64.b64encode(hashlib.md5(body).digest()).decode())
        kept = {name: headers[name] for name in STORED_HEADERS if headers.get(name) is not None}
        metadata = {name.lower(): value for name, value in headers.items() if name.lower().startswith("x-amz-meta-")}
        stored = _Object(body, kept, metadata, self.now())
        with self._lock:
            if request.bucket not in self._buckets:  # deleted meanwhile
                raise self._no_such_bucket(request)
            objects[request.key] = stored
        return 200, [("ETag", stored.etag)], b""


def main(argv=None):
    parser = argparse.ArgumentParser(description="A strict fake S3 (Signature Version 4 checked as AWS documents it).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 for a free port")
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--virtual-host-suffix", default="localhost",
                        help="Host: BUCKET.SUFFIX[:port] is a virtual-hosted request for BUCKET (default localhost)")
    parser.add_argument("--max-object-bytes", type=int, default=DEFAULT_MAX_OBJECT_BYTES,
                        help="bodies larger are refused with EntityTooLarge (default 5 GiB)")
    parser.add_argument("--quiet", action="store_true", help="no per-request log on stderr")
    args = parser.parse_args(argv)
    fake = S3Fake(args.host, args.port, args.access_key, args.secret_key, args.region,
                  virtual_host_suffix=args.virtual_host_suffix, max_object_bytes=args.max_object_bytes,
                  log=not args.quiet).start()
    print(f"s3 fake listening on {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
