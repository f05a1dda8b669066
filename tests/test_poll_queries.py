"""A poll round scales with batches, not rows: a batch's answers are applied in a fixed number
of statements, whatever the batch's size (real simulator, real database; PostgreSQL when
DATABASE_URL names one)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from generations import pipeline
from generations.models import Generation, Status, StatusEvent
from tests.factories import in_progress_row, remote_create


def _in_flight(sim, count: int) -> list[Generation]:
    return [in_progress_row(remote_create(sim, f"clip {i}")["id"]) for i in range(count)]


def test_a_50_row_batch_is_applied_in_3_queries(db, sim, settings, django_assert_max_num_queries):
    """Lease (one UPDATE), read the leased rows, write every answer (one UPDATE); and one more
    lease that finds nothing left due ends the round."""
    settings.LUMA_POLL_BATCH_SIZE = 50
    sim.configure(duration=3600)
    rows = _in_flight(sim, 50)
    with django_assert_max_num_queries(3 + 1):
        stats = pipeline.poll_in_flight()
    assert stats.due == 50 and stats.requests == 1
    assert stats.outcomes == {"running": 50}
    polled = Generation.objects.filter(pk__in=[r.pk for r in rows])
    assert (
        polled.filter(last_polled_at__isnull=False, state__in=pipeline.poll.RUNNING_STATES).count()
        == 50
    )
    assert polled.filter(next_poll_at__gt=timezone.now()).count() == 50


def test_the_queries_grow_with_batches_not_rows(db, sim, settings, django_assert_max_num_queries):
    settings.LUMA_POLL_BATCH_SIZE = 50
    sim.configure(duration=3600)
    _in_flight(sim, 200)
    with django_assert_max_num_queries(4 * 3 + 1):
        stats = pipeline.poll_in_flight()
    assert stats.due == 200 and stats.requests == 4


def test_a_round_goes_on_while_rows_are_due(db, sim, settings):
    """No fixed cap of batches a round (it was 20): 120 rows in 24 batches of 5, one round."""
    settings.LUMA_POLL_BATCH_SIZE = 5
    sim.configure(duration=3600)
    _in_flight(sim, 120)
    stats = pipeline.poll_in_flight()
    assert stats.due == 120 and stats.requests == 24
    assert Generation.objects.filter(last_polled_at__isnull=True).count() == 0


def test_finished_rows_of_a_batch_complete_together_with_their_history(
    db, sim, settings, django_assert_max_num_queries
):
    """Completions are batched too: one UPDATE, one read-back, one INSERT of their events."""
    settings.LUMA_POLL_BATCH_SIZE = 50
    sim.configure(duration=3600)
    rows = _in_flight(sim, 50)
    for row in rows[:20]:
        sim.force_complete(row.remote_id)
    with django_assert_max_num_queries(3 + 3 + 2 + 1):  # + a savepoint and its release (tests)
        stats = pipeline.poll_in_flight()
    assert stats.outcomes == {"completed": 20, "running": 30}
    assert sorted(stats.to_copy) == sorted(r.pk for r in rows[:20])
    done = Generation.objects.filter(pk__in=[r.pk for r in rows[:20]])
    assert done.filter(status=Status.COMPLETED, next_poll_at__isnull=True).count() == 20
    assert all(g.video_url.endswith(".mp4") and g.width > 0 for g in done)
    assert done.filter(assets_next_at__isnull=False, completed_at__isnull=False).count() == 20
    events = StatusEvent.objects.filter(generation__in=done, status=Status.COMPLETED)
    assert events.count() == 20 and {e.note for e in events} == {"video ready"}


def test_near_its_estimate_a_job_is_polled_within_the_interval(settings):
    settings.LUMA_POLL_INTERVAL = 5.0
    delay = pipeline.next_poll_delay
    assert delay(None) == 5.0  # no estimate: the interval
    assert delay(60) == 30.0  # far from the end: half the estimate
    assert delay(8) == 5.0  # within two intervals: the interval
    assert delay(3) == 3.25  # within one: just after the estimated end
    assert delay(0) == 1.0  # "any moment now": every second, still no later than the interval
    settings.LUMA_POLL_INTERVAL = 1.0
    assert delay(0) == 1.0 and delay(1) == 1.0 and delay(20) == 10.0


def test_a_row_answered_late_in_its_round_is_due_when_the_next_round_begins(db, settings):
    """The next poll counts from the round's start (a little early), so a row answered 3 s
    into a round is due for the round one interval later, not the one after."""
    from generations.client import RemoteGeneration
    from generations.pipeline.poll import plan_answer

    settings.LUMA_POLL_INTERVAL = 5.0
    now = timezone.now()
    started = now - timedelta(seconds=3)
    row = Generation(state="dreaming", submitted_at=now, last_progress_at=now)
    remote = RemoteGeneration.from_json({"id": "a", "state": "dreaming"})
    due = plan_answer(row, remote, now, started).fields["next_poll_at"]
    assert due <= started + timedelta(seconds=5)  # due when the next round begins
    assert due >= now + timedelta(seconds=1.25)  # not asked over and over in a long round


def test_rows_that_progressed_and_rows_that_did_not_share_one_update(
    db, sim, settings, django_assert_max_num_queries
):
    """``last_progress_at`` moves only for the rows whose state changed, in the same UPDATE."""
    settings.LUMA_POLL_BATCH_SIZE = 50
    sim.configure(duration=3600)
    rows = _in_flight(sim, 20)
    pipeline.poll_in_flight()
    old = timezone.now() - timedelta(minutes=1)
    ids = [r.pk for r in rows]
    Generation.objects.filter(pk__in=ids).update(next_poll_at=old, last_progress_at=old)
    Generation.objects.filter(pk__in=ids[:5]).update(state="")  # these five progress now
    with django_assert_max_num_queries(3 + 1):
        stats = pipeline.poll_in_flight()
    assert stats.outcomes == {"running": 20}
    moved = Generation.objects.filter(pk__in=ids, last_progress_at__gt=old)
    assert sorted(moved.values_list("pk", flat=True)) == sorted(ids[:5])
    assert Generation.objects.filter(pk__in=ids, last_polled_at__gt=old).count() == 20
