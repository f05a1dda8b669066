"""A POST of unknown outcome decided by the provider's list (``pipeline.lookup``): found, the
row goes on with that generation (paid once); nothing made, it is sent again; the list cannot
tell, a person decides after one more look by the sweeper.

The outcome-unknown POSTs are real: the simulator answers 502 after starting the job
(``error_after_create_rate``) or before (``error_rate``, ``error_status=502``). Until the Luma
provider (whose list is ``GET /generations``) is merged, the provider here is UmamiAI with a
list read from the simulator's own ledger of accepted POSTs, over real HTTP.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from generations import actions, pipeline, providers
from generations.client import get_client
from generations.inputs import GenerationRequest
from generations.models import Generation, Status, StatusEvent
from generations.pipeline import lookup
from generations.providers.umamiai import UmamiAI
from tests.factories import make_user, remote_create


class Listing(UmamiAI):
    """UmamiAI, with a list: the simulator's ledger of the POSTs it accepted."""

    capabilities = replace(UmamiAI.capabilities, list_lookup=True)

    def __init__(self, sim) -> None:
        self.sim = sim
        self.undecided = False
        self.looks = 0

    def find_created(
        self, submission: providers.Submission, since: datetime, until: datetime
    ) -> providers.Lookup:
        self.looks += 1
        if self.undecided:
            return providers.Lookup.undecided()
        prompt = submission.request.user_prompt
        made = [p["id"] for p in self.sim.ledger()["posts"] if p["user_prompt"] == prompt]
        if not made:
            return providers.Lookup(decided=True)
        return providers.Lookup(decided=True, found=get_client().get_many(made[-1:])[0])


@pytest.fixture
def listing(monkeypatch, sim):
    provider = Listing(sim)
    monkeypatch.setattr(providers, "current", lambda: provider)
    return provider


@pytest.fixture
def queued(db, sim):
    return actions.create_generation(
        make_user(), GenerationRequest(user_prompt="a heron at dawn", aspect_ratio="16:9")
    )


def posts_for(sim, prompt: str) -> list[dict]:
    return [p for p in sim.ledger()["posts"] if p["user_prompt"] == prompt]


def notes(gen: Generation) -> list[str]:
    return list(
        StatusEvent.objects.filter(generation=gen).order_by("pk").values_list("note", flat=True)
    )


def test_post_that_started_a_job_is_found_by_the_list_and_goes_on(queued, sim, listing):
    sim.configure(error_after_create_rate=1.0)
    assert pipeline.submit(queued.pk).result == "accepted"
    queued.refresh_from_db()
    made = posts_for(sim, queued.user_prompt)
    assert len(made) == 1
    assert queued.status == Status.IN_PROGRESS and queued.remote_id == made[0]["id"]
    assert queued.posts_sent == 1 and queued.error == ""
    assert notes(queued)[-1].startswith(lookup.FOUND_NOTE)
    assert lookup.resolved_by_list() == {"found": 1, "nothing_made": 0}
    # The poll takes it from there; nothing is sent again.
    sim.configure(error_after_create_rate=0.0)
    pipeline.poll_in_flight()
    pipeline.sweep()
    assert len(posts_for(sim, queued.user_prompt)) == 1


def test_post_that_made_nothing_is_sent_again_uncounted(queued, sim, listing):
    sim.configure(error_rate=1.0, error_status=502)
    outcome = pipeline.submit(queued.pk)
    assert outcome.result == "retry" and outcome.retry_in == 0
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert queued.posts_sent == 0 and queued.post_started_at is None
    assert notes(queued)[-1] == lookup.NOTHING_NOTE
    assert lookup.resolved_by_list() == {"found": 0, "nothing_made": 1}
    sim.configure(error_rate=0.0)
    assert pipeline.submit(queued.pk).result == "accepted"
    queued.refresh_from_db()
    assert queued.posts_sent == 1
    assert len(posts_for(sim, queued.user_prompt)) == 1


