"""A chain in Chromium: the detail page shows it as a tree (a branch beside the main line, the
current video marked), "Play from the start" plays the root, then each extension, one after
another in the one <video> (its source moves on by itself, the step is announced), a leaf of
another branch plays its own path, and the chain downloads as one MP4. The clips are real
H.264 files drawn as the simulator draws them, half a second each."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from django.conf import settings as django_settings

from simulator import media
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
SECONDS = 0.5


def clip(name: str, offset: float) -> tuple[str, str]:
    """A real clip and its thumbnail in MEDIA_ROOT (the media view serves both)."""
    video = Path(django_settings.MEDIA_ROOT) / "videos" / f"chain-browser-{name}.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    scene = media.Scene(prompt=name, seconds=SECONDS, fps=24, time_offset=offset)
    media.render(scene, video, video.with_suffix(".jpg"))
    return f"videos/{video.name}", f"videos/{video.with_suffix('.jpg').name}"


def wait_until(page, script: str, what: str) -> None:
    """Poll a script until it is true (wait_for_function would evaluate a string, which the
    pages' Content-Security-Policy refuses)."""
    for _ in range(600):
        if page.evaluate(script):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never true: {what} ({script})")


def test_a_chain_is_a_tree_that_plays_from_the_start_and_downloads_as_one_file(
    browser, live_server, settings, transactional_db
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    dana = make_user("dana", password="dana-pass-123")
    made = {}
    parent = None
    for n, name in enumerate(("root", "rises", "moon")):
        video, thumb = clip(name, n * SECONDS)
        made[name] = parent = make_gen(
            user=dana,
            parent=parent,
            user_prompt=f"The lantern {name}",
            video_file=video,
            thumbnail_file=thumb,
        )
    video, thumb = clip("sinks", SECONDS)
    made["sinks"] = make_gen(
        user=dana,
        parent=made["root"],
        user_prompt="The lantern sinks",
        video_file=video,
        thumbnail_file=thumb,
    )

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server.url, "dana", "dana-pass-123")
    page.goto(live_server.url + f"/generations/{made['moon'].pk}/")

    # --- the tree ------------------------------------------------------------------------------
    chain = page.locator("#chain")
    chain.wait_for()
    depth_of = """(href) => {
        const a = document.querySelector(`#chain a.chain-card[href="${href}"]`);
        let depth = 0;
        for (let e = a; e; e = e.parentElement) if (e.tagName === 'UL') depth++;
        return depth;
    }"""
    depths = {
        name: page.evaluate(depth_of, f"/generations/{gen.pk}/") for name, gen in made.items()
    }
    assert depths == {"root": 1, "rises": 2, "moon": 3, "sinks": 2}  # "sinks" is a branch
    current = chain.locator("[aria-current=page]")
    assert current.count() == 1
    assert current.get_attribute("href") == f"/generations/{made['moon'].pk}/"
    assert "4 videos · 2 branches" in chain.inner_text()

    # --- Play from the start: root, then each extension, in one <video> ----------------------
    video = chain.locator("[data-chain-player] video")
    files = {name: gen.video_file.name.split("/")[-1] for name, gen in made.items()}
    chain.locator(".chain-head [data-chain-play]").click()
    seen = []
    for step, name in enumerate(("root", "rises", "moon"), start=1):
        wait_until(
            page,
            f"(document.querySelector('#chain video').currentSrc || '').endsWith('{files[name]}')",
            f"clip {step} ({name}) playing",
        )
        seen.append(name)
        assert video.evaluate("v => v.dataset.step") == str(step)
        now = chain.locator("[data-chain-now]").inner_text()
        # the last clip (1 s) may already have ended when this is read: then it says so
        assert f"Playing {step} of 3" in now or (step == 3 and "Played all 3" in now), now
        if step == 2:  # it really plays: time moves, and it moved on by itself from clip 1
            wait_until(page, "document.querySelector('#chain video').currentTime > 0", "playing")
            page.screenshot(path="/tmp/chains-browser-playing.png", full_page=True)
    wait_until(
        page,
        "document.querySelector('#chain [data-chain-now]').textContent.startsWith('Played all 3')",
        "the end announced",
    )
    assert seen == ["root", "rises", "moon"]
    assert chain.locator("[data-chain-now]").get_attribute("aria-live") == "polite"

    # --- the other branch's leaf plays its own path ------------------------------------------
    chain.locator(".chain-node [data-chain-play]").click()
    wait_until(
        page,
        f"document.querySelector('#chain video').currentSrc.endsWith('{files['sinks']}')",
        "the branch's second clip",
    )
    assert "2 of 2" in chain.locator("[data-chain-now]").inner_text()

    # --- one MP4 -------------------------------------------------------------------------------
    href = chain.locator("a", has_text="Download the chain as one MP4").get_attribute("href")
    assert href == f"/generations/{made['moon'].pk}/chain.mp4"
    response = page.request.get(live_server.url + href)
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.body())) as joined:
        assert sum(1 for _ in joined.decode(joined.streams.video[0])) == 3 * round(24 * SECONDS)

    context.close()
    assert errors == [], errors
