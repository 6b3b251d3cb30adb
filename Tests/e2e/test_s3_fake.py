"""The fake S3 (fakes/s3.py) checked by itself: its Signature Version 4 against AWS's published examples,
then the server black-box, started in-process on a free port (no stack, no conftest fixture).

Run alone: `cd Tests/e2e && python3 -m pytest -q -p no:cacheprovider test_s3_fake.py`.

The known answers are AWS's own, from:

    https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
        "Examples: Signature Calculations": GET Object (Range), PUT Object (test$file.text), GET Bucket
        Lifecycle, Get Bucket (List Objects); examplebucket, AKIAIOSFODNN7EXAMPLE, 20130524T000000Z
    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
        "An Example": a pre-signed GET of examplebucket/test.txt, X-Amz-Expires=86400
    https://docs.aws.amazon.com/general/latest/gr/sigv4-calculate-signature.html (now in the IAM User
        Guide, "Create a signed AWS API request"): the signing-key derivation example (IAM ListUsers,
        20150830) and its signature

The S3 pages were found with the documentation search (their text; the examples' intermediate values
-- canonical requests, string-to-sign hashes, signatures -- as AWS prints them and as copies of those
sections quote them). The IAM example's values were found quoted from the general reference's page.
"""
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

from fakes import s3
from fakes.s3 import S3Fake

HERE = os.path.dirname(os.path.abspath(__file__))

if not os.environ.get("SMTP_PORT"):
    # Run alone (no stack): conftest.py's autouse `smtp` fixture needs the stack's environment, and nothing
    # here needs it, so this module replaces it with nothing. Within `make test` the real one is used.
    @pytest.fixture(scope="session")
    def smtp():
        yield None

# AWS's example credentials (every S3 signing example uses them).
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_DATE = "20130524T000000Z"
AWS_HOST = "examplebucket.s3.amazonaws.com"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# What the black-box tests sign with.
KEY = "AKIDS3FAKETEST"
SECRET = "s3-fake-secret/with+odd=characters"
REGION = "us-east-1"


# ---- known answers: the fake's signing functions --------------------------------------------------------

def _server_signature(method, path, query, headers, payload_hash, secret=AWS_SECRET, amz_date=AWS_DATE,
                      region="us-east-1", service="s3"):
    """The fake's own functions, end to end: (canonical request, string to sign, signature)."""
    names = sorted(headers)
    canonical = s3.canonical_request(method, s3.canonical_uri(path), s3.canonical_query_string(query),
                                     {name: s3.canonical_header_value([headers[name]]) for name in names},
                                     names, payload_hash)
    to_sign = s3.string_to_sign(amz_date, s3.credential_scope(amz_date[:8], region, service), canonical)
    return canonical, to_sign, s3.signature(s3.signing_key(secret, amz_date[:8], region, service), to_sign)


