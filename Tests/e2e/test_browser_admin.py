"""The admin pages and the account page's keys, plan and usage in a real browser (headless Chromium under
Selenium, set up as in test_browser.py), against the full stack through nginx.

An admin made with `atelier create-admin` logs in through the login page, finds a user by search, opens
them, grants premium (their profile then says premium), promotes them with the admin's own password (a
wrong one is refused next to the password field), and deletes another user after typing their email back;
the audit log lists those actions; the admin pages fit 375 px and 1280 px without sideways scrolling; a
non-admin who opens /admin is told it is for administrators. On the keys page a key is made (its secret
shown once, with a copy button), listed, used and revoked. Screenshots go to $RUN_DIR/artifacts/browser/.
"""
from selenium.common.exceptions import StaleElementReferenceException
import subprocess
import uuid

import pytest
import requests

from test_accounts import SESSION_COOKIE, login, register_and_verify, strong_password, unique_email
# The browser, its fixtures and helpers are test_browser.py's own (importing them registers the fixtures).
from test_browser import (  # noqa: F401  (fixtures are used by name)
    NARROW, WIDE, artifacts, assert_fits, button, driver, open_page, page_errors, press, screenshot_on_failure,
    set_width, shot, sign_in_as_new_user, visible, wait,
)

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

ADMIN_PAGES = ["/admin", "/admin/user?id={user}", "/admin/jobs", "/admin/audit", "/admin/stats"]


# ---- helpers ------------------------------------------------------------------------------------------------

def create_admin(stack):
    """A new admin made by the operator CLI, as an operator would; returns (email, password)."""
    email = "admin-" + unique_email()
    password = strong_password()
    made = subprocess.run([stack.bin_dir + "/atelier", "create-admin", "--email", email], input=password,
                          capture_output=True, text=True, env=stack.app_env(), timeout=60)
    assert made.returncode == 0, made.stderr
    return email, password


def new_user(stack, smtp, username=None):
    """A verified member with their own requests.Session (its CSRF token set); `.email`, `.password`, `.id`."""
    http = requests.Session()
    email, password, csrf = register_and_verify(stack, smtp, http, username=username)
    http.headers.update({"X-CSRF-Token": csrf, "Origin": stack.url})
    http.email, http.password = email, password
    http.id = http.get(stack.api("/api/v1/profile"), timeout=10).json()["id"]
    return http


def browser_session(driver, stack, email, password):
    """Logs `email` in over the API and hands the session cookie to the browser."""
    http = requests.Session()
    r = login(stack, http, email, password)
    assert r.status_code == 200, r.text
    driver.get(stack.url + "/favicon.svg")
    driver.delete_all_cookies()
    driver.add_cookie({"name": SESSION_COOKIE, "value": http.cookies.get(SESSION_COOKIE), "path": "/"})
    http.close()


def full_shot(driver, artifacts, name):
    """A screenshot of the whole page, not only the viewport (for the long pages at 375 px)."""
    import base64
    import os
    import re

    data = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "fromSurface": True})["data"]
    with open(os.path.join(artifacts, re.sub(r"[^a-z0-9_.-]+", "-", name.lower()) + ".png"), "wb") as f:
        f.write(base64.b64decode(data))


def dialog_button(driver, text):
    return button(driver, text, scope="dialog")


def search_users(driver, text):
    """Types `text` in the users search and waits for exactly the matching rows; returns them."""
    box = visible(driver, "form[role=search] input[name=q]")
    box.clear()
    box.send_keys(text)
    button(driver, "Search").click()
    texts = "return [...document.querySelectorAll('.users-table tbody tr')].map((row) => row.textContent)"
    wait(driver).until(lambda d: (rows := d.execute_script(texts)) and all(text in row for row in rows))
    return driver.find_elements(By.CSS_SELECTOR, ".users-table tbody tr")


