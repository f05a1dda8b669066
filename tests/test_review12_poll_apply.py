"""Review of issue 12: the batched poll apply (``poll.apply_answers``, ``bulk.update_each``,
``transitions.complete_many``) keeps the one-row rules: a row whose lease another poller took
is left alone (running, completed or failed answers alike), a failure upstream still fails the
row and tells the webhooks once, and a completion is recorded once (event; webhook at the copy)."""

from __future__ import annotations

import secrets

from generations.client import RemoteGeneration
from generations.models import Generation, Status, StatusEvent, Webhook, WebhookDelivery
from generations.pipeline import poll
from generations.pipeline.poll import PollStats
from tests.factories import in_progress_row


def _answer(remote_id: str, state: str, **extra) -> RemoteGeneration:
    data = {"id": remote_id, "state": state, **extra}
    return RemoteGeneration.from_json(data)


def _leased(prefix: str, lease: str) -> list[Generation]:
    rows = [in_progress_row(f"{prefix}-{i}", state="dreaming") for i in range(3)]
    Generation.objects.filter(pk__in=[r.pk for r in rows]).update(poll_lease=lease)
    return [Generation.objects.get(pk=r.pk) for r in rows]


def _answers(rows: list[Generation]):
    running, done, failed = rows
    video = {"url": "https://cdn.example.com/v.mp4", "thumbnail": "", "width": 8, "height": 8}
    return [
        (running, _answer(running.remote_id, "processing", estimate_wait_seconds=30)),
        (done, _answer(done.remote_id, "completed", video=video)),
        (failed, _answer(failed.remote_id, "failed", failure_reason="nsfw")),
    ]


def test_rows_another_poller_took_are_left_alone(db):
    Webhook.objects.create(url="https://hooks.example.com/r12", secret="s" * 20, active=True)
    mine, theirs = secrets.token_hex(8), secrets.token_hex(8)
    rows = _leased("r12-lost", mine)
    Generation.objects.filter(pk__in=[r.pk for r in rows]).update(poll_lease=theirs)
    stats = PollStats()
    done = poll.apply_answers(_answers(rows), mine, stats)
    assert done == []
    after = Generation.objects.filter(pk__in=[r.pk for r in rows])
    assert sorted(after.values_list("status", flat=True)) == [Status.IN_PROGRESS] * 3
    assert set(after.values_list("state", flat=True)) == {"dreaming"}
    assert not StatusEvent.objects.filter(generation__in=rows).exists()
    assert not WebhookDelivery.objects.exists()


def test_a_held_batch_completes_once_and_fails_with_its_webhook(db):
    Webhook.objects.create(url="https://hooks.example.com/r12", secret="s" * 20, active=True)
    lease = secrets.token_hex(8)
    rows = _leased("r12-held", lease)
    running, completed, failed = rows
    stats = PollStats()
    assert poll.apply_answers(_answers(rows), lease, stats) == [completed.pk]
    assert Generation.objects.get(pk=running.pk).state == "processing"
    assert Generation.objects.get(pk=completed.pk).status == Status.COMPLETED
    gone = Generation.objects.get(pk=failed.pk)
    assert gone.status == Status.FAILED and "nsfw" in gone.error
    assert WebhookDelivery.objects.filter(generation_id=failed.pk).count() == 1
    # a second apply of the same answers (a late duplicate round) changes nothing more
    assert poll.apply_answers(_answers(rows), lease, PollStats()) == []
    events = StatusEvent.objects.filter(generation__in=rows)
    assert events.filter(status=Status.COMPLETED).count() == 1
    assert events.filter(status=Status.FAILED).count() == 1
    assert WebhookDelivery.objects.count() == 1  # completed is told when its copy settles
