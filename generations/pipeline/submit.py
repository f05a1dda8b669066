"""Submit: claim a queued row and send its paid POST at most once.

Every step after the claim is conditional on this attempt's ``claim`` token, so a worker that
stalled past the sweeper's deadline cannot count, send or record for a row that has moved on
(and perhaps been claimed by another worker). ``posts_sent`` is counted *before* the POST and
un-counted only when the answer proves nothing started.
"""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from generations import providers
from generations.client import (
    OutcomeUnknownError,
    PermanentError,
    RemoteGeneration,
    RetryableError,
    UpstreamError,
)
from generations.inputs import GenerationRequest
from generations.models import Generation, HoldCause, Kind, Status, StatusEvent
from generations.pipeline import hold
from generations.pipeline import transitions as t
from generations.pipeline.poll import next_poll_delay

UNKNOWN_OUTCOME_TAIL = ". It was not sent again automatically, to avoid paying twice."


class Submitted(enum.StrEnum):
    ACCEPTED = "accepted"
    ADOPTED = "adopted"  # a late answer kept as a row of its own
    RETRY = "retry"  # refused for now, queued again
    FAILED = "failed"
    NEEDS_ATTENTION = "needs-attention"
    HELD = "held"  # the account is on hold: queued, waiting (refused for the account, or not sent)
    NOT_CLAIMED = "not-claimed"  # someone else has it, or it is not due
    WAITING = "waiting"  # no free slot for it yet: stays queued, the sweeper wakes it in turn


@dataclass(frozen=True)
class SubmitOutcome:
    """What a submit did, when the row wants its next wake-up (``retry_in`` seconds), and
    whether an account hold was lifted by it (``wake_waiting``: the jobs that waited want a
    sweep now rather than at the next beat)."""

    result: Submitted
    retry_in: float | None = None
    wake_waiting: bool = False


def submit(gen_id: Any) -> SubmitOutcome:
    """Claim a queued row and POST it once."""
    token = secrets.token_hex(8)
    claim = t.claim_for_submit(gen_id, token, timezone.now(), allowed=hold.sending_allowed())
    if claim is t.Claim.NO_SLOT:
        return SubmitOutcome(Submitted.WAITING)
    if claim is not t.Claim.CLAIMED:
        held = hold.current() is not None
        return SubmitOutcome(Submitted.HELD if held else Submitted.NOT_CLAIMED)
    hold.probe_taken(gen_id)
    gen = Generation.objects.get(pk=gen_id)
    mine = Q(claim=token)
    submission = submission_of(gen)
    if submission is None:
        t.fail(
            gen.pk,
            [Status.SUBMITTING],
            only_if=mine,
            note="source has no upstream id",
            error="The video this starts from has no upstream id.",
        )
        return SubmitOutcome(Submitted.FAILED)
    # From here on the POST may reach the service: count it before sending, if still ours.
    sent_at = timezone.now()
    counted = Generation.objects.filter(
        mine,
        pk=gen.pk,
        status=Status.SUBMITTING,
        post_started_at__isnull=True,
        posts_sent__lt=F("posts_authorized"),
    ).update(post_started_at=sent_at, posts_sent=F("posts_sent") + 1)
    if counted != 1:
        t.plog(gen.pk, "claim lost before sending; nothing sent", level=logging.WARNING)
        return SubmitOutcome(Submitted.NOT_CLAIMED)
    try:
        remote = providers.current().submit(submission)
    except RetryableError as exc:
        return _refused_for_now(gen, token, exc)
    except OutcomeUnknownError as exc:
        t.flag_for_a_person(
            gen.pk,
            only_if=mine,
            note="outcome unknown: " + exc.message,
            error=exc.message.rstrip(".") + UNKNOWN_OUTCOME_TAIL,
            error_code=exc.status_code,
            error_request_id=exc.request_id,
        )
        return SubmitOutcome(Submitted.NEEDS_ATTENTION)
    except PermanentError as exc:
        cause = hold.account_refusal(exc)
        if cause is not None:
            return _held(gen, token, exc, cause)
        t.fail(
            gen.pk,
            [Status.SUBMITTING],
            only_if=mine,
            note=f"refused ({exc.status_code})",
            error=exc.message,
            error_code=exc.status_code,
            error_request_id=exc.request_id,
            posts_sent=F("posts_sent") - 1,
            post_started_at=None,
        )
        return SubmitOutcome(Submitted.FAILED)
    outcome = _accepted(gen, token, remote)
    if hold.lift_after_success(sent_at):
        return SubmitOutcome(outcome.result, wake_waiting=True)
    return outcome


def submission_of(gen: Generation) -> providers.Submission | None:
    """The POST ``gen`` stands for; None when a video it starts from has no upstream id. The
    sources' upstream ids were copied when the row was made, so it is sent even if a source's
    owner deleted that video meanwhile."""
    start = end = ""
    if gen.kind in (Kind.EXTEND, Kind.INTERPOLATE):
        start = gen.parent_remote_id
        if not start:
            return None
    if gen.kind == Kind.REVERSE:
        end = gen.parent_remote_id
        if not end:
            return None
    if gen.kind == Kind.INTERPOLATE:
        end = gen.end_parent_remote_id
        if not end:
            return None
    return providers.Submission(
        request=GenerationRequest.from_row(gen),
        start_generation=start,
        end_generation=end,
        public_base_url=settings.PUBLIC_BASE_URL,
    )


