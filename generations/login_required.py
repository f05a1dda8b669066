"""Django's LoginRequiredMiddleware, asking the view before the session.

Django's own reads ``request.user`` first (a session lookup, a query) and only then whether the
view is public. Asking the view first changes no answer, and spares every public view that query:
/healthz, the login page and shared links then answer while the database is out of reach (an
uptime monitor or a load balancer sending an old session cookie still gets /healthz's JSON, not
the outage page of generations/outage.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import middleware
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class LoginRequiredMiddleware(middleware.LoginRequiredMiddleware):
    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
