"""Submitting: each outcome of the one paid POST, against the simulator over real HTTP.

These call the service directly (no worker) so each transition is deterministic; the
pipeline tests show the same through a real Celery worker.
"""

from __future__ import annotations

import http.server
import threading
import time

import pytest
from django.db import close_old_connections
from django.utils import timezone

from generations import actions, money, pipeline
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from tests.conftest import wait_for
from tests.factories import make_user


@pytest.fixture
def queued(db, sim):
    return actions.create_generation(
        make_user(),
        GenerationRequest(
            user_prompt="a lighthouse in a storm", aspect_ratio="9:16", expand_prompt=True
        ),
    )


def posts_for(sim, gen_prompt: str) -> list[dict]:
    return [p for p in sim.ledger()["posts"] if p["user_prompt"] == gen_prompt]


def test_submit_moves_queued_to_in_progress_with_the_upstream_id(queued, sim):
    assert pipeline.submit(queued.pk).result == "accepted"
    queued.refresh_from_db()
    assert queued.status == Status.IN_PROGRESS
    assert queued.remote_id == posts_for(sim, queued.user_prompt)[0]["id"]
    assert queued.state in {"pending", "queued"}
    assert queued.prompt.startswith("a lighthouse in a storm")  # expanded upstream
    assert queued.posts_sent == 1
    assert queued.next_poll_at is not None
    assert [e.status for e in queued.events.all()] == ["queued", "submitting", "in_progress"]


def test_submit_twice_sends_one_post(queued, sim):
    assert pipeline.submit(queued.pk).result == "accepted"
    assert pipeline.submit(queued.pk).result == "not-claimed"
    assert len(posts_for(sim, queued.user_prompt)) == 1


def test_read_timeout_after_sending_needs_attention_and_is_not_resent(queued, sim, settings):
    settings.LUMA_READ_TIMEOUT = 0.5
    sim.configure(slow_rate=1.0, slow_seconds=2)
    assert pipeline.submit(queued.pk).result == "needs-attention"
    queued.refresh_from_db()
    assert queued.status == Status.NEEDS_ATTENTION
    assert "may have been received" in queued.error
    assert queued.posts_sent == 1
    # Nothing sends it again by itself: not the task, not the sweeper.
    assert pipeline.submit(queued.pk).result == "not-claimed"
    pipeline.sweep()
    assert len(posts_for(sim, queued.user_prompt)) == 1


def test_rate_limited_post_goes_back_to_queued_honouring_retry_after(queued, sim):
    sim.configure(rate_limit_rate=1.0, retry_after=30)
    assert pipeline.submit(queued.pk).result == "retry"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert queued.posts_sent == 0  # certainly not paid
    assert queued.error_code == 429
    wait = (queued.next_attempt_at - queued.status_changed_at).total_seconds()
    assert 29 <= wait <= 31
    # Not due yet: a second submit does nothing.
    assert pipeline.submit(queued.pk).result == "not-claimed"
    assert posts_for(sim, queued.user_prompt) == []


@pytest.mark.parametrize("attempt", [1, 3])
def test_unavailable_service_backs_off_exponentially(queued, sim, attempt, settings):
    """Without the pacer (``LUMA_SUBMIT_PACING=False``; with it, a 503 pauses the account and
    counts no attempt: tests/test_rate_limited_upstream.py)."""
    settings.LUMA_SUBMIT_PACING = False
    sim.configure(error_rate=1.0, error_status=503)
    Generation.objects.filter(pk=queued.pk).update(attempts=attempt - 1)
    assert pipeline.submit(queued.pk).result == "retry"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert queued.error_code == 503
    assert queued.error_request_id  # the aggregator's requestId is kept
    wait = (queued.next_attempt_at - queued.status_changed_at).total_seconds()
    expected = 2.0 * 2 ** (attempt - 1)
    assert expected * 0.7 <= wait <= expected * 1.3


def test_retryable_refusals_give_up_after_max_attempts(queued, sim, settings):
    settings.LUMA_SUBMIT_PACING = False  # with it, a 503 is never an attempt
    settings.LUMA_SUBMIT_MAX_ATTEMPTS = 2
    sim.configure(error_rate=1.0, error_status=503)
    Generation.objects.filter(pk=queued.pk).update(attempts=1)
    assert pipeline.submit(queued.pk).result == "failed"
    queued.refresh_from_db()
    assert queued.status == Status.FAILED
    assert queued.posts_sent == 0


