"""A frame as a keyframe, in Chromium (issue 10 #7): on a finished video's page the scrubber
picks a frame and shows the server's image of it; "Start a new video from this frame" opens the
create page with that frame previewed in place; Generate makes a row whose start keyframe is
that frame. On the create page an image dropped on a keyframe slot, or pasted into the form,
shows a preview, and Clear empties the slot."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from generations import frames
from generations.models import Generation
from tests.factories import make_user
from tests.pages.conftest import log_in
from tests.pages.test_frames import FRAMES, finished_video, sim_video  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000


def _png(color: str) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), color).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# Builds a File in the page from base64 PNG bytes and hands it over as a DataTransfer.
DROP = """([selector, data]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
    const target = document.querySelector(selector);
    const init = {dataTransfer: transfer, bubbles: true, cancelable: true};
    target.dispatchEvent(new DragEvent('dragover', init));
    return target.dispatchEvent(new DragEvent('drop', init));
}"""
PASTE = """([selector, data]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], 'image.png', {type: 'image/png'}));
    const target = document.querySelector(selector);
    target.focus();
    const init = {clipboardData: transfer, bubbles: true, cancelable: true};
    return target.dispatchEvent(new ClipboardEvent('paste', init));
}"""
SHOWN = """(selector) => {
    const image = document.querySelector(selector);
    return !!image && !image.closest('[hidden]') && image.complete && image.naturalWidth > 0;
}"""


def test_a_scrubbed_frame_starts_a_new_video_and_images_drop_and_paste_in(
    browser,
    live_server,
    transactional_db,
    settings,
    media_root,
    sim_video,  # noqa: F811
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.LUMA_DEMO_MODE = True
    dana = make_user("dana", password="dana-pass-123")
    source = finished_video(sim_video, media_root, user=dana, user_prompt="a paper boat at dusk")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(TIMEOUT_MS)
    log_in(page, live_server.url, "dana", "dana-pass-123")

    # The detail page: the last frame by default; the scrubber, by keyboard, to frame 13.
    page.goto(f"{live_server.url}/generations/{source.pk}/")
    page.wait_for_function(SHOWN, arg="[data-frame-image]")
    assert page.locator("#frame-time").inner_text() == "Frame 48 of 48 · 1.96 s (the last)"
    scrub = page.get_by_label("Frame", exact=True)
    scrub.focus()
    page.keyboard.press("Home")
    for _ in range(12):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('#frame-time').textContent === 'Frame 13 of 48 · 0.50 s'"
    )
    assert scrub.get_attribute("aria-valuetext") == "Frame 13 of 48, 0.50 seconds"
    page.wait_for_function(
        "() => document.querySelector('[data-frame-image]').src.endsWith('?frame=12')"
    )
    page.wait_for_function(SHOWN, arg="[data-frame-image]")
    page.screenshot(path="/tmp/frames-detail.png", full_page=True)

    # "Start a new video from this frame": the create page with the frame in place, previewed.
    page.get_by_role("button", name="Start a new video from this frame").click()
    page.wait_for_url(re.compile(r".*/generations/new/\?.*frame_of="))
    start_preview = "[data-keyframe=start] [data-keyframe-preview-image]"
    page.wait_for_function(SHOWN, arg=start_preview)
    assert (
        page.locator(start_preview)
        .get_attribute("src")
        .endswith(f"/generations/{source.pk}/frame.jpg?frame=12")
    )
    assert page.get_by_label("Use this frame as the start keyframe").is_checked()
    assert (
        "Frame 13 of 48 (0.50 s)" in page.locator("[data-keyframe=start] figcaption").inner_text()
    )

    # Drop an image on the end slot: previewed from the file itself (an object URL).
    end_preview = "[data-keyframe=end] [data-keyframe-preview-image]"
    assert page.locator("[data-keyframe=end] [data-keyframe-preview]").is_hidden()
    page.evaluate(DROP, ["[data-keyframe=end] input[type=file]", _png("red")])
    page.wait_for_function(SHOWN, arg=end_preview)
    assert page.locator(end_preview).get_attribute("src").startswith("blob:")
    assert page.locator("[data-keyframe=end] figcaption").inner_text().startswith("dropped.png")
    assert page.evaluate("() => document.querySelector('#id_image_end_file').files.length") == 1
    page.screenshot(path="/tmp/frames-create.png", full_page=True)
    # Clear empties the slot (and hands the focus back to its file field).
    page.get_by_role("button", name="Clear the end keyframe").click()
    assert page.locator("[data-keyframe=end] [data-keyframe-preview]").is_hidden()
    assert page.evaluate("() => document.querySelector('#id_image_end_file').files.length") == 0
    assert page.evaluate("() => document.activeElement.id") == "id_image_end_file"

    # Paste an image while the end slot's URL field has the focus: it goes to the end slot.
    handled = page.evaluate(PASTE, ["#id_image_end_url", _png("blue")])
    assert handled is False  # the paste was taken (default prevented), not typed as text
    page.wait_for_function(SHOWN, arg=end_preview)
    assert page.locator(end_preview).get_attribute("src").startswith("blob:")
    assert page.get_by_label("Use this frame as the start keyframe").is_checked()  # untouched
    page.get_by_role("button", name="Clear the end keyframe").click()

    # Type a prompt and Generate: the new row's start keyframe is the frame chosen.
    page.fill("#id_user_prompt", "the boat sails into the night")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    made = Generation.objects.exclude(pk=source.pk).get()
    assert made.user_prompt == "the boat sails into the night"
    assert made.image_file.name.startswith("keyframes/") and not made.image_end_file
    assert made.image_file.read() == frames.frame_jpeg(source.video_file.path, 12)
    assert FRAMES == 48
    page.close()
    assert errors == []


def test_without_javascript_the_frame_still_goes_from_the_scrubber_to_the_new_video(
    browser,
    live_server,
    transactional_db,
    settings,
    media_root,
    sim_video,  # noqa: F811
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.LUMA_DEMO_MODE = True
    make_user("erin", password="erin-pass-123")
    source = finished_video(sim_video, media_root, user_prompt="a lighthouse at night")
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log_in(page, live_server.url, "erin", "erin-pass-123")
    page.goto(f"{live_server.url}/generations/{source.pk}/")
    scrub = page.locator("#frame-scrub")
    scrub.focus()
    page.keyboard.press("Home")  # the range moves by keyboard without any script
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.get_by_role("button", name="End a new video on this frame").click()
    page.wait_for_url(re.compile(r".*[?&]frame=3(&|$)"))
    preview = page.locator("[data-keyframe=end] img")
    assert preview.is_visible()
    assert preview.get_attribute("src").endswith(f"/generations/{source.pk}/frame.jpg?frame=3")
    assert page.get_by_label("Use this frame as the end keyframe").is_checked()
    page.fill("#id_user_prompt", "the light goes out")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r".*/generations/[0-9a-f-]{36}/$"))
    made = Generation.objects.exclude(pk=source.pk).get()
    assert made.image_end_file.read() == frames.frame_jpeg(source.video_file.path, 3)
    assert not made.image_file
    context.close()
