"""The web front end in a real browser: headless Chromium driven by Selenium (Debian's chromium and
chromium-driver, the Python package selenium), against the full stack through nginx.

What a user does end to end: sign up, read the code from the SMTP fake, confirm, enhance a prompt and use
the suggestion, generate an image, find it in the gallery, log out and back in (401 → login → back), delete
it; upload an image and upscale it; paint a mask and inpaint; make a video as a premium member. Every page
is laid out at 375 px and 1280 px wide without horizontal scrolling, and no page breaks the
Content-Security-Policy. Each test saves screenshots under $RUN_DIR/artifacts/browser/.
"""
import os
import re
import shutil

import pytest
import requests

import imagefiles
from test_accounts import SESSION_COOKIE, latest_code, register_and_verify, strong_password, unique_email

# A missing selenium is an import error, a failure: `make test` installs it, and nothing here skips.
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT = 15
NARROW, WIDE = 375, 1280
PUBLIC_PAGES = ["/", "/register", "/verify", "/login", "/forgot"]
APP_PAGES = ["/create", "/gallery", "/transform", "/video", "/keys", "/account", "/admin", "/no-such-page"]


# ---- the browser ----------------------------------------------------------------------------------------

def _binary(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(f"none of {names} is installed: install Debian's chromium and chromium-driver")


def new_chromium(*extra_arguments):
    """Headless Chromium under Selenium, 1280 px wide, keeping the console log; `extra_arguments` are
    more command-line switches."""
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WIDE},900", "--hide-scrollbars", "--force-color-profile=srgb", "--lang=en-GB",
                *extra_arguments):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(_binary("chromedriver")), options=options)
    browser.set_page_load_timeout(30)
    return browser


@pytest.fixture(scope="module")
def driver():
    browser = new_chromium()
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def artifacts():
    path = os.path.join(os.environ.get("RUN_DIR") or ".", "artifacts", "browser")
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def screenshot_on_failure(request, driver, artifacts):
    """A failed test leaves a picture of the page as it was, and the browser's log beside it."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        shot(driver, artifacts, f"failed-{request.node.name}")
        with open(os.path.join(artifacts, f"failed-{request.node.name}.log"), "w") as log:
            log.write(f"{driver.current_url}\n")
            log.writelines(f"{e['level']} {e['message']}\n" for e in driver.get_log("browser"))


def shot(driver, artifacts, name):
    driver.save_screenshot(os.path.join(artifacts, re.sub(r"[^a-z0-9_.-]+", "-", name.lower()) + ".png"))


def set_width(driver, width, height=900):
    """The viewport exactly `width` CSS pixels wide (a phone's when narrow)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def wait(driver, timeout=WAIT):
    return WebDriverWait(driver, timeout)


def visible(driver, css, timeout=WAIT):
    return wait(driver, timeout).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def clickable(driver, css, timeout=WAIT):
    return wait(driver, timeout).until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))


def button(driver, text, scope="main"):
    """The visible, enabled button (or button-like link) in `scope` whose text is `text`."""
    xpath = (f"//{scope}//*[self::button or self::a][normalize-space(.)='{text}']"
             if scope != "dialog" else f"//dialog[@open]//*[self::button or self::a][normalize-space(.)='{text}']")
    return wait(driver).until(EC.element_to_be_clickable((By.XPATH, xpath)))


def press(driver, element):
    """Clicks `element` after bringing it to the middle of the viewport (clear of the sticky header)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element)
    element.click()


def open_page(driver, stack, path):
    driver.get(stack.url + path)
    wait(driver).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && !!document.querySelector('main .page-host h1')"))


def page_errors(driver):
    """Script errors and CSP violations the browser logged since the last call (401s from /session are fine)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and ("Content Security Policy" in entry["message"] or "Uncaught" in entry["message"])]


def assert_fits(driver, label):
    widths = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{label}: the page scrolls sideways ({widths[0]} px of content in {widths[1]} px)"


def sign_in_as_new_user(driver, stack, smtp):
    """A fresh verified account, its session cookie handed to the browser. Returns the requests.Session."""
    http = requests.Session()
    email, password, csrf = register_and_verify(stack, smtp, http)
    driver.get(stack.url + "/favicon.svg")
    driver.delete_all_cookies()
    driver.add_cookie({"name": SESSION_COOKIE, "value": http.cookies.get(SESSION_COOKIE), "path": "/"})
    http.headers.update({"X-CSRF-Token": csrf, "Origin": stack.url})
    http.email, http.password = email, password
    return http


