"""Serving what lumaweb stored: keyframes publicly (the upstream fetches them), videos and
thumbnails to logged-in people (or API tokens) only.

Videos are answered with byte ranges (206) when the browser asks for them: Safari plays nothing
without, and every browser needs them to seek.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import re
from collections.abc import Iterator
from urllib.parse import unquote

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils._os import safe_join
from django.views.decorators.http import require_safe

PUBLIC_PREFIXES = ("keyframes/",)
PRIVATE_PREFIXES = ("videos/", "thumbnails/")
RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# Longer than any file's offset (19 digits pass 2**63): and int() refuses strings past 4,300
# digits with a ValueError, which was an anonymous 500 on a public keyframe.
MAX_DIGITS = 19
CHUNK = 256 * 1024


@login_not_required
@require_safe
def media(request: HttpRequest, path: str) -> HttpResponseBase:
    # Decide on the normalised path: "keyframes/../videos/x.mp4" is a video, not a keyframe.
    path = posixpath.normpath(unquote(path)).lstrip("/")
    if path.startswith("..") or "\\" in path or "\x00" in path:
        raise Http404
    if path.startswith(PRIVATE_PREFIXES):
        if not request.user.is_authenticated:
            raise Http404
    elif not path.startswith(PUBLIC_PREFIXES):
        raise Http404
    try:
        full = safe_join(settings.MEDIA_ROOT, path)
    except ValueError:  # outside MEDIA_ROOT
        raise Http404 from None
    if not os.path.isfile(full):
        raise Http404
    response = _file_response(request, full)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _file_response(request: HttpRequest, full: str) -> HttpResponseBase:
    size = os.path.getsize(full)
    content_type = mimetypes.guess_type(full)[0] or "application/octet-stream"
    match = RANGE.fullmatch(request.headers.get("Range", "").strip())
    if not match or not (match[1] or match[2]):
        return FileResponse(open(full, "rb"), content_type=content_type)
    if max(len(match[1]), len(match[2])) > MAX_DIGITS:
        return _not_satisfiable(size)
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # "bytes=-N": the last N bytes
        start, end = max(0, size - int(match[2])), size - 1
    if start >= size or start > end:
        return _not_satisfiable(size)
    length = end - start + 1
    response = StreamingHttpResponse(
        _read(full, start, length), status=206, content_type=content_type
    )
    response["Content-Length"] = str(length)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response


def _not_satisfiable(size: int) -> HttpResponse:
    refused = HttpResponse(status=416)
    refused["Content-Range"] = f"bytes */{size}"
    return refused


def _read(full: str, start: int, length: int) -> Iterator[bytes]:
    with open(full, "rb") as fh:
        fh.seek(start)
        while length > 0:
            chunk = fh.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
