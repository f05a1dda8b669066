"""Getting a finished job back on its feet: an expired CDN link is asked for again and the copy
made from the fresh one; a copy given up on can be started again by a person ("Copy again", on
the pages and in ``manage.py jobs``)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations import pipeline
from generations.models import Generation, Status
from generations.pipeline.copy import ASSET_MAX_ATTEMPTS
from tests.factories import in_progress_row, make_user, remote_create
from tests.pages.conftest import htmx, make_gen


def finished_row(sim, prompt: str) -> Generation:
    """A generation the simulator finished, polled into a completed row (its copy due)."""
    remote = remote_create(sim, prompt)
    sim.force_complete(remote["id"])
    row = in_progress_row(remote["id"], prompt=prompt)
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.COMPLETED
    return row


def make_due(row: Generation) -> None:
    Generation.objects.filter(pk=row.pk).update(assets_next_at=timezone.now())


def given_up(user=None, **fields) -> Generation:
    """A finished row whose copy was given up on (its link answered 404 to every try)."""
    return make_gen(
        Status.COMPLETED,
        user=user,
        asset_attempts=ASSET_MAX_ATTEMPTS,
        asset_error="Download answered 404",
        **fields,
    )


# --- the copy step -----------------------------------------------------------------------------
def test_an_expired_link_is_asked_for_again_and_the_copy_made_from_the_fresh_one(db, sim):
    sim.configure(expire_link_rate=1.0)
    row = finished_row(sim, "a lighthouse in a storm")
    old_url = row.video_url

    assert pipeline.copy_assets(row.pk) == "retry"  # 404: the service is asked for a fresh link
    row.refresh_from_db()
    assert row.video_url != old_url and row.video_url.startswith(sim.base_url)
    assert not row.video_file and row.assets_next_at is not None
    assert "expired" in row.asset_error

    make_due(row)
    assert pipeline.copy_assets(row.pk) == "copied"
    row.refresh_from_db()
    assert row.video_file and row.thumbnail_file and row.asset_error == ""
    assert sim.ledger()["faults"]["expired_link"] == 1
    assert len(sim.ledger()["posts"]) == 1  # asking again is a GET: nothing paid twice


def test_an_expired_link_the_service_no_longer_knows_is_given_up(db, sim):
    sim.configure(expire_link_rate=1.0)
    row = finished_row(sim, "a forgotten video")
    sim.reset()  # the service forgets it: no fresh link to be had

    assert pipeline.copy_assets(row.pk) == "failed"
    row.refresh_from_db()
    assert row.assets_next_at is None and not row.video_file
    assert "no longer" in row.asset_error
    assert Generation.objects.copy_given_up().filter(pk=row.pk).exists()


def test_expired_links_are_asked_for_again_a_bounded_number_of_times(db, sim):
    sim.configure(expire_link_rate=1.0)
    row = finished_row(sim, "a video whose links keep expiring")
    Generation.objects.filter(pk=row.pk).update(asset_attempts=ASSET_MAX_ATTEMPTS - 1)

    assert pipeline.copy_assets(row.pk) == "failed"  # the last attempt: given up, not renewed
    row.refresh_from_db()
    assert row.assets_next_at is None and row.asset_attempts == ASSET_MAX_ATTEMPTS


# --- "Copy again" ------------------------------------------------------------------------------
@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_copy_again_starts_a_given_up_copy_afresh(db, sim):
    from generations import actions

    sim.configure(expire_link_rate=1.0)
    row = finished_row(sim, "copied at the second go")
    Generation.objects.filter(pk=row.pk).update(
        assets_next_at=None, asset_attempts=ASSET_MAX_ATTEMPTS, asset_error="gave up"
    )
    actions.copy_again(Generation.objects.get(pk=row.pk), None)
    row.refresh_from_db()
    assert row.asset_attempts == 0 and row.assets_next_at is not None
    assert "copy again" in row.events.last().note
    assert pipeline.copy_assets(row.pk) == "retry"  # the link had expired: a fresh one asked for
    make_due(row)
    assert pipeline.copy_assets(row.pk) == "copied"


def test_copy_again_is_only_for_a_given_up_copy(db):
    from generations import actions

    for gen in (make_gen(Status.FAILED), make_gen(Status.COMPLETED, assets_next_at=timezone.now())):
        with pytest.raises(actions.ServiceError, match="Only a finished video"):
            actions.copy_again(gen, None)


@pytest.mark.parametrize("use_htmx", [False, True])
def test_the_pages_offer_copy_again_to_the_owner_and_it_works(client, user, use_htmx):
    gen = given_up(user=user)
    form = f'action="{reverse("generation-copy-again", args=[gen.pk])}"'
    assert form in client.get(reverse("generation-detail", args=[gen.pk])).content.decode()
    assert form in client.get(reverse("jobs")).content.decode()

    headers = htmx("jobs") if use_htmx else {}
    response = client.post(reverse("generation-copy-again", args=[gen.pk]), **headers)
    assert response.status_code == (200 if use_htmx else 302)
    if use_htmx:
        assert b'id="jobs"' in response.content and b"Copying again" in response.content
    gen.refresh_from_db()
    assert gen.assets_next_at is not None and gen.asset_attempts == 0


def test_copy_again_is_not_offered_to_others_and_refused_to_them(client, user):
    bob = make_user("bob")
    theirs = given_up(user=bob)
    html = client.get(reverse("generation-detail", args=[theirs.pk])).content.decode()
    assert reverse("generation-copy-again", args=[theirs.pk]) not in html
    response = client.post(reverse("generation-copy-again", args=[theirs.pk]), follow=True)
    assert "Only the person who made this job" in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.assets_next_at is None


def test_manage_py_jobs_copy_again(db):
    gen = given_up()
    out = StringIO()
    call_command("jobs", stdout=out)
    assert "finished without a local copy" in out.getvalue() and str(gen.pk) in out.getvalue()
    call_command("jobs", "copy-again", str(gen.pk), stdout=out)
    assert f"{gen.pk}: copy-again done" in out.getvalue()
    gen.refresh_from_db()
    assert gen.assets_next_at is not None
    with pytest.raises(CommandError, match="Only a finished video"):
        call_command("jobs", "copy-again", str(gen.pk), stdout=out)


# --- "Check again" for a job that timed out -----------------------------------------------------
def timed_out_row(sim, settings, prompt: str) -> Generation:
    """A job the service accepted and lumaweb gave up on: its poll deadline passed."""
    settings.LUMA_POLL_DEADLINE = 60
    remote = remote_create(sim, prompt)
    long_ago = timezone.now() - timedelta(minutes=5)
    row = in_progress_row(remote["id"], prompt=prompt)
    Generation.objects.filter(pk=row.pk).update(last_progress_at=long_ago, submitted_at=long_ago)
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.FAILED and row.error.startswith("Timed out")
    return row


def test_check_again_polls_a_timed_out_job_once_more_and_it_completes_unpaid(db, sim, settings):
    from generations import actions

    row = timed_out_row(sim, settings, "a slow sunrise")
    sim.force_complete(row.remote_id)  # the service finished it after all

    actions.check_again(Generation.objects.get(pk=row.pk), None)
    row.refresh_from_db()
    assert row.status == Status.IN_PROGRESS and row.error == ""
    assert "check again" in row.events.last().note
    stats = pipeline.poll_in_flight()
    assert stats.to_copy == [row.pk]
    row.refresh_from_db()
    assert row.status == Status.COMPLETED and row.video_url
    assert pipeline.copy_assets(row.pk) == "copied"
    assert len(sim.ledger()["posts"]) == 1  # no new POST: never a second charge
    row.refresh_from_db()
    assert row.posts_sent == 1 and row.posts_authorized == 1


def test_a_job_still_unknown_when_checked_again_times_out_again_after_the_deadline(
    db, sim, settings
):
    from generations import actions

    row = timed_out_row(sim, settings, "still nothing")
    sim.reset()  # the service forgot it
    actions.check_again(Generation.objects.get(pk=row.pk), None)
    assert pipeline.poll_in_flight().outcomes == {"missing": 1}  # a fresh deadline
    long_ago = timezone.now() - timedelta(minutes=5)
    Generation.objects.filter(pk=row.pk).update(last_progress_at=long_ago, next_poll_at=long_ago)
    pipeline.poll_in_flight()
    row.refresh_from_db()
    assert row.status == Status.FAILED and "no longer knows" in row.error


def test_check_again_is_only_for_a_job_that_timed_out(db):
    from generations import actions

    refused = (
        make_gen(Status.FAILED),  # the service said no (a 4xx): nothing to ask it about
        make_gen(Status.FAILED, state="failed"),  # the service said it failed
        make_gen(Status.COMPLETED),
        make_gen(Status.NEEDS_ATTENTION),
    )
    for gen in refused:
        if gen.status == Status.FAILED and gen.state != "failed":
            Generation.objects.filter(pk=gen.pk).update(remote_id=None)
            gen.refresh_from_db()
        with pytest.raises(actions.ServiceError, match="Only a job that timed out"):
            actions.check_again(gen, None)
        assert Generation.objects.get(pk=gen.pk).status == gen.status


def timed_out(user=None) -> Generation:
    return make_gen(
        Status.FAILED,
        user=user,
        state="dreaming",
        error="Timed out: no progress for 10 minutes (last state 'dreaming').",
        error_code=None,
        error_request_id="",
    )


@pytest.mark.parametrize("use_htmx", [False, True])
def test_the_pages_offer_check_again_to_the_owner_and_it_works(client, user, use_htmx):
    gen = timed_out(user=user)
    form = f'action="{reverse("generation-check-again", args=[gen.pk])}"'
    assert form in client.get(reverse("generation-detail", args=[gen.pk])).content.decode()
    assert form in client.get(reverse("jobs")).content.decode()
    plain_failure = make_gen(Status.FAILED, user=user)
    html = client.get(reverse("generation-detail", args=[plain_failure.pk])).content.decode()
    assert reverse("generation-check-again", args=[plain_failure.pk]) not in html

    headers = htmx("jobs") if use_htmx else {}
    response = client.post(reverse("generation-check-again", args=[gen.pk]), **headers)
    assert response.status_code == (200 if use_htmx else 302)
    if use_htmx:
        assert b'id="jobs"' in response.content and b"Checking again" in response.content
    gen.refresh_from_db()
    assert gen.status == Status.IN_PROGRESS and gen.posts_authorized == 1


def test_check_again_is_refused_to_others(client, user):
    theirs = timed_out(user=make_user("bob"))
    html = client.get(reverse("generation-detail", args=[theirs.pk])).content.decode()
    assert reverse("generation-check-again", args=[theirs.pk]) not in html
    response = client.post(reverse("generation-check-again", args=[theirs.pk]), follow=True)
    assert "Only the person who made this job" in response.content.decode()
    assert Generation.objects.get(pk=theirs.pk).status == Status.FAILED


def test_manage_py_jobs_check_again(db):
    gen = timed_out()
    out = StringIO()
    call_command("jobs", stdout=out)
    assert "timed out" in out.getvalue() and str(gen.pk) in out.getvalue()
    call_command("jobs", "check-again", str(gen.pk), stdout=out)
    assert f"{gen.pk}: check-again done (in_progress)" in out.getvalue()
    with pytest.raises(CommandError, match="Only a job that timed out"):
        call_command("jobs", "check-again", str(gen.pk), stdout=out)