@pytest.fixture
def signed_in(driver, stack, smtp):
    set_width(driver, WIDE)
    http = sign_in_as_new_user(driver, stack, smtp)
    yield http
    http.close()
    driver.delete_all_cookies()


# ---- the journeys ---------------------------------------------------------------------------------------

def test_sign_up_create_an_image_find_it_in_the_gallery_and_delete_it(driver, stack, smtp, artifacts):
    """Sign-up with an API error shown under the password, the code from the SMTP fake, prompt enhancement
    used only on request, a generation followed to done, the gallery, the 401 → login → back round trip,
    and deletion with confirmation down to the empty state."""
    set_width(driver, WIDE)
    driver.delete_all_cookies()
    open_page(driver, stack, "/")
    button(driver, "Start creating, free").click()
    form = visible(driver, "form input[name=email]")
    email = unique_email()
    form.send_keys(email)
    driver.find_element(By.NAME, "password").send_keys("password1")
    button(driver, "Create account").click()
    error = visible(driver, "input[name=password] ~ .field-error")
    assert "guess" in error.text, error.text  # the API's own message, next to the field that caused it
    assert driver.find_element(By.NAME, "password").get_attribute("aria-invalid") == "true"
    shot(driver, artifacts, "01-register-error")

    password = strong_password()
    driver.find_element(By.NAME, "password").clear()
    driver.find_element(By.NAME, "password").send_keys(password)
    button(driver, "Create account").click()
    wait(driver).until(EC.url_contains("/verify"))
    resend = visible(driver, "button[name=resend]")
    assert not resend.is_enabled() and re.search(r"in \d+ s", resend.text), resend.text  # the 60 s cooldown shows
    code = latest_code(smtp, email, 1)
    driver.find_element(By.NAME, "code").send_keys(code)
    shot(driver, artifacts, "02-verify")
    button(driver, "Confirm").click()
    wait(driver).until(EC.url_contains("/create"))
    quota = visible(driver, ".quota .quota-left")
    left_before = int(quota.text)

    prompt = driver.find_element(By.NAME, "prompt")
    prompt.send_keys("a red fox in the snow")
    button(driver, "Enhance prompt").click()
    suggestion = visible(driver, ".suggestion .suggestion-text").text
    assert suggestion and suggestion != "a red fox in the snow"
    assert prompt.get_attribute("value") == "a red fox in the snow"  # nothing changes until the user says so
    shot(driver, artifacts, "03-enhance-suggestion")
    button(driver, "Use this prompt").click()
    assert prompt.get_attribute("value") == suggestion

    Select(driver.find_element(By.NAME, "style")).select_by_value("watercolor")
    driver.find_element(By.CSS_SELECTOR, "input[name=aspect_ratio][value='16:9'] + label").click()
    button(driver, "Generate").click()
    visible(driver, ".job .status-succeeded")
    image = visible(driver, ".job .job-open img")
    wait(driver).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image))
    width, height = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image)
    assert abs(width / height - 16 / 9) < 0.02, (width, height)
    wait(driver).until(lambda d: int(d.find_element(By.CSS_SELECTOR, ".quota .quota-left").text) < left_before)
    shot(driver, artifacts, "04-create-done")

    driver.find_element(By.CSS_SELECTOR, "nav a[href='/gallery']").click()
    tiles = wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".gallery-grid .tile"))
    assert len(tiles) == 1

    # Logged out, the gallery sends the user to log in and back again.
    button(driver, "Log out", scope="header").click()
    wait(driver).until(lambda d: d.current_url.rstrip("/") == stack.url)
    open_page(driver, stack, "/gallery")
    wait(driver).until(EC.url_contains("/login?next=%2Fgallery"))
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    button(driver, "Log in").click()
    wait(driver).until(lambda d: d.current_url.endswith("/gallery"))
    tile = visible(driver, ".gallery-grid .tile-button")
    shot(driver, artifacts, "05-gallery")

    tile.click()
    visible(driver, "dialog[open] .viewer-media img")
    download = driver.find_element(By.XPATH, "//dialog[@open]//a[normalize-space(.)='Download']")
    assert download.get_attribute("download") and download.get_attribute("href").startswith(stack.url + "/media/")
    shot(driver, artifacts, "06-viewer")
    button(driver, "Delete", scope="dialog").click()
    visible(driver, "dialog.small[open]")
    shot(driver, artifacts, "07-confirm-delete")
    driver.find_element(By.CSS_SELECTOR, "dialog.small[open] .button.danger").click()
    empty = visible(driver, ".empty-state")
    assert "first picture" in empty.text
    assert driver.find_elements(By.CSS_SELECTOR, ".gallery-grid .tile") == []
    shot(driver, artifacts, "08-gallery-empty")
    assert page_errors(driver) == []


