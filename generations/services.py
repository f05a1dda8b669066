"""The one place that creates a Generation or changes its status.

Views, the JSON API, management commands and Celery tasks call these functions. Each status
change is a conditional UPDATE that must touch exactly one row (``_move``), so two workers, two
beats or a redelivered message cannot do the same step twice. A paid POST is sent at most once
per row unless a person authorised another (``posts_sent < posts_authorized``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, ProtectedError, Q
from django.utils import timezone

from generations import fetch
from generations.client import (
    OutcomeUnknownError,
    PermanentError,
    RemoteGeneration,
    RetryableError,
    UpstreamError,
    get_client,
)
from generations.models import Generation, Kind, Status, StatusEvent

log = logging.getLogger("generations.pipeline")

RUNNING_STATES = {"pending", "processing", "queued", "dreaming"}
ASSET_MAX_ATTEMPTS = 8
MAX_BACKOFF = 300.0


class ServiceError(Exception):
    """An action a person asked for that cannot be done; the message says why."""


class NotAllowed(ServiceError):
    """The person may not change this generation: it is someone else's."""


def check_can_change(gen: Generation, user) -> None:
    """Retry, cancel, resolve and delete are for the generation's owner and admins.

    ``user=None`` is the operator (management commands), who may do anything.
    """
    if user is None or user.is_superuser or user.is_staff:
        return
    if gen.created_by_id is None or gen.created_by_id != user.pk:
        raise NotAllowed("Only the person who made this job, or an admin, can change it.")


def _backoff(attempt: int, base: float = 2.0) -> float:
    """Exponential backoff with jitter, capped."""
    delay = min(MAX_BACKOFF, base * (2 ** max(0, attempt - 1)))
    return delay * (0.75 + secrets.randbelow(500) / 1000)


def _plog(gen_id: Any, message: str, *args: Any, level: int = logging.INFO) -> None:
    """Every pipeline line names the generation."""
    log.log(level, "generation=%s " + message, gen_id, *args, extra={"generation_id": str(gen_id)})


def _move(
    gen_id: Any,
    from_statuses: Iterable[str],
    to: str,
    *,
    note: str = "",
    extra_filter: Q | None = None,
    **fields: Any,
) -> bool:
    """Change a row's status only if it is still in one of ``from_statuses``; record the event."""
    now = timezone.now()
    query = Generation.objects.filter(pk=gen_id, status__in=list(from_statuses))
    if extra_filter is not None:
        query = query.filter(extra_filter)
    with transaction.atomic():
        changed = query.update(status=to, status_changed_at=now, **fields)
        if changed != 1:
            return False
        StatusEvent.objects.create(
            generation_id=gen_id, at=now, status=to, state=fields.get("state", ""), note=note
        )
    _plog(gen_id, "status=%s %s", to, note)
    return True


def _enqueue_submit(gen_id: Any, countdown: float | None = None) -> None:
    from generations import tasks

    Generation.objects.filter(pk=gen_id).update(enqueued_at=timezone.now())
    # robust: a broker that is down must not fail the request; the sweeper enqueues it later.
    transaction.on_commit(
        lambda: tasks.submit_generation.apply_async((str(gen_id),), countdown=countdown),
        robust=True,
    )


def _enqueue_copy(gen_id: Any) -> None:
    from generations import tasks

    Generation.objects.filter(pk=gen_id).update(assets_enqueued_at=timezone.now())
    transaction.on_commit(lambda: tasks.copy_assets.delay(str(gen_id)), robust=True)


# --- what people do ----------------------------------------------------------------------------
def create_generation(user, *, parent: Generation | None = None, **fields: Any) -> Generation:
    """Queue a new generation (or, with ``parent``, an extension). Nothing is sent yet."""
    allowed = {
        "user_prompt",
        "aspect_ratio",
        "expand_prompt",
        "image_url",
        "image_end_url",
        "image_file",
        "image_end_file",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"unknown fields: {sorted(unknown)}")
    with transaction.atomic():
        if parent is not None and not (
            Generation.objects.select_for_update()
            .filter(pk=parent.pk, status=Status.COMPLETED, remote_id__isnull=False)
            .exists()
        ):  # locked: a delete of the parent at the same moment waits for this extension
            raise ServiceError("Only a finished video can be extended.")
        gen = Generation.objects.create(
            created_by=user if getattr(user, "is_authenticated", False) else None,
            parent=parent,
            kind=Kind.EXTEND if parent else Kind.CREATE,
            status=Status.QUEUED,
            **fields,
        )
        StatusEvent.objects.create(
            generation=gen,
            at=gen.created_at,
            status=Status.QUEUED,
            note=f"extension of {parent.pk}" if parent else "created",
        )
        _enqueue_submit(gen.pk)
    _plog(gen.pk, "queued kind=%s", gen.kind)
    return gen


