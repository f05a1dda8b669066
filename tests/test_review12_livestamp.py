"""Review of issue 12: every status move bumps the Jobs page's change stamp (livestamp).

``transitions.complete_many`` (the batched poll's completions) moves rows in_progress ->
completed with its own UPDATE, not through ``transitions.move``: the sections it left
("running") and entered ("finished") must be bumped all the same, or an open Jobs page keeps
showing a finished job as running (its copy settling bumps only "finished"; a copy given up
bumps nothing at all)."""

from __future__ import annotations

import secrets

from django.utils import timezone

from generations import livestamp
from generations.models import Generation, Status
from generations.pipeline import transitions as t
from tests.factories import in_progress_row


def test_a_batched_completion_bumps_the_sections_it_left_and_entered(db):
    row = in_progress_row("remote-review12-1")
    lease = secrets.token_hex(8)
    Generation.objects.filter(pk=row.pk).update(poll_lease=lease)
    before = livestamp.read()
    done = t.complete_many(
        {
            row.pk: {
                "state": "completed",
                "video_url": "https://example.invalid/v.mp4",
                "thumbnail_url": "",
                "width": 640,
                "height": 360,
            }
        },
        lease=lease,
        now=timezone.now(),
    )
    assert done == [row.pk]
    assert Generation.objects.get(pk=row.pk).status == Status.COMPLETED
    changed = livestamp.changed(before, livestamp.read())
    assert "running" in changed and "finished" in changed, changed


def test_a_copy_given_up_shows_on_the_jobs_page(db):
    """A given-up copy puts "Copy again" on the finished job: the finished section changed."""
    row = in_progress_row("remote-review12-2")
    Generation.objects.filter(pk=row.pk).update(status=Status.COMPLETED)
    before = livestamp.read()
    t.schedule_copy_retry(row.pk, next_at=None, error="Copy failed for good")
    assert "finished" in livestamp.changed(before, livestamp.read())


def test_an_open_jobs_page_sees_a_job_the_batched_poll_completed(db, sim, settings):
    """End to end: the real poll round (simulator, batched) completes a job; the open page's
    next poll must not be a 204 and must redraw the Running section it left."""
    import re

    from django.test import Client

    from generations import pipeline
    from tests.factories import make_user, remote_create

    settings.LUMA_POLL_BATCH_SIZE = 50
    client = Client()
    client.force_login(make_user("review12"))
    sim.configure(duration=3600)
    row = in_progress_row(remote_create(sim, "review12 clip")["id"], prompt="review12 clip")
    page = client.get("/jobs/").content.decode()
    found = re.search(r'<div id="jobs-live"[^>]*?hx-get="([^"]+)"', page, re.S)
    assert found is not None
    url = found.group(1).replace("&amp;", "&")
    sim.force_complete(row.remote_id)
    stats = pipeline.poll_in_flight()
    assert stats.outcomes == {"completed": 1}
    answer = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="jobs-live")
    assert answer.status_code == 200
    assert 'id="jobs-running"' in answer.content.decode()
