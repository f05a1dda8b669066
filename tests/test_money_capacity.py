"""The account's capacity: at most LUMA_MAX_IN_FLIGHT generations sent and unfinished, at most
LUMA_MAX_SUBMITS_PER_MINUTE POSTs in any 60 s, and the free slots shared fairly between people.

Submits are driven directly (no worker) against the simulator over real HTTP, except the
``pipeline`` test at the end, which runs a real worker and beat of its own. The concurrency test
is meant for PostgreSQL (``DATABASE_URL``): there the advisory lock is what keeps twelve
threads from claiming more than three slots; on SQLite the IMMEDIATE transactions do.
"""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from generations import actions, pipeline
from generations.inputs import GenerationRequest
from generations.models import (
    Generation,
    Status,
    SubmitGrant,
    free_slots,
    slot_positions,
)
from tests.conftest import wait_for
from tests.factories import make_user, remote_create


def queue(user, count: int, prompt: str = "job") -> list[Generation]:
    return [
        actions.create_generation(user, GenerationRequest(user_prompt=f"{prompt} {i}"))
        for i in range(count)
    ]


def finish(gen: Generation) -> None:
    """The poller saw it complete: its slot is free."""
    Generation.objects.filter(pk=gen.pk).update(status=Status.COMPLETED)


@pytest.fixture
def caps(settings):
    """Set the two limits (0: no limit) for this test."""

    def set_caps(in_flight: int, per_minute: int) -> None:
        settings.LUMA_MAX_IN_FLIGHT = in_flight
        settings.LUMA_MAX_SUBMITS_PER_MINUTE = per_minute

    return set_caps


def test_concurrent_submits_of_twelve_rows_claim_exactly_the_three_free_slots(
    transactional_db, sim, caps
):
    caps(3, 0)
    rows = queue(make_user(), 12)
    start = threading.Barrier(len(rows))
    results: dict[str, str] = {}

    def submit(gen: Generation) -> None:
        try:
            start.wait()
            results[str(gen.pk)] = str(pipeline.submit(gen.pk).result)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(gen,)) for gen in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results.values()) == ["accepted"] * 3 + ["waiting"] * 9
    assert Generation.objects.filter(status=Status.IN_PROGRESS).count() == 3
    assert len(sim.ledger()["posts"]) == 3
    waiting = Generation.objects.filter(status=Status.QUEUED)
    assert waiting.count() == 9
    assert set(waiting.values_list("attempts", flat=True)) == {0}  # no attempt burnt
    assert SubmitGrant.objects.count() == 3


def test_a_row_refused_a_slot_stays_queued_due_and_is_claimed_once_a_slot_frees(db, sim, caps):
    caps(1, 0)
    first, second = queue(make_user(), 2)
    assert pipeline.submit(first.pk).result == "accepted"
    assert pipeline.submit(second.pk).result == "waiting"
    second.refresh_from_db()
    assert second.status == Status.QUEUED and second.attempts == 0 and second.posts_sent == 0
    assert [e.status for e in second.events.all()] == ["queued"]
    finish(first)
    assert pipeline.submit(second.pk).result == "accepted"


def test_no_limits_let_every_row_through(db, sim, caps):
    caps(0, 0)
    rows = queue(make_user(), 12)
    assert [str(pipeline.submit(gen.pk).result) for gen in rows] == ["accepted"] * 12
    assert free_slots(timezone.now()) is None
    assert not SubmitGrant.objects.exists()


def test_no_more_posts_in_sixty_seconds_than_the_rate_allows(db, sim, caps):
    caps(0, 5)
    rows = queue(make_user(), 8)
    results = [str(pipeline.submit(gen.pk).result) for gen in rows]
    assert results == ["accepted"] * 5 + ["waiting"] * 3
    assert len(sim.ledger()["posts"]) == 5
    # 59 s later the five are still inside the window...
    SubmitGrant.objects.update(at=timezone.now() - timedelta(seconds=59))
    assert pipeline.submit(rows[5].pk).result == "waiting"
    # ...and at 61 s they are not.
    SubmitGrant.objects.update(at=timezone.now() - timedelta(seconds=61))
    assert [str(pipeline.submit(gen.pk).result) for gen in rows[5:]] == ["accepted"] * 3
    assert len(sim.ledger()["posts"]) == 8


def test_a_post_the_service_refused_still_counts_towards_the_rate(db, sim, caps):
    caps(0, 1)
    first, second = queue(make_user(), 2)
    sim.configure(rate_limit_rate=1.0)
    assert pipeline.submit(first.pk).result == "retry"  # sent, refused with 429
    sim.configure(rate_limit_rate=0.0)
    assert pipeline.submit(second.pk).result == "waiting"
    assert sim.ledger()["posts"] == []


def test_needs_attention_holds_a_slot_until_its_post_is_older_than_the_poll_deadline(
    db, sim, caps, settings
):
    caps(1, 0)
    settings.LUMA_POLL_DEADLINE = 600
    user = make_user()
    flagged, waiting = queue(user, 2)
    Generation.objects.filter(pk=flagged.pk).update(
        status=Status.NEEDS_ATTENTION, posts_sent=1, post_started_at=timezone.now()
    )
    assert pipeline.submit(waiting.pk).result == "waiting"
    Generation.objects.filter(pk=flagged.pk).update(
        post_started_at=timezone.now() - timedelta(seconds=601)
    )
    assert pipeline.submit(waiting.pk).result == "accepted"


