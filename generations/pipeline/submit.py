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
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db.models import F, Max, Q
from django.utils import timezone

from generations import providers
from generations.client import (
    OutcomeUnknownError,
    PermanentError,
    RemoteGeneration,
    RetryableError,
    UpstreamError,
)
from generations.models import Generation, HoldCause, Limits, Status, SubmitGrant
from generations.pipeline import hold, journal, lookup, pace
from generations.pipeline import transitions as t

UNKNOWN_OUTCOME_TAIL = ". It was not sent again automatically, to avoid paying twice."
LOOKING_AGAIN_TAIL = (
    ". The service's list could not tell yet whether it started; it is looked at once more"
    " shortly, then left to a person. It was not sent again, to avoid paying twice."
)


class Submitted(enum.StrEnum):
    ACCEPTED = "accepted"
    ADOPTED = "adopted"  # a late answer kept as a row of its own
    RETRY = "retry"  # refused for now, queued again
    FAILED = "failed"
    NEEDS_ATTENTION = "needs-attention"
    HELD = "held"  # the account is on hold: queued, waiting (refused for the account, or not sent)
    NOT_CLAIMED = "not-claimed"  # someone else has it, or it is not due
    WAITING = "waiting"  # no free slot for it yet: stays queued, the sweeper wakes it in turn
    JOURNALLED = "journalled"  # accepted while the database was away: in the journal (replayed)


@dataclass(frozen=True)
class SubmitOutcome:
    """What a submit did, when the row wants its next wake-up (``retry_in`` seconds), and
    whether an account hold was lifted by it (``wake_waiting``: the jobs that waited want a
    sweep now rather than at the next beat), and when the next free slot opens while the
    account is paced (``fill_in`` seconds: the jobs whose turn it is then want waking)."""

    result: Submitted
    retry_in: float | None = None
    wake_waiting: bool = False
    fill_in: float | None = None


def submit(gen_id: Any) -> SubmitOutcome:
    """Claim a queued row and POST it once."""
    token = secrets.token_hex(8)
    now = timezone.now()
    limits = pace.limits()
    claim = t.claim_for_submit(gen_id, token, now, allowed=hold.sending_allowed(), limits=limits)
    if claim is t.Claim.NO_SLOT:
        if hold.current() is not None:  # the hold, not the pace, is what it waits for
            return SubmitOutcome(Submitted.HELD)
        return SubmitOutcome(Submitted.WAITING, fill_in=_next_opening(now, limits))
    if claim is not t.Claim.CLAIMED:
        held = hold.current() is not None
        return SubmitOutcome(Submitted.HELD if held else Submitted.NOT_CLAIMED)
    probe = hold.probe_taken(gen_id)
    gen = Generation.objects.get(pk=gen_id)
    mine = Q(claim=token)
    submission = lookup.submission_of(gen)
    if submission is None:
        t.fail(
            gen.pk,
            [Status.SUBMITTING],
            only_if=mine,
            note="source has no upstream id",
            error="The video this starts from has no upstream id.",
        )
        return SubmitOutcome(Submitted.FAILED)
    provider = providers.current()
    short = hold.credits_short(provider, submission.request, fresh=probe)
    if short is not None:
        return _short_of_credits(gen, token, short)
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
        remote = provider.submit(submission)
    except UpstreamError as exc:
        # what the service said is recorded even across a short database outage
        return journal.retrying(
            partial(_not_accepted, provider, gen, token, submission, sent_at, exc)
        )
    return _accepted(gen, token, remote, sent_at)


def _not_accepted(
    provider: providers.Provider,
    gen: Generation,
    token: str,
    submission: providers.Submission,
    sent_at: datetime,
    exc: UpstreamError,
) -> SubmitOutcome:
    """The POST was refused, or its outcome is unknown: the row moves accordingly."""
    if isinstance(exc, RetryableError):
        if pace.paces(exc):
            return _paced(gen, token, exc)
        return _refused_for_now(gen, token, exc)
    if isinstance(exc, OutcomeUnknownError):
        return _outcome_unknown(provider, gen, token, submission, sent_at, exc)
    if not isinstance(exc, PermanentError):
        raise exc
    cause = hold.account_refusal(exc)
    if cause is not None:
        return _held(gen, token, exc, cause)
    t.fail(
        gen.pk,
        [Status.SUBMITTING],
        only_if=Q(claim=token),
        note=f"refused ({exc.status_code})",
        error=exc.message,
        error_code=exc.status_code,
        error_request_id=exc.request_id,
        posts_sent=F("posts_sent") - 1,
        post_started_at=None,
    )
    return SubmitOutcome(Submitted.FAILED)


def _accepted(
    gen: Generation, token: str, remote: RemoteGeneration, sent_at: datetime, note: str = ""
) -> SubmitOutcome:
    started = lookup.keep_answer(gen, token, remote, note=note)
    if started is None:  # the database is away: the sweeper records it from the journal
        return SubmitOutcome(Submitted.JOURNALLED)
    result = Submitted.ACCEPTED if started else Submitted.ADOPTED
    pace.accepted()
    spacing = pace.limits().spacing or None  # paced: the next in line goes one spacing later
    if hold.lift_after_success(sent_at):
        return SubmitOutcome(result, wake_waiting=True, fill_in=spacing)
    return SubmitOutcome(result, fill_in=spacing)