def test_list_that_cannot_tell_is_looked_at_once_more_by_the_sweeper(
    queued, sim, listing, settings
):
    settings.LUMA_LIST_LOOKUP_AGAIN_AFTER = 0
    sim.configure(error_after_create_rate=1.0)
    listing.undecided = True
    assert pipeline.submit(queued.pk).result == "needs-attention"
    queued.refresh_from_db()
    assert queued.status == Status.NEEDS_ATTENTION and queued.next_attempt_at is not None
    assert "looked at once more" in queued.error
    listing.undecided = False  # the list caught up
    stats = pipeline.sweep()
    assert stats.found_by_list == 1
    queued.refresh_from_db()
    assert queued.status == Status.IN_PROGRESS
    assert queued.remote_id == posts_for(sim, queued.user_prompt)[0]["id"]
    assert queued.posts_sent == 1 and queued.next_attempt_at is None
    assert notes(queued)[-1].startswith(lookup.FOUND_NOTE)


def test_second_look_not_before_its_time(queued, sim, listing, settings):
    settings.LUMA_LIST_LOOKUP_AGAIN_AFTER = 600
    sim.configure(error_after_create_rate=1.0)
    listing.undecided = True
    assert pipeline.submit(queued.pk).result == "needs-attention"
    pipeline.sweep()
    assert listing.looks == 1
    queued.refresh_from_db()
    assert queued.status == Status.NEEDS_ATTENTION


def test_list_still_undecided_leaves_it_to_a_person_after_one_more_look(
    queued, sim, listing, settings
):
    settings.LUMA_LIST_LOOKUP_AGAIN_AFTER = 0
    sim.configure(error_after_create_rate=1.0)
    listing.undecided = True
    pipeline.submit(queued.pk)
    pipeline.sweep()
    pipeline.sweep()
    assert listing.looks == 2  # once at the POST, once by the sweeper, then no more
    queued.refresh_from_db()
    assert queued.status == Status.NEEDS_ATTENTION and queued.next_attempt_at is None
    assert notes(queued)[-1] == lookup.LEFT_NOTE
    assert len(posts_for(sim, queued.user_prompt)) == 1


def test_second_look_found_nothing_sends_again(queued, sim, listing, settings):
    settings.LUMA_LIST_LOOKUP_AGAIN_AFTER = 0
    sim.configure(error_rate=1.0, error_status=502)
    listing.undecided = True
    assert pipeline.submit(queued.pk).result == "needs-attention"
    listing.undecided = False
    sim.configure(error_rate=0.0)
    stats = pipeline.sweep()
    assert stats.to_submit == [queued.pk] and stats.sent_again == 1
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED and queued.posts_sent == 0
    assert pipeline.submit(queued.pk).result == "accepted"
    assert len(posts_for(sim, queued.user_prompt)) == 1


def test_a_persons_retry_before_the_second_look_wins(queued, sim, listing, settings):
    settings.LUMA_LIST_LOOKUP_AGAIN_AFTER = 0
    sim.configure(error_after_create_rate=1.0)
    listing.undecided = True
    pipeline.submit(queued.pk)
    queued.refresh_from_db()
    actions.retry_generation(queued, queued.created_by, confirm_second_charge=True)
    listing.undecided = False
    pipeline.sweep()
    assert listing.looks == 1  # the retry cleared the second look
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED


def test_worker_stopped_while_sending_is_decided_by_the_list(db, sim, listing):
    """The sweeper's stale ``submitting`` row (the worker died mid-POST): with a list, looked
    at at once instead of left to a person."""
    gen = actions.create_generation(
        make_user(), GenerationRequest(user_prompt="a fox in snow", aspect_ratio="16:9")
    )
    remote = remote_create(sim, "a fox in snow")  # what the dead worker's POST made
    long_ago = timezone.now() - timedelta(hours=1)
    Generation.objects.filter(pk=gen.pk).update(
        status=Status.SUBMITTING,
        claim="dead-worker",
        attempts=1,
        posts_sent=1,
        post_started_at=long_ago,
        status_changed_at=long_ago,
    )
    stats = pipeline.sweep()
    assert stats.needs_attention == 1 and stats.found_by_list == 1
    gen.refresh_from_db()
    assert gen.status == Status.IN_PROGRESS and gen.remote_id == remote["id"]


def test_provider_without_a_list_leaves_it_to_a_person_as_before(queued, sim):
    sim.configure(error_after_create_rate=1.0)
    assert pipeline.submit(queued.pk).result == "needs-attention"
    queued.refresh_from_db()
    assert queued.next_attempt_at is None
    assert "not sent again automatically" in queued.error
