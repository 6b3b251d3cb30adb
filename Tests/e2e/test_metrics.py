"""GET /metrics, black-box: the Prometheus text format, parsed with prometheus_client's own parser, with
counters that aggregate every process of every function on the host.

Covered: a request moves exactly its counter (function, route pattern, method, status class) and its
latency histogram; counts outlive the process that made them (a killed process's file is folded into the
host's retired counts) and the supervisor's restart is counted; PostgreSQL's view of jobs and payments;
refunds and webhook deliveries on the Replicate stack; the endpoint refuses addresses outside
METRICS_ALLOWED_ADDRS.
"""
import os
import signal
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from test_foundation import parse_cgi, run_cgi
from test_accounts import browser  # noqa: F401
from test_generation import new_user, user  # noqa: F401
from test_replicate import ENDED_UNSUCCESSFULLY, client, create_image  # noqa: F401


def poll(produce, timeout, message):
    """The first truthy value `produce()` gives within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = produce()
        if got or time.monotonic() > deadline:
            assert got, message
            return got
        time.sleep(0.2)


def scrape(stack):
    """{(sample name, frozenset of labels): value} and the families' types, from GET /metrics."""
    r = requests.get(stack.api("/metrics"), timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    samples, types = {}, {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples, name, **labels):
    """Every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {key[1]: v for key, v in samples.items() if key[0] == name and want <= set(key[1])}


def test_a_request_moves_exactly_its_counter_and_histogram(stack):
    before, types = scrape(stack)
    for _ in range(3):
        assert requests.get(stack.api("/api/v1/plans"), timeout=30).status_code == 200
    for _ in range(2):
        assert requests.get(stack.api("/api/v1/keys"), timeout=30).status_code == 401
    after, types = scrape(stack)

    assert types["atelier_http_requests"] == "counter" and types["atelier_http_request_duration_seconds"] == "histogram"
    plans = dict(function="billing", route="/api/v1/plans", method="GET")
    keys = dict(function="keys", route="/api/v1/keys", method="GET")
    assert value(after, "atelier_http_requests_total", status="2xx", **plans) - \
        value(before, "atelier_http_requests_total", status="2xx", **plans) == 3
    assert value(after, "atelier_http_requests_total", status="4xx", **keys) - \
        value(before, "atelier_http_requests_total", status="4xx", **keys) == 2
    assert value(after, "atelier_http_requests_total", status="2xx", **keys) == \
        value(before, "atelier_http_requests_total", status="2xx", **keys)

    count = value(after, "atelier_http_request_duration_seconds_count", **plans)
    assert count - value(before, "atelier_http_request_duration_seconds_count", **plans) == 3
    assert value(after, "atelier_http_request_duration_seconds_sum", **plans) > \
        value(before, "atelier_http_request_duration_seconds_sum", **plans)
    buckets = sorted((float(dict(labels)["le"]), v) for labels, v in
                     series(after, "atelier_http_request_duration_seconds_bucket", **plans).items())
    assert buckets[-1] == (float("inf"), count), buckets
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f"buckets are not cumulative: {buckets}"


def test_state_from_postgresql_is_exposed(stack, user):
    user.generate("a kite over the dunes")
    samples, types = scrape(stack)
    assert value(samples, "atelier_database_up") == 1
    assert types["atelier_generations"] == "gauge"
    generated = int(stack.psql("SELECT count(*) FROM generations WHERE provider = 'local' AND task = 'image' "
                               "AND status = 'succeeded'"))
    assert value(samples, "atelier_generations", provider="local", task="image", status="succeeded") == generated
    assert value(samples, "atelier_oldest_open_job_age_seconds") >= 0


def test_counts_outlive_their_process_and_a_crash_is_counted_as_a_restart(stack):
    """keys runs on demand: its processes are killed (a crash: SIGKILL); what they counted is still in
    the host's totals, folded into the retired counts, and the supervisor's restart is counted."""
    for _ in range(4):
        assert requests.get(stack.api("/api/v1/keys"), timeout=30).status_code == 401
    before, _ = scrape(stack)
    keys = dict(function="keys", route="/api/v1/keys", method="GET", status="4xx")
    counted = value(before, "atelier_http_requests_total", **keys)
    assert counted >= 4
    restarts = value(before, "atelier_process_restarts_total", function="keys")

    binary = os.path.join(stack.bin_dir, "keys")
    pids = [int(p) for p in subprocess.run(["pgrep", "-f", f"^{binary}$"], capture_output=True, text=True).stdout.split()]
    assert pids, "no keys process is running"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    metrics_dir = os.path.join(stack.run_dir, "metrics")

    def folded():
        samples, _ = scrape(stack)
        names = os.listdir(metrics_dir)
        gone = not any(name.startswith(f"keys-{pid}-") for pid in pids for name in names)
        return gone and value(samples, "atelier_process_restarts_total", function="keys") >= restarts + len(pids) and samples

    samples = poll(folded, timeout=20, message="the killed processes' files were not folded in")
    assert value(samples, "atelier_http_requests_total", **keys) == counted, "counts died with their process"
    assert "retired.metrics" in os.listdir(metrics_dir)
    # The function still answers (the next connection starts a process) and counts on.
    assert requests.get(stack.api("/api/v1/keys"), timeout=30).status_code == 401
    after, _ = scrape(stack)
    assert value(after, "atelier_http_requests_total", **keys) == counted + 1


def test_only_the_allowed_addresses_may_scrape(stack):
    refused = run_cgi(stack, "health", "/metrics", env_extra={"REMOTE_ADDR": "203.0.113.9"})
    status, headers, body = parse_cgi(refused.stdout)
    assert status == 403 and b"metrics_forbidden" in body, body
    assert b"atelier_" not in body

    allowed = run_cgi(stack, "health", "/metrics", env_extra={"REMOTE_ADDR": "203.0.113.9",
                                                              "METRICS_ALLOWED_ADDRS": "10.0.0.1, 203.0.113.9"})
    status, headers, body = parse_cgi(allowed.stdout)
    assert status == 200 and b"# TYPE atelier_http_requests_total counter" in body, body[:300]
    # Through nginx from this host (127.0.0.1) it is served, as scrape() shows; the default list is
    # loopback only.
    local = run_cgi(stack, "health", "/metrics", env_extra={"REMOTE_ADDR": "127.0.0.1"})
    assert parse_cgi(local.stdout)[0] == 200


def test_refunds_and_webhook_deliveries_are_counted(replicate_stack, replicate, client):
    before, _ = scrape(replicate_stack)
    replicate.next_status("failed", error="CUDA out of memory")
    generation, _ = create_image(client, replicate)
    done = client.wait_generation(generation["id"], ENDED_UNSUCCESSFULLY)
    assert done["refunded"] is True
    def refunded():
        samples, _ = scrape(replicate_stack)
        grew = value(samples, "atelier_quota_refunds_total", task="image") > value(before, "atelier_quota_refunds_total", task="image")
        return samples if grew else None

    after = poll(refunded, timeout=10, message="the refund was not counted")
    assert value(after, "atelier_quota_refunds_total", task="image") - value(before, "atelier_quota_refunds_total", task="image") == 1
    delivered = sum(series(after, "atelier_webhook_deliveries_total", provider="replicate").values())
    assert delivered > sum(series(before, "atelier_webhook_deliveries_total", provider="replicate").values())
    failed = int(replicate_stack.psql("SELECT count(*) FROM generations WHERE provider = 'replicate' AND task = 'image' "
                                      "AND status = 'failed'"))
    assert value(after, "atelier_generations", provider="replicate", task="image", status="failed") == failed
