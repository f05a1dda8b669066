"""The account hold: out of credits or a refused key holds every job in the queue, one probe per
``LUMA_HOLD_RETRY`` tries again, and the first one accepted lets them all go.

The fast tests drive the pipeline functions directly against the simulator over real HTTP (its
credits and key set through its control endpoint); one ``pipeline`` test runs the same story
through a real worker and beat.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from devtools.chaos import publishing_to
from generations import actions, pipeline, tasks
from generations.client import PermanentError
from generations.inputs import GenerationRequest
from generations.models import AccountHold, Generation, HoldCause, Status
from generations.pipeline import hold
from tests.conftest import wait_for
from tests.factories import make_user

OUT_OF_CREDITS = "run out of credits"


# --- helpers ------------------------------------------------------------------------------------
def queue(n: int, who: str = "alice") -> list[Generation]:
    owner = make_user(who)
    return [
        actions.create_generation(owner, GenerationRequest(user_prompt=f"{who}'s job {i}"))
        for i in range(n)
    ]


def rows(gens: list[Generation]) -> list[Generation]:
    return [Generation.objects.get(pk=gen.pk) for gen in gens]


def posts_reaching(sim) -> int:
    """Every request the simulator saw (no job is in progress here, so each one is a POST)."""
    return sim.ledger()["requests"]


def submit_all(gens: list[Generation]) -> list[str]:
    """Every row's wake-up arrives (as after a create, or a sweep): what each submit did."""
    return [str(pipeline.submit(gen.pk).result) for gen in gens]


def next_interval(settings) -> None:
    """Let the hold's interval pass (``LUMA_HOLD_RETRY`` is 1 s in these tests)."""
    held = AccountHold.objects.get()
    time.sleep(max(0.0, (held.retry_at - timezone.now()).total_seconds()) + 0.05)


def finish(gens: list[Generation], sim) -> None:
    """Complete every accepted job upstream and poll once: the status a person waits for."""
    for gen in rows(gens):
        sim.force_complete(gen.remote_id)
    Generation.objects.filter(pk__in=[g.pk for g in gens]).update(
        next_poll_at=timezone.now() - timedelta(seconds=1)
    )
    pipeline.poll_in_flight()


@pytest.fixture
def held_sim(sim, settings):
    settings.LUMA_HOLD_RETRY = 1.0
    sim.configure(credits=0)
    return sim


def admin_client() -> Client:
    client = Client()
    client.force_login(make_user("boss", is_superuser=True))  # superusers are admins
    return client


def member_client(name: str = "bob") -> Client:
    client = Client()
    client.force_login(make_user(name))
    return client


def put_on_hold_by_the_service(sim, n: int = 3) -> list[Generation]:
    """Credits at 0, ``n`` jobs queued, every wake-up delivered: the account is on hold."""
    sim.configure(credits=0)
    gens = queue(n)
    submit_all(gens)
    assert hold.current() is not None
    return gens


# --- out of credits: nothing lost, nothing failed -----------------------------------------------
def test_out_of_credits_keeps_every_job_queued_and_sends_nothing_more(db, held_sim):
    gens = queue(4)
    assert submit_all(gens) == ["held"] * 4
    for gen in rows(gens):
        assert gen.status == Status.QUEUED
        assert gen.posts_sent == 0
        assert gen.attempts == 0  # neither the refusal nor the held claims burn an attempt
    assert not Generation.objects.filter(status=Status.FAILED).exists()
    assert posts_reaching(held_sim) == 1  # the refused one; the others saw the hold first
    assert held_sim.ledger()["posts"] == []
    held = AccountHold.objects.get()
    assert held.cause == HoldCause.CREDITS and OUT_OF_CREDITS in held.reason
    assert held.status_code in (402, 403)


def test_the_refused_job_says_why_it_waits(db, held_sim):
    [gen] = queue(1)
    pipeline.submit(gen.pk)
    gen.refresh_from_db()
    assert OUT_OF_CREDITS in gen.error and gen.error_code == 403
    assert "account on hold" in gen.events.last().note


def test_the_banner_shows_the_hold_to_another_user_on_the_gallery(db, held_sim):
    put_on_hold_by_the_service(held_sim, 3)
    page = member_client("bob").get("/").content.decode()
    assert 'id="account-hold"' in page
    assert "out of credits" in page
    assert "3 jobs wait in the queue" in page
    assert "Resume now" not in page  # bob is no admin


def test_no_banner_while_the_account_is_fine(db, sim):
    queue(1)
    assert 'id="account-hold"' not in member_client().get("/").content.decode()


def test_healthz_reports_the_hold_and_stays_200(db, held_sim):
    put_on_hold_by_the_service(held_sim, 2)
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["hold"]["cause"] == "credits" and body["hold"]["waiting"] == 2
    assert "next_try" in body["hold"] and "since" in body["hold"]


def test_healthz_says_no_hold_when_there_is_none(db):
    assert Client().get("/healthz").json()["hold"] is None


