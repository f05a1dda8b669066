"""Copy: keep lumaweb's own copy of a finished video and its thumbnail (the upstream's URLs
may expire). Safe to run twice: the row is claimed by pushing ``assets_next_at`` forward by
``LUMA_ASSET_LEASE``; a failed copy is tried again later by the sweeper, with backoff, up to
``ASSET_MAX_ATTEMPTS``, or at once given up when it cannot succeed (a permanent refusal)."""

from __future__ import annotations

import enum
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from generations import fetch
from generations.models import Generation, Status
from generations.pipeline import transitions as t
from generations.redact import redact

ASSET_MAX_ATTEMPTS = 8


class CopyResult(enum.StrEnum):
    COPIED = "copied"
    RETRY = "retry"  # the sweeper wakes it again at assets_next_at
    FAILED = "failed"  # given up: the page keeps showing the upstream's URL
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
        next_at = None if give_up else now + timedelta(seconds=t.backoff(gen.asset_attempts, 5))
        # The download's answer (a content type, say) comes from the service's side: redacted.
        error = redact(str(exc))
        t.schedule_copy_retry(gen.pk, next_at=next_at, error=error, **updates)
        t.plog(
            gen.pk,
            "copy failed (%s): %s",
            "giving up" if give_up else "will retry",
            error,
            level=logging.WARNING,
        )
        return CopyResult.FAILED if give_up else CopyResult.RETRY
    Generation.objects.filter(pk=gen.pk).update(assets_next_at=None, asset_error="", **updates)
    t.plog(gen.pk, "local copy kept (%s bytes)", updates.get("video_bytes", gen.video_bytes))
    return CopyResult.COPIED
