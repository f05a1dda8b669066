"""Is anyone working? Workers and beat write heartbeats; every page says when none was seen for
a minute, and /healthz reports them. (The real worker and beat writing theirs: the pipeline
test at the end.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations.models import Heartbeat
from tests.conftest import wait_for
from tests.factories import heartbeat, make_user

NO_WORKER = "Jobs will wait: no worker is running"
NO_BEAT = "Jobs will wait: no scheduler (beat) is running"
NEITHER = "Jobs will wait: no worker and no scheduler (beat) are running"


@pytest.fixture
def browser(db) -> Client:
    client = Client()
    client.force_login(make_user())
    return client


def banner(client: Client, url: str = "/") -> str:
    html = client.get(url).content.decode()
    if 'id="process-banner"' not in html:
        return ""
    start = html.index('id="process-banner"')
    return " ".join(html[start : html.index("</section>", start)].split())


@pytest.mark.parametrize("url", ["/", "/jobs/", "/generations/new/", "/accounts/password_change/"])
def test_every_page_says_jobs_will_wait_when_no_worker_and_no_beat_were_seen(browser, url):
    heartbeat("worker", seconds_ago=120)
    heartbeat("beat", seconds_ago=120)
    text = banner(browser, url)
    assert NEITHER in text
    assert "./scripts/run" in text and "docker compose up -d worker beat" in text


def test_fresh_heartbeats_of_both_kinds_take_the_banner_away(browser):
    heartbeat("worker", seconds_ago=5)
    heartbeat("beat", seconds_ago=5)
    assert banner(browser) == ""


def test_the_banner_names_only_what_is_missing(browser):
    heartbeat("worker")
    heartbeat("beat", seconds_ago=61)
    text = banner(browser)
    assert NO_BEAT in text and "docker compose up -d beat" in text and "no worker" not in text
    Heartbeat.objects.all().delete()
    heartbeat("beat")
    text = banner(browser)
    assert NO_WORKER in text and "docker compose up -d worker" in text and "beat is" not in text


def test_a_few_missed_heartbeats_do_not_bring_the_banner_so_it_does_not_flap(browser, settings):
    # Written every 15 s, stale after 60 s: three beats can be late before anyone is told.
    assert settings.LUMA_HEARTBEAT_STALE_AFTER >= 3 * settings.LUMA_HEARTBEAT_INTERVAL
    heartbeat("worker", seconds_ago=50)
    heartbeat("beat", seconds_ago=50)
    assert banner(browser) == ""


def test_strangers_see_no_banner(db):
    assert 'id="process-banner"' not in Client().get("/accounts/login/").content.decode()


def test_the_banner_costs_one_query(browser):
    heartbeat("worker")
    with CaptureQueriesContext(connection) as seen:
        browser.get("/accounts/password_change/")
    heartbeat_queries = [q["sql"] for q in seen.captured_queries if "heartbeat" in q["sql"]]
    assert len(heartbeat_queries) == 1, heartbeat_queries


def test_healthz_reports_each_kind_when_last_seen_and_how_many_in_the_last_minute(db):
    heartbeat("worker", pid=10)
    heartbeat("worker", pid=11, seconds_ago=10)
    heartbeat("worker", pid=12, seconds_ago=600)  # gone
    heartbeat("beat", pid=20, seconds_ago=300)  # gone: jobs wait, the app is still up
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    workers, beat = body["processes"]["worker"], body["processes"]["beat"]
    assert workers["running"] == 2 and beat["running"] == 0
    newest = Heartbeat.objects.get(kind="worker", pid=10).last_seen
    assert workers["last_seen"] == newest.isoformat()
    assert beat["last_seen"] == Heartbeat.objects.get(kind="beat").last_seen.isoformat()


def test_a_heartbeat_updates_its_own_row_and_prunes_processes_gone_for_an_hour(db):
    heartbeat("worker", pid=1, seconds_ago=30)
    heartbeat("worker", pid=2, seconds_ago=2 * 3600)  # a worker stopped two hours ago
    heartbeat("worker", pid=1)
    rows = list(Heartbeat.objects.values_list("pid", "last_seen"))
    assert [pid for pid, _ in rows] == [1]
    assert timezone.now() - rows[0][1] < timedelta(seconds=5)


@pytest.mark.pipeline
def test_a_running_worker_and_beat_send_heartbeats_and_the_banner_goes(pipeline, client):
    def both_seen() -> bool:
        fresh = Heartbeat.objects.filter(last_seen__gte=Heartbeat.stale_before())
        return {"worker", "beat"} <= set(fresh.values_list("kind", flat=True))

    wait_for(both_seen, 30, "heartbeats from the worker and beat")
    client.force_login(make_user())
    assert banner(client) == ""
    processes = Client().get("/healthz").json()["processes"]
    assert processes["worker"]["running"] >= 1 and processes["beat"]["running"] >= 1
    # They keep beating: each row's last_seen moves on (LUMA_HEARTBEAT_INTERVAL in the tests).
    before = dict(Heartbeat.objects.values_list("kind", "last_seen"))

    def moved_on() -> bool:
        now = dict(Heartbeat.objects.values_list("kind", "last_seen"))
        return all(now.get(kind, before[kind]) > before[kind] for kind in before)

    wait_for(moved_on, 30, "a second heartbeat from each")


@pytest.mark.pipeline
def test_a_cleanly_stopped_worker_and_beat_remove_their_own_heartbeats(
    pipeline_env, spare_redis_url, transactional_db, tmp_path
):
    """A worker or beat stopped with SIGTERM (its clean, warm shutdown) deletes its row on the
    way out: the banner and /healthz know at once, not a minute later. A killed one cannot:
    its row goes stale as before."""
    import signal

    from devtools.processes import CeleryProcesses

    procs = CeleryProcesses({**pipeline_env, "REDIS_URL": spare_redis_url}, tmp_path)
    try:
        worker, beat = procs.start("worker1"), procs.start("beat")
        pids = {"worker": worker.pid, "beat": beat.pid}

        def rows() -> dict[str, int]:
            mine = Heartbeat.objects.filter(pid__in=pids.values())
            return dict(mine.values_list("kind", "pid"))

        wait_for(lambda: rows() == pids, 60, "heartbeats of the worker and beat just started")
        procs.kill("worker1", signal.SIGTERM)  # waits for the process to end
        assert worker.returncode is not None
        assert rows() == {"beat": beat.pid}, procs.logs()
        procs.kill("beat", signal.SIGTERM)
        assert rows() == {}, procs.logs()
        # A killed worker says nothing: its row stays (and goes stale in a minute).
        killed = procs.start("worker2")
        wait_for(lambda: Heartbeat.objects.filter(pid=killed.pid).exists(), 60, "its heartbeat")
        procs.kill("worker2", signal.SIGKILL)
        assert Heartbeat.objects.filter(pid=killed.pid).exists()
    finally:
        procs.stop_all()