# --- the probe ----------------------------------------------------------------------------------
def test_one_probe_per_interval_and_only_one_post_for_it(db, held_sim, settings):
    gens = put_on_hold_by_the_service(held_sim, 3)
    before = posts_reaching(held_sim)
    # Within the interval: the sweeper wakes nothing, and wake-ups send nothing.
    assert pipeline.sweep().to_submit == []
    assert submit_all(gens) == ["held"] * 3
    assert posts_reaching(held_sim) == before

    next_interval(settings)
    stats = pipeline.sweep()
    assert stats.probe == gens[0].pk and stats.to_submit == [gens[0].pk]  # the oldest
    assert pipeline.sweep().probe is None  # chosen once per interval
    # Every row's wake-up arrives, twice over: the probe alone is sent, once.
    assert submit_all(gens) + submit_all(gens) == ["held"] * 6
    assert posts_reaching(held_sim) == before + 1
    assert all(gen.status == Status.QUEUED and gen.posts_sent == 0 for gen in rows(gens))
    assert AccountHold.objects.get().probes == 1


def test_a_probe_refused_for_now_is_not_sent_again_in_the_same_interval(db, held_sim, settings):
    gens = put_on_hold_by_the_service(held_sim, 2)
    next_interval(settings)
    probe = pipeline.sweep().probe
    held_sim.configure(credits=None, rate_limit_rate=1.0, retry_after=0)
    before = posts_reaching(held_sim)
    assert pipeline.submit(probe).result == "retry"
    Generation.objects.filter(pk=probe).update(next_attempt_at=None)  # its backoff is over
    assert submit_all(gens) == ["held", "held"]
    assert posts_reaching(held_sim) == before + 1
    assert hold.current() is not None


def test_when_the_credits_come_back_the_probe_lifts_the_hold_and_every_job_completes(
    db, held_sim, settings
):
    gens = put_on_hold_by_the_service(held_sim, 4)
    next_interval(settings)
    pipeline.sweep()  # a probe into an account still empty: refused, held again
    assert submit_all(gens) == ["held"] * 4

    held_sim.configure(credits=10 * 500_000)
    next_interval(settings)
    probe = pipeline.sweep().probe
    outcome = pipeline.submit(probe)
    assert outcome.result == "accepted" and outcome.wake_waiting
    assert hold.current() is None
    woken = pipeline.sweep().to_submit
    assert sorted(map(str, woken)) == sorted(str(g.pk) for g in gens if g.pk != probe)
    assert submit_all([g for g in gens if g.pk != probe]) == ["accepted"] * 3
    finish(gens, held_sim)
    assert [gen.status for gen in rows(gens)] == [Status.COMPLETED] * 4
    assert [gen.posts_sent for gen in rows(gens)] == [1] * 4
    assert len(held_sim.ledger()["posts"]) == 4  # each paid once


def test_the_next_job_queued_is_probed_when_none_waited(db, held_sim, settings):
    gens = put_on_hold_by_the_service(held_sim, 1)
    actions.cancel_waiting(None)
    next_interval(settings)
    assert pipeline.sweep().probe is None  # nothing to try
    [new] = queue(1, "carol")
    assert pipeline.sweep().probe == new.pk
    assert gens[0].pk != new.pk


def test_an_answer_to_a_post_sent_before_the_latest_refusal_does_not_lift_the_hold(db):
    """Two POSTs out at once as the credits run out: the accepted one proves nothing."""
    started = timezone.now()
    hold.put_on_hold(HoldCause.CREDITS, "Insufficient credits", 402)
    assert not hold.lift_after_success(started)
    assert hold.current() is not None
    assert hold.lift_after_success(timezone.now())
    assert hold.current() is None


def test_lifting_the_hold_sends_the_sweep_at_once(db, held_sim, settings, spare_redis_url):
    """The submit task that saw the probe accepted wakes the sweeper instead of waiting a beat."""
    gens = put_on_hold_by_the_service(held_sim, 2)
    next_interval(settings)
    probe = pipeline.sweep().probe
    held_sim.configure(credits=None)
    box = redis.Redis.from_url(spare_redis_url)
    with publishing_to(spare_redis_url):
        tasks.submit_generation(str(probe))
    names = [json.loads(raw)["headers"]["task"] for raw in box.lrange("celery", 0, -1)]
    assert names == ["generations.tasks.sweep"]
    assert len(gens) == 2


# --- which refusals hold ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "message", "cause"),
    [
        (402, "Payment required", HoldCause.CREDITS),
        (403, "You've run out of credits", HoldCause.CREDITS),
        (403, "Insufficient balance: top up your account", HoldCause.CREDITS),
        (401, "Invalid API key", HoldCause.KEY),
        (403, "This prompt is not allowed", None),
        (400, "aspect_ratio must be one of 16:9, 9:16", None),
        (404, "Generation not found", None),
        (422, "Insufficient detail in the prompt", None),
    ],
)
def test_only_refusals_about_the_account_hold_it(status, message, cause):
    assert hold.account_refusal(PermanentError(message, status_code=status)) == cause


