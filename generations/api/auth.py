"""Personal API tokens: ``Authorization: Bearer lw_...`` for scripts.

A token is not ambient (a browser never sends it by itself), so a request that carries a valid
one needs no CSRF token. Sessions keep CSRF as usual.

A new password ends a person's tokens, as it ends their other sessions: someone who changes a
password because it leaked expects whatever the old one opened to close
(``revoke_tokens_on_password_change``, connected in ``GenerationsConfig.ready``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
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


def revoke_tokens_on_password_change(
    sender: type[AbstractBaseUser], instance: AbstractBaseUser, created: bool, **kwargs: Any
) -> None:
    """``post_save`` of the user model: delete the person's tokens when the password changed.

    Every way of setting a password (the change-password page, the admin, ``changepassword``,
    ``ensureadmin``) calls ``set_password``, which keeps the new password in ``_password`` until
    the save is done; Django reads it there to tell password validators of the change. A hash
    upgraded on log-in (same password, new hasher settings) clears it before saving, so it
    keeps the tokens, as does any other save of the user.
    """
    if created or getattr(instance, "_password", None) is None:
        return
    ApiToken.objects.filter(user_id=instance.pk).delete()
