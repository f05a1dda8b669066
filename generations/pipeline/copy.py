"""Copy: keep lumaweb's own copy of a finished video and its thumbnail (the upstream's URLs
may expire). Safe to run twice: the row is claimed by pushing ``assets_next_at`` forward by
``LUMA_ASSET_LEASE``; a failed copy is tried again later by the sweeper, with backoff, up to
``ASSET_MAX_ATTEMPTS``, or at once given up when it cannot succeed (a permanent refusal).
A link that answers 403, 404 or 410 has expired (CDN links do): the service is asked for the
generation again (a GET, free) and the copy tried again from the fresh link it hands out, within
the same ``ASSET_MAX_ATTEMPTS``. A copy given up on waits for a person ("Copy again").
A URL refused for where it leads (``fetch.RefusedURL``: a private address, an odd scheme) is
cleared from the row, so that no page hands it to a viewer's browser."""

from __future__ import annotations

import enum
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from generations import fetch, providers
from generations.client import PermanentError, UpstreamError
from generations.models import Generation, Status
from generations.pipeline import transitions as t
from generations.redact import redact

ASSET_MAX_ATTEMPTS = 8

# What a finished row keeps a copy of: the upstream's URL field, the file field, the name.
_ASSETS = (
    ("video", "video_url", "video_file", "videos/{}.mp4", fetch.video_kind),
    ("thumbnail", "thumbnail_url", "thumbnail_file", "thumbnails/{}.jpg", fetch.image_kind),
)


class CopyResult(enum.StrEnum):
    COPIED = "copied"
    RETRY = "retry"  # the sweeper wakes it again at assets_next_at
    FAILED = "failed"  # given up: the page shows the upstream's URL, unless it was refused
    NOT_CLAIMED = "not-claimed"


def copy_assets(gen_id: Any) -> CopyResult:
    now = timezone.now()
    claimed = Generation.objects.filter(
        pk=gen_id, status=Status.COMPLETED, assets_next_at__lte=now
    ).update(
        assets_next_at=now + timedelta(seconds=settings.LUMA_ASSET_LEASE),
        asset_attempts=F("asset_attempts") + 1,
    )
    if not claimed:
        return CopyResult.NOT_CLAIMED
    gen = Generation.objects.get(pk=gen_id)
    updates: dict[str, Any] = {}
    failure: fetch.FetchError | None = None
    error = ""  # what the row says about the failure
    if not gen.video_file and not gen.video_url:
        failure = fetch.FetchError("There is no video address to copy from", permanent=True)
        error = str(failure)
    for what, url_field, file_field, name, kind in _ASSETS:
        url = getattr(gen, url_field)
        if getattr(gen, file_field) or not url:
            continue
        try:
            stored, size = fetch.download_to_storage(url, name.format(gen.pk), kind())
        except fetch.RefusedURL as exc:
            # What lumaweb refused to fetch, no viewer's browser may be sent to either: the
            # page shows "could not be fetched" instead. The other file is still tried.
            # Nor the host name (an internal one, perhaps) to every viewer: the log has it.
            updates[url_field] = ""
            if failure is None:
                failure, error = exc, f"The {what} was not fetched: {exc.reason}."
            continue
        except fetch.FetchError as exc:
            if failure is None:
                failure, error = exc, str(exc)
            break
        updates[file_field] = stored
        if file_field == "video_file":
            updates["video_bytes"] = size
    renewable = failure is not None and failure.expired_link and bool(gen.remote_id)
    if renewable and gen.asset_attempts < ASSET_MAX_ATTEMPTS:
        return _from_fresh_links(gen, now, updates)
    if failure is not None:
        give_up = failure.permanent or gen.asset_attempts >= ASSET_MAX_ATTEMPTS
        next_at = None if give_up else now + timedelta(seconds=t.backoff(gen.asset_attempts, 5))
        # The download's answer (a content type, say) comes from the service's side: redacted.
        error = redact(error)
        t.schedule_copy_retry(gen.pk, next_at=next_at, error=error, **updates)
        t.plog(
            gen.pk,
            "copy failed (%s): %s",
            "giving up" if give_up else "will retry",
            redact(str(failure)),
            level=logging.WARNING,
        )
        return CopyResult.FAILED if give_up else CopyResult.RETRY
    t.copy_settled(gen.pk, **updates)
    t.plog(gen.pk, "local copy kept (%s bytes)", updates.get("video_bytes", gen.video_bytes))
    return CopyResult.COPIED


def _from_fresh_links(gen: Generation, now: datetime, updates: dict[str, Any]) -> CopyResult:
    """The video's link expired: ask the service for the generation again and keep the fresh
    links it hands out; the copy is tried again from them (the sweeper wakes it shortly). What
    this attempt did copy (``updates``) is kept."""
    assert gen.remote_id is not None  # (checked by the caller)
    try:
        answers = providers.current().poll([gen.remote_id])
    except PermanentError as exc:
        answers = []
        t.plog(gen.pk, "fresh link refused (%s): %s", exc.status_code, exc.message)
    except UpstreamError as exc:
        # The service did not answer now: ask again later, as after any failed copy.
        next_at = now + timedelta(seconds=t.backoff(gen.asset_attempts, 5))
        error = (
            "The video's link had expired, and the service could not be asked for a new one yet."
        )
        t.schedule_copy_retry(gen.pk, next_at=next_at, error=error, **updates)
        t.plog(gen.pk, "copy failed (will retry): link expired; %s", exc.message)
        return CopyResult.RETRY
    remote = next((answer for answer in answers if answer.id == gen.remote_id), None)
    if remote is None or remote.state != "completed" or not remote.video_url:
        error = "The video's link expired and the service no longer hands out a new one."
        t.schedule_copy_retry(gen.pk, next_at=None, error=error, **updates)
        t.plog(gen.pk, "copy failed (giving up): %s", error, level=logging.WARNING)
        return CopyResult.FAILED
    fresh = {"video_url": remote.video_url, "thumbnail_url": remote.thumbnail_url}
    # A link refused for where it leads stays cleared (``updates``), as does a copied file's.
    fresh = {name: url for name, url in fresh.items() if url and name not in updates}
    t.retry_copy_from_fresh_links(
        gen.pk,
        next_at=now + timedelta(seconds=t.backoff(gen.asset_attempts, 1)),
        error="The video's link had expired: copying again from a new one.",
        **fresh,
        **updates,
    )
    t.plog(gen.pk, "copy failed (will retry): link expired, a new one from the service")
    return CopyResult.RETRY
