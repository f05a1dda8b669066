"""Credits in the hold: with a provider that tells the account's balance
(``capabilities.credits``), a job whose cost is above it is not sent at all; the account goes on
hold ("out of credits") at once instead of after a refusal. The balance is read at most once a
minute (Django's cache), afresh by the hold's probe. Never for a provider without a balance.

Until the Luma provider (``GET /credits``) is merged, the provider here is UmamiAI reading the
simulator's own balance (its ``credits`` setting) over real HTTP.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests
from django.core.cache import cache
from django.utils import timezone

from generations import actions, pipeline, providers
from generations.client import RetryableError
from generations.inputs import GenerationRequest
from generations.models import AccountHold, Generation, HoldCause, Status
from generations.pipeline import hold
from generations.providers.umamiai import UmamiAI
from tests.factories import make_user

COST = 500_000  # the simulator's price of one generation


class WithCredits(UmamiAI):
    capabilities = replace(UmamiAI.capabilities, credits=True)

    def __init__(self, sim) -> None:
        self.sim = sim
        self.base_url = sim.base_url
        self.reads = 0

    def credit_balance(self) -> float | None:
        self.reads += 1
        try:
            response = requests.get(
                f"{self.base_url}/_sim/config", headers=self.sim.control_headers, timeout=5
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            raise RetryableError("The balance could not be read.") from exc
        return float(response.json()["credits"])

    def unit_cost(self, request: GenerationRequest) -> int:
        return COST


@pytest.fixture
def with_credits(monkeypatch, sim):
    provider = WithCredits(sim)
    monkeypatch.setattr(providers, "current", lambda: provider)
    hold.forget_balance()
    yield provider
    hold.forget_balance()


def queue(prompt: str) -> Generation:
    return actions.create_generation(
        make_user(), GenerationRequest(user_prompt=prompt, aspect_ratio="16:9")
    )


def test_balance_below_the_cost_holds_the_account_without_sending(db, sim, with_credits):
    sim.configure(credits=COST - 1)
    gen = queue("a lantern in fog")
    assert pipeline.submit(gen.pk).result == "held"
    assert sim.ledger()["post_times"] == []  # nothing reached the service
    held = hold.current()
    assert held is not None and held.cause == HoldCause.CREDITS
    assert "balance" in held.reason
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED
    assert gen.posts_sent == 0 and gen.attempts == 0
    # Not sent again while on hold.
    assert pipeline.submit(gen.pk).result == "held"
    assert sim.ledger()["post_times"] == []


def test_enough_credits_sends(db, sim, with_credits):
    sim.configure(credits=COST)
    gen = queue("a lantern in fog")
    assert pipeline.submit(gen.pk).result == "accepted"
    assert hold.current() is None
    assert len(sim.ledger()["posts"]) == 1


def test_the_balance_is_read_once_a_minute_not_once_a_job(db, sim, with_credits):
    sim.configure(credits=COST * 10)
    for i in range(3):
        assert pipeline.submit(queue(f"clip {i}").pk).result == "accepted"
    assert with_credits.reads == 1


def test_the_probe_reads_the_balance_afresh_and_lifts_the_hold(db, sim, with_credits, settings):
    sim.configure(credits=0)
    gen = queue("a lantern in fog")
    assert pipeline.submit(gen.pk).result == "held"
    sim.configure(credits=COST)  # topped up; the cache still says 0
    AccountHold.objects.update(retry_at=timezone.now())  # the probe is due
    stats = pipeline.sweep()
    assert stats.probe == gen.pk
    outcome = pipeline.submit(gen.pk)
    assert outcome.result == "accepted" and outcome.wake_waiting
    assert hold.current() is None
    assert len(sim.ledger()["posts"]) == 1


def test_a_balance_that_cannot_be_read_lets_the_service_decide(db, sim, with_credits):
    sim.configure(credits=COST)
    with_credits.base_url = "http://127.0.0.1:9"  # nothing listens there
    gen = queue("a lantern in fog")
    assert pipeline.submit(gen.pk).result == "accepted"
    assert with_credits.reads == 1 and hold.current() is None


def test_a_provider_without_credits_is_never_held_by_them(db, sim):
    cache.set(hold.CREDITS_CACHE_KEY, 0, 60)  # a balance of 0 known: not UmamiAI's business
    try:
        gen = queue("a lantern in fog")
        assert pipeline.submit(gen.pk).result == "accepted"
        assert hold.current() is None
    finally:
        hold.forget_balance()
