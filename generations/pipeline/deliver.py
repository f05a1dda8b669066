"""Deliver: send one webhook delivery, once per claim; record how it went.

The claim is one conditional UPDATE (pending, due, its webhook not paused) that counts the
attempt, leases the row for ``webhooks.LEASE`` (``next_attempt_at``) and clears its wake-up
stamp (``enqueued_at``: the message is taken): two workers, a redelivered message and the
sweeper's wake-up cannot send it twice at once, and a worker that dies mid-POST leaves a row
that falls due again when the lease runs out, which the sweeper then wakes once (at least once:
a receiver dedupes on ``X-Lumaweb-Delivery``). A paused webhook's deliveries are not due: they
wait, no attempt counted, and go when it is resumed. A 2xx is
delivered; anything else is tried again after ``webhooks.retry_delay``, up to
``WEBHOOK_MAX_ATTEMPTS``, then failed. An address refused for where it leads is failed at once.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from generations import fetch, redact, webhooks
from generations.models import DeliveryStatus, WebhookDelivery

log = logging.getLogger("generations.webhooks")

# A retry sooner than this is woken by a message with a countdown; a later one by the sweeper
# (long countdowns are what Redis redelivers).
COUNTDOWN_LIMIT = 300.0


class Delivered(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    NOT_DUE = "not-due"  # someone else has it, it is delivered, or its time has not come


@dataclass(frozen=True)
class DeliverOutcome:
    result: Delivered
    retry_in: float | None = None  # seconds, when a message should wake the next try


def claim(delivery_id: int, now: datetime) -> bool:
    """Take the delivery to send it: one conditional UPDATE, true for one claimer only (its
    conditions are all on the row itself: see ``WebhookDeliveryQuerySet.due``)."""
    return bool(
        WebhookDelivery.objects.due(now)
        .filter(pk=delivery_id)
        .update(attempts=F("attempts") + 1, next_attempt_at=now + webhooks.LEASE, enqueued_at=None)
    )


def deliver(delivery_id: int) -> DeliverOutcome:
    now = timezone.now()
    if not claim(delivery_id, now):
        return DeliverOutcome(Delivered.NOT_DUE)
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    hook = delivery.webhook
    mine = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, attempts=delivery.attempts
    )
    if not hook.active:  # paused between the claim and now: hand it back, the attempt uncounted
        mine.update(attempts=F("attempts") - 1, next_attempt_at=now)
        return DeliverOutcome(Delivered.NOT_DUE)
    redact.remember(hook.secret)  # the log filter hides it too, should anything ever print it
    code: int | None = None
    try:
        code = fetch.post(
            hook.url,
            delivery.payload.encode(),
            webhooks.headers(delivery, hook.secret),
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE,
            timeout=webhooks.TIMEOUT,
        )
    except fetch.RefusedURL as exc:
        error = webhooks.safe_error(f"refused: {exc.reason}", hook.secret)
        mine.update(
            status=DeliveryStatus.FAILED,
            next_attempt_at=None,
            last_error=error,
            last_status_code=None,
        )
        log.warning("webhook=%s delivery=%s %s", hook.pk, delivery.delivery_id, error)
        return DeliverOutcome(Delivered.FAILED)
    except fetch.FetchError as exc:
        error = webhooks.safe_error(str(exc), hook.secret)
    else:
        if 200 <= code < 300:
            mine.update(
                status=DeliveryStatus.DELIVERED,
                next_attempt_at=None,
                last_status_code=code,
                last_error="",
                delivered_at=timezone.now(),
            )
            log.info("webhook=%s delivery=%s delivered (%s)", hook.pk, delivery.delivery_id, code)
            return DeliverOutcome(Delivered.DELIVERED)
        error = f"answered {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
    if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        mine.update(
            status=DeliveryStatus.FAILED,
            next_attempt_at=None,
            last_status_code=code,
            last_error=error,
        )
        log.warning(
            "webhook=%s delivery=%s gave up after %s attempts: %s",
            hook.pk,
            delivery.delivery_id,
            delivery.attempts,
            error,
        )
        return DeliverOutcome(Delivered.FAILED)
    delay = webhooks.retry_delay(delivery.attempts)
    retry_at = timezone.now() + timedelta(seconds=delay)
    mine.update(
        next_attempt_at=retry_at,
        # A countdown message will wake it then; a later retry is the sweeper's to wake.
        enqueued_at=retry_at if delay <= COUNTDOWN_LIMIT else None,
        last_status_code=code,
        last_error=error,
    )
    log.info(
        "webhook=%s delivery=%s %s; trying again in %.0f s",
        hook.pk,
        delivery.delivery_id,
        error,
        delay,
    )
    return DeliverOutcome(Delivered.RETRY, delay if delay <= COUNTDOWN_LIMIT else None)
