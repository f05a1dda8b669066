"""Review of issue 11 (the provider layer, Luma's official API) for its money promises: a POST
of unknown outcome is never resolved to a generation that belongs to another lumaweb row (or
another install on the same account), against the luma-dialect simulator over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from devtools.simulator_process import SimulatorProcess
from generations.callback_tokens import callback_url
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from generations.pipeline import lookup
from generations.providers import Submission
from generations.providers import luma as luma_module
from generations.providers.luma import Luma
from tests.factories import make_user

KEY = "lk-review-9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f"


@pytest.fixture(scope="module")
def luma_simulator() -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(dialect="luma", duration=2, video_seconds=1, seed=111)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def luma(luma_simulator: SimulatorProcess, settings, monkeypatch) -> Luma:
    luma_simulator.reset(restore_config=True)
    luma_simulator.configure(api_key=KEY)
    settings.LUMA_PROVIDER = "luma"
    settings.LUMA_API_BASE_URL = luma_simulator.api_url
    settings.LUMA_API_KEY = KEY
    monkeypatch.setattr(luma_module, "LIST_SETTLE", timedelta(0))  # the list is current
    return Luma(luma_simulator.api_url, KEY, connect_timeout=2, read_timeout=5)


def test_find_created_never_takes_another_rows_generation_by_its_callback_address(luma, settings):
    """Two rows with the same prompt and options, each with its own callback address: row B's
    POST made a generation, row A's POST (same window) made nothing. The list must not hand B's
    generation to A (its echoed callback address is B's, not A's)."""
    settings.PUBLIC_BASE_URL = "https://lumaweb.example.com"
    request = GenerationRequest(user_prompt="the same prompt twice")
    since = timezone.now()
    made_for_b = luma.submit(Submission(request, callback_url=callback_url(uuid.uuid4())))
    until = timezone.now()
    ours = Submission(request, callback_url=callback_url(uuid.uuid4()))
    answer = luma.find_created(ours, since, until)
    assert answer.found is None or answer.found.id != made_for_b.id
    assert answer.decided and answer.found is None


def test_find_created_finds_its_own_row_after_the_public_address_and_secret_changed(luma, settings):
    """The same row, its callback address made again under another PUBLIC_BASE_URL and
    SECRET_KEY (a restart between the POST and the look): still ours, never "nothing made"."""
    row = uuid.uuid4()
    settings.PUBLIC_BASE_URL = "https://lumaweb.example.com"
    request = GenerationRequest(user_prompt="sent before a restart")
    since = timezone.now()
    made = luma.submit(Submission(request, callback_url=callback_url(row)))
    until = timezone.now()
    settings.PUBLIC_BASE_URL = "https://videos.example.org/lw"
    settings.SECRET_KEY = "another-secret-key-after-a-restart-0123456789abcdef"
    answer = luma.find_created(Submission(request, callback_url=callback_url(row)), since, until)
    assert answer.found is not None and answer.found.id == made.id


def test_find_created_tells_different_concepts_apart(luma):
    since = timezone.now()
    other = luma.submit(Submission(GenerationRequest(user_prompt="orbit", concepts="dolly_zoom")))
    until = timezone.now()
    ours = Submission(GenerationRequest(user_prompt="orbit", concepts="orbit_left"))
    answer = luma.find_created(ours, since, until)
    assert answer.found is None or answer.found.id != other.id
    # our prompt with other concepts may be ours echoed normalised: a person decides
    assert not answer.decided


@pytest.mark.django_db
def test_a_found_generation_another_row_holds_is_never_adopted(luma):
    """No callback address (no PUBLIC_BASE_URL): two rows with the same request cannot be told
    apart by the list. Row B already holds the only match; row A's look must not take it (the
    remote id is unique: that would be an IntegrityError, or one video on two rows), and must
    not decide "nothing made" from it either: a person decides."""
    user = make_user()
    request = GenerationRequest(user_prompt="a heron, twice", aspect_ratio="16:9")
    since = timezone.now()
    made = luma.submit(Submission(request))
    until = timezone.now()
    Generation.objects.create(
        created_by=user,
        **request.row_fields(),
        status=Status.IN_PROGRESS,
        remote_id=made.id,
        posts_sent=1,
        posts_authorized=1,
        attempts=1,
    )
    answer = lookup.look(luma, Submission(request), since, until)
    assert answer.found is None
    assert not answer.decided


@pytest.mark.django_db
def test_a_late_answer_for_a_generation_already_kept_on_another_row_is_not_an_error(luma):
    """The worker's slow answer comes after a person retried the row and the sweeper's look had
    already kept the same generation on a row of its own: nothing more to keep, no crash on the
    unique remote id, no third row."""
    user = make_user()
    request = GenerationRequest(user_prompt="a slow answer", aspect_ratio="16:9")
    made = luma.submit(Submission(request))
    row = Generation.objects.create(
        created_by=user,
        **request.row_fields(),
        status=Status.QUEUED,
        claim="",
        posts_sent=1,
        posts_authorized=2,
        attempts=1,
    )
    Generation.objects.create(
        created_by=user,
        **request.row_fields(),
        status=Status.IN_PROGRESS,
        remote_id=made.id,
        posts_sent=1,
        posts_authorized=1,
        attempts=1,
    )
    assert lookup.accept(row, "the-old-attempts-claim", made) is False
    assert Generation.objects.filter(remote_id=made.id).count() == 1
    assert Generation.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["reverse", "interpolate_start", "interpolate_end"])
def test_a_retry_never_sends_a_post_from_a_video_its_owner_deleted(kind):
    """Like an extension's: once a source's owner deleted it, no new POST is made from it on
    anyone's behalf (the row's copied upstream id would still be sent)."""
    from generations import actions
    from generations.models import Kind

    owner, other = make_user("owner"), make_user("other")
    start, end = (
        Generation.objects.create(
            created_by=owner,
            user_prompt=name,
            status=Status.COMPLETED,
            remote_id=f"remote-{name}",
        )
        for name in ("start", "end")
    )
    interpolate = kind.startswith("interpolate")
    row = Generation.objects.create(
        created_by=other,
        user_prompt="from the owner's videos",
        kind=Kind.INTERPOLATE if interpolate else Kind.REVERSE,
        parent=start,
        parent_remote_id=start.remote_id,
        end_parent=end if interpolate else None,
        end_parent_remote_id=end.remote_id if interpolate else "",
        status=Status.FAILED,
    )
    actions.delete_generation(end if kind == "interpolate_end" else start, owner)
    row.refresh_from_db()
    with pytest.raises(actions.ServiceError):
        actions.retry_generation(row, other)
    row.refresh_from_db()
    assert row.status == Status.FAILED