def test_refusal_for_lack_of_credits_holds_the_job_with_the_upstream_message(queued, sim):
    """Not a failure: the account is put on hold (tests/test_money_hold.py) and the job waits."""
    sim.configure(credits=0)
    assert pipeline.submit(queued.pk).result == "held"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert "run out of credits" in queued.error
    assert queued.error_code in (402, 403)
    assert queued.posts_sent == 0


def test_wrong_key_holds_the_job_with_the_upstream_message(queued, sim, settings):
    sim.configure(api_key="the-real-key")
    settings.LUMA_API_KEY = "a-wrong-key"
    assert pipeline.submit(queued.pk).result == "held"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED and queued.error_code == 401
    assert "a-wrong-key" not in queued.error


def test_unreachable_upstream_is_retried(queued, settings):
    settings.LUMA_API_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    assert pipeline.submit(queued.pk).result == "retry"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert queued.posts_sent == 0


def test_person_may_retry_a_needs_attention_job_once_more(queued, sim, settings):
    settings.LUMA_READ_TIMEOUT = 0.5
    sim.configure(slow_rate=1.0, slow_seconds=2)
    pipeline.submit(queued.pk)
    sim.configure(slow_rate=0.0)
    actions.retry_generation(
        Generation.objects.get(pk=queued.pk), make_user(), confirm_second_charge=True
    )
    assert pipeline.submit(queued.pk).result == "accepted"
    queued.refresh_from_db()
    assert queued.posts_sent == 2 and queued.posts_authorized == 2
    assert len(posts_for(sim, queued.user_prompt)) == 2


def test_stale_submitting_row_without_a_sent_post_is_queued_again(queued, settings):
    from datetime import timedelta

    from django.utils import timezone

    Generation.objects.filter(pk=queued.pk).update(
        status=Status.SUBMITTING, status_changed_at=timezone.now() - timedelta(hours=1)
    )
    assert pipeline.sweep().unstuck == 1
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED


def test_stale_submitting_row_with_a_sent_post_needs_attention(queued):
    from datetime import timedelta

    from django.utils import timezone

    old = timezone.now() - timedelta(hours=1)
    Generation.objects.filter(pk=queued.pk).update(
        status=Status.SUBMITTING, status_changed_at=old, post_started_at=old, posts_sent=1
    )
    assert pipeline.sweep().needs_attention == 1
    queued.refresh_from_db()
    assert queued.status == Status.NEEDS_ATTENTION


def test_cancel_only_a_queued_job(queued):
    actions.cancel_generation(queued, make_user())
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED
    with pytest.raises(actions.ServiceError):
        actions.cancel_generation(queued, make_user())
    assert pipeline.submit(queued.pk).result == "not-claimed"


@pytest.mark.parametrize("status", [500, 502])
def test_server_error_answer_to_a_post_needs_attention_not_a_resend(queued, sim, status):
    """A 500 or 502 may come after the service started (and charged for) the job."""
    sim.configure(error_rate=1.0, error_status=status)
    assert pipeline.submit(queued.pk).result == "needs-attention"
    queued.refresh_from_db()
    assert queued.status == Status.NEEDS_ATTENTION
    assert queued.posts_sent == 1 and queued.error_code == status
    sim.configure(error_rate=0.0)
    pipeline.sweep()
    assert pipeline.submit(queued.pk).result == "not-claimed"