def extend_generation(parent: Generation, user, **fields: Any) -> Generation:
    return create_generation(user, parent=parent, **fields)


def retry_generation(gen: Generation, user=None) -> Generation:
    """Send a failed or needs-attention generation again: a person's say-so for one more POST.

    For a needs-attention row this may pay twice (the first request may have started a job);
    the page says so before the button is pressed.
    """
    check_can_change(gen, user)
    if gen.status not in (Status.FAILED, Status.NEEDS_ATTENTION, Status.CANCELLED):
        raise ServiceError("Only a failed, cancelled or needs-attention job can be retried.")
    if gen.parent_id and not gen.parent.can_extend:
        raise ServiceError("The video this extends is no longer available to extend.")
    who = getattr(user, "username", "") or "someone"
    moved = _move(
        gen.pk,
        [gen.status],
        Status.QUEUED,
        note=f"retry requested by {who}",
        remote_id=None,
        state="",
        error="",
        error_code=None,
        error_request_id="",
        attempts=0,
        next_attempt_at=None,
        post_started_at=None,
        posts_authorized=F("posts_sent") + 1,
        claim="",
        video_url="",
        thumbnail_url="",
    )
    if not moved:
        raise ServiceError("This job changed in the meantime; reload and try again.")
    with transaction.atomic():
        _enqueue_submit(gen.pk)
    gen.refresh_from_db()
    return gen


def mark_failed(gen: Generation, user=None, note: str = "") -> Generation:
    """A person decides a needs-attention job is not to be sent again."""
    check_can_change(gen, user)
    who = getattr(user, "username", "") or "someone"
    if not _move(
        gen.pk,
        [Status.NEEDS_ATTENTION],
        Status.FAILED,
        note=note or f"marked failed by {who}",
        error=gen.error or "Marked failed by a person",
    ):
        raise ServiceError("Only a job that needs attention can be marked failed.")
    gen.refresh_from_db()
    return gen


def cancel_generation(gen: Generation, user=None) -> Generation:
    """Cancel a job that has not been sent yet."""
    check_can_change(gen, user)
    who = getattr(user, "username", "") or "someone"
    if not _move(gen.pk, [Status.QUEUED], Status.CANCELLED, note=f"cancelled by {who}"):
        raise ServiceError("Only a queued job can be cancelled; this one has already been sent.")
    gen.refresh_from_db()
    return gen


def delete_generation(gen: Generation, user=None) -> None:
    """Delete a finished, failed or cancelled generation and its local files.

    Jobs in flight cannot be deleted (they are being paid for), nor a video that others extend.
    The checks and the delete happen on the locked row, so a retry or an extension arriving
    at the same moment cannot slip in between.
    """
    check_can_change(gen, user)
    with transaction.atomic():
        row = Generation.objects.select_for_update().filter(pk=gen.pk).first()
        if row is None:
            return
        if row.status == Status.NEEDS_ATTENTION:
            raise ServiceError("Resolve this job first: retry it or mark it failed.")
        if row.status not in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
            raise ServiceError(
                "A job in flight cannot be deleted; cancel it or wait until it ends."
            )
        if row.extensions.exists():
            raise ServiceError("Other videos extend this one; delete those first.")
        files = [
            f for f in (row.video_file, row.thumbnail_file, row.image_file, row.image_end_file) if f
        ]
        try:
            row.delete()
        except ProtectedError:
            raise ServiceError("Other videos extend this one; delete those first.") from None
    for stored in files:
        stored.storage.delete(stored.name)
    _plog(gen.pk, "deleted by %s", getattr(user, "username", "") or "an operator")


def toggle_like(gen: Generation, user) -> bool:
    """Like or unlike for this user; returns whether it is now liked.

    Decided by the delete itself (it removed a like, or there was none), so two clicks at
    the same moment toggle twice instead of both reading the same state.
    """
    likes = Generation.liked_by.through.objects
    removed, _ = likes.filter(generation_id=gen.pk, user_id=user.pk).delete()
    if removed:
        return False
    likes.get_or_create(generation_id=gen.pk, user_id=user.pk)
    return True


