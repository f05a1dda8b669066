"""The gallery's viewer in Chromium, with real, playable videos (drawn by the simulator's
renderer): opened from a card by keyboard, mouse and touch; its own URL (the detail page's),
previous and next through the gallery's cards (loading the next page at the last loaded one),
closed by Escape, Close or Back, which give back the gallery's URL and the focus to the card.
Hover and focus only preview a card's video; a click or a tap always opens the viewer."""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from generations import queries
from generations.models import Board, BoardItem, Generation
from simulator.media import Scene, render
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
PROMPTS = (
    "A paper boat at dusk on a quiet canal",
    "A lighthouse beam sweeping through fog",
    "Fireflies rising over a summer meadow",
)
PHONE = {"width": 390, "height": 844}

# The video in the open viewer is really playing: time runs and frames are decoded.
VIEWER_PLAYS = """() => {
    const v = document.querySelector('dialog.viewer[open] video');
    return !!v && !v.paused && v.currentTime > 0 && v.readyState >= 2;
}"""
# What has the focus: the id of its card ('' when it is not in a card).
FOCUSED_CARD = "() => { const c = document.activeElement.closest('.card'); return c ? c.id : ''; }"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A MEDIA_ROOT with three real H.264 clips and their thumbnails, drawn once per module."""
    root = tmp_path_factory.mktemp("viewer-media")
    for folder in ("videos", "thumbnails"):
        (root / folder).mkdir()
    for n, prompt in enumerate(PROMPTS):
        scene = Scene(prompt=prompt, seconds=2.0, fps=12)
        render(scene, root / "videos" / f"clip{n}.mp4", root / "thumbnails" / f"clip{n}.jpg")
    return root


@pytest.fixture
def studio(transactional_db, settings, clips):
    """Dana, three finished videos (newest first: PROMPTS' order), and a square one that the
    gallery's filter (16:9) leaves out."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(clips)
    dana = make_user("dana", password="dana-pass-123")
    gens = [
        make_gen(
            user=dana,
            user_prompt=prompt,
            video_file=f"videos/clip{n}.mp4",
            thumbnail_file=f"thumbnails/clip{n}.jpg",
        )
        for n, prompt in enumerate(PROMPTS)
    ]
    make_gen(
        user=dana,
        aspect_ratio="1:1",
        user_prompt="A square one, filtered out",
        video_file="videos/clip0.mp4",
        thumbnail_file="thumbnails/clip0.jpg",
    )
    return gens


def start(browser, live_server, **context_args):
    context = browser.new_context(**context_args)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    log_in(page, live_server.url, "dana", "dana-pass-123")
    return context, page, errors


def without_deliberate_aborts(errors: list[str]) -> list[str]:
    """``errors`` less the two lines htmx logs when a request is aborted on purpose: moving to
    another video aborts what the one it replaces still asks (static/js/viewer.js, ``show``),
    and a poll of it may be on its way just then (seen under load: htmx logs its
    ``htmx:sendAbort`` and the failed ``htmx:afterRequest`` as errors)."""
    aborts = sum(text.startswith("htmx:sendAbort") for text in errors)
    kept = []
    for text in errors:
        if text.startswith("htmx:sendAbort"):
            continue
        if aborts and text.startswith("htmx:afterRequest"):
            aborts -= 1
            continue
        kept.append(text)
    return kept


def detail(gen) -> str:
    return f"/generations/{gen.pk}/"


def shows(page, base: str, gen) -> None:
    """The viewer is open on ``gen``: its URL, its heading, its video."""
    page.wait_for_url(base + detail(gen))
    heading = page.locator("dialog.viewer[open] h1.detail-prompt")
    try:
        heading.filter(has_text=gen.user_prompt).wait_for()
    except Exception:
        state = page.evaluate(
            "() => { const d = document.querySelector('dialog.viewer'); return d ? {open: d.open,"
            " html: d.querySelector('#viewer-body').innerHTML.slice(0, 300)} : 'no dialog'; }"
        )
        raise AssertionError(f"the viewer does not show {gen.user_prompt!r}: {state}") from None
    assert page.locator("dialog.viewer[open] video").get_attribute("src").endswith(".mp4")


def focus_returns_to(page, gen) -> None:
    try:
        page.wait_for_function(
            "id => { const c = document.activeElement.closest('.card');"
            " return !!c && c.id === id; }",
            arg=f"card-{gen.pk}",
            timeout=5_000,
        )
    except Exception:
        raise AssertionError(f"the focus is on {page.evaluate(FOCUSED_CARD)!r}") from None


def test_the_viewer_by_keyboard_arrows_escape_and_back(browser, live_server, studio):
    first, second, third = studio
    base = live_server.url
    context, page, errors = start(browser, live_server, viewport={"width": 1280, "height": 860})
    page.goto(base + "/")
    page.select_option("form.filters select[name=ar]", "16:9")  # htmx puts it in the address
    page.wait_for_url(re.compile(r"ar=16%3A9"))
    gallery = page.url
    page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 3")
    # Gone if the page is ever reloaded, or its grid drawn again (htmx's history restore).
    page.evaluate("() => { document.getElementById('grid').dataset.kept = 'yes'; }")
    kept = "() => document.getElementById('grid').dataset.kept === 'yes'"

    # Tab from the search field to the first card (its picture's link is out of the tab order).
    page.locator("input[name=q]").focus()
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED_CARD) == f"card-{first.pk}"
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=first.user_prompt)
    dialog.wait_for()
    shows(page, base, first)
    page.wait_for_function(VIEWER_PLAYS)  # autoplays (muted): no reduced motion asked for
    assert page.evaluate("() => document.querySelector('dialog.viewer video').muted")
    assert page.evaluate("() => document.activeElement.closest('dialog.viewer') !== null")

    # In a text field the arrows move the caret, and Escape does not throw away what was typed.
    prompt = page.locator("dialog.viewer textarea[name=user_prompt]")
    prompt.focus()
    page.keyboard.type("The boat drifts")
    page.keyboard.press("ArrowRight")  # (a next video there is)
    page.keyboard.press("Escape")
    assert page.url == base + detail(first) and dialog.is_visible()
    assert prompt.input_value() == "The boat drifts"
    page.get_by_role("button", name="Close").focus()

    page.keyboard.press("ArrowRight")
    shows(page, base, second)
    page.wait_for_function(VIEWER_PLAYS)
    page.get_by_role("dialog", name=second.user_prompt).wait_for()
    page.keyboard.press("ArrowLeft")
    shows(page, base, first)

    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    page.wait_for_url(gallery)
    focus_returns_to(page, first)
    assert page.locator("form.filters select[name=ar]").input_value() == "16:9"

    # Back closes it as well (and forward opens it again).
    page.keyboard.press("Enter")
    shows(page, base, first)
    page.go_back()
    page.locator("dialog.viewer").wait_for(state="hidden")
    page.wait_for_url(gallery)
    focus_returns_to(page, first)
    assert page.evaluate(kept)
    page.go_forward()
    shows(page, base, first)

    # Next and Previous buttons; at the last card there is nothing further (the square video is
    # filtered out), and Next says so.
    page.get_by_role("button", name="Next").click()
    shows(page, base, second)
    page.get_by_role("button", name="Next").click()
    shows(page, base, third)
    page.keyboard.press("ArrowRight")
    assert page.get_by_role("button", name="Next").get_attribute("aria-disabled") == "true"
    page.get_by_role("button", name="Previous").focus()
    page.keyboard.press("ArrowLeft")
    shows(page, base, second)
    page.get_by_role("button", name="Close").click()
    page.wait_for_url(gallery)
    focus_returns_to(page, second)  # the card last shown
    assert page.evaluate(kept)  # all of it without a reload, the grid as it was

    # Another filter, then Back: htmx puts its stored copy of the page back; the viewer works
    # on the cards of that copy.
    page.select_option("form.filters select[name=ar]", "")
    page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 4")
    page.go_back()
    page.wait_for_url(gallery)
    page.wait_for_function("() => document.querySelectorAll('#grid .card').length === 3")
    page.click(f"#card-{third.pk} .card-prompt a")
    shows(page, base, third)
    page.keyboard.press("ArrowLeft")
    shows(page, base, second)
    page.keyboard.press("Escape")
    page.wait_for_url(gallery)
    assert page.locator("dialog.viewer").count() == 0  # in the page only while open

    # The viewer's URL is the detail page's: loaded as a page, it is the page.
    page.keyboard.press("Enter")
    shows(page, base, second)
    page.reload()
    page.locator("nav.crumbs").wait_for()
    assert page.locator("dialog.viewer").count() == 0
    page.screenshot(path="/tmp/viewer-detail-reloaded.png", caret="initial")
    context.close()
    assert errors == [], errors


