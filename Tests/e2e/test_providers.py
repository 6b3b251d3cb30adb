"""A second provider (OpenAI's Images API, fakes/openai.py) next to Replicate (fakes/replicate.py), and
failover between them: a stack with PROVIDERS=openai,replicate, through nginx.

What is checked: a job goes to the first healthy provider and records which provider and model made it
(on the generation and on the image); a provider that fails is skipped for its cool-down and the job goes
to the next; the quota is charged once whoever makes it, and refunded once when every provider fails; a
safety refusal fails the job without asking another provider; inpainting sends OpenAI the picture and a
mask transparent exactly where to repaint; enhancement uses OpenAI's chat model.
"""
import subprocess
import time

import pytest
import requests

import imagefiles
from conftest import private_stack
from test_accounts import register_and_verify
from test_replicate import Client

COOLDOWN = 3


@pytest.fixture(scope="module")
def providers_stack():
    from fakes.openai import OpenAIFake
    from fakes.replicate import ReplicateFake, new_secret

    replicate = ReplicateFake(secret=new_secret(), token="r8_test", port=0).start()
    openai = OpenAIFake(api_key="sk-test-atelier", port=0).start()
    extra = {
        "PROVIDERS": "openai,replicate",
        "PROVIDER_COOLDOWN_SECONDS": str(COOLDOWN),
        "OPENAI_API_KEY": openai.api_key,
        "OPENAI_BASE_URL": openai.base_url,
        "REPLICATE_API_TOKEN": replicate.token,
        "REPLICATE_API_BASE": replicate.base_url,
        "REPLICATE_WEBHOOK_SECRET": replicate.secret,
        "GENERATION_TIMEOUT_SECONDS": "60",
    }
    try:
        with private_stack("providers", extra, fake=(openai, replicate)) as stack:
            stack.openai, stack.replicate = openai, replicate
            yield stack
    finally:
        openai.stop()
        replicate.stop()


@pytest.fixture
def fakes(providers_stack):
    for fake in (providers_stack.openai, providers_stack.replicate):
        fake.reset()
    clear_cooldowns(providers_stack)
    yield providers_stack.openai, providers_stack.replicate
    for fake in (providers_stack.openai, providers_stack.replicate):
        fake.reset()


@pytest.fixture
def client(providers_stack, smtp):
    with requests.Session() as http:
        email, _, csrf = register_and_verify(providers_stack, smtp, http)
        yield Client(providers_stack, http, email, csrf)