def open_user(driver, email):
    """Searches for `email`, opens it and waits for its page."""
    rows = search_users(driver, email)
    assert len(rows) == 1, [row.text for row in rows]

    def click_the_link(d):
        # The table may be re-rendered between finding the link and clicking it: find it afresh each time.
        try:
            links = d.find_elements(By.CSS_SELECTOR, ".users-table tbody tr a.user-link")
            if len(links) != 1:
                return False
            press(d, links[0])
            return True
        except StaleElementReferenceException:
            return False

    wait(driver).until(click_the_link)
    wait(driver).until(lambda d: text_of(d, "main h1") == email)
    visible(driver, "#user-actions")


def text_of(driver, css):
    """The text of the first element matching `css` now ('' if none): no stale references while pages re-render."""
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : ''", css)


def field_error(driver, name):
    """The error line under the control named `name` in the open dialog (or the page)."""
    return wait(driver).until(lambda d: next((e for e in d.find_elements(
        By.XPATH, f"//*[@name='{name}']/ancestor::div[contains(@class,'field')][1]//p[contains(@class,'field-error')]")
        if e.is_displayed() and e.text), None))


@pytest.fixture(scope="module")
def admin_account(stack):
    return create_admin(stack)


# ---- the journeys ---------------------------------------------------------------------------------------------

def test_an_admin_finds_a_user_grants_premium_promotes_them_and_deletes_another(driver, stack, smtp, admin_account, artifacts):
    admin_email, admin_password = admin_account
    target = new_user(stack, smtp, username="t" + uuid.uuid4().hex[:10])
    victim = new_user(stack, smtp)
    try:
        # Logs in through the login page; the Admin link is in the navigation.
        set_width(driver, WIDE)
        driver.delete_all_cookies()
        open_page(driver, stack, "/login")
        driver.find_element(By.NAME, "email").send_keys(admin_email)
        driver.find_element(By.NAME, "password").send_keys(admin_password)
        button(driver, "Log in").click()
        wait(driver).until(EC.url_contains("/create"))
        clickable_admin = wait(driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "nav a[href='/admin']")))
        clickable_admin.click()
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".users-table tbody tr"))
        shot(driver, artifacts, "40-admin-users")

        # Search by part of the email.
        rows = search_users(driver, target.email.split("@")[0])
        assert len(rows) == 1 and target.email in rows[0].text
        shot(driver, artifacts, "41-admin-search")
        open_user(driver, target.email)
        for section in ("profile", "actions", "subscription", "usage", "keys", "history"):
            visible(driver, f"#user-{section}")
        shot(driver, artifacts, "42-admin-user")

        # Premium until the default date (30 days on), confirmed; their own profile then says premium.
        press(driver, button(driver, "Grant premium"))
        visible(driver, "dialog.small[open]")
        shot(driver, artifacts, "43-admin-confirm-premium")
        dialog_button(driver, "Grant premium").click()
        visible(driver, ".user-badges .badge.premium")
        profile = target.get(stack.api("/api/v1/profile"), timeout=10).json()
        assert profile["premium"]["active"] is True, profile
        assert profile["quota"]["period"] == "month", profile
        assert button(driver, "Revoke premium")  # now offered

        # Promotion asks for the admin's own password: a wrong one is refused next to the field.
        press(driver, button(driver, "Make admin"))
        visible(driver, "dialog[open] input[name=password]").send_keys("not-my-password")
        dialog_button(driver, "Make admin").click()
        error = field_error(driver, "password")
        assert "your own password" in error.text, error.text
        assert driver.find_element(By.CSS_SELECTOR, "dialog[open] input[name=password]").get_attribute("aria-invalid") == "true"
        shot(driver, artifacts, "44-admin-promote-wrong-password")
        box = driver.find_element(By.CSS_SELECTOR, "dialog[open] input[name=password]")
        box.clear()
        box.send_keys(admin_password)
        dialog_button(driver, "Make admin").click()
        visible(driver, ".user-badges .badge.admin")
        wait(driver).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "dialog[open]")))
        assert stack.psql(f"SELECT is_admin FROM users WHERE id = '{target.id}'") == "t"
        assert button(driver, "Remove admin")

        # Deleting someone else: their email typed back (a wrong one is refused there) and the password.
        open_page(driver, stack, "/admin")
        open_user(driver, victim.email)
        press(driver, button(driver, "Delete user…"))
        visible(driver, "dialog[open] input[name=confirm_email]").send_keys("someone-else@example.test")
        driver.find_element(By.CSS_SELECTOR, "dialog[open] input[name=password]").send_keys(admin_password)
        dialog_button(driver, "Delete user").click()
        error = field_error(driver, "confirm_email")
        assert "email" in error.text, error.text
        shot(driver, artifacts, "45-admin-delete-mismatch")
        box = driver.find_element(By.CSS_SELECTOR, "dialog[open] input[name=confirm_email]")
        box.clear()
        box.send_keys(victim.email)
        dialog_button(driver, "Delete user").click()
        wait(driver).until(lambda d: d.current_url.rstrip("/").endswith("/admin"))
        assert stack.psql(f"SELECT count(*) FROM users WHERE id = '{victim.id}'") == "0"

        # The audit log lists the three actions, newest first, with who did them.
        press(driver, driver.find_element(By.CSS_SELECTOR, ".admin-tabs a[href='/admin/audit']"))
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".audit-table tbody tr"))
        actions = [(row.find_element(By.CSS_SELECTOR, ".audit-action").get_attribute("data-action"), row.text)
                   for row in driver.find_elements(By.CSS_SELECTOR, ".audit-table tbody tr")]
        mine = [(action, text) for action, text in actions if admin_email in text and (target.email in text or victim.email in text)]
        assert [action for action, _ in mine[:3]] == ["delete_user", "promote_admin", "grant_premium"], actions
        assert "Deleted user" in mine[0][1] and "Made admin" in mine[1][1] and "Granted premium" in mine[2][1]
        shot(driver, artifacts, "46-admin-audit")

        # One user's audit trail, from their page.
        open_page(driver, stack, f"/admin/audit?user_id={target.id}")
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".audit-table tbody tr"))
        rows = driver.find_elements(By.CSS_SELECTOR, ".audit-table tbody tr")
        assert len(rows) == 2 and all(target.email in row.text for row in rows), [row.text for row in rows]

        press(driver, driver.find_element(By.CSS_SELECTOR, ".admin-tabs a[href='/admin/stats']"))
        visible(driver, ".stats-group")
        assert "Accounts" in driver.find_element(By.CSS_SELECTOR, "main").text
        # The webhook log sits under the figures (the admin stack has no provider: no delivery yet).
        log = visible(driver, ".webhook-log")
        wait(driver).until(lambda d: "No webhook delivery" in log.text or log.find_elements(By.CSS_SELECTOR, "tbody tr"))
        assert "Webhooks" in log.text, log.text
        shot(driver, artifacts, "47-admin-stats")
        assert page_errors(driver) == []
    finally:
        target.close()
        victim.close()
        driver.delete_all_cookies()


