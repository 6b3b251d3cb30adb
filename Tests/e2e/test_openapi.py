"""The API description, openapi.yaml at the repository root (served by nginx at /api/v1/openapi.yaml): a valid
OpenAPI 3.1 document, naming every route of every function's router, and true of the live service, which
schemathesis checks with generated requests (as a program with an API key, then as a browser session).

Tools (pip): openapi-spec-validator, schemathesis (its `st` command, or `python -m schemathesis.cli`), PyYAML.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import requests
import yaml

from conftest import ROOT
from test_accounts import SESSION_COOKIE, assert_error, register_and_verify, redis_delete

DOC_PATH = os.path.join(ROOT, "openapi.yaml")
METHODS = ("get", "post", "put", "patch", "delete")
# Served by nginx itself, not by a function.
NGINX_ONLY = {("GET", "/api/v1/openapi.yaml")}
# Routes that are not for API clients and that schemathesis leaves alone (it cannot sign a webhook).
NOT_FUZZED = ["/hooks/replicate", "/hooks/razorpay"]
# What needs Razorpay: operation id -> (path, a valid body).
PAYMENT_OPERATIONS = {
    "subscribe": ("/api/v1/subscription", None),
    "verifySubscription": ("/api/v1/subscription/verify", {"razorpay_payment_id": "pay_x", "razorpay_subscription_id": "sub_x",
                                                           "razorpay_signature": "0" * 64}),
    "cancelSubscription": ("/api/v1/subscription/cancel", None),
}
# Bounds for each schemathesis run: examples per operation and phase, and a hard limit on wall time.
MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES", "25"))
RUN_TIMEOUT = 300
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")


def load_document():
    with open(DOC_PATH) as f:
        return yaml.safe_load(f)


def router_routes():
    """(METHOD, OpenAPI path) for every `.get("/…")`-style route in Functions/*/main.swift."""
    pattern = re.compile(r'\.(get|post|put|patch|delete)\(\s*"(/[^"]*)"')
    routes = {}
    for main in sorted(glob.glob(os.path.join(ROOT, "Functions", "*", "main.swift"))):
        function = os.path.basename(os.path.dirname(main))
        with open(main) as f:
            for method, path in pattern.findall(f.read()):
                openapi_path = re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", path)
                routes[(method.upper(), openapi_path)] = function
    return routes


def documented_operations(doc):
    return {(method.upper(), path): operation
            for path, item in doc["paths"].items()
            for method, operation in item.items() if method in METHODS}


# ---- the document ----------------------------------------------------------------------------------

def test_the_document_is_valid_openapi_3_1():
    from openapi_spec_validator import validate

    doc = load_document()
    assert str(doc["openapi"]).startswith("3.1."), doc["openapi"]
    validate(doc)


def test_nginx_serves_the_document(stack):
    r = requests.get(stack.api("/api/v1/openapi.yaml"), timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("application/yaml"), r.headers
    assert yaml.safe_load(r.text) == load_document()


def test_every_route_of_every_function_is_documented():
    routes = router_routes()
    # Every HTTP function has a router (the cron functions have none).
    functions = {os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(ROOT, "Functions", "*", "main.swift"))}
    assert {f for f in functions if not f.endswith("-cron")} <= set(routes.values()), routes
    documented = documented_operations(load_document())
    missing = sorted(f"{method} {path} ({function})" for (method, path), function in routes.items()
                     if (method, path) not in documented)
    assert not missing, "routes missing from openapi.yaml:\n" + "\n".join(missing)


def test_every_documented_operation_is_served():
    routes = router_routes()
    extra = sorted(f"{m} {p}" for (m, p) in documented_operations(load_document()) if (m, p) not in set(routes) | NGINX_ONLY)
    assert not extra, "openapi.yaml documents operations no function serves:\n" + "\n".join(extra)


def test_the_document_states_the_contract():
    """The parts of the contract every client relies on are written down: both auth schemes, the error
    shape, the rate-limit headers, Idempotency-Key where quota is spent, and the usual statuses."""
    doc = load_document()
    components = doc["components"]
    schemes = components["securitySchemes"]
    assert schemes["apiKey"]["type"] == "http" and schemes["apiKey"]["scheme"] == "bearer"
    assert (schemes["sessionCookie"]["in"], schemes["sessionCookie"]["name"]) == ("cookie", SESSION_COOKIE)
    assert (schemes["csrfToken"]["in"], schemes["csrfToken"]["name"]) == ("header", "X-CSRF-Token")
    error = components["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(error["properties"]["error"]["required"]) == {"code", "message", "request_id"}
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"):
        assert name in components["headers"], name

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            target = doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    problems = []
    for (method, path), operation in documented_operations(doc).items():
        statuses = set(operation["responses"])
        security = operation.get("security", doc.get("security", []))
        uses_key = any("apiKey" in requirement for requirement in security)
        body = operation.get("requestBody")
        params = [resolve(p)["name"] for p in operation.get("parameters", []) + doc["paths"][path].get("parameters", [])]
        if path.startswith("/api/v1/") and (method, path) not in NGINX_ONLY:
            if "503" not in statuses:
                problems.append(f"{method} {path}: no 503")
        if security and "401" not in statuses:
            problems.append(f"{method} {path}: authenticated but no 401")
        if uses_key:
            if "429" not in statuses:
                problems.append(f"{method} {path}: rate-limited but no 429")
            else:
                headers = resolve(operation["responses"]["429"]).get("headers", {})
                if not resolve(headers.get("Retry-After", {})).get("required"):
                    problems.append(f"{method} {path}: 429 without a required Retry-After")
        if any("csrfToken" in requirement for requirement in security) and "403" not in statuses:
            problems.append(f"{method} {path}: CSRF-protected but no 403")
        if body and path.startswith("/api/"):  # webhooks read their body whatever its declared type
            for status in ("400", "413", "415"):
                if status not in statuses:
                    problems.append(f"{method} {path}: a body but no {status}")
        if method == "POST" and path in ("/api/v1/images", "/api/v1/videos", "/api/v1/images/transform"):
            if "Idempotency-Key" not in params or not {"409", "422"} <= statuses:
                problems.append(f"{method} {path}: Idempotency-Key, 409 and 422 not all documented")
        for status, response in operation["responses"].items():
            response = resolve(response)
            if status.startswith(("4", "5")) and path.startswith("/s/"):
                # A share link's page and files answer browsers and link previews: an HTML 404 page.
                if "text/html" not in response.get("content", {}):
                    problems.append(f"{method} {path}: {status} is not the HTML page")
            elif status.startswith(("4", "5")) and (method, path) != ("GET", "/api/v1/health"):
                schema = response.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref") != "#/components/schemas/Error":
                    problems.append(f"{method} {path}: {status} is not the error schema")
    assert not problems, "\n".join(problems)


# ---- the live service --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(stack, smtp):
    """A verified account with a browser session and an API key made through the API."""
    jar = requests.Session()
    email, password, csrf = register_and_verify(stack, smtp, jar)
    r = jar.post(stack.api("/api/v1/keys"), json={"name": "schemathesis"},
                 headers={"X-CSRF-Token": csrf, "Origin": stack.url}, timeout=30)
    assert r.status_code == 201, r.text
    # An admin, so the session run reaches the admin API's answers too (its ids are random: nothing is found).
    stack.psql(f"UPDATE users SET is_admin = true WHERE email = '{email}'")
    yield {"jar": jar, "csrf": csrf, "session": jar.cookies.get(SESSION_COOKIE), "key": r.json()["secret"],
           "email": email, "password": password}
    jar.close()


def test_nul_characters_in_json_strings_are_refused_not_server_errors(stack, client):
    """PostgreSQL text cannot hold U+0000: a string with one is a client's mistake (4xx), never a 500, and
    never stored as something other than what the answer says."""
    bearer = {"Authorization": f"Bearer {client['key']}"}
    r = requests.post(stack.api("/api/v1/images"), json={"prompt": "a lighthouse\u0000 at dusk"}, headers=bearer, timeout=60)
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    r = requests.post(stack.api("/api/v1/prompts/enhance"), json={"prompt": "a lighthouse\u0000 at dusk"}, headers=bearer,
                      timeout=60)
    assert r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    r = client["jar"].post(stack.api("/api/v1/keys"), json={"name": "nul\u0000name"},
                           headers={"X-CSRF-Token": client["csrf"], "Origin": stack.url}, timeout=30)
    assert r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    if r.status_code == 201:
        listed = client["jar"].get(stack.api("/api/v1/keys"), timeout=30).json()["items"]
        names = {k["id"]: k["name"] for k in listed}
        assert names[r.json()["id"]] == r.json()["name"], "the key's name was stored differently from the answer"


def schemathesis_command():
    st = shutil.which("st")
    return [st] if st else [sys.executable, "-m", "schemathesis.cli"]


def run_schemathesis(stack, headers, exclude_paths, label, exclude_operations=()):
    command = schemathesis_command() + [
        "run", DOC_PATH, "--url", stack.url,
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",  # 2 threads can crash hypothesis (ast.parse is not thread-safe on Python 3.11)
        "--request-timeout", "60",
        "--generation-database", "none",
        "--no-color",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    for path in exclude_paths:
        command += ["--exclude-path", path]
    for operation_id in exclude_operations:
        command += ["--exclude-operation-id", operation_id]
    with tempfile.TemporaryDirectory() as work:  # nothing schemathesis writes lands in the repository
        try:
            done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"schemathesis ({label}) did not finish in {RUN_TIMEOUT} s:\n{(e.stdout or '')[-4000:]}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"schemathesis ({label}) found problems:\n{output[-12000:]}"
    assert "Operations:" in output and "passed" in output, output[-3000:]


def test_schemathesis_finds_no_server_error_or_schema_mismatch(stack, client):
    """Generated requests (valid and invalid) against every operation but the webhook: no 5xx, and every
    status, content type, header and body is one the document describes. First as a program with the API
    key, then as the browser session (with its CSRF token) for what only a session may do; logging out
    would end that session mid-run, so it is left to the key run (where it is 401). Without payments set up
    (no RAZORPAY_* here), subscribing, verifying and cancelling are 503 payments_not_configured by design,
    which schemathesis counts as a server error: they are checked here instead of fuzzed."""
    session = {"Cookie": f"{SESSION_COOKIE}={client['session']}", "X-CSRF-Token": client["csrf"]}
    exclude = []
    if not requests.get(stack.api("/api/v1/plans"), timeout=10).json()["payments_configured"]:
        exclude = list(PAYMENT_OPERATIONS)
        for path, body in PAYMENT_OPERATIONS.values():
            r = requests.post(stack.api(path), json=body, headers=session, timeout=30)
            assert_error(r, 503, "payments_not_configured")
    try:
        run_schemathesis(stack, {"Authorization": f"Bearer {client['key']}"}, NOT_FUZZED, "API key")
        run_schemathesis(stack, session, NOT_FUZZED + ["/api/v1/logout"], "browser session", exclude)
    finally:
        # Generated logins fail by the hundred from 127.0.0.1; later suites must still be able to log in.
        redis_delete(stack, "login:*")