# Which card videos are playing (their previews).
PREVIEWING = "() => [...document.querySelectorAll('.card video')].filter(v => !v.paused).length"


def test_hover_and_focus_only_preview_and_a_click_or_tap_always_opens_the_viewer(
    browser, live_server, studio, monkeypatch
):
    first, second, third = studio
    base = live_server.url
    gallery = base + "/?ar=16%3A9"

    # --- a mouse: hovering previews, a click while the preview starts opens the viewer ---------
    context, page, errors = start(browser, live_server, viewport={"width": 1280, "height": 860})
    page.goto(gallery)
    page.hover(f"#card-{first.pk} .card-media")
    page.wait_for_function(
        "id => { const v = document.querySelector(id + ' video');"
        " return !v.paused && v.currentTime > 0; }",
        arg=f"#card-{first.pk}",
    )
    assert page.locator(f"#card-{first.pk}.is-playing").count() == 1
    assert page.locator("dialog.viewer[open]").count() == 0  # a hover never opens it
    # The pointer moves onto the second card (its preview starts) and clicks at once: the click
    # lands while the preview toggles, and opens the viewer (it used to stop the preview).
    page.click(f"#card-{second.pk} .card-media")
    shows(page, base, second)
    page.wait_for_function(VIEWER_PLAYS)
    assert page.evaluate(PREVIEWING) == 0  # no preview plays behind the viewer
    page.mouse.click(6, 430)  # beside it, on the backdrop: closes it
    page.wait_for_url(gallery)
    focus_returns_to(page, second)
    # The keyboard's focus previews a card too (back to the first card's last button), and opens
    # nothing; the focus given back by the mouse's close did not (no hover, no key).
    assert page.evaluate(PREVIEWING) == 0
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED_CARD) == f"card-{first.pk}"
    page.wait_for_function(
        "id => !document.querySelector(id + ' video').paused", arg=f"#card-{first.pk}"
    )
    assert page.locator("dialog.viewer[open]").count() == 0
    context.close()
    assert errors == [], errors

    # --- a phone: the first tap opens the viewer (no "first tap previews"); reduced motion: no
    # autoplay; the next page of cards is loaded when Next is pressed at the last loaded card.
    monkeypatch.setattr(queries, "gallery_page", functools.partial(queries.gallery_page, size=2))
    context, page, errors = start(
        browser, live_server, viewport=PHONE, is_mobile=True, has_touch=True
    )
    page.emulate_media(reduced_motion="reduce")
    page.goto(gallery)
    assert page.locator("#grid .card").count() == 2 and page.locator("#more").count() == 1
    page.tap(f"#card-{first.pk} .card-media")
    shows(page, base, first)
    video = page.locator("dialog.viewer video")
    assert video.evaluate("v => v.paused && !v.autoplay")  # the person asked for less motion
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert page.evaluate(
        "() => { const d = document.querySelector('dialog.viewer');"
        " return d.scrollWidth <= d.clientWidth && d.getBoundingClientRect().right <= 390; }"
    )
    page.screenshot(path="/tmp/viewer-phone.png", caret="initial")  # no injected style
    page.get_by_role("button", name="Next").tap()
    shows(page, base, second)
    assert page.locator("#more").count() == 1  # the second page is not loaded yet
    page.get_by_role("button", name="Next").tap()
    shows(page, base, third)  # loaded, behind the viewer, and shown
    assert page.locator("#grid .card").count() == 3
    assert page.get_by_role("button", name="Next").get_attribute("aria-disabled") == "true"
    page.get_by_role("button", name="Close").tap()
    page.wait_for_url(gallery)
    assert page.locator("dialog.viewer[open]").count() == 0
    # The focus is back on the card last shown, and a focus given back after a tap is no hover:
    # nothing starts playing by itself.
    focus_returns_to(page, third)
    assert page.evaluate(PREVIEWING) == 0
    context.close()
    assert errors == [], errors


