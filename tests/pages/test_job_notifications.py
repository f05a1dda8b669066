"""The running badge's poll tells a person's open pages when one of their own jobs finished,
failed or needs attention (``data-notify``, read by app.js for the tab title and browser
notifications): 204 while nothing changed, someone else's jobs never, constant queries."""

from __future__ import annotations

import json
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations.models import Status
from generations.pipeline import transitions as t
from tests.pages.conftest import htmx, make_gen


def badge_url(page_html: str) -> str:
    """The poll URL the page's badge carries, as htmx would request it."""
    found = re.search(r'id="running-badge"[^>]*hx-get="([^"]+)"', page_html, re.S)
    assert found, "no running badge"
    return found.group(1).replace("&amp;", "&")


def notified(response) -> list[dict]:
    found = re.search(r'data-notify="([^"]*)"', response.content.decode())
    return json.loads(found.group(1).replace("&quot;", '"')) if found else []


def test_my_finished_job_rides_on_the_badge_poll_and_only_once(client, user, other):
    mine = make_gen(Status.IN_PROGRESS, user=user, user_prompt="a heron at dawn", poll_lease="l")
    theirs = make_gen(Status.IN_PROGRESS, user=other, poll_lease="m")
    url = badge_url(client.get(reverse("jobs")).content.decode())
    assert client.get(url, **htmx("running-badge")).status_code == 204

    assert t.complete(theirs.pk, lease="m", now=timezone.now())
    answer = client.get(url, **htmx("running-badge"))
    assert answer.status_code == 200 and notified(answer) == []  # the count changed, not mine

    assert t.complete(mine.pk, lease="l", now=timezone.now())
    answer = client.get(badge_url(answer.content.decode()), **htmx("running-badge"))
    assert answer.status_code == 200
    assert notified(answer) == [
        {
            "id": str(mine.pk),
            "status": "completed",
            "label": "a heron at dawn",
            "url": reverse("generation-detail", args=[mine.pk]),
        }
    ]
    # The next poll carries the new cursor: nothing new, nothing told again.
    assert (
        client.get(badge_url(answer.content.decode()), **htmx("running-badge")).status_code == 204
    )


def test_failed_and_needs_attention_are_told_too(client, user):
    running = make_gen(Status.IN_PROGRESS, user=user)
    sending = make_gen(Status.SUBMITTING, user=user)
    url = badge_url(client.get(reverse("gallery")).content.decode())
    assert t.fail(running.pk, [Status.IN_PROGRESS], note="x", error="broke")
    assert t.flag_for_a_person(sending.pk, note="x", error="no answer")
    told = notified(client.get(url, **htmx("running-badge")))
    assert sorted(e["status"] for e in told) == ["failed", "needs_attention"]


def test_the_badge_poll_costs_the_same_for_1_event_as_for_5(client, user):
    def poll_queries(n: int) -> int:
        url = badge_url(client.get(reverse("jobs")).content.decode())
        for _ in range(n):
            gen = make_gen(Status.IN_PROGRESS, user=user)
            assert t.fail(gen.pk, [Status.IN_PROGRESS], note="x", error="broke")
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url, **htmx("running-badge"))
        assert len(notified(response)) == n
        return len(ctx.captured_queries)

    assert poll_queries(1) == poll_queries(5)


def test_a_page_without_the_cursor_is_told_nothing(client, user):
    gen = make_gen(Status.IN_PROGRESS, user=user)
    assert t.fail(gen.pk, [Status.IN_PROGRESS], note="x", error="broke")
    make_gen(Status.QUEUED, user=user)  # the count changed: the badge is drawn again
    response = client.get("/jobs/count/?v=0", **htmx("running-badge"))
    assert response.status_code == 200 and notified(response) == []
