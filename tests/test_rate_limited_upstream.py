"""A rate-limited upstream: a refusal that started nothing never fails a job, and the account is
paced (``generations/pipeline/pace.py``).

The simulator enforces an account's limits as Luma does (``--limit-creates`` in
``--limit-window`` seconds, ``--limit-running`` at once; 429 with Retry-After over either). The
first tests drive ``pipeline.submit`` directly against it over real HTTP; the last runs real
workers and beat of its own against a simulator with short windows (a minute's traffic in a few
seconds, ``LUMA_SUBMIT_RATE_WINDOW`` as short), with lumaweb's own caps off: only the pacer
keeps the refused POSTs down.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection

from generations import actions, pipeline
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from generations.pipeline import pace
from tests.conftest import wait_for
from tests.factories import make_user


@pytest.fixture
def no_caps(settings):
    """lumaweb's own caps off (an install whose caps do not match its tier); pacing on."""
    settings.LUMA_MAX_IN_FLIGHT = 0
    settings.LUMA_MAX_SUBMITS_PER_MINUTE = 0
    settings.LUMA_SUBMIT_PACING = True
    pace.forget()
    yield settings
    pace.forget()


def queue(count: int, prompt: str = "job") -> list[Generation]:
    user = make_user()
    return [
        actions.create_generation(user, GenerationRequest(user_prompt=f"{prompt} {i}"))
        for i in range(count)
    ]


def due_now(gen: Generation) -> None:
    Generation.objects.filter(pk=gen.pk).update(next_attempt_at=None)


def submit_in_another_thread(gen_id: object) -> pipeline.SubmitOutcome:
    """A submit with its own database and cache connections (Django's are per thread), as
    another worker process would make it."""
    result: list[pipeline.SubmitOutcome] = []

    def run() -> None:
        try:
            result.append(pipeline.submit(gen_id))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return result[0]


def test_a_429_counts_no_attempt_and_its_retry_after_pauses_every_workers_submits(
    transactional_db, sim, no_caps
):
    no_caps.LUMA_SUBMIT_MAX_ATTEMPTS = 1  # before the pacer, one 429 failed the job
    sim.configure(limit_creates=1, limit_window=60)
    first, second, third = queue(3)
    assert pipeline.submit(first.pk).result is pipeline.Submitted.ACCEPTED

    outcome = pipeline.submit(second.pk)

    assert outcome.result is pipeline.Submitted.RETRY
    second.refresh_from_db()
    assert second.status == Status.QUEUED
    assert second.attempts == 0
    assert second.posts_sent == 0
    last = second.events.order_by("-id").first()
    assert last is not None and last.note.startswith("waiting: upstream rate limit (429)")
    assert second.next_attempt_at is not None  # the card says "waiting to retry"
    # The simulator's Retry-After is the time until its window has room: about a minute.
    assert pace.paused_for() > 30
    assert outcome.retry_in is not None and outcome.retry_in > 30
    if "redis" in type(cache).__module__:  # the pause is in Redis, not in this process
        assert cache.get(pace.KEY)["paused_until"] > time.time() + 30

    # Another worker's submit of a job that is due finds the account paused: no POST, no attempt.
    posts = len(sim.ledger()["post_times"])
    waited = submit_in_another_thread(third.pk)
    assert waited.result is pipeline.Submitted.WAITING
    assert waited.fill_in is not None and waited.fill_in > 30  # the next in line goes then
    third.refresh_from_db()
    assert (third.status, third.attempts, third.posts_sent) == (Status.QUEUED, 0, 0)
    assert len(sim.ledger()["post_times"]) == posts

    # The pause over, the job goes (the simulator's window is widened by then).
    sim.configure(limit_creates=0)
    pace.forget()
    due_now(second)
    assert pipeline.submit(second.pk).result is pipeline.Submitted.ACCEPTED
    second.refresh_from_db()
    assert second.attempts == 1


def test_a_429_over_the_running_limit_also_waits_and_the_luma_words_are_kept(
    transactional_db, sim, no_caps
):
    sim.configure(limit_running=1, duration=30)
    first, second, third = queue(3)
    assert pipeline.submit(first.pk).result is pipeline.Submitted.ACCEPTED
    assert pipeline.submit(second.pk).result is pipeline.Submitted.RETRY
    second.refresh_from_db()
    assert (second.status, second.attempts) == (Status.QUEUED, 0)
    assert "run at once" in second.error
    assert sim.ledger()["faults"]["over_running"] == 1
    # What was in flight when the 429 came (one) is the in-flight cap from now on: once the
    # pause is over, the next job waits for the running one instead of being refused again.
    assert pace.limits().in_flight == 1
    state = cache.get(pace.KEY)
    cache.set(pace.KEY, {**state, "paused_until": 0.0})
    assert pipeline.submit(third.pk).result is pipeline.Submitted.WAITING
    assert len(sim.ledger()["post_times"]) == 2