def test_aws_example_get_object():
    """GET /test.txt with `Range: bytes=0-9`, payload hash of the empty body."""
    canonical, to_sign, sig = _server_signature(
        "GET", "/test.txt", "",
        {"host": AWS_HOST, "range": "bytes=0-9", "x-amz-content-sha256": EMPTY, "x-amz-date": AWS_DATE}, EMPTY)
    assert canonical == ("GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
                         f"x-amz-content-sha256:{EMPTY}\nx-amz-date:20130524T000000Z\n\n"
                         f"host;range;x-amz-content-sha256;x-amz-date\n{EMPTY}")
    assert to_sign == ("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                       "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972")
    assert sig == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_aws_example_put_object():
    """PUT /test$file.text: the `$` is encoded once (%24) in the canonical URI, the Date header is signed."""
    body = b"Welcome to Amazon S3."
    payload = hashlib.sha256(body).hexdigest()
    assert payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    canonical, to_sign, sig = _server_signature(
        "PUT", "/test$file.text", "",
        {"date": "Fri, 24 May 2013 00:00:00 GMT", "host": AWS_HOST, "x-amz-content-sha256": payload,
         "x-amz-date": AWS_DATE, "x-amz-storage-class": "REDUCED_REDUNDANCY"}, payload)
    assert canonical.startswith("PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n")
    assert canonical.endswith("\n\ndate;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n" + payload)
    assert to_sign.endswith("\n9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d")
    assert sig == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    # The same path sent already encoded gives the same canonical URI (decoded once, encoded once).
    assert s3.canonical_uri("/test%24file.text") == s3.canonical_uri("/test$file.text") == "/test%24file.text"


def test_aws_example_get_bucket_lifecycle():
    """GET /?lifecycle: a parameter without a value is `lifecycle=` in the canonical query."""
    assert s3.canonical_query_string("lifecycle") == "lifecycle="
    _, _, sig = _server_signature("GET", "/", "lifecycle",
                                  {"host": AWS_HOST, "x-amz-content-sha256": EMPTY, "x-amz-date": AWS_DATE}, EMPTY)
    assert sig == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"


def test_aws_example_list_objects():
    """GET /?max-keys=2&prefix=J: the canonical query is sorted by name."""
    assert s3.canonical_query_string("prefix=J&max-keys=2") == "max-keys=2&prefix=J"
    _, _, sig = _server_signature("GET", "/", "max-keys=2&prefix=J",
                                  {"host": AWS_HOST, "x-amz-content-sha256": EMPTY, "x-amz-date": AWS_DATE}, EMPTY)
    assert sig == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"


AWS_PRESIGNED_QUERY = ("X-Amz-Algorithm=AWS4-HMAC-SHA256"
                       "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                       "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host")
AWS_PRESIGNED_SIGNATURE = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


def test_aws_example_presigned_url():
    """The pre-signed GET: X-Amz-Signature left out of the canonical query, UNSIGNED-PAYLOAD."""
    query = AWS_PRESIGNED_QUERY + "&X-Amz-Signature=" + AWS_PRESIGNED_SIGNATURE
    canonical = s3.canonical_request("GET", s3.canonical_uri("/test.txt"),
                                     s3.canonical_query_string(query, exclude=("X-Amz-Signature",)),
                                     {"host": AWS_HOST}, ["host"], s3.UNSIGNED_PAYLOAD)
    assert canonical == f"GET\n/test.txt\n{AWS_PRESIGNED_QUERY}\nhost:{AWS_HOST}\n\nhost\nUNSIGNED-PAYLOAD"
    to_sign = s3.string_to_sign(AWS_DATE, "20130524/us-east-1/s3/aws4_request", canonical)
    assert to_sign.endswith("\n3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04")
    assert s3.signature(s3.signing_key(AWS_SECRET, "20130524", "us-east-1"), to_sign) == AWS_PRESIGNED_SIGNATURE


def test_aws_example_signing_key_and_iam_request():
    """The general signing example (IAM ListUsers): the derived key, the canonical request's hash and the
    signature; another service, a Content-Type value with a space, a two-parameter query."""
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    key = s3.signing_key(secret, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    canonical, to_sign, sig = _server_signature(
        "GET", "/", "Action=ListUsers&Version=2010-05-08",
        {"content-type": "application/x-www-form-urlencoded; charset=utf-8", "host": "iam.amazonaws.com",
         "x-amz-date": "20150830T123600Z"}, EMPTY, secret=secret, amz_date="20150830T123600Z", service="iam")
    assert to_sign.endswith("\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")
    assert sig == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"


def test_canonical_details():
    """UriEncode's rules: unreserved characters kept, upper-case hex, space %20, '+' %2B, slashes kept in the
    path and encoded in the query; header values trimmed with inner runs of spaces made one."""
    assert s3.uri_encode("a b+c/d~e_f.g-h") == "a%20b%2Bc%2Fd~e_f.g-h"
    assert s3.uri_encode("ключ") == "%D0%BA%D0%BB%D1%8E%D1%87"
    assert s3.canonical_uri("/bucket/photos/a%20b+c.webp") == "/bucket/photos/a%20b%2Bc.webp"
    assert s3.canonical_uri("/bucket//a/./b") == "/bucket//a/./b"   # no normalisation
    assert s3.canonical_query_string("b=2&a=x%2Fy&a=1&c") == "a=1&a=x%2Fy&b=2&c="
    assert s3.canonical_header_value(["  a   b  c "]) == "a b c"
    assert s3.canonical_header_value(["one", " two "]) == "one,two"


# ---- the tests' own signer, written from the same pages ------------------------------------------------

def _encode(text, slash):
    # urllib.parse.quote leaves exactly A-Z a-z 0-9 _ . - ~ (and `safe`) alone, as UriEncode does.
    return urllib.parse.quote(text, safe="/" if slash else "")


def _canonical_query(query):
    pairs = []
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        pairs.append((_encode(urllib.parse.unquote(name), False), _encode(urllib.parse.unquote(value), False)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _key(secret, day, region):
    key = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _sign(method, path, headers, payload_hash, query="", access_key=KEY, secret=SECRET, region=REGION, amz_date=None,
          exclude=()):
    """Signs every header in `headers` (lower-case names, `host` among them) and returns them with
    x-amz-date and Authorization added. `path` is as sent (encoded)."""
    amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = dict(headers, **{"x-amz-date": amz_date})
    names = sorted(headers)
    canonical = "\n".join([method, path, _canonical_query(query),
                           "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names),
                           ";".join(names), payload_hash])
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    sig = hmac.new(_key(secret, amz_date[:8], region), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return headers


def _presign(method, host, path, expires=3600, access_key=KEY, secret=SECRET, amz_date=None, signed=None):
    """The query of a pre-signed URL (host signed, or `signed`: lower-case name -> value, host among them)."""
    amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    signed = signed or {"host": host}
    names = sorted(signed)
    params = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
              "X-Amz-Credential": f"{access_key}/{amz_date[:8]}/{REGION}/s3/aws4_request",
              "X-Amz-Date": amz_date, "X-Amz-Expires": str(expires), "X-Amz-SignedHeaders": ";".join(names)}
    query = "&".join(f"{_encode(k, False)}={_encode(v, False)}" for k, v in sorted(params.items()))
    canonical = "\n".join([method, path, query, "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names),
                           "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, f"{amz_date[:8]}/{REGION}/s3/aws4_request",
                         hashlib.sha256(canonical.encode()).hexdigest()])
    sig = hmac.new(_key(secret, amz_date[:8], REGION), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{query}&X-Amz-Signature={sig}"


def test_own_signer_reproduces_aws_examples():
    headers = _sign("GET", "/test.txt", {"host": AWS_HOST, "range": "bytes=0-9", "x-amz-content-sha256": EMPTY},
                    EMPTY, access_key=AWS_KEY, secret=AWS_SECRET, amz_date=AWS_DATE)
    assert headers["authorization"].endswith("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    query = _presign("GET", AWS_HOST, "/test.txt", expires=86400, access_key=AWS_KEY, secret=AWS_SECRET,
                     amz_date=AWS_DATE)
    assert query == AWS_PRESIGNED_QUERY + "&X-Amz-Signature=" + AWS_PRESIGNED_SIGNATURE


# ---- the server, black-box --------------------------------------------------------------------------

@pytest.fixture
def fake():
    server = S3Fake("127.0.0.1", 0, KEY, SECRET, REGION, log=False).start()
    yield server
    server.stop()


class Answer:
    def __init__(self, response):
        self.status = response.status
        self.headers = {name.lower(): value for name, value in response.getheaders()}
        self.body = response.read()

    @property
    def code(self):
        found = re.search(rb"<Code>([^<]*)</Code>", self.body)
        return found and found.group(1).decode()

    @property
    def message(self):
        found = re.search(rb"<Message>([^<]*)</Message>", self.body)
        return found and found.group(1).decode()


def send(server, method, target, headers=None, body=None):
    """One request with exactly `headers` (http.client adds Host only if absent, Content-Length for a body,
    Accept-Encoding: identity)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        return Answer(conn.getresponse())
    finally:
        conn.close()


def host_of(server):
    return f"{server.host}:{server.port}"


def signed(server, method, path, body=b"", headers=None, query="", **options):
    """A correctly signed request (path-style, everything signed), unless `options` say otherwise."""
    payload = options.pop("payload_hash", None) or hashlib.sha256(body).hexdigest()
    all_headers = {"host": options.pop("host", host_of(server)), "x-amz-content-sha256": payload}
    all_headers.update(headers or {})
    sent = _sign(method, path, all_headers, payload, query=query, **options)
    return send(server, method, path + (f"?{query}" if query else ""), sent, body)


def test_health_probe_needs_no_auth(fake):
    answer = send(fake, "GET", "/")
    assert (answer.status, answer.body) == (200, b"ok")


def test_round_trip(fake):
    assert signed(fake, "PUT", "/media").status == 200
    assert signed(fake, "PUT", "/media").status == 200   # an owner's re-create, us-east-1
    key = "generations/2026/a b+c.webp"
    path = "/media/" + _encode(key, True)
    body = b"RIFF\x00\x00\x00\x00WEBPVP8L fake bytes"
    put = signed(fake, "PUT", path, body, {"content-type": "image/webp"})
    etag = '"' + hashlib.md5(body).hexdigest() + '"'
    assert (put.status, put.headers["etag"]) == (200, etag)
    assert fake.get_object("media", key) == (body, "image/webp")

    got = signed(fake, "GET", path)
    assert got.status == 200 and got.body == body
    assert (got.headers["content-type"], got.headers["content-length"], got.headers["etag"]) == \
        ("image/webp", str(len(body)), etag)
    head = signed(fake, "HEAD", path)
    assert (head.status, head.body, head.headers["content-length"], head.headers["etag"]) == \
        (200, b"", str(len(body)), etag)
    part = signed(fake, "GET", path, headers={"range": "bytes=0-3"})
    assert (part.status, part.body, part.headers["content-range"]) == (206, b"RIFF", f"bytes 0-3/{len(body)}")

    assert signed(fake, "DELETE", path).status == 204
    missing = signed(fake, "GET", path)
    assert (missing.status, missing.code) == (404, "NoSuchKey")
    assert signed(fake, "HEAD", path).status == 404
    assert signed(fake, "DELETE", path).status == 204   # a missing key too, as S3 answers


def test_unsigned_payload_put(fake):
    fake.create_bucket("media")
    answer = signed(fake, "PUT", "/media/x.bin", b"abc", payload_hash="UNSIGNED-PAYLOAD")
    assert answer.status == 200 and fake.get_object("media", "x.bin")[0] == b"abc"


def test_no_such_bucket(fake):
    answer = signed(fake, "GET", "/nowhere/key")
    assert (answer.status, answer.code) == (404, "NoSuchBucket")


def test_no_auth_is_access_denied(fake):
    fake.put_object("media", "a.png", b"png")
    answer = send(fake, "GET", "/media/a.png")
    assert (answer.status, answer.code) == (403, "AccessDenied")


def test_wrong_secret(fake):
    fake.put_object("media", "a.png", b"png")
    answer = signed(fake, "GET", "/media/a.png", secret="not-the-secret")
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    assert b"<CanonicalRequest>" in answer.body   # as S3 does, for debugging


def test_wrong_access_key(fake):
    answer = signed(fake, "GET", "/media/a.png", access_key="AKIDSOMEONEELSE")
    assert (answer.status, answer.code) == (403, "InvalidAccessKeyId")


def test_wrong_region(fake):
    answer = signed(fake, "GET", "/media/a.png", region="eu-west-1")
    assert (answer.status, answer.code) == (400, "AuthorizationHeaderMalformed")


def test_missing_content_sha256(fake):
    fake.create_bucket("media")
    headers = _sign("PUT", "/media/a.bin", {"host": host_of(fake)}, hashlib.sha256(b"abc").hexdigest())
    answer = send(fake, "PUT", "/media/a.bin", headers, b"abc")
    assert (answer.status, answer.code) == (400, "InvalidRequest")
    assert answer.message == "Missing required header for this request: x-amz-content-sha256"


def test_body_hash_mismatch(fake):
    fake.create_bucket("media")
    answer = signed(fake, "PUT", "/media/a.bin", b"the real body", payload_hash=hashlib.sha256(b"other").hexdigest())
    assert (answer.status, answer.code) == (400, "XAmzContentSHA256Mismatch")
    assert fake.get_object("media", "a.bin") is None


def test_signed_header_not_sent(fake):
    """Old libcurl signs `Expect: 100-continue` and never sends it: SignatureDoesNotMatch."""
    fake.create_bucket("media")
    body = b"x" * 100
    payload = hashlib.sha256(body).hexdigest()
    headers = _sign("PUT", "/media/a.bin", {"host": host_of(fake), "x-amz-content-sha256": payload,
                                            "expect": "100-continue"}, payload)
    del headers["expect"]
    assert "expect" in headers["authorization"]
    answer = send(fake, "PUT", "/media/a.bin", headers, body)
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    log = json.loads(send(fake, "GET", "/_fake/requests").body)
    assert log[-1]["status"] == 403 and "expect" in log[-1]["reason"]
    assert log[-1]["signed_headers"] == ["expect", "host", "x-amz-content-sha256", "x-amz-date"]


def test_unsigned_amz_header(fake):
    fake.create_bucket("media")
    headers = _sign("PUT", "/media/a.bin", {"host": host_of(fake), "x-amz-content-sha256": EMPTY}, EMPTY)
    headers["x-amz-meta-note"] = "added after signing"
    answer = send(fake, "PUT", "/media/a.bin", headers, b"")
    assert (answer.status, answer.code) == (403, "AccessDenied")
    assert b"<HeadersNotSigned>x-amz-meta-note</HeadersNotSigned>" in answer.body


def test_request_time_too_skewed(fake):
    old = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 16 * 60))
    answer = signed(fake, "GET", "/", amz_date=old)
    assert (answer.status, answer.code) == (403, "RequestTimeTooSkewed")
    assert signed(fake, "GET", "/").status == 200   # ListBuckets, signed


def test_entity_too_large(fake):
    fake.create_bucket("media")
    fake.max_object_bytes = 16
    answer = signed(fake, "PUT", "/media/big.bin", b"y" * 17)
    assert (answer.status, answer.code) == (400, "EntityTooLarge")
    assert signed(fake, "PUT", "/media/ok.bin", b"y" * 16).status == 200


def test_expect_100_refused_before_the_body(fake):
    """With `Expect: 100-continue` the refusal comes instead of 100 Continue, before any body is sent."""
    fake.create_bucket("media")
    payload = hashlib.sha256(b"z" * 10).hexdigest()
    headers = _sign("PUT", "/media/a.bin", {"host": host_of(fake), "x-amz-content-sha256": payload,
                                            "expect": "100-continue"}, payload, secret="wrong")
    lines = [f"{name}: {value}" for name, value in headers.items()] + ["content-length: 10"]
    with socket.create_connection((fake.host, fake.port), timeout=10) as sock:
        sock.sendall(("PUT /media/a.bin HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"</Error>" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403") and b"<Code>SignatureDoesNotMatch</Code>" in answer


def test_expect_100_accepted(fake):
    fake.create_bucket("media")
    body = b"z" * 10
    payload = hashlib.sha256(body).hexdigest()
    headers = _sign("PUT", "/media/a.bin", {"host": host_of(fake), "x-amz-content-sha256": payload,
                                            "expect": "100-continue"}, payload)
    lines = [f"{name}: {value}" for name, value in headers.items()] + ["content-length: 10", "connection: close"]
    with socket.create_connection((fake.host, fake.port), timeout=10) as sock:
        sock.sendall(("PUT /media/a.bin HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert fake.get_object("media", "a.bin")[0] == body


def test_presigned_get_and_expiry(fake):
    fake.put_object("media", "photos/cat 1.png", b"png bytes", "image/png")
    path = "/media/photos/cat%201.png"
    query = _presign("GET", host_of(fake), path, expires=600)
    answer = send(fake, "GET", f"{path}?{query}")
    assert (answer.status, answer.body, answer.headers["content-type"]) == (200, b"png bytes", "image/png")

    # The clock moved past X-Amz-Expires (through the test endpoint, as a separate process would).
    moved = send(fake, "POST", "/_fake/clock?offset=601")
    assert moved.status == 200 and json.loads(moved.body)["offset"] == 601
    expired = send(fake, "GET", f"{path}?{query}")
    assert (expired.status, expired.code, expired.message) == (403, "AccessDenied", "Request has expired")
    send(fake, "POST", "/_fake/clock?offset=0")
    assert send(fake, "GET", f"{path}?{query}").status == 200


def test_presigned_tampered(fake):
    fake.put_object("media", "a.png", b"png")
    query = _presign("GET", host_of(fake), "/media/a.png")
    flipped = query[:-1] + ("0" if query[-1] != "0" else "1")
    answer = send(fake, "GET", f"/media/a.png?{flipped}")
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    other_key = send(fake, "GET", f"/media/b.png?{query}")   # the URL of one key used for another
    assert (other_key.status, other_key.code) == (403, "SignatureDoesNotMatch")


def test_presigned_malformed(fake):
    fake.put_object("media", "a.png", b"png")
    too_long = _presign("GET", host_of(fake), "/media/a.png", expires=604801)
    answer = send(fake, "GET", f"/media/a.png?{too_long}")
    assert (answer.status, answer.code) == (400, "AuthorizationQueryParametersError")
    incomplete = re.sub(r"&X-Amz-Date=[^&]*", "", _presign("GET", host_of(fake), "/media/a.png"))
    answer = send(fake, "GET", f"/media/a.png?{incomplete}")
    assert (answer.status, answer.code) == (400, "AuthorizationQueryParametersError")
    future = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 20 * 60))
    answer = send(fake, "GET", "/media/a.png?" + _presign("GET", host_of(fake), "/media/a.png", amz_date=future))
    assert (answer.status, answer.code) == (403, "RequestTimeTooSkewed")


def test_presigned_signed_header_not_sent(fake):
    fake.put_object("media", "a.png", b"png")
    query = _presign("GET", host_of(fake), "/media/a.png", signed={"host": host_of(fake), "x-note": "1"})
    answer = send(fake, "GET", f"/media/a.png?{query}")
    assert (answer.status, answer.code) == (403, "SignatureDoesNotMatch")
    assert send(fake, "GET", f"/media/a.png?{query}", {"x-note": "1"}).status == 200


def test_virtual_hosted(fake):
    host = f"media.localhost:{fake.port}"
    assert signed(fake, "PUT", "/", host=host).status == 200   # CreateBucket, virtual-hosted
    body = b"virtual"
    assert signed(fake, "PUT", "/dir/v.txt", body, {"content-type": "text/plain"}, host=host).status == 200
    got = signed(fake, "GET", "/dir/v.txt", host=host)
    assert (got.status, got.body, got.headers["content-type"]) == (200, body, "text/plain")
    assert signed(fake, "GET", "/media/dir/v.txt").body == body   # the same object, path-style
    query = _presign("GET", host, "/dir/v.txt")
    assert send(fake, "GET", f"/dir/v.txt?{query}", {"host": host}).body == body


def test_request_log(fake):
    send(fake, "GET", "/")
    signed(fake, "GET", "/nowhere/x")
    log = json.loads(send(fake, "GET", "/_fake/requests").body)
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", "/", 200), ("GET", "/nowhere/x", 404)]
    assert log[1]["host"] == host_of(fake) and log[1]["auth"] == "header"
    assert log[1]["signed_headers"] == ["host", "x-amz-content-sha256", "x-amz-date"]
    assert log[1]["reason"].startswith("NoSuchBucket")


def test_aws_examples_against_the_server():
    """AWS's published requests, sent as printed (Authorization included) to a fake holding AWS's example
    key, with its clock set to the examples' date: the published signatures are accepted."""
    server = S3Fake("127.0.0.1", 0, AWS_KEY, AWS_SECRET, "us-east-1", virtual_host_suffix="s3.amazonaws.com",
                    log=False).start()
    try:
        server.put_object("examplebucket", "test.txt", b"0123456789abcdef", "text/plain")
        server.clock_offset = s3.parse_amz_date(AWS_DATE) + 60 - time.time()

        get = send(server, "GET", "/test.txt", {
            "Host": AWS_HOST, "Range": "bytes=0-9", "x-amz-content-sha256": EMPTY, "x-amz-date": AWS_DATE,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                             "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                             "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"})
        assert (get.status, get.body) == (206, b"0123456789")

        put = send(server, "PUT", "/test$file.text", {
            "Host": AWS_HOST, "Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-date": AWS_DATE,
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                             "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
                             "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
            b"Welcome to Amazon S3.")
        assert put.status == 200
        assert server.get_object("examplebucket", "test$file.text")[0] == b"Welcome to Amazon S3."

        url = f"/test.txt?{AWS_PRESIGNED_QUERY}&X-Amz-Signature={AWS_PRESIGNED_SIGNATURE}"
        assert send(server, "GET", url, {"Host": AWS_HOST}).body == b"0123456789abcdef"
        server.clock_offset += 86400   # 24 hours and a minute after X-Amz-Date
        late = send(server, "GET", url, {"Host": AWS_HOST})
        assert (late.status, late.message) == (403, "Request has expired")
    finally:
        server.stop()


def test_command_line():
    """`python3 fakes/s3.py --port 0 ...` prints its URL, answers the probe and logs to stderr."""
    process = subprocess.Popen([sys.executable, os.path.join(HERE, "fakes", "s3.py"), "--host", "127.0.0.1",
                                "--port", "0", "--access-key", KEY, "--secret-key", SECRET, "--region", REGION],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"s3 fake listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
        conn.close()
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert "GET 127.0.0.1:" in err and "-> 200" in err
