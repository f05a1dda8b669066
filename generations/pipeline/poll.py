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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, Q
from django.utils import timezone

from generations import providers
from generations.client import PermanentError, RemoteGeneration, UpstreamError
from generations.models import Generation, Status
from generations.pipeline import transitions as t

log = logging.getLogger("generations.pipeline")
RUNNING_STATES = {"pending", "processing", "queued", "dreaming"}
FINISHING = ("completed", "failed", "timed-out")  # outcomes that end a row's run


def next_poll_delay(estimate: int | None) -> float:
    """Poll again after half the upstream's estimate, never sooner than the interval."""
    interval = settings.LUMA_POLL_INTERVAL
    if not estimate:
        return interval
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


def poll_in_flight(limit_batches: int = 20) -> PollStats:
    """Lease the due rows and ask the upstream about them: ``LUMA_POLL_BATCH_SIZE`` ids a GET
    where the provider batches (``capabilities.poll_batch`` > 1); otherwise one GET per id,
    at most ``LUMA_POLL_MAX_REQUESTS`` in each poll interval (``_take_slot``), the
    longest-due rows first, the rest due at the next round."""
    stats = PollStats()
    provider = providers.current()
    if provider.capabilities.poll_batch > 1:
        # The operator's setting, as before providers (a batch the service refuses as too
        # large is split by halves, ``_poll_chunk``); ``poll_batch`` says only that it batches.
        batch = settings.LUMA_POLL_BATCH_SIZE
        lease, rows = lease_due_rows(settings.LUMA_POLL_BATCH_SIZE * limit_batches)
        stats.due = len(rows)
        for start in range(0, len(rows), batch):
            _poll_chunk(provider, rows[start : start + batch], lease, stats)
        return stats
    lease, rows = lease_due_rows(_budget_left())
    stats.due = len(rows)
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
        _poll_chunk(provider, [row], lease, stats)
    return stats


