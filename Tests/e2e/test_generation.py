"""Generation, through nginx: images from the local provider, the gallery and its pages, the media files
nginx serves, quota (exact under concurrency, refunded once when storage fails), prompt enhancement,
transforms (upscale and inpaint, with uploads and their rejections) and videos for premium users.

Every test makes its own accounts. A free user's allowance is 10 units per UTC day; tests that need more
set the user's counter back to 0 in PostgreSQL (`reset_quota`). Image files are built in pure Python
(imagefiles.py); decoding WebP results uses the `vips` command (Debian package libvips-tools).
"""
import datetime
import os
import re
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import imagefiles
from test_accounts import (SAME_ORIGIN, SESSION_COOKIE, assert_error, browser, call, parse_time,  # noqa: F401
                           register_and_verify, sql_text)

STYLES = ["none", "photographic", "cinematic", "digital-art", "anime", "watercolor", "oil-painting", "pixel-art",
          "sketch", "3d-render"]
COLOURS = ["auto", "warm", "cool", "pastel", "vibrant", "monochrome", "earthy", "neon"]
ASPECT_RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9"]
IMAGE_KEYS = {"id", "status", "kind", "prompt", "style", "colour", "width", "height", "seed", "model", "url",
              "thumbnail_url", "source_image_id", "generation_id", "created_at"}
GENERATION_KEYS = {"id", "task", "status", "error", "cost", "refunded", "image_ids", "video_ids", "created_at",
                   "started_at", "completed_at"}
VIDEO_KEYS = {"id", "status", "prompt", "style", "colour", "width", "height", "duration_seconds", "url", "poster_url",
              "generation_id", "created_at"}
FREE_DAILY = 10
IMAGE_COST, TRANSFORM_COST, VIDEO_COST = 1, 1, 10
MAX_UPLOAD = 10 * 1024 * 1024
TRANSFORM = "/api/v1/images/transform"


# ---- helpers -----------------------------------------------------------------------------------------

def api(stack, http, method, path, body=None, csrf=None, origin=SAME_ORIGIN, params=None, files=None, data=None,
        headers=None, timeout=60):
    """One request, never retried (unlike test_accounts.call, which retries every 429 it does not know,
    and quota_exhausted is one of them). JSON `body`, or multipart `files` + `data`."""
    sent = {}
    if method not in ("GET", "HEAD") and origin is not None:
        sent["Origin"] = stack.url if origin is SAME_ORIGIN else origin
    if csrf is not None:
        sent["X-CSRF-Token"] = csrf
    sent.update(headers or {})
    extra = {}
    if body is not None:
        extra["json"] = body
    if files is not None or data is not None:
        extra["files"] = files
        extra["data"] = data
    return (http or requests).request(method, stack.api(path), headers=sent, params=params, timeout=timeout, **extra)


class User:
    """A verified, logged-in account: its browser (cookie jar), credentials and CSRF token."""

    def __init__(self, stack, http, email, password, csrf):
        self.stack, self.http, self.email, self.password, self.csrf = stack, http, email, password, csrf
        self.id = stack.psql(f"SELECT id FROM users WHERE email = {sql_text(email)}")

    def get(self, path, params=None):
        return api(self.stack, self.http, "GET", path, params=params)

    def post(self, path, body, csrf=True):
        return api(self.stack, self.http, "POST", path, body, csrf=self.csrf if csrf else None)

    def delete(self, path, csrf=True):
        return api(self.stack, self.http, "DELETE", path, csrf=self.csrf if csrf else None)

    def transform(self, data, files=None, csrf=True, timeout=120):
        """POST /images/transform as multipart/form-data: `data` the text fields, `files` {part: (name,
        bytes, type)}. requests writes multipart only with a file part, so a text-only form still goes as
        multipart (each field as a part without a filename)."""
        if not files:
            files = {name: (None, str(value)) for name, value in data.items()}
            data = None
        return api(self.stack, self.http, "POST", TRANSFORM, csrf=self.csrf if csrf else None,
                   files=files, data=data, timeout=timeout)

    def generate(self, prompt="a lighthouse on a cliff at dusk", **fields):
        r = self.post("/api/v1/images", {"prompt": prompt, **fields})
        assert r.status_code == 201, r.text
        return r.json()

    def quota(self):
        r = self.get("/api/v1/profile")
        assert r.status_code == 200, r.text
        return r.json()["quota"]

    def quota_used_in_db(self):
        return int(self.stack.psql(f"SELECT quota_used FROM users WHERE id = {sql_text(self.id)}"))

    def generation_count(self):
        return int(self.stack.psql(f"SELECT count(*) FROM generations WHERE user_id = {sql_text(self.id)}"))

    def reset_quota(self):
        self.stack.psql(f"UPDATE users SET quota_used = 0 WHERE id = {sql_text(self.id)}")

    def make_premium(self):
        self.stack.psql("UPDATE users SET premium_until = now() + interval '30 days', quota_period_start = now(), "
                        f"quota_used = 0 WHERE email = {sql_text(self.email)}")


@pytest.fixture
def new_user(stack, smtp, browser):  # noqa: F811
    """Makes verified, logged-in users for a test."""
    def make():
        jar = browser()
        email, password, csrf = register_and_verify(stack, smtp, jar)
        return User(stack, jar, email, password, csrf)
    return make


@pytest.fixture
def user(new_user):
    return new_user()


def fetch(stack, url):
    """GET a media URL the API gave (a path under /media/), without cookies."""
    assert isinstance(url, str) and url.startswith("/media/"), url
    return requests.get(stack.api(url), timeout=30)


def webp_file(stack, url):
    """Downloads a media URL that must be a WebP; returns its bytes."""
    r = fetch(stack, url)
    assert r.status_code == 200, f"{url}: {r.status_code}"
    assert r.headers.get("Content-Type") == "image/webp", r.headers
    imagefiles.webp_info(r.content)
    return r.content


def assert_generation(g, task, status="succeeded", cost=None):
    assert GENERATION_KEYS <= set(g), f"generation lacks {sorted(GENERATION_KEYS - set(g))}: {g}"
    uuid.UUID(g["id"])
    assert g["task"] == task, g
    assert g["status"] == status, g
    if cost is not None:
        assert g["cost"] == cost, g
    assert isinstance(g["refunded"], bool), g
    assert isinstance(g["image_ids"], list) and isinstance(g["video_ids"], list), g
    parse_time(g["created_at"])
    if status == "succeeded":
        assert g["error"] is None and g["refunded"] is False, g
        assert parse_time(g["started_at"]) <= parse_time(g["completed_at"]), g


