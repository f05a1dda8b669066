"""The account hold: when the service refuses a POST for the *account's* sake, wait, don't fail.

An answer of "out of credits" (402, or 403 saying so) or "bad key" (401) says nothing about the
job that was sent: the next job would be refused the same way, and so would every job after it.
Failing them one after another would leave a person to retry each by hand. Instead the account
is put on hold: the refused job goes back to the queue (its POST un-counted: nothing started),
no worker sends anything while the hold lasts, and every ``LUMA_HOLD_RETRY`` seconds the sweeper
chooses ONE queued job as a probe. The first POST that goes through (started after the latest
refusal) lifts the hold, and the sweeper then wakes every job that waited.

Where the provider tells the account's balance (Luma), the hold need not wait for a refusal:
``credits_short`` compares the balance with the job's cost before anything is sent, and
``submit`` holds the account ("out of credits") when it is short.

The hold is one row (``AccountHold``, there only while held), changed only here, through the
named functions below. Whether a refusal is about the account is decided in one place:
``account_refusal``.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from generations import audit, providers, redact
from generations.client import UpstreamError
from generations.inputs import GenerationRequest
from generations.models import AccountHold, AuditAction, Generation, HoldCause, Status
from generations.pipeline import transitions as t

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

log = logging.getLogger("generations.pipeline")

# A 403 is "out of credits" only when it says so: other 403s (a refused prompt, a forbidden
# model) are about the job, and fail it as before.
CREDITS_WORDS = re.compile(
    r"credit|balance|quota|insufficient|funds|billing|payment|top.?up|out of tokens", re.I
)
NO_CREDITS_400 = re.compile(
    r"insufficient (credit|balance|funds)|not enough credit|out of credit|credit balance", re.I
)
HELD = AccountHold.objects
# The account's credit balance (``credits_short``) is read from the provider at most this often.
CREDITS_CACHE_KEY = "lumaweb:provider-credit-balance"
CREDITS_CACHE_SECONDS = 60


def account_refusal(exc: UpstreamError) -> HoldCause | None:
    """The one decision: is this refusal of a POST about the account rather than the job?

    401 (the key was refused) and 402 (payment required) always are; a 403 is when its message
    speaks of credits, balance or quota, a 400 when it says the credits are short (Luma).
    Anything else is the job's own business."""
    if exc.status_code == 401:
        return HoldCause.KEY
    if exc.status_code == 402:
        return HoldCause.CREDITS
    if exc.status_code == 403 and CREDITS_WORDS.search(exc.message or ""):
        return HoldCause.CREDITS
    # Luma's official API answers a create it cannot charge with a 400 ("Insufficient
    # credits"): only words that cannot be about the request itself count there.
    if exc.status_code == 400 and NO_CREDITS_400.search(exc.message or ""):
        return HoldCause.CREDITS
    return None


def current() -> AccountHold | None:
    """The hold, or None when the account is not on hold (one query)."""
    return HELD.filter(pk=AccountHold.SINGLETON).first()


def sending_allowed() -> Q:
    """For the submit claim's conditional UPDATE: no hold, or this row is the chosen probe.
    Checked in the same statement as the claim, so a worker that woke before the hold began
    still sends nothing once it is there (and burns no attempt)."""
    held = HELD.filter(pk=AccountHold.SINGLETON)
    return Q(~Exists(held)) | Q(Exists(held.filter(probe_id=OuterRef("pk"))))


def put_on_hold(cause: HoldCause, message: str, status_code: int | None) -> bool:
    """Hold the account (or record one more refusal on a hold already there); the probe, if
    this was it, is spent. Returns whether the hold began with this call."""
    now = timezone.now()
    reason = redact.redact(message)[:500]
    with transaction.atomic():
        began = not HELD.filter(pk=AccountHold.SINGLETON).exists()
        if began:
            HELD.bulk_create(
                [
                    AccountHold(
                        pk=AccountHold.SINGLETON,
                        cause=cause,
                        reason=reason,
                        status_code=status_code,
                        since=now,
                        last_refusal_at=now,
                        retry_at=t.in_seconds(settings.LUMA_HOLD_RETRY, now),
                    )
                ],
                ignore_conflicts=True,  # two workers refused at once: one row, both refusals
            )
            # Two workers refused at once both found no row; the row's ``since`` says whose
            # INSERT made it (one hold, one audit entry).
            began = HELD.filter(pk=AccountHold.SINGLETON, since=now).exists()
        HELD.filter(pk=AccountHold.SINGLETON).update(
            cause=cause, reason=reason, status_code=status_code, last_refusal_at=now, probe=None
        )
        if began:
            audit.record(
                audit.SYSTEM,
                AuditAction.HOLD_BEGAN,
                f"Account on hold: {HoldCause(cause).label} ({status_code or '-'})",
                details={"cause": str(cause), "status_code": status_code, "reason": reason},
            )
    if began:
        log.warning(
            "account on hold (%s, %s): %s; jobs stay queued, one is tried every %ss",
            cause,
            status_code,
            reason,
            settings.LUMA_HOLD_RETRY,
        )
    return began


def probe_taken(gen_id: Any) -> bool:
    """A worker claimed the probe: it may send once, not again in this interval (a 429 to it
    queues it with a backoff, and its wake-up must not make a second POST). Returns whether
    this row was the probe."""
    return bool(HELD.filter(pk=AccountHold.SINGLETON, probe_id=gen_id).update(probe=None))