def _send_margin() -> float:
    """A GET this close to its interval's end arrives in the next: it counts there."""
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
    this poller has answered them or has died and the lease ran out."""
    now = timezone.now()
    due_ids = list(
        Generation.objects.due_for_poll(now)
        .order_by("next_poll_at")
        .values_list("pk", flat=True)[:limit]
    )
    lease = secrets.token_hex(8)
    if not due_ids:
        return lease, []
    Generation.objects.due_for_poll(now).filter(pk__in=due_ids).update(
        poll_lease=lease, next_poll_at=now + timedelta(seconds=settings.LUMA_POLL_LEASE)
    )
    rows = Generation.objects.filter(poll_lease=lease, status=Status.IN_PROGRESS).order_by("pk")
    return lease, list(rows)


def _poll_chunk(
    provider: providers.Provider, chunk: list[Generation], lease: str, stats: PollStats
) -> None:
    """One GET for these rows. A refusal of the whole request (a 4xx, say for one id the
    service does not know) is narrowed down by halves, so one bad id cannot stall the rest;
    a single id refused that way counts as unknown to the service (the deadline applies)."""
    stats.requests += 1
    try:
        answers = provider.poll([row.remote_id for row in chunk if row.remote_id])
    except PermanentError as exc:
        stats.errors += 1
        if len(chunk) == 1:
            t.plog(
                chunk[0].pk,
                "poll refused (%s): %s",
                exc.status_code,
                exc.message,
                level=logging.WARNING,
            )
            _apply_safely(chunk[0], None, lease, stats)
            return
        half = len(chunk) // 2
        _poll_chunk(provider, chunk[:half], lease, stats)
        _poll_chunk(provider, chunk[half:], lease, stats)
        return
    except UpstreamError as exc:
        stats.errors += 1
        _poll_failed(chunk, lease, exc)
        return
    by_id = {answer.id: answer for answer in answers}
    for row in chunk:
        _apply_safely(row, by_id.get(row.remote_id or ""), lease, stats)


def _apply_safely(
    row: Generation, remote: RemoteGeneration | None, lease: str, stats: PollStats
) -> None:
    """One row's trouble (a value the database refuses, say) must not stop the others; its
    lease runs out and it is polled again."""
    try:
        outcome = apply_remote(row, remote, lease)
    except Exception:
        t.log.exception(
            "generation=%s could not apply a poll answer",
            row.pk,
            extra={"generation_id": str(row.pk)},
        )
        outcome = "error"
    stats.count(outcome)
    if outcome == "completed":
        stats.to_copy.append(row.pk)


def _poll_failed(rows: list[Generation], lease: str, exc: UpstreamError) -> None:
    """The service did not answer: back off these rows; no deadline while it is unreachable."""
    now = timezone.now()
    for row in rows:
        delay = t.backoff(row.poll_errors + 1, base=settings.LUMA_POLL_INTERVAL)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, t.MAX_BACKOFF))
        Generation.objects.filter(pk=row.pk, poll_lease=lease).update(
            poll_errors=F("poll_errors") + 1,
            last_polled_at=now,
            next_poll_at=now + timedelta(seconds=delay),
        )
    t.plog(
        ",".join(str(r.pk) for r in rows[:3]) + ("…" if len(rows) > 3 else ""),
        "poll failed (%s): %s",
        exc.status_code or "no answer",
        exc.message,
        level=logging.WARNING,
    )


def apply_remote(row: Generation, remote: RemoteGeneration | None, lease: str) -> str:
    """Apply one poll answer to its row; returns a short outcome name ("completed" means the
    row just finished and this call made it so: its copy is due)."""
    now = timezone.now()
    deadline = timedelta(seconds=settings.LUMA_POLL_DEADLINE)
    stalled = (row.last_progress_at or row.submitted_at or now) < now - deadline
    if remote is None:
        if stalled:
            t.fail(
                row.pk,
                [Status.IN_PROGRESS],
                only_if=_leased(lease),
                note="timed out: unknown to the service",
                error="Timed out: the service no longer knows this generation.",
            )
            return "timed-out"
        _reschedule(row, lease, now, settings.LUMA_POLL_INTERVAL, {})
        return "missing"

    values: dict[str, Any] = {"state": remote.state, "last_polled_at": now, "poll_errors": 0}
    if remote.prompt:
        values["prompt"] = remote.prompt
    values["estimate_wait_seconds"] = remote.estimate_wait_seconds

    if remote.state == "completed" and remote.video_url:
        moved = t.complete(
            row.pk,
            lease=lease,
            now=now,
            video_url=remote.video_url,
            thumbnail_url=remote.thumbnail_url,
            width=remote.width,
            height=remote.height,
            **values,
        )
        return "completed" if moved else "lost-lease"
    if remote.state == "failed":
        t.fail(
            row.pk,
            [Status.IN_PROGRESS],
            only_if=_leased(lease),
            note="failed upstream",
            error=remote.failure_reason or "The service reported that this generation failed.",
            next_poll_at=None,
            **values,
        )
        return "failed"
    if stalled:
        t.fail(
            row.pk,
            [Status.IN_PROGRESS],
            only_if=_leased(lease),
            note="timed out",
            error=(
                f"Timed out: no progress for {settings.LUMA_POLL_DEADLINE / 60:.0f} minutes "
                f"(last state {remote.state or 'unknown'!r})."
            ),
            **values,
        )
        return "timed-out"

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
    _reschedule(row, lease, now, delay, values)
    return outcome


def _leased(lease: str) -> Q:
    """Only while this poller still holds the row."""
    return Q(poll_lease=lease)


def _reschedule(
    row: Generation, lease: str, now: datetime, delay: float, values: dict[str, Any]
) -> None:
    Generation.objects.filter(pk=row.pk, poll_lease=lease, status=Status.IN_PROGRESS).update(
        **{"last_polled_at": now, **values}, next_poll_at=now + timedelta(seconds=delay)
    )
