"""Wake-ups: what the task layer sends, and what happens when a message never arrives.

Fast tests (no worker): the messages are read back from a Redis list of this test's own, so
each catches its breakage in a second instead of after a pipeline test's time-out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from devtools.chaos import publishing_to
from devtools.simulator_process import free_port
from generations import actions, pipeline, tasks
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from tests.factories import in_progress_row, make_user, remote_create


@pytest.fixture
def mailbox(spare_redis_url: str) -> Iterator[redis.Redis]:
    """This process publishes to a Redis that no worker consumes (a redis-server of this
    test's own when one is on PATH), so every message sent can be read back."""
    box = redis.Redis.from_url(spare_redis_url)
    box.flushdb()
    with publishing_to(spare_redis_url):
        yield box
    box.flushdb()


def sent(box: redis.Redis) -> list[tuple[str, str]]:
    """(task name, generation id) of every message waiting in the default queue."""
    out = []
    for raw in box.lrange("celery", 0, -1):
        headers = json.loads(raw)["headers"]
        out.append((headers["task"].rsplit(".", 1)[-1], headers["argsrepr"].strip("(),'\"")))
    return out


def test_a_create_while_the_broker_is_down_answers_201_and_stays_queued(
    db, settings, django_capture_on_commit_callbacks, client
):
    client.force_login(make_user())
    nobody = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with publishing_to(nobody), django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            "/api/v1/generations", {"user_prompt": "while Redis sleeps"}, "application/json"
        )
    assert response.status_code == 201
    # the wake-up was tried, and its failure swallowed (beside it: the Jobs page's stamp bump)
    wakeups = [c for c in callbacks if "wake_submit_on_commit" in c.__qualname__]
    assert len(wakeups) == 1
    gen = Generation.objects.get(pk=response.json()["id"])
    assert gen.status == Status.QUEUED
    assert gen.enqueued_at is not None  # stamped in the INSERT: the sweeper takes over later