def test_upload_and_upscale_then_paint_a_mask_and_inpaint(driver, stack, signed_in, artifacts, tmp_path):
    """An upload by the file picker, upscaled ×2 with the result beside the original; then a mask painted on
    the canvas and repainted with a prompt, naming the stored upload instead of sending it again."""
    picture = tmp_path / "picture.png"
    picture.write_bytes(imagefiles.png(320, 240))
    open_page(driver, stack, "/transform")
    driver.find_element(By.ID, "transform-file").send_keys(str(picture))
    note = visible(driver, ".scale-note")
    assert "320 × 240 → 640 × 480" in note.text, note.text
    shot(driver, artifacts, "10-transform-loaded")

    button(driver, "Upscale").click()
    visible(driver, ".result .status-succeeded")
    result = visible(driver, ".result .result-item .job-open img")
    wait(driver).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", result))
    assert driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", result) == [640, 480]
    assert len(driver.find_elements(By.CSS_SELECTOR, ".result .compare-item")) == 2  # the original beside it
    shot(driver, artifacts, "11-upscaled")

    press(driver, driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=inpaint] + label"))
    canvas = visible(driver, "canvas.mask-canvas")
    assert driver.execute_script("return [arguments[0].width, arguments[0].height]", canvas) == [320, 240]
    press(driver, button(driver, "Repaint"))  # nothing painted yet: said next to the canvas
    assert "Paint over" in visible(driver, ".mask-tools .field-error").text
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", canvas)
    size = canvas.size
    ActionChains(driver).move_to_element_with_offset(canvas, -size["width"] // 4, 0).click_and_hold() \
        .move_by_offset(size["width"] // 3, size["height"] // 6).move_by_offset(size["width"] // 8, -size["height"] // 5) \
        .release().perform()
    driver.find_element(By.NAME, "prompt").send_keys("a bright yellow sun")
    shot(driver, artifacts, "12-mask-painted")
    press(driver, button(driver, "Repaint"))
    visible(driver, ".result .status-succeeded")
    result = visible(driver, ".result .result-item .job-open img")
    wait(driver).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", result))
    assert driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", result) == [320, 240]
    shot(driver, artifacts, "13-inpainted")

    items = signed_in.get(stack.api("/api/v1/images"), timeout=10).json()["items"]
    assert sorted(item["kind"] for item in items) == ["inpainted", "uploaded", "upscaled"], items
    assert page_errors(driver) == []


def test_a_premium_member_makes_and_plays_a_video(driver, stack, signed_in, artifacts):
    """A free member sees what premium gives; as premium, a video is made, listed and played."""
    open_page(driver, stack, "/video")
    assert "Premium" in visible(driver, ".premium-pitch").text
    stack.psql("UPDATE users SET premium_until = now() + interval '30 days', quota_period_start = now(), quota_used = 0 "
               f"WHERE email = '{signed_in.email}'")
    open_page(driver, stack, "/video")
    driver.find_element(By.NAME, "prompt").send_keys("slow waves on a moonlit beach")
    button(driver, "Make video").click()
    card = visible(driver, ".video-card", timeout=30)
    media = card.find_element(By.CSS_SELECTOR, ".player-media")
    poster = media.get_attribute("src")
    toggle = card.find_element(By.CSS_SELECTOR, ".play-toggle")
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "true" and media.get_attribute("src") != poster
    shot(driver, artifacts, "20-video")
    assert page_errors(driver) == []


def test_the_gallery_search_narrows_the_pictures_as_the_member_types(driver, stack, signed_in, artifacts):
    """Typing in the gallery's search box shows only the pictures whose prompt has words beginning with
    what was typed, keeps the search in the address (a reload shows the same), says so when nothing
    matches, and clearing it shows everything again."""
    made = {}
    for prompt in ("a lighthouse on a cliff at dusk", "a red fox in the snow", "lighthouse keeper's cat"):
        r = signed_in.post(stack.api("/api/v1/images"), json={"prompt": prompt}, timeout=30)
        assert r.status_code == 201, r.text
        made[prompt] = r.json()["image"]["id"]
    open_page(driver, stack, "/gallery")

    def shown():
        return sorted(t.get_attribute("data-id") or "" for t in driver.find_elements(By.CSS_SELECTOR, ".gallery-grid .tile"))

    wait(driver).until(lambda d: len(shown()) == 3)
    box = visible(driver, ".gallery-search input[name=q]")
    box.send_keys("light")
    lighthouses = sorted([made["a lighthouse on a cliff at dusk"], made["lighthouse keeper's cat"]])
    wait(driver).until(lambda d: shown() == lighthouses)
    assert "q=light" in driver.current_url
    shot(driver, artifacts, "21-gallery-search")
    driver.refresh()
    wait(driver).until(lambda d: shown() == lighthouses)
    box = visible(driver, ".gallery-search input[name=q]")
    assert box.get_attribute("value") == "light"
    box.send_keys(" submarine")
    wait(driver).until(lambda d: "No image matches" in d.find_element(By.CSS_SELECTOR, ".empty-state").text)
    assert shown() == []
    box.clear()
    box.send_keys(" ")  # an input event with nothing left to search for
    wait(driver).until(lambda d: len(shown()) == 3)
    assert page_errors(driver) == []


def test_a_member_shares_an_image_a_visitor_sees_it_and_revoking_stops_it(driver, stack, signed_in, artifacts):
    """From the gallery's viewer: create a share link (choosing to show the username), see the "Shared"
    badge on the tile, open the link as a visitor (no session: the page rendered by the share function,
    with the picture and the AI-generated label), then stop sharing and find the link dead."""
    r = signed_in.post(stack.api("/api/v1/images"), json={"prompt": "a paper boat on a rainy street"}, timeout=30)
    assert r.status_code == 201, r.text
    image_id = r.json()["image"]["id"]
    open_page(driver, stack, "/gallery")
    press(driver, visible(driver, f'.gallery-grid .tile[data-id="{image_id}"] .tile-button'))
    visible(driver, "dialog[open] .share-panel")
    driver.find_element(By.CSS_SELECTOR, "dialog[open] .share-check input").click()
    press(driver, button(driver, "Create share link", scope="dialog"))
    address = visible(driver, "dialog[open] .share-url")
    url = address.get_attribute("value")
    assert url.startswith(stack.url + "/s/"), url
    shot(driver, artifacts, "30-share-panel")
    [link] = [x for x in signed_in.get(stack.api("/api/v1/shares"), timeout=30).json()["items"] if x["image_id"] == image_id]
    assert link["url"] == url and link["show_username"] is True
    press(driver, clickable(driver, "dialog[open] .dialog-close"))
    wait(driver).until(lambda d: "Shared" in d.find_element(
        By.CSS_SELECTOR, f'.gallery-grid .tile[data-id="{image_id}"] .tile-caption').text)

    # A visitor: no cookies.
    driver.delete_all_cookies()
    for width in (NARROW, WIDE):
        set_width(driver, width)
        driver.get(url)
        img = visible(driver, "img.shared-media")
        wait(driver).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img))
        assert "a paper boat on a rainy street" in driver.find_element(By.CSS_SELECTOR, ".shared-prompt").text
        assert "AI-generated" in driver.find_element(By.CSS_SELECTOR, ".shared-facts").text
        assert_fits(driver, f"shared page at {width} px")
        shot(driver, artifacts, f"31-shared-page-{width}")
    assert page_errors(driver) == []

    # The owner stops sharing; the visitor's reload finds it gone.
    set_width(driver, WIDE)
    driver.get(stack.url + "/favicon.svg")
    driver.add_cookie({"name": SESSION_COOKIE, "value": signed_in.cookies.get(SESSION_COOKIE), "path": "/"})
    open_page(driver, stack, "/gallery")
    press(driver, visible(driver, f'.gallery-grid .tile[data-id="{image_id}"] .tile-button'))
    press(driver, button(driver, "Stop sharing", scope="dialog"))
    visible(driver, "dialog[open] .share-panel button.button.secondary")
    assert button(driver, "Create share link", scope="dialog")
    r = requests.get(url, timeout=30)
    assert r.status_code == 404 and "This link is not available" in r.text


