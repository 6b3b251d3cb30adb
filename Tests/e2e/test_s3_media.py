"""Media in S3 end to end, against the strict S3 fake (fakes/s3.py: Signature V4 checked as AWS documents
it) and the Replicate fake: a private stack whose media storage is a bucket.

An image made by Replicate is copied into the bucket with requests S3 accepts (every one carrying
x-amz-content-sha256 and signing only headers it sends), listed with a pre-signed URL a browser loads with
no credentials, allowed by the page's Content-Security-Policy, and deleted from the bucket with the image.
An upscale sends Replicate the bucket's pre-signed URL of the source (the fake downloads it, as Replicate
does). `atelier doctor` checks the bucket: a round trip passes, a wrong secret and an unreachable endpoint
fail with what to check.
"""
import secrets
from urllib.parse import urlparse

import pytest
import requests

import imagefiles
from conftest import private_stack
from fakes.images import image_dimensions
from test_accounts import register_and_verify
from test_replicate import Client, accepted, create_image, doctor, show_image, transform

BUCKET = "atelier-media"
ACCESS_KEY = "AKIAATELIERTEST"


@pytest.fixture(scope="module")
def s3_stack():
    from fakes.replicate import ReplicateFake, new_secret
    from fakes.s3 import S3Fake

    secret = secrets.token_urlsafe(30)
    s3 = S3Fake("127.0.0.1", 0, ACCESS_KEY, secret, log=False).start()
    s3.create_bucket(BUCKET)
    fake = ReplicateFake(secret=new_secret(), token="r8_test", port=0).start()
    extra = {
        "S3_BUCKET": BUCKET, "S3_ENDPOINT": s3.url, "S3_ACCESS_KEY_ID": ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": secret, "S3_REGION": "us-east-1",
        "REPLICATE_API_TOKEN": fake.token, "REPLICATE_API_BASE": fake.base_url, "REPLICATE_WEBHOOK_SECRET": fake.secret,
    }
    try:
        with private_stack("s3", extra, fake=fake, drop=("S3_",)) as stack:
            stack.s3 = s3
            yield stack
    finally:
        fake.stop()
        s3.stop()


@pytest.fixture
def client(s3_stack, smtp):
    s3_stack.fake.reset()
    with requests.Session() as http:
        email, _, csrf = register_and_verify(s3_stack, smtp, http)
        yield Client(s3_stack, http, email, csrf)


def signed_requests(s3):
    """What Atelier sent the bucket (the fake's own log), every one of them header-signed."""
    return [r for r in s3.requests() if r["auth"] == "header"]


def assert_only_accepted_requests(s3):
    sent = signed_requests(s3)
    assert sent, "Atelier sent the bucket nothing"
    refused = [r for r in sent if r["status"] >= 400 and not (r["method"] == "GET" and r["status"] == 404)]
    assert refused == [], f"S3 refused Atelier's requests: {refused}"
    for r in sent:
        assert {"host", "x-amz-content-sha256", "x-amz-date"} <= set(r["signed_headers"]), r


def test_an_image_lives_in_the_bucket_loads_in_the_page_and_goes_with_its_deletion(s3_stack, client):
    s3 = s3_stack.s3
    s3.clear_requests()
    generation, prediction_id = create_image(client, s3_stack.fake)
    done = client.wait_generation(generation["id"], "succeeded")
    image = show_image(client, done["image_ids"][0])

    url = urlparse(image["url"])
    assert f"{url.scheme}://{url.netloc}" == s3.url and url.path.startswith(f"/{BUCKET}/"), image["url"]
    assert "X-Amz-Signature=" in url.query and "X-Amz-Expires=" in url.query, image["url"]
    key = url.path[len(f"/{BUCKET}/"):]
    stored = s3.get_object(BUCKET, key)
    assert stored is not None, f"{key} is not in the bucket"
    loaded = requests.get(image["url"], timeout=10)  # a browser: no credentials
    assert loaded.status_code == 200 and loaded.content == stored[0], loaded.status_code
    pixels = imagefiles.decode(loaded.content, suffix=".webp")
    assert pixels.width > 0
    assert_only_accepted_requests(s3)
    puts = [r for r in signed_requests(s3) if r["method"] == "PUT"]
    assert any(r["path"] == f"/{BUCKET}/{key}" for r in puts), puts

    # The page may load it: the bucket's origin is in img-src and media-src.
    policy = requests.get(s3_stack.url + "/", timeout=10).headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}
    assert s3.url in directives["img-src"] and s3.url in directives["media-src"], policy
    assert s3.url not in directives["script-src"] and s3.url not in directives["connect-src"], "only media may come from the bucket"

    r = client.api("DELETE", f"/api/v1/images/{image['id']}")
    assert r.status_code == 204, r.text
    assert s3.get_object(BUCKET, key) is None, "the object outlived its image"
    assert requests.get(image["url"], timeout=10).status_code == 404


