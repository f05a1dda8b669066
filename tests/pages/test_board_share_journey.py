"""A board shared with someone outside the team, end to end in Chromium (issue 10's acceptance):
someone logged in makes a board on /boards/, fills it with two finished videos from their gallery
cards' Boards menus, opens the board and makes a link in its Share… panel (prompts shown); a
stranger (a fresh browser context, no login) opens the link, finds both videos with their prompts
and plays one; the link is revoked on /shares/, and the stranger's page and video answer 404."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings

from generations.models import Board, ShareLink
from simulator.media import Scene, render
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
SCREENSHOTS = Path("/tmp")
BOAT = "A paper boat drifting at dusk"
FOX = "A fox in falling snow, shallow depth of field"

# Plays the video with this src (muted: no autoplay policy in the way) and waits until it has
# data for the current frame and its time has moved on.
PLAYS = """async (src) => {
    const v = [...document.querySelectorAll('video')].find(v => v.src === src);
    v.muted = true;
    await v.play();
    const start = performance.now();
    while (!(v.readyState >= 2 && v.currentTime > 0.1)) {
        if (performance.now() - start > 30000) break;
        await new Promise(r => requestAnimationFrame(r));
    }
    return {ready: v.readyState, t: v.currentTime, error: v.error && v.error.code};
}"""


def real_video(name: str, prompt: str) -> dict:
    """A real H.264 MP4 and its poster (the simulator's renderer) in MEDIA_ROOT."""
    root = Path(django_settings.MEDIA_ROOT)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "thumbnails").mkdir(parents=True, exist_ok=True)
    scene = Scene(prompt=prompt, seconds=2.0, fps=12)
    render(scene, root / "videos" / f"{name}.mp4", root / "thumbnails" / f"{name}.jpg")
    return {"video_file": f"videos/{name}.mp4", "thumbnail_file": f"thumbnails/{name}.jpg"}


def add_to_board(page, gen_pk: int, board_pk: int) -> None:
    """The gallery card's Boards menu: open it, press the board's toggle, wait for it to say
    pressed, close the menu again with its Boards button."""
    page.locator(f"#card-{gen_pk} .board-btn").click()
    toggle = page.locator(f"#board-toggle-{gen_pk}-{board_pk}")
    toggle.click()
    page.wait_for_function(
        f"""() => {{
            const b = document.getElementById('board-toggle-{gen_pk}-{board_pk}');
            return b && b.getAttribute('aria-pressed') === 'true';
        }}"""
    )
    page.locator(f"#card-{gen_pk} .board-btn").click()
    page.wait_for_function(
        f"""() => {{
            const b = document.getElementById('board-btn-{gen_pk}');
            return !!b && b.getAttribute('aria-expanded') === 'false';
        }}"""
    )


def test_a_board_made_filled_and_shared_plays_for_a_stranger_until_revoked(
    browser, live_server, transactional_db, settings
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    erin = make_user("erin", password="erin-pass-123")
    boat = make_gen(user=erin, user_prompt=BOAT, **real_video("boat", BOAT))
    fox = make_gen(user=erin, user_prompt=FOX, **real_video("fox", FOX))
    make_gen(user=erin, user_prompt="A third video, never on the board")
    base = live_server.url

    studio = browser.new_context(viewport={"width": 1280, "height": 900})
    studio.set_default_timeout(TIMEOUT_MS)
    page = studio.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, base, "erin", "erin-pass-123")

    # --- erin makes a board on /boards/ -------------------------------------------------------
    page.click("nav >> text=Boards")
    page.wait_for_url(base + "/boards/")
    page.fill("#board-name", "For the client")
    page.click("button:has-text('Make board')")
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1].isdigit())
    board = Board.objects.get(name="For the client")
    page.locator(".empty", has_text="No videos on this board yet").wait_for()

    # --- and fills it from two gallery cards' Boards menus ------------------------------------
    page.goto(base + "/")
    add_to_board(page, boat.pk, board.pk)
    add_to_board(page, fox.pk, board.pk)
    assert set(board.generations.values_list("pk", flat=True)) == {boat.pk, fox.pk}

    # --- the board page shows both; its Share… panel makes a link with the prompts ------------
    page.goto(f"{base}/boards/{board.pk}/")
    page.locator(f"#card-{boat.pk}").wait_for()
    page.locator(f"#card-{fox.pk}").wait_for()
    assert page.locator("#board-count").inner_text() == "2 videos"
    panel = page.locator(f"#share-board-{board.pk}")
    panel.locator("summary").click()
    box = panel.locator(".share-panel").bounding_box()  # the whole panel is on the screen
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1280, box
    panel.locator("input[name=show_prompts]").check()
    panel.locator("button:has-text('Create link')").click()
    page.wait_for_url(f"{base}/boards/{board.pk}/#share-board-{board.pk}")
    field = panel.locator("[data-share-url]").first
    field.wait_for()
    link = ShareLink.objects.get()
    assert link.board_id == board.pk and link.show_prompts and link.generation_id is None
    url = field.input_value()
    assert url == f"{base}/s/{link.token}/"
    page.screenshot(path=str(SCREENSHOTS / "journey-board-share.png"))

    # --- a stranger opens it in a fresh context: both videos, prompts shown, one plays --------
    outside = browser.new_context(viewport={"width": 1280, "height": 900})
    outside.set_default_timeout(TIMEOUT_MS)
    public = outside.new_page()
    public_errors: list[str] = []
    public.on("pageerror", lambda exc: public_errors.append(str(exc)))
    answer = public.goto(url)
    assert answer is not None and answer.status == 200
    assert public.locator("h1").inner_text() == "For the client"
    assert public.locator("video").count() == 2
    assert sorted(public.locator("figcaption").all_inner_texts()) == sorted([BOAT, FOX])
    assert public.locator("a").count() == 0 and public.locator("nav").count() == 0
    video_urls = public.locator("video").evaluate_all("vs => vs.map(v => v.src)")
    assert sorted(video_urls) == sorted(
        f"{base}/s/{link.token}/{gen.pk}/video.mp4" for gen in (boat, fox)
    )
    fox_url = f"{base}/s/{link.token}/{fox.pk}/video.mp4"
    playing = public.evaluate(PLAYS, fox_url)
    assert playing["ready"] >= 2 and playing["t"] > 0.1 and playing["error"] is None, playing
    public.screenshot(path=str(SCREENSHOTS / "journey-public.png"))

    # --- erin revokes it on /shares/ ----------------------------------------------------------
    page.goto(f"{base}/shares/")
    row = page.locator(f"#share-{link.pk}")
    assert row.locator("[data-share-url]").input_value() == url
    row.locator("button:has-text('Revoke')").click()
    page.locator(f"#share-{link.pk}.is-revoked").wait_for()

    # --- and the stranger gets 404 for the page and for the video it had ----------------------
    gone = public.goto(url)
    assert gone is not None and gone.status == 404
    assert "This link does not work" in public.content()
    assert outside.request.get(fox_url).status == 404
    assert outside.request.get(f"{base}/s/{link.token}/{boat.pk}/video.mp4").status == 404

    outside.close()
    studio.close()
    assert errors == [] and public_errors == [], (errors, public_errors)
