"""Outbound webhooks: which events, the body, its signature, and the delivery rows.

``record`` is called by ``pipeline.transitions.move`` inside the transaction of the status move
itself, so a generation that reached completed, failed or needs attention has its deliveries
written with the move or not at all (the database is the source of truth: a crash after the
commit loses nothing, the sweeper sends what is due). The body is written once, then: every
retry sends the same bytes with the same ``X-Lumaweb-Delivery`` id.

After the commit the rows' ids go to a *waker*: ``generations.tasks`` registers the one that
sends a Celery message per delivery (only ``tasks`` sends messages, and this layer may not
import it). Without one (a shell, a command) the sweeper wakes them a little later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from generations import fetch
from generations.models import Generation, Webhook, WebhookDelivery, WebhookEvent
from generations.redact import redact
from generations.shapes import generation_shape

log = logging.getLogger("generations.webhooks")

EVENTS = tuple(WebhookEvent.values)  # completed, failed, needs_attention
TIMEOUT = (5.0, 10.0)  # connect, read: a receiver should answer at once and work later
LEASE = timedelta(seconds=60)  # a sender holds a delivery this long; longer than TIMEOUT's sum
MAX_RETRY_DELAY = 2 * 60 * 60.0
MIN_SECRET_LENGTH = 16


class BadTarget(ValueError):
    """A webhook's address or settings cannot be used; the message says why, for a person."""


def event_name(status: str) -> str:
    return f"generation.{status}"


def parse_events(value: str | list[str] | None) -> list[str]:
    """``"completed,failed"`` (or a list) as a list of known events; empty means all of them."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    chosen = [item.strip().lower().removeprefix("generation.") for item in items if item.strip()]
    unknown = [item for item in chosen if item not in EVENTS]
    if unknown:
        raise BadTarget(
            f"Unknown event {unknown[0]!r}: choose among {', '.join(EVENTS)}.",
        )
    return [event for event in EVENTS if event in chosen] or list(EVENTS)


def check_target(url: str) -> None:
    """Refuse an address lumaweb must not post to: not http(s), with credentials in it, or
    (unless ``WEBHOOK_ALLOW_PRIVATE``) one whose name leads to a private or loopback address.
    Checked when a webhook is added and again on every connection."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1": a bracket left open
        raise BadTarget("The address is not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BadTarget("The address must start with http:// or https:// and name a host.")
    try:
        fetch.check_url(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
    except fetch.RefusedURL as exc:
        raise BadTarget(
            f"Refused: {exc.reason}. Private and loopback addresses need "
            "WEBHOOK_ALLOW_PRIVATE=True."
            if "public" in exc.reason
            else f"Refused: {exc.reason}."
        ) from None
    except fetch.FetchError as exc:
        raise BadTarget(f"{exc}.") from None


def check_secret(secret: str) -> str:
    secret = secret.strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise BadTarget(f"The secret must be at least {MIN_SECRET_LENGTH} characters long.")
    if len(secret) > 200:
        raise BadTarget("The secret must be at most 200 characters long.")
    return secret


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


def sign(secret: str, body: bytes) -> str:
    """``X-Lumaweb-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(delivery: WebhookDelivery, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "lumaweb-webhooks",
        "X-Lumaweb-Event": delivery.event,
        "X-Lumaweb-Delivery": str(delivery.delivery_id),
        "X-Lumaweb-Signature": sign(secret, delivery.payload.encode()),
    }


def _absolute(url: str) -> str | None:
    """A site path as a full URL when ``PUBLIC_BASE_URL`` says where the site is."""
    if not url:
        return None
    if url.startswith("/") and settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + url
    return url


def body_for(gen: Generation, status: str) -> str:
    """The JSON a delivery sends: the event and the generation in the API's shape (there is no
    caller, so ``liked`` is false)."""
    shape = generation_shape(
        gen,
        _absolute,
        liked=False,
        like_count=gen.liked_by.count(),
        extension_count=Generation.objects.filter(parent_id=gen.pk).count(),
    )
    return json.dumps({"event": event_name(status), "generation": shape}, separators=(",", ":"))


# --- recorded with the status move, woken after the commit ---------------------------------------
Waker = Callable[[list[int]], None]
_waker: Waker | None = None


def set_waker(waker: Waker | None) -> None:
    """Who sends the deliveries recorded in a transaction, once it commits (``tasks``)."""
    global _waker
    _waker = waker


def record(gen_id: Any, status: str, now: datetime) -> list[int]:
    """One pending delivery per active webhook that wants this status; call inside the status
    move's transaction. Returns the rows' ids (woken after the commit)."""
    if status not in EVENTS:
        return []
    hooks = [hook for hook in Webhook.objects.filter(active=True) if hook.wants(status)]
    if not hooks:
        return []
    gen = Generation.objects.select_related("created_by").get(pk=gen_id)
    body = body_for(gen, status)
    ids = [
        WebhookDelivery.objects.create(
            webhook=hook,
            event=event_name(status),
            generation_id=gen.pk,
            payload=body,
            next_attempt_at=now,
            enqueued_at=now,  # the waker sends its message after the commit
            created_at=now,
        ).pk
        for hook in hooks
    ]
    transaction.on_commit(lambda: _wake(ids), robust=True)
    return ids


def _wake(ids: list[int]) -> None:
    if _waker is not None:
        _waker(ids)


# --- retries -------------------------------------------------------------------------------------
def retry_delay(attempts: int, *, jitter: bool = True) -> float:
    """Seconds before the next try after ``attempts`` failed ones: WEBHOOK_RETRY_BASE times four
    for each (15 s, 1 min, 4 min, 16 min, 64 min, then every 2 h), with jitter; with the default
    eight attempts a receiver has about five hours to come back."""
    delay = min(MAX_RETRY_DELAY, settings.WEBHOOK_RETRY_BASE * 4 ** max(0, attempts - 1))
    return delay * random.uniform(0.8, 1.2) if jitter else delay  # spreads retries; not a secret


def safe_error(text: str, secret: str) -> str:
    """What went wrong, fit to store and show: credentials redacted, the secret never there."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return redact(text)[:300]
