"""The pipeline with ``LUMA_PROVIDER=luma`` against the simulator's luma dialect, over real
HTTP: polling within the request budget, POSTs of unknown outcome decided by Luma's list,
credits checked before sending, and Luma's callbacks reaching ``/hooks/upstream/<token>/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.core.cache import cache
from django.utils import timezone

from devtools.simulator_process import SimulatorProcess
from generations import actions, callback_tokens, pipeline
from generations.inputs import GenerationRequest
from generations.models import AccountHold, Generation, HoldCause, Status
from generations.pipeline import hold, lookup, poll
from tests.conftest import purge_broker, wait_for
from tests.factories import in_progress_row, make_user

KEY = "lk-test-pipeline-luma-0123456789abcdef"
PRICE = 71  # ray-2, 720p, 5s: the default request, in US cents


@pytest.fixture(scope="module")
def luma_simulator() -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(dialect="luma", duration=2, video_seconds=1, seed=5)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def lsim(luma_simulator: SimulatorProcess, settings) -> Iterator[SimulatorProcess]:
    luma_simulator.reset(restore_config=True)
    luma_simulator.configure(api_key=KEY)
    settings.LUMA_PROVIDER = "luma"
    settings.LUMA_API_BASE_URL = luma_simulator.api_url
    settings.LUMA_API_KEY = KEY
    settings.LUMA_POLL_INTERVAL = 3600  # one poll budget window for the whole test
    cache.delete(poll.budget_key())
    hold.forget_balance()
    yield luma_simulator
    cache.delete(poll.budget_key())
    hold.forget_balance()


def queue(prompt: str) -> Generation:
    return actions.create_generation(
        make_user(), GenerationRequest(user_prompt=prompt, aspect_ratio="16:9")
    )


def requests_seen(sim: SimulatorProcess) -> int:
    return sim.ledger()["requests"]


def test_polling_is_one_get_per_id_within_the_budget(db, lsim, settings):
    settings.LUMA_POLL_MAX_REQUESTS = 5
    settings.LUMA_MAX_IN_FLIGHT = 0  # 12 in flight at once
    rows = []
    for i in range(12):
        gen = queue(f"clip {i}")
        assert pipeline.submit(gen.pk).result == "accepted"
        rows.append(gen.pk)
    Generation.objects.filter(pk__in=rows).update(next_poll_at=timezone.now())
    before = requests_seen(lsim)
    stats = pipeline.poll_in_flight()
    assert requests_seen(lsim) - before == 5  # 5 GETs, 12 rows in flight
    assert stats.requests == 5 and stats.errors == 0
    assert stats.outcomes.get("running", 0) + stats.outcomes.get("completed", 0) == 5
    before = requests_seen(lsim)
    assert pipeline.poll_in_flight().requests == 0  # the interval's budget is spent
    assert requests_seen(lsim) == before


def test_a_post_that_started_a_job_is_found_in_lumas_list(db, lsim):
    lsim.configure(error_after_create_rate=1.0)
    gen = queue("a heron at dawn")
    assert pipeline.submit(gen.pk).result == "accepted"
    gen.refresh_from_db()
    posts = [p for p in lsim.ledger()["posts"] if p["user_prompt"] == gen.user_prompt]
    assert len(posts) == 1
    assert gen.status == Status.IN_PROGRESS and gen.remote_id == posts[0]["id"]
    assert gen.posts_sent == 1
    assert lookup.resolved_by_list()["found"] == 1


def test_a_post_that_made_nothing_is_sent_again_once_the_list_is_current(db, lsim, settings):
    """Right after the POST Luma's list may lag, so it cannot tell at once: the sweeper's
    second look, once the list is current, decides "nothing"."""
    settings.LUMA_LIST_LOOKUP_AGAIN_AFTER = 0
    lsim.configure(error_rate=1.0, error_status=502)
    gen = queue("a heron at dusk")
    assert pipeline.submit(gen.pk).result == "needs-attention"
    lsim.configure(error_rate=0.0)
    # A minute later (the list is current 30 s after the POST ended):
    minute_ago = timezone.now() - timedelta(minutes=1)
    Generation.objects.filter(pk=gen.pk).update(
        post_started_at=minute_ago, status_changed_at=minute_ago
    )
    stats = pipeline.sweep()
    assert stats.sent_again == 1 and gen.pk in stats.to_submit
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED and gen.posts_sent == 0
    assert pipeline.submit(gen.pk).result == "accepted"
    assert [p["user_prompt"] for p in lsim.ledger()["posts"]].count(gen.user_prompt) == 1
    assert lookup.resolved_by_list()["nothing_made"] == 1


def test_too_few_credits_hold_the_account_before_sending(db, lsim):
    lsim.configure(credits=PRICE - 1)
    gen = queue("a lantern in fog")
    assert pipeline.submit(gen.pk).result == "held"
    assert lsim.ledger()["post_times"] == []
    held = hold.current()
    assert held is not None and held.cause == HoldCause.CREDITS
    lsim.configure(credits=PRICE)  # topped up
    AccountHold.objects.update(retry_at=timezone.now())
    assert pipeline.sweep().probe == gen.pk
    assert pipeline.submit(gen.pk).result == "accepted"
    assert hold.current() is None


@pytest.fixture
def broker(redis_url):
    purge_broker(redis_url)
    yield redis.Redis.from_url(redis_url)
    purge_broker(redis_url)


def test_lumas_callback_reaches_the_hook_and_makes_the_poll_due(
    transactional_db, live_server, settings, broker
):
    """The simulator calls back (as Luma does) on the address sent with the POST; the hook
    makes the row's poll due and wakes the poller."""
    sim = SimulatorProcess(
        dialect="luma", duration=1, video_seconds=1, seed=3, allow_fetch_from=live_server.url
    )
    sim.start()
    try:
        sim.configure(api_key=KEY)
        settings.LUMA_PROVIDER = "luma"
        settings.LUMA_API_BASE_URL = sim.api_url
        settings.LUMA_API_KEY = KEY
        settings.PUBLIC_BASE_URL = live_server.url
        gen = queue("a kite over dunes")
        assert pipeline.submit(gen.pk).result == "accepted"
        Generation.objects.filter(pk=gen.pk).update(
            next_poll_at=timezone.now() + timedelta(hours=1)
        )
        token = callback_tokens.token_for(gen.pk)
        calls = wait_for(
            lambda: [c for c in sim.ledger()["callbacks"] if c.get("status")],
            timeout=20,
            what="a callback from the simulator",
        )
        assert calls[0]["status"] == 204
        assert calls[0]["url"].endswith(f"/hooks/upstream/{token}/")
        gen.refresh_from_db()
        assert gen.next_poll_at <= timezone.now()
        wakeups = [
            json.loads(raw)["headers"]["task"]
            for queue in ("celery", settings.LUMA_POLL_QUEUE)  # poll rounds have their own
            for raw in broker.lrange(queue, 0, -1)
        ]
        assert "generations.tasks.poll_in_flight" in wakeups
    finally:
        sim.stop()


def test_umamiai_rows_are_untouched_by_the_luma_settings(db, sim, settings):
    """The default provider: batched polling, no budget, no credits, no callbacks."""
    settings.LUMA_POLL_MAX_REQUESTS = 1
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    from tests.factories import remote_create

    for i in range(3):
        in_progress_row(remote_create(sim, f"clip {i}")["id"])
    assert pipeline.poll_in_flight().requests == 1