# What has the focus, said plainly (for a failure's message).
FOCUSED = """() => { const a = document.activeElement;
    return a.tagName + '#' + a.id + (a.closest('dialog.viewer') ? ' (in the viewer)' : ''); }"""


def focus_is(page, selector: str) -> None:
    """The focus is (or comes back, after htmx's swap settles) on ``selector``."""
    try:
        page.wait_for_function(
            "s => !!document.activeElement && document.activeElement.matches(s)",
            arg=selector,
            timeout=5_000,
        )
    except Exception:
        raise AssertionError(f"the focus is on {page.evaluate(FOCUSED)}, not {selector}") from None


def test_the_viewers_boards_menu_and_like_work_in_the_viewer_not_on_the_card_behind(
    browser, live_server, studio
):
    """The viewer shows the detail page's Boards and Like while the same video's card stays in
    the gallery behind it: each acts on the viewer's own copy (their ids are the viewer's)."""
    first = studio[0]
    board = Board.objects.create(name="Client picks", shared=True, created_by=first.created_by)
    base = live_server.url
    context, page, errors = start(browser, live_server, viewport={"width": 1280, "height": 860})
    page.goto(base + "/")
    # The card's own Extend form is open behind the viewer (the viewer has one too).
    page.click(f"#card-{first.pk} .extend-btn")
    page.locator(f"#extend-slot-{first.pk} textarea").wait_for()
    page.click(f"#card-{first.pk} .card-prompt a")
    shows(page, base, first)
    viewer = "dialog.viewer[open]"

    # Boards: the menu opens in the viewer, the card behind stays closed.
    page.locator(f"{viewer} .board-btn").click()
    page.locator(f"{viewer} .board-menu").wait_for()
    assert page.locator(f"#card-{first.pk} .board-menu").count() == 0
    assert page.locator(f"#card-{first.pk} .board-btn").get_attribute("aria-expanded") == "false"
    # A toggle, by keyboard: the video goes on the board, the focus stays on the toggle.
    toggle = f"{viewer} .board-toggle"
    page.locator(toggle).filter(has_text="Client picks").focus()
    page.keyboard.press("Enter")
    page.locator(f"{toggle}[aria-pressed=true]").wait_for()
    assert BoardItem.objects.filter(board=board, generation=first).exists()
    focus_is(page, f"{toggle}[aria-pressed=true]")
    assert page.locator(f"#card-{first.pk} .board-menu").count() == 0

    # Like by keyboard: the viewer's Like is pressed, and keeps the focus (twice).
    like = f"{viewer} button.like"
    page.wait_for_function(SETTLED)
    page.locator(like).focus()
    page.keyboard.press("Enter")
    page.locator(f"{like}[aria-pressed=true]").wait_for()
    focus_is(page, f"{like}[aria-pressed=true]")
    # htmx wires up swapped-in content as the swap settles: a key pressed before that reaches the
    # bare form, which posts without htmx (the no-JavaScript way) and leaves the gallery.
    page.wait_for_function(SETTLED)
    page.keyboard.press("Space")
    page.locator(f"{like}[aria-pressed=false]").wait_for()
    focus_is(page, f"{like}[aria-pressed=false]")
    # No id in the page is there twice (the viewer's copies are the viewer's own).
    assert page.evaluate(DUPLICATE_IDS) == []
    page.screenshot(path="/tmp/fixviewer-boards.png", caret="initial")
    context.close()
    assert errors == [], errors