def test_a_refused_key_holds_too_and_keeps_the_key_out_of_the_banner(db, sim, settings):
    settings.LUMA_HOLD_RETRY = 1.0
    sim.configure(api_key="the-real-key-0042")
    settings.LUMA_API_KEY = "sk-a-wrong-key-0042-abcdef"
    gens = queue(2)
    assert submit_all(gens) == ["held", "held"]
    assert [gen.status for gen in rows(gens)] == [Status.QUEUED] * 2
    assert rows(gens)[0].error_code == 401  # the one sent; the other saw the hold first
    held = AccountHold.objects.get()
    assert held.cause == HoldCause.KEY and held.status_code == 401
    page = member_client().get("/jobs/").content.decode()
    assert "refused the API key" in page and settings.LUMA_API_KEY not in page

    settings.LUMA_API_KEY = "the-real-key-0042"  # the operator fixes the key
    next_interval(settings)
    probe = pipeline.sweep().probe
    assert pipeline.submit(probe).result == "accepted"
    assert hold.current() is None


def test_a_refusal_about_the_job_still_fails_it(db, sim):
    [gen] = queue(1)
    Generation.objects.filter(pk=gen.pk).update(aspect_ratio="5:4")  # the service refuses it
    assert pipeline.submit(gen.pk).result == "failed"
    assert hold.current() is None


# --- an admin resumes or cancels ----------------------------------------------------------------
def test_an_admin_sees_the_banner_buttons_and_resumes_from_the_page(db, held_sim):
    gens = put_on_hold_by_the_service(held_sim, 3)
    admin = admin_client()
    page = admin.get("/jobs/").content.decode()
    assert "Resume now" in page and "Cancel 3 jobs" in page
    held_sim.configure(credits=None)
    response = admin.post("/hold/resume/", {"next": "/jobs/"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert hold.current() is None
    # every waiting job is owed a wake-up, which the next sweep sends at once
    assert sorted(map(str, pipeline.sweep().to_submit)) == sorted(str(g.pk) for g in gens)
    assert submit_all(gens) == ["accepted"] * 3


def test_an_admin_cancels_every_waiting_job_from_the_page(db, held_sim):
    gens = put_on_hold_by_the_service(held_sim, 3)
    response = admin_client().post("/hold/cancel-waiting/")
    assert response.status_code == 302
    assert [gen.status for gen in rows(gens)] == [Status.CANCELLED] * 3
    assert all(gen.posts_sent == 0 for gen in rows(gens))


@pytest.mark.parametrize("url", ["/hold/resume/", "/hold/cancel-waiting/"])
def test_a_member_who_is_no_admin_can_neither_resume_nor_cancel(db, held_sim, url):
    gens = put_on_hold_by_the_service(held_sim, 2)
    assert member_client().post(url).status_code == 403
    assert hold.current() is not None
    assert [gen.status for gen in rows(gens)] == [Status.QUEUED] * 2
    with pytest.raises(actions.NotAllowed):
        actions.resume_account(make_user("bob"))


def test_the_jobs_command_shows_resumes_and_cancels(db, held_sim, capsys):
    gens = put_on_hold_by_the_service(held_sim, 2)
    call_command("jobs", "hold")
    shown = capsys.readouterr().out
    assert "out of credits" in shown and "2 jobs wait" in shown
    call_command("jobs")
    assert "account on hold" in capsys.readouterr().out
    call_command("jobs", "resume")
    assert "Resumed" in capsys.readouterr().out and hold.current() is None
    call_command("jobs", "hold")
    assert "not on hold" in capsys.readouterr().out

    submit_all(gens)  # still no credits: on hold again
    call_command("jobs", "cancel-waiting")
    assert "Cancelled 2 waiting jobs" in capsys.readouterr().out
    assert [gen.status for gen in rows(gens)] == [Status.CANCELLED] * 2


# --- the whole story through a real worker and beat ---------------------------------------------
@pytest.mark.pipeline
def test_out_of_credits_window_then_credits_back_every_job_completes(pipeline, sim):
    """The worker's LUMA_HOLD_RETRY is 1 s (tests/conftest.py ``pipeline_env``)."""
    sim.configure(credits=0)
    gens = queue(4)
    wait_for(lambda: AccountHold.objects.exists(), 20, "the account hold")
    start, requests_at_start = time.monotonic(), posts_reaching(sim)
    time.sleep(3)
    # none failed, none started (a probe may be "submitting" at the instant we look)
    assert set(Generation.objects.values_list("status", flat=True)) <= {
        Status.QUEUED,
        Status.SUBMITTING,
    }
    assert sim.ledger()["posts"] == []
    # one probe per second at most (and a refusal or two that were out before the hold)
    assert posts_reaching(sim) - requests_at_start <= time.monotonic() - start + 1

    sim.configure(credits=None)

    def all_completed() -> bool:
        return all(gen.status == Status.COMPLETED for gen in rows(gens))

    try:
        wait_for(all_completed, 40, "every held job to complete")
    except BaseException:
        print(pipeline.logs())
        raise
    assert AccountHold.objects.count() == 0
    assert len(sim.ledger()["posts"]) == 4
    assert [gen.posts_sent for gen in rows(gens)] == [1] * 4
