"""The database outage's answers (generations/outage.py) and the settings that bound it; the
real outage, with a server stopped under a running app, is tests/test_database_outage_web.py.

No test here may touch the database (no ``db`` fixture: pytest-django refuses any query), which
is the point: the 503 must render while there is none."""

from __future__ import annotations

import html
import json

import psycopg
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from generations.outage import MESSAGE, OUTAGE_HEADER, is_outage, outage_response
from tests.test_database_settings import POSTGRES, loaded


def test_the_page_renders_without_the_database_and_retries_by_itself() -> None:
    answer = outage_response(RequestFactory().get("/jobs/?status=running"))
    page = html.unescape(answer.content.decode())
    assert answer.status_code == 503
    assert int(answer["Retry-After"]) > 0
    assert MESSAGE in page
    assert "This page retries by itself" in page
    assert 'href="/jobs/?status=running"' in page  # "Try again now", without JavaScript
    assert "js/outage.js" in page
    assert "no-cache" in answer["Cache-Control"]


def test_htmx_gets_the_sentence_alone_marked_for_the_toast() -> None:
    answer = outage_response(RequestFactory().get("/jobs/count/", HTTP_HX_REQUEST="true"))
    assert answer.status_code == 503
    assert answer[OUTAGE_HEADER] == "database"
    assert answer.content.decode() == f"{MESSAGE} This page keeps trying."


def test_the_api_gets_json() -> None:
    answer = outage_response(RequestFactory().get("/api/v1/generations"))
    assert answer.status_code == 503
    assert answer["Content-Type"] == "application/json"
    assert json.loads(answer.content) == {"error": MESSAGE}


def test_a_connection_is_checked_before_reuse_and_waits_a_bounded_time() -> None:
    db = loaded(DATABASE_URL=POSTGRES)
    assert db["CONN_HEALTH_CHECKS"] is True
    assert db["OPTIONS"]["connect_timeout"] == 5
    assert loaded(DATABASE_URL=POSTGRES, DATABASE_CONNECT_TIMEOUT="2")["OPTIONS"] == {
        "connect_timeout": 2
    }
    # The URL's own wins (and its other options stay).
    own = loaded(DATABASE_URL=f"{POSTGRES}?connect_timeout=9&sslmode=require")["OPTIONS"]
    assert own["connect_timeout"] in ("9", 9)
    assert own["sslmode"] == "require"


def test_the_try_again_link_stays_on_this_site() -> None:
    # "//evil.example/x" as a path would be a link to another site, and the page follows its
    # link by itself once the database is back.
    request = RequestFactory().get("/")
    request.path = request.path_info = "//evil.example/x"  # as gunicorn passes it on
    answer = outage_response(request)
    page = html.unescape(answer.content.decode())
    assert 'href="//' not in page
    assert 'href="/%2Fevil.example/x"' in page


def _psycopg_error(sqlstate: str | None) -> OperationalError:
    """Django's OperationalError with psycopg's error as its cause, as Django raises them."""
    cause = psycopg.errors.lookup(sqlstate)("boom") if sqlstate else psycopg.OperationalError("x")
    error = OperationalError("boom")
    error.__cause__ = cause
    return error


def test_only_a_database_out_of_reach_is_an_outage() -> None:
    # no answer from the server, a connection lost, the server shutting down or starting up
    for sqlstate in (None, "08006", "57P01", "57P03"):
        assert is_outage(_psycopg_error(sqlstate)), sqlstate
    assert is_outage(InterfaceError("connection already closed"))
    # a deadlock, a serialisation failure, a statement time-out, a lock not available, a wrong
    # password: errors with a cause a person must see in the log, not "back in a moment"
    for sqlstate in ("40P01", "40001", "57014", "55P03", "28P01"):
        assert not is_outage(_psycopg_error(sqlstate)), sqlstate