SETTLED = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"

DUPLICATE_IDS = """() => { const seen = new Set(), twice = [];
    document.querySelectorAll('[id]').forEach(e => {
        if (seen.has(e.id)) twice.push(e.id); else seen.add(e.id); });
    return twice; }"""


def test_the_viewer_goes_on_after_the_gallerys_poll_replaced_the_card_it_shows(
    browser, live_server, studio
):
    """A card whose copy is still running is replaced by the grid's watcher when it finishes;
    the viewer open on it still knows where it is: Next moves on, closing focuses the card."""
    first, second, _ = studio
    base = live_server.url
    # Not copied yet: shown from the "upstream" (here the same clips, from this server: the
    # page's media policy lets nothing else play).
    for n, gen in enumerate((first, second)):
        Generation.objects.filter(pk=gen.pk).update(
            video_file="",
            video_url=f"{base}/media/videos/clip{n}.mp4",
            assets_next_at=timezone.now() + timedelta(hours=1),
        )
    context, page, errors = start(browser, live_server, viewport={"width": 1280, "height": 860})
    page.goto(base + "/?ar=16%3A9")
    page.click(f"#card-{first.pk} .card-prompt a")
    shows(page, base, first)

    def copy_finishes(gen, n: int) -> None:
        """The copy ends; wait until the watcher has swapped in the card's new element."""
        card = f"card-{gen.pk}"
        page.evaluate("id => { document.getElementById(id).dataset.old = 'yes'; }", card)
        Generation.objects.filter(pk=gen.pk).update(
            video_file=f"videos/clip{n}.mp4", assets_next_at=None
        )
        page.wait_for_function(
            "id => { const c = document.getElementById(id); return !!c && !c.dataset.old; }",
            arg=card,
        )

    copy_finishes(first, 0)
    page.keyboard.press("ArrowRight")
    shows(page, base, second)
    copy_finishes(second, 1)
    page.keyboard.press("ArrowLeft")  # from the new card too
    shows(page, base, first)
    page.keyboard.press("ArrowRight")
    shows(page, base, second)
    page.keyboard.press("Escape")
    page.locator("dialog.viewer").wait_for(state="detached")
    focus_returns_to(page, second)  # the card as it is now
    found = without_deliberate_aborts(errors)  # before closing: that aborts requests too
    context.close()
    assert found == [], found