def _next_opening(now: datetime, limits: Limits) -> float | None:
    """Refused a slot while paced: in how many seconds the next one opens (the pause's end,
    or one spacing after the last grant); None when a finished job frees it (the poller wakes
    the next in line) or the pace is not what holds it back."""
    if limits.closed:
        return pace.paused_for() or None
    if not limits.spacing:
        return None
    last = SubmitGrant.objects.aggregate(last=Max("at"))["last"]
    if last is None:
        return None
    wait = (last + timedelta(seconds=limits.spacing) - now).total_seconds()
    return wait if wait > 0 else None


def _paced(gen: Generation, token: str, exc: UpstreamError) -> SubmitOutcome:
    """Refused for the account's pace (429, 503, no connection): nothing started and the job is
    not at fault. Its POST and its attempt are un-counted (never a step toward giving up), every
    submit of the account is paused (``pace.refused``), and the job waits in the queue, saying
    why, until the pause ends."""
    since = timezone.now() - timedelta(seconds=settings.LUMA_SUBMIT_RATE_WINDOW)
    # what went out in the last rate window: the grants (with a cap on), else the accepted
    sent_lately = max(
        SubmitGrant.objects.filter(at__gt=since).count(),
        Generation.objects.filter(submitted_at__gt=since).count(),
    )
    in_flight = Generation.objects.holding_a_slot(timezone.now()).exclude(pk=gen.pk).count()
    pause = pace.refused(exc, sent_lately, in_flight)
    moved = t.requeue(
        gen.pk,
        [Status.SUBMITTING],
        only_if=Q(claim=token),
        note=f"waiting: {pace.reason(exc)} ({exc.status_code or 'no connection'}); "
        f"every submit paused {pause:.0f}s",
        retry_at=t.in_seconds(pause),
        **_not_an_attempt(exc),
    )
    return SubmitOutcome(Submitted.RETRY, retry_in=pause if moved else None)


def _outcome_unknown(
    provider: providers.Provider,
    gen: Generation,
    token: str,
    submission: providers.Submission,
    sent_at: datetime,
    exc: UpstreamError,
) -> SubmitOutcome:
    """The POST may or may not have started a paid job. Where the provider has a list, look
    (``lookup``): found, the row goes on with it; nothing made, it is sent again; otherwise, or
    without a list, it waits for a person (and, with a list, for the sweeper's second look)."""
    looked_at = None
    if provider.capabilities.list_lookup:
        looked_at = lookup.look(provider, submission, sent_at)
        if looked_at.found is not None:
            return _accepted(gen, token, looked_at.found, sent_at, note=lookup.FOUND_NOTE)
        if looked_at.decided:
            if lookup.send_again(gen.pk, Status.SUBMITTING, token, gen.attempts):
                return SubmitOutcome(Submitted.RETRY, retry_in=0)
            return SubmitOutcome(Submitted.FAILED)
    common: dict[str, Any] = {
        "only_if": Q(claim=token),
        "error_code": exc.status_code,
        "error_request_id": exc.request_id,
    }
    if looked_at is not None:  # the list could not tell yet: the sweeper looks once more
        t.flag_for_a_person(
            gen.pk,
            note=f"{lookup.LOOKING_AGAIN_NOTE}: {exc.message}",
            error=exc.message.rstrip(".") + LOOKING_AGAIN_TAIL,
            next_attempt_at=t.in_seconds(settings.LUMA_LIST_LOOKUP_AGAIN_AFTER),
            **common,
        )
    else:
        t.flag_for_a_person(
            gen.pk,
            note="outcome unknown: " + exc.message,
            error=exc.message.rstrip(".") + UNKNOWN_OUTCOME_TAIL,
            **common,
        )
    return SubmitOutcome(Submitted.NEEDS_ATTENTION)


def _short_of_credits(gen: Generation, token: str, reason: str) -> SubmitOutcome:
    """The account's balance is below this job's cost: hold the account without sending (the
    refusal is certain), and queue the job again, its attempt un-counted (nothing was sent)."""
    hold.put_on_hold(HoldCause.CREDITS, reason, None)
    t.requeue(
        gen.pk,
        [Status.SUBMITTING],
        only_if=Q(claim=token),
        note=f"account on hold: {reason} Not sent; waiting in the queue",
        error=reason,
        attempts=F("attempts") - 1,
    )
    return SubmitOutcome(Submitted.HELD)


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
        **_not_an_attempt(exc),
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


def _not_an_attempt(exc: UpstreamError) -> dict[str, Any]:
    """The columns of a refusal that started nothing (paced, or the account held): the error
    as the service gave it, and the POST and the attempt counted back."""
    return {
        "error": exc.message,
        "error_code": exc.status_code,
        "error_request_id": exc.request_id,
        "posts_sent": F("posts_sent") - 1,
        "post_started_at": None,
        "attempts": F("attempts") - 1,
    }