def assert_image(image, kind="generated", prompt=None):
    """Every key of the image object is present, whatever its value."""
    assert IMAGE_KEYS <= set(image), f"image lacks {sorted(IMAGE_KEYS - set(image))}: {image}"
    uuid.UUID(image["id"])
    assert image["kind"] == kind, image
    assert image["status"] == "succeeded", image
    assert isinstance(image["width"], int) and image["width"] > 0, image
    assert isinstance(image["height"], int) and image["height"] > 0, image
    assert image["url"].startswith("/media/") and image["thumbnail_url"].startswith("/media/"), image
    if prompt is not None:
        assert image["prompt"] == prompt, image
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - parse_time(image["created_at"])).total_seconds()) < 3600, image


def assert_created(r, task="image", kind="generated", cost=IMAGE_COST):
    """A 201 {generation, image}; returns (generation, image)."""
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"generation", "image"}, body
    g, image = body["generation"], body["image"]
    assert_generation(g, task, cost=cost)
    assert_image(image, kind)
    assert g["image_ids"] == [image["id"]] and g["video_ids"] == [], g
    assert image["generation_id"] == g["id"], (g, image)
    return g, image


def all_pages(user, path, params=None, limit=None):
    """Every item of a paged list, following next_cursor."""
    items, cursor = [], None
    for _ in range(1000):
        query = dict(params or {})
        if limit:
            query["limit"] = limit
        if cursor:
            query["cursor"] = cursor
        r = user.get(path, query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"items", "next_cursor"}, page
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


def png_part(data, name="picture.png", content_type="image/png"):
    return (name, data, content_type)


# ---- generating images -------------------------------------------------------------------------------

def test_generate_answers_the_finished_generation_and_its_image(stack, user):
    """POST /images: 201 {generation, image} with Location; the local provider has finished, the image
    echoes the request, costs 1 unit, and GET of the image and of the generation answer the same objects."""
    prompt = "a red fox asleep in fresh snow"
    r = user.post("/api/v1/images", {"prompt": prompt, "style": "watercolor", "colour": "cool",
                                     "aspect_ratio": "4:3", "seed": 1234})
    g, image = assert_created(r)
    assert r.headers.get("Location") == f"/api/v1/images/{image['id']}", r.headers
    assert (image["prompt"], image["style"], image["colour"], image["seed"]) == (prompt, "watercolor", "cool", 1234)
    assert image["source_image_id"] is None
    assert isinstance(image["model"], str) and image["model"], image
    assert g["refunded"] is False and g["error"] is None

    shown = user.get(f"/api/v1/images/{image['id']}")
    assert shown.status_code == 200, shown.text
    assert shown.json() == image
    generation = user.get(f"/api/v1/generations/{g['id']}")
    assert generation.status_code == 200, generation.text
    assert generation.json() == g
    assert user.quota()["used"] == IMAGE_COST
    assert user.quota_used_in_db() == IMAGE_COST


def test_defaults_give_a_square_image_with_a_seed(stack, user):
    """Only a prompt: a style and colour from the catalogue, a seed chosen in 0…4294967295, and a
    1:1 image."""
    _, image = assert_created(user.post("/api/v1/images", {"prompt": "a teapot"}))
    assert image["style"] in STYLES and image["colour"] in COLOURS, image
    assert isinstance(image["seed"], int) and 0 <= image["seed"] <= 4294967295, image
    assert image["width"] == image["height"], image


def test_media_files_are_webp_with_nosniff_and_a_private_cache_life(stack, user):
    """The image and thumbnail URLs serve WebP (image/webp, the file really is a WebP of the stated size)
    with nosniff, to anyone holding the URL; browsers may cache them for a day, shared caches not at all
    (Cache-Control: private), so a deleted image does not live on in a proxy for a year."""
    _, image = assert_created(user.post("/api/v1/images", {"prompt": "a harbour at noon", "aspect_ratio": "3:2"}))
    # The media rule adds nothing to the API's own answers (a second Cache-Control would be merged in).
    assert user.get("/api/v1/images").headers.get("Cache-Control") == "no-store"
    for url in (image["url"], image["thumbnail_url"]):
        r = fetch(stack, url)
        assert r.status_code == 200, (url, r.status_code)
        assert r.headers.get("Content-Type") == "image/webp", r.headers
        assert r.headers.get("X-Content-Type-Options") == "nosniff", r.headers
        cache = r.headers.get("Cache-Control", "")
        match = re.search(r"max-age=(\d+)", cache)
        assert "private" in cache and "public" not in cache and match and 0 < int(match.group(1)) <= 86400, cache
        info = imagefiles.webp_info(r.content)
        if url == image["url"]:
            assert (info["width"], info["height"]) == (image["width"], image["height"]), info
        else:
            assert info["width"] <= image["width"] and info["height"] <= image["height"], info
            assert info["width"] * info["height"] < image["width"] * image["height"], "the thumbnail is not smaller"


def test_every_aspect_ratio_gives_its_shape(stack, user):
    """Each aspect ratio gives an image whose width/height is within 2% of it, in the API and in the file."""
    wrong = []
    for ratio in ASPECT_RATIOS:
        _, image = assert_created(user.post("/api/v1/images", {"prompt": "a paper boat", "aspect_ratio": ratio,
                                                                "seed": 7}))
        w, h = (int(n) for n in ratio.split(":"))
        actual = image["width"] / image["height"]
        if abs(actual / (w / h) - 1) > 0.02:
            wrong.append(f"{ratio}: {image['width']}x{image['height']} ({actual / (w / h) - 1:+.1%})")
        info = imagefiles.webp_info(webp_file(stack, image["url"]))
        assert (info["width"], info["height"]) == (image["width"], image["height"]), (ratio, info)
    assert not wrong, "not within 2% of the ratio: " + "; ".join(wrong)


def test_every_style_and_colour_is_accepted(stack, user):
    """Every style and every colour of the catalogue is accepted and echoed."""
    for style in STYLES:
        _, image = assert_created(user.post("/api/v1/images", {"prompt": "a garden", "style": style, "seed": 1}))
        assert image["style"] == style
    user.reset_quota()
    for colour in COLOURS:
        _, image = assert_created(user.post("/api/v1/images", {"prompt": "a garden", "colour": colour, "seed": 1}))
        assert image["colour"] == colour


def test_same_inputs_give_the_same_file_and_any_change_a_different_one(stack, user):
    """The same prompt, seed, style, colour and ratio give identical pictures (the files differ only by the
    creation time in their AI-content mark); changing the style, the colour or a word of the prompt gives a
    different picture (the local renderer's "visibly different")."""
    base = {"prompt": "a quiet mountain lake", "seed": 99, "style": "oil-painting", "colour": "warm",
            "aspect_ratio": "16:9"}

    def file_for(**changes):
        _, image = assert_created(user.post("/api/v1/images", {**base, **changes}))
        decoded = imagefiles.decode(webp_file(stack, image["url"]))
        return (decoded.width, decoded.height, b"".join(bytes(row) for row in decoded.rows))

    first, again = file_for(), file_for()
    assert first == again, "the same inputs gave different pictures"
    variants = {
        "style": file_for(style="pixel-art"),
        "colour": file_for(colour="neon"),
        "prompt": file_for(prompt="a quiet mountain river"),
    }
    for name, data in variants.items():
        assert data != first, f"changing the {name} gave the same file"
    assert len({first, *variants.values()}) == 4, "two different requests gave the same file"