def redis_cli(stack, *args):
    done = subprocess.run(["redis-cli", "-u", stack.redis_url, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def clear_cooldowns(stack):
    redis_cli(stack, "DEL", "atelier:provider-cooldown:openai", "atelier:provider-cooldown:replicate")


def submit_image(client, prompt):
    r = client.api("POST", "/api/v1/images", {"prompt": prompt, "aspect_ratio": "16:9"})
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/api/v1/generations/{r.json()['generation']['id']}"
    return r.json()["generation"]


def image_of(client, generation):
    assert len(generation["image_ids"]) == 1, generation
    r = client.api("GET", f"/api/v1/images/{generation['image_ids'][0]}")
    assert r.status_code == 200, r.text
    return r.json()


def test_openai_first_makes_the_image_and_is_recorded(providers_stack, fakes, client):
    openai, replicate = fakes
    before = client.quota_used()
    creates = len(replicate.creates)
    generation = submit_image(client, "a red kite over a green hill")
    assert generation["provider"] == "openai" and generation["model"] == "gpt-image-1", generation
    done = client.wait_generation(generation["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert (done["provider"], done["model"]) == ("openai", "gpt-image-1")
    image = image_of(client, done)
    assert (image["provider"], image["model"]) == ("openai", "gpt-image-1"), image
    # 16:9 asks gpt-image-1 for its landscape size, which is what was stored.
    request = openai.generations[-1]
    assert request["model"] == "gpt-image-1" and request["size"] == "1536x1024", request
    assert "a red kite over a green hill" in request["prompt"]
    assert "response_format" not in request["params"]
    assert (image["width"], image["height"]) == (1536, 1024)
    assert len(replicate.creates) == creates, "Replicate was asked too"
    assert client.quota_used() == before + done["cost"]


def test_openai_down_fails_over_to_replicate_charging_once(providers_stack, fakes, client):
    openai, replicate = fakes
    before = client.quota_used()
    openai.fail_next(1, status=500)
    generation = submit_image(client, "a lantern in the fog")
    done = client.wait_generation(generation["id"], ("succeeded", "failed"), timeout=60)
    assert done["status"] == "succeeded", done
    assert done["provider"] == "replicate" and done["model"] == "black-forest-labs/flux-schnell", done
    assert image_of(client, done)["provider"] == "replicate"
    assert client.quota_used() == before + done["cost"], "charged other than once"
    assert done["refunded"] is False

    # OpenAI cools down: the next job goes straight to Replicate, without asking OpenAI.
    asked = len(openai.requests_to("POST", "/v1/images/generations"))
    creates = len(replicate.creates)
    second = client.wait_generation(submit_image(client, "a second lantern")["id"], ("succeeded", "failed"), timeout=60)
    assert second["provider"] == "replicate", second
    assert len(openai.requests_to("POST", "/v1/images/generations")) == asked
    assert len(replicate.creates) == creates + 1

    # After the cool-down OpenAI is first again.
    time.sleep(COOLDOWN + 0.5)
    third = client.wait_generation(submit_image(client, "a third lantern")["id"], ("succeeded", "failed"), timeout=60)
    assert third["provider"] == "openai", third


def test_replicate_throttling_past_the_deadline_goes_to_openai(providers_stack, fakes, client):
    """With Replicate first (as a job that OpenAI cannot take would have it), a Replicate that throttles
    for longer than the request can wait is skipped for OpenAI."""
    openai, replicate = fakes
    # OpenAI cools down for this job so Replicate is tried first, then OpenAI as the last resort.
    redis_cli(providers_stack, "SET", "atelier:provider-cooldown:openai", "test", "EX", "30")
    replicate.rate_limit_next(1, retry_after=60)
    generation = submit_image(client, "a throttled comet")
    done = client.wait_generation(generation["id"], ("succeeded", "failed"), timeout=60)
    assert done["status"] == "succeeded" and done["provider"] == "openai", done
    assert redis_cli(providers_stack, "EXISTS", "atelier:provider-cooldown:replicate") == "1", "Replicate was not cooled down"


def spend_one(client):
    """One image made (by OpenAI), so the quota is above zero and a refund too many would show."""
    done = client.wait_generation(submit_image(client, "a first image")["id"], ("succeeded", "failed"), timeout=60)
    assert done["status"] == "succeeded", done
    used = client.quota_used()
    assert used >= 1
    return used


def test_every_provider_down_refunds_once(providers_stack, fakes, client):
    openai, replicate = fakes
    before = spend_one(client)
    openai.fail_next(5, status=503)
    replicate.stop()  # down: its port refuses connections, so nothing can have been created there
    try:
        generation = submit_image(client, "a storm over nothing")
        done = client.wait_generation(generation["id"], ("succeeded", "failed"), timeout=60)
    finally:
        replicate._stopping.clear()
        replicate.start()
    assert done["status"] == "failed" and done["refunded"] is True, done
    assert "unavailable" in done["error"] and "refunded" in done["error"]
    assert client.quota_used() == before
    refunds = providers_stack.psql(
        f"SELECT count(*) FROM generations WHERE id = '{done['id']}' AND refunded")
    assert refunds == "1"
    assert done["image_ids"] == []


def test_a_safety_refusal_fails_without_asking_another_provider(providers_stack, fakes, client):
    openai, replicate = fakes
    before = spend_one(client)
    creates = len(replicate.creates)
    openai.refuse_next_content_policy(1)
    done = client.wait_generation(submit_image(client, "something the filter refuses")["id"], ("succeeded", "failed"))
    assert done["status"] == "failed" and done["refunded"] is True, done
    assert "safety filter" in done["error"], done
    assert len(replicate.creates) == creates, "a refused prompt was sent to another provider"
    assert client.quota_used() == before


def test_inpaint_through_openai_sends_a_transparent_mask(providers_stack, fakes, client):
    openai, replicate = fakes
    picture = imagefiles.solid_png(96, 64, (10, 120, 200))
    mask = imagefiles.mask_png(96, 64, (10, 10, 40, 30))  # 30 × 20 white pixels to repaint
    r = client.api("POST", "/api/v1/images/transform",
                   data={"mode": "inpaint", "prompt": "a small yellow boat"},
                   files={"image": ("p.png", picture, "image/png"), "mask": ("m.png", mask, "image/png")})
    assert r.status_code == 202, r.text
    done = client.wait_generation(r.json()["generation"]["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded" and done["provider"] == "openai", done
    edit = openai.edits[-1]
    assert edit["image_size"] == (96, 64) and edit["mask_size"] == (96, 64), edit
    assert edit["transparent_pixels"] == 30 * 20, edit
    assert edit["pixels"] == 96 * 64
    image = image_of(client, done)
    assert image["kind"] == "inpainted" and (image["width"], image["height"]) == (96, 64), image
    assert image["provider"] == "openai"
    # The mask kept for Replicate (had OpenAI failed) is removed once the job is done.
    key = providers_stack.psql(f"SELECT input->>'mask_key' FROM generations WHERE id = '{done['id']}'")
    assert key.endswith(".png")
    assert requests.get(providers_stack.api(f"/media/{key}"), timeout=10).status_code == 404


def test_upscale_is_not_offered_to_openai(providers_stack, fakes, client):
    openai, replicate = fakes
    edits = len(openai.edits)
    r = client.api("POST", "/api/v1/images/transform", data={"mode": "upscale", "scale": "2"},
                   files={"image": ("p.png", imagefiles.solid_png(32, 32), "image/png")})
    assert r.status_code == 202, r.text
    done = client.wait_generation(r.json()["generation"]["id"], ("succeeded", "failed"), timeout=60)
    assert done["status"] == "succeeded" and done["provider"] == "replicate", done
    assert len(openai.edits) == edits


def test_enhancement_uses_openais_chat_model(providers_stack, fakes, client):
    openai, replicate = fakes
    openai.chat_answer = "Here is a better prompt:\nA copper fox at dawn, mist, rim light"
    r = client.api("POST", "/api/v1/prompts/enhance", {"prompt": "a fox", "style": "cinematic"})
    assert r.status_code == 200, r.text
    assert r.json() == {"prompt": "A copper fox at dawn, mist, rim light", "original": "a fox"}
    chat = openai.chats[-1]
    assert chat["model"] == "gpt-4o-mini", chat
    assert any("a fox" in m["content"] for m in chat["messages"]), chat


def test_enhancement_falls_back_when_openai_fails(providers_stack, fakes, client):
    openai, replicate = fakes
    asked = len(openai.requests_to("POST", "/v1/chat/completions"))
    openai.fail_next(3, status=500)
    replicate.llm_tokens = ["A ", "fox ", "from Replicate"]
    r = client.api("POST", "/api/v1/prompts/enhance", {"prompt": "a fox"})
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == "A fox from Replicate"
    assert len(openai.requests_to("POST", "/v1/chat/completions")) == asked + 1, "OpenAI, first in the list, was not asked"


@pytest.fixture(scope="module")
def fallback_stack():
    """OpenAI first, the embedded renderer closing the list."""
    from fakes.openai import OpenAIFake

    openai = OpenAIFake(api_key="sk-test-fallback", port=0).start()
    extra = {"PROVIDERS": "openai,local", "OPENAI_API_KEY": openai.api_key, "OPENAI_BASE_URL": openai.base_url}
    try:
        with private_stack("fallback", extra, fake=openai) as stack:
            stack.openai = openai
            yield stack
    finally:
        openai.stop()


def test_local_closes_the_list(fallback_stack, smtp):
    with requests.Session() as http:
        email, _, csrf = register_and_verify(fallback_stack, smtp, http)
        client = Client(fallback_stack, http, email, csrf)
        before = client.quota_used()
        fallback_stack.openai.set_down(True)
        try:
            generation = submit_image(client, "a kite when the provider is down")
            done = client.wait_generation(generation["id"], ("succeeded", "failed"), timeout=60)
        finally:
            fallback_stack.openai.set_down(False)
        assert done["status"] == "succeeded", done
        assert (done["provider"], done["model"]) == ("local", "atelier-local"), done
        image = image_of(client, done)
        assert image["provider"] == "local" and image["width"] * 9 == image["height"] * 16, image
        assert client.quota_used() == before + done["cost"]


def test_a_request_openai_rejects_goes_on_without_cooling_openai_down(providers_stack, fakes, client):
    """A 400 for this job's request (not a safety refusal) is this job's problem: the next provider takes
    it, and OpenAI stays first for everyone else."""
    openai, replicate = fakes
    openai.fail_next(1, status=400)
    done = client.wait_generation(submit_image(client, "a request OpenAI does not take")["id"], ("succeeded", "failed"), timeout=60)
    assert done["status"] == "succeeded" and done["provider"] == "replicate", done
    assert redis_cli(providers_stack, "EXISTS", "atelier:provider-cooldown:openai") == "0"
    after = client.wait_generation(submit_image(client, "the next one")["id"], ("succeeded", "failed"), timeout=60)
    assert after["provider"] == "openai", after