def test_the_keys_page_shows_the_webhook_secret_and_deliveries_and_each_image_its_provider(driver, stack, signed_in, artifacts):
    """A program's image with a webhook_url: its delivery is listed on the keys page (and redelivered from
    there), the signing secret is hidden until asked for and is the API's; the viewer names who made it."""
    from test_completion_webhooks import Receiver

    receiver = Receiver()
    try:
        r = signed_in.post(stack.api("/api/v1/images"), json={"prompt": "a glass lighthouse", "webhook_url": receiver.url}, timeout=30)
        assert r.status_code == 201, r.text
        image_id = r.json()["image"]["id"]
        wait(driver, 15).until(lambda d: receiver.received)
        secret = signed_in.get(stack.api("/api/v1/webhooks/secret"), timeout=30).json()["secret"]
        open_page(driver, stack, "/keys")
        field = visible(driver, "#webhook-secret")
        assert field.get_attribute("type") == "password"
        press(driver, button(driver, "Show"))
        assert field.get_attribute("type") == "text" and field.get_attribute("value") == secret
        row = visible(driver, ".deliveries-table tbody tr")
        assert "Delivered" in row.text and receiver.url in row.text, row.text
        shot(driver, artifacts, "40-keys-webhooks")
        press(driver, button(driver, "Redeliver"))
        # The list is drawn again once the redelivery is queued: the row now says it is waiting to be sent.
        wait(driver).until(lambda d: d.execute_script(
            "const row = document.querySelector('.deliveries-table tbody tr');"
            "return !!row && (row.textContent.includes('Retrying') || row.textContent.includes('Delivered') && arguments[0]);",
            len(receiver.received) > 1))
        open_page(driver, stack, "/gallery")
        press(driver, visible(driver, f'.gallery-grid .tile[data-id="{image_id}"] .tile-button'))
        facts = visible(driver, "dialog[open] .facts")
        assert "Made by" in facts.text and "Atelier (embedded) · atelier-local" in facts.text, facts.text
        shot(driver, artifacts, "41-viewer-provider")
        assert page_errors(driver) == []
    finally:
        receiver.stop()


