"""The page bugs seen in the browser (issue 10, point 9), each in headless Chromium against a
live server (no worker needed: the rows are made as the pipeline leaves them).

Keyboard: Like keeps the focus, Escape closes an inline Extend form (focus back on its opener),
a gallery video previews when its card takes the focus. Forms: an error in a closed section
opens it and takes the focus; a long prompt is counted, never cut. History: Back to a filtered
gallery shows its filters in the controls. Layout: a page is never wider than a 390 px phone
(the accessibility test checks that on every state; here the detail page of a long chain).
"""

from __future__ import annotations

import re

import pytest

from generations.forms import MAX_PROMPT
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000

# Records every play() of a <video> (the test rows have no real video to play).
RECORD_PLAYS = """
window.__plays = [];
HTMLMediaElement.prototype.play = function () {
    window.__plays.push(this.closest('.card') ? this.closest('.card').id : 'page');
    return Promise.resolve();
};
HTMLMediaElement.prototype.pause = function () {};
"""


@pytest.fixture
def dana(transactional_db):
    return make_user("dana", password="dana-pass-123")


def open_page(browser, live_server, settings, **context_args):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    args = {"viewport": {"width": 1280, "height": 860}, **context_args}
    context = browser.new_context(**args)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PLAYS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server.url, "dana", "dana-pass-123")
    return context, page, errors


@pytest.fixture
def page(browser, live_server, settings, dana):
    context, page, errors = open_page(browser, live_server, settings)
    yield page
    context.close()
    assert errors == [], errors


def wait_until(page, script: str) -> None:
    """Wait for a script to be true (wait_for_function would evaluate a string: the pages'
    Content-Security-Policy refuses that)."""
    for _ in range(200):
        if page.evaluate(script):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never true: {script}")


def focused(page) -> str:
    """What has the focus: tag, id and classes (``body`` when the focus was dropped)."""
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')"
        " + [...e.classList].map(c => '.' + c).join(''); }"
    )


def test_like_by_keyboard_keeps_the_focus_on_the_like_button(page, live_server, dana):
    gen = make_gen(user=dana, user_prompt="A lighthouse in fog")
    page.goto(live_server.url + "/")
    like = page.locator(f"#card-{gen.pk} button.like")
    like.focus()

    def focus_comes_back_to(selector: str) -> None:
        # htmx puts the focus back after the swap settles, a moment after the new button is
        # in the page: wait for it (a fixed check right after the swap raced it).
        try:
            page.wait_for_function(
                "s => !!document.activeElement && document.activeElement.matches(s)",
                arg=selector,
                timeout=5_000,
            )
        except Exception:
            raise AssertionError(f"focus is on {focused(page)}, not {selector}") from None

    page.keyboard.press("Enter")
    page.locator(f"#card-{gen.pk} button.like[aria-pressed=true]").wait_for()
    focus_comes_back_to(f"#card-{gen.pk} button.like")
    page.keyboard.press("Space")  # and once more: still there
    page.locator(f"#card-{gen.pk} button.like[aria-pressed=false]").wait_for()
    focus_comes_back_to(f"#card-{gen.pk} button.like")

    page.goto(live_server.url + f"/generations/{gen.pk}/")  # the detail page's Like too
    page.locator("#live button.like").focus()
    page.keyboard.press("Enter")
    page.locator("#live button.like[aria-pressed=true]").wait_for()
    focus_comes_back_to("#live button.like")


def test_escape_closes_the_inline_extend_form_and_focus_returns_to_its_opener(
    page, live_server, dana
):
    gen = make_gen(user=dana, user_prompt="A lighthouse in fog")
    page.goto(live_server.url + "/")
    opener = page.locator(f"#card-{gen.pk} .extend-btn")
    opener.focus()
    page.keyboard.press("Enter")
    prompt = page.locator(f"#extend-slot-{gen.pk} textarea[name=user_prompt]")
    prompt.wait_for()
    assert "textarea" in focused(page)
    page.keyboard.press("Escape")
    page.locator(f"#extend-slot-{gen.pk} form").wait_for(state="detached")
    assert "extend-btn" in focused(page)
    # Cancel does the same.
    page.keyboard.press("Enter")
    prompt.wait_for()
    page.click(f"#extend-slot-{gen.pk} [data-close-slot]")
    page.locator(f"#extend-slot-{gen.pk} form").wait_for(state="detached")
    assert "extend-btn" in focused(page)


def test_a_gallery_video_previews_when_its_card_takes_the_keyboard_focus(page, live_server, dana):
    gen = make_gen(user=dana, user_prompt="A lighthouse in fog", video_file="videos/x.mp4")
    page.goto(live_server.url + "/")
    page.locator(f"#card-{gen.pk} .card-prompt a").focus()
    wait_until(page, "window.__plays.length > 0")
    assert page.evaluate("window.__plays") == [f"card-{gen.pk}"]
    assert "is-playing" in (page.get_attribute(f"#card-{gen.pk}", "class") or "")
    page.locator("input[name=q]").focus()  # focus leaves the card: the preview stops
    wait_until(page, f"!document.getElementById('card-{gen.pk}').classList.contains('is-playing')")