def test_a_503_and_a_refused_connection_count_no_attempt_either(
    transactional_db, sim, no_caps, settings
):
    no_caps.LUMA_SUBMIT_MAX_ATTEMPTS = 1
    sim.configure(error_rate=1.0, error_status=503)
    (gen,) = queue(1)
    assert pipeline.submit(gen.pk).result is pipeline.Submitted.RETRY
    gen.refresh_from_db()
    assert (gen.status, gen.attempts) == (Status.QUEUED, 0)
    assert 0 < pace.paused_for() <= pace.FIRST_PAUSE  # no Retry-After: a short pause

    pace.forget()
    due_now(gen)
    from devtools.simulator_process import free_port

    settings.LUMA_API_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens
    assert pipeline.submit(gen.pk).result is pipeline.Submitted.RETRY
    gen.refresh_from_db()
    assert (gen.status, gen.attempts) == (Status.QUEUED, 0)
    last = gen.events.order_by("-id").first()
    assert last is not None and last.note.startswith("waiting: upstream not reachable")


def test_without_pacing_a_429_is_an_attempt_as_before(transactional_db, sim, no_caps):
    no_caps.LUMA_SUBMIT_PACING = False
    no_caps.LUMA_SUBMIT_MAX_ATTEMPTS = 1
    sim.configure(limit_creates=1, limit_window=60)
    first, second = queue(2)
    assert pipeline.submit(first.pk).result is pipeline.Submitted.ACCEPTED
    assert pipeline.submit(second.pk).result is pipeline.Submitted.FAILED
    assert pace.paused_for() == 0


def test_a_429_halves_the_rate_once_a_burst_and_each_success_adds_a_little_back(
    transactional_db, sim, no_caps
):
    """AIMD: the cap (20 a window) halved to 10; the second 429 of the same burst is not a
    second halving; ten accepted submits bring it back by about one, never past the cap."""
    from generations.client import RetryableError

    no_caps.LUMA_MAX_SUBMITS_PER_MINUTE = 20
    no_caps.LUMA_SUBMIT_RATE_WINDOW = 60
    refusal = RetryableError("Too many requests", status_code=429, retry_after=0.0)
    pace.refused(refusal, sent_lately=25)
    assert cache.get(pace.KEY)["rate"] == 10
    assert pace.limits().spacing == pytest.approx(6.0)
    pace.refused(refusal, sent_lately=25)
    assert cache.get(pace.KEY)["rate"] == 10
    for _ in range(10):
        pace.accepted()
    assert 10.9 < cache.get(pace.KEY)["rate"] < 11.0
    for _ in range(400):
        pace.accepted()
    assert cache.get(pace.KEY)["rate"] == 20  # the cap is the ceiling


@pytest.mark.pipeline
def test_a_burst_of_forty_against_a_limited_upstream_all_complete_with_few_refusals(
    transactional_db, pipeline_env, spare_redis_url, tmp_path
):
    """Two workers (two processes each) and beat of this test's own, lumaweb's caps off,
    against a simulator that allows 12 creates in any 6 s (Luma's "12 a minute", ten times as
    fast) and 4 running: every job completes, none fails, and the refused POSTs (the
    simulator's ledger: POSTs that arrived minus those accepted) are at most 10 % of the jobs.
    (The first burst alone costs up to one refusal per POST in flight when the first 429
    comes: four here.)"""
    from devtools.chaos import publishing_to
    from devtools.processes import CeleryProcesses
    from devtools.simulator_process import SimulatorProcess

    jobs = 40
    with SimulatorProcess(
        duration=1, video_seconds=1, limit_creates=12, limit_window=6, limit_running=4
    ) as sim:
        env = {
            **pipeline_env,
            "LUMA_API_BASE_URL": sim.api_url,
            "REDIS_URL": spare_redis_url,
            "LUMA_MAX_IN_FLIGHT": "0",
            "LUMA_MAX_SUBMITS_PER_MINUTE": "0",
            "LUMA_SUBMIT_RATE_WINDOW": "6",
            "LUMA_SUBMIT_MAX_ATTEMPTS": "2",
        }
        procs = CeleryProcesses(env, tmp_path)
        procs.start("worker-a")
        procs.start("worker-b")
        procs.start("beat")
        try:
            with publishing_to(spare_redis_url):
                queue(jobs, "burst")
            wait_for(
                lambda: (
                    Generation.objects.exclude(status=Status.QUEUED)
                    .exclude(status__in=[Status.SUBMITTING, Status.IN_PROGRESS])
                    .count()
                    == jobs
                ),
                150,
                "every job to settle",
            )
        finally:
            procs.stop_all()
        ledger = sim.ledger()
    statuses = list(Generation.objects.values_list("status", flat=True))
    assert statuses.count(Status.COMPLETED) == jobs, statuses
    assert len(ledger["posts"]) == jobs  # no second POST for any job
    refused = len(ledger["post_times"]) - len(ledger["posts"])
    assert refused <= jobs // 10, (ledger["faults"], ledger["post_times"])


