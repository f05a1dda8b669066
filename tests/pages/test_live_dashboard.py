"""The Jobs page stays cheap with many viewers (issue 12, point 2): its change stamp is kept on
write (``generations.livestamp``), so an unchanged poll reads the cache and not the table; a
service poll that stamps ``last_polled_at`` changes nothing shown; when something changed only
the sections that did go out, out of band; the page lists a few rows per section and says how
many there are."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations import livestamp
from generations.models import Generation, Status
from generations.pipeline import transitions
from generations.queries import DASHBOARD_LIMITS
from tests.pages.conftest import htmx, make_gen

LIVE = re.compile(r'<div id="jobs-live"[^>]*?hx-get="([^"]+)"', re.S)
TABLE = Generation._meta.db_table


def poll_url(html: str) -> str:
    found = LIVE.search(html)
    assert found is not None, html[:2000]
    return found.group(1).replace("&amp;", "&")


def poll(client, url: str):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **htmx("jobs-live"))
    return response, [q["sql"] for q in ctx.captured_queries]


def oob_ids(html: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"[^>]*hx-swap-oob="true"', html))


def test_an_unchanged_poll_is_a_204_that_never_reads_the_jobs_table(client):
    make_gen(Status.IN_PROGRESS)
    make_gen(Status.COMPLETED)
    url = poll_url(client.get("/jobs/").content.decode())
    response, sql = poll(client, url)
    assert response.status_code == 204 and response.content == b""
    assert not [q for q in sql if TABLE in q], sql  # session and user only


def test_the_service_poll_stamping_last_polled_at_changes_nothing_shown(client):
    running = make_gen(Status.IN_PROGRESS)
    url = poll_url(client.get("/jobs/").content.decode())
    # What the poller writes when the service says "still dreaming" (a queryset UPDATE).
    Generation.objects.filter(pk=running.pk).update(
        last_polled_at=timezone.now(), next_poll_at=timezone.now()
    )
    assert poll(client, url)[0].status_code == 204


def test_a_status_move_sends_only_the_sections_it_left_and_entered(client):
    running = make_gen(Status.IN_PROGRESS, user_prompt="the one that finishes")
    make_gen(Status.QUEUED, user_prompt="still waiting")
    url = poll_url(client.get("/jobs/").content.decode())
    assert transitions.move(running.pk, [Status.IN_PROGRESS], Status.COMPLETED, note="test")
    response, _ = poll(client, url)
    html = response.content.decode()
    assert response.status_code == 200
    assert oob_ids(html) == {"jobs-stats", "jobs-running", "finished-jobs"}
    assert "the one that finishes" in html and "still waiting" not in html  # queued: untouched
    assert 'id="jobs"' not in html  # never the whole dashboard
    # The poller comes back with the new stamp: the next poll is unchanged again.
    again = poll_url(html)
    assert again != url and poll(client, again)[0].status_code == 204


def test_an_edit_saved_through_the_orm_is_seen(client):
    gen = make_gen(Status.QUEUED, user_prompt="before the edit")
    url = poll_url(client.get("/jobs/").content.decode())
    gen.user_prompt = "after the edit"
    gen.save()
    response, _ = poll(client, url)
    assert response.status_code == 200 and "after the edit" in response.content.decode()


def test_a_delete_is_seen(client):
    gen = make_gen(Status.FAILED, user_prompt="soon gone")
    make_gen(Status.IN_PROGRESS)
    url = poll_url(client.get("/jobs/").content.decode())
    gen.delete()
    response, _ = poll(client, url)
    assert response.status_code == 200 and "soon gone" not in response.content.decode()
    assert "failed-jobs" in oob_ids(response.content.decode())


def test_a_stale_or_odd_stamp_gets_every_section(client):
    make_gen(Status.IN_PROGRESS)
    response, _ = poll(client, "/jobs/?v=nonsense")
    assert response.status_code == 200
    assert oob_ids(response.content.decode()) >= {
        "jobs-stats",
        "jobs-attention",
        "jobs-running",
        "jobs-queued",
        "failed-jobs",
        "finished-jobs",
    }


def test_the_stamp_survives_a_lost_cache_key(client):
    """A flushed cache starts the counters at random values: the page's stamp no longer
    matches, and the page is drawn again (never a stale 204 by chance)."""
    from django.core.cache import cache

    make_gen(Status.IN_PROGRESS)
    url = poll_url(client.get("/jobs/").content.decode())
    cache.delete_many([f"live:jobs:{name}" for name in livestamp.SECTIONS])
    assert poll(client, url)[0].status_code == 200


def test_the_dashboard_lists_a_few_rows_per_section_and_says_how_many(client):
    for _ in range(DASHBOARD_LIMITS["running"] + 5):
        make_gen(Status.IN_PROGRESS)
    for _ in range(DASHBOARD_LIMITS["queued"] + 3):
        make_gen(Status.QUEUED)
    html = client.get("/jobs/").content.decode()
    running = re.search(r'id="jobs-running".*?</section>', html, re.S).group(0)
    queued = re.search(r'id="jobs-queued".*?</section>', html, re.S).group(0)
    assert running.count('class="job job-') == DASHBOARD_LIMITS["running"]
    assert queued.count('class="job job-') == DASHBOARD_LIMITS["queued"]
    assert f"The {DASHBOARD_LIMITS['running']} oldest of {DASHBOARD_LIMITS['running'] + 5}" in (
        running
    )
    assert f'<span class="count">{DASHBOARD_LIMITS["queued"] + 3}</span>' in queued


def test_the_poll_and_the_sections_cost_the_same_queries_with_5_or_50_jobs(client):
    def costs() -> tuple[int, int]:
        url = poll_url(client.get("/jobs/").content.decode())
        quiet = len(poll(client, url)[1])
        make_gen(Status.IN_PROGRESS)
        return quiet, len(poll(client, url)[1])

    for _ in range(5):
        make_gen(Status.IN_PROGRESS)
    few = costs()
    for _ in range(45):
        make_gen(Status.IN_PROGRESS)
        make_gen(Status.COMPLETED)
    assert costs() == few


def test_without_a_shared_cache_the_tables_stamp_is_added(client):
    """No Redis (a laptop on the filesystem broker): the worker's bumps stay in its process, so
    a status moved there (here: a raw UPDATE, which bumps nothing) is seen through the table."""
    from django.test import override_settings

    locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    gen = make_gen(Status.IN_PROGRESS)
    with override_settings(CACHES=locmem):
        assert not livestamp.shared()
        url = poll_url(client.get("/jobs/").content.decode())
        assert "~" in url and poll(client, url)[0].status_code == 204
        Generation.objects.filter(pk=gen.pk).update(
            status=Status.COMPLETED, status_changed_at=timezone.now()
        )
        assert poll(client, url)[0].status_code == 200