def test_an_end_keyframe_error_opens_its_section_and_takes_the_focus(page, live_server, dana):
    gen = make_gen(user=dana, user_prompt="A lighthouse in fog")
    page.goto(live_server.url + f"/generations/{gen.pk}/")
    page.fill("#extend textarea[name=user_prompt]", "The fog lifts")
    page.click("#extend details.more summary")
    page.fill("#extend input[name=image_end_url]", "ftp://example.com/end.jpg")
    page.click("#extend button[type=submit]")
    page.locator("#extend .has-error").wait_for()
    assert page.evaluate("document.querySelector('#extend details.more').open")
    assert focused(page) == "input#id_image_end_url"
    assert "End keyframe URL" in page.text_content("#toasts")  # the toast names the field

    # An error in the prompt (outside the section) takes the focus too, the section stays shut.
    page.goto(live_server.url + f"/generations/{gen.pk}/")
    page.fill("#extend textarea[name=user_prompt]", "   ")
    page.click("#extend button[type=submit]")
    page.locator("#extend .has-error").wait_for()
    assert focused(page) == "textarea#id_user_prompt"
    assert not page.evaluate("document.querySelector('#extend details.more').open")


def test_a_long_prompt_is_counted_and_never_cut(page, live_server, dana):
    page.goto(live_server.url + "/generations/new/")
    prompt = page.locator("textarea[name=user_prompt]")
    counter = page.locator(".char-count")
    prompt.fill("a calm sea")
    assert counter.text_content().strip() == f"10 / {MAX_PROMPT:,}"
    assert counter.get_attribute("aria-live") is None  # far from the limit: not read out
    near = "x" * (MAX_PROMPT - 50)
    prompt.fill(near)
    assert counter.get_attribute("aria-live") == "polite"
    assert "50 left" in counter.text_content()
    pasted = "y" * (MAX_PROMPT + 120)
    prompt.fill(pasted)
    assert prompt.input_value() == pasted  # nothing cut
    assert "120 too many" in counter.text_content()
    assert prompt.get_attribute("aria-invalid") == "true"
    page.click("label.ratio:has(input[value='16:9'])")
    page.click("button:has-text('Generate')")
    page.locator(".has-error").first.wait_for()
    # The server says so too, and sends the whole text back to be shortened.
    assert f"at most {MAX_PROMPT} characters (it has {MAX_PROMPT + 120})" in page.text_content(
        ".create"
    )
    assert prompt.input_value() == pasted


def test_back_to_a_filtered_gallery_shows_its_filters(page, live_server, dana, other):
    lantern = make_gen(user=dana, user_prompt="A lantern over a lake")
    make_gen(user=dana, user_prompt="A fox in snow")
    make_gen(user=other, user_prompt="A lantern festival")
    page.goto(live_server.url + "/")
    cards = page.locator("#gallery-results .card")
    page.check("input[name=who][value=mine]", force=True)
    page.wait_for_url(re.compile(r"who=mine"))
    page.locator("#gallery-results .card").nth(2).wait_for(state="detached")
    page.fill("input[name=q]", "lantern")
    page.wait_for_url(re.compile(r"q=lantern"))
    page.locator("#gallery-results .card").nth(1).wait_for(state="detached")

    # Back: htmx puts the page it kept for ?who=mine back; its controls say so.
    page.go_back()
    page.wait_for_url(re.compile(r"/\?who=mine[^q]*(q=)?$"))
    wait_until(page, "document.querySelectorAll('#gallery-results .card').length === 2")
    assert page.is_checked("input[name=who][value=mine]")
    assert page.input_value("input[name=q]") == ""
    # Back again: everything, everyone.
    page.go_back()
    page.wait_for_url(live_server.url + "/")
    wait_until(page, "document.querySelectorAll('#gallery-results .card').length === 3")
    assert page.is_checked("input[name=who][value='']")
    # Forward twice, through a detail page and back: the search is in the box.
    page.go_forward()
    page.go_forward()
    page.wait_for_url(re.compile(r"q=lantern"))
    wait_until(page, "document.querySelectorAll('#gallery-results .card').length === 1")
    page.click(f"#card-{lantern.pk} .card-prompt a")
    page.wait_for_url(re.compile(r"/generations/"))
    page.go_back()
    page.wait_for_url(re.compile(r"q=lantern"))
    assert cards.count() == 1
    assert page.input_value("input[name=q]") == "lantern"
    assert page.is_checked("input[name=who][value=mine]")


def test_the_detail_page_of_a_long_chain_fits_a_phone(browser, live_server, settings, dana):
    # A tree twenty deep with branches and long prompts: its indentation stops growing.
    root = make_gen(user=dana, user_prompt="A lantern over a lake")
    link = root
    for n in range(20):
        words = f"and then {n}, the lantern drifts on through endlessly unfolding skies"
        link = make_gen(user=dana, parent=link, user_prompt=words)
        if n % 5 == 0:
            make_gen(user=dana, parent=link, user_prompt=f"a branch: {words}")
    context, page, errors = open_page(
        browser,
        live_server,
        settings,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    for gen in (root, link):
        page.goto(live_server.url + f"/generations/{gen.pk}/")
        page.locator("#chain").wait_for()
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    context.close()
    assert errors == [], errors
