"""The Luma provider (generations.providers.luma) against the simulator in its luma dialect,
over real HTTP: the bodies it sends, what it reads back, how it maps failures, how it finds what a
POST of unknown outcome made, credits, concepts and prices."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from devtools.simulator_process import SimulatorProcess
from generations import providers
from generations.client import (
    OutcomeUnknownError,
    PermanentError,
    RetryableError,
)
from generations.inputs import GenerationRequest
from generations.providers import Submission
from generations.providers import luma as luma_module
from generations.providers.luma import Luma
from lumaweb.env import env_price_table
from tests.conftest import wait_for

KEY = "lk-test-4f9a1c2e8b7d6a5f3e2c1b0a9d8e7f6a"


@pytest.fixture(scope="module")
def luma_simulator() -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(dialect="luma", duration=2, video_seconds=1, seed=11)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def lsim(luma_simulator: SimulatorProcess, settings) -> SimulatorProcess:
    """The luma-dialect simulator, reset, requiring KEY; this process's settings point at it."""
    luma_simulator.reset(restore_config=True)
    luma_simulator.configure(api_key=KEY)
    settings.LUMA_PROVIDER = "luma"
    settings.LUMA_API_BASE_URL = luma_simulator.api_url
    settings.LUMA_API_KEY = KEY
    return luma_simulator


@pytest.fixture
def luma(lsim: SimulatorProcess) -> Luma:
    return Luma(lsim.api_url, KEY, connect_timeout=2, read_timeout=5)


