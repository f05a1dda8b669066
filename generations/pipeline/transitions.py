"""The one primitive that changes a generation's status, and the named transitions made of it.

``move`` is a conditional UPDATE (``WHERE id = … AND status IN (…) [AND …]``) that must change
exactly one row, plus a ``StatusEvent`` in the same transaction. Two workers, two beats or a
redelivered message therefore cannot do the same step twice: the loser's UPDATE changes nothing.
Every other module changes a status through the named transitions below, so each move says what
it means (``fail``, ``flag_for_a_person``, ``requeue``…) and a wake-up stamp (``enqueued_at``,
``assets_enqueued_at``) is written in the same UPDATE as the move that needs it.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from generations import livestamp, webhooks
from generations.models import (
    COPY_GIVEN_UP,
    TIMED_OUT,
    Generation,
    Limits,
    Status,
    StatusEvent,
    SubmitGrant,
    capacity_limited,
    slots,
    turns,
)
from generations.pipeline.bulk import update_each

log = logging.getLogger("generations.pipeline")

MAX_BACKOFF = 300.0


def plog(gen_id: Any, message: str, *args: Any, level: int = logging.INFO) -> None:
    """Every pipeline line names the generation."""
    log.log(level, "generation=%s " + message, gen_id, *args, extra={"generation_id": str(gen_id)})


def backoff(attempt: int, base: float = 2.0) -> float:
    """Exponential backoff with jitter, capped at ``MAX_BACKOFF``."""
    delay = min(MAX_BACKOFF, base * (2 ** max(0, attempt - 1)))
    return delay * (0.75 + secrets.randbelow(500) / 1000)


def move(
    gen_id: Any,
    from_statuses: Iterable[str],
    to: str,
    *,
    note: str = "",
    only_if: Q | None = None,
    announce: bool = True,
    **fields: Any,
) -> bool:
    """Change a row's status only if it is still in one of ``from_statuses`` (and matches
    ``only_if``); record the event, and, for completed, failed and needs attention, one
    webhook delivery per webhook that wants it, in the same transaction. Returns whether this
    call made the change. ``announce=False`` for a move whose news is told later or not at all:
    ``complete`` (told once the copy settles, ``copy_settled``) and a finished video's copy
    started again: no webhook delivery with the move."""
    now = timezone.now()
    from_statuses = list(from_statuses)
    query = Generation.objects.filter(pk=gen_id, status__in=from_statuses)
    if only_if is not None:
        query = query.filter(only_if)
    with transaction.atomic():
        changed = query.update(status=to, status_changed_at=now, **fields)
        if changed != 1:
            return False
        livestamp.bump([*from_statuses, to])  # the Jobs page's sections it left and entered
        StatusEvent.objects.create(
            generation_id=gen_id, at=now, status=to, state=fields.get("state", ""), note=note
        )
        if announce:
            webhooks.record(gen_id, to, now)
    plog(gen_id, "status=%s %s", to, note)
    return True


# --- named transitions --------------------------------------------------------------------------
class Claim(enum.StrEnum):
    CLAIMED = "claimed"
    NOT_CLAIMABLE = "not-claimable"  # someone else has it, it is not due, or no POST is allowed
    NO_SLOT = "no-slot"  # the account is at capacity, or another person's turn comes first


# Any constant, the same in every process: the key of the transaction-level advisory lock that
# makes "count the slots, then claim" one step across every worker and machine (PostgreSQL).
CAPACITY_LOCK_KEY = 0x6C756D61  # "luma"


def claim_for_submit(
    gen_id: Any,
    token: str,
    now: datetime,
    *,
    allowed: Q | None = None,
    limits: Limits | None = None,
) -> Claim:
    """queued -> submitting, for one submit attempt identified by ``token``; only when due and
    while a POST is still authorised (``posts_sent < posts_authorized``), and, with a capacity
    limit on, only when a slot is free and this row's person is among those whose turn it is.

    Counting and claiming are one step for every worker on every machine: on PostgreSQL the
    transaction holds an advisory lock; SQLite's IMMEDIATE transactions already let one
    writer in at a time. The slot is recorded (``SubmitGrant``) in the same transaction. A row
    refused a slot stays queued, no attempt counted, stamped as having a wake-up coming: the
    sweeper wakes the rows whose turn it is when slots free up.

    ``allowed`` is the account hold's condition, checked in the same UPDATE: while the account
    is on hold only the chosen probe may be claimed. ``limits``: the capacity in force (the
    pacer's, ``pipeline.pace.limits``); the settings' caps when not given."""
    claimable = (
        (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        & Q(posts_sent__lt=F("posts_authorized"))
        & (allowed if allowed is not None else Q())
    )
    fields: dict[str, Any] = {
        "attempts": F("attempts") + 1,
        "post_started_at": None,
        "claim": token,
    }
    if not capacity_limited(limits):
        moved = move(
            gen_id,
            [Status.QUEUED],
            Status.SUBMITTING,
            note="claimed by a worker",
            only_if=claimable,
            **fields,
        )
        return Claim.CLAIMED if moved else Claim.NOT_CLAIMABLE
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CAPACITY_LOCK_KEY])
        row = (
            Generation.objects.waiting_for_a_slot(now)
            .filter(pk=gen_id)
            .values("created_by_id")
            .first()
        )
        if row is None:
            return Claim.NOT_CLAIMABLE
        state = slots(now, limits)
        if state.room is not None and row["created_by_id"] not in turns(state.line, state.room):
            Generation.objects.filter(pk=gen_id, status=Status.QUEUED).update(enqueued_at=now)
            plog(gen_id, "waiting for a free slot (%s free)", state.room, level=logging.DEBUG)
            return Claim.NO_SLOT
        if not move(
            gen_id,
            [Status.QUEUED],
            Status.SUBMITTING,
            note="claimed by a worker",
            only_if=claimable,
            **fields,
        ):
            return Claim.NOT_CLAIMABLE
        SubmitGrant.objects.create(at=now, user_id=row["created_by_id"], generation_id=gen_id)
    return Claim.CLAIMED


def requeue(
    gen_id: Any,
    from_statuses: Iterable[str],
    *,
    note: str,
    retry_at: datetime | None = None,
    only_if: Q | None = None,
    **fields: Any,
) -> bool:
    """Back to ``queued``, stamped as enqueued: the caller sends the wake-up (for ``retry_at``,
    or at once). If that message is lost, the sweeper sends another after LUMA_REQUEUE_AFTER."""
    return move(
        gen_id,
        from_statuses,
        Status.QUEUED,
        note=note,
        only_if=only_if,
        next_attempt_at=retry_at,
        enqueued_at=timezone.now(),
        **fields,
    )


def fail(
    gen_id: Any,
    from_statuses: Iterable[str],
    *,
    note: str,
    error: str,
    only_if: Q | None = None,
    **fields: Any,
) -> bool:
    """A final failure, with the reason a person reads."""
    return move(
        gen_id, from_statuses, Status.FAILED, note=note, only_if=only_if, error=error, **fields
    )


def flag_for_a_person(
    gen_id: Any, *, note: str, error: str, only_if: Q | None = None, **fields: Any
) -> bool:
    """submitting -> needs_attention: the POST may have reached the service (and been paid
    for); nothing is sent again until a person says so."""
    return move(
        gen_id,
        [Status.SUBMITTING],
        Status.NEEDS_ATTENTION,
        note=note,
        only_if=only_if,
        error=error,
        **fields,
    )


def start(gen_id: Any, *, token: str, note: str, **fields: Any) -> bool:
    """submitting (or needs_attention, if the sweeper gave up on a slow answer that came after
    all) -> in_progress, for the attempt that holds ``token`` and only once."""
    return move(
        gen_id,
        [Status.SUBMITTING, Status.NEEDS_ATTENTION],
        Status.IN_PROGRESS,
        note=note,
        only_if=Q(claim=token, remote_id__isnull=True),
        error="",
        error_code=None,
        error_request_id="",
        **fields,
    )


def complete(gen_id: Any, *, lease: str, now: datetime, **fields: Any) -> bool:
    """in_progress -> completed for the poller holding ``lease``; the copy is due now and
    stamped as enqueued (the caller sends its wake-up). The webhooks are told once the copy
    settles (``copy_settled``), so that their body points at lumaweb's own file."""
    return move(
        gen_id,
        [Status.IN_PROGRESS],
        Status.COMPLETED,
        note="video ready",
        only_if=Q(poll_lease=lease),
        announce=False,
        completed_at=now,
        next_poll_at=None,
        assets_next_at=now,
        assets_enqueued_at=now,
        **fields,
    )


def complete_many(fields: dict[Any, dict[str, Any]], *, lease: str, now: datetime) -> list[Any]:
    """``complete`` for a poll batch's finished rows at once (each with its own video, sizes
    and state in ``fields``): one conditional UPDATE, the rows it moved read back by the stamp
    it wrote (``status_changed_at = now``, still this poller's lease), their events written in
    one INSERT, in one transaction. Returns the ids this call completed (their copy is due)."""
    if not fields:
        return []
    with transaction.atomic():
        update_each(
            Generation.objects.filter(status=Status.IN_PROGRESS, poll_lease=lease),
            fields,
            common={
                "status": Status.COMPLETED,
                "status_changed_at": now,
                "completed_at": now,
                "next_poll_at": None,
                "assets_next_at": now,
                "assets_enqueued_at": now,
            },
        )
        moved = list(
            Generation.objects.filter(
                pk__in=list(fields),
                status=Status.COMPLETED,
                status_changed_at=now,
                poll_lease=lease,
            ).values_list("pk", "state")
        )
        StatusEvent.objects.bulk_create(
            StatusEvent(
                generation_id=pk, at=now, status=Status.COMPLETED, state=state, note="video ready"
            )
            for pk, state in moved
        )
        if moved:  # the Jobs page's sections they left and entered, as ``move`` does
            livestamp.bump([Status.IN_PROGRESS, Status.COMPLETED])
    for pk, _state in moved:
        plog(pk, "status=%s %s", Status.COMPLETED, "video ready")
    return [pk for pk, _state in moved]


def cancel(gen_id: Any, *, note: str) -> bool:
    """queued -> cancelled: nothing was sent for it."""
    return move(gen_id, [Status.QUEUED], Status.CANCELLED, note=note)


def check_again(gen_id: Any, *, note: str) -> bool:
    """A person's "Check again" for a job that timed out: failed -> in_progress, due for the
    next poll round, with a fresh deadline (``last_progress_at``). Nothing is sent but GETs:
    the row keeps its upstream id and its POST count, so it can never be paid for twice. If
    the service says it completed, the poll completes it and its copy follows."""
    now = timezone.now()
    return move(
        gen_id,
        [Status.FAILED],
        Status.IN_PROGRESS,
        note=note,
        only_if=TIMED_OUT,
        error="",
        next_poll_at=now,
        last_progress_at=now,
        poll_errors=0,
        poll_lease="",
    )


def authorise_another_post(
    gen_id: Any, from_status: str, *, note: str, only_if: Q | None = None
) -> bool:
    """A person's Retry: back to queued with one more POST allowed, everything the last attempt
    left behind cleared, stamped as enqueued (the caller sends the wake-up). ``only_if``: what
    else the row must still be (for instance, not one that may pay twice)."""
    return requeue(
        gen_id,
        [from_status],
        note=note,
        only_if=only_if,
        remote_id=None,
        state="",
        error="",
        error_code=None,
        error_request_id="",
        attempts=0,
        post_started_at=None,
        posts_authorized=F("posts_sent") + 1,
        claim="",
        video_url="",
        thumbnail_url="",
    )


def schedule_copy_retry(
    gen_id: Any, *, next_at: datetime | None, error: str, **fields: Any
) -> None:
    """A copy failed: try again at ``next_at`` (the sweeper wakes it), or never (``None``:
    given up, which settles the copy and tells the webhooks)."""
    with transaction.atomic():
        Generation.objects.filter(pk=gen_id).update(
            asset_error=error, assets_next_at=next_at, **fields
        )
        if next_at is None:
            _announce_completed(gen_id)
            livestamp.bump([Status.COMPLETED])  # "Copy again" on the Jobs page


def copy_settled(gen_id: Any, **fields: Any) -> None:
    """The copy is made (``fields``: the stored files): nothing more is due, and the webhooks
    are told ``generation.completed``, in the same transaction."""
    with transaction.atomic():
        Generation.objects.filter(pk=gen_id).update(assets_next_at=None, asset_error="", **fields)
        _announce_completed(gen_id)
        livestamp.bump([Status.COMPLETED])  # its thumbnail on the Jobs page


def _announce_completed(gen_id: Any) -> None:
    """``generation.completed`` for the webhooks, once per finished video: the copy settled
    (made, or given up on), so the body carries lumaweb's own file when there is one. Claimed
    by stamping ``completion_announced_at`` in a conditional UPDATE, so a copy settled twice
    (a second worker, "Copy again") records nothing more."""
    now = timezone.now()
    if Generation.objects.filter(
        pk=gen_id, status=Status.COMPLETED, completion_announced_at__isnull=True
    ).update(completion_announced_at=now):
        webhooks.record(gen_id, Status.COMPLETED, now)


def retry_copy_from_fresh_links(
    gen_id: Any, *, next_at: datetime, error: str, **fields: Any
) -> None:
    """A copy failed on an expired link and the service handed out fresh ones (in ``fields``):
    try again at ``next_at``, with no wake-up sent (the sweeper sends it once it is due)."""
    Generation.objects.filter(pk=gen_id).update(
        asset_error=error, assets_next_at=next_at, assets_enqueued_at=None, **fields
    )


def copy_again(gen_id: Any, *, note: str) -> bool:
    """A person's "Copy again" for a finished video whose copy was given up on: the copy is due
    now with its attempts counted afresh (links expired since are asked for again by the copy
    step), stamped as enqueued (the caller sends the wake-up). Recorded in the history."""
    now = timezone.now()
    return move(
        gen_id,
        [Status.COMPLETED],
        Status.COMPLETED,
        note=note,
        only_if=COPY_GIVEN_UP,
        announce=False,  # the video was finished (and announced) already
        asset_attempts=0,
        asset_error="",
        assets_next_at=now,
        assets_enqueued_at=now,
    )


def in_seconds(seconds: float, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=seconds)
