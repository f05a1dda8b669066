"""Getting a finished job back on its feet: an expired CDN link is asked for again and the copy
made from the fresh one; a copy given up on can be started again by a person ("Copy again", on
the pages and in ``manage.py jobs``)."""

from __future__ import annotations

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
