# Throwaway probe (not in the repo): how long Atelier waits after 429s with various Retry-After values.
from test_replicate import client  # noqa: F401
def test_probe(replicate_stack, replicate, client):
    for ra in (1, 3):
        replicate.rate_limit_next(2, retry_after=ra)
        first = len(replicate.creates)
        r = client.api("POST", "/api/v1/images", {"prompt": "probe"})
        attempts = replicate.creates[first:]
        print("retry_after", ra, r.status_code, [a["status"] for a in attempts],
              [round(b["time"] - a["time"], 3) for a, b in zip(attempts, attempts[1:])],
              [ {k: v for k, v in a.items() if k == "headers"}["headers"].get("User-Agent") for a in attempts])
