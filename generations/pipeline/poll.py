"""Poll: one batch poller asks the upstream about every due in-flight row in as few GETs as
possible and applies each answer to its row. A provider that cannot batch (one GET per id) is
asked within a request budget an interval (``LUMA_POLL_MAX_REQUESTS``), longest-due rows first.

Rows are leased with one UPDATE (``poll_lease`` set, ``next_poll_at`` pushed forward by
``LUMA_POLL_LEASE``), so a second poller running at the same time finds them not due; a poller
killed mid-batch lets go when the lease runs out.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from generations import providers
from generations.client import PermanentError, RemoteGeneration, UpstreamError
from generations.models import Generation, Status
from generations.pipeline import bulk
from generations.pipeline import transitions as t

log = logging.getLogger("generations.pipeline")
RUNNING_STATES = {"pending", "processing", "queued", "dreaming"}
FINISHING = ("completed", "failed", "timed-out")  # outcomes that end a row's run
# What a poll reads of a leased row (the rest of the row is not needed to apply an answer).
LEASED_FIELDS = (
    "id",
    "remote_id",
    "state",
    "status",
    "submitted_at",
    "last_progress_at",
    "poll_errors",
    "poll_lease",
)
Answer = tuple[Generation, RemoteGeneration | None]
# A lease takes this many batches' rows at once (one GET a batch, one UPDATE for all their
# answers): fewer statements a row, still small enough for several pollers to share a round.
BATCHES_A_LEASE = 4
NEAR_MARGIN = 0.25  # a poll due at a job's estimated end is sent this long after it


def next_poll_delay(estimate: int | None) -> float:
    """Poll again after half the upstream's estimate while the end is far (never sooner than
    the interval); once the job is near its estimate (it ends within an interval), just after
    the estimated end, and never later than the interval. Without an estimate: the interval."""
    interval = settings.LUMA_POLL_INTERVAL
    if estimate is None:
        return interval
    if estimate <= interval:
        return min(interval, max(estimate + NEAR_MARGIN, min(interval, 1.0)))
    return max(interval, min(estimate / 2, 60.0))


@dataclass
class PollStats:
    """What a poll round did; ``to_copy`` are the rows that finished: their copy is due."""

    due: int = 0
    requests: int = 0
    errors: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    to_copy: list[uuid.UUID] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    @property
    def finished(self) -> int:
        """Rows this round moved out of ``in_progress``: each gave back a capacity slot."""
        return sum(self.outcomes.get(name, 0) for name in FINISHING)


def poll_in_flight(
    limit_batches: int | None = None,
    *,
    on_backlog: Callable[[], None] | None = None,
    on_completed: Callable[[list[uuid.UUID]], None] | None = None,
) -> PollStats:
    """Lease the due rows and ask the upstream about them: ``LUMA_POLL_BATCH_SIZE`` ids a GET
    where the provider batches (``capabilities.poll_batch`` > 1); otherwise one GET per id,
    at most ``LUMA_POLL_MAX_REQUESTS`` in each poll interval (``_take_slot``), the
    longest-due rows first, the rest due at the next round.

    A batched round keeps leasing rows (``BATCHES_A_LEASE`` batches at a time) while rows are
    due, for at most one poll interval (``limit_batches``: at most about that many batches);
    other pollers running at the same time take other rows (the lease). Each lease's answers
    are applied in a fixed number of statements (``apply_answers``). ``on_backlog`` is called
    once, when the first lease came back full (more rows are due: more pollers may help);
    ``on_completed`` with each batch's newly completed ids, as soon as they are (their copy is
    due; they are in ``to_copy`` too)."""
    stats = PollStats()
    provider = providers.current()
    started = timezone.now()
    if provider.capabilities.poll_batch <= 1:
        _poll_within_budget(provider, stats, started, on_completed)
        return stats
    # The operator's setting, as before providers (a batch the service refuses as too large
    # is split by halves, ``_poll_chunk``); ``poll_batch`` says only that it batches.
    batch = settings.LUMA_POLL_BATCH_SIZE
    unit = batch * BATCHES_A_LEASE
    ends = time.time() + settings.LUMA_POLL_INTERVAL
    batches = leases = 0
    while True:
        lease, rows = lease_due_rows(unit)
        leases += 1
        stats.due += len(rows)
        if rows:
            answers: list[Answer] = []
            chunks = [rows[start : start + batch] for start in range(0, len(rows), batch)]
            _poll_chunks(provider, chunks, lease, stats, answers)
            batches += len(chunks)
            done = apply_answers(answers, lease, stats, started)
            if done and on_completed is not None:
                on_completed(done)
        if len(rows) < unit:
            break  # nothing more is due, or what is due is another poller's
        if leases == 1 and on_backlog is not None:
            on_backlog()
        if limit_batches is not None and batches >= limit_batches:
            break
        if time.time() >= ends:
            break  # the next round (beat's, each interval) goes on where this one stopped
    return stats


def _poll_within_budget(
    provider: providers.Provider,
    stats: PollStats,
    started: datetime,
    on_completed: Callable[[list[uuid.UUID]], None] | None,
) -> None:
    """One GET per id, within the budget of the interval each GET is sent in; the answers
    applied together."""
    lease, rows = lease_due_rows(_budget_left())
    stats.due = len(rows)
    answers: list[Answer] = []
    window = None
    for index, row in enumerate(rows):
        # The budget belongs to the interval a GET is sent in (the service counts arrivals),
        # not to the one the round started in: the lease may have taken the rest of that one
        # on a loaded machine. A round keeps to one interval: once it is over (a slow service),
        # the rows not asked are due again at once, for the next interval's round.
        sent_in = budget_key(time.time() + _send_margin())
        if window is None:
            window = sent_in
        if sent_in != window or not _take_slot(sent_in):
            _give_back(rows[index:], lease)
            break
        _poll_chunk(provider, [row], lease, stats, answers)
    done = apply_answers(answers, lease, stats, started)
    if done and on_completed is not None:
        on_completed(done)


def _send_margin() -> float:
    """A GET is not started this close to its interval's end (it would arrive in the next)."""
    return min(0.1, settings.LUMA_POLL_INTERVAL / 10)


