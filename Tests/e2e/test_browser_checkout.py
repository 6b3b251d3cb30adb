"""Razorpay Checkout under the pages' Content-Security-Policy, in Chromium.

The policy allows what Razorpay itself lists for Checkout in the CSP allowlist of its official Magento
plugin (razorpay/razorpay-magento, etc/csp_whitelist.xml): scripts from checkout.razorpay.com and
cdn.razorpay.com, images from cdn.razorpay.com, frames from api.razorpay.com, and the lumberjack and
lumberjack-metrics endpoints it reports to. The real checkout.js cannot be fetched here, so Chromium
resolves those hosts to a local HTTPS server (`--host-resolver-rules`) that serves a stand-in loading one
of each; the policy is what is under test. On the billing stack a member presses "Go Premium": the
subscription is created at the Razorpay fake, Checkout opens, every Razorpay host is reached and the
browser logs no CSP violation. A request to a host Razorpay does not list is refused by the policy (the
check would see a violation)."""
import http.server
import os
import ssl
import threading

import pytest
import requests

import imagefiles
from test_accounts import SESSION_COOKIE, register_and_verify
from test_browser import artifacts, new_chromium, page_errors, shot, wait  # noqa: F401 (fixtures)

LISTED = ["checkout.razorpay.com", "cdn.razorpay.com", "api.razorpay.com", "lumberjack.razorpay.com",
          "lumberjack-metrics.razorpay.com"]
UNLISTED = "unlisted.razorpay.com"

STAND_IN = r"""
// A stand-in for https://checkout.razorpay.com/v1/checkout.js that loads one of everything Razorpay lists.
(function () {
  function Razorpay(options) { this.options = options; this.handlers = {}; }
  Razorpay.prototype.on = function (event, handler) { this.handlers[event] = handler; };
  Razorpay.prototype.open = function () {
    var helper = document.createElement('script');
    helper.src = 'https://cdn.razorpay.com/static/checkout-helper.js';
    document.head.appendChild(helper);
    var logo = new Image();
    logo.src = 'https://cdn.razorpay.com/logos/merchant.png';
    logo.alt = '';
    logo.className = 'razorpay-stand-in-logo';
    document.body.appendChild(logo);
    var frame = document.createElement('iframe');
    frame.className = 'razorpay-checkout-frame';
    frame.src = 'https://api.razorpay.com/v1/checkout/public?key_id=' + encodeURIComponent(this.options.key) +
      '&subscription_id=' + encodeURIComponent(this.options.subscription_id);
    document.body.appendChild(frame);
    fetch('https://lumberjack.razorpay.com/v1/track', { method: 'POST', mode: 'no-cors', body: '{}' });
    fetch('https://lumberjack-metrics.razorpay.com/v1/frontend-metrics', { method: 'POST', mode: 'no-cors', body: '{}' });
    window.__razorpayOpened = this.options.subscription_id;
  };
  window.Razorpay = Razorpay;
})();
"""


class RazorpayHosts:
    """One HTTPS server answering for every Razorpay host Chromium is told to resolve to it; it records
    which host each request named."""

    def __init__(self, cert, key):
        self.seen = []
        logo = imagefiles.stripes_png(16, 16)
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                host = (self.headers.get("Host") or "").split(":")[0]
                seen.append((host, self.command, self.path))
                if self.path.startswith("/v1/checkout.js"):
                    body, kind = STAND_IN.encode(), "application/javascript"
                elif self.path.startswith("/static/"):
                    body, kind = b"window.__razorpayHelper = true;", "application/javascript"
                elif self.path.startswith("/logos/"):
                    body, kind = logo, "image/png"
                elif self.path.startswith("/v1/checkout/public"):
                    body, kind = b"<!doctype html><title>Checkout</title><p>Razorpay Checkout</p>", "text/html"
                else:
                    body, kind = b"", "text/plain"
                self.send_response(200 if body else 204)
                self.send_header("Content-Type", kind)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hosts(self):
        return {host for host, _, _ in self.seen}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def razorpay_hosts():
    hosts = RazorpayHosts(os.environ["SMTP_FAKE_CERT"], os.environ["SMTP_FAKE_KEY"])
    try:
        yield hosts
    finally:
        hosts.stop()


@pytest.fixture(scope="module")
def driver(razorpay_hosts):
    rules = ",".join(f"MAP {host} 127.0.0.1:{razorpay_hosts.port}" for host in LISTED + [UNLISTED])
    browser = new_chromium(f"--host-resolver-rules={rules}", "--ignore-certificate-errors")
    try:
        yield browser
    finally:
        browser.quit()


def test_checkout_opens_with_no_csp_violation_and_the_policy_refuses_other_hosts(billing_stack, smtp, driver,
                                                                                 razorpay_hosts, artifacts):
    stack = billing_stack
    with requests.Session() as http:
        register_and_verify(stack, smtp, http)
        driver.get(stack.url + "/favicon.svg")
        driver.delete_all_cookies()
        driver.add_cookie({"name": SESSION_COOKIE, "value": http.cookies.get(SESSION_COOKIE), "path": "/"})
    driver.get(stack.url + "/account")
    page_errors(driver)  # start from a clean log
    subscribe = wait(driver).until(lambda d: next((b for b in d.find_elements("css selector", "button.primary")
                                                   if b.text == "Go Premium" and b.is_enabled()), None))
    subscribe.click()
    opened = wait(driver).until(lambda d: d.execute_script("return window.__razorpayOpened || null"))
    assert opened.startswith("sub_"), opened
    assert wait(driver).until(lambda d: set(LISTED) <= razorpay_hosts.hosts()), razorpay_hosts.seen
    assert wait(driver).until(lambda d: d.execute_script("return window.__razorpayHelper === true"))
    assert wait(driver).until(lambda d: d.execute_script(
        "var i = document.querySelector('img.razorpay-stand-in-logo'); return i && i.complete && i.naturalWidth > 0"))
    shot(driver, artifacts, "60-checkout-under-csp")
    assert page_errors(driver) == []

    # The check sees a violation when there is one: a host Razorpay does not list is refused.
    driver.execute_script(f"fetch('https://{UNLISTED}/v1/track', {{method: 'POST', mode: 'no-cors'}}).catch(function () {{}})")
    violations = wait(driver).until(lambda d: page_errors(d))
    assert any(UNLISTED in v and "Content Security Policy" in v for v in violations), violations
    assert UNLISTED not in razorpay_hosts.hosts()