@pytest.mark.parametrize("body, code", [
    ({"prompt": ""}, "invalid_prompt"),
    ({"prompt": "   \n\t "}, "invalid_prompt"),
    ({"prompt": "x" * 2001}, "invalid_prompt"),
    ({"prompt": "a cat", "style": "baroque"}, "invalid_style"),
    ({"prompt": "a cat", "colour": "sepia"}, "invalid_colour"),
    ({"prompt": "a cat", "aspect_ratio": "5:4"}, "invalid_aspect_ratio"),
    ({"prompt": "a cat", "aspect_ratio": "1/1"}, "invalid_aspect_ratio"),
    ({"prompt": "a cat", "seed": -1}, "invalid_seed"),
    ({"prompt": "a cat", "seed": 4294967296}, "invalid_seed"),
], ids=["empty", "blank", "2001-chars", "style", "colour", "ratio", "ratio-slash", "seed-negative", "seed-2^32"])
def test_invalid_requests_are_400_and_cost_nothing(stack, user, body, code):
    """Each invalid field is 400 with its code; nothing is charged and no generation is recorded."""
    assert_error(user.post("/api/v1/images", body), 400, code)
    assert user.quota()["used"] == 0
    assert user.generation_count() == 0


def test_the_limits_of_prompt_and_seed_are_inclusive(stack, user):
    """A prompt of exactly 2000 characters (multi-byte ones too) and the seeds 0 and 4294967295 are fine."""
    for body in ({"prompt": "é" * 2000}, {"prompt": "a cat", "seed": 0}, {"prompt": "a cat", "seed": 4294967295}):
        _, image = assert_created(user.post("/api/v1/images", body))
        if "seed" in body:
            assert image["seed"] == body["seed"]
        else:
            assert image["prompt"] == body["prompt"]


def test_generating_needs_a_session_and_the_csrf_token(stack, user):
    """Without a session: 401. With the cookie but without (or with a wrong) X-CSRF-Token: 403
    csrf_failed. Neither costs anything."""
    r = api(stack, None, "POST", "/api/v1/images", {"prompt": "a cat"})
    assert_error(r, 401, "not_authenticated")
    assert_error(user.post("/api/v1/images", {"prompt": "a cat"}, csrf=False), 403, "csrf_failed")
    r = api(stack, user.http, "POST", "/api/v1/images", {"prompt": "a cat"}, csrf="0" * 43)
    assert_error(r, 403, "csrf_failed")
    assert user.quota()["used"] == 0
    assert user.generation_count() == 0
    for path in ("/api/v1/images", f"/api/v1/images/{uuid.uuid4()}", f"/api/v1/generations/{uuid.uuid4()}"):
        assert_error(api(stack, None, "GET", path), 401, "not_authenticated")


# ---- quota -------------------------------------------------------------------------------------------

def test_the_eleventh_image_of_the_day_is_refused_with_when_it_renews(stack, user):
    """Ten images use the free allowance; the eleventh is 429 quota_exhausted with a Retry-After up to
    the next UTC midnight and a message naming the renewal date, and changes nothing."""
    for _ in range(FREE_DAILY):
        user.generate(prompt="a small cactus")
    quota = user.quota()
    assert (quota["used"], quota["limit"], quota["period"]) == (FREE_DAILY, FREE_DAILY, "day"), quota
    r = user.post("/api/v1/images", {"prompt": "one more cactus"})
    error = assert_error(r, 429, "quota_exhausted")
    renews = parse_time(quota["renews_at"])
    now = datetime.datetime.now(datetime.timezone.utc)
    midnight = datetime.datetime.combine(now.date() + datetime.timedelta(days=1), datetime.time(),
                                         tzinfo=datetime.timezone.utc)
    assert renews == midnight, quota
    retry = r.headers.get("Retry-After", "")
    assert retry.isdigit(), r.headers
    assert abs(int(retry) - (midnight - now).total_seconds()) <= 10, (retry, midnight)
    assert renews.date().isoformat() in error["message"], error["message"]
    assert user.quota()["used"] == FREE_DAILY
    assert user.generation_count() == FREE_DAILY


def test_fifty_concurrent_requests_get_exactly_the_allowance(stack, user):
    """From 0 used, 50 simultaneous POST /images for one user: exactly 10 are 201, 40 are 429
    quota_exhausted; the counter, the unrefunded costs and the profile all say 10."""
    user.reset_quota()
    cookie = user.http.cookies.get(SESSION_COOKIE)
    assert cookie
    barrier = threading.Barrier(50)

    def one(i):
        with requests.Session() as s:
            s.cookies.set(SESSION_COOKIE, cookie)
            barrier.wait(timeout=30)
            return api(stack, s, "POST", "/api/v1/images", {"prompt": f"a lantern number {i}", "seed": i},
                       csrf=user.csrf, timeout=120)

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(one, range(50)))
    statuses = sorted(r.status_code for r in responses)
    created = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 429]
    assert len(created) == FREE_DAILY and len(refused) == 50 - FREE_DAILY, statuses
    for r in refused:
        assert_error(r, 429, "quota_exhausted")
    for r in created:
        assert_created(r)

    assert user.quota_used_in_db() == FREE_DAILY
    charged = stack.psql(f"SELECT coalesce(sum(cost), 0) FROM generations WHERE user_id = {sql_text(user.id)} "
                         "AND NOT refunded")
    assert int(charged) == FREE_DAILY
    quota = user.quota()
    assert (quota["used"], quota["limit"]) == (FREE_DAILY, FREE_DAILY), quota
    assert len(all_pages(user, "/api/v1/images")) == FREE_DAILY


def media_dir(stack):
    return stack.app_env().get("MEDIA_ROOT") or os.path.join(stack.run_dir, "media")


