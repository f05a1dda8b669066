"""Webhook deliveries are woken once, sent by one worker at a time, wait while their webhook is
paused, announce a finished video once its own copy is there, and never go through a proxy.

The receiver is a real HTTP server (``tests/webhook_receiver.py``); the pipeline steps are
driven directly, as a worker would run them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from generations import actions, fetch, pipeline, tasks, webhooks
from generations.models import DeliveryStatus, Generation, Status, WebhookDelivery
from generations.pipeline import copy as copy_step
from generations.pipeline import transitions as t
from tests.factories import make_user
from tests.pages.conftest import make_gen
from tests.test_asset_copy import odd_server  # noqa: F401 (a fixture: a real file server)
from tests.webhook_receiver import Receiver

SECRET = "whsec_wakeups-secret-5e0b8d21"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_RETRY_BASE = 0.2
    received = Receiver(SECRET)
    yield received
    received.close()


def add(url: str, events: str | None = None):
    return actions.add_webhook(None, url, SECRET, events)


def fail_one() -> Generation:
    gen = make_gen(Status.IN_PROGRESS)
    assert t.fail(gen.pk, [Status.IN_PROGRESS], note="service failed it", error="It broke")
    return gen


def wait_until(moment) -> None:
    while timezone.now() < moment:
        time.sleep(0.05)


# --- 1. one wake-up at a time, one sender at a time -----------------------------------------------
def test_the_sweeper_wakes_a_due_delivery_once_not_at_every_sweep(db, receiver, settings):
    """A delivery whose message is queued behind others (or lost) gets one more wake-up per
    LUMA_REQUEUE_AFTER, not one per sweep: the broker does not fill up with copies."""
    settings.LUMA_REQUEUE_AFTER = 0.5
    add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    assert pipeline.sweep().to_deliver == []  # just recorded: its message is on the way
    time.sleep(0.6)
    assert pipeline.sweep().to_deliver == [delivery.pk]
    assert pipeline.sweep().to_deliver == []  # woken a moment ago: not again
    assert pipeline.sweep().to_deliver == []
    time.sleep(0.6)  # that wake-up was not taken either (lost): at least once, it goes again
    assert pipeline.sweep().to_deliver == [delivery.pk]


def test_a_retry_on_its_countdown_is_not_woken_by_the_sweeper_too(db, receiver, settings):
    settings.LUMA_REQUEUE_AFTER = 0.5
    receiver.answers = [500]
    add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    outcome = pipeline.deliver(delivery.pk)
    assert outcome.result == pipeline.Delivered.RETRY and outcome.retry_in is not None
    delivery.refresh_from_db()
    assert delivery.enqueued_at == delivery.next_attempt_at  # its countdown message's time
    wait_until(delivery.next_attempt_at)
    assert pipeline.sweep().to_deliver == []  # due, but its message is arriving now
    time.sleep(0.6)
    assert pipeline.sweep().to_deliver == [delivery.pk]  # that message was lost


def test_a_delivery_being_sent_is_not_woken_and_a_dead_senders_lease_is_taken_over(
    db, receiver, settings, monkeypatch
):
    """A worker that dies mid-POST (here: its process ends inside the POST) holds the row until
    its lease runs out; then the sweeper wakes it once and another worker delivers it."""
    settings.LUMA_REQUEUE_AFTER = 0.5
    monkeypatch.setattr(webhooks, "LEASE", timedelta(seconds=1))
    add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()

    class WorkerDied(BaseException):
        pass

    def dies(*args, **kwargs):
        raise WorkerDied

    with monkeypatch.context() as m:
        m.setattr(fetch, "post", dies)
        with pytest.raises(WorkerDied):
            pipeline.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.status == DeliveryStatus.PENDING
    assert delivery.enqueued_at is None  # its message was taken
    time.sleep(0.6)
    assert pipeline.sweep().to_deliver == []  # leased: someone is (was) sending it
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.NOT_DUE
    wait_until(delivery.next_attempt_at)
    assert pipeline.sweep().to_deliver == [delivery.pk]  # the lease ran out: taken over
    assert pipeline.sweep().to_deliver == []
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.DELIVERED
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and len(receiver.received) == 1


def test_two_workers_woken_for_one_delivery_at_once_send_it_once(transactional_db, receiver):
    """The claim is one conditional UPDATE: of two workers (a redelivered message, a sweeper's
    wake-up) running the step at the same moment, one sends and the other finds it taken."""
    receiver.delay = 0.5  # the first is still waiting for its answer when the second tries
    add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    results: list[pipeline.Delivered] = []
    start = threading.Barrier(2)

    def worker() -> None:
        try:
            start.wait()
            results.append(pipeline.deliver(delivery.pk).result)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == sorted([pipeline.Delivered.DELIVERED, pipeline.Delivered.NOT_DUE])
    assert len(receiver.received) == 1 and receiver.most_in_flight == 1


# --- 2. a paused webhook's deliveries wait --------------------------------------------------------
def test_a_paused_webhooks_deliveries_wait_uncounted_and_go_out_when_it_is_resumed(
    db, receiver, settings, django_capture_on_commit_callbacks
):
    settings.LUMA_REQUEUE_AFTER = 0.5
    receiver.answers = [500]
    hook = add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.RETRY  # one try, a 500
    actions.set_webhook_active(None, hook.pk, False)
    fail_one()  # an event while paused: not recorded for it
    assert WebhookDelivery.objects.count() == 1
    delivery.refresh_from_db()
    wait_until(delivery.next_attempt_at + timedelta(seconds=0.6))
    # Its retry time came and went: nothing is sent, no attempt is counted, nothing is failed.
    assert pipeline.sweep().to_deliver == []
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.NOT_DUE
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert len(receiver.received) == 1

    with django_capture_on_commit_callbacks() as callbacks:
        actions.set_webhook_active(None, hook.pk, True)
    assert callbacks, "resuming sent no wake-up"
    delivery.refresh_from_db()
    assert delivery.enqueued_at is not None  # woken by the resume, not again by the sweeper
    assert pipeline.sweep().to_deliver == []
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.DELIVERED
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert [r.answered for r in receiver.received] == [500, 200]


def test_resuming_a_paused_webhook_sends_what_waited_at_once(
    db, receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """A delivery recorded (and its wake-up sent) just before the pause, whose message a worker
    took while paused (not due), keeps its wake stamp: the resume must not wait for
    ``LUMA_REQUEUE_AFTER`` to pass before sending it ("what waited goes out now")."""
    settings.LUMA_REQUEUE_AFTER = 60
    hook = add(receiver.url)
    fail_one()
    delivery = WebhookDelivery.objects.get()
    assert delivery.enqueued_at is not None  # its wake-up message is on the way
    actions.set_webhook_active(None, hook.pk, False)
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.NOT_DUE  # that message

    sent: list[int] = []
    monkeypatch.setattr(tasks, "_send_each", lambda task, ids: sent.extend(ids))
    with django_capture_on_commit_callbacks(execute=True):
        actions.set_webhook_active(None, hook.pk, True)
    assert sent == [delivery.pk], "resuming woke nothing: it waits for the sweeper"
    assert pipeline.sweep().to_deliver == []  # woken once, by the resume
    assert pipeline.deliver(delivery.pk).result == pipeline.Delivered.DELIVERED  # the worker
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert len(receiver.received) == 1


def test_manage_py_webhook_pauses_and_resumes_and_remove_still_drops_pending(db, receiver):
    hook = add(receiver.url)
    out = StringIO()
    call_command("webhook", "pause", str(hook.pk), stdout=out)
    assert "paused" in out.getvalue() and "wait" in out.getvalue()
    call_command("webhook", "list", stdout=out)
    assert "paused" in out.getvalue()
    actions.set_webhook_active(None, hook.pk, True)
    fail_one()
    call_command("webhook", "pause", str(hook.pk), stdout=out)
    assert pipeline.deliver(WebhookDelivery.objects.get().pk).result == pipeline.Delivered.NOT_DUE
    call_command("webhook", "resume", str(hook.pk), stdout=out)
    assert "resumed" in out.getvalue()
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING
    call_command("webhook", "remove", str(hook.pk), stdout=out)
    assert not WebhookDelivery.objects.exists()


def test_the_webhooks_page_says_what_paused_means(db, receiver):
    admin = make_user("boss", is_superuser=True)
    client = Client()
    client.force_login(admin)
    hook = add(receiver.url)
    html = " ".join(client.get("/team/webhooks/").content.decode().split())
    assert "Paused: nothing is sent" in html
    assert "pending wait and go out when you resume it" in html
    fail_one()
    actions.set_webhook_active(None, hook.pk, False)
    html = " ".join(client.get("/team/webhooks/").content.decode().split())
    assert "waits: webhook paused" in html and "Resume" in html


# --- 3. generation.completed carries lumaweb's own copy -------------------------------------------
CDN = "https://cdn.example.com/v/abc.mp4?sig=expires-soon"


def test_completed_is_sent_once_the_local_copy_is_made_with_lumawebs_url(db, receiver, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    add(receiver.url)
    gen = make_gen(
        Status.IN_PROGRESS, poll_lease="l", video_url=CDN, thumbnail_url="", video_file=""
    )
    assert t.complete(gen.pk, lease="l", now=timezone.now())
    assert not WebhookDelivery.objects.exists(), "completed announced before the copy"
    # The copy step, with the file already downloaded (as after a worker's download).
    Generation.objects.filter(pk=gen.pk).update(video_file=f"videos/{gen.pk}.mp4")
    assert copy_step.copy_assets(gen.pk) == pipeline.CopyResult.COPIED
    delivery = WebhookDelivery.objects.get()
    body = json.loads(delivery.payload)
    assert body["event"] == "generation.completed"
    video = body["generation"]["video"]
    assert video["url"] == f"https://studio.example.com/media/videos/{gen.pk}.mp4"
    assert video["local"] is True and video["upstream_url"] == CDN
    # Copying again (a second worker, "Copy again") tells no one a second time.
    Generation.objects.filter(pk=gen.pk).update(assets_next_at=timezone.now())
    copy_step.copy_assets(gen.pk)
    assert WebhookDelivery.objects.count() == 1
    # Failures are told at once, not held back for anything.
    fail_one()
    assert WebhookDelivery.objects.filter(event="generation.failed").count() == 1


def test_completed_is_sent_when_the_copy_is_given_up_with_the_services_url(db, receiver):
    add(receiver.url)
    with socket.socket() as closed:  # a port nothing listens on: every download is refused
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/v.mp4"
    gen = make_gen(Status.IN_PROGRESS, poll_lease="l", video_url=dead, thumbnail_url="")
    assert t.complete(gen.pk, lease="l", now=timezone.now())
    Generation.objects.filter(pk=gen.pk).update(asset_attempts=copy_step.ASSET_MAX_ATTEMPTS - 1)
    assert not WebhookDelivery.objects.exists()
    assert copy_step.copy_assets(gen.pk) == pipeline.CopyResult.FAILED  # the last attempt
    video = json.loads(WebhookDelivery.objects.get().payload)["generation"]["video"]
    assert video["local"] is False and video["url"] == video["upstream_url"] == dead
    assert t.copy_again(gen.pk, note="copy again")  # a person's Copy again: no second event
    assert WebhookDelivery.objects.count() == 1


# --- 4. never through a proxy ---------------------------------------------------------------------
@pytest.fixture
def proxy_to_nowhere(monkeypatch):
    """The environment names a proxy (on a port nothing listens on), for every scheme and
    host: anything that used it would fail to connect."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return proxy


def test_a_delivery_goes_straight_to_the_receiver_whatever_proxy_the_environment_names(
    db, receiver, proxy_to_nowhere
):
    add(receiver.url)
    fail_one()
    assert pipeline.deliver(WebhookDelivery.objects.get().pk).result == (
        pipeline.Delivered.DELIVERED
    ), WebhookDelivery.objects.get().last_error
    assert len(receiver.received) == 1 and receiver.received[0].signature_ok


def test_a_download_goes_straight_to_the_server_whatever_proxy_the_environment_names(
    db, request, proxy_to_nowhere
):
    url, _ = request.getfixturevalue("odd_server")  # a real server on 127.0.0.1, a small MP4
    stored, size = fetch.download_to_storage(url, "videos/direct.mp4", fetch.video_kind())
    assert size > 0 and stored == "videos/direct.mp4"
