"""Serving what lumaweb stored: keyframes publicly (the upstream fetches them), the rest to
logged-in people only."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.views.static import serve

PUBLIC_PREFIXES = ("keyframes/",)
PRIVATE_PREFIXES = ("videos/", "thumbnails/")


@login_not_required
def media(request, path: str):
    if path.startswith(PUBLIC_PREFIXES):
        pass
    elif path.startswith(PRIVATE_PREFIXES):
        if not request.user.is_authenticated:
            raise Http404
    else:
        raise Http404
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
