"""The live gallery in Chromium, against a live server, a real worker and beat and the simulator:
a video made through the API (a personal token, as a script would) appears at the top of an open
gallery without a reload, once, even when a stale poll names it again; then sorted by most liked
the grid stays put and a notice counts what is new ("1 new video · Show"); a search of two words
in the reverse order finds its video; Back puts the order and the search back in the controls.

The gallery asks every ``views.LIVE_EVERY`` seconds (10); here every 2 s, to keep the test short
(tests/pages/test_grid_watch.py checks the page's own pace).
"""

from __future__ import annotations

import re

import pytest
import requests
from django.utils import timezone

from generations.models import ApiToken
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = [pytest.mark.browser, pytest.mark.pipeline]

TIMEOUT_MS = 60_000


def wait_until(page, script: str, seconds: float = 60) -> None:
    """Wait for a script to be true (wait_for_function would evaluate a string: the pages'
    Content-Security-Policy refuses that)."""
    for _ in range(int(seconds * 10)):
        if page.evaluate(script):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"never true: {script}")


def grid(page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('#grid .card')].map(c => c.id)")


def test_new_videos_appear_live_then_orders_notice_and_search(
    browser, live_server, pipeline, settings, monkeypatch
):
    monkeypatch.setattr("generations.views.LIVE_EVERY", 2)
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    dana = make_user("dana", password="dana-pass-123")
    bob, cleo = make_user("bob"), make_user("cleo")
    lantern = make_gen(user=dana, user_prompt="A paper lantern over a still lake")
    lantern.liked_by.add(bob, cleo)
    fox = make_gen(user=bob, user_prompt="A red fox running through deep snow")
    fox.liked_by.add(dana)
    make_gen(user=dana, user_prompt="Snow on the roof of a mountain hut")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server.url, "dana", "dana-pass-123")
    page.evaluate("window.__noReload = true")  # gone if the page is ever loaded again
    before = grid(page)
    seen = page.evaluate("document.querySelector('#grid-live input[name=seen]').value")

    # --- a video made through the API, by a script, finishes: at the top, no reload ---------------
    _, key = ApiToken.issue(bob, "live gallery test")
    made = requests.post(
        live_server.url + "/api/v1/generations",
        json={"user_prompt": "A heron lifting off a misty river", "aspect_ratio": "16:9"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    heron = f"card-{made.json()['id']}"
    wait_until(page, f"document.querySelector('#grid .card').id === '{heron}'", 90)
    assert page.evaluate("window.__noReload") is True
    assert grid(page) == [heron, *before]
    assert "1 new video at the top" in page.text_content("#gallery-news")
    # The card keeps changing until its video is copied; the same poll brings that too.
    page.locator(f"#{heron} a[download]").wait_for()
    # A stale poll (sent with the state from before) names the heron again: shown once.
    page.evaluate(
        """url => htmx.ajax('GET', url, {target: '#grid-watch', swap: 'outerHTML'})""",
        f"/generations/cards/?live=top&seen={seen}",
    )
    wait_until(page, "!!document.querySelector('#grid-watch[hx-get]')")
    assert grid(page) == [heron, *before]
    page.screenshot(path="/tmp/gallery-live-new-card.png")

    # --- most liked: the order, and the grid left alone when something new finishes ------------
    page.select_option("select[name=sort]", "likes")
    page.wait_for_url(re.compile(r"sort=likes"))
    wait_until(page, f"document.querySelector('#grid .card').id === 'card-{lantern.pk}'")
    by_likes = grid(page)
    assert by_likes[:2] == [f"card-{lantern.pk}", f"card-{fox.pk}"]
    kite = make_gen(user=bob, user_prompt="A kite over the dunes", completed_at=timezone.now())
    page.locator("#gallery-news .news-bar").wait_for()
    assert re.sub(r"\s+", " ", page.text_content("#gallery-news .news-bar")).strip() == (
        "1 new video · Show the newest videos"
    )
    assert grid(page) == by_likes  # nothing moved, nothing slotted in
    page.screenshot(path="/tmp/gallery-live-notice.png")
    page.click("#gallery-news a")  # Show: newest first, from the top
    page.wait_for_url(live_server.url + "/")
    assert grid(page)[:2] == [f"card-{kite.pk}", heron]
    assert page.input_value("select[name=sort]") == ""

    # --- search: two words in the other order; Back restores the controls ------------------------
    page.select_option("select[name=sort]", "likes")
    page.wait_for_url(re.compile(r"sort=likes"))
    page.fill("input[name=q]", "snow fox")
    page.wait_for_url(re.compile(r"q=snow"))
    wait_until(page, "document.querySelectorAll('#grid .card').length === 1")
    assert grid(page) == [f"card-{fox.pk}"]
    page.screenshot(path="/tmp/gallery-search-sorted.png")
    page.go_back()
    page.wait_for_url(re.compile(r"sort=likes(&q=)?$"))
    wait_until(page, "document.querySelectorAll('#grid .card').length === 5")
    assert page.input_value("select[name=sort]") == "likes"
    assert page.input_value("input[name=q]") == ""
    page.go_back()
    page.wait_for_url(live_server.url + "/")
    wait_until(page, "document.querySelector('select[name=sort]').value === ''")
    context.close()
    assert errors == [], errors