def echoed(sim: SimulatorProcess, remote_id: str) -> dict:
    """The generation object as the simulator shows it (its ``request``: the body it got)."""
    response = requests.get(
        f"{sim.api_url}/generations/{remote_id}",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()


def submit(luma: Luma, prompt: str = "a lighthouse at dusk", **kwargs: object) -> str:
    fields = {k: v for k, v in kwargs.items() if k in GenerationRequest.field_names()}
    rest = {k: v for k, v in kwargs.items() if k not in fields}
    return luma.submit(Submission(GenerationRequest(user_prompt=prompt, **fields), **rest)).id


def complete(sim: SimulatorProcess, remote_id: str) -> None:
    sim.force_complete(remote_id)


# --- what it sends --------------------------------------------------------------------------------
def test_current_is_luma_when_configured(lsim):
    provider = providers.current()
    assert isinstance(provider, Luma)
    assert provider.base_url == lsim.api_url
    assert KEY not in repr(provider)


def test_a_plain_create_sends_the_default_model_resolution_and_duration(luma, lsim):
    remote_id = submit(luma, "a red fox", aspect_ratio="9:16", expand_prompt=True)
    request = echoed(lsim, remote_id)["request"]
    assert request["prompt"] == "a red fox"
    assert request["model"] == "ray-2"
    assert request["resolution"] == "720p"
    assert request["duration"] == "5s"
    assert request["aspect_ratio"] == "9:16"
    assert not request.get("loop")
    assert not request.get("keyframes")
    assert "expand_prompt" not in request  # no such thing in the official API: not sent


def test_options_are_sent_as_luma_names_them(luma, lsim):
    remote_id = submit(
        luma,
        model="ray-flash-2",
        resolution="540p",
        duration="9s",
        loop=True,
        concepts="dolly_zoom, orbit_left",
        callback_url="https://lumaweb.example.com/hooks/luma/abc",
    )
    request = echoed(lsim, remote_id)["request"]
    assert request["model"] == "ray-flash-2"
    assert request["resolution"] == "540p"
    assert request["duration"] == "9s"
    assert request["loop"] is True
    assert request["concepts"] == [{"key": "dolly_zoom"}, {"key": "orbit_left"}]
    assert request["callback_url"] == "https://lumaweb.example.com/hooks/luma/abc"


def test_image_keyframes_are_frame0_and_frame1(luma, lsim):
    remote_id = submit(
        luma,
        image_url="https://images.example.com/start.jpg",
        image_end_url="https://images.example.com/end.jpg",
    )
    assert echoed(lsim, remote_id)["request"]["keyframes"] == {
        "frame0": {"type": "image", "url": "https://images.example.com/start.jpg"},
        "frame1": {"type": "image", "url": "https://images.example.com/end.jpg"},
    }


def test_extend_reverse_and_interpolate_send_generation_keyframes(luma, lsim):
    first = submit(luma, "the first clip")
    second = submit(luma, "the second clip")
    complete(lsim, first)
    complete(lsim, second)

    extended = submit(luma, "and then", start_generation=first)
    reversed_ = submit(luma, "before that", end_generation=first)
    between = submit(luma, "from one to the other", start_generation=first, end_generation=second)
    ending_on_image = submit(
        luma, "to a still", start_generation=first, image_end_url="https://i.example.com/e.jpg"
    )

    assert echoed(lsim, extended)["request"]["keyframes"] == {
        "frame0": {"type": "generation", "id": first}
    }
    assert echoed(lsim, reversed_)["request"]["keyframes"] == {
        "frame1": {"type": "generation", "id": first}
    }
    assert echoed(lsim, between)["request"]["keyframes"] == {
        "frame0": {"type": "generation", "id": first},
        "frame1": {"type": "generation", "id": second},
    }
    assert echoed(lsim, ending_on_image)["request"]["keyframes"] == {
        "frame0": {"type": "generation", "id": first},
        "frame1": {"type": "image", "url": "https://i.example.com/e.jpg"},
    }


# --- what it reads --------------------------------------------------------------------------------
def test_poll_maps_the_generation_and_never_takes_the_progress_video(luma, lsim):
    remote_id = submit(luma, "a slow tide")

    def dreaming_with_a_preview():
        raw = echoed(lsim, remote_id)
        return raw if raw["state"] == "dreaming" and raw["assets"].get("progress_video") else None

    raw = wait_for(dreaming_with_a_preview, timeout=10, what="a dreaming generation")
    assert raw["assets"]["progress_video"]
    (gen,) = luma.poll([remote_id])
    assert gen.id == remote_id
    assert gen.state == "dreaming"
    assert gen.video_url == ""  # the preview is not the video
    assert gen.prompt == "a slow tide"
    assert gen.estimate_wait_seconds is None

    complete(lsim, remote_id)
    (gen,) = luma.poll([remote_id])
    raw = echoed(lsim, remote_id)
    assert gen.state == "completed"
    assert gen.video_url == raw["assets"]["video"]
    assert gen.video_url != raw["assets"].get("progress_video")
    assert gen.thumbnail_url == raw["assets"]["image"]
    assert gen.created_at is not None
    assert (gen.width, gen.height) == (0, 0)


def test_poll_leaves_out_ids_the_service_does_not_know(luma, lsim):
    known = submit(luma)
    answer = luma.poll(["00000000-0000-4000-8000-000000000000", known])
    assert [gen.id for gen in answer] == [known]


def test_a_failed_generation_carries_its_reason(luma, lsim):
    lsim.configure(fail_rate=1.0)
    remote_id = submit(luma, "doomed")
    gen = wait_for(
        lambda: next((g for g in luma.poll([remote_id]) if g.state == "failed"), None),
        timeout=10,
        what="the generation to fail",
    )
    assert gen.failure_reason
    assert gen.video_url == ""


# --- failures -------------------------------------------------------------------------------------
def test_a_rate_limit_is_retryable_with_its_retry_after(luma, lsim):
    lsim.configure(rate_limit_rate=1.0, retry_after=7)
    with pytest.raises(RetryableError) as caught:
        submit(luma)
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 7
    assert lsim.ledger()["posts"] == []


def test_a_refused_body_is_permanent_with_the_services_detail(luma, lsim):
    with pytest.raises(PermanentError) as caught:
        submit(luma, aspect_ratio="5:4")
    assert caught.value.status_code == 400
    assert "aspect" in caught.value.message.lower()


def test_a_read_time_out_on_create_is_an_unknown_outcome_after_exactly_one_post(lsim):
    lsim.configure(slow_rate=1.0, slow_seconds=3)
    impatient = Luma(lsim.api_url, KEY, connect_timeout=2, read_timeout=0.5)
    with pytest.raises(OutcomeUnknownError):
        submit(impatient, "did it start?")
    ledger = lsim.ledger()
    assert len(ledger["post_times"]) == 1  # never sent again, by us or by urllib3
    assert len(ledger["posts"]) == 1  # and it did start one


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, OutcomeUnknownError), (502, OutcomeUnknownError), (503, RetryableError)],
)
def test_a_server_error_on_create_may_have_started_a_job_unless_it_says_not_now(
    luma, lsim, status, kind
):
    lsim.configure(error_rate=1.0, error_status=status)
    with pytest.raises(kind) as caught:
        submit(luma)
    assert caught.value.status_code == status
    assert type(caught.value) is kind


