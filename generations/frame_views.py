"""One frame of a finished video as a JPEG: the detail page's scrubber preview and the create
page's preview of a frame keyframe (generations/frames.py says which frame and how).

``GET /generations/<id>/frame.jpg`` is the last frame; ``?t=<seconds>`` the frame nearest to
that time (past the end: the last); ``?frame=<n>`` frame ``n`` (0 is the first). The bytes are
the very keyframe a create form naming this frame stores. A frame never changes while the file
does not, so the answer carries an ``ETag`` (file version, frame, encoding) and may be cached
by the browser (``private``: videos need a login); a conditional request is answered 304
without decoding anything. Bad input is a 400 in words, a video without frames a 404 in words.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import parse_etags
from django.views.decorators.http import require_safe

from generations import frames
from generations.models import Generation

MAX_AGE = 24 * 3600


def _words(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def frame_image(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    gen = get_object_or_404(Generation, pk=pk)
    try:
        path = frames.video_path(gen)
    except frames.FrameError as exc:
        return _words(404, str(exc))
    try:
        info = frames.probe(path)
        raw_index = request.GET.get("frame", "").strip()
        if raw_index:
            if not raw_index.isdecimal() or len(raw_index) > 9:
                raise frames.FrameError("The frame must be a whole number, 0 for the first.")
            index = info.index_of(int(raw_index))
        else:
            index = info.index_at(frames.parse_t(request.GET.get("t")))
    except frames.FrameError as exc:
        return _words(400, str(exc))
    tag = frames.etag(path, index)
    headers = {"ETag": tag, "Cache-Control": f"private, max-age={MAX_AGE}"}
    if tag in parse_etags(request.headers.get("If-None-Match", "")):
        response = HttpResponse(status=304)
    else:
        try:
            body = frames.frame_jpeg(path, index)
        except frames.FrameError as exc:
            return _words(404, str(exc))
        response = HttpResponse(body, content_type="image/jpeg")
        response["X-Content-Type-Options"] = "nosniff"
        # The frame's place, for the scrubber's words (0-based index, seconds).
        response["X-Frame-Index"] = str(info.last_index if index is None else index)
    for name, value in headers.items():
        response[name] = value
    return response
