"""lumaweb's JSON shape of a generation: the upstream's object plus lumaweb's fields.

One definition for the JSON API (``api.serializers``, with the caller's own like and the card
counts) and the outbound webhooks (``webhooks``, which have no caller). It sits below the
pipeline so that a webhook's body can be written in the transaction of the status move.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from generations.inputs import GenerationRequest
from generations.models import Generation

Absolute = Callable[[str], str | None]


def _request_fields(gen: Generation, absolute: Absolute) -> dict[str, Any]:
    """What was asked, field by field (``GenerationRequest``); an uploaded keyframe is shown
    as the URL field it stands in for."""
    out: dict[str, Any] = {}
    uploads = GenerationRequest.uploads()
    for name in GenerationRequest.field_names():
        if name not in uploads:
            value = getattr(gen, name)
            out[name] = None if value == "" else value
    for upload, url_field in uploads.items():
        stored = getattr(gen, upload)
        if not out.get(url_field) and stored:
            out[url_field] = absolute(stored.url)
    return out


def generation_shape(
    gen: Generation, absolute: Absolute, *, liked: bool, like_count: int, extension_count: int
) -> dict[str, Any]:
    """The API's object for ``gen``; ``absolute`` makes a site path a full URL."""
    return {
        "id": str(gen.pk),
        "remote_id": gen.remote_id,
        "status": gen.status,
        "state": gen.state or None,
        **_request_fields(gen, absolute),
        "prompt": gen.prompt or None,
        "parent_id": str(gen.parent_id) if gen.parent_id else None,
        # An extension whose parent its owner deleted: parent_id is null, and this says why.
        "parent_removed": gen.parent_removed_at is not None,
        "created_by": gen.created_by.get_username() if gen.created_by else None,
        "created_at": gen.created_at.isoformat(),
        "completed_at": gen.completed_at.isoformat() if gen.completed_at else None,
        "estimate_wait_seconds": gen.estimate_wait_seconds,
        "error": gen.error or None,
        "error_request_id": gen.error_request_id or None,
        "liked": liked,
        "like_count": like_count,
        "extension_count": extension_count,
        "video": {
            "url": absolute(gen.display_video_url),
            "thumbnail": absolute(gen.display_thumbnail_url),
            "width": gen.width,
            "height": gen.height,
            "local": bool(gen.video_file),
            # The service's own link (its CDN's, which expires), beside lumaweb's copy: for a
            # reader who wants it; ``url`` is lumaweb's copy once there is one.
            "upstream_url": gen.video_url or None,
        },
    }