def test_a_server_error_on_a_poll_is_retryable(luma, lsim):
    remote_id = submit(luma)
    lsim.configure(error_rate=1.0, error_status=500)
    with pytest.raises(RetryableError):
        luma.poll([remote_id])


def test_nobody_listening_is_retryable(lsim):
    from devtools.simulator_process import free_port

    nowhere = Luma(f"http://127.0.0.1:{free_port()}/v1", KEY, connect_timeout=1, read_timeout=1)
    with pytest.raises(RetryableError):
        submit(nowhere)


def test_a_wrong_key_is_permanent_and_never_shown(lsim, caplog):
    wrong = "lk-wrong-0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d"
    caplog.set_level(logging.DEBUG)
    provider = Luma(lsim.api_url, wrong, connect_timeout=2, read_timeout=5)
    cache.delete(provider.concepts_cache_key())
    with pytest.raises(PermanentError) as caught:
        submit(provider)
    assert caught.value.status_code == 401
    assert provider.concepts() == []  # refused too: logged, none offered
    lookup = provider.find_created(
        Submission(GenerationRequest(user_prompt="x")), timezone.now(), timezone.now()
    )
    assert not lookup.decided
    for text in (str(caught.value), caught.value.message, caplog.text, repr(provider)):
        assert wrong not in text and KEY not in text


def test_a_key_the_service_echoes_back_is_redacted(lsim, caplog):
    """A service may quote what it was sent; here a prompt that (by mistake) holds the key. The
    key is shaped like no credential and is not the configured one: only the provider's own
    ``redact.remember`` can hide it."""
    odd_key = "Quokka7Moonbeam7Lantern"
    lsim.configure(api_key=odd_key)
    caplog.set_level(logging.DEBUG)
    provider = Luma(lsim.api_url, odd_key, connect_timeout=2, read_timeout=5)
    gen = provider.submit(Submission(GenerationRequest(user_prompt=f"a cat named {odd_key}")))
    (polled,) = provider.poll([gen.id])
    assert odd_key not in gen.prompt and odd_key not in polled.prompt
    assert polled.prompt.startswith("a cat named ")
    assert odd_key not in caplog.text


# --- find_created ---------------------------------------------------------------------------------
def window() -> tuple:
    return timezone.now() - timedelta(seconds=1), timezone.now()


def test_find_created_finds_the_generation_a_timed_out_post_made(lsim):
    submit(Luma(lsim.api_url, KEY), "someone else's clip")
    lsim.configure(slow_rate=1.0, slow_seconds=2)
    impatient = Luma(lsim.api_url, KEY, connect_timeout=2, read_timeout=0.3)
    submission = Submission(
        GenerationRequest(user_prompt="did it start?", model="ray-flash-2", duration="9s"),
        start_generation="",
    )
    since = timezone.now()
    with pytest.raises(OutcomeUnknownError):
        impatient.submit(submission)
    until = timezone.now()
    lsim.configure(slow_rate=0.0)
    made = lsim.ledger()["posts"][-1]["id"]

    lookup = Luma(lsim.api_url, KEY).find_created(submission, since, until)
    assert lookup.decided
    assert lookup.found is not None and lookup.found.id == made


def test_find_created_tells_a_different_request_apart(luma, lsim, monkeypatch):
    monkeypatch.setattr(luma_module, "LIST_SETTLE", timedelta(0))  # the list is current
    first = submit(luma, "the first clip")
    complete(lsim, first)
    base = {
        "user_prompt": "the same prompt",
        "model": "ray-2",
        "resolution": "720p",
        "duration": "5s",
        "loop": True,
        "aspect_ratio": "16:9",
        "start_generation": first,
        "image_end_url": "https://i.example.com/e.jpg",
    }
    since = timezone.now()
    ours = submit(luma, **{"prompt" if k == "user_prompt" else k: v for k, v in base.items()})
    until = timezone.now()

    def lookup(**changes):
        values = {**base, **changes}
        rest = {k: values.pop(k) for k in ("start_generation", "end_generation") if k in values}
        return luma.find_created(Submission(GenerationRequest(**values), **rest), since, until)

    answer = lookup(user_prompt="another prompt")
    assert answer.decided and answer.found is None
    # Our prompt with another option or keyframe may be ours, echoed normalised (an
    # extension's aspect ratio becomes its source's): undecided, never "nothing made".
    for different in (
        {"model": "ray-flash-2"},
        {"resolution": "1080p"},
        {"duration": "9s"},
        {"loop": False},
        {"aspect_ratio": "1:1"},
        {"start_generation": "another-id"},
        {"start_generation": "", "image_url": "https://i.example.com/s.jpg"},
        {"image_end_url": "https://i.example.com/other.jpg"},
        {"image_end_url": ""},
        {"image_end_url": "", "end_generation": first},
    ):
        answer = lookup(**different)
        assert not answer.decided, different
    answer = lookup()
    assert answer.decided and answer.found is not None and answer.found.id == ours