def test_a_storage_failure_is_503_and_refunded_exactly_once(stack, user):
    """With the media folder replaced by a plain file (root ignores permissions, but nobody can make a
    folder under a file), POST /images is 503 storage_unavailable; its generation is failed and refunded,
    and the quota counter is what it was before the attempt. Storage back, generating works again."""
    user.generate(prompt="before the failure one")
    user.generate(prompt="before the failure two")
    before = user.quota_used_in_db()
    assert before == 2 * IMAGE_COST
    media = media_dir(stack)
    aside = media + ".aside-" + uuid.uuid4().hex[:8]
    existed = os.path.isdir(media)
    if existed:
        os.rename(media, aside)
    try:
        with open(media, "w") as f:
            f.write("not a folder\n")
        r = user.post("/api/v1/images", {"prompt": "this cannot be stored"})
    finally:
        if os.path.isfile(media):
            os.remove(media)
        if existed:
            os.rename(aside, media)
    assert_error(r, 503, "storage_unavailable")
    row = stack.psql(f"SELECT id, status, refunded, cost FROM generations WHERE user_id = {sql_text(user.id)} "
                     "ORDER BY created_at DESC, id DESC LIMIT 1")
    generation_id, status, refunded, cost = row.split("|")
    assert (status, refunded, cost) == ("failed", "t", str(IMAGE_COST)), row
    assert user.quota_used_in_db() == before, "the failed generation was not refunded exactly once"
    assert user.quota()["used"] == before
    g = user.get(f"/api/v1/generations/{generation_id}")
    assert g.status_code == 200, g.text
    assert g.json()["status"] == "failed" and g.json()["refunded"] is True, g.json()
    assert isinstance(g.json()["error"], str) and g.json()["error"], g.json()
    assert g.json()["image_ids"] == [], g.json()

    _, image = assert_created(user.post("/api/v1/images", {"prompt": "after the failure"}))
    assert fetch(stack, image["url"]).status_code == 200
    assert user.quota_used_in_db() == before + IMAGE_COST


# ---- the gallery -------------------------------------------------------------------------------------

def test_the_gallery_lists_newest_first_24_to_a_page(stack, user):
    """GET /images: {items, next_cursor}, newest first, 24 items by default; the next page has the rest
    and a null cursor; every item has every key."""
    made = []
    for i in range(26):
        if i and i % FREE_DAILY == 0:
            user.reset_quota()
        made.append(user.generate(prompt=f"gallery picture {i}")["image"]["id"])
    r = user.get("/api/v1/images")
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(page) == {"items", "next_cursor"}, page
    assert len(page["items"]) == 24 and isinstance(page["next_cursor"], str), page["next_cursor"]
    for item in page["items"]:
        assert_image(item)
    r = user.get("/api/v1/images", {"cursor": page["next_cursor"]})
    assert r.status_code == 200, r.text
    rest = r.json()
    assert rest["next_cursor"] is None and len(rest["items"]) == 2, rest
    assert [i["id"] for i in page["items"] + rest["items"]] == made[::-1]
    assert [i["id"] for i in user.get("/api/v1/images", {"limit": 100}).json()["items"]] == made[::-1]


def test_paging_while_images_are_added_has_no_duplicates_or_gaps(stack, user):
    """Walking pages of 3 while a new image is made before each next page: every original image appears
    exactly once, in newest-first order, and no image appears twice."""
    originals = [user.generate(prompt=f"original {i}")["image"]["id"] for i in range(7)]
    user.reset_quota()
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = user.get("/api/v1/images", params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        pages += 1
        if cursor is None:
            break
        user.generate(prompt=f"added during paging {pages}")
        assert pages < 10
    assert len(seen) == len(set(seen)), f"duplicates: {seen}"
    assert [i for i in seen if i in originals] == originals[::-1], "an original image is missing or out of order"


@pytest.mark.parametrize("params, code", [
    ({"limit": 0}, "invalid_limit"),
    ({"limit": 101}, "invalid_limit"),
    ({"limit": "ten"}, "invalid_limit"),
    ({"kind": "painted"}, "invalid_kind"),
    ({"cursor": "not-a-cursor"}, "invalid_cursor"),
    ({"cursor": "MjAyNi0wMS0wMXxub3QtYS11dWlk"}, "invalid_cursor"),  # base64url of "2026-01-01|not-a-uuid"
], ids=["limit-0", "limit-101", "limit-text", "kind", "cursor-garbage", "cursor-bad-id"])
def test_gallery_parameters_are_checked(stack, user, params, code):
    assert_error(user.get("/api/v1/images", params), 400, code)


def test_gallery_limits_and_kinds_that_are_allowed(stack, user):
    """limit 1 and 100 are fine; kind=generated lists generated images, and every other documented kind
    (upscaled, inpainted, uploaded) is accepted."""
    user.generate(prompt="one")
    user.generate(prompt="two")
    r = user.get("/api/v1/images", {"limit": 1})
    assert r.status_code == 200 and len(r.json()["items"]) == 1 and r.json()["next_cursor"], r.text
    assert len(user.get("/api/v1/images", {"limit": 100}).json()["items"]) == 2
    assert len(user.get("/api/v1/images", {"kind": "generated"}).json()["items"]) == 2
    for kind in ("upscaled", "inpainted", "uploaded"):
        r = user.get("/api/v1/images", {"kind": kind})
        assert r.status_code == 200, f"kind={kind}: {r.text}"
        assert r.json() == {"items": [], "next_cursor": None}


def test_the_gallery_searches_prompts_by_word_prefixes(stack, user, new_user):
    """q= finds images whose prompt has a word beginning with each word asked (any case, any punctuation
    between), newest first, with the kind filter and the cursor; another user's images are never found;
    a q with no letter or digit, or longer than 200 characters, is 400 invalid_query."""
    ids = {}
    for prompt in ("A lighthouse on a cliff at dusk", "Lighthouse keeper's cat", "a café in Montmartre, night",
                   "cliff diving in summer"):
        ids[prompt] = user.generate(prompt=prompt)["image"]["id"]
    other = new_user()
    other.generate(prompt="another lighthouse")

    def found(q, **params):
        r = user.get("/api/v1/images", {"q": q, **params})
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    lighthouse = [ids["Lighthouse keeper's cat"], ids["A lighthouse on a cliff at dusk"]]
    assert found("lighthouse") == lighthouse
    assert found("LIGHT") == lighthouse  # a prefix, any case: search as you type
    assert found("light cliff") == [ids["A lighthouse on a cliff at dusk"]]  # every word must match
    assert found("cliff") == [ids["cliff diving in summer"], ids["A lighthouse on a cliff at dusk"]]
    assert found("café") == [ids["a café in Montmartre, night"]]
    assert found("keeper's") == [ids["Lighthouse keeper's cat"]]
    assert found("submarine") == []
    assert found("lighthouse", kind="generated") == lighthouse
    assert found("lighthouse", kind="upscaled") == []
    first = user.get("/api/v1/images", {"q": "lighthouse", "limit": 1}).json()
    assert [i["id"] for i in first["items"]] == lighthouse[:1] and first["next_cursor"], first
    assert found("lighthouse", limit=1, cursor=first["next_cursor"]) == lighthouse[1:]
    assert other.get("/api/v1/images", {"q": "cliff"}).json()["items"] == []
    for q in ("!!!", "x" * 201):
        assert_error(user.get("/api/v1/images", {"q": q}), 400, "invalid_query")
    r = user.get("/api/v1/videos", {"q": "lighthouse"})
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, r.text
    assert_error(user.get("/api/v1/videos", {"q": "%%%"}), 400, "invalid_query")


def test_another_users_images_and_generations_are_not_found(stack, new_user):
    """Another user's image is 404 not_found for GET and DELETE (never 403) and is not in their list;
    their generation is 404 too; the owner still has the image afterwards."""
    owner, other = new_user(), new_user()
    g, image = assert_created(owner.post("/api/v1/images", {"prompt": "mine only"}))
    assert_error(other.get(f"/api/v1/images/{image['id']}"), 404, "not_found")
    assert_error(other.delete(f"/api/v1/images/{image['id']}"), 404, "not_found")
    assert_error(other.get(f"/api/v1/generations/{g['id']}"), 404, "not_found")
    assert other.get("/api/v1/images").json()["items"] == []
    assert owner.get(f"/api/v1/images/{image['id']}").status_code == 200
    assert fetch(stack, image["url"]).status_code == 200


@pytest.mark.parametrize("image_id", ["not-a-uuid", "1", str(uuid.UUID(int=0)), "%27%20OR%201%3D1--"])
def test_unknown_and_malformed_ids_are_not_found(stack, user, image_id):
    assert_error(user.get(f"/api/v1/images/{image_id}"), 404, "not_found")
    assert_error(user.delete(f"/api/v1/images/{image_id}"), 404, "not_found")
    assert_error(user.get(f"/api/v1/generations/{image_id}"), 404, "not_found")


def test_deleting_an_image_removes_it_and_its_files(stack, user):
    """DELETE needs the CSRF token (403 without, nothing deleted); then 204, the image and thumbnail URLs
    are 404, GET and a second DELETE of the id are 404, and the gallery no longer lists it."""
    _, image = assert_created(user.post("/api/v1/images", {"prompt": "soon gone"}))
    path = f"/api/v1/images/{image['id']}"
    assert_error(user.delete(path, csrf=False), 403, "csrf_failed")
    assert user.get(path).status_code == 200
    r = user.delete(path)
    assert r.status_code == 204, r.text
    assert r.content == b""
    for url in (image["url"], image["thumbnail_url"]):
        assert fetch(stack, url).status_code == 404, url
    assert_error(user.get(path), 404, "not_found")
    assert_error(user.delete(path), 404, "not_found")
    assert user.get("/api/v1/images").json()["items"] == []


def test_deleting_the_account_removes_its_media_files(stack, user):
    """DELETE /profile {password} removes the user's files: every media URL they had (generated, uploaded
    and upscaled images with their thumbnails, a video and its poster) is then 404."""
    user.make_premium()
    urls = []
    for prompt in ("first keepsake", "second keepsake"):
        _, image = assert_created(user.post("/api/v1/images", {"prompt": prompt}))
        urls += [image["url"], image["thumbnail_url"]]
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": png_part(imagefiles.stripes_png(32, 32))})
    _, upscaled = assert_created(r, task="upscale", kind="upscaled", cost=TRANSFORM_COST)
    source = source_of(user, upscaled)
    urls += [upscaled["url"], upscaled["thumbnail_url"], source["url"], source["thumbnail_url"]]
    _, video = make_video(user, "a keepsake in motion")
    urls += [video["url"], video["poster_url"]]
    assert all(fetch(stack, url).status_code == 200 for url in urls)
    r = call(stack, user.http, "DELETE", "/api/v1/profile", {"password": user.password}, csrf=user.csrf)
    assert r.status_code == 204, r.text
    for url in urls:
        assert fetch(stack, url).status_code == 404, f"{url} outlived its account"


# ---- prompt enhancement ------------------------------------------------------------------------------

ENHANCE = "/api/v1/prompts/enhance"


def words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def test_enhance_suggests_a_longer_prompt_with_the_original_words(stack, user):
    """POST /prompts/enhance: 200 {prompt, original}; the suggestion is longer and contains every word of
    the original; the same input gives the same answer; with a style too; it costs no quota."""
    original = "a fox in the snow"
    r = user.post(ENHANCE, {"prompt": original})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"prompt", "original"}, body
    assert body["original"] == original
    assert isinstance(body["prompt"], str) and len(body["prompt"]) > len(original), body
    suggested = set(words(body["prompt"]))
    assert set(words(original)) <= suggested, body
    assert user.post(ENHANCE, {"prompt": original}).json() == body, "not deterministic"

    styled = user.post(ENHANCE, {"prompt": original, "style": "watercolor"})
    assert styled.status_code == 200, styled.text
    assert set(words(original)) <= set(words(styled.json()["prompt"])), styled.json()
    assert user.post(ENHANCE, {"prompt": original, "style": "watercolor"}).json() == styled.json()
    assert user.quota()["used"] == 0
    assert user.generation_count() == 0


