"""One way to answer with a stored file: byte ranges (206) when the browser asks for them, the
whole file otherwise, and the headers every stored file gets.

Used by ``generations.media`` (the studio's /media/) and ``generations.share_views`` (a share
link's videos and posters): Safari plays nothing without ranges, and every browser needs them to
seek, so both must answer them the same way.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# Longer than any file's offset (19 digits pass 2**63): and int() refuses strings past 4,300
# digits with a ValueError, which was an anonymous 500 on a public keyframe.
MAX_DIGITS = 19
CHUNK = 256 * 1024


def serve_file(request: HttpRequest, full: str, cache_control: str) -> HttpResponseBase:
    """The file at ``full`` (an absolute path the caller has checked), as a stored file is
    served: sandboxed, never sniffed, ranges accepted."""
    response = _file_response(request, full)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = cache_control
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
