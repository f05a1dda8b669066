"""Outbound webhooks: recorded with the status move, signed, retried, refused where they lead
nowhere safe, and the secret never shown. The receiver is a real HTTP server (see
``tests/webhook_receiver.py``); the pipeline step is driven directly, without a worker (the
whole path through a worker is in ``test_webhooks_pipeline.py``)."""

from __future__ import annotations

import json
import logging
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from generations import actions, fetch, pipeline, webhooks
from generations.models import DeliveryStatus, Generation, Status, Webhook, WebhookDelivery
from generations.pipeline import transitions as t
from tests.pages.conftest import make_gen
from tests.webhook_receiver import Receiver

SECRET = "whsec_test-secret-4d9f2a71c0"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_BASE = 0.2
    received = Receiver(SECRET)
    yield received
    received.close()


def add(url: str, events: str | None = None, secret: str = SECRET) -> Webhook:
    return actions.add_webhook(None, url, secret, events)


def fail_one() -> Generation:
    gen = make_gen(Status.IN_PROGRESS)
    assert t.fail(gen.pk, [Status.IN_PROGRESS], note="service failed it", error="It broke")
    return gen


def finish(gen: Generation) -> None:
    """in_progress -> completed, then the copy step (the file already downloaded): that is when
    ``generation.completed`` is recorded, its body pointing at lumaweb's own copy."""
    Generation.objects.filter(pk=gen.pk).update(poll_lease="lease-f")
    assert t.complete(gen.pk, lease="lease-f", now=timezone.now())
    Generation.objects.filter(pk=gen.pk).update(video_file=f"videos/{gen.pk}.mp4", thumbnail_url="")
    assert pipeline.copy_assets(gen.pk) == pipeline.CopyResult.COPIED


def deliver_when_due(delivery: WebhookDelivery) -> pipeline.DeliverOutcome:
    """Run the step once the row's retry time has come (a worker woken by its countdown)."""
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None
    while timezone.now() < delivery.next_attempt_at:
        time.sleep(0.05)
    return pipeline.deliver(delivery.pk)


def test_a_delivery_that_got_500_arrives_again_signed_with_the_same_id_and_body(db, receiver):
    receiver.answers = [500]
    add(receiver.url)
    gen = fail_one()
    delivery = WebhookDelivery.objects.get()

    first = pipeline.deliver(delivery.pk)
    assert first.result == pipeline.Delivered.RETRY and first.retry_in is not None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error == "answered 500"

    assert deliver_when_due(delivery).result == pipeline.Delivered.DELIVERED
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2
    assert delivery.delivered_at is not None and delivery.last_error == ""

    assert [r.answered for r in receiver.received] == [500, 200]
    assert all(r.signature_ok for r in receiver.received), "a delivery was not signed right"
    ids = {r.headers["x-lumaweb-delivery"] for r in receiver.received}
    assert ids == {str(delivery.delivery_id)}
    assert receiver.received[0].body == receiver.received[1].body == delivery.payload.encode()
    sent = receiver.received[1]
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-lumaweb-event"] == "generation.failed"
    assert sent.json["event"] == "generation.failed"
    assert sent.json["generation"]["id"] == str(gen.pk)
    assert sent.json["generation"]["status"] == "failed"
    assert sent.json["generation"]["error"] == "It broke"
    # The API's shape, key for key.
    assert {"video", "user_prompt", "like_count", "extension_count"} <= set(sent.json["generation"])


def test_two_deliveries_have_different_ids(db, receiver):
    add(receiver.url)
    fail_one()
    fail_one()
    for delivery in WebhookDelivery.objects.all():
        assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.DELIVERED
    assert len({r.headers["x-lumaweb-delivery"] for r in receiver.received}) == 2


def test_deliveries_are_written_in_the_status_moves_transaction(db, receiver):
    add(receiver.url)
    gen = make_gen(Status.IN_PROGRESS)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert t.fail(gen.pk, [Status.IN_PROGRESS], note="x", error="x")
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the transaction rolls back")
    assert WebhookDelivery.objects.count() == 0
    # A move that does not happen (the row is not in a status it moves from) records nothing.
    assert not t.fail(gen.pk, [Status.QUEUED], note="x", error="x")
    assert WebhookDelivery.objects.count() == 0


def test_a_delivery_is_sent_once_however_often_it_is_woken(db, receiver):
    add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.DELIVERED
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.NOT_DUE
    assert len(receiver.received) == 1


