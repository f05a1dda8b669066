"""htmx plumbing, written once: the middleware every page response goes through, and the two
helpers the views use to answer htmx (which partial to render, and the poll protocol).

- Toasts: pending messages ride along, out of band, on every htmx answer that swaps HTML, so a
  view only says ``messages.success(...)`` and never thinks about where it will show.
- ``Vary: HX-Request``: one URL answers a whole page or a fragment of it; a cache (or the
  browser's back button) must never hand one out for the other.
- An expired session: the login redirect would otherwise be followed by the XHR and the login
  page swapped into a fragment; htmx is told to load the login page instead (``HX-Redirect``),
  with ``next`` set to the page the person was on, not to the fragment's URL.
- ``render_for_target``: the page, or the named partial of it that the request aims at.
- The gallery's viewer (static/js/viewer.js) shows the detail page's fragments over the cards of
  the same videos, and marks its requests (``Lumaweb-Viewer: 1``): ``request.id_prefix`` ("v-")
  then starts every id those fragments render (templates read it as ``id_prefix``), so no id is
  in the page twice (htmx aims ``#id`` targets at, and gives the focus back to, the first one),
  and ``htmx_target`` takes it off again, so a view answers the same wherever it is.
- ``answer_poll``: 204 while the client's copy is current, 286 once nothing more will change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.contrib.messages import get_messages
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render, resolve_url
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HTMX_STOP_POLLING, HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

# Headers that make htmx leave the page: nothing it would swap, so no toasts either (they stay
# queued for the page it goes to).
_NAVIGATING = ("HX-Redirect", "HX-Location", "HX-Refresh")


# The viewer's requests say so with this header; the ids rendered for it start with the prefix.
VIEWER_HEADER = "Lumaweb-Viewer"
VIEWER_ID_PREFIX = "v-"


class HtmxHttpRequest(HttpRequest):
    """A request as the views see it: django-htmx's middleware has added ``htmx`` (the type
    django-htmx's documentation suggests for type checkers), ours ``id_prefix``."""

    htmx: HtmxDetails
    id_prefix: str


def htmx_target(request: HttpRequest) -> str | None:
    """The id of the element an htmx request will swap (``HX-Target``), or None; without the
    viewer's prefix (a fragment is the same one in the viewer and in its page)."""
    htmx = getattr(request, "htmx", None)
    target: str | None = htmx.target if htmx else None
    prefix = getattr(request, "id_prefix", "")
    if target and prefix and target.startswith(prefix):
        return target.removeprefix(prefix)
    return target


def render_for_target(
    request: HttpRequest,
    template_name: str,
    context: Mapping[str, object],
    partials: Mapping[str, str],
    *,
    status: int = 200,
) -> HttpResponse:
    """The whole page, or ``template_name#partial`` when htmx aims at a target in ``partials``
    (``{element id: partial name}``). One template holds both, so there is one copy of the
    markup; the answer varies with the target, and says so."""
    partial = partials.get(htmx_target(request) or "")
    name = f"{template_name}#{partial}" if partial else template_name
    response = render(request, name, context, status=status)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def answer_poll(
    request: HttpRequest,
    *,
    version: str,
    settled: bool,
    fragment: Callable[[], HttpResponse],
    client_version: str | None = None,
) -> HttpResponse:
    """The poll protocol of every live part of the studio.

    ``version`` stamps what the fragment would show now; the client sends the stamp it has
    (``?v=``, or ``client_version`` when a view reads it another way). While they match and
    more may change: 204, nothing rendered, nothing swapped. Otherwise ``fragment()``, as 286
    (htmx swaps it and stops polling) once ``settled``: nothing will change by itself any more.
    """
    if client_version is None:
        client_version = request.GET.get("v")
    if not settled and client_version == version:
        return HttpResponse(status=204)
    response = fragment()
    if settled:
        response.status_code = HTMX_STOP_POLLING
    return response


def _login_path() -> str:
    return urlsplit(resolve_url(settings.LOGIN_URL)).path


def _is_login_redirect(response: HttpResponseBase) -> bool:
    return (
        response.status_code in (301, 302, 303, 307, 308)
        and urlsplit(response.get("Location", "")).path == _login_path()
    )


def _swaps_html(response: HttpResponseBase) -> bool:
    """Whether htmx will swap this answer's body: a 2xx (or 286) HTML body, not a redirect."""
    if response.streaming or not isinstance(response, HttpResponse):
        return False
    if response.status_code == 204 or not (
        200 <= response.status_code < 300 or response.status_code == HTMX_STOP_POLLING
    ):
        return False
    if not response.content or any(header in response for header in _NAVIGATING):
        return False
    return response.get("Content-Type", "").startswith("text/html")


class HtmxPlumbingMiddleware:
    """Toasts, ``Vary`` and the expired-session redirect for every htmx answer (see the module
    docstring). Place it after django_htmx's ``HtmxMiddleware`` and Django's
    ``MessageMiddleware`` (messages must still be readable when the view has answered)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        in_viewer = request.headers.get(VIEWER_HEADER) == "1" and bool(
            getattr(request, "htmx", False)
        )
        request.id_prefix = VIEWER_ID_PREFIX if in_viewer else ""  # type: ignore[attr-defined]
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("text/html"):
            patch_vary_headers(response, ("HX-Request",))
        if not getattr(request, "htmx", False):
            return response
        patch_vary_headers(response, (VIEWER_HEADER,))
        if _is_login_redirect(response):
            return self._client_redirect_to_login(request)
        if _swaps_html(response) and len(get_messages(request)):
            items = render_to_string("base.html#toast-items", request=request)
            response.write(f'<div hx-swap-oob="beforeend:#toasts">{items}</div>')
        return response

    @staticmethod
    def _client_redirect_to_login(request: HttpRequest) -> HttpResponse:
        """Load the login page as a page; afterwards come back to the page, not the fragment."""
        back = request.htmx.current_url_abs_path  # type: ignore[attr-defined]
        if back and urlsplit(back).path != _login_path():
            url = redirect_to_login(back)["Location"]
        else:
            url = resolve_url(settings.LOGIN_URL)
        response = HttpResponseClientRedirect(url)
        patch_vary_headers(response, ("HX-Request",))
        return response


def next_url(request: HttpRequest, default: str) -> str:
    """Where to go back to after a form POST (a plain, no-JavaScript one too): a same-site
    ``next`` (in the form or the query string), or the default."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
