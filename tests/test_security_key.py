"""The API key never reaches a person, even when the service echoes it back (issue 9, #2).

A hostile (or merely careless) upstream quotes what it was sent: a 401 that names the key, a
gateway's 502 page that dumps the request headers, a failed job whose reason mentions the key.
Whatever the service says is stored and shown to every user (detail page, /jobs/, the API, the
admin), so the key and anything shaped like a credential is redacted before it is stored, and
exception tracebacks in the logs are redacted like the log lines themselves.

The upstream here is a tiny real HTTP server that echoes the ``Authorization`` header it
receives, so nothing in the test hands the key to the code under test but the real request.
"""

from __future__ import annotations

import http.server
import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from logging.config import DictConfigurator

import pytest
from django.test import Client
from django.utils import timezone

from generations import actions, pipeline
from generations.inputs import GenerationRequest
from generations.models import AccountHold, Generation, Status, StatusEvent
from tests.factories import make_user

# Two keys: one shaped like the usual ``sk-...``, one that is only an opaque string (no prefix, no
# keyword next to it in the echoes), so that the configured key itself is what gets redacted.
SK_KEY = "sk-test-Q2xNv8TzR4kLm7WpY1bHc5Jd9Fg3Ks6AeR0t"
OPAQUE_KEY = "9fT2qLx7VbN4mZc8RwK1pHs6Jd3Gy5Ua"
KEYS = [pytest.param(SK_KEY, id="sk-key"), pytest.param(OPAQUE_KEY, id="opaque-key")]


