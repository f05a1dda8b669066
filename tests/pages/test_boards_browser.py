"""Boards in Chromium, as a person uses them: make a board on /boards/, put a video on it from
its gallery card's Boards menu (by keyboard: focus stays on the pressed toggle, Escape closes
the menu back onto its button), open the board and find the video there, take it off again."""

from __future__ import annotations

import os

import pytest

from generations.models import Board
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000
SHOTS = os.environ.get("LUMAWEB_BOARD_SCREENSHOTS", "")


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/boards-{name}.png", full_page=True)


def test_make_a_board_fill_it_from_a_card_see_it_on_the_board_and_take_it_off(
    browser, live_server, transactional_db, settings
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    make_user("carol", password="carol-pass-123")
    carol = make_user("carol")
    gen = make_gen(user=carol, user_prompt="A paper boat at dusk on a still canal")
    make_gen(user=carol, user_prompt="Another video, not on the board")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server.url, "carol", "carol-pass-123")

    # Make a board on /boards/, shared with the team.
    page.click("nav >> text=Boards")
    page.wait_for_url(live_server.url + "/boards/")
    page.fill("#board-name", "Client picks")
    page.check("input[name=shared]")
    page.click("button:has-text('Make board')")
    board = None
    page.wait_for_url(lambda url: "/boards/" in url and url.rstrip("/").split("/")[-1].isdigit())
    board = Board.objects.get(name="Client picks")
    assert board.shared
    page.locator("h1", has_text="Client picks").wait_for()
    page.locator(".empty", has_text="No videos on this board yet").wait_for()
    shot(page, "board-empty")

    # The gallery: the card's Boards button opens its menu in place; by keyboard, the toggle.
    page.goto(live_server.url + "/")
    card = page.locator(f"#card-{gen.pk}")
    card.locator(".board-btn").click()
    toggle = page.locator(f"#board-toggle-{gen.pk}-{board.pk}")
    toggle.wait_for()
    assert card.locator(".board-btn").get_attribute("aria-expanded") == "true"
    shot(page, "gallery-menu-open")
    toggle.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"""() => {{
            const b = document.getElementById('board-toggle-{gen.pk}-{board.pk}');
            return b && b.getAttribute('aria-pressed') === 'true';
        }}"""
    )
    assert list(board.generations.all()) == [gen]
    page.wait_for_function(
        f"() => document.activeElement && document.activeElement.id === "
        f"'board-toggle-{gen.pk}-{board.pk}'"
    )  # focus stays on the toggle that was pressed
    page.locator(".toast", has_text="Added to “Client picks”.").wait_for()
    page.keyboard.press("Escape")
    page.wait_for_function(
        f"""() => {{
            const b = document.getElementById('board-btn-{gen.pk}');
            return b && b.getAttribute('aria-expanded') === 'false'
                && document.activeElement === b;
        }}"""
    )

    # The board page shows it (cover, count), and takes it off.
    page.goto(live_server.url + "/boards/")
    tile = page.locator(f"#board-tile-{board.pk}")
    assert "1 video" in tile.inner_text() and tile.locator(".badge-shared").count() == 1
    shot(page, "boards-list")
    tile.locator("a").click()
    page.wait_for_url(f"{live_server.url}/boards/{board.pk}/")
    page.locator(f"#card-{gen.pk}").wait_for()
    assert page.locator(".card").count() == 1
    assert page.locator("#board-count").inner_text() == "1 video"
    shot(page, "board-filled")
    page.locator(f"#card-{gen.pk} .board-remove button").click()
    page.locator(f"#card-{gen.pk}").wait_for(state="detached")
    page.locator("#board-count", has_text="0 videos").wait_for()
    assert not board.generations.exists()

    # Phone width: the board page and an open menu fit the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/generations/{gen.pk}/")
    page.locator(f"#board-btn-{gen.pk}").click()
    page.locator(f"#board-toggle-{gen.pk}-{board.pk}").wait_for()
    from tests.pages.test_accessibility import WIDEST

    wide = page.evaluate("document.scrollingElement.scrollWidth")
    assert wide <= 390, page.evaluate(WIDEST)
    shot(page, "detail-menu-phone")
    context.close()
    assert errors == []


def test_a_board_card_still_copying_turns_into_a_download_and_extend_opens_the_videos_page(
    browser, live_server, transactional_db, settings
):
    """The board page's one watcher: a video whose copy is still on its way shows "Copying…"
    and, once the copy is there, a Download link, with no reload, its Remove button kept, and
    the watcher idle again. Extend on a board card opens the video's page at its extend form."""
    from django.utils import timezone

    from generations import boards
    from generations.models import Generation

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    dana = make_user("dana", password="dana-pass-123")
    board = boards.create_board(dana, "Harbour picks", shared=True)
    copying = make_gen(
        user=dana, user_prompt="Lanterns drifting out to sea", assets_next_at=timezone.now()
    )
    done = make_gen(user=dana, user_prompt="A lighthouse at dawn")
    boards.add(board, done, dana)
    boards.add(board, copying, dana)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "oobError" in msg.text else None)
    log_in(page, live_server.url, "dana", "dana-pass-123")
    page.goto(f"{live_server.url}/boards/{board.pk}/")
    card = page.locator(f"#card-{copying.pk}")
    card.locator(".icon-btn.is-disabled[title='Copying the video…']").wait_for()
    assert page.locator("#grid-watch[hx-get]").count() == 1
    shot(page, "board-copying")

    Generation.objects.filter(pk=copying.pk).update(video_file="videos/lanterns.mp4")
    card.locator("a[download]").wait_for()  # the watcher's answer: no reload
    assert card.locator(".board-remove button").count() == 1
    page.wait_for_function("() => !document.querySelector('#grid-watch[hx-get]')")  # stopped
    page.screenshot(path="/tmp/fixgallery-board.png", full_page=True)

    extend = page.locator(f"#card-{done.pk} .extend-btn")
    assert extend.get_attribute("hx-get") is None
    extend.click()
    page.wait_for_url(f"{live_server.url}/generations/{done.pk}/#extend")
    context.close()
    assert errors == []