def test_the_admin_pages_fit_a_phone_and_a_desktop(driver, stack, smtp, admin_account, artifacts):
    """Users, a user with history, keys and a quota override, the audit log and the figures at 375 and
    1280 px, and the delete dialog on a phone: nothing scrolls sideways."""
    member = new_user(stack, smtp)
    try:
        r = member.post(stack.api("/api/v1/images"), json={"prompt": "a very long prompt " * 20, "aspect_ratio": "1:1"}, timeout=30)
        assert r.status_code == 201, r.text  # the embedded renderer: made at once
        r = member.post(stack.api("/api/v1/keys"), json={"name": "render script"}, timeout=10)
        assert r.status_code == 201, r.text
        browser_session(driver, stack, *admin_account)
        for width in (NARROW, WIDE):
            set_width(driver, width)
            for path in ADMIN_PAGES:
                open_page(driver, stack, path.format(user=member.id))
                if path == "/admin":
                    visible(driver, ".users-table tbody tr")
                elif path.startswith("/admin/user"):
                    visible(driver, "#user-history .history-table")
                    visible(driver, "#user-keys table")
                elif path == "/admin/audit":
                    visible(driver, ".audit-table, .admin-body p")
                elif path == "/admin/jobs":
                    visible(driver, ".stuck-table, .empty-stuck")
                else:
                    visible(driver, ".stats-group")
                assert_fits(driver, f"{path} at {width} px")
                full_shot(driver, artifacts, f"48-{width}{path.split('?')[0].replace('/', '-')}")
        set_width(driver, NARROW)
        open_page(driver, stack, f"/admin/user?id={member.id}")
        visible(driver, "#user-actions")
        press(driver, button(driver, "Delete user…"))
        visible(driver, "dialog[open] input[name=confirm_email]")
        assert_fits(driver, "the delete dialog at 375 px")
        assert "null" not in driver.find_element(By.CSS_SELECTOR, "dialog[open]").text
        shot(driver, artifacts, "49-375-admin-delete-dialog")
        dialog_button(driver, "Cancel").click()
        # A quota override, confirmed, replaces the limit.
        box = visible(driver, "input[name=quota_override]")
        box.clear()
        box.send_keys("7")
        press(driver, button(driver, "Set limit"))
        dialog_button(driver, "Set limit").click()
        wait(driver).until(lambda d: "of 7 this day" in text_of(d, "#user-profile"))
        assert member.get(stack.api("/api/v1/profile"), timeout=10).json()["quota"]["limit"] == 7
        assert page_errors(driver) == []
    finally:
        member.close()
        driver.delete_all_cookies()
        set_width(driver, WIDE)