@pytest.mark.parametrize("body, code", [
    ({"prompt": ""}, "invalid_prompt"),
    ({"prompt": "y" * 2001}, "invalid_prompt"),
    ({"prompt": "a cat", "style": "baroque"}, "invalid_style"),
], ids=["empty", "2001-chars", "style"])
def test_enhance_rejects_what_generation_rejects(stack, user, body, code):
    assert_error(user.post(ENHANCE, body), 400, code)


def test_enhance_needs_a_session_and_the_csrf_token(stack, user):
    assert_error(api(stack, None, "POST", ENHANCE, {"prompt": "a cat"}), 401, "not_authenticated")
    assert_error(user.post(ENHANCE, {"prompt": "a cat"}, csrf=False), 403, "csrf_failed")


# ---- transforms: upscale and inpaint -----------------------------------------------------------------

def source_of(user, image):
    """The gallery image a transform came from."""
    assert image["source_image_id"], image
    r = user.get(f"/api/v1/images/{image['source_image_id']}")
    assert r.status_code == 200, r.text
    return r.json()


def test_upscaling_an_upload_doubles_it_and_keeps_the_upload(stack, user):
    """An uploaded PNG with mode=upscale, scale=2: 201 {generation (upscale, cost 1), image (upscaled,
    exactly twice the width and height)}; the upload is kept as its own `uploaded` image (the source),
    which costs nothing; the result's file is a WebP of that size."""
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": png_part(imagefiles.stripes_png(48, 32))})
    g, image = assert_created(r, task="upscale", kind="upscaled", cost=TRANSFORM_COST)
    assert (image["width"], image["height"]) == (96, 64), image
    info = imagefiles.webp_info(webp_file(stack, image["url"]))
    assert (info["width"], info["height"]) == (96, 64), info
    source = source_of(user, image)
    assert_image(source, kind="uploaded")
    assert (source["width"], source["height"]) == (48, 32), source
    assert fetch(stack, source["url"]).status_code == 200
    assert user.quota()["used"] == TRANSFORM_COST
    assert [i["id"] for i in all_pages(user, "/api/v1/images", {"kind": "upscaled"})] == [image["id"]]
    assert [i["id"] for i in all_pages(user, "/api/v1/images", {"kind": "uploaded"})] == [source["id"]]
    assert user.get(f"/api/v1/generations/{g['id']}").json() == g