def test_a_create_wakes_a_submit_after_the_commit(db, mailbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        gen = actions.create_generation(make_user(), GenerationRequest(user_prompt="wake me"))
    assert sent(mailbox) == [("submit_generation", str(gen.pk))]


def test_the_sweeper_wakes_a_queued_row_whose_message_was_lost_once(db, mailbox, settings):
    settings.LUMA_REQUEUE_AFTER = 60
    gen = actions.create_generation(make_user(), GenerationRequest(user_prompt="lost message"))
    assert tasks.sweep()["requeued"] == 0  # its message is young: it may still arrive
    Generation.objects.filter(pk=gen.pk).update(enqueued_at=timezone.now() - timedelta(minutes=2))
    assert tasks.sweep()["requeued"] == 1
    assert tasks.sweep()["requeued"] == 0  # stamped again: on its way
    assert sent(mailbox) == [("submit_generation", str(gen.pk))]


def test_a_refused_submit_wakes_itself_after_the_backoff(db, sim, mailbox):
    sim.configure(rate_limit_rate=1.0, retry_after=7)
    gen = actions.create_generation(make_user(), GenerationRequest(user_prompt="not now"))
    assert tasks.submit_generation(str(gen.pk)) == "retry"
    [raw] = mailbox.lrange("celery", 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["task"] == "generations.tasks.submit_generation"
    assert headers["eta"]  # a countdown, not an immediate resend


def test_a_finished_poll_wakes_the_copy_once(db, sim, mailbox):
    remote = remote_create(sim, "done")
    sim.force_complete(remote["id"])
    row = in_progress_row(remote["id"])
    tasks.poll_in_flight()
    tasks.poll_in_flight()
    assert sent(mailbox) == [("copy_assets", str(row.pk))]
    assert tasks.sweep()["copies"] == 0  # stamped when it was sent


def test_an_id_missing_from_a_poll_answer_waits_for_the_deadline(db, sim, settings):
    settings.LUMA_POLL_DEADLINE = 60
    row = in_progress_row("not-known-upstream")
    stats = pipeline.poll_in_flight()
    row.refresh_from_db()
    assert stats.outcomes == {"missing": 1}
    assert row.status == Status.IN_PROGRESS  # perhaps the service is just slow to list it
    old = timezone.now() - timedelta(minutes=5)
    Generation.objects.filter(pk=row.pk).update(last_progress_at=old, next_poll_at=old)
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.FAILED
    assert "no longer knows" in row.error


def test_rows_of_a_poller_that_died_are_polled_again_when_its_lease_runs_out(db, sim, settings):
    settings.LUMA_POLL_LEASE = 0.3
    rows = [in_progress_row(remote_create(sim, f"clip {i}")["id"]) for i in range(3)]
    _lease, leased = pipeline.poll.lease_due_rows(100)  # ...and the poller dies right here
    assert {r.pk for r in leased} == {r.pk for r in rows}
    assert pipeline.poll_in_flight().due == 0  # leased: nobody else polls them meanwhile
    time.sleep(0.4)
    assert pipeline.poll_in_flight().due == 3  # the lease ran out: polled again
    assert Generation.objects.filter(last_polled_at__isnull=False).count() == 3


def test_a_fresh_link_is_copied_at_the_next_sweep_once_due(db, sim, mailbox):
    """After an expired link was renewed, no message is out: the sweeper sends the copy's
    wake-up as soon as it is due, not a LUMA_REQUEUE_AFTER later."""
    sim.configure(expire_link_rate=1.0)
    remote = remote_create(sim, "expiring")
    sim.force_complete(remote["id"])
    row = in_progress_row(remote["id"])
    pipeline.poll_in_flight()
    assert pipeline.copy_assets(row.pk) == "retry"
    Generation.objects.filter(pk=row.pk).update(assets_next_at=timezone.now())
    assert tasks.sweep()["copies"] == 1
    assert tasks.sweep()["copies"] == 0
    assert sent(mailbox) == [("copy_assets", str(row.pk))]


def test_copy_again_wakes_the_copy_after_the_commit(
    db, mailbox, django_capture_on_commit_callbacks
):
    gen = Generation.objects.create(
        user_prompt="given up", status=Status.COMPLETED, remote_id="r-given-up"
    )
    with django_capture_on_commit_callbacks(execute=True):
        actions.copy_again(gen, None)
    assert sent(mailbox) == [("copy_assets", str(gen.pk))]


def test_a_poll_that_finishes_a_job_wakes_the_job_waiting_for_its_slot_at_once(
    db, sim, mailbox, settings
):
    """Under a capacity cap, the slot a finished job gives back goes to the next job in line
    now, not at the next sweep (up to LUMA_SWEEP_INTERVAL later)."""
    settings.LUMA_MAX_IN_FLIGHT, settings.LUMA_MAX_SUBMITS_PER_MINUTE = 1, 0
    owner = make_user()
    first, second = (
        actions.create_generation(owner, GenerationRequest(user_prompt=f"one slot {i}"))
        for i in range(2)
    )
    assert pipeline.submit(first.pk).result == "accepted"
    assert pipeline.submit(second.pk).result == "waiting"
    first.refresh_from_db()
    sim.force_complete(first.remote_id)
    Generation.objects.filter(pk=first.pk).update(next_poll_at=timezone.now())
    tasks.poll_in_flight()
    assert ("submit_generation", str(second.pk)) in sent(mailbox)
    assert pipeline.submit(second.pk).result == "accepted"


def test_a_poll_that_finishes_nothing_wakes_nobody(db, sim, mailbox, settings):
    settings.LUMA_MAX_IN_FLIGHT, settings.LUMA_MAX_SUBMITS_PER_MINUTE = 1, 0
    owner = make_user()
    first, second = (
        actions.create_generation(owner, GenerationRequest(user_prompt=f"still busy {i}"))
        for i in range(2)
    )
    assert pipeline.submit(first.pk).result == "accepted"
    assert pipeline.submit(second.pk).result == "waiting"
    Generation.objects.filter(pk=first.pk).update(next_poll_at=timezone.now())
    tasks.poll_in_flight()
    assert sent(mailbox) == []


# --- webhooks ------------------------------------------------------------------------------------
def test_a_status_move_wakes_a_webhook_delivery_after_the_commit(
    db, mailbox, settings, django_capture_on_commit_callbacks
):
    from generations.models import WebhookDelivery
    from generations.pipeline import transitions as t

    settings.WEBHOOK_ALLOW_PRIVATE = True
    actions.add_webhook(None, "http://127.0.0.1:9/hook", "whsec_wakeup-secret-123456")
    gen = in_progress_row("remote-wake-hook")
    with django_capture_on_commit_callbacks(execute=True):
        assert t.fail(gen.pk, [Status.IN_PROGRESS], note="x", error="broke")
        assert sent(mailbox) == []  # not before the commit
    delivery = WebhookDelivery.objects.get()
    assert sent(mailbox) == [("deliver_webhook", str(delivery.pk))]


def test_a_failed_delivery_wakes_itself_after_the_backoff_and_the_sweeper_after_that(
    db, mailbox, settings
):
    from generations.models import WebhookDelivery
    from generations.pipeline import transitions as t

    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.LUMA_REQUEUE_AFTER = 60
    # Nothing listens on this port: "no answer", tried again.
    actions.add_webhook(None, f"http://127.0.0.1:{free_port()}/hook", "whsec_wakeup-secret-123456")
    gen = in_progress_row("remote-wake-hook-2")
    assert t.fail(gen.pk, [Status.IN_PROGRESS], note="x", error="broke")
    delivery = WebhookDelivery.objects.get()
    mailbox.flushdb()
    assert tasks.deliver_webhook(delivery.pk) == "retry"
    queued = [json.loads(raw) for raw in mailbox.lrange("celery", 0, -1)]
    assert [m["headers"]["task"].rsplit(".", 1)[-1] for m in queued] == ["deliver_webhook"]
    assert queued[0]["headers"]["eta"] is not None  # a countdown: the backoff
    delivery.refresh_from_db()
    assert delivery.enqueued_at == delivery.next_attempt_at  # its countdown message's time
    tasks.sweep()  # before then the sweeper leaves it to that message (once due, too)
    assert len(mailbox.lrange("celery", 0, -1)) == 1
    mailbox.flushdb()
    # That message is lost: two minutes after it was due, the sweeper sends one, once.
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=two_minutes_ago, enqueued_at=two_minutes_ago
    )
    tasks.sweep()
    assert sent(mailbox) == [("deliver_webhook", str(delivery.pk))]
    tasks.sweep()
    assert sent(mailbox) == [("deliver_webhook", str(delivery.pk))]  # not a second one


def test_resuming_a_paused_webhook_wakes_its_waiting_deliveries_after_the_commit(
    db, mailbox, settings, django_capture_on_commit_callbacks
):
    from generations.models import WebhookDelivery
    from generations.pipeline import transitions as t

    settings.WEBHOOK_ALLOW_PRIVATE = True
    hook = actions.add_webhook(None, "http://127.0.0.1:9/hook", "whsec_wakeup-secret-123456")
    gen = in_progress_row("remote-wake-hook-3")
    assert t.fail(gen.pk, [Status.IN_PROGRESS], note="x", error="broke")
    actions.set_webhook_active(None, hook.pk, False)
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(enqueued_at=None)  # message taken
    mailbox.flushdb()
    tasks.sweep()
    assert sent(mailbox) == []  # paused: not woken
    with django_capture_on_commit_callbacks(execute=True):
        actions.set_webhook_active(None, hook.pk, True)
        assert sent(mailbox) == []  # not before the commit
    assert sent(mailbox) == [("deliver_webhook", str(delivery.pk))]
