"""Polling: batches, states, the completed-before-URL trap and deadlines, over real HTTP."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

from generations import pipeline
from generations.models import Generation, Status
from tests.factories import in_progress_row, remote_create


def test_100_in_flight_rows_are_polled_in_at_most_2_gets(db, sim):
    rows = [in_progress_row(remote_create(sim, f"clip {i}")["id"], f"clip {i}") for i in range(100)]
    before = sim.ledger()["get_requests"]
    stats = pipeline.poll_in_flight()
    assert sim.ledger()["get_requests"] - before <= 2
    assert stats.due == 100 and stats.requests == 2
    polled = Generation.objects.filter(pk__in=[r.pk for r in rows], last_polled_at__isnull=False)
    assert polled.count() == 100


def test_poll_batch_size_is_configurable(db, sim, settings):
    settings.LUMA_POLL_BATCH_SIZE = 7
    for i in range(20):
        in_progress_row(remote_create(sim, f"clip {i}")["id"])
    before = sim.ledger()["get_requests"]
    pipeline.poll_in_flight()
    assert sim.ledger()["get_requests"] - before == 3


def test_rows_not_due_are_not_polled(db, sim):
    row = in_progress_row(remote_create(sim)["id"])
    Generation.objects.filter(pk=row.pk).update(next_poll_at=timezone.now() + timedelta(hours=1))
    before = sim.ledger()["get_requests"]
    assert pipeline.poll_in_flight().due == 0
    assert sim.ledger()["get_requests"] == before


def test_completed_generation_is_taken_with_its_video(db, sim):
    remote = remote_create(sim, "done soon")
    sim.force_complete(remote["id"])
    row = in_progress_row(remote["id"])
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.COMPLETED
    assert row.video_url.endswith(".mp4") and row.thumbnail_url.endswith(".jpg")
    assert row.width > 0 and row.height > 0
    assert row.assets_next_at is not None  # a copy is due


def test_completed_without_url_is_not_taken_as_done(db, sim):
    sim.configure(late_url_rate=1.0, late_url_seconds=1.5)
    remote = remote_create(sim)
    sim.force_complete(remote["id"])
    row = in_progress_row(remote["id"])
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.state == "completed"
    assert row.status == Status.IN_PROGRESS
    assert (row.next_poll_at - row.last_polled_at).total_seconds() <= 2.0
    time.sleep(1.6)
    Generation.objects.filter(pk=row.pk).update(next_poll_at=timezone.now())
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.COMPLETED and row.video_url


def test_unknown_state_is_tolerated_and_polled_on(db, sim):
    sim.configure(unknown_state_rate=1.0, duration=4)
    row = in_progress_row(remote_create(sim)["id"])
    seen = set()
    for _ in range(30):
        Generation.objects.filter(pk=row.pk).update(next_poll_at=timezone.now())
        pipeline.poll_in_flight()
        row.refresh_from_db()
        seen.add(row.state)
        if row.state not in {"pending", "queued", "processing", "dreaming"}:
            break
        time.sleep(0.1)
    unknown = seen - {"pending", "queued", "processing", "dreaming", "completed", "failed"}
    assert unknown, f"the simulator never showed an unknown state: {seen}"
    assert row.status == Status.IN_PROGRESS
    sim.force_complete(row.remote_id)
    Generation.objects.filter(pk=row.pk).update(next_poll_at=timezone.now())
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.COMPLETED


def test_failed_generation_keeps_the_upstream_reason(db, sim):
    sim.configure(fail_rate=1.0, duration=0.3)
    row = in_progress_row(remote_create(sim)["id"])
    time.sleep(0.5)
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.FAILED
    assert row.error


def test_generation_without_progress_past_the_deadline_times_out(db, sim, settings):
    settings.LUMA_POLL_DEADLINE = 60
    sim.configure(duration=3600)
    row = in_progress_row(remote_create(sim)["id"])
    pipeline.poll_in_flight()  # first answer: a state, which is progress
    old = timezone.now() - timedelta(minutes=5)
    Generation.objects.filter(pk=row.pk).update(last_progress_at=old, next_poll_at=old)
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.FAILED
    assert row.error.startswith("Timed out")


def test_poll_errors_back_off_and_never_time_out(db, sim, settings):
    settings.LUMA_POLL_DEADLINE = 60
    row = in_progress_row(remote_create(sim)["id"])
    old = timezone.now() - timedelta(minutes=5)
    Generation.objects.filter(pk=row.pk).update(last_progress_at=old)
    sim.configure(error_rate=1.0)
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.IN_PROGRESS
    assert row.poll_errors == 1
    assert row.next_poll_at > timezone.now()


def test_two_pollers_at_once_do_not_double_the_work(transactional_db, sim):
    for i in range(60):
        in_progress_row(remote_create(sim, f"clip {i}")["id"])
    before = sim.ledger()["get_ids"]
    results = []

    def run():
        results.append(pipeline.poll_in_flight())
        close_old_connections()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.due for r in results) == 60
    assert sim.ledger()["get_ids"] - before == 60


def test_a_refused_batch_is_split_so_one_bad_request_stalls_nothing(db, sim, settings):
    settings.LUMA_POLL_BATCH_SIZE = 150  # the simulator refuses more than 100 ids with a 400
    rows = [in_progress_row(remote_create(sim, f"clip {i}")["id"]) for i in range(150)]
    before = sim.ledger()["get_requests"]
    stats = pipeline.poll_in_flight()
    assert stats.errors == 1  # the 400 for all 150
    assert sim.ledger()["get_requests"] - before == 2  # then 75 + 75
    assert (
        Generation.objects.filter(pk__in=[r.pk for r in rows], last_polled_at__isnull=False).count()
        == 150
    )


def test_sweeper_enqueues_a_missing_copy_once(transactional_db, sim, redis_url):
    row = in_progress_row(remote_create(sim)["id"])
    Generation.objects.filter(pk=row.pk).update(
        status=Status.COMPLETED, assets_next_at=timezone.now()
    )
    assert pipeline.sweep().copies == 1
    assert pipeline.sweep().copies == 0  # already on its way
