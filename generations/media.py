"""Serving what lumaweb stored: keyframes publicly (the upstream fetches them), videos and
thumbnails to logged-in people (or API tokens) only.

Videos are answered with byte ranges (206) when the browser asks for them: Safari plays nothing
without, and every browser needs them to seek (``generations.fileserve``, which a share link's
videos use too). A video or thumbnail is a finished generation's copy, named by its id and never
rewritten, so a browser keeps it a year without asking (``fileserve.IMMUTABLE``); keyframes keep
the hour they had. With ``MEDIA_SERVE=accel`` nginx sends the bytes once this view said yes;
with ``MEDIA_STORAGE=s3`` the bucket does, through a short-lived presigned URL (a 302).
"""

from __future__ import annotations

import os
import posixpath
from urllib.parse import unquote

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.utils._os import safe_join
from django.views.decorators.http import require_safe

from generations import mediastore
from generations.fileserve import IMMUTABLE, serve_file

PUBLIC_PREFIXES = ("keyframes/",)
PRIVATE_PREFIXES = ("videos/", "thumbnails/")


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
    if mediastore.remote():  # MEDIA_STORAGE=s3: the bucket sends the bytes, to this viewer only
        return mediastore.presigned_redirect(path)
    try:
        full = safe_join(settings.MEDIA_ROOT, path)
    except ValueError:  # outside MEDIA_ROOT
        raise Http404 from None
    if not os.path.isfile(full):
        raise Http404
    private = path.startswith(PRIVATE_PREFIXES)
    return serve_file(request, full, IMMUTABLE if private else "private, max-age=3600")