def test_upscaling_a_gallery_image_by_id_defaults_to_double(stack, user):
    """image_id of one's own generated image, no scale: twice its width and height; the source is that
    image; 1 unit for the image plus 1 for the transform."""
    _, original = assert_created(user.post("/api/v1/images", {"prompt": "a tiny house", "aspect_ratio": "16:9"}))
    r = user.transform({"mode": "upscale", "image_id": original["id"]})
    _, image = assert_created(r, task="upscale", kind="upscaled", cost=TRANSFORM_COST)
    assert image["source_image_id"] == original["id"]
    assert (image["width"], image["height"]) == (2 * original["width"], 2 * original["height"]), image
    info = imagefiles.webp_info(webp_file(stack, image["url"]))
    assert (info["width"], info["height"]) == (image["width"], image["height"]), info
    assert user.quota()["used"] == IMAGE_COST + TRANSFORM_COST


def test_upscaling_a_jpeg_by_four(stack, user):
    """A JPEG upload with scale=4: exactly four times the width and height."""
    jpeg = imagefiles.jpeg(40, 30)
    r = user.transform({"mode": "upscale", "scale": "4"}, {"image": ("photo.jpg", jpeg, "image/jpeg")})
    _, image = assert_created(r, task="upscale", kind="upscaled", cost=TRANSFORM_COST)
    assert (image["width"], image["height"]) == (160, 120), image
    assert (source_of(user, image)["width"], source_of(user, image)["height"]) == (40, 30)


def test_an_upload_of_nine_megabytes_is_accepted(stack, user):
    """A valid 9 MB PNG (a small picture with a large ancillary chunk) is within the 10 MB upload limit."""
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": png_part(imagefiles.padded_png(9_000_000))})
    _, image = assert_created(r, task="upscale", kind="upscaled", cost=TRANSFORM_COST)
    assert (image["width"], image["height"]) == (64, 64), image


INPAINT_BOX = (20, 20, 44, 44)  # the square to repaint in a 64×64 picture
MAGENTA = (255, 0, 255)


def inpaint_source_pixel(x, y):
    """Stripes everywhere except a magenta square exactly where the mask is white."""
    x0, y0, x1, y1 = INPAINT_BOX
    return MAGENTA if x0 <= x < x1 and y0 <= y < y1 else imagefiles.stripe_colour(x, y)


def test_inpainting_repaints_only_the_masked_square(stack, user):
    """A 64×64 stripes picture with a magenta square, and a mask white on that square: 201 {generation
    (inpaint), image (inpainted, same size, source = the upload)}. Decoded (vips), pixels well outside
    the square are the original's (mean absolute difference < 6, the WebP being lossy); inside, the
    magenta is gone, replaced by a blend of the surrounding stripes' colours."""
    source = imagefiles.png(64, 64, inpaint_source_pixel)
    mask = imagefiles.mask_png(64, 64, INPAINT_BOX)
    r = user.transform({"mode": "inpaint", "prompt": "continue the stripes"},
                       {"image": png_part(source), "mask": png_part(mask, "mask.png")})
    _, image = assert_created(r, task="inpaint", kind="inpainted", cost=TRANSFORM_COST)
    assert (image["width"], image["height"]) == (64, 64), image
    assert source_of(user, image)["kind"] == "uploaded"
    result = imagefiles.decode(webp_file(stack, image["url"]))
    assert (result.width, result.height) == (64, 64)

    x0, y0, x1, y1 = INPAINT_BOX
    margin = 6
    outside = [(x, y) for y in range(64) for x in range(64)
               if not (x0 - margin <= x < x1 + margin and y0 - margin <= y < y1 + margin)]
    inside = [(x, y) for y in range(y0 + 2, y1 - 2) for x in range(x0 + 2, x1 - 2)]

    def mad(points, expected):
        return statistics.mean(abs(a - b) for p in points for a, b in zip(result.rgb(*p), expected(*p)))

    outside_diff = mad(outside, inpaint_source_pixel)
    assert outside_diff < 6, f"the kept area changed: mean absolute difference {outside_diff:.1f}"
    magenta_diff = mad(inside, lambda x, y: MAGENTA)
    assert magenta_diff > 60, f"the masked square still looks like the original (difference {magenta_diff:.1f})"
    ring = [(x, y) for y in range(y0 - 4, y1 + 4) for x in range(x0 - 4, x1 + 4)
            if not (x0 <= x < x1 and y0 <= y < y1)]
    for channel in range(3):
        low = min(imagefiles.stripe_colour(x, y)[channel] for x, y in ring)
        high = max(imagefiles.stripe_colour(x, y)[channel] for x, y in ring)
        mean = statistics.mean(result.rgb(x, y)[channel] for x, y in inside)
        assert low - 12 <= mean <= high + 12, f"channel {channel}: inside mean {mean:.0f} not within {low}..{high}"