def test_a_share_link_serves_the_object_from_the_bucket_only_while_live(s3_stack, client):
    """With media in a bucket the share function reads the object itself (no bucket URL in the page, so
    nothing outlives a revocation) and stops at once when the link is revoked."""
    generation, _ = create_image(client, s3_stack.fake, prompt="a tram in the fog")
    done = client.wait_generation(generation["id"], "succeeded")
    image = show_image(client, done["image_ids"][0])
    r = client.api("POST", "/api/v1/shares", {"image_id": image["id"]})
    assert r.status_code == 201, r.text
    link = r.json()
    page = requests.get(link["url"], timeout=10)
    assert page.status_code == 200 and s3_stack.s3.url not in page.text, "the page names the bucket"
    served = requests.get(link["url"] + "/file", timeout=10)
    key = urlparse(image["url"]).path[len(f"/{BUCKET}/"):]
    assert served.status_code == 200 and served.content == s3_stack.s3.get_object(BUCKET, key)[0]
    assert served.headers["Content-Type"] == "image/webp" and served.headers.get("Accept-Ranges") == "bytes"
    whole = served.content
    # Players seek with ranges (Safari plays video only so): S3 answers them, the function passes them on.
    for asked, part in (("bytes=0-99", whole[:100]), ("bytes=100-", whole[100:]), ("bytes=-10", whole[-10:])):
        r = requests.get(link["url"] + "/file", headers={"Range": asked}, timeout=10)
        assert r.status_code == 206 and r.content == part, (asked, r.status_code, r.headers)
        first = len(whole) - len(part) if asked.startswith("bytes=-") or asked.endswith("-") else 0
        assert r.headers["Content-Range"] == f"bytes {first}-{first + len(part) - 1}/{len(whole)}", r.headers
    past = requests.get(link["url"] + "/file", headers={"Range": f"bytes={len(whole) + 10}-"}, timeout=10)
    assert past.status_code == 416, past.status_code
    several = requests.get(link["url"] + "/file", headers={"Range": "bytes=0-1,5-9"}, timeout=10)
    assert several.status_code == 200 and several.content == whole  # not one range: the whole file
    assert client.api("DELETE", f"/api/v1/shares/{link['id']}").status_code == 204
    assert requests.get(link["url"], timeout=10).status_code == 404
    assert requests.get(link["url"] + "/file", timeout=10).status_code == 404
    # The 416 above is S3 refusing a range on purpose: not for the next test's check that S3 accepted all.
    s3_stack.s3.clear_requests()


def test_an_upscale_sends_replicate_the_buckets_url_of_the_source(s3_stack, client):
    s3 = s3_stack.s3
    fake = s3_stack.fake
    source = imagefiles.stripes_png(64, 48)
    r, created = transform(client, fake, {"mode": "upscale", "scale": "2"}, {"image": ("source.png", source, "image/png")})
    generation = accepted(r, "upscale")
    assert len(created) == 1, created
    sent = fake.create_requests[created[0]]["body"]["input"]["image"]
    assert sent.startswith(f"{s3.url}/{BUCKET}/") and "X-Amz-Signature=" in sent, sent
    done = client.wait_generation(generation["id"], "succeeded")
    fetched = fake.inputs_fetched(created[0]).get("image")
    assert fetched is not None and image_dimensions(fetched) == (64, 48), "Replicate could not fetch the source from the bucket"
    upscaled = [show_image(client, i) for i in done["image_ids"]]
    assert any(i["kind"] == "upscaled" for i in upscaled), upscaled
    assert_only_accepted_requests(s3)


def test_doctor_checks_the_bucket(s3_stack):
    found = doctor(s3_stack)
    assert found["media"][0][0] == "ok", found["media"]
    wrong = doctor(s3_stack, S3_SECRET_ACCESS_KEY="not-the-secret")["media"][0]
    assert wrong[0] == "fail" and "could not write" in wrong[1] and "SignatureDoesNotMatch" in wrong[1], wrong
    assert "S3_SECRET_ACCESS_KEY" in wrong[1], wrong
    down = doctor(s3_stack, S3_ENDPOINT="http://127.0.0.1:9")["media"][0]
    assert down[0] == "fail" and "could not write" in down[1], down
    missing = doctor(s3_stack, S3_BUCKET="no-such-bucket")["media"][0]
    assert missing[0] == "fail" and "NoSuchBucket" in missing[1], missing