def test_each_quiet_window_doubles_the_rate_back_up_to_the_cap(no_caps):
    """The chaos run's finding: random 429s halved the rate to 1.5 a minute, and the recovery
    per accepted submit is slowest when the rate is lowest. Every full rate window without a
    429 (counted from the end of its pause) doubles the rate in force, never past the cap; a
    429 after the recovery cuts from the recovered rate."""
    from generations.client import RetryableError

    no_caps.LUMA_MAX_SUBMITS_PER_MINUTE = 40
    no_caps.LUMA_SUBMIT_RATE_WINDOW = 60
    refusal = RetryableError("Too many requests", status_code=429, retry_after=0.0)
    start = time.time()
    pace.refused(refusal, sent_lately=45, now=start)
    pace.refused(refusal, sent_lately=45, now=start + 10)  # after the first cut's spacing
    assert pace.limits(now=start + 69).spacing == pytest.approx(6.0)  # 10 a minute
    assert pace.limits(now=start + 70).spacing == pytest.approx(3.0)  # one quiet window: 20
    assert pace.limits(now=start + 130).spacing == pytest.approx(1.5)  # two: 40, the cap
    assert pace.limits(now=start + 400).spacing == pytest.approx(1.5)

    pace.refused(refusal, sent_lately=45, now=start + 400)
    assert cache.get(pace.KEY)["rate"] == 20  # halved from the recovered 40
    assert pace.limits(now=start + 459).spacing == pytest.approx(3.0)


def test_an_accepted_submit_keeps_the_quiet_time_already_passed(no_caps):
    from generations.client import RetryableError

    no_caps.LUMA_MAX_SUBMITS_PER_MINUTE = 40
    no_caps.LUMA_SUBMIT_RATE_WINDOW = 60
    refusal = RetryableError("Too many requests", status_code=429, retry_after=0.0)
    start = time.time()
    pace.refused(refusal, sent_lately=45, now=start)  # 20 a minute
    pace.accepted(now=start + 90)  # one window folded in (40, the cap), half a window kept
    assert cache.get(pace.KEY)["rate"] == 40
    pace.refused(refusal, sent_lately=45, now=start + 100)
    pace.accepted(now=start + 150)  # 20 + 1/20, and a 429 since: no quiet window yet
    assert cache.get(pace.KEY)["rate"] == pytest.approx(20.05)
    assert pace.limits(now=start + 160).spacing == pytest.approx(60 / 40)


def test_without_a_cap_the_rate_recovers_up_to_where_it_was_cut(no_caps):
    """No cap: time brings the rate back to what the account sent when it was refused, not
    past it (beyond, only the gentle increase per accepted submit)."""
    from generations.client import RetryableError

    no_caps.LUMA_SUBMIT_RATE_WINDOW = 60
    refusal = RetryableError("Too many requests", status_code=429, retry_after=30.0)
    start = time.time()
    pace.refused(refusal, sent_lately=16, now=start)  # 8 a minute, paused 30 s
    assert pace.limits(now=start + 89).spacing == pytest.approx(60 / 8)  # the pause not quiet
    assert pace.limits(now=start + 90).spacing == pytest.approx(60 / 16)
    assert pace.limits(now=start + 1000).spacing == pytest.approx(60 / 16)


def test_the_learned_in_flight_cap_recovers_with_quiet_windows_too(no_caps):
    """A 429 with ten in flight teaches a cap of ten (the service's running limit); a random
    one with two in flight halves it to five; one quiet window later it is ten again, and it
    stays at ten (beyond, only the gentle growth per accepted submit)."""
    from generations.client import RetryableError

    no_caps.LUMA_SUBMIT_RATE_WINDOW = 60
    refusal = RetryableError("Too many requests", status_code=429, retry_after=0.0)
    start = time.time()
    pace.refused(refusal, sent_lately=20, in_flight=10, now=start)
    pace.refused(refusal, sent_lately=20, in_flight=2, now=start + 30)
    assert pace.limits(now=start + 89).in_flight == 5
    assert pace.limits(now=start + 90).in_flight == 10
    assert pace.limits(now=start + 1000).in_flight == 10

    no_caps.LUMA_MAX_IN_FLIGHT = 8  # with a cap, the cap is the ceiling
    assert pace.limits(now=start + 1000).in_flight == 8