def _give_back(rows: list[Generation], lease: str) -> None:
    """Leased rows this round did not ask about: due again now, for the next round."""
    Generation.objects.filter(
        pk__in=[row.pk for row in rows], poll_lease=lease, status=Status.IN_PROGRESS
    ).update(next_poll_at=timezone.now())


def budget_key(at: float | None = None) -> str:
    """The cache key counting this poll interval's GETs (one window per interval)."""
    window = int((time.time() if at is None else at) // settings.LUMA_POLL_INTERVAL)
    return f"lumaweb:poll-budget:{window}"


def _budget_left() -> int:
    """How many GETs the current interval has left (the count is in Django's cache, shared
    by every poller: beat's rounds and the ones a provider's callback wakes), so 200 jobs in
    flight are ``LUMA_POLL_MAX_REQUESTS`` GETs an interval, not 200. Without a cache, each
    round has the whole budget."""
    budget = settings.LUMA_POLL_MAX_REQUESTS
    try:
        used = cache.get(budget_key(time.time() + _send_margin())) or 0
    except Exception:
        log.warning("cache unavailable: the poll budget is counted per round", exc_info=True)
        return budget
    return max(0, budget - int(used))


def _take_slot(key: str) -> bool:
    """Count one GET in this interval's budget; False when the budget is spent (another
    poller spent it). Without a cache, the round's lease (at most the budget) is the limit."""
    try:
        cache.add(key, 0, timeout=int(settings.LUMA_POLL_INTERVAL * 2) + 1)
        if cache.incr(key) <= settings.LUMA_POLL_MAX_REQUESTS:
            return True
        cache.decr(key)
        return False
    except Exception:
        log.warning("cache unavailable: the poll budget is counted per round", exc_info=True)
        return True


def lease_due_rows(limit: int) -> tuple[str, list[Generation]]:
    """Take up to ``limit`` due rows for this poller: one UPDATE sets ``poll_lease`` and pushes
    ``next_poll_at`` forward by ``LUMA_POLL_LEASE``, so they are not due for anyone else until
    this poller has answered them or has died and the lease ran out. The rows are chosen in
    the same statement; on PostgreSQL with ``FOR UPDATE SKIP LOCKED`` (pollers leasing at the
    same moment take different rows instead of waiting on each other) and read back by the
    same statement (``RETURNING``): one query a lease."""
    now = timezone.now()
    lease = secrets.token_hex(8)
    until = now + timedelta(seconds=settings.LUMA_POLL_LEASE)
    if connection.vendor == "postgresql":
        return lease, _lease_returning(lease, now, until, limit)
    due = Generation.objects.due_for_poll(now).order_by("next_poll_at").values("pk")[:limit]
    leased = (
        Generation.objects.due_for_poll(now)
        .filter(pk__in=due)
        .update(poll_lease=lease, next_poll_at=until)
    )
    if not leased:
        return lease, []
    rows = (
        Generation.objects.filter(poll_lease=lease, status=Status.IN_PROGRESS)
        .only(*LEASED_FIELDS)
        .order_by("pk")
    )
    return lease, list(rows)


def _lease_returning(lease: str, now: datetime, until: datetime, limit: int) -> list[Generation]:
    """PostgreSQL: choose (a materialised CTE, so the LIMIT is applied once), lease and read
    back the rows in one statement."""
    table = Generation._meta.db_table
    columns = ", ".join(f'g."{name}"' for name in LEASED_FIELDS)  # plain fields: name = column
    sql = f"""
        WITH due AS MATERIALIZED (
            SELECT id FROM "{table}"
            WHERE status = %s AND next_poll_at <= %s
            ORDER BY next_poll_at
            LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE "{table}" AS g SET poll_lease = %s, next_poll_at = %s
        FROM due WHERE g.id = due.id
        RETURNING {columns}
    """  # noqa: S608 - the names are the model's own, the values parameters
    rows = Generation.objects.raw(sql, [Status.IN_PROGRESS, now, limit, lease, until])
    return sorted(rows, key=lambda row: row.pk)


@dataclass
class Asked:
    """What the GETs for some rows brought back; no database work (they may run in threads)."""

    requests: int = 0
    errors: int = 0
    answers: list[Answer] = field(default_factory=list)
    failed: list[tuple[list[Generation], UpstreamError]] = field(default_factory=list)


def _poll_chunk(
    provider: providers.Provider,
    chunk: list[Generation],
    lease: str,
    stats: PollStats,
    answers: list[Answer],
) -> None:
    """One GET for these rows (``_ask``); their answers are added to ``answers``, the rows the
    service did not answer for are backed off."""
    _settle(_ask(provider, chunk), lease, stats, answers)


def _poll_chunks(
    provider: providers.Provider,
    chunks: list[list[Generation]],
    lease: str,
    stats: PollStats,
    answers: list[Answer],
) -> None:
    """A lease's GETs, at the same time (one thread each, up to ``BATCHES_A_LEASE``): the
    service's answer time is most of a round's; the database work stays in this thread."""
    if len(chunks) == 1:
        _poll_chunk(provider, chunks[0], lease, stats, answers)
        return
    for asked in _executor().map(lambda chunk: _ask(provider, chunk), chunks):
        _settle(asked, lease, stats, answers)


_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    """Made on first use (after a worker's fork), kept: each thread keeps its connections."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(BATCHES_A_LEASE, thread_name_prefix="poll-get")
    return _pool


def _settle(asked: Asked, lease: str, stats: PollStats, answers: list[Answer]) -> None:
    stats.requests += asked.requests
    stats.errors += asked.errors
    answers.extend(asked.answers)
    for rows, exc in asked.failed:
        _poll_failed(rows, lease, exc)


def _ask(
    provider: providers.Provider, chunk: list[Generation], asked: Asked | None = None
) -> Asked:
    """One GET for these rows. A refusal of the whole request (a 4xx, say for one id the
    service does not know) is narrowed down by halves, so one bad id cannot stall the rest; a
    single id refused that way counts as unknown to the service (the deadline applies)."""
    asked = asked or Asked()
    asked.requests += 1
    try:
        remote = provider.poll([row.remote_id for row in chunk if row.remote_id])
    except PermanentError as exc:
        asked.errors += 1
        if len(chunk) == 1:
            t.plog(
                chunk[0].pk,
                "poll refused (%s): %s",
                exc.status_code,
                exc.message,
                level=logging.WARNING,
            )
            asked.answers.append((chunk[0], None))
            return asked
        half = len(chunk) // 2
        _ask(provider, chunk[:half], asked)
        _ask(provider, chunk[half:], asked)
        return asked
    except UpstreamError as exc:
        asked.errors += 1
        asked.failed.append((chunk, exc))
        return asked
    by_id = {answer.id: answer for answer in remote}
    asked.answers.extend((row, by_id.get(row.remote_id or "")) for row in chunk)
    return asked


def apply_answers(
    answers: list[Answer], lease: str, stats: PollStats, started: datetime | None = None
) -> list[uuid.UUID]:
    """Apply a batch's answers in a fixed number of statements: the rows still running (the
    usual answer: a new estimate, perhaps a new state) in one UPDATE, the rows that finished
    in one batched ``complete``; a failure or time-out, rare, through ``fail`` row by row (it
    tells the webhooks). If a batched statement is refused (a value the database will not
    take, say), its rows are applied one by one, so one row's trouble stops no other.
    Returns the ids this call completed. ``started``: when the round began (``_next_poll``)."""
    now = timezone.now()
    started = started or now
    copies_before = len(stats.to_copy)
    running: dict[Any, dict[str, Any]] = {}
    finished: dict[Any, dict[str, Any]] = {}
    plans: dict[Any, tuple[Generation, RemoteGeneration | None, Plan]] = {}
    for row, remote in answers:
        try:
            plan = plan_answer(row, remote, now, started)
        except Exception:
            _apply_failed(row)
            stats.count("error")
            continue
        plans[row.pk] = (row, remote, plan)
        if plan.action == "reschedule":
            running[row.pk] = plan.fields
        elif plan.action == "complete":
            finished[row.pk] = plan.fields
        else:
            _execute_safely(row, plan, lease, now, stats)
    if running:
        try:
            bulk.update_each(
                Generation.objects.filter(poll_lease=lease, status=Status.IN_PROGRESS), running
            )
        except Exception:
            log.warning("a poll batch's update was refused: row by row", exc_info=True)
            for pk in running:
                row, _remote, plan = plans[pk]
                _execute_safely(row, plan, lease, now, stats)
        else:
            for pk in running:
                stats.count(plans[pk][2].outcome)
    if finished:
        try:
            done = set(t.complete_many(finished, lease=lease, now=now))
        except Exception:
            log.warning("a poll batch's completions were refused: row by row", exc_info=True)
            for pk in finished:
                row, _remote, plan = plans[pk]
                _execute_safely(row, plan, lease, now, stats)
        else:
            for pk in finished:
                outcome = "completed" if pk in done else "lost-lease"
                stats.count(outcome)
                if pk in done:
                    stats.to_copy.append(pk)
    return stats.to_copy[copies_before:]


def _execute_safely(
    row: Generation, plan: Plan, lease: str, now: datetime, stats: PollStats
) -> None:
    """One row's trouble (a value the database refuses, say) must not stop the others; its
    lease runs out and it is polled again."""
    try:
        outcome = _execute(row, plan, lease, now)
    except Exception:
        _apply_failed(row)
        outcome = "error"
    stats.count(outcome)
    if outcome == "completed":
        stats.to_copy.append(row.pk)


def _apply_failed(row: Generation) -> None:
    t.log.exception(
        "generation=%s could not apply a poll answer",
        row.pk,
        extra={"generation_id": str(row.pk)},
    )


def _poll_failed(rows: list[Generation], lease: str, exc: UpstreamError) -> None:
    """The service did not answer: back off these rows (one UPDATE); no deadline while it is
    unreachable."""
    now = timezone.now()
    delays: dict[Any, dict[str, Any]] = {}
    for row in rows:
        delay = t.backoff(row.poll_errors + 1, base=settings.LUMA_POLL_INTERVAL)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, t.MAX_BACKOFF))
        delays[row.pk] = {"next_poll_at": now + timedelta(seconds=delay)}
    bulk.update_each(
        Generation.objects.filter(poll_lease=lease),
        delays,
        common={"poll_errors": F("poll_errors") + 1, "last_polled_at": now},
    )
    t.plog(
        ",".join(str(r.pk) for r in rows[:3]) + ("…" if len(rows) > 3 else ""),
        "poll failed (%s): %s",
        exc.status_code or "no answer",
        exc.message,
        level=logging.WARNING,
    )


@dataclass
class Plan:
    """What one answer does to its row: ``reschedule`` (``fields`` written, still running),
    ``complete`` (``fields`` with the move) or ``fail`` (``note``, ``error`` and ``fields``)."""

    action: str
    outcome: str
    fields: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    error: str = ""


def apply_remote(row: Generation, remote: RemoteGeneration | None, lease: str) -> str:
    """Apply one poll answer to its row; returns a short outcome name ("completed" means the
    row just finished and this call made it so: its copy is due)."""
    now = timezone.now()
    return _execute(row, plan_answer(row, remote, now, now), lease, now)


def _execute(row: Generation, plan: Plan, lease: str, now: datetime) -> str:
    """One row's plan, in its own statements (the transitions, or one UPDATE)."""
    if plan.action == "complete":
        moved = t.complete(row.pk, lease=lease, now=now, **plan.fields)
        return "completed" if moved else "lost-lease"
    if plan.action == "fail":
        t.fail(
            row.pk,
            [Status.IN_PROGRESS],
            only_if=_leased(lease),
            note=plan.note,
            error=plan.error,
            **plan.fields,
        )
        return plan.outcome
    Generation.objects.filter(pk=row.pk, poll_lease=lease, status=Status.IN_PROGRESS).update(
        **plan.fields
    )
    return plan.outcome