def test_an_admin_sees_a_stuck_job_and_reconciles_it(driver, admin_stack, smtp, artifacts):
    """A job left running by a crash an hour ago (the embedded renderer never finished it) is listed on the
    Stuck jobs page with its owner, age and what it waits for; Reconcile stops it past its timeout and
    refunds it, the page says so and the list empties of it; the audit log names the action. On the admin
    stack, which runs no cron on a timer (maintenance-cron would otherwise stop the job first)."""
    stack = admin_stack
    admin_account = create_admin(stack)
    member = new_user(stack, smtp)
    try:
        stack.psql(f"UPDATE users SET quota_used = 1, quota_period_start = date_trunc('day', now()) WHERE id = '{member.id}'")
        job = stack.psql(f"INSERT INTO generations (user_id, task, provider, status, input, cost, quota_period_start, created_at) "
                         f"VALUES ('{member.id}', 'image', 'local', 'running', '{{\"prompt\": \"a harbour at dawn\"}}', 1, "
                         f"date_trunc('day', now()), now() - interval '1 hour') RETURNING id").splitlines()[0]
        browser_session(driver, stack, *admin_account)
        open_page(driver, stack, "/admin")
        press(driver, driver.find_element(By.CSS_SELECTOR, ".admin-tabs a[href='/admin/jobs']"))
        row = wait(driver).until(lambda d: next((r for r in d.find_elements(By.CSS_SELECTOR, ".stuck-table tbody tr")
                                                 if member.email in r.text), None))
        assert "a harbour at dawn" in row.text and "60 min" in row.text and "embedded" in row.text, row.text
        shot(driver, artifacts, "51-admin-stuck-jobs")
        press(driver, row.find_element(By.CSS_SELECTOR, f"button[data-job='{job}']"))
        toast = visible(driver, ".toast")
        assert "stopped and refunded" in toast.text, toast.text
        wait(driver).until(lambda d: not any(member.email in r.text for r in d.find_elements(By.CSS_SELECTOR, ".stuck-table tbody tr")))
        assert stack.psql(f"SELECT status, refunded FROM generations WHERE id = '{job}'") == "failed|t"
        assert member.get(stack.api("/api/v1/profile"), timeout=10).json()["quota"]["used"] == 0

        press(driver, driver.find_element(By.CSS_SELECTOR, ".admin-tabs a[href='/admin/audit']"))
        wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".audit-table tbody tr"))
        first = driver.find_elements(By.CSS_SELECTOR, ".audit-table tbody tr")[0]
        assert "Reconciled a job" in first.text and member.email in first.text and "timed_out" in first.text, first.text
        assert page_errors(driver) == []
    finally:
        member.close()
        driver.delete_all_cookies()