def credits_short(
    provider: providers.Provider, request: GenerationRequest, *, fresh: bool = False
) -> str | None:
    """Why this request must not be sent: the account's balance, where the provider tells it
    (``capabilities.credits``), is below the request's cost; None when it may be sent (enough
    credits, no balance to read, or the balance could not be read: the service decides).

    The balance is read at most once a ``CREDITS_CACHE_SECONDS`` (Django's cache, shared by
    every worker); ``fresh`` (the hold's probe) reads it now, so that a top-up lifts the hold
    at the next probe rather than a cache lifetime later."""
    if not provider.capabilities.credits:
        return None
    balance = None if fresh else _cached_balance()
    if balance is None:
        try:
            balance = provider.credit_balance()
        except UpstreamError as exc:
            log.warning("credit balance not read (%s): %s", exc.status_code, exc.message)
            return None
        if balance is None:
            return None
        _cache_balance(balance)
    cost = provider.unit_cost(request)
    if balance >= cost:
        return None
    unit = provider.capabilities.cost_unit
    return f"Out of credits: the balance is {balance:g} {unit}, a job costs {cost:g} {unit}."


def forget_balance() -> None:
    """Read the balance afresh next time (tests; a top-up seen by a person)."""
    try:
        cache.delete(CREDITS_CACHE_KEY)
    except Exception:
        log.warning("cache unavailable: the credit balance is read afresh", exc_info=True)


def _cached_balance() -> float | None:
    try:
        value = cache.get(CREDITS_CACHE_KEY)
    except Exception:  # the cache is a shortcut: without it, ask the provider
        return None
    return float(value) if isinstance(value, int | float) else None


def _cache_balance(balance: float) -> None:
    try:
        cache.set(CREDITS_CACHE_KEY, balance, CREDITS_CACHE_SECONDS)
    except Exception:
        log.warning("cache unavailable: the credit balance is not kept", exc_info=True)


def lift_after_success(post_started_at: datetime) -> bool:
    """A POST was accepted: the account is fine, so lift the hold, but only if that POST
    started after the latest refusal (one sent just before the credits ran out proves nothing).
    Returns whether a hold was lifted (then the waiting jobs need waking)."""
    return _lift(
        Q(last_refusal_at__lt=post_started_at),
        f"a job was accepted at {post_started_at}",
        audit.SYSTEM,
        "by a job the service accepted",
    )


def lift(note: str, actor: AbstractBaseUser | AnonymousUser | str | None = audit.SYSTEM) -> bool:
    """Lift the hold now (an admin's "resume": ``actor`` is who; None is the operator).
    Returns whether there was one."""
    return _lift(Q(), note, actor, f"by {audit.actor_name(actor)}")


def _lift(
    only_if: Q, note: str, actor: AbstractBaseUser | AnonymousUser | str | None, how: str
) -> bool:
    with transaction.atomic():
        held = HELD.filter(only_if, pk=AccountHold.SINGLETON).first()
        deleted, _ = HELD.filter(only_if, pk=AccountHold.SINGLETON).delete()
        if not deleted:
            return False
        # A wake-up is owed to every waiting job: the sweeper sends one to each queued row whose
        # stamp is empty (``waiting_for_a_worker``), at its next run or at once when asked.
        woken = Generation.objects.filter(status=Status.QUEUED).update(enqueued_at=None)
        audit.record(
            actor,
            AuditAction.HOLD_LIFTED,
            f"Account hold lifted {how}; {woken} queued job{'s' if woken != 1 else ''} go on",
            details={
                "note": note,
                "since": held.since.isoformat() if held is not None else None,
                "waiting": woken,
            },
        )
    log.warning("account hold lifted (%s); %s queued jobs go on", note, woken)
    return True


@dataclass(frozen=True)
class Probe:
    gen_id: uuid.UUID
    number: int


def due_probe(now: datetime) -> Probe | None:
    """If the hold's interval has passed, choose the oldest waiting job as this interval's one
    probe and push ``retry_at`` on: one POST per ``LUMA_HOLD_RETRY`` whatever the number of
    sweepers (the choice is a conditional UPDATE on the ``retry_at`` read). The caller wakes
    it. With no job waiting nothing is chosen, and the next job queued is probed at once."""
    hold = HELD.filter(pk=AccountHold.SINGLETON, retry_at__lte=now).first()
    if hold is None:
        return None
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    candidate = (
        Generation.objects.waiting_out_a_hold()
        .filter(due)
        .order_by("created_at")
        .values_list("pk", flat=True)
        .first()
    )
    if candidate is None:
        return None
    with transaction.atomic():
        chosen = HELD.filter(pk=AccountHold.SINGLETON, retry_at=hold.retry_at).update(
            probe=candidate,
            retry_at=t.in_seconds(settings.LUMA_HOLD_RETRY, now),
            probes=hold.probes + 1,
        )
        if not chosen:
            return None  # another sweeper chose this interval's probe
        Generation.objects.filter(pk=candidate).update(enqueued_at=now)
    t.plog(candidate, "chosen as probe %s of the account hold", hold.probes + 1)
    return Probe(candidate, hold.probes + 1)
