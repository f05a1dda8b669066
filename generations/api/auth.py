"""Personal API tokens: ``Authorization: Bearer lw_...`` for scripts.

A token is not ambient (a browser never sends it by itself), so a request that carries a valid
one needs no CSRF token. Sessions keep CSRF as usual.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from generations.models import ApiToken

TOKEN_PATHS = ("/api/", "/media/")  # the API, and the files its answers point at


class ApiTokenMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and request.path.startswith(TOKEN_PATHS):
            key = header[len("Bearer ") :].strip()
            token = (
                ApiToken.objects.select_related("user")
                .filter(key_hash=ApiToken.hash_key(key), user__is_active=True)
                .first()
            )
            if token is None:
                return JsonResponse({"error": "That API token is not valid."}, status=401)
            request.user = token.user
            # The per-request flag CsrfViewMiddleware reads (Django's test client sets it too);
            # django-stubs does not declare this private attribute.
            request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return self.get_response(request)
