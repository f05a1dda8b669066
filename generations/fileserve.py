"""One way to answer with a stored file: byte ranges (206) when the browser asks for them, the
whole file otherwise, validators (``ETag``, ``Last-Modified``) and a 304 when the browser's copy
is still the file, and the headers every stored file gets.

Used by ``generations.media`` (the studio's /media/), ``generations.share_views`` (a share
link's videos and posters) and ``generations.chain_views`` (a chain's download): Safari plays
nothing without ranges, and every browser needs them to seek, so all must answer them the same
way.

Who sends the bytes is ``MEDIA_SERVE``: ``django`` reads them here; ``accel`` answers, once the
caller has said yes, with an empty body and ``X-Accel-Redirect: /protected-media/<path>``, and
nginx (``deploy/nginx.conf``, an ``internal`` location: no client can ask for it) sends the file
with sendfile, ranges and all, while no gunicorn thread waits on a slow viewer. The ETag is
nginx's own format (``"<mtime hex>-<size hex>"``), so a browser's validator works whichever of
the two sent the file.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Iterator
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe

RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# Longer than any file's offset (19 digits pass 2**63): and int() refuses strings past 4,300
# digits with a ValueError, which was an anonymous 500 on a public keyframe.
MAX_DIGITS = 19
CHUNK = 256 * 1024
# nginx's internal location (deploy/nginx.conf): an alias of MEDIA_ROOT.
ACCEL_PREFIX = "/protected-media/"
# A file whose name is never reused for other bytes (a finished video's copy, its thumbnail):
# a browser keeps it a year without asking. Private: only people logged in may read it.
IMMUTABLE = "private, max-age=31536000, immutable"


def serve_file(
    request: HttpRequest,
    full: str,
    cache_control: str,
    *,
    etag: str | None = None,
    download_name: str | None = None,
) -> HttpResponseBase:
    """The file at ``full`` (an absolute path under MEDIA_ROOT the caller has checked), as a
    stored file is served: sandboxed, never sniffed, ranges accepted, 304 for a browser whose
    copy is current. ``etag`` replaces the file's own (mtime and size) when the caller knows a
    better one (a chain's join, touched whenever it is sent); it then has no Last-Modified.
    ``download_name``: sent as an attachment under that name."""
    stat = os.stat(full)
    modified = None if etag else int(stat.st_mtime)
    etag = etag or file_etag(stat.st_mtime, stat.st_size)
    validated = get_conditional_response(request, etag=etag, last_modified=modified)
    response: HttpResponseBase
    if validated is not None:  # 304 (or 412 for a failed If-Match)
        response = validated
    elif settings.MEDIA_SERVE == "accel":
        response = _accel_response(full)
    else:
        ranges = _range_applies(request, etag, modified)
        response = _file_response(request, full, stat.st_size, ranges)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = cache_control
    response["ETag"] = etag
    if modified is not None:
        response["Last-Modified"] = http_date(modified)
    disposition = content_disposition_header(True, download_name) if download_name else None
    if disposition and validated is None:
        response["Content-Disposition"] = disposition
    return response


def file_etag(mtime: float, size: int) -> str:
    """nginx's ETag for a static file, so that both senders agree."""
    return f'"{int(mtime):x}-{size:x}"'


def accel_path(full: str) -> str:
    """``X-Accel-Redirect``'s value for ``full``: its path below MEDIA_ROOT, normalised and
    percent-encoded (nginx decodes it and refuses ``..`` itself). A path outside MEDIA_ROOT
    is a 404, never a redirect."""
    root = os.path.normpath(os.path.abspath(settings.MEDIA_ROOT))
    relative = os.path.relpath(os.path.normpath(os.path.abspath(full)), root)
    if relative == "." or relative.split(os.sep)[0] == ".." or "\x00" in relative:
        raise Http404
    return ACCEL_PREFIX + quote(relative.replace(os.sep, "/"), safe="/")


def _accel_response(full: str) -> HttpResponse:
    response = HttpResponse(b"", content_type=_content_type(full))
    response["X-Accel-Redirect"] = accel_path(full)
    return response


def _content_type(full: str) -> str:
    return mimetypes.guess_type(full)[0] or "application/octet-stream"


def _range_applies(request: HttpRequest, etag: str, modified: int | None) -> bool:
    """``If-Range``: a range of the browser's copy only if that copy is still the file (the
    same ETag, or exactly its Last-Modified); else the whole file."""
    if_range = request.headers.get("If-Range", "").strip()
    if not if_range or if_range == etag:
        return True
    return modified is not None and parse_http_date_safe(if_range) == modified


def _file_response(request: HttpRequest, full: str, size: int, ranges: bool) -> HttpResponseBase:
    content_type = _content_type(full)
    match = RANGE.fullmatch(request.headers.get("Range", "").strip()) if ranges else None
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