def plan_answer(
    row: Generation, remote: RemoteGeneration | None, now: datetime, started: datetime
) -> Plan:
    """What one poll answer does to its row (nothing written yet)."""
    deadline = timedelta(seconds=settings.LUMA_POLL_DEADLINE)
    stalled = (row.last_progress_at or row.submitted_at or now) < now - deadline
    if remote is None:
        if stalled:
            return Plan(
                "fail",
                "timed-out",
                note="timed out: unknown to the service",
                error="Timed out: the service no longer knows this generation.",
            )
        return Plan(
            "reschedule",
            "missing",
            {
                "last_polled_at": now,
                "next_poll_at": _next_poll(now, started, settings.LUMA_POLL_INTERVAL),
            },
        )

    values: dict[str, Any] = {"state": remote.state, "last_polled_at": now, "poll_errors": 0}
    if remote.prompt:
        values["prompt"] = remote.prompt
    values["estimate_wait_seconds"] = remote.estimate_wait_seconds

    if remote.state == "completed" and remote.video_url:
        values.update(
            video_url=remote.video_url,
            thumbnail_url=remote.thumbnail_url,
            width=remote.width,
            height=remote.height,
        )
        return Plan("complete", "completed", values)
    if remote.state == "failed":
        return Plan(
            "fail",
            "failed",
            {**values, "next_poll_at": None},
            note="failed upstream",
            error=remote.failure_reason or "The service reported that this generation failed.",
        )
    if stalled:
        return Plan(
            "fail",
            "timed-out",
            values,
            note="timed out",
            error=(
                f"Timed out: no progress for {settings.LUMA_POLL_DEADLINE / 60:.0f} minutes "
                f"(last state {remote.state or 'unknown'!r})."
            ),
        )

    progressed = remote.state != row.state
    if progressed and remote.state and remote.state not in RUNNING_STATES | {"completed"}:
        t.plog(
            row.pk,
            "unknown upstream state %r: still working, polling on",
            remote.state,
            level=logging.WARNING,
        )
    if progressed and remote.state != "completed":
        values["last_progress_at"] = now
    if remote.state == "completed":  # done but no URL yet: look again soon (bounded by deadline)
        delay = min(settings.LUMA_POLL_INTERVAL, 2.0)
        outcome = "completed-without-url"
    else:
        delay = next_poll_delay(remote.estimate_wait_seconds)
        outcome = "running" if remote.state in RUNNING_STATES else "unknown-state"
    values["next_poll_at"] = _next_poll(now, started, delay)
    return Plan("reschedule", outcome, values)


def _next_poll(now: datetime, started: datetime, delay: float) -> datetime:
    """When to look again: ``delay`` after the round began, a little early (``_slack``), so
    that the row is due when the round one interval later begins, not the one after (a row
    answered late in its round would otherwise wait two intervals); never sooner than a
    quarter of ``delay`` from now, so a long round does not ask about a row over and over."""
    slack = min(settings.LUMA_POLL_INTERVAL * 0.2, 0.5)
    return max(started + timedelta(seconds=delay - slack), now + timedelta(seconds=delay / 4))


def _leased(lease: str) -> Q:
    """Only while this poller still holds the row."""
    return Q(poll_lease=lease)
