"""A database outage, as people see it: a 503 that says what is going on, never an error page.

When PostgreSQL cannot be reached (stopped, restarting, a network cut), every request that needs
it fails with ``OperationalError`` or ``InterfaceError``, wherever it first asks: a view, a
template, or a middleware reading the session or ``request.user``. Instead of a 500 (or, with
DEBUG on, Django's technical page) the answer is a 503 with ``Retry-After``:

- a page: ``templates/503.html``, self-contained (rendered without the request, so no context
  processor runs a query), which checks /healthz by itself and reloads once the database is back;
- an htmx request: the sentence alone, marked ``Lumaweb-Outage: database``; htmx does not swap
  an error answer in, static/js/app.js shows it as a toast, and live polls keep polling;
- the API: ``{"error": ...}``.

Django turns an exception into a response at the layer it is raised in (a 500, or the technical
page), so a middleware outside the others never sees it; ``got_request_exception``, which Django
sends for every uncaught exception, a view's or a middleware's, before it renders that 500,
marks the request, and this middleware, placed outside those that touch the database, answers
the 503 instead on its way out.

Nothing is lost meanwhile: the pipeline's work is upstream, and the workers record it when the
database is back. Django reconnects by itself; ``CONN_HEALTH_CHECKS`` (lumaweb/settings.py)
makes sure a connection kept from before the outage is not used dead.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import psycopg
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.http import escape_leading_slashes

MESSAGE = (
    "lumaweb can't reach its database right now. Nothing is lost: jobs already sent keep "
    "running upstream and are recorded when it is back."
)
RETRY_AFTER = 5  # seconds; the page checks again this often
OUTAGE_HEADER = "Lumaweb-Outage"
_MARK = "_lumaweb_database_outage"
log = logging.getLogger(__name__)


# SQLSTATEs that mean the server is out of reach, not that the statement went wrong: a connection
# exception (class 08), the server shutting down, crashed or starting up, or full.
OUT_OF_REACH = ("08", "57P01", "57P02", "57P03", "53300")


def is_outage(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database cannot be reached (the 503), rather than that a query
    failed (a deadlock, a time-out, a wrong password, a missing table: a 500 whose traceback
    stays in the log). A connection that never got an answer has no SQLSTATE."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if not isinstance(cause, psycopg.Error):
        return False  # SQLite's: a file on this machine, never "out of reach"
    return cause.sqlstate is None or cause.sqlstate.startswith(OUT_OF_REACH)


def outage_response(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"error": MESSAGE}, status=503)
    elif request.headers.get("HX-Request") == "true":
        response = HttpResponse(
            f"{MESSAGE} This page keeps trying.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response[OUTAGE_HEADER] = "database"
    else:
        # "//host/x" as a path would be a link to another site, which the page follows by itself
        again = escape_leading_slashes(request.get_full_path())
        context = {"message": MESSAGE, "retry_after": RETRY_AFTER, "again": again}
        page = render_to_string("503.html", context)
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    add_never_cache_headers(response)
    patch_vary_headers(response, ("HX-Request",))
    return response


def _mark_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Sent inside Django's ``except`` block: the exception is the one being handled."""
    exc = sys.exc_info()[1]
    if request is not None and is_outage(exc):
        setattr(request, _MARK, True)
        cause = getattr(exc, "__cause__", None)
        log.warning(
            "database out of reach (%s, SQLSTATE %s): answering 503",
            type(cause or exc).__name__,
            getattr(cause, "sqlstate", None),
        )


class DatabaseOutageMiddleware:
    """Place it before (outside) every middleware that may touch the database: sessions, auth,
    messages. Those before it (security headers, CSP, static files) then apply to its 503 too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        got_request_exception.connect(_mark_outage, dispatch_uid="lumaweb-database-outage")

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if getattr(request, _MARK, False):
            return outage_response(request)
        return response


class OutageTracebackFilter(logging.Filter):
    """On ``django.request``: drop the "Internal Server Error" record (and its traceback) that
    Django writes for an outage; the 503 that replaces it is logged as "Service Unavailable:
    <path>", one line a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and is_outage(record.exc_info[1]))