def test_a_member_who_opens_the_admin_pages_is_told_they_are_for_admins(driver, stack, smtp, artifacts):
    set_width(driver, NARROW)
    http = sign_in_as_new_user(driver, stack, smtp)
    try:
        for path in ("/admin", "/admin/jobs", "/admin/audit", "/admin/stats", "/admin/user?id=00000000-0000-0000-0000-000000000000"):
            open_page(driver, stack, path)
            assert driver.find_element(By.CSS_SELECTOR, "main h1").text == "Administrators only", path
            assert "for administrators" in visible(driver, ".admin-refusal .notice").text
            assert driver.find_elements(By.CSS_SELECTOR, "nav a[href='/admin']") == []  # no Admin link either
            assert_fits(driver, f"{path} refused at 375 px")
        shot(driver, artifacts, "50-375-admin-refused")
        r = http.get(stack.api("/api/v1/admin/users"), timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required", r.text
        assert page_errors(driver) == []
    finally:
        http.close()
        driver.delete_all_cookies()
        set_width(driver, WIDE)


def test_a_member_makes_an_api_key_sees_its_secret_once_uses_it_and_revokes_it(driver, stack, smtp, artifacts):
    set_width(driver, WIDE)
    http = sign_in_as_new_user(driver, stack, smtp)
    try:
        # The account page: the plan (no payments on this server), usage chart and a way to the keys.
        open_page(driver, stack, "/account")
        visible(driver, "#usage svg.chart")
        plan = visible(driver, "#plan .subscription")
        wait(driver).until(lambda d: "Checking" not in plan.text)
        assert "not configured on this server" in plan.text, plan.text
        shot(driver, artifacts, "51-account")
        press(driver, driver.find_element(By.CSS_SELECTOR, "#usage a[href='/keys']"))
        visible(driver, ".keys-list p")

        box = visible(driver, "form input[name=name]")
        box.send_keys("My render script")
        button(driver, "Create key").click()
        secret_box = visible(driver, "dialog[open] input.secret")
        secret = secret_box.get_attribute("value")
        assert secret and len(secret) >= 20, secret
        assert secret_box.get_attribute("readonly") is not None
        copy = dialog_button(driver, "Copy")
        assert "only time it is shown" in driver.find_element(By.CSS_SELECTOR, "dialog[open]").text
        shot(driver, artifacts, "52-key-secret")
        copy.click()
        wait(driver).until(lambda d: copy.text in ("Copied", "Press Ctrl+C to copy"))
        dialog_button(driver, "Done").click()
        wait(driver).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "dialog[open]")))

        row = visible(driver, ".keys-table tbody tr")
        assert "My render script" in row.text
        prefix = row.find_element(By.CSS_SELECTOR, "code").text.rstrip("…")
        assert secret.startswith(prefix), (prefix, secret)
        assert secret not in driver.find_element(By.TAG_NAME, "body").text  # shown once, never again
        bearer = {"Authorization": f"Bearer {secret}"}
        assert requests.get(stack.api("/api/v1/profile"), headers=bearer, timeout=10).status_code == 200
        set_width(driver, NARROW)
        assert_fits(driver, "/keys at 375 px")
        shot(driver, artifacts, "53-375-keys")
        set_width(driver, WIDE)

        press(driver, button(driver, "Revoke"))
        dialog_button(driver, "Revoke").click()
        wait(driver).until(lambda d: "Revoked" in d.execute_script(
            "const row = document.querySelector('.keys-table tbody tr'); return row ? row.textContent : ''"))
        assert driver.find_elements(By.XPATH, "//main//button[normalize-space(.)='Revoke']") == []
        assert requests.get(stack.api("/api/v1/profile"), headers=bearer, timeout=10).status_code == 401
        shot(driver, artifacts, "54-key-revoked")
        assert page_errors(driver) == []
    finally:
        http.close()
        driver.delete_all_cookies()