def test_find_created_decides_nothing_when_newer_items_prove_the_list_current(
    luma, lsim, monkeypatch
):
    monkeypatch.setattr(luma_module, "LIST_SETTLE", timedelta(days=1))  # time proves nothing
    submission = Submission(GenerationRequest(user_prompt="never sent"))
    since = timezone.now() - timedelta(minutes=10)
    until = timezone.now() - timedelta(minutes=5)
    submit(luma, "made just now, after the window")
    lookup = luma.find_created(submission, since, until)
    assert lookup.decided and lookup.found is None


def test_find_created_is_undecided_while_the_list_may_lag(luma, lsim):
    submission = Submission(GenerationRequest(user_prompt="maybe sent"))
    since, until = window()
    lookup = luma.find_created(submission, since, until)
    assert not lookup.decided
    # the same question, once LIST_SETTLE has passed since the POST: nothing was made
    lookup = luma.find_created(
        submission, since - timedelta(minutes=5), until - timedelta(minutes=5)
    )
    assert lookup.decided and lookup.found is None


def test_find_created_with_two_identical_requests_is_undecided(luma, lsim, monkeypatch):
    monkeypatch.setattr(luma_module, "LIST_SETTLE", timedelta(0))  # the list is current
    since = timezone.now()
    submit(luma, "pressed twice")
    submit(luma, "pressed twice")
    until = timezone.now()
    submit(luma, "something newer")
    submission = Submission(GenerationRequest(user_prompt="pressed twice"))
    assert not luma.find_created(submission, since, until).decided


def test_find_created_is_undecided_when_the_list_cannot_be_read(luma, lsim):
    since, until = window()
    lsim.configure(error_rate=1.0, error_status=500)
    submission = Submission(GenerationRequest(user_prompt="anything"))
    assert not luma.find_created(submission, since - timedelta(hours=1), until).decided


def test_find_created_reads_several_pages_and_stops_at_the_window(luma, lsim, monkeypatch):
    monkeypatch.setattr(luma_module, "PAGE_SIZE", 2)
    since = timezone.now()
    submit(luma, "ours", model="ray-flash-2")
    until = timezone.now()
    for n in range(5):
        submit(luma, f"newer {n}")
    lookup = luma.find_created(
        Submission(GenerationRequest(user_prompt="ours", model="ray-flash-2")), since, until
    )
    assert lookup.decided and lookup.found is not None and lookup.found.prompt == "ours"
    # the simulator pages as asked: with 5 newer items, 2 a page, ours was on the third
    page = requests.get(
        f"{lsim.api_url}/generations",
        params={"limit": 2, "offset": 0},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    ).json()
    assert len(page["generations"]) == 2 and page["has_more"]


def test_find_created_gives_up_after_too_many_pages(luma, lsim, monkeypatch):
    monkeypatch.setattr(luma_module, "LIST_SETTLE", timedelta(0))  # the list is current
    monkeypatch.setattr(luma_module, "PAGE_SIZE", 1)
    monkeypatch.setattr(luma_module, "MAX_PAGES", 2)
    since = timezone.now()
    for n in range(4):
        submit(luma, f"in the window {n}")
    until = timezone.now()
    submission = Submission(GenerationRequest(user_prompt="not there"))
    assert not luma.find_created(submission, since, until).decided


# --- credits, concepts ----------------------------------------------------------------------------
def test_credit_balance_is_the_services_us_cents(luma, lsim):
    lsim.configure(credits=12_345)
    assert luma.credit_balance() == 12_345.0
    submit(luma, model="ray-flash-2", resolution="540p")  # the simulator charges its own price
    assert luma.credit_balance() < 12_345.0


def test_credit_balance_is_none_when_it_cannot_be_read(luma, lsim, caplog):
    lsim.configure(error_rate=1.0, error_status=502)
    with caplog.at_level(logging.WARNING, logger="generations.providers.luma"):
        assert luma.credit_balance() is None
    assert "could not be read" in caplog.text and KEY not in caplog.text