def test_a_colleagues_single_job_gets_one_of_the_first_free_slots_despite_a_batch_of_twenty(
    db, sim, caps
):
    caps(3, 0)
    batch = queue(make_user("ann"), 20, "ann's")
    single = queue(make_user("bob"), 1, "bob's")[0]
    # The workers take the messages in the order they were sent: the batch's first.
    results = {gen.pk: str(pipeline.submit(gen.pk).result) for gen in [*batch, single]}
    assert results[single.pk] == "accepted"
    assert list(results.values()).count("accepted") == 3


def test_when_a_slot_frees_the_sweeper_wakes_the_person_who_waited_longest_without_one(
    db, sim, caps
):
    caps(3, 0)
    batch = queue(make_user("ann"), 20, "ann's")
    for gen in batch:
        pipeline.submit(gen.pk)  # three run, seventeen wait
    single = queue(make_user("bob"), 1, "bob's")[0]
    assert pipeline.submit(single.pk).result == "waiting"  # no slot free
    assert slot_positions(timezone.now())[single.pk] == 0  # but first in line
    finish(batch[0])
    # A message of ann's that comes first does not take bob's turn.
    assert pipeline.submit(batch[3].pk).result == "waiting"
    Generation.objects.update(enqueued_at=timezone.now() - timedelta(minutes=1))
    assert pipeline.sweep().to_submit == [single.pk]
    assert pipeline.submit(single.pk).result == "accepted"
    # The next free slot goes back to ann, her oldest waiting job first.
    finish(batch[1])
    assert pipeline.sweep().to_submit == [batch[3].pk]


def test_turns_alternate_between_people_and_say_how_many_are_ahead(db, caps):
    caps(2, 0)
    ann, bob = make_user("ann"), make_user("bob")
    a = queue(ann, 3, "ann's")
    b = queue(bob, 2, "bob's")
    positions = slot_positions(timezone.now())
    # ann queued first: ann, bob, ann, bob, ann.
    assert [positions[g.pk] for g in a] == [0, 2, 4]
    assert [positions[g.pk] for g in b] == [1, 3]


def test_the_dashboard_says_a_job_waits_for_a_free_slot_and_how_many_are_ahead(
    db, sim, caps, client
):
    caps(1, 0)
    user = make_user()
    rows = queue(user, 5)
    for gen in rows:
        pipeline.submit(gen.pk)
    client.force_login(user)
    page = client.get("/jobs/").content.decode()
    assert "waiting for a free slot, next in line" in page
    assert "waiting for a free slot, 3 ahead" in page
    detail = client.get(f"/generations/{rows[4].pk}/").content.decode()
    assert "waiting for a free slot, 3 ahead" in detail


def test_jobs_command_counts_the_jobs_waiting_for_a_slot_instead_of_calling_them_lost(
    db, sim, caps
):
    caps(1, 0)
    rows = queue(make_user(), 3)
    for gen in rows:
        pipeline.submit(gen.pk)
    Generation.objects.update(enqueued_at=timezone.now() - timedelta(hours=1))
    out = io.StringIO()
    call_command("jobs", stdout=out)
    assert "2 waiting for a free slot (0 free now)" in out.getvalue()
    assert "queued but not taken" not in out.getvalue()


def test_the_simulators_ledger_says_how_many_generations_ran_at_once(sim):
    first = remote_create(sim, "first")
    sim.force_complete(first["id"])  # finished before the next one starts
    remote_create(sim, "second")
    assert sim.ledger()["max_unfinished"] == 1
    remote_create(sim, "third")  # the second still runs (the test simulator takes 2 s)
    ledger = sim.ledger()
    assert ledger["max_unfinished"] == 2
    started = [post["started"] for post in ledger["posts"]]
    assert started == sorted(started)
    assert all(post["finished"] > post["started"] for post in ledger["posts"])


@pytest.mark.pipeline
def test_twelve_jobs_complete_with_never_more_than_three_running_upstream(
    transactional_db, pipeline_env, spare_redis_url, tmp_path
):
    """A worker and beat of this test's own (``LUMA_MAX_IN_FLIGHT=3`` in their environment)
    on a Redis of its own; the simulator's ledger says how many ran at once."""
    from devtools.chaos import publishing_to
    from devtools.processes import CeleryProcesses
    from devtools.simulator_process import SimulatorProcess

    # Each job runs 4 s upstream: long enough that three submits overlap even on a loaded machine
    # (at 1 s, a slow worker saw jobs finish before the third started: max 2 of 3, a flaky red).
    with SimulatorProcess(duration=4, video_seconds=1) as sim:
        env = {
            **pipeline_env,
            "LUMA_API_BASE_URL": sim.api_url,
            "REDIS_URL": spare_redis_url,
            "LUMA_MAX_IN_FLIGHT": "3",
            "LUMA_MAX_SUBMITS_PER_MINUTE": "0",
        }
        procs = CeleryProcesses(env, tmp_path)
        procs.start("worker-a")
        procs.start("worker-b")
        procs.start("beat")
        try:
            with publishing_to(spare_redis_url):
                rows = queue(make_user("ann"), 9, "ann's") + queue(make_user("bob"), 3, "bob's")
            wait_for(
                lambda: Generation.objects.filter(status=Status.COMPLETED).count() == 12,
                120,
                "twelve jobs to complete",
            )
        finally:
            procs.stop_all()
        ledger = sim.ledger()
    assert len(ledger["posts"]) == 12
    assert ledger["max_unfinished"] == 3
    assert {str(gen.pk) for gen in rows} == {
        str(pk) for pk in Generation.objects.values_list("pk", flat=True)
    }