def _held(gen: Generation, token: str, exc: UpstreamError, cause: HoldCause) -> SubmitOutcome:
    """Refused for the account's sake (no credits, key refused): nothing started and the job is
    not at fault, so it goes back to the queue, its POST and its attempt un-counted, and the
    account is put on hold. No wake-up: the hold's probe decides when anything is sent again."""
    hold.put_on_hold(cause, exc.message, exc.status_code)
    t.requeue(
        gen.pk,
        [Status.SUBMITTING],
        only_if=Q(claim=token),
        note=f"account on hold ({exc.status_code}): {cause.label}; waiting in the queue",
        error=exc.message,
        error_code=exc.status_code,
        error_request_id=exc.request_id,
        posts_sent=F("posts_sent") - 1,
        post_started_at=None,
        attempts=F("attempts") - 1,
    )
    return SubmitOutcome(Submitted.HELD)


def _refused_for_now(gen: Generation, token: str, exc: UpstreamError) -> SubmitOutcome:
    """The POST certainly started nothing: un-count it and queue again with backoff."""
    attempts = gen.attempts  # loaded after the claim incremented it
    common: dict[str, Any] = {
        "only_if": Q(claim=token),
        "error": exc.message,
        "error_code": exc.status_code,
        "error_request_id": exc.request_id,
        "posts_sent": F("posts_sent") - 1,
        "post_started_at": None,
    }
    if attempts >= settings.LUMA_SUBMIT_MAX_ATTEMPTS:
        t.fail(gen.pk, [Status.SUBMITTING], note=f"gave up after {attempts} attempts", **common)
        return SubmitOutcome(Submitted.FAILED)
    delay = t.backoff(attempts)
    if exc.retry_after is not None:
        delay = max(delay, min(exc.retry_after, t.MAX_BACKOFF))
    moved = t.requeue(
        gen.pk,
        [Status.SUBMITTING],
        note=f"refused for now ({exc.status_code or 'no answer'}); retry in {delay:.0f}s",
        retry_at=t.in_seconds(delay),
        **common,
    )
    return SubmitOutcome(Submitted.RETRY, retry_in=delay if moved else None)


def _accepted(gen: Generation, token: str, remote: RemoteGeneration) -> SubmitOutcome:
    now = timezone.now()
    fields = {
        "remote_id": remote.id,
        "state": remote.state,
        "prompt": remote.prompt,
        "estimate_wait_seconds": remote.estimate_wait_seconds,
        "remote_created_at": remote.created_at,
        "submitted_at": now,
        "last_progress_at": now,
        "next_poll_at": t.in_seconds(next_poll_delay(remote.estimate_wait_seconds), now),
    }
    if t.start(gen.pk, token=token, note=f"accepted as {remote.id}", **fields):
        return SubmitOutcome(Submitted.ACCEPTED)
    # The row moved on while the POST was out (a person retried it or marked it failed): the
    # generation is paid for all the same, so it gets a row of its own and is kept.
    with transaction.atomic():
        adopted = Generation.objects.create(
            created_by=gen.created_by,
            kind=gen.kind,
            **_lineage(gen),
            **GenerationRequest.from_row(gen).row_fields(),
            status=Status.IN_PROGRESS,
            posts_sent=1,
            posts_authorized=1,
            attempts=1,
            unit_cost=gen.unit_cost,  # the POST it counts was priced when its row was made
            **fields,
        )
        StatusEvent.objects.create(
            generation=adopted,
            status=Status.IN_PROGRESS,
            state=remote.state,
            note=f"late answer for {gen.pk}: accepted as {remote.id}",
        )
        # That POST is the new row's now: the money counts it there, not on this row as well.
        Generation.objects.filter(pk=gen.pk).update(posts_adopted=F("posts_adopted") + 1)
    t.plog(
        gen.pk, "late answer %s kept as generation %s", remote.id, adopted.pk, level=logging.WARNING
    )
    return SubmitOutcome(Submitted.ADOPTED)


def _lineage(gen: Generation) -> dict[str, Any]:
    """An extension's parent columns for its late answer's row, as they stand now: the parent
    may have been deleted by its owner while the POST was out. Called inside the transaction
    that creates the row; the ancestors still there are locked, so a delete of one waits and
    then treats the new row like any other extension."""
    if gen.kind != Kind.EXTEND:
        return {}
    names = ("parent_id", "parent_removed_at", "kept_ancestor_id")
    cols = Generation.objects.filter(pk=gen.pk).values(*names).first() or {
        name: getattr(gen, name) for name in names
    }
    wanted = [pk for pk in (cols["parent_id"], cols["kept_ancestor_id"]) if pk]
    there = set(
        Generation.objects.select_for_update().filter(pk__in=wanted).values_list("pk", flat=True)
    )
    if cols["parent_id"] and cols["parent_id"] not in there:
        cols.update(parent_id=None, parent_removed_at=cols["parent_removed_at"] or timezone.now())
    if cols["kept_ancestor_id"] not in there:
        cols["kept_ancestor_id"] = None
    return {**cols, "parent_remote_id": gen.parent_remote_id}
