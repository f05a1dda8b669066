"""Request bodies bigger than their sender may send are refused before a byte of them is read.

Django reads a body the first time something touches ``request.POST``, ``FILES`` or ``body``:
``CsrfViewMiddleware`` does so on every POST with a form body, before the login check, and a
multipart body bigger than ``FILE_UPLOAD_MAX_MEMORY_SIZE`` is written to temporary files as it
arrives. So anyone, logged in or not, could make the server wait for and spool a body of any
size. This middleware runs before all that and looks only at the request's head:

- a stranger may send what a login form needs (``MAX_ANONYMOUS_BODY_BYTES``);
- a person (session or API token) the create form with its two keyframe uploads
  (``MAX_BODY_BYTES``), and on the JSON API what Django will read into memory
  (``DATA_UPLOAD_MAX_MEMORY_SIZE``);
- a body without a ``Content-Length`` (``Transfer-Encoding: chunked``) cannot be measured
  before it is read, and Django would not read it anyway (it would see an empty form): 411.

The answer is 413 (or 411) at once, JSON under ``/api/``; gunicorn then drops the unread body
(it drains at most 64 KB before closing the connection). The reverse proxy in front should
refuse bigger bodies too (README, "Production"): then they never reach a gunicorn thread.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

API_PREFIX = "/api/"


def body_limit(request: HttpRequest) -> int:
    """How many body bytes this sender may send to this path."""
    if not request.user.is_authenticated:
        return settings.MAX_ANONYMOUS_BODY_BYTES
    if request.path.startswith(API_PREFIX):
        return min(settings.MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return settings.MAX_BODY_BYTES


def _refuse(request: HttpRequest, status: int, message: str) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class BodyLimitMiddleware:
    """Place it after the middleware that sets ``request.user`` (sessions, API tokens) and before
    anything that reads the body; none of Django's own middleware reads it before a view (CSRF
    reads it in ``process_view``, which runs after every middleware's request phase)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        refusal = self.check(request)
        return refusal if refusal is not None else self.get_response(request)

    @staticmethod
    def check(request: HttpRequest) -> HttpResponse | None:
        """The refusal for this request's head, or None when its body may be read."""
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        if not raw_length:
            if request.META.get("HTTP_TRANSFER_ENCODING"):
                return _refuse(request, 411, "Send the body with a Content-Length.")
            return None
        try:
            length = int(raw_length)
        except ValueError:
            return _refuse(request, 400, "The Content-Length is not a number.")
        limit = body_limit(request)
        if length > limit:
            return _refuse(request, 413, f"The request is too large: at most {_size(limit)} here.")
        return None


def _size(count: int) -> str:
    return f"{count / 2**20:.3g} MB" if count >= 2**20 else f"{count / 2**10:.3g} KB"