# --- submit ------------------------------------------------------------------------------------
def request_body(gen: Generation) -> dict[str, Any]:
    """The upstream body for this row; uploaded keyframes become public URLs."""
    body: dict[str, Any] = {
        "user_prompt": gen.user_prompt,
        "aspect_ratio": gen.aspect_ratio,
        "expand_prompt": gen.expand_prompt,
    }
    for url_field, file_field in (("image_url", "image_file"), ("image_end_url", "image_end_file")):
        url = getattr(gen, url_field)
        upload = getattr(gen, file_field)
        if not url and upload and settings.PUBLIC_BASE_URL:
            url = settings.PUBLIC_BASE_URL + upload.url
        if url:
            body[url_field] = url
    return body


def submit(gen_id: Any) -> str:
    """Claim a queued row and POST it once. Returns what happened, for logs and tests.

    Every step after the claim is conditional on this attempt's ``claim`` token, so a worker
    that stalled past the sweeper's deadline cannot count, send or record for a row that has
    moved on (and perhaps been claimed by another worker).
    """
    now = timezone.now()
    token = secrets.token_hex(8)
    claimed = _move(
        gen_id,
        [Status.QUEUED],
        Status.SUBMITTING,
        note="claimed by a worker",
        extra_filter=(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        & Q(posts_sent__lt=F("posts_authorized")),
        attempts=F("attempts") + 1,
        post_started_at=None,
        claim=token,
    )
    if not claimed:
        return "not-claimed"
    gen = Generation.objects.select_related("parent").get(pk=gen_id)
    mine = Q(claim=token)
    body = request_body(gen)
    if gen.parent_id and not gen.parent.remote_id:
        _move(
            gen.pk,
            [Status.SUBMITTING],
            Status.FAILED,
            extra_filter=mine,
            note="parent has no upstream id",
            error="The video this extends has no upstream id.",
        )
        return "failed"
    # From here on the POST may reach the service: count it before sending, if still ours.
    counted = Generation.objects.filter(
        mine,
        pk=gen.pk,
        status=Status.SUBMITTING,
        post_started_at__isnull=True,
        posts_sent__lt=F("posts_authorized"),
    ).update(post_started_at=timezone.now(), posts_sent=F("posts_sent") + 1)
    if counted != 1:
        _plog(gen.pk, "claim lost before sending; nothing sent", level=logging.WARNING)
        return "not-claimed"
    client = get_client()
    try:
        remote = client.extend(gen.parent.remote_id, body) if gen.parent_id else client.create(body)
    except RetryableError as exc:
        return _refused_for_now(gen, token, exc)
    except OutcomeUnknownError as exc:
        _move(
            gen.pk,
            [Status.SUBMITTING],
            Status.NEEDS_ATTENTION,
            extra_filter=mine,
            note="outcome unknown: " + exc.message,
            error=exc.message.rstrip(".")
            + ". It was not sent again automatically, to avoid paying twice.",
            error_code=exc.status_code,
            error_request_id=exc.request_id,
        )
        return "needs-attention"
    except PermanentError as exc:
        _move(
            gen.pk,
            [Status.SUBMITTING],
            Status.FAILED,
            extra_filter=mine,
            note=f"refused ({exc.status_code})",
            error=exc.message,
            error_code=exc.status_code,
            error_request_id=exc.request_id,
            posts_sent=F("posts_sent") - 1,
            post_started_at=None,
        )
        return "failed"
    return _accepted(gen, token, remote)


def _refused_for_now(gen: Generation, token: str, exc: UpstreamError) -> str:
    """The POST certainly started nothing: un-count it and queue again with backoff."""
    attempts = gen.attempts  # loaded after the claim incremented it
    common = {
        "extra_filter": Q(claim=token),
        "error": exc.message,
        "error_code": exc.status_code,
        "error_request_id": exc.request_id,
        "posts_sent": F("posts_sent") - 1,
        "post_started_at": None,
    }
    if attempts >= settings.LUMA_SUBMIT_MAX_ATTEMPTS:
        _move(
            gen.pk,
            [Status.SUBMITTING],
            Status.FAILED,
            note=f"gave up after {attempts} attempts",
            **common,
        )
        return "failed"
    delay = _backoff(attempts)
    if exc.retry_after is not None:
        delay = max(delay, min(exc.retry_after, MAX_BACKOFF))
    with transaction.atomic():
        moved = _move(
            gen.pk,
            [Status.SUBMITTING],
            Status.QUEUED,
            note=f"refused for now ({exc.status_code or 'no answer'}); retry in {delay:.0f}s",
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            **common,
        )
        if moved:
            _enqueue_submit(gen.pk, countdown=delay)
    return "retry"


def _accepted(gen: Generation, token: str, remote: RemoteGeneration) -> str:
    now = timezone.now()
    fields = {
        "remote_id": remote.id,
        "state": remote.state,
        "prompt": remote.prompt,
        "estimate_wait_seconds": remote.estimate_wait_seconds,
        "remote_created_at": remote.created_at,
        "submitted_at": now,
        "last_progress_at": now,
        "next_poll_at": now + timedelta(seconds=next_poll_delay(remote.estimate_wait_seconds)),
    }
    moved = _move(
        gen.pk,
        # The sweeper may have given up on a slow request meanwhile: the answer still wins.
        [Status.SUBMITTING, Status.NEEDS_ATTENTION],
        Status.IN_PROGRESS,
        note=f"accepted as {remote.id}",
        extra_filter=Q(claim=token, remote_id__isnull=True),
        error="",
        error_code=None,
        error_request_id="",
        **fields,
    )
    if moved:
        return "accepted"
    # The row moved on while the POST was out (a person retried it or marked it failed): the
    # generation is paid for all the same, so it gets a row of its own and is kept.
    with transaction.atomic():
        adopted = Generation.objects.create(
            created_by=gen.created_by,
            parent=gen.parent,
            kind=gen.kind,
            user_prompt=gen.user_prompt,
            aspect_ratio=gen.aspect_ratio,
            expand_prompt=gen.expand_prompt,
            image_url=gen.image_url,
            image_end_url=gen.image_end_url,
            status=Status.IN_PROGRESS,
            posts_sent=1,
            posts_authorized=1,
            attempts=1,
            **fields,
        )
        StatusEvent.objects.create(
            generation=adopted,
            status=Status.IN_PROGRESS,
            state=remote.state,
            note=f"late answer for {gen.pk}: accepted as {remote.id}",
        )
    _plog(
        gen.pk, "late answer %s kept as generation %s", remote.id, adopted.pk, level=logging.WARNING
    )
    return "adopted"


# --- poll --------------------------------------------------------------------------------------
def next_poll_delay(estimate: int | None) -> float:
    """Poll again after half the upstream's estimate, never sooner than the interval."""
    interval = settings.LUMA_POLL_INTERVAL
    if not estimate:
        return interval
    return max(interval, min(estimate / 2, 60.0))


@dataclass
class PollStats:
    due: int = 0
    requests: int = 0
    errors: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def poll_in_flight(limit_batches: int = 20) -> PollStats:
    """Ask the upstream about every due in-flight row, in as few GETs as possible.

    Rows are leased with one UPDATE (``poll_lease`` + ``next_poll_at`` pushed forward), so a
    second poller running at the same time finds them not due and skips them.
    """
    stats = PollStats()
    now = timezone.now()
    batch = settings.LUMA_POLL_BATCH_SIZE
    due_ids = list(
        Generation.objects.filter(status=Status.IN_PROGRESS, next_poll_at__lte=now)
        .order_by("next_poll_at")
        .values_list("pk", flat=True)[: batch * limit_batches]
    )
    if not due_ids:
        return stats
    lease = secrets.token_hex(8)
    Generation.objects.filter(
        pk__in=due_ids, status=Status.IN_PROGRESS, next_poll_at__lte=now
    ).update(poll_lease=lease, next_poll_at=now + timedelta(seconds=settings.LUMA_POLL_LEASE))
    rows = list(
        Generation.objects.filter(poll_lease=lease, status=Status.IN_PROGRESS).order_by("pk")
    )
    stats.due = len(rows)
    client = get_client()
    for start in range(0, len(rows), batch):
        _poll_chunk(client, rows[start : start + batch], lease, stats)
    return stats


def _poll_chunk(client, chunk: list[Generation], lease: str, stats: PollStats) -> None:
    """One GET for these rows. A refusal of the whole request (a 4xx, say for one id the
    service does not know) is narrowed down by halves, so one bad id cannot stall the rest;
    a single id refused that way counts as unknown to the service (the deadline applies)."""
    stats.requests += 1
    try:
        answers = client.get_many([row.remote_id for row in chunk])
    except PermanentError as exc:
        stats.errors += 1
        if len(chunk) == 1:
            _plog(
                chunk[0].pk,
                "poll refused (%s): %s",
                exc.status_code,
                exc.message,
                level=logging.WARNING,
            )
            stats.count(_apply_safely(chunk[0], None, lease))
            return
        half = len(chunk) // 2
        _poll_chunk(client, chunk[:half], lease, stats)
        _poll_chunk(client, chunk[half:], lease, stats)
        return
    except UpstreamError as exc:
        stats.errors += 1
        _poll_failed(chunk, lease, exc)
        return
    by_id = {answer.id: answer for answer in answers}
    for row in chunk:
        stats.count(_apply_safely(row, by_id.get(row.remote_id), lease))


def _apply_safely(row: Generation, remote: RemoteGeneration | None, lease: str) -> str:
    """One row's trouble (a value the database refuses, say) must not stop the others; its
    lease runs out and it is polled again."""
    try:
        return apply_remote(row, remote, lease)
    except Exception:
        log.exception(
            "generation=%s could not apply a poll answer",
            row.pk,
            extra={"generation_id": str(row.pk)},
        )
        return "error"


def _poll_failed(rows: list[Generation], lease: str, exc: UpstreamError) -> None:
    """The service did not answer: back off these rows; no deadline while it is unreachable."""
    now = timezone.now()
    for row in rows:
        delay = _backoff(row.poll_errors + 1, base=settings.LUMA_POLL_INTERVAL)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, MAX_BACKOFF))
        Generation.objects.filter(pk=row.pk, poll_lease=lease).update(
            poll_errors=F("poll_errors") + 1,
            last_polled_at=now,
            next_poll_at=now + timedelta(seconds=delay),
        )
    _plog(
        ",".join(str(r.pk) for r in rows[:3]) + ("…" if len(rows) > 3 else ""),
        "poll failed (%s): %s",
        exc.status_code or "no answer",
        exc.message,
        level=logging.WARNING,
    )


