"""Scale to zero under the supervisor: a function nobody calls holds no process, the next connection
starts one, extra processes start when all are busy and exit after the idle timeout, the hot functions
keep their resident processes, and no request fails while processes come and go.

The test stack runs every function with at most PROCESSES (2) processes; health, session and generate keep
RESIDENT (2) resident, every other function scales to zero after IDLE_SECONDS (2) (scripts/test.sh)."""
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import ROOT, wait_until

IDLE = int(os.environ.get("IDLE_SECONDS", "2"))
MAXIMUM = int(os.environ.get("PROCESSES", "2"))


def burst(stack, path, requests_count, clients):
    """`requests_count` GETs from `clients` threads at once; their status codes in order."""
    def one(_):
        with requests.Session() as s:
            return s.get(stack.api(path), timeout=20).status_code
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(requests_count)))


def test_a_cold_function_scales_to_zero_and_back_with_every_request_answered(stack):
    name, path = "billing", "/api/v1/plans"
    assert wait_until(lambda: stack.function_pids(name) == [], timeout=IDLE + 5), \
        f"{name} still has processes {IDLE + 5} s after its last request: {stack.function_pids(name)}"

    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(len(stack.function_pids(name)))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # A burst, idle past the timeout, another burst: every request is answered.
        first = burst(stack, path, 300, 16)
        assert first == [200] * 300, sorted(set(first))
        assert wait_until(lambda: stack.function_pids(name) == [], timeout=IDLE + 5), \
            f"{name} processes did not exit after {IDLE} s idle: {stack.function_pids(name)}"
        second = burst(stack, path, 300, 16)
        assert second == [200] * 300, sorted(set(second))
    finally:
        stop.set()
        watcher.join()
    assert max(seen) <= MAXIMUM, f"more than {MAXIMUM} processes of {name}: {max(seen)}"
    assert max(seen) >= 1


def test_a_single_request_to_a_scaled_to_zero_function_is_answered(stack, http):
    # keys answers 401 without a session: what matters is that a process started to say so.
    assert wait_until(lambda: stack.function_pids("keys") == [], timeout=IDLE + 5)
    for _ in range(3):
        r = http.get(stack.api("/api/v1/keys"), timeout=10)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"]
        assert wait_until(lambda: stack.function_pids("keys") == [], timeout=IDLE + 5)


def test_resident_processes_of_hot_functions_never_idle_out(stack, http):
    before = stack.function_pids("health")
    assert len(before) >= 1
    time.sleep(IDLE + 1.5)
    assert stack.function_pids("health") == before
    assert http.get(stack.api("/api/v1/health/live"), timeout=5).status_code == 200


def test_the_supervisor_refuses_an_impossible_scaling(stack, tmp_path):
    for spec in ("health=3:2:10", "health=0:0:10", "health=0:2:0", "health=x", "health=1:2"):
        out = subprocess.run([os.path.join(stack.bin_dir, "atelier"), "supervise", "--sockets", str(tmp_path),
                              "--bin", stack.bin_dir, "--functions", spec],
                             capture_output=True, text=True, timeout=10, cwd=ROOT)
        assert out.returncode != 0, spec
        assert "MIN:MAX:IDLE" in out.stderr, (spec, out.stderr)