class _CutShort(http.server.BaseHTTPRequestHandler):
    """Answers a POST with 200 and a promised body it never finishes: the request got there."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "200")
        self.end_headers()
        self.wfile.write(b'{"id": "abc",')
        self.wfile.flush()
        self.connection.close()

    def log_message(self, *args):
        pass


def test_answer_cut_short_after_a_post_needs_attention(queued, settings):
    # The simulator always finishes its answers; this tiny real server is the only way to
    # have a response break off after the status line.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutShort)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.LUMA_API_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        assert pipeline.submit(queued.pk).result == "needs-attention"
    finally:
        server.shutdown()
    queued.refresh_from_db()
    assert queued.posts_sent == 1
    assert "broke off" in queued.error


def test_late_answer_after_a_person_retried_is_kept_as_its_own_job(transactional_db, sim, settings):
    """The sweeper gave up on a slow POST and a person pressed Retry; then the answer came."""
    # Made directly, with no wake-up message: a worker the suite runs elsewhere must not
    # take it before this test's own submit does.
    gen = Generation.objects.create(
        user_prompt="slow but paid",
        created_by=make_user(),
        enqueued_at=timezone.now(),
        aspect_ratio="9:21",
        expand_prompt=True,
        image_end_url="https://example.com/end.jpg",
        image_file="keyframes/uploaded-start.png",  # an upload stays with both rows
    )
    sim.configure(slow_rate=1.0, slow_seconds=1.5)
    result = []
    worker = threading.Thread(
        target=lambda: (result.append(pipeline.submit(gen.pk).result), close_old_connections())
    )
    worker.start()
    wait_for(
        lambda: Generation.objects.filter(pk=gen.pk, post_started_at__isnull=False).exists(),
        5,
        "the POST to be sent",
    )
    settings.LUMA_SUBMIT_STALE_AFTER = 0.01
    time.sleep(0.05)
    assert pipeline.sweep().needs_attention == 1
    actions.retry_generation(
        Generation.objects.get(pk=gen.pk), make_user(), confirm_second_charge=True
    )
    worker.join(10)
    assert result == ["adopted"]
    late_id = posts_for(sim, "slow but paid")[0]["id"]
    kept = Generation.objects.get(remote_id=late_id)
    assert kept.status == Status.IN_PROGRESS and kept.pk != gen.pk
    # The retried row is its own job again (a running worker may already have taken it).
    original = Generation.objects.get(pk=gen.pk)
    assert original.remote_id != late_id
    assert original.posts_authorized == 2
    assert "late answer" in kept.events.first().note
    # Everything the person asked for came along, the uploaded keyframe included.
    assert GenerationRequest.from_row(kept) == GenerationRequest.from_row(gen)


def _late_answer(sim, settings, prompt: str, then) -> tuple[Generation, Generation]:
    """A slow POST the sweeper gave up on (needs attention); ``then`` is what a person does
    meanwhile; then the answer comes and is kept as a row of its own. Returns (original, kept)."""
    owner = make_user()
    gen = Generation.objects.create(
        user_prompt=prompt, created_by=owner, enqueued_at=timezone.now()
    )
    sim.configure(slow_rate=1.0, slow_seconds=1.5)
    result = []
    worker = threading.Thread(
        target=lambda: (result.append(pipeline.submit(gen.pk).result), close_old_connections())
    )
    worker.start()
    wait_for(
        lambda: Generation.objects.filter(pk=gen.pk, post_started_at__isnull=False).exists(),
        5,
        "the POST to be sent",
    )
    settings.LUMA_SUBMIT_STALE_AFTER = 0.01
    time.sleep(0.05)
    assert pipeline.sweep().needs_attention == 1
    then(Generation.objects.get(pk=gen.pk), owner)
    worker.join(10)
    assert result == ["adopted"]
    sim.configure(slow_rate=0.0)
    kept = Generation.objects.get(remote_id=posts_for(sim, prompt)[0]["id"])
    return Generation.objects.get(pk=gen.pk), kept


def test_a_late_answer_after_mark_failed_counts_its_one_post_once(transactional_db, sim, settings):
    original, kept = _late_answer(
        sim, settings, "late after mark failed", lambda gen, who: actions.mark_failed(gen, who)
    )
    assert len(posts_for(sim, "late after mark failed")) == 1
    assert kept.posts_sent == 1 and original.posts_adopted == 1
    usage = money.month_usage().of(original.created_by_id)
    assert usage.spent == money.cost_per_generation()  # the one POST, once (was counted twice)
    assert usage.possibly == 0  # the kept row confirms it: nothing is "possibly" any more
    assert usage.generations == 2
    # The failed row still warns before a Retry: its request did reach the service.
    assert original.retry_may_pay_twice


def test_a_late_answer_after_a_retry_counts_each_post_once(transactional_db, sim, settings):
    def retry(gen: Generation, who) -> None:
        actions.retry_generation(gen, who, confirm_second_charge=True)

    original, _kept = _late_answer(sim, settings, "late after retry", retry)
    usage = money.month_usage().of(original.created_by_id)
    # The late POST (kept) and the retry's one (sent or still reserved): two, not three.
    assert usage.counted == 2 * money.cost_per_generation()


def test_gateway_error_after_the_job_started_is_never_paid_twice(queued, sim):
    sim.configure(error_after_create_rate=1.0)
    assert pipeline.submit(queued.pk).result == "needs-attention"
    assert len(posts_for(sim, queued.user_prompt)) == 1  # it did start, and was charged
    sim.configure(error_after_create_rate=0.0)
    pipeline.sweep()
    assert pipeline.submit(queued.pk).result == "not-claimed"
    assert len(posts_for(sim, queued.user_prompt)) == 1
