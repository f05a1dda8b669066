"""The API's errors are JSON, including those Django answers before (or instead of) a view.

A script reading ``/api/v1/`` expects ``{"error": ...}`` whatever went wrong; Django's own
answers (a failed CSRF check, a 404 from the URL map or ``get_object_or_404``, a 400 for a
malformed request, a 500) are HTML pages. ``lumaweb/urls.py`` names the handlers below and
``CSRF_FAILURE_VIEW`` names ``csrf_failure``: under ``/api/`` they answer JSON, elsewhere the
studio's own error pages as before. (An oversized body is answered earlier still, by
``generations.limits``, in the same JSON shape.)
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults

API_PREFIX = "/api/"


def json_object(request: HttpRequest) -> dict[str, Any] | JsonResponse:
    """The request's JSON body as a dict (an empty body is ``{}``), or the 400 that says it is not
    one. Every API view that takes a body reads it through this."""
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return json_error(400, "The body must be a JSON object.")
    if not isinstance(data, dict):
        return json_error(400, "The body must be a JSON object.")
    return data


def json_error(
    status: int, message: str, fields: dict[str, list[str]] | None = None
) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    return JsonResponse(body, status=status)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return json_error(
            403,
            "CSRF check failed: a session needs the X-CSRFToken header; "
            "scripts send a Bearer token instead.",
        )
    return csrf.csrf_failure(request, reason)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return json_error(400, "The request is malformed.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return json_error(403, "You may not do that.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return json_error(404, "Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return json_error(500, "The server hit an error it did not expect.")
    return defaults.server_error(request)