def test_concepts_are_listed_and_cached(luma, lsim):
    cache.delete(luma.concepts_cache_key())
    concepts = luma.concepts()
    assert "dolly_zoom" in concepts
    lsim.configure(error_rate=1.0, error_status=503)
    assert luma.concepts() == concepts  # from the cache: the service was not asked


def test_concepts_fall_back_to_none_with_a_log_line(luma, lsim, caplog):
    cache.delete(luma.concepts_cache_key())
    lsim.configure(error_rate=1.0, error_status=503)
    with caplog.at_level(logging.WARNING, logger="generations.providers.luma"):
        assert luma.concepts() == []
    assert "offering none" in caplog.text
    assert KEY not in caplog.text
    # kept a while: each page drawing the picker does not wait for a service that is down
    asked = lsim.ledger()["requests"]
    lsim.configure(error_rate=0.0)
    assert luma.concepts() == []
    assert lsim.ledger()["requests"] == asked


# --- prices ---------------------------------------------------------------------------------------
def test_unit_cost_by_model_resolution_and_duration(luma):
    assert luma.unit_cost(GenerationRequest(user_prompt="x")) == 71  # ray-2, 720p, 5s
    assert (
        luma.unit_cost(GenerationRequest(user_prompt="x", model="ray-flash-2", resolution="1080p"))
        == 55
    )
    assert luma.unit_cost(GenerationRequest(user_prompt="x", duration="9s")) == 128
    assert luma.capabilities.cost_unit == "credits"


def test_the_price_table_setting_overrides_the_defaults(luma, settings):
    settings.LUMA_PRICE_TABLE = {"ray-2:720p:5s": 99}
    assert luma.unit_cost(GenerationRequest(user_prompt="x")) == 99
    assert luma.unit_cost(GenerationRequest(user_prompt="x", model="ray-flash-2")) == 25


def test_a_combination_without_a_price_is_never_free(luma, settings):
    settings.LUMA_PRICE_TABLE = {"ray-3:720p:5s": 500}
    assert luma.unit_cost(GenerationRequest(user_prompt="x", model="ray-3")) == 500
    assert luma.unit_cost(GenerationRequest(user_prompt="x", model="ray-3", resolution="4k")) == 500


def test_price_table_env_accepts_json_and_pairs(monkeypatch):
    monkeypatch.setenv("LUMA_PRICE_TABLE", '{"ray-2:720p:5s": 80, "RAY-FLASH-2:540p:9s": 30}')
    assert env_price_table("LUMA_PRICE_TABLE") == {"ray-2:720p:5s": 80, "ray-flash-2:540p:9s": 30}
    monkeypatch.setenv("LUMA_PRICE_TABLE", "ray-2:720p:5s=80, ray-2:4k:9s=1200")
    assert env_price_table("LUMA_PRICE_TABLE") == {"ray-2:720p:5s": 80, "ray-2:4k:9s": 1200}
    monkeypatch.setenv("LUMA_PRICE_TABLE", "")
    assert env_price_table("LUMA_PRICE_TABLE") == {}


@pytest.mark.parametrize(
    "raw",
    [
        "ray-2:720p:5s",  # no price
        "ray-2:720p=80",  # no duration
        "ray-2:720p:5s=-1",
        "ray-2:720p:5s=0.5",
        "ray-2:720p:5s=lots",
        "{not json",
        "[1, 2]",
        '{"ray-2:720p:5s": true}',
    ],
)
def test_a_malformed_price_table_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("LUMA_PRICE_TABLE", raw)
    with pytest.raises(ImproperlyConfigured, match="LUMA_PRICE_TABLE"):
        env_price_table("LUMA_PRICE_TABLE")


def test_find_created_stops_reading_at_the_start_of_the_window(luma, lsim, monkeypatch):
    monkeypatch.setattr(luma_module, "LIST_SETTLE", timedelta(0))  # the list is current
    monkeypatch.setattr(luma_module, "CLOCK_SKEW", timedelta(0))
    monkeypatch.setattr(luma_module, "PAGE_SIZE", 1)
    monkeypatch.setattr(luma_module, "MAX_PAGES", 2)
    for n in range(4):
        submit(luma, f"long before {n}")
    since = until = timezone.now()  # after all four (one clock: the same machine's)
    # one page: its item is older than the window, so nothing in the window was made
    lookup = luma.find_created(Submission(GenerationRequest(user_prompt="x")), since, until)
    assert lookup.decided and lookup.found is None