def apply_remote(row: Generation, remote: RemoteGeneration | None, lease: str) -> str:
    """Apply one poll answer to its row; returns a short outcome name."""
    now = timezone.now()
    mine = Q(poll_lease=lease)
    deadline = timedelta(seconds=settings.LUMA_POLL_DEADLINE)
    stalled = (row.last_progress_at or row.submitted_at or now) < now - deadline

    if remote is None:
        if stalled:
            _move(
                row.pk,
                [Status.IN_PROGRESS],
                Status.FAILED,
                extra_filter=mine,
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
        moved = _move(
            row.pk,
            [Status.IN_PROGRESS],
            Status.COMPLETED,
            extra_filter=mine,
            note="video ready",
            completed_at=now,
            video_url=remote.video_url,
            thumbnail_url=remote.thumbnail_url,
            width=remote.width,
            height=remote.height,
            next_poll_at=None,
            assets_next_at=now,
            **values,
        )
        if moved:
            with transaction.atomic():
                _enqueue_copy(row.pk)
        return "completed"
    if remote.state == "failed":
        _move(
            row.pk,
            [Status.IN_PROGRESS],
            Status.FAILED,
            extra_filter=mine,
            note="failed upstream",
            error=remote.failure_reason or "The service reported that this generation failed.",
            next_poll_at=None,
            **values,
        )
        return "failed"
    if stalled:
        _move(
            row.pk,
            [Status.IN_PROGRESS],
            Status.FAILED,
            extra_filter=mine,
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
        _plog(
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


def _reschedule(row: Generation, lease: str, now, delay: float, values: dict[str, Any]) -> None:
    Generation.objects.filter(pk=row.pk, poll_lease=lease, status=Status.IN_PROGRESS).update(
        **{"last_polled_at": now, **values}, next_poll_at=now + timedelta(seconds=delay)
    )


# --- copy the finished files -------------------------------------------------------------------
def copy_assets(gen_id: Any) -> str:
    """Keep our own copy of a finished video and its thumbnail. Safe to run twice."""
    now = timezone.now()
    claimed = Generation.objects.filter(
        pk=gen_id, status=Status.COMPLETED, assets_next_at__lte=now
    ).update(
        assets_next_at=now + timedelta(seconds=settings.LUMA_ASSET_LEASE),
        asset_attempts=F("asset_attempts") + 1,
    )
    if not claimed:
        return "not-claimed"
    gen = Generation.objects.get(pk=gen_id)
    updates: dict[str, Any] = {}
    try:
        if not gen.video_file:
            name, size = fetch.download_to_storage(
                gen.video_url, f"videos/{gen.pk}.mp4", fetch.video_kind()
            )
            updates.update(video_file=name, video_bytes=size)
        if not gen.thumbnail_file and gen.thumbnail_url:
            name, _ = fetch.download_to_storage(
                gen.thumbnail_url, f"thumbnails/{gen.pk}.jpg", fetch.image_kind()
            )
            updates["thumbnail_file"] = name
    except fetch.FetchError as exc:
        give_up = exc.permanent or gen.asset_attempts >= ASSET_MAX_ATTEMPTS
        next_at = None if give_up else now + timedelta(seconds=_backoff(gen.asset_attempts, 5))
        Generation.objects.filter(pk=gen.pk).update(
            asset_error=str(exc), assets_next_at=next_at, **updates
        )
        _plog(
            gen.pk,
            "copy failed (%s): %s",
            "giving up" if give_up else "will retry",
            exc,
            level=logging.WARNING,
        )
        return "failed" if give_up else "retry"
    Generation.objects.filter(pk=gen.pk).update(assets_next_at=None, asset_error="", **updates)
    _plog(gen.pk, "local copy kept (%s bytes)", updates.get("video_bytes", gen.video_bytes))
    return "copied"


# --- sweep -------------------------------------------------------------------------------------
@dataclass
class SweepStats:
    requeued: int = 0
    unstuck: int = 0
    needs_attention: int = 0
    copies: int = 0


def sweep() -> SweepStats:
    """Repair what lost messages and dead workers leave behind; safe to run twice at once."""
    from generations import tasks

    stats = SweepStats()
    now = timezone.now()
    # 1. queued rows whose wake-up was lost (flushed Redis, crash between commit and publish)
    stale_enqueue = now - timedelta(seconds=settings.LUMA_REQUEUE_AFTER)
    queued = (
        Generation.objects.filter(status=Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=stale_enqueue))
    )
    for pk in queued.values_list("pk", flat=True)[:1000]:
        if (
            Generation.objects.filter(pk=pk, status=Status.QUEUED)
            .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=stale_enqueue))
            .update(enqueued_at=now)
        ):
            tasks.submit_generation.delay(str(pk))
            stats.requeued += 1
    # 2. rows a dead worker left in `submitting`
    stale = now - timedelta(seconds=settings.LUMA_SUBMIT_STALE_AFTER)
    for gen in Generation.objects.filter(status=Status.SUBMITTING, status_changed_at__lte=stale):
        if gen.post_started_at is None:
            if _move(
                gen.pk,
                [Status.SUBMITTING],
                Status.QUEUED,
                extra_filter=Q(post_started_at__isnull=True, status_changed_at__lte=stale),
                note="worker stopped before sending; queued again",
                enqueued_at=None,
            ):
                stats.unstuck += 1
        elif _move(
            gen.pk,
            [Status.SUBMITTING],
            Status.NEEDS_ATTENTION,
            extra_filter=Q(status_changed_at__lte=stale),
            note="worker stopped while sending",
            error="A worker stopped while sending this request, so it may or may not have "
            "reached the service. Retry (may pay twice) or mark it failed.",
        ):
            stats.needs_attention += 1
    # 3. finished videos still without a local copy
    lost_copy = Q(assets_enqueued_at__isnull=True) | Q(assets_enqueued_at__lte=stale_enqueue)
    due = Generation.objects.filter(lost_copy, status=Status.COMPLETED, assets_next_at__lte=now)
    for pk in due.values_list("pk", flat=True)[:500]:
        if Generation.objects.filter(lost_copy, pk=pk).update(assets_enqueued_at=now):
            tasks.copy_assets.delay(str(pk))
            stats.copies += 1
    if stats.requeued or stats.unstuck or stats.needs_attention:
        log.info("sweep %s", stats)
    return stats