def test_every_page_fits_a_phone_and_a_desktop_without_sideways_scrolling(driver, stack, smtp, artifacts):
    """Each page at 375 and 1280 px: no horizontal scrolling; the phone menu opens and closes."""
    driver.delete_all_cookies()
    for width in (NARROW, WIDE):
        set_width(driver, width)
        for path in PUBLIC_PAGES:
            open_page(driver, stack, path)
            assert_fits(driver, f"{path} at {width} px")
            shot(driver, artifacts, f"30-{width}{path.replace('/', '-') or '-home'}")

    http = sign_in_as_new_user(driver, stack, smtp)
    try:
        r = http.post(stack.api("/api/v1/images"), json={"prompt": "a lighthouse at dusk", "aspect_ratio": "9:16"}, timeout=30)
        assert r.status_code == 201, r.text  # the embedded renderer: made at once
        for width in (NARROW, WIDE):
            set_width(driver, width)
            for path in APP_PAGES:
                open_page(driver, stack, path)
                if path == "/gallery":
                    visible(driver, ".gallery-grid .tile")
                assert_fits(driver, f"{path} at {width} px")
                shot(driver, artifacts, f"31-{width}{path.replace('/', '-')}")
        set_width(driver, NARROW)
        open_page(driver, stack, "/create")
        toggle = clickable(driver, ".menu-toggle")
        toggle.click()
        visible(driver, "#site-nav a[href='/gallery']")
        assert toggle.get_attribute("aria-expanded") == "true"
        assert_fits(driver, "the open menu at 375 px")
        shot(driver, artifacts, "32-375-menu")
        driver.find_element(By.CSS_SELECTOR, "#site-nav a[href='/gallery']").click()
        wait(driver).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "#site-nav a[href='/gallery']")))
        assert page_errors(driver) == []
    finally:
        http.close()
        driver.delete_all_cookies()
        set_width(driver, WIDE)
