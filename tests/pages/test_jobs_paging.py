"""The dashboard's Failed and Recently finished lists page back through older jobs ("Older"
links, keyset on when they got there), with htmx and without, at a constant query count."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations.models import Generation, Status
from generations.queries import DASHBOARD_LIMITS
from tests.pages.conftest import htmx, make_gen


def rows(status: str, n: int, word: str) -> list[Generation]:
    """``n`` rows, the newest first, a minute apart (two share a moment: the pk decides)."""
    now = timezone.now()
    made = []
    for i in range(n):
        moment = now - timedelta(minutes=i - (1 if i == 3 else 0))  # rows 2 and 3: one moment
        made.append(make_gen(status, user_prompt=f"{word} {i:02d}", status_changed_at=moment))
    return made


def prompts(html: str, word: str) -> list[str]:
    return re.findall(rf"{word} \d\d", html)


def older_link(html: str, section: str) -> str:
    match = re.search(rf'<a [^>]*href="([^"]*{section}=[^"]*)"[^>]*>Older', html)
    assert match, f"no Older link for {section}"
    return match.group(1).replace("&amp;", "&")


def test_the_failed_list_pages_back_without_repeats_or_gaps(client):
    size = DASHBOARD_LIMITS["failed"]
    rows(Status.FAILED, size + 5, "broken")
    first = client.get("/jobs/").content.decode()
    seen = prompts(first, "broken")
    assert seen[:2] == ["broken 00", "broken 01"]  # newest first
    assert set(seen) == {f"broken {i:02d}" for i in range(size)}
    link = older_link(first, "failed")
    second = client.get(link).content.decode()
    rest = prompts(second, "broken")
    assert len(rest) == 5 and not set(rest) & set(seen)
    assert set(seen) | set(rest) == {f"broken {i:02d}" for i in range(size + 5)}
    assert "Older failed" not in second  # the end
    assert 'href="/jobs/#failed-jobs"' in second  # back to the newest


def test_the_finished_list_pages_back_and_keeps_the_failed_list_where_it_was(client):
    size = DASHBOARD_LIMITS["finished"]
    rows(Status.COMPLETED, size * 2 + 1, "done")
    rows(Status.FAILED, DASHBOARD_LIMITS["failed"] + 1, "broken")
    first = client.get("/jobs/").content.decode()
    failed_older = older_link(first, "failed")
    on_failed_page = client.get(failed_older).content.decode()
    link = older_link(on_failed_page, "finished")
    assert "failed=" in link  # the other list stays on its page
    page2 = client.get(link).content.decode()
    assert prompts(page2, "broken") == prompts(on_failed_page, "broken")
    finished_2 = prompts(page2, "done")
    page3 = client.get(older_link(page2, "finished")).content.decode()
    finished_3 = prompts(page3, "done")
    assert len(finished_2) == size and len(finished_3) == 1
    assert not set(finished_2) & set(prompts(first, "done"))


def test_older_with_htmx_swaps_the_dashboard_and_its_poll_keeps_the_page(client):
    rows(Status.FAILED, DASHBOARD_LIMITS["failed"] + 2, "broken")
    make_gen(Status.IN_PROGRESS)  # something in flight: the dashboard polls
    first = client.get("/jobs/").content.decode()
    link = older_link(first, "failed")
    assert re.search(rf'hx-get="{re.escape(link.split("#")[0])}"', first.replace("&amp;", "&"))
    response = client.get(link.split("#")[0], **htmx("jobs"))
    assert response.status_code == 200
    fragment = response.content.decode()
    assert "<html" not in fragment and len(prompts(fragment, "broken")) == 2
    poll = re.search(r'id="jobs-live"[^>]*hx-get="([^"]+)"', fragment, re.S).group(1)
    assert "failed=" in poll and "v=" in poll
    poll = poll.replace("&amp;", "&")
    assert (
        client.get(poll, **htmx("jobs-live")).status_code == 204
    )  # unchanged: nothing re-rendered


def test_a_bad_page_position_shows_the_newest_jobs(client):
    rows(Status.FAILED, 3, "broken")
    for cursor in ("nonsense", "1.2.3", "99999999999999999999.x", "%00"):
        response = client.get(f"/jobs/?failed={cursor}&finished={cursor}")
        assert response.status_code == 200
        assert len(prompts(response.content.decode(), "broken")) == 3


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_an_older_page_costs_what_the_first_page_costs(client):
    rows(Status.FAILED, DASHBOARD_LIMITS["failed"] + 3, "broken")
    rows(Status.COMPLETED, DASHBOARD_LIMITS["finished"] + 3, "done")
    first_html = client.get("/jobs/").content.decode()
    older = older_link(first_html, "finished")
    both = older_link(client.get(older).content.decode(), "failed")
    counts = {queries_for(client, url) for url in ("/jobs/", older, both)}
    rows(Status.FAILED, 60, "more")
    rows(Status.COMPLETED, 60, "more")
    counts |= {queries_for(client, url) for url in ("/jobs/", older, both)}
    assert len(counts) == 1, counts


def test_a_job_action_on_an_older_page_answers_with_that_page(client, user):
    made = rows(Status.FAILED, DASHBOARD_LIMITS["failed"] + 2, "broken")
    Generation.objects.filter(pk__in=[g.pk for g in made]).update(created_by=user)
    make_gen(Status.IN_PROGRESS)
    older = older_link(client.get("/jobs/").content.decode(), "failed").split("#")[0]
    oldest = made[-1]
    headers = htmx("jobs", HTTP_HX_CURRENT_URL=f"http://testserver{older}")
    response = client.post(f"/generations/{oldest.pk}/retry/", **headers)
    fragment = response.content.decode()
    poll = re.search(r'id="jobs-live"[^>]*hx-get="([^"]+)"', fragment, re.S).group(1)
    assert "failed=" in poll  # still on the older page
    failed = re.search(r'id="failed-jobs".*?</section>', fragment, re.S).group(0)
    assert prompts(failed, "broken") == [f"broken {len(made) - 2:02d}"]  # the other one left