def test_inpainting_a_gallery_image_keeps_its_size(stack, user):
    """image_id of a generated image with a mask of its size: an inpainted image of the same size."""
    _, original = assert_created(user.post("/api/v1/images", {"prompt": "an empty beach", "aspect_ratio": "3:4"}))
    w, h = original["width"], original["height"]
    mask = imagefiles.mask_png(w, h, (w // 3, h // 3, 2 * w // 3, 2 * h // 3), gray=False)
    r = user.transform({"mode": "inpaint", "image_id": original["id"], "prompt": "a sandcastle"},
                       {"mask": png_part(mask, "mask.png")})
    _, image = assert_created(r, task="inpaint", kind="inpainted", cost=TRANSFORM_COST)
    assert image["source_image_id"] == original["id"]
    assert (image["width"], image["height"]) == (w, h)
    assert [i["id"] for i in all_pages(user, "/api/v1/images", {"kind": "inpainted"})] == [image["id"]]


def assert_rejection_cost_nothing(user):
    assert user.quota()["used"] == 0
    assert user.quota_used_in_db() == 0
    assert user.generation_count() == 0


STRIPES = imagefiles.stripes_png(64, 64)


@pytest.mark.parametrize("case", ["svg", "svg-named-png", "text-named-png", "empty-file"])
def test_files_that_are_not_images_are_415(stack, user, case):
    """SVG (whatever its name and type) and text renamed .png are 415 unsupported_image and cost nothing."""
    part = {
        "svg": ("drawing.svg", imagefiles.svg(), "image/svg+xml"),
        "svg-named-png": ("drawing.png", imagefiles.svg(), "image/png"),
        "text-named-png": ("notes.png", imagefiles.text_file(), "image/png"),
        "empty-file": ("nothing.png", b"", "image/png"),
    }[case]
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": part})
    if case == "empty-file" and r.status_code == 400:
        assert r.json()["error"]["code"] in ("missing_field", "unsupported_image"), r.text
    else:
        assert_error(r, 415, "unsupported_image")
    assert_rejection_cost_nothing(user)
    assert user.get("/api/v1/images").json()["items"] == []


def test_a_body_over_ten_megabytes_is_413(stack, user):
    """A 10 MB + 1 byte file: 413 body_too_large (nginx or the function), quickly, costing nothing."""
    started = time.monotonic()
    r = user.transform({"mode": "upscale"}, {"image": png_part(imagefiles.padded_png(MAX_UPLOAD + 1))})
    elapsed = time.monotonic() - started
    assert_error(r, 413, "body_too_large")
    assert elapsed < 10, elapsed
    assert_rejection_cost_nothing(user)


def test_a_decompression_bomb_is_refused_from_its_header(stack, user):
    """A PNG whose header claims 20000×20000 is 400 image_too_large without being decoded (well under a
    second), costing nothing."""
    started = time.monotonic()
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": png_part(imagefiles.bomb_png())})
    elapsed = time.monotonic() - started
    assert_error(r, 400, "image_too_large")
    assert elapsed < 1.5, f"took {elapsed:.2f}s: was it decoded?"
    assert_rejection_cost_nothing(user)


def test_an_upscale_over_forty_megapixels_is_refused(stack, user):
    """1700×1700 ×4 would be 46 megapixels: 400 result_too_large, costing nothing."""
    r = user.transform({"mode": "upscale", "scale": "4"}, {"image": png_part(imagefiles.solid_png(1700, 1700))})
    assert_error(r, 400, "result_too_large")
    assert_rejection_cost_nothing(user)


def test_the_embedded_video_provider_offers_every_shape_and_seeds(stack, user):
    r = user.get("/api/v1/videos/options")
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "atelier-local", "aspect_ratios": ["16:9", "9:16", "1:1"], "seed": True}


def test_an_image_wider_than_webp_allows_is_refused_not_a_500(stack, user):
    """WebP, what images are stored as, holds at most 16383 pixels a side: a 16400×4 upload (a fraction of
    a megapixel) is 400 image_too_large naming the limit, costing nothing (it was a 500)."""
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": png_part(imagefiles.solid_png(16400, 4))})
    assert_error(r, 400, "image_too_large")
    assert "16383" in r.json()["error"]["message"], r.text
    assert_rejection_cost_nothing(user)


def test_an_upscale_past_the_widest_webp_is_refused(stack, user):
    """5000×10 ×4 would be 20000 pixels wide: 400 result_too_large naming the limit, costing nothing."""
    r = user.transform({"mode": "upscale", "scale": "4"}, {"image": png_part(imagefiles.solid_png(5000, 10))})
    assert_error(r, 400, "result_too_large")
    assert "16383" in r.json()["error"]["message"], r.text
    assert_rejection_cost_nothing(user)


@pytest.mark.parametrize("case, code", [
    ("mask-size", "mask_size_mismatch"),
    ("mode", "invalid_mode"),
    ("scale-3", "invalid_scale"),
    ("scale-text", "invalid_scale"),
    ("no-image", "missing_field"),
    ("no-mask", "missing_field"),
])
def test_transform_fields_are_checked(stack, user, case, code):
    """A mask of another size, an unknown mode, a scale other than 2 or 4, neither image nor image_id, or
    an inpaint without a mask: 400 with its code, costing nothing."""
    image = {"image": png_part(STRIPES)}
    data, files = {
        "mask-size": ({"mode": "inpaint", "prompt": "a moon"},
                      {**image, "mask": png_part(imagefiles.mask_png(32, 64, (8, 8, 24, 24)), "mask.png")}),
        "mode": ({"mode": "sharpen"}, image),
        "scale-3": ({"mode": "upscale", "scale": "3"}, image),
        "scale-text": ({"mode": "upscale", "scale": "double"}, image),
        "no-image": ({"mode": "upscale", "scale": "2"}, None),
        "no-mask": ({"mode": "inpaint", "prompt": "a moon"}, image),
    }[case]
    assert_error(user.transform(data, files), 400, code)
    assert_rejection_cost_nothing(user)


def test_a_mask_of_another_size_than_a_gallery_image_is_refused(stack, user):
    _, original = assert_created(user.post("/api/v1/images", {"prompt": "a field", "aspect_ratio": "1:1"}))
    w, h = original["width"], original["height"]
    mask = imagefiles.mask_png(w + 1, h, (1, 1, 10, 10))
    r = user.transform({"mode": "inpaint", "image_id": original["id"], "prompt": "a tree"},
                       {"mask": png_part(mask, "mask.png")})
    assert_error(r, 400, "mask_size_mismatch")
    assert user.quota()["used"] == IMAGE_COST


def test_a_transform_without_quota_left_is_429(stack, user):
    """With the day's allowance used up, a transform is 429 quota_exhausted and charges nothing more."""
    stack.psql(f"UPDATE users SET quota_used = {FREE_DAILY}, quota_period_start = now() WHERE id = {sql_text(user.id)}")
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": png_part(STRIPES)})
    assert_error(r, 429, "quota_exhausted")
    assert r.headers.get("Retry-After", "").isdigit(), r.headers
    assert user.quota_used_in_db() == FREE_DAILY
    assert user.generation_count() == 0
    assert all_pages(user, "/api/v1/images", {"kind": "upscaled"}) == []


def test_transforming_another_users_image_is_not_found(stack, new_user):
    """image_id of someone else's image is 404 not_found, as every other id of theirs; nothing charged."""
    owner, other = new_user(), new_user()
    _, image = assert_created(owner.post("/api/v1/images", {"prompt": "not yours"}))
    assert_error(other.transform({"mode": "upscale", "image_id": image["id"]}), 404, "not_found")
    assert_rejection_cost_nothing(other)


def test_transform_needs_a_session_and_the_csrf_token(stack, user):
    files = {"image": png_part(STRIPES)}
    r = api(stack, None, "POST", TRANSFORM, files=files, data={"mode": "upscale"})
    assert_error(r, 401, "not_authenticated")
    assert_error(user.transform({"mode": "upscale"}, files, csrf=False), 403, "csrf_failed")
    assert_rejection_cost_nothing(user)
    assert user.get("/api/v1/images").json()["items"] == []


# ---- videos ------------------------------------------------------------------------------------------

def test_videos_are_for_premium_users(stack, user):
    """A free user's POST /videos is 403 premium_required and costs nothing."""
    assert_error(user.post("/api/v1/videos", {"prompt": "waves at night"}), 403, "premium_required")
    assert_rejection_cost_nothing(user)


def make_video(user, prompt="waves rolling onto a beach at night", **fields):
    """POST /videos for a premium user: 201 {generation (video, cost 10), video}; returns (g, video)."""
    r = user.post("/api/v1/videos", {"prompt": prompt, **fields})
    assert r.status_code == 201, r.text
    assert r.headers.get("Location") in (None, f"/api/v1/videos/{r.json()['video']['id']}"), r.headers
    body = r.json()
    assert set(body) == {"generation", "video"}, body
    g, video = body["generation"], body["video"]
    assert_generation(g, "video", cost=VIDEO_COST)
    assert g["video_ids"] == [video["id"]] and g["image_ids"] == [], g
    assert video["generation_id"] == g["id"], video
    return g, video


def test_a_premium_users_video_has_every_field(stack, user):
    """The video object has every documented key and echoes the request; the profile charges 10 units
    of the monthly quota; GET /videos/{id} and GET /generations/{id} answer the same objects."""
    user.make_premium()
    prompt = "a lighthouse beam sweeping through fog"
    g, video = make_video(user, prompt, style="cinematic", colour="cool", aspect_ratio="16:9", seed=5)
    assert VIDEO_KEYS <= set(video), f"video lacks {sorted(VIDEO_KEYS - set(video))}: {video}"
    uuid.UUID(video["id"])
    assert video["status"] == "succeeded", video
    assert (video["prompt"], video["style"], video["colour"]) == (prompt, "cinematic", "cool"), video
    assert isinstance(video["duration_seconds"], (int, float)) and video["duration_seconds"] > 0, video
    assert isinstance(video["width"], int) and isinstance(video["height"], int), video
    assert video["width"] > video["height"], f"16:9 should be landscape: {video}"
    quota = user.quota()
    assert (quota["used"], quota["period"]) == (VIDEO_COST, "month"), quota
    assert user.get(f"/api/v1/videos/{video['id']}").json() == video
    assert user.get(f"/api/v1/generations/{g['id']}").json() == g


def test_a_video_is_an_animated_webp_with_a_poster(stack, user):
    """The video's url serves an animated WebP (image/webp, ANIM and ANMF chunks) of its stated size;
    the poster_url serves an image."""
    user.make_premium()
    _, video = make_video(user, aspect_ratio="9:16", seed=11)
    data = webp_file(stack, video["url"])
    info = imagefiles.webp_info(data)
    assert info["animated"] and "ANMF" in info["chunks"], info["chunks"][:10]
    assert sum(1 for c in info["chunks"] if c == "ANMF") > 1, "a single frame is not a video"
    assert (info["width"], info["height"]) == (video["width"], video["height"]), info
    r = fetch(stack, video["url"])
    assert r.headers.get("X-Content-Type-Options") == "nosniff", r.headers
    poster = fetch(stack, video["poster_url"])
    assert poster.status_code == 200 and poster.headers.get("Content-Type", "").startswith("image/"), poster.headers


def test_videos_are_listed_hidden_from_others_and_deleted_with_their_files(stack, new_user):
    """GET /videos lists the video; another user gets 404 for its GET and DELETE and an empty list;
    DELETE is 204, then its files and the id are 404."""
    user, other = new_user(), new_user()
    user.make_premium()
    other.make_premium()
    _, video = make_video(user)
    path = f"/api/v1/videos/{video['id']}"
    listed = user.get("/api/v1/videos")
    assert listed.status_code == 200 and listed.json() == {"items": [video], "next_cursor": None}, listed.text
    assert_error(other.get(path), 404, "not_found")
    assert_error(other.delete(path), 404, "not_found")
    assert other.get("/api/v1/videos").json() == {"items": [], "next_cursor": None}
    assert user.get(path).status_code == 200

    assert_error(user.delete(path, csrf=False), 403, "csrf_failed")
    r = user.delete(path)
    assert r.status_code == 204, r.text
    assert fetch(stack, video["url"]).status_code == 404
    assert fetch(stack, video["poster_url"]).status_code == 404
    assert_error(user.get(path), 404, "not_found")
    assert user.get("/api/v1/videos").json()["items"] == []


def test_a_video_needs_ten_units_left(stack, user):
    """A premium user with 9 units left is refused a video (429 quota_exhausted), and nothing is charged."""
    user.make_premium()
    limit = user.quota()["limit"]
    assert limit >= VIDEO_COST, limit
    stack.psql(f"UPDATE users SET quota_used = {limit - VIDEO_COST + 1} WHERE id = {sql_text(user.id)}")
    assert_error(user.post("/api/v1/videos", {"prompt": "a slow sunrise"}), 429, "quota_exhausted")
    assert user.quota()["used"] == limit - VIDEO_COST + 1
    assert user.generation_count() == 0
    user.reset_quota()
    make_video(user, "a slow sunrise")


def test_video_pages_and_checks(stack, user):
    """Videos page like images (newest first, cursors); invalid fields are 400 with the images' codes and
    cost nothing; unknown ids are 404; a session and the CSRF token are needed."""
    user.make_premium()
    for body, code in [({"prompt": ""}, "invalid_prompt"), ({"prompt": "a", "style": "baroque"}, "invalid_style"),
                       ({"prompt": "a", "colour": "sepia"}, "invalid_colour"),
                       ({"prompt": "a", "aspect_ratio": "5:4"}, "invalid_aspect_ratio"),
                       ({"prompt": "a", "seed": -1}, "invalid_seed")]:
        assert_error(user.post("/api/v1/videos", body), 400, code)
    assert_error(user.post("/api/v1/videos", {"prompt": "a"}, csrf=False), 403, "csrf_failed")
    assert_error(api(stack, None, "POST", "/api/v1/videos", {"prompt": "a"}), 401, "not_authenticated")
    assert user.quota()["used"] == 0 and user.generation_count() == 0

    made = []
    for i in range(3):
        r = user.post("/api/v1/videos", {"prompt": f"a clock ticking {i}", "seed": i})
        assert r.status_code == 201, r.text
        made.append(r.json()["video"]["id"])
    walked = all_pages(user, "/api/v1/videos", limit=2)
    assert [v["id"] for v in walked] == made[::-1]
    for params, code in [({"limit": 0}, "invalid_limit"), ({"limit": 101}, "invalid_limit"),
                         ({"cursor": "garbage"}, "invalid_cursor")]:
        assert_error(user.get("/api/v1/videos", params), 400, code)
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        assert_error(user.get(f"/api/v1/videos/{bad}"), 404, "not_found")
        assert_error(user.delete(f"/api/v1/videos/{bad}"), 404, "not_found")
    assert user.quota()["used"] == 3 * VIDEO_COST


def test_an_upload_the_quota_cannot_cover_is_refused_before_it_is_stored(stack, user):
    """With the day's allowance used up, a transform upload is 429 quota_exhausted and leaves nothing:
    no `uploaded` image, no file in the media storage (it was stored and decoded before the quota said no)."""
    user.stack.psql(f"UPDATE users SET quota_used = {FREE_DAILY}, quota_period_start = now() WHERE id = {sql_text(user.id)}")
    files_before = sum(len(names) for _, _, names in os.walk(media_dir(stack)))
    r = user.transform({"mode": "upscale", "scale": "2"}, {"image": png_part(imagefiles.stripes_png(48, 32))})
    assert_error(r, 429, "quota_exhausted")
    assert int(stack.psql(f"SELECT count(*) FROM images WHERE user_id = {sql_text(user.id)}")) == 0
    assert sum(len(names) for _, _, names in os.walk(media_dir(stack))) == files_before
    assert user.quota_used_in_db() == FREE_DAILY
