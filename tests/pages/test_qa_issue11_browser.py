"""QA of issue 11 in Chromium: the price on the Extend, "What came before" and Interpolate
buttons follows the model, resolution and duration chosen in that form, as the create page's
cost line does (it said the default price, 71 credits, whatever was chosen: 25 were charged for
ray-flash-2, 1,147 would be for 4k 9s)."""

from __future__ import annotations

import pytest

from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000


def test_the_button_notes_follow_the_forms_options(
    browser, live_server, transactional_db, settings
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.LUMA_PROVIDER = "luma"
    make_user("quinn", password="quinn-pass-123")
    gen = make_gen(user_prompt="A lighthouse in a storm")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        log_in(page, live_server.url, "quinn", "quinn-pass-123")
        page.goto(f"{live_server.url}/generations/{gen.pk}/")
        extend = page.locator(f"form[action='/generations/{gen.pk}/extend/']")
        before = page.locator(f"form[action='/generations/{gen.pk}/before/']")
        assert extend.locator(".btn-note").inner_text() == "71 credits"
        extend.locator("select[name=model]").select_option("ray-flash-2")
        page.wait_for_function(
            "el => el.textContent === '25 credits'",
            arg=extend.locator(".btn-note").element_handle(),
        )
        assert before.locator(".btn-note").inner_text() == "71 credits"  # its own form's options
        before.locator("select[name=resolution]").select_option("4k")
        before.locator("select[name=duration]").select_option("9s")
        page.wait_for_function(
            "el => el.textContent === '1,147 credits'",
            arg=before.locator(".btn-note").element_handle(),
        )
        page.goto(f"{live_server.url}/generations/{gen.pk}/interpolate/")
        page.locator("select[name=model]").select_option("ray-flash-2")
        page.wait_for_function(
            "() => document.querySelector('form.interpolate .btn-note').textContent"
            " === '25 credits'"
        )
    finally:
        context.close()
