"""In Chromium, against a live server, a real worker and the simulator: a person who pressed
"Notify me" (the permission granted to the browser context) gets a browser notification and a
changed tab title when their job finishes, from the running badge's poll and nothing else."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import wait_for
from tests.factories import make_user
from tests.pages.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.pipeline]

TIMEOUT_MS = 60_000

# Records every notification the page makes, then lets the real one through (if the headless
# browser can show it at all): the test sees what app.js asked for.
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.__notes = [];
  function Recorded(title, options) {
    const given = options || {};
    window.__notes.push({ title: title, body: given.body, tag: given.tag });
    try { return new Real(title, options); } catch (e) { return {}; }
  }
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  Recorded.requestPermission = function () {
    window.__asked = (window.__asked || 0) + 1;
    return Real.requestPermission.apply(Real, arguments);
  };
  window.Notification = Recorded;
})();
"""


def test_my_finished_job_shows_a_notification_and_changes_the_title(
    browser, live_server, pipeline, settings
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    dana = make_user("dana", password="dana-pass-123")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(RECORD_NOTIFICATIONS)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server.url, "dana", "dana-pass-123")
    title = page.title()

    # Opt in from the account menu (the permission is asked on this click only).
    page.click("details.account summary")
    toggle = page.locator("[data-notify-toggle]")
    assert toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    wait_for(lambda: toggle.get_attribute("aria-pressed") == "true", 10, "notifications on")
    # Already granted to this context: turned on without asking again; nothing shown yet.
    assert page.evaluate("window.__notes") == [] and page.evaluate("window.__asked") is None

    # A job of mine, made through the API, finishes while the gallery is open.
    api = Client()
    api.force_login(dana)
    made = api.post(
        "/api/v1/generations",
        {"user_prompt": "A heron lifting off a misty river", "aspect_ratio": "16:9"},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    # (Polled from here: wait_for_function evaluates a string, which the pages' CSP refuses.)
    wait_for(lambda: page.evaluate("window.__notes.length") > 0, 60, "a notification")
    notes = page.evaluate("window.__notes")
    assert notes == [
        {
            "title": "Finished: A heron lifting off a misty river",
            "body": "lumaweb",
            "tag": f"lumaweb-{made.json()['id']}-completed",
        }
    ]
    assert page.title() == f"(1) ✓ {title}"
    # Touching the page means I have seen it.
    page.keyboard.press("Shift")
    wait_for(lambda: page.title() == title, 10, "the title back")
    context.close()
    assert errors == [], errors
