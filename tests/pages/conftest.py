"""Fixtures for the studio pages: a logged-in client, rows in every status, htmx headers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from itertools import count
from typing import TYPE_CHECKING

import pytest
from django.test import Client
from django.utils import timezone

from generations.models import Generation, Status, StatusEvent, Team
from tests.chromium import launch
from tests.factories import make_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser

_serial = count()


def htmx(target: str | None = None, **extra) -> dict:
    """The headers htmx sends (Django test Client spelling)."""
    headers = {"HTTP_HX_REQUEST": "true", **extra}
    if target:
        headers["HTTP_HX_TARGET"] = target
    return headers


def make_gen(status: str = Status.COMPLETED, user=None, **fields) -> Generation:
    """A row as the pipeline leaves it in ``status`` (no upstream involved)."""
    now = timezone.now()
    n = next(_serial)
    defaults: dict = {
        "user_prompt": f"a test prompt {n}",
        "aspect_ratio": "16:9",
        "status": status,
        "status_changed_at": now,
        "created_by": user,
    }
    if status != Status.QUEUED:
        defaults.update(remote_id=f"remote-{n}-{now.timestamp()}", posts_sent=1, submitted_at=now)
    if status == Status.IN_PROGRESS:
        defaults.update(
            state="dreaming", estimate_wait_seconds=30, last_polled_at=now, next_poll_at=now
        )
    if status == Status.COMPLETED:
        defaults.update(
            state="completed",
            completed_at=now - timedelta(seconds=n),
            video_url=f"http://127.0.0.1:9/cdn/{n}.mp4",
            thumbnail_url=f"http://127.0.0.1:9/cdn/{n}.jpg",
            width=640,
            height=360,
        )
    if status in (Status.FAILED, Status.NEEDS_ATTENTION):
        defaults.update(error="The service said no", error_code=400, error_request_id="req-123")
    if status == Status.FAILED:
        # As the poller leaves a job the service failed (refunded): a Retry cannot pay twice.
        defaults.update(state="failed")
    defaults.update(fields)
    gen = Generation.objects.create(**defaults)
    StatusEvent.objects.create(generation=gen, status=gen.status, note="made by a test")
    return gen


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium under Playwright, one per test module that drives pages."""
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # itself (to wait for rows) are plain synchronous code. Allowed for this module only: the
    # variable is restored when the module's tests are done.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as pw:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def team_row(db) -> None:
    """The team's row, as migration 0005 leaves it: a transactional test that ran before in this
    process emptied every table, and ``Team.current()`` would then pay an INSERT on the first
    page that reads it, counted by whichever query-count test came first."""
    Team.current()


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def other(db):
    return make_user("bob")


@pytest.fixture
def client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def log_in(page, base_url: str, username: str, password: str) -> None:
    """Sign in through the login form, as a person does, and wait for the gallery."""
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
