"""A provider's callbacks (Luma's ``callback_url``): sent with each POST when the site has a
public address and the provider calls back; received at ``/hooks/upstream/<token>/``, where the
body is never trusted: a valid token only makes that row's poll due now and wakes the poller.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from generations import actions, callback_tokens, pipeline, providers
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from generations.providers.umamiai import UmamiAI
from tests.conftest import purge_broker
from tests.factories import in_progress_row, make_user, remote_create


class CallsBack(UmamiAI):
    """UmamiAI that takes a callback address (the simulator ignores it): what it was sent."""

    capabilities = replace(UmamiAI.capabilities, callbacks=True)

    def __init__(self) -> None:
        self.sent: list[providers.Submission] = []

    def submit(self, submission: providers.Submission):
        self.sent.append(submission)
        return super().submit(submission)


@pytest.fixture
def broker(redis_url):
    """The broker's queue, empty before and after (no worker runs in these tests)."""
    purge_broker(redis_url)
    yield redis.Redis.from_url(redis_url)
    purge_broker(redis_url)


def poll_wakeups(broker) -> int:
    return sum(
        json.loads(raw)["headers"]["task"] == "generations.tasks.poll_in_flight"
        for raw in broker.lrange(settings.LUMA_POLL_QUEUE, 0, -1)  # poll rounds' own queue
    )


def later_row(sim) -> Generation:
    row = in_progress_row(remote_create(sim)["id"])
    Generation.objects.filter(pk=row.pk).update(next_poll_at=timezone.now() + timedelta(hours=1))
    return row


def hook(row_or_token) -> str:
    token = (
        row_or_token
        if isinstance(row_or_token, str)
        else callback_tokens.token_for(row_or_token.pk)
    )
    return reverse("upstream-callback", args=[token])


def test_token_names_its_row_and_cannot_be_made_for_another():
    import uuid

    row = uuid.uuid4()
    token = callback_tokens.token_for(row)
    assert callback_tokens.row_for(token) == row
    other = uuid.uuid4()
    forged = f"{other.hex}-{token.split('-')[1]}"
    assert callback_tokens.row_for(forged) is None
    assert callback_tokens.row_for(token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert callback_tokens.row_for("nonsense") is None


def test_post_carries_the_rows_callback_address(db, sim, settings, monkeypatch):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    provider = CallsBack()
    monkeypatch.setattr(providers, "current", lambda: provider)
    gen = actions.create_generation(
        make_user(), GenerationRequest(user_prompt="a kite", aspect_ratio="16:9")
    )
    assert pipeline.submit(gen.pk).result == "accepted"
    token = callback_tokens.token_for(gen.pk)
    assert provider.sent[0].callback_url == (f"https://studio.example.com/hooks/upstream/{token}/")


def test_no_callback_address_without_a_public_one_or_for_umamiai(db, sim, settings, monkeypatch):
    settings.PUBLIC_BASE_URL = ""
    provider = CallsBack()
    monkeypatch.setattr(providers, "current", lambda: provider)
    gen = actions.create_generation(
        make_user(), GenerationRequest(user_prompt="a kite", aspect_ratio="16:9")
    )
    pipeline.submit(gen.pk)
    assert provider.sent[0].callback_url == ""
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    monkeypatch.undo()
    assert not providers.current().capabilities.callbacks
    gen = Generation.objects.get(pk=gen.pk)
    from generations.pipeline import lookup

    assert lookup.submission_of(gen).callback_url == ""


def test_callback_makes_the_poll_due_now_and_wakes_the_poller(client, db, sim, broker):
    row = later_row(sim)
    response = client.post(hook(row), data=b"{}", content_type="application/json")
    assert response.status_code == 204 and response.content == b""
    row.refresh_from_db()
    assert row.next_poll_at <= timezone.now()
    assert poll_wakeups(broker) == 1
    # And the poll round it wakes asks the service about it.
    before = sim.ledger()["get_requests"]
    pipeline.poll_in_flight()
    assert sim.ledger()["get_requests"] == before + 1
    row.refresh_from_db()
    assert row.last_polled_at is not None


def test_the_body_is_never_trusted(client, db, sim, broker):
    row = later_row(sim)
    lie = {
        "id": row.remote_id,
        "state": "completed",
        "assets": {"video": "https://evil.example/x.mp4"},
    }
    client.post(hook(row), data=json.dumps(lie), content_type="application/json")
    row.refresh_from_db()
    assert row.status == Status.IN_PROGRESS and row.video_url == ""
    assert row.state != "completed"


def test_unknown_token_is_a_bare_404(client, db, sim, broker):
    row = later_row(sim)
    forged = f"{row.pk.hex}-{'0' * callback_tokens.MAC_CHARS}"
    for token in (forged, "abc", "x" * 64):
        response = client.post(hook(token))
        assert response.status_code == 404 and response.content == b""
    row.refresh_from_db()
    assert row.next_poll_at > timezone.now()
    assert poll_wakeups(broker) == 0


def test_only_post_and_a_small_body(client, db, sim, broker):
    row = later_row(sim)
    assert client.get(hook(row)).status_code == 405
    big = b"x" * (20 * 1024)
    assert client.post(hook(row), data=big, content_type="application/json").status_code == 413
    row.refresh_from_db()
    assert row.next_poll_at > timezone.now()


def test_a_row_not_in_progress_or_already_due_is_left_alone(client, db, sim, broker):
    done = later_row(sim)
    Generation.objects.filter(pk=done.pk).update(status=Status.COMPLETED, next_poll_at=None)
    assert client.post(hook(done)).status_code == 204
    assert Generation.objects.get(pk=done.pk).next_poll_at is None
    due = in_progress_row(remote_create(sim)["id"])  # due already
    assert client.post(hook(due)).status_code == 204
    assert poll_wakeups(broker) == 0


def test_callbacks_need_no_login_nor_csrf(db, sim, broker):
    from django.test import Client

    row = later_row(sim)
    response = Client(enforce_csrf_checks=True).post(hook(row))
    assert response.status_code == 204