def test_each_webhook_gets_only_the_events_it_asked_for(db, receiver):
    completed_only = add(receiver.url, "completed")
    failures = add(receiver.url + "?f", "failed,needs_attention")
    fail_one()
    gen = make_gen(Status.SUBMITTING)
    assert t.flag_for_a_person(gen.pk, note="x", error="no answer")
    finish(make_gen(Status.IN_PROGRESS))
    events = sorted(WebhookDelivery.objects.values_list("webhook_id", "event"))
    assert events == sorted(
        [
            (failures.pk, "generation.failed"),
            (failures.pk, "generation.needs_attention"),
            (completed_only.pk, "generation.completed"),
        ]
    )
    # Other moves (queued, in progress, cancelled) are no event.
    queued = make_gen(Status.QUEUED)
    assert t.cancel(queued.pk, note="x")
    assert WebhookDelivery.objects.count() == 3


def test_a_paused_webhook_gets_nothing_new_and_its_pending_deliveries_wait(db, receiver):
    """(It used to fail them.) Paused: not due, no attempt counted; resumed: sent."""
    hook = add(receiver.url)
    fail_one()
    actions.set_webhook_active(None, hook.pk, False)
    fail_one()
    assert WebhookDelivery.objects.count() == 1
    delivery = WebhookDelivery.objects.get()
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.NOT_DUE
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)
    assert receiver.received == []
    actions.set_webhook_active(None, hook.pk, True)
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.DELIVERED


