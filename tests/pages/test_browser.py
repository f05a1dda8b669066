"""The studio in headless Chromium against a live server, a real Celery worker and beat, and
the simulator: log in, create, watch the dashboard update itself, extend from the gallery,
see the chain, like, filter and download; and, the session gone, land on the login page."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from generations.models import Generation, Status
from tests.conftest import wait_for
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.pipeline]

TIMEOUT_MS = 60_000


@pytest.fixture
def page(browser, live_server, pipeline, settings):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    make_user("dana", password="dana-pass-123")
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url  # every page needs login
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "dana-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    yield page
    context.close()
    assert errors == [], errors


def pill_history_recorder(page, pk) -> None:
    """Record the job's status pill after every htmx swap (to see the steps it went through)."""
    page.evaluate(
        """pk => {
            window.__noReload = true;
            window.__pills = [];
            const read = () => {
                const pill = document.querySelector('#job-' + pk + ' .pill');
                const text = pill ? pill.textContent.trim() : null;
                const last = window.__pills[window.__pills.length - 1];
                if (text && last !== text) window.__pills.push(text);
            };
            read();
            document.body.addEventListener('htmx:afterSettle', read);
        }""",
        str(pk),
    )


def test_create_watch_extend_like_filter_download(page, live_server, pipeline, sim, tmp_path):
    base = live_server.url

    # --- create (with the worker stopped, so the job visibly waits in the queue) --------------
    pipeline.kill("worker1", signal.SIGTERM)
    page.click("nav >> text=New")
    assert "500,000 tokens" in page.text_content(".cost")
    page.fill("textarea[name=user_prompt]", "A <b>paper</b> lantern rising over a lake")
    page.click("label.ratio:has(input[value='9:16'])")
    page.click("button:has-text('Generate')")
    page.wait_for_url(re.compile(r"/generations/[0-9a-f-]+/$"))
    gen = Generation.objects.get(user_prompt="A <b>paper</b> lantern rising over a lake")
    assert gen.aspect_ratio == "9:16" and gen.status == Status.QUEUED
    assert "Queued" in page.text_content("#toasts")
    assert page.text_content("h1") == "A <b>paper</b> lantern rising over a lake"  # as text

    # --- the dashboard follows it from queued to completed without a reload ------------------
    page.click("nav >> text=Jobs")
    page.wait_for_selector(f"#job-{gen.pk} .pill-queued")
    pill_history_recorder(page, gen.pk)
    pipeline.start("worker1")
    page.wait_for_selector(f".section-finished #job-{gen.pk} .pill-completed")
    assert page.evaluate("window.__noReload") is True
    history = page.evaluate("window.__pills")
    assert history[0] == "Queued" and history[-1] == "Completed", history
    # Nothing in flight any more: the list stops polling (286) and says so.
    page.wait_for_selector("#jobs .live-indicator:not(.is-live)")

    # --- the gallery shows it; Extend opens an inline form and queues a self-updating card ---
    wait_for(
        lambda: Generation.objects.filter(pk=gen.pk).exclude(video_file="").exists(),
        30,
        "the local copy",
    )
    page.click("nav >> text=Gallery")
    card = page.locator(f"#card-{gen.pk}")
    card.wait_for()
    assert card.locator("video[preload=none][poster]").count() == 1
    card.locator(".extend-btn").click()
    slot = page.locator(f"#extend-slot-{gen.pk}")
    slot.locator("textarea[name=user_prompt]").fill("The lantern drifts into the clouds")
    slot.locator("button[type=submit]").click()
    child = wait_for(lambda: Generation.objects.filter(parent=gen).first(), 10, "the extension")
    child_card = page.locator(f"#card-{child.pk}")
    child_card.wait_for()
    assert slot.inner_html().strip() == ""  # the form closed
    # The grid's one watcher (woken by the extend) updates the card until the video is there
    # and copied (download link present); the card does not poll by itself.
    assert child_card.get_attribute("hx-trigger") is None
    assert page.locator("#grid-watch[hx-trigger='every 2s']").count() == 1
    child_card.locator("a[download]").wait_for(timeout=TIMEOUT_MS)
    assert child_card.locator("video").count() == 1

    # --- the detail page shows the chain ------------------------------------------------------
    page.goto(f"{base}/generations/{gen.pk}/")
    chain = page.locator("#chain")
    assert chain.locator(f"a[href='/generations/{child.pk}/']").count() == 1
    assert chain.locator(".is-current").count() == 1
    playing = page.evaluate(
        """async () => {
            const v = document.querySelector('.stage video');
            await v.play();
            await new Promise(r => setTimeout(r, 800));
            return {ready: v.readyState, t: v.currentTime};
        }"""
    )
    assert playing["ready"] >= 2 and playing["t"] > 0, playing

    # --- like the extension, filter to liked --------------------------------------------------
    page.goto(base + "/")
    like = page.locator(f"#card-{child.pk} button.like")
    like.click()
    page.locator(f"#card-{child.pk} button.like.is-liked").wait_for()
    assert child.liked_by.filter(username="dana").exists()
    page.click("label.toggle:has(input[name=liked])")
    page.wait_for_url(re.compile(r"liked=1"))
    page.locator(f"#card-{gen.pk}").wait_for(state="detached")
    assert page.locator(".grid .card").count() == 1
    assert page.locator(f"#card-{child.pk}").count() == 1
    page.fill("input[name=q]", "no such prompt anywhere")
    page.locator("#gallery-results .empty").wait_for()
    assert "q=no%20such%20prompt" in page.url
    page.fill("input[name=q]", "")
    page.locator(f"#card-{child.pk}").wait_for()

    # --- download: the bytes of an MP4 ---------------------------------------------------------
    with page.expect_download() as info:
        page.locator(f"#card-{child.pk} a[download]").click()
    target = tmp_path / "video.mp4"
    info.value.save_as(target)
    data = Path(target).read_bytes()
    assert data[4:8] == b"ftyp", data[:16]

    # --- the session ends: the next poll takes the page to the login form, not into a part ----
    page.goto(f"{base}/jobs/")
    page.context.clear_cookies()
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/jobs/$"), timeout=15_000)
    assert page.locator("#running-badge input[name=password]").count() == 0
    assert page.locator("main input[name=password]").count() == 1
