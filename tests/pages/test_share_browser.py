"""A share link in Chromium, as people use it: someone logged in makes a link on a video's
detail page and copies it; a stranger (a fresh browser context, no login) opens it and the video
plays; the link is revoked on /shares/, and the stranger's page and video answer 404."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings

from generations.models import ShareLink
from simulator.media import Scene, render
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
SCREENSHOTS = Path("/tmp")

# Plays the page's first video (muted: no autoplay policy in the way) and waits until it has
# data for the current frame and its time moves on.
PLAYS = """async () => {
    const v = document.querySelector('video');
    v.muted = true;
    await v.play();
    const start = performance.now();
    while (!(v.readyState >= 2 && v.currentTime > 0)) {
        if (performance.now() - start > 20000) break;
        await new Promise(r => requestAnimationFrame(r));
    }
    return {ready: v.readyState, t: v.currentTime, error: v.error && v.error.code};
}"""


def real_video(name: str) -> dict:
    """A real H.264 MP4 and its poster (the simulator's renderer) in MEDIA_ROOT."""
    root = Path(django_settings.MEDIA_ROOT)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "thumbnails").mkdir(parents=True, exist_ok=True)
    scene = Scene(prompt="A paper boat drifting at dusk", seconds=2.0, fps=12)
    render(scene, root / "videos" / f"{name}.mp4", root / "thumbnails" / f"{name}.jpg")
    return {"video_file": f"videos/{name}.mp4", "thumbnail_file": f"thumbnails/{name}.jpg"}


def test_a_link_made_on_the_detail_page_plays_for_a_stranger_until_revoked(
    browser, live_server, transactional_db, settings
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    dana = make_user("dana", password="dana-pass-123")
    gen = make_gen(user=dana, user_prompt="A paper boat drifting at dusk", **real_video("boat"))
    base = live_server.url

    # --- dana makes a link on the detail page -------------------------------------------------
    studio = browser.new_context(viewport={"width": 1280, "height": 900})
    studio.set_default_timeout(TIMEOUT_MS)
    studio.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = studio.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, base, "dana", "dana-pass-123")
    page.goto(f"{base}/generations/{gen.pk}/")
    panel = page.locator(f"#share-gen-{gen.pk}")
    panel.locator("summary").click()
    panel.locator("select[name=expires]").select_option("7")
    panel.locator("input[name=show_prompts]").check()
    page.screenshot(path=str(SCREENSHOTS / "shares-panel.png"))
    panel.locator("button:has-text('Create link')").click()
    page.wait_for_url(f"{base}/generations/{gen.pk}/#share-gen-{gen.pk}")
    field = panel.locator("[data-share-url]").first
    field.wait_for()
    assert panel.evaluate("d => d.open")  # opened again on the new link (shares.js)
    page.wait_for_function("() => document.activeElement.matches('[data-share-url]')")
    link = ShareLink.objects.get()
    url = field.input_value()
    assert url == f"{base}/s/{link.token}/"
    copy = panel.locator("[data-copy]").first
    copy.click()
    page.wait_for_function(
        "() => document.querySelector('[data-copy]').textContent.startsWith('Copied')"
    )
    assert page.evaluate("() => navigator.clipboard.readText()") == url
    page.screenshot(path=str(SCREENSHOTS / "shares-panel-made.png"))

    # --- a stranger opens it: the video plays --------------------------------------------------
    outside = browser.new_context(viewport={"width": 1280, "height": 900})
    outside.set_default_timeout(TIMEOUT_MS)
    public = outside.new_page()
    public_errors: list[str] = []
    public.on("pageerror", lambda exc: public_errors.append(str(exc)))
    answer = public.goto(url)
    assert answer is not None and answer.status == 200
    assert answer.headers["x-robots-tag"] == "noindex, nofollow"
    assert public.locator("meta[name=robots]").get_attribute("content") == "noindex, nofollow"
    assert public.locator("figcaption").inner_text() == "A paper boat drifting at dusk"
    assert public.locator("a").count() == 0 and public.locator("nav").count() == 0
    playing = public.evaluate(PLAYS)
    assert playing["ready"] >= 2 and playing["t"] > 0, playing
    video_url = public.locator("video").evaluate("v => v.currentSrc")
    assert video_url == f"{base}/s/{link.token}/{gen.pk}/video.mp4"
    public.screenshot(path=str(SCREENSHOTS / "shares-public.png"))

    # --- dana revokes it on /shares/ -----------------------------------------------------------
    page.goto(f"{base}/shares/")
    row = page.locator(f"#share-{link.pk}")
    assert row.locator("[data-share-url]").input_value() == url
    page.screenshot(path=str(SCREENSHOTS / "shares-list.png"), full_page=True)
    row.locator("button:has-text('Revoke')").click()
    page.locator(f"#share-{link.pk}.is-revoked").wait_for()
    assert row.locator("[data-share-url]").count() == 0

    # --- and the stranger gets 404 for the page and the video ----------------------------------
    gone = public.goto(url)
    assert gone is not None and gone.status == 404
    assert "This link does not work" in public.content()
    public.screenshot(path=str(SCREENSHOTS / "shares-gone.png"))
    assert outside.request.get(video_url).status == 404
    assert public.goto(video_url).status == 404

    outside.close()
    studio.close()
    assert errors == [] and public_errors == [], (errors, public_errors)