def test_a_delivery_is_given_up_after_the_last_attempt(db, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    receiver.answers = [500, 503]
    add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.RETRY
    assert deliver_when_due(delivery).result == pipeline.Delivered.FAILED
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None
    assert (delivery.attempts, delivery.last_status_code) == (2, 503)


def test_a_redirect_is_not_followed(db, receiver):
    receiver.answers = [302]
    add(receiver.url)
    fail_one()
    assert pipeline.deliver(WebhookDelivery.objects.get().pk).result == pipeline.Delivered.RETRY
    assert "redirects are not followed" in WebhookDelivery.objects.get().last_error
    assert len(receiver.received) == 1


def test_the_sweeper_wakes_deliveries_whose_message_was_lost(db, receiver, settings):
    settings.LUMA_REQUEUE_AFTER = 0.5
    add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    assert pipeline.sweep().to_deliver == []  # just recorded: its message is on the way
    time.sleep(0.6)
    assert pipeline.sweep().to_deliver == [delivery.pk]


def test_the_retry_schedule_backs_off_to_hours(settings):
    settings.WEBHOOK_RETRY_BASE = 15.0
    delays = [webhooks.retry_delay(n, jitter=False) for n in range(1, 8)]
    assert delays == sorted(delays)  # (with jitter two capped delays may come in either order)
    assert delays[0] == 15 and delays[-1] == webhooks.MAX_RETRY_DELAY
    assert 3 * 3600 < sum(delays) < 8 * 3600
    for n, nominal in enumerate(delays, start=1):
        assert all(0.8 * nominal <= webhooks.retry_delay(n) <= 1.2 * nominal for _ in range(50))


# --- where deliveries may go ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.1.2.3/hook",
        "http://[::1]/x",
    ],
)
def test_a_private_or_loopback_target_is_refused_when_added(db, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(actions.ServiceError, match="WEBHOOK_ALLOW_PRIVATE"):
        add(url)
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
        "not a url",
        "https:///x",
        "http://[::1",  # urlsplit raises on it: a refusal in words, not a 500 (outside review)
    ],
)
def test_an_address_that_is_not_a_plain_http_url_is_refused(db, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with pytest.raises(actions.ServiceError):
        add(url)


def test_a_short_secret_or_unknown_event_is_refused(db, receiver):
    with pytest.raises(actions.ServiceError, match="at least 16"):
        add(receiver.url, secret="short")
    with pytest.raises(actions.ServiceError, match="Unknown event"):
        add(receiver.url, events="completed,exploded")


def test_a_target_refused_at_send_time_gets_nothing_and_is_failed(db, receiver, settings):
    add(receiver.url)
    fail_one()
    settings.WEBHOOK_ALLOW_PRIVATE = False  # the operator turned it off since
    assert pipeline.deliver(WebhookDelivery.objects.get().pk).result == pipeline.Delivered.FAILED
    assert receiver.received == []
    assert "not public" in WebhookDelivery.objects.get().last_error


class RebindingResolver:
    """A name that answers a public address to the first ``public`` look-ups and 127.0.0.1
    after: DNS rebinding, which no real part produces on one machine without root (see the same
    seam in ``test_security_ssrf.py``). The sockets and the receiver stay real."""

    NAME = "hooks.rebinding.invalid"

    def __init__(self, public: int) -> None:
        self.public = public
        self.answers: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        if host != self.NAME:
            return fetch.system_resolve(host, port)
        answer = "93.184.215.14" if len(self.answers) < self.public else "127.0.0.1"
        self.answers.append(answer)
        return [answer]


@pytest.mark.parametrize("public", [1, 2], ids=["at-the-check", "at-the-connection"])
def test_a_name_that_rebinds_to_loopback_never_gets_the_post(
    db, receiver, settings, monkeypatch, public
):
    """Look-ups: 1 when added, 2 the check before sending, 3 the connection itself."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    resolver = RebindingResolver(public=public)
    monkeypatch.setattr(fetch, "resolve", resolver)
    port = receiver.server.server_address[1]
    add(f"http://{RebindingResolver.NAME}:{port}/hook")
    fail_one()
    assert pipeline.deliver(WebhookDelivery.objects.get().pk).result == pipeline.Delivered.FAILED
    assert receiver.received == [], "the loopback receiver got the POST"
    assert resolver.answers[-1] == "127.0.0.1" and len(resolver.answers) == public + 1


# --- the secret stays secret ---------------------------------------------------------------------
def test_the_secret_is_in_no_log_line_stored_error_or_command_output(db, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.answers = [500]
    hook = add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    pipeline.deliver(delivery.pk)
    deliver_when_due(delivery)
    out = StringIO()
    call_command("webhook", "list", stdout=out)
    call_command("webhook", "deliveries", stdout=out)
    assert receiver.received and all(r.signature_ok for r in receiver.received)
    assert SECRET not in caplog.text
    assert SECRET not in out.getvalue()
    assert SECRET not in repr(hook) and SECRET not in str(hook)
    for row in WebhookDelivery.objects.all():
        assert SECRET not in row.last_error and SECRET not in row.payload


# --- manage.py webhook ---------------------------------------------------------------------------
def run(*args: str) -> str:
    out = StringIO()
    call_command("webhook", *args, stdout=out)
    return out.getvalue()


def test_the_webhook_command_adds_lists_shows_deliveries_and_removes(db, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.answers = [500]
    said = run("add", receiver.url, "--secret", SECRET, "--events", "failed")
    hook = Webhook.objects.get()
    assert said.startswith(f"Webhook {hook.pk} added") and hook.event_list == ["failed"]
    assert hook.secret == SECRET
    listed = run("list")
    assert receiver.url in listed and "events=failed" in listed and "active" in listed
    fail_one()
    pipeline.deliver(WebhookDelivery.objects.get().pk)
    failed = run("deliveries", "--failed")
    assert "generation.failed" in failed and "last=500" in failed and "answered 500" in failed
    assert str(WebhookDelivery.objects.get().delivery_id) in failed
    assert run("remove", str(hook.pk)).startswith(f"Webhook {hook.pk} removed")
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    assert "No webhooks" in run("list")


def test_the_webhook_command_refuses_a_private_target_and_unknown_ids(db, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(CommandError, match="WEBHOOK_ALLOW_PRIVATE"):
        run("add", "http://127.0.0.1:8080/x", "--secret", SECRET)
    with pytest.raises(CommandError, match="no webhook 99"):
        run("remove", "99")


def test_the_body_uses_public_base_url_for_local_files(db, receiver, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    add(receiver.url)
    finish(make_gen(Status.IN_PROGRESS))
    body = json.loads(WebhookDelivery.objects.get().payload)
    assert body["generation"]["video"]["url"].startswith("https://studio.example.com/")


def test_copy_again_of_a_finished_video_tells_no_webhook_a_second_time(db, receiver):
    """ "Copy again" starts a finished video's copy over: no news to anyone outside, so no
    second generation.completed (a receiver would act on it twice; outside review)."""
    add(receiver.url)
    gen = make_gen(Status.IN_PROGRESS)
    finish(gen)
    assert WebhookDelivery.objects.count() == 1
    Generation.objects.filter(pk=gen.pk).update(
        video_file="", asset_attempts=99, asset_error="gave up", assets_next_at=None
    )
    assert t.copy_again(gen.pk, note="copy again requested")
    assert WebhookDelivery.objects.count() == 1