class _HostileUpstream(http.server.BaseHTTPRequestHandler):
    """Answers like a service that quotes the caller's credentials back. ``mode`` picks how."""

    mode = "401"
    seen_key = ""  # the last key it was sent: its file server quotes that one

    def _key(self) -> str:
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if key:
            type(self).seen_key = key
        return key

    def _send(self, status: int, body: str, content_type: str, **headers: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self._key()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.mode == "401":
            message = {"message": f"Incorrect API key provided: {self._key()}", "requestId": "r-1"}
            self._send(401, json.dumps(message), "application/json")
        elif self.mode == "401-long":  # the key straddles the 500 characters lumaweb keeps
            message = {"message": "Refused. " + "x" * 470 + f" sent by {self._key()}"}
            self._send(401, json.dumps(message), "application/json")
        elif self.mode == "502":
            page = (
                "Bad Gateway: the origin refused the request.\n"
                f"Request headers: Authorization: {self.headers.get('Authorization')}; "
                f"User-Agent: {self.headers.get('User-Agent')}\n"
            )
            self._send(502, page, "text/plain", x_request_id=f"gw-{self._key()}")
        else:  # accepted; the poll will say it failed, or finished at a URL holding the key
            accepted = {
                "id": "gen-hostile-1",
                "state": "queued",
                "prompt": body.get("user_prompt", ""),
                "estimate_wait_seconds": 1,
            }
            self._send(201, json.dumps(accepted), "application/json")

    def do_GET(self) -> None:
        self._key()
        if self.path.startswith("/files/"):  # the finished file, of a type that names the key
            self._send(200, "not a video", f"video/x-{self.seen_key}")
            return
        if self.mode == "accept-then-complete-at-own-file":
            port = self.server.server_address[1]
            done = {
                "id": "gen-hostile-1",
                "state": "completed",
                "video": {"url": f"http://127.0.0.1:{port}/files/v.mp4"},
            }
            self._send(200, json.dumps([done]), "application/json")
            return
        if self.mode == "accept-then-complete":
            done = {
                "id": "gen-hostile-1",
                "state": "completed",
                "video": {"url": f"https://cdn.example.com/v.mp4?api_key={self._key()}"},
            }
            self._send(200, json.dumps([done]), "application/json")
            return
        failed = {
            "id": "gen-hostile-1",
            "state": "failed",
            "prompt": f"a calm sea (account {self._key()})",
            "failure_reason": f"The model refused the call made with {self._key()} (quota).",
        }
        self._send(200, json.dumps([failed]), "application/json")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile(settings) -> Iterator[type[_HostileUpstream]]:
    """A real upstream that echoes the key; the test sets its ``mode``."""
    handler = type("Hostile", (_HostileUpstream,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.LUMA_API_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.LUMA_DEMO_MODE = False
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def _assert_key_nowhere(gen: Generation, key: str, caplog) -> None:
    """Not in any column of the row or its history, not on a page, in the API or the admin,
    not in a log line, in any letter case; nor its distinctive tail (a key cut short is still a
    leak)."""
    boss = make_user("boss", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    needles = (key.lower(), key[-16:].lower())
    gen.refresh_from_db()
    stored = [str(getattr(gen, field.attname)) for field in Generation._meta.concrete_fields]
    stored += [
        f"{event.state} {event.note}" for event in StatusEvent.objects.filter(generation=gen)
    ]
    stored += [f"{hold.reason}" for hold in AccountHold.objects.all()]  # the banner's words
    for needle in needles:
        assert not [text for text in stored if needle in text.lower()], "the key is stored"
    for path in (
        f"/generations/{gen.pk}/",
        "/jobs/",
        "/healthz",
        "/api/v1/generations",
        f"/api/v1/generations/{gen.pk}",
        f"/admin/generations/generation/{gen.pk}/change/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        for needle in needles:
            assert needle.encode() not in response.content.lower(), path
    for needle in needles:
        assert needle not in caplog.text.lower()


def _new_job(prompt: str = "a calm sea") -> Generation:
    owner = make_user("alice")
    return actions.create_generation(owner, GenerationRequest(user_prompt=prompt))


@pytest.mark.parametrize("key", KEYS)
def test_a_401_that_quotes_the_key_is_stored_and_shown_without_it(
    db, hostile, settings, caplog, key
):
    settings.LUMA_API_KEY = key
    caplog.set_level(logging.DEBUG)
    hostile.mode = "401"
    gen = _new_job()
    assert pipeline.submit(gen.pk).result == "held"  # the account is on hold, the job waits
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED and gen.error_code == 401
    assert gen.error.startswith("Incorrect API key provided: ")  # the message itself is kept
    _assert_key_nowhere(gen, key, caplog)


@pytest.mark.parametrize("key", KEYS)
def test_a_502_page_that_quotes_the_authorization_header_is_stored_and_shown_without_it(
    db, hostile, settings, caplog, key
):
    settings.LUMA_API_KEY = key
    caplog.set_level(logging.DEBUG)
    hostile.mode = "502"
    gen = _new_job()
    assert pipeline.submit(gen.pk).result == "needs-attention"
    gen.refresh_from_db()
    assert gen.status == Status.NEEDS_ATTENTION and gen.error_code == 502
    assert "Bad Gateway" in gen.error and gen.error_request_id.startswith("gw-")
    _assert_key_nowhere(gen, key, caplog)


@pytest.mark.parametrize("key", KEYS)
def test_a_failure_reason_that_quotes_the_key_is_stored_and_shown_without_it(
    db, hostile, settings, caplog, key
):
    settings.LUMA_API_KEY = key
    caplog.set_level(logging.DEBUG)
    hostile.mode = "accept-then-fail"
    gen = _new_job()
    assert pipeline.submit(gen.pk).result == "accepted"
    Generation.objects.filter(pk=gen.pk).update(next_poll_at=timezone.now() - timedelta(1))
    pipeline.poll_in_flight()
    gen.refresh_from_db()
    assert gen.status == Status.FAILED
    assert gen.error.startswith("The model refused the call made with ")
    assert gen.prompt.startswith("a calm sea (account ")
    _assert_key_nowhere(gen, key, caplog)


def test_a_key_at_the_cut_of_a_long_message_is_not_left_half_shown(db, hostile, settings):
    """Redacted first, cut to the column's length after: a cut key is no longer found."""
    settings.LUMA_API_KEY = OPAQUE_KEY  # no shape to find it by: only its being whole counts
    hostile.mode = "401-long"
    gen = _new_job()
    assert pipeline.submit(gen.pk).result == "held"
    gen.refresh_from_db()
    assert gen.error.startswith("Refused. xxx")
    assert OPAQUE_KEY[:12] not in gen.error  # the 13 characters a cut at 500 would leave
    held = AccountHold.objects.get()  # the hold keeps the service's words too, shown to all
    assert held.reason.startswith("Refused. xxx") and OPAQUE_KEY[:12] not in held.reason


def test_a_video_url_that_holds_the_key_is_never_kept(db, hostile, settings, caplog):
    """A URL cannot be redacted without breaking it, and it would be in every viewer's page:
    the answer counts as finished without a usable URL (polled again until the deadline)."""
    settings.LUMA_API_KEY = SK_KEY
    hostile.mode = "accept-then-complete"
    gen = _new_job()
    assert pipeline.submit(gen.pk).result == "accepted"
    Generation.objects.filter(pk=gen.pk).update(next_poll_at=timezone.now() - timedelta(1))
    pipeline.poll_in_flight()
    gen.refresh_from_db()
    assert gen.status == Status.IN_PROGRESS and gen.video_url == ""
    _assert_key_nowhere(gen, SK_KEY, caplog)


def test_a_download_error_that_quotes_the_key_is_stored_and_shown_without_it(
    db, hostile, settings, caplog
):
    """The copy's error comes from the service's side too (here a content type naming the key,
    lowercased on the way, as content types are): redacted in any letter case."""
    settings.LUMA_API_KEY = OPAQUE_KEY
    caplog.set_level(logging.DEBUG)
    hostile.mode = "accept-then-complete-at-own-file"
    gen = _new_job()
    assert pipeline.submit(gen.pk).result == "accepted"
    Generation.objects.filter(pk=gen.pk).update(next_poll_at=timezone.now() - timedelta(1))
    assert pipeline.poll_in_flight().to_copy == [gen.pk]
    assert pipeline.copy_assets(gen.pk) == "failed"
    gen.refresh_from_db()
    assert gen.asset_error.startswith("Unexpected content type 'video/x-")
    _assert_key_nowhere(gen, OPAQUE_KEY, caplog)


# --- the shapes of a credential, whoever's it is --------------------------------------------
@pytest.mark.parametrize(
    "text, secret",
    [
        ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF-123_xyz"),
        ("sent bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "eyJhbGciOiJIUzI1NiJ9"),
        ("Incorrect API key provided: sk-proj-AbCdEf0123456789", "sk-proj-AbCdEf0123456789"),
        ("key sk_live_51HxYzAbCdEf0123 is revoked", "sk_live_51HxYzAbCdEf0123"),
        ("token lw_Zk3n9Qm2Lr8Tv5Wx1Yb7Cd4Fg6Hj0Ks2", "lw_Zk3n9Qm2Lr8Tv5Wx1Yb7Cd4Fg6Hj0Ks2"),
        ('{"api_key": "a8F3kL9mQ2xR7tV1wZ5yB4"}', "a8F3kL9mQ2xR7tV1wZ5yB4"),
        ("access token=Q9w8E7r6T5y4U3i2O1p0Aa is not valid", "Q9w8E7r6T5y4U3i2O1p0Aa"),
        ("Authorization: 7hG2kP9xQ4mW8vN3bT6r", "7hG2kP9xQ4mW8vN3bT6r"),
    ],
)
def test_anything_shaped_like_a_credential_is_redacted(text, secret):
    from generations.redact import redact

    assert secret not in redact(text)
    assert "[redacted]" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "Insufficient credits: 0 left, 1 needed.",
        "aspect_ratio must be one of 16:9, 9:16, 1:1, 4:3, 3:4, 21:9, 9:21",
        "The token has expired; create a new one.",
        "request 3f2a9c1e-5b2d-4f60-9a7b-1c2d3e4f5a6b was rejected",
        "keyframe https://example.com/frames/start-0123456789abcdef.jpg could not be fetched",
        "The service answered 502 Bad Gateway",
    ],
)
def test_ordinary_service_messages_are_kept_as_they_are(text, settings):
    from generations.redact import redact

    settings.LUMA_API_KEY = SK_KEY
    assert redact(text) == text


# --- logs: the exception's text and traceback too -------------------------------------------
@pytest.mark.parametrize(
    "log_format, filtered",
    [
        pytest.param("plain", True, id="plain-as-configured"),
        pytest.param("json", True, id="json-as-configured"),
        # Each guard holds alone: the formatters without the filter (a handler an operator adds
        # with them), the filter with a formatter of someone else's (it cleans the record).
        pytest.param("plain", False, id="plain-formatter-alone"),
        pytest.param("json", False, id="json-formatter-alone"),
        pytest.param("bare", True, id="filter-alone"),
    ],
)
def test_an_exception_logged_with_its_traceback_shows_no_key(settings, log_format, filtered):
    """Formatters and filter built from settings.LOGGING, as the console handler has them."""
    settings.LUMA_API_KEY = SK_KEY
    configurator = DictConfigurator(json.loads(json.dumps(settings.LOGGING)))  # on a copy
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    if log_format != "bare":
        formatter = configurator.config["formatters"][log_format]
        handler.setFormatter(configurator.configure_formatter(formatter))
    if filtered:
        for name in configurator.config["handlers"]["console"]["filters"]:
            handler.addFilter(configurator.configure_filter(configurator.config["filters"][name]))
    log = logging.getLogger(f"key-leak-test.{log_format}.{filtered}")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ConnectionError(f"proxy said: Authorization: Bearer {SK_KEY} refused")
        except ConnectionError as exc:
            raise RuntimeError(f"the call with key {SK_KEY} failed") from exc
    except RuntimeError:
        log.exception("the upstream call failed")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert "the upstream call failed" in output and "Traceback" in output
    assert "RuntimeError" in output and "ConnectionError" in output  # still a useful traceback
    if log_format == "json":
        assert json.loads(output.strip().splitlines()[-1])["exception"]
    assert SK_KEY not in output
    assert SK_KEY[-16:] not in output
