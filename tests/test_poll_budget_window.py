"""A poll round of a provider that cannot batch spends its interval's budget in that interval:
when the interval ends while the round is still asking (a slow service, a busy machine), the
rows not yet asked are left due for the next round, which has the next interval's budget. So
the service never sees more than ``LUMA_POLL_MAX_REQUESTS`` GETs in one interval of the clock
(the chaos run with Luma counts them at the simulator: a round leased at the end of one
interval used to send its GETs in the next, beside that interval's own).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.utils import timezone

from generations import pipeline, providers
from generations.models import Generation
from generations.pipeline import poll
from generations.providers.umamiai import UmamiAI
from tests.factories import in_progress_row, remote_create

INTERVAL = 10.0
START = 1_000_000 * INTERVAL + 1.0  # one second into an interval of the (test's) clock


class SlowOneByOne(UmamiAI):
    """One id a GET (real GETs to the simulator); each GET takes the test's clock on by
    ``step`` seconds."""

    capabilities = replace(UmamiAI.capabilities, poll_batch=1)

    def __init__(self, clock: SimpleNamespace, step: float) -> None:
        super().__init__()
        self.clock, self.step = clock, step

    def poll(self, remote_ids):
        answers = super().poll(remote_ids)
        self.clock.now += self.step
        return answers


@pytest.fixture
def clock(monkeypatch, settings):
    now = SimpleNamespace(now=START)
    monkeypatch.setattr(poll, "time", SimpleNamespace(time=lambda: now.now))
    settings.LUMA_POLL_INTERVAL = INTERVAL
    yield now
    for moment in (START, START + INTERVAL):
        cache.delete(poll.budget_key(moment))


def in_flight(sim, count: int) -> list[Generation]:
    now = timezone.now()
    rows = []
    for i in range(count):
        row = in_progress_row(remote_create(sim, f"clip {i}")["id"], f"clip {i}")
        Generation.objects.filter(pk=row.pk).update(next_poll_at=now - timedelta(seconds=count - i))
        rows.append(row)
    return rows


def test_a_round_stops_asking_when_its_interval_is_over(db, sim, settings, clock, monkeypatch):
    settings.LUMA_POLL_MAX_REQUESTS = 6
    provider = SlowOneByOne(clock, step=3.0)  # the 3rd GET ends past the interval's end
    monkeypatch.setattr(providers, "current", lambda: provider)
    rows = in_flight(sim, 6)
    before = sim.ledger()["get_requests"]
    stats = pipeline.poll_in_flight()
    assert sim.ledger()["get_requests"] - before == 3  # asked at 1 s, 4 s, 7 s; not at 10 s
    assert stats.requests == 3 and stats.due == 6
    asked = [r for r in rows if Generation.objects.get(pk=r.pk).last_polled_at is not None]
    assert len(asked) == 3
    # The three not asked are due again at once, for the next interval's round.
    assert Generation.objects.due_for_poll(timezone.now()).count() == 3
    before = sim.ledger()["get_requests"]
    provider.step = 0.0
    assert pipeline.poll_in_flight().requests == 3
    assert sim.ledger()["get_requests"] - before == 3


def test_a_round_whose_lease_outlasts_its_interval_still_asks(
    db, sim, settings, clock, monkeypatch
):
    """On a loaded machine the lease (a few queries) can take longer than what is left of the
    interval the round started in. The budget belongs to the interval the GETs are sent in:
    a round that gave back every row whenever its lease ended in the next interval asked
    nothing, round after round (the Luma chaos run in CI: 29 GETs in 420 s, 22 jobs unfinished)."""
    settings.LUMA_POLL_MAX_REQUESTS = 6
    provider = SlowOneByOne(clock, step=0.0)
    monkeypatch.setattr(providers, "current", lambda: provider)
    real_lease = poll.lease_due_rows

    def slow_lease(limit):
        leased = real_lease(limit)
        clock.now += INTERVAL - 0.5  # from 1 s into the interval to 0.5 s into the next one
        return leased

    monkeypatch.setattr(poll, "lease_due_rows", slow_lease)
    in_flight(sim, 6)
    before = sim.ledger()["get_requests"]
    stats = pipeline.poll_in_flight()
    assert stats.requests == 6
    assert sim.ledger()["get_requests"] - before == 6
    assert Generation.objects.filter(last_polled_at__isnull=False).count() == 6
    # counted in the interval they were sent in, which has nothing left for another poller
    assert cache.get(poll.budget_key(clock.now)) == 6


def test_gets_another_poller_spent_in_the_interval_count_against_a_round(
    db, sim, settings, clock, monkeypatch
):
    """Two pollers at once (beat's round and one a callback woke) share one budget: each GET
    takes its slot when it is sent, so what the other spent after this round leased is not
    sent again on top of it."""
    settings.LUMA_POLL_MAX_REQUESTS = 6
    provider = SlowOneByOne(clock, step=0.0)
    monkeypatch.setattr(providers, "current", lambda: provider)
    real_lease = poll.lease_due_rows

    def lease_then_other_poller_asks(limit):
        leased = real_lease(limit)
        cache.add(poll.budget_key(), 0)
        cache.incr(poll.budget_key(), 4)  # the other poller's GETs, sent meanwhile
        return leased

    monkeypatch.setattr(poll, "lease_due_rows", lease_then_other_poller_asks)
    in_flight(sim, 6)
    before = sim.ledger()["get_requests"]
    stats = pipeline.poll_in_flight()
    assert stats.due == 6 and stats.requests == 2
    assert sim.ledger()["get_requests"] - before == 2
    assert cache.get(poll.budget_key()) == 6
    assert Generation.objects.due_for_poll(timezone.now()).count() == 4  # due again at once
