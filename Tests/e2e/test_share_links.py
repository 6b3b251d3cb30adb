"""Share links, black-box through nginx: an owner shares one image or video under an unguessable,
revocable /s/<token>; the page is rendered by the share function with OpenGraph and Twitter tags for link
previews; the files behind it are served only while the link is live (never through the item's /media/
address); views are a bare count. Revoking, deleting the item or deleting the account stops the page and
its files at once; a forged, altered or revoked token gets the same 404 page.
"""
import html.parser
import re
import uuid

import pytest
import requests

from test_accounts import assert_error, browser, unique_username  # noqa: F401
from test_generation import fetch, make_video, new_user, user  # noqa: F401

TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
LINK_KEYS = {"id", "url", "image_id", "video_id", "show_username", "views", "created_at"}


class Meta(html.parser.HTMLParser):
    """The page's <meta> tags (property or name -> content), <title>, and every src/href."""

    def __init__(self, text):
        super().__init__()
        self.meta, self.title, self.urls, self._in_title = {}, "", [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "meta" and "content" in attrs:
            self.meta[attrs.get("property") or attrs.get("name")] = attrs["content"]
        for name in ("src", "href", "poster"):
            if name in attrs:
                self.urls.append(attrs[name])
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def share(user, status=201, **body):
    r = user.post("/api/v1/shares", body)
    assert r.status_code == status, r.text
    link = r.json()
    assert set(link) == LINK_KEYS, link
    assert r.headers.get("Location") == f"/api/v1/shares/{link['id']}"
    base, token = link["url"].rsplit("/s/", 1)
    assert base == user.stack.url and TOKEN.match(token), link["url"]
    return link


def token_of(link):
    return link["url"].rsplit("/s/", 1)[1]


def visit(stack, token, suffix=""):
    """A visitor with no cookies."""
    return requests.get(stack.api(f"/s/{token}{suffix}"), timeout=30, allow_redirects=False)


def assert_gone(r):
    assert r.status_code == 404, (r.status_code, r.text[:300])
    assert r.headers.get("Content-Type", "").startswith("text/html"), r.headers
    assert "This link is not available" in r.text
    return r.text


def live_links(user):
    r = user.get("/api/v1/shares")
    assert r.status_code == 200, r.text
    return r.json()


def made_image(user, prompt="a lighthouse on a cliff at dusk"):
    return user.generate(prompt)["image"]


def test_a_shared_image_has_a_page_with_link_preview_tags_and_its_file(stack, user):
    image = made_image(user, "a lighthouse on a cliff at dusk, <b>bold</b> & \"quoted\"")
    link = share(user, image_id=image["id"])
    assert link["image_id"] == image["id"] and link["video_id"] is None
    assert link["show_username"] is False and link["views"] == 0

    token = token_of(link)
    r = visit(stack, token)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers.get("Cache-Control") == "no-store"
    assert "noindex" in r.headers.get("X-Robots-Tag", "")
    page = Meta(r.text)
    page_url = f"{stack.url}/s/{token}"
    assert page.meta["og:url"] == page_url
    assert page.meta["og:title"] == 'a lighthouse on a cliff at dusk, <b>bold</b> & "quoted"'
    assert "<b>" not in r.text, "the prompt was not escaped"
    assert page.meta["og:type"] == "website"
    assert page.meta["og:image"] == page_url + "/file"
    assert page.meta["og:image:width"] == str(image["width"]) and page.meta["og:image:height"] == str(image["height"])
    assert page.meta["twitter:card"] == "summary_large_image"
    assert page.meta["twitter:image"] == page_url + "/file"
    assert "AI-generated" in page.meta["og:description"] and "AI-generated" in r.text
    assert page.title.endswith("· Atelier")
    assert not any("/media/" in u for u in page.urls) and "/media/" not in r.text, \
        "the page names the item's permanent address"
    assert "@" not in page.meta["og:description"], "the owner's name is shown without being chosen"

    served = visit(stack, token, "/file")
    assert served.status_code == 200, served.text[:300]
    assert served.headers["Content-Type"] == "image/webp"
    assert served.headers.get("Cache-Control") == "private, no-cache"
    assert served.headers.get("X-Robots-Tag") == "noindex"
    assert served.content == fetch(stack, image["url"]).content
    ranged = requests.get(stack.api(f"/s/{token}/file"), headers={"Range": "bytes=0-9"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == served.content[:10], ranged.status_code
    # The internal location nginx sends it from is not reachable from outside.
    key = image["url"][len("/media/"):]
    assert requests.get(stack.api(f"/_atelier/media/{key}"), timeout=30).status_code == 404
    assert visit(stack, token, "/poster").status_code == 404  # images have no poster


def test_views_are_counted_per_page_view_only(stack, user):
    link = share(user, image_id=made_image(user)["id"])
    token = token_of(link)
    for _ in range(3):
        assert visit(stack, token).status_code == 200
    for _ in range(2):
        assert visit(stack, token, "/file").status_code == 200
    assert requests.head(stack.api(f"/s/{token}"), timeout=30).status_code == 200  # a link checker: no view
    [listed] = [x for x in live_links(user)["items"] if x["id"] == link["id"]]
    assert listed["views"] == 3
    columns = stack.psql("SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns "
                         "WHERE table_name = 'share_links'")
    assert set(columns.split(",")) == {"id", "user_id", "image_id", "video_id", "show_username", "views",
                                       "created_at", "revoked_at"}, "share links keep something about visitors"


def test_sharing_again_answers_the_live_link_and_sets_the_name_choice(stack, user):
    username = unique_username()
    assert user.http.patch(stack.api("/api/v1/profile"), json={"username": username},
                           headers={"X-CSRF-Token": user.csrf, "Origin": stack.url}).status_code == 200
    image = made_image(user)
    first = share(user, image_id=image["id"])
    again = share(user, status=200, image_id=image["id"], show_username=True)
    assert again["id"] == first["id"] and again["url"] == first["url"] and again["show_username"] is True
    page = visit(stack, token_of(first))
    assert f"@{username}" in page.text and f"@{username}" in Meta(page.text).meta["og:description"]
    share(user, status=200, image_id=image["id"], show_username=False)
    assert f"@{username}" not in visit(stack, token_of(first)).text
    assert [x["id"] for x in live_links(user)["items"]].count(first["id"]) == 1


def test_revoking_stops_the_page_and_its_file_at_once(stack, user):
    image = made_image(user)
    link = share(user, image_id=image["id"])
    token = token_of(link)
    assert visit(stack, token).status_code == 200 and visit(stack, token, "/file").status_code == 200

    r = user.delete(f"/api/v1/shares/{link['id']}")
    assert r.status_code == 204, r.text
    assert_gone(visit(stack, token))
    assert_gone(visit(stack, token, "/file"))
    assert link["id"] not in [x["id"] for x in live_links(user)["items"]]
    assert_error(user.delete(f"/api/v1/shares/{link['id']}"), 404, "not_found")

    # Sharing again makes a new link; the old one stays dead.
    renewed = share(user, image_id=image["id"])
    assert renewed["id"] != link["id"] and token_of(renewed) != token
    assert visit(stack, token_of(renewed)).status_code == 200
    assert_gone(visit(stack, token))
    # The owner's own gallery address is untouched by sharing or revoking.
    assert fetch(stack, image["url"]).status_code == 200


def test_deleting_the_item_or_the_account_stops_the_link(stack, new_user):
    owner = new_user()
    image = made_image(owner)
    token = token_of(share(owner, image_id=image["id"]))
    assert owner.delete(f"/api/v1/images/{image['id']}").status_code == 204
    assert_gone(visit(stack, token))
    assert_gone(visit(stack, token, "/file"))

    other = made_image(owner)
    token = token_of(share(owner, image_id=other["id"]))
    stack.psql(f"DELETE FROM users WHERE id = '{owner.id}'")
    assert_gone(visit(stack, token))
    assert stack.psql(f"SELECT count(*) FROM share_links WHERE user_id = '{owner.id}'") == "0"


def test_forged_altered_and_unknown_tokens_get_the_same_page(stack, user):
    link = share(user, image_id=made_image(user)["id"])
    token = token_of(link)
    revoked = share(user, image_id=made_image(user)["id"])
    assert user.delete(f"/api/v1/shares/{revoked['id']}").status_code == 204

    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    # The link's id with another MAC, a MAC-less id, random bytes, nonsense, a longer token.
    import base64
    raw = base64.urlsafe_b64decode(token + "=")
    forged_mac = base64.urlsafe_b64encode(raw[:16] + bytes(16)).decode().rstrip("=")
    bodies = set()
    for bad in (flipped, forged_mac, base64.urlsafe_b64encode(raw[:16]).decode().rstrip("="),
                base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("="), "x", token + "A",
                token_of(revoked)):
        bodies.add(assert_gone(visit(stack, bad)))
        assert visit(stack, bad, "/file").status_code == 404
    assert len(bodies) == 1, "the 404 pages differ, telling kinds of bad tokens apart"
    assert visit(stack, token).status_code == 200


def test_only_the_owner_shares_and_revokes(stack, new_user):
    owner, stranger = new_user(), new_user()
    image = made_image(owner)
    assert_error(stranger.post("/api/v1/shares", {"image_id": image["id"]}), 404, "not_found")
    link = share(owner, image_id=image["id"])
    assert_error(stranger.delete(f"/api/v1/shares/{link['id']}"), 404, "not_found")
    assert link["id"] not in [x["id"] for x in live_links(stranger)["items"]]
    assert visit(stack, token_of(link)).status_code == 200

    anonymous = requests.post(stack.api("/api/v1/shares"), json={"image_id": image["id"]},
                              headers={"Origin": stack.url}, timeout=30)
    assert_error(anonymous, 401, "not_authenticated")


@pytest.mark.parametrize("body, status, code", [
    ({}, 400, "invalid_item"),
    ({"image_id": None, "video_id": None}, 400, "invalid_item"),
    ({"image_id": "IMAGE", "video_id": "IMAGE"}, 400, "invalid_item"),
    ({"image_id": "not-a-uuid"}, 404, "not_found"),
    ({"image_id": str(uuid.uuid4())}, 404, "not_found"),
    ({"video_id": str(uuid.uuid4())}, 404, "not_found"),
    ({"image_id": "IMAGE", "show_username": "yes"}, 400, "invalid_field"),
])
def test_bad_requests_are_refused_and_change_nothing(stack, user, body, status, code):
    image = made_image(user)
    body = {k: (image["id"] if v == "IMAGE" else v) for k, v in body.items()}
    before = live_links(user)["items"]
    assert_error(user.post("/api/v1/shares", body), status, code)
    assert live_links(user)["items"] == before
    assert_error(user.delete("/api/v1/shares/not-a-uuid"), 404, "not_found")


def test_a_shared_video_previews_with_its_poster(stack, user):
    user.make_premium()
    _, video = make_video(user, "waves rolling onto a beach at night")
    link = share(user, video_id=video["id"])
    assert link["video_id"] == video["id"] and link["image_id"] is None
    token = token_of(link)
    page = Meta(visit(stack, token).text)
    assert page.meta["og:type"] == "video.other"
    assert page.meta["og:image"] == f"{stack.url}/s/{token}/poster"
    poster = visit(stack, token, "/poster")
    assert poster.status_code == 200 and poster.content == fetch(stack, video["poster_url"]).content
    served = visit(stack, token, "/file")
    assert served.status_code == 200 and served.content == fetch(stack, video["url"]).content
