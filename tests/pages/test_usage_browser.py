"""The Usage page in Chromium: the month picker swaps the month in place (htmx) and puts it in
the address, and the CSV link downloads that month's file."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from generations import money
from generations.models import Status
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.browser


def test_picking_a_month_shows_it_in_place_and_its_csv_downloads(
    browser, live_server, transactional_db, settings
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    carol = make_user("carol", password="carol-pass-123")
    start = money.month_window()[0]
    last = money.month_window(start - timedelta(days=1))[0]
    make_gen(Status.COMPLETED, user=carol, billed_at=start + timedelta(days=1))
    for day in (3, 3, 9):
        make_gen(Status.COMPLETED, user=carol, billed_at=last + timedelta(days=day))
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server.url, "carol", "carol-pass-123")

    page.click("nav >> text=Usage")
    page.wait_for_url(live_server.url + "/usage/")
    page.locator("svg.chart").wait_for()
    page.evaluate("() => { window.__samePage = true; }")  # gone if the page reloads
    page.select_option("#usage-month", f"{last:%Y-%m}")
    page.locator("#usage-body h2", has_text=f"{last:%B %Y}").wait_for()
    assert page.evaluate("() => window.__samePage === true")  # swapped in place by htmx
    assert page.url.endswith(f"/usage/?month={last:%Y-%m}")
    assert "1,500,000" in page.locator(".usage-stats").inner_text()

    with page.expect_download() as download_info:
        page.click("text=Download CSV")
    download = download_info.value
    assert download.suggested_filename == f"lumaweb-usage-{last:%Y-%m}.csv"
    rows = list(csv.DictReader(io.StringIO(read_text(download.path()))))
    assert [(row["user"], row["spent"]) for row in rows] == [
        ("carol", "1500000"),
        ("(team)", "1500000"),
    ]
    context.close()
    assert errors == []


def read_text(path) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()
