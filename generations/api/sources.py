"""A create's ``start_generation_id`` / ``end_generation_id`` (issue 11 #2): which finished
videos a new one is made from, and so what it is. Start only: an extension; end only: what came
before the end video (a reverse extension); both: an interpolation from start to end. A kind the
provider cannot make answers 400 naming the field and the provider, before anything is read."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import JsonResponse

from generations import actions, providers
from generations.api.errors import json_error
from generations.models import Generation, Kind

START, END = "start_generation_id", "end_generation_id"


def _bad(field: str, reason: str) -> JsonResponse:
    return json_error(400, "Some fields are not valid.", {field: [f"{field}: {reason}"]})


def _video(field: str, value: Any) -> Generation | JsonResponse:
    try:
        pk = uuid.UUID(str(value))
    except ValueError:
        return _bad(field, "must be a generation id (a UUID).")
    gen = Generation.objects.filter(pk=pk).first()
    if gen is None:
        return _bad(field, "there is no such generation.")
    return gen


def sources_of(data: dict[str, Any]) -> actions.Sources | JsonResponse | None:
    """The sources a create body names (None when it names none), or the 400 that says what is
    wrong. ``data`` loses the two fields."""
    start_id, end_id = data.pop(START, None), data.pop(END, None)
    if start_id is None and end_id is None:
        return None
    provider = providers.current()
    caps = provider.capabilities
    if start_id is not None and end_id is not None and not caps.interpolate:
        return _bad(END, f"{provider.label} cannot interpolate between two videos.")
    if start_id is None and not caps.reverse_extend:
        return _bad(END, f"{provider.label} cannot make what came before a video.")
    if end_id is None and not caps.extend:
        return _bad(START, f"{provider.label} cannot extend a video.")
    videos: dict[str, Generation] = {}
    for field, value in ((START, start_id), (END, end_id)):
        if value is not None:
            found = _video(field, value)
            if isinstance(found, JsonResponse):
                return found
            videos[field] = found
    if START in videos and END in videos:
        if videos[START].pk == videos[END].pk:
            return _bad(END, "must be another video than start_generation_id.")
        return actions.Sources(Kind.INTERPOLATE, videos[START], videos[END])
    if START in videos:
        return actions.Sources(Kind.EXTEND, videos[START])
    return actions.Sources(Kind.REVERSE, videos[END])
