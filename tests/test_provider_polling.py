"""Polling a provider that cannot batch (one GET per id, as Luma's API): at most
``LUMA_POLL_MAX_REQUESTS`` GETs a poll interval, longest-due rows first, counted at the
simulator. Batched providers poll as before.

Until the Luma provider and the simulator's Luma dialect are merged, the provider here is
UmamiAI with ``poll_batch=1``: real GETs to the simulator, one id each.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from generations import pipeline, providers
from generations.models import Generation
from generations.pipeline import poll
from generations.providers.umamiai import UmamiAI
from tests.factories import in_progress_row, remote_create


class OneByOne(UmamiAI):
    capabilities = replace(UmamiAI.capabilities, poll_batch=1)


@pytest.fixture
def one_by_one(monkeypatch, settings, sim):
    provider = OneByOne()
    monkeypatch.setattr(providers, "current", lambda: provider)
    settings.LUMA_POLL_INTERVAL = 3600  # one budget window for the whole test
    cache.delete(poll.budget_key())
    yield provider
    cache.delete(poll.budget_key())


def in_flight(sim, count: int) -> list[Generation]:
    """``count`` rows in flight, the first the longest due."""
    now = timezone.now()
    rows = []
    for i in range(count):
        row = in_progress_row(remote_create(sim, f"clip {i}")["id"], f"clip {i}")
        Generation.objects.filter(pk=row.pk).update(next_poll_at=now - timedelta(seconds=count - i))
        rows.append(row)
    return rows


def polled(rows: list[Generation]) -> list[Generation]:
    return [r for r in rows if Generation.objects.get(pk=r.pk).last_polled_at is not None]


def test_one_get_per_id_never_more_than_the_budget_a_round(db, sim, settings, one_by_one):
    settings.LUMA_POLL_MAX_REQUESTS = 7
    rows = in_flight(sim, 30)
    before = sim.ledger()
    stats = pipeline.poll_in_flight()
    after = sim.ledger()
    assert after["get_requests"] - before["get_requests"] == 7
    assert after["get_ids"] - before["get_ids"] == 7  # one id a GET
    assert stats.requests == 7 and stats.due == 7
    assert polled(rows) == rows[:7]  # the longest due first
    # The rest stay due for the next round.
    assert Generation.objects.due_for_poll(timezone.now()).count() == 23


def test_a_second_round_in_the_same_interval_asks_nothing(db, sim, settings, one_by_one):
    """A round woken early (a provider's callback) shares the interval's budget."""
    settings.LUMA_POLL_MAX_REQUESTS = 5
    rows = in_flight(sim, 12)
    pipeline.poll_in_flight()
    before = sim.ledger()["get_requests"]
    stats = pipeline.poll_in_flight()
    assert sim.ledger()["get_requests"] == before
    assert stats.requests == 0 and stats.due == 0
    assert len(polled(rows)) == 5


def test_every_row_is_polled_in_turn_within_the_budget(db, sim, settings, one_by_one):
    settings.LUMA_POLL_MAX_REQUESTS = 4
    rows = in_flight(sim, 10)
    rounds = []
    for _ in range(3):
        cache.delete(poll.budget_key())  # the next interval
        before = sim.ledger()["get_requests"]
        pipeline.poll_in_flight()
        rounds.append(sim.ledger()["get_requests"] - before)
    assert rounds == [4, 4, 2]
    assert polled(rows) == rows


def test_the_budget_is_given_back_when_few_rows_are_due(db, sim, settings, one_by_one):
    settings.LUMA_POLL_MAX_REQUESTS = 6
    in_flight(sim, 2)
    pipeline.poll_in_flight()
    assert cache.get(poll.budget_key()) == 2  # what was spent, not what was reserved
    rows = in_flight(sim, 8)
    before = sim.ledger()["get_requests"]
    pipeline.poll_in_flight()
    assert sim.ledger()["get_requests"] - before == 4
    assert len(polled(rows)) == 4


def test_batched_provider_still_polls_in_batches_whatever_the_budget(db, sim, settings):
    settings.LUMA_POLL_MAX_REQUESTS = 1
    for i in range(60):
        in_progress_row(remote_create(sim, f"clip {i}")["id"])
    before = sim.ledger()["get_requests"]
    stats = pipeline.poll_in_flight()
    assert sim.ledger()["get_requests"] - before == 2
    assert stats.due == 60
