"""What every htmx answer gets from generations.htmx's middleware, whatever view made it:
the pending toasts (out of band), ``Vary: HX-Request``, and a client redirect to log in when
the session has expired."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.test import Client
from django.urls import reverse

from generations.models import Generation, Status
from tests.pages.conftest import htmx, make_gen

TOASTS = 'hx-swap-oob="beforeend:#toasts"'


# --- toasts --------------------------------------------------------------------------------------
def test_a_job_action_answered_to_htmx_carries_its_toast_out_of_band(client, user):
    gen = make_gen(Status.QUEUED, user=user, user_prompt="a queued fox")
    response = client.post(reverse("generation-cancel", args=[gen.pk]), **htmx("jobs"))
    html = response.content.decode()
    assert response.status_code == 200 and 'id="jobs"' in html
    assert TOASTS in html and "Cancelled “a queued fox”" in html
    # Shown once: the next page has no copy of it.
    assert "Cancelled" not in client.get(reverse("gallery")).content.decode()


def test_a_pending_message_rides_on_the_next_htmx_fragment_whatever_the_view(client, user):
    gen = make_gen(Status.FAILED, user=user, user_prompt="a failed owl")
    client.post(reverse("generation-retry", args=[gen.pk]))  # plain POST: redirect, not followed
    html = client.get(reverse("gallery"), **htmx("gallery-results")).content.decode()
    assert 'id="gallery-results"' in html
    assert TOASTS in html and "Queued again: “a failed owl”" in html


def test_answers_htmx_does_not_swap_leave_the_messages_for_the_next_page(client, user):
    gen = make_gen(Status.FAILED, user=user, user_prompt="a failed heron")
    client.post(reverse("generation-retry", args=[gen.pk]))
    running = Generation.objects.in_flight().count()  # the badge's count is current: 204
    poll = client.get(f"{reverse('jobs-count')}?v={running}", **htmx("running-badge"))
    assert poll.status_code == 204 and poll.content == b""
    page = client.get(reverse("gallery")).content.decode()
    assert "Queued again: “a failed heron”" in page


def test_a_page_that_is_not_htmx_gets_no_out_of_band_markup(client, user):
    gen = make_gen(Status.QUEUED, user=user)
    response = client.post(reverse("generation-cancel", args=[gen.pk]), follow=True)
    html = response.content.decode()
    assert "Cancelled" in html and TOASTS not in html


# --- Vary -----------------------------------------------------------------------------------------
def test_pages_and_their_fragments_vary_on_hx_request(client, user):
    gen = make_gen(Status.IN_PROGRESS, user=user)
    for url, target in (
        (reverse("gallery"), "gallery-results"),
        (reverse("jobs"), "jobs"),
        (reverse("generation-detail", args=[gen.pk]), "live"),
    ):
        page = client.get(url)
        fragment = client.get(url + "?v=stale", **htmx(target))
        for response in (page, fragment):
            vary = {v.strip() for v in response["Vary"].split(",")}
            assert "HX-Request" in vary, (url, response.status_code, vary)
        assert "HX-Target" in {v.strip() for v in fragment["Vary"].split(",")}
    # Also an answer with no body: a cache must not keep a 204 for the page.
    badge = client.get(f"{reverse('jobs-count')}?v=1", **htmx("running-badge"))
    assert badge.status_code == 204 and "HX-Request" in badge["Vary"]


# --- an expired session -------------------------------------------------------------------------
def test_an_expired_session_sends_htmx_to_the_login_page_and_back_to_the_page(db):
    gen = make_gen(Status.IN_PROGRESS)
    anonymous = Client()  # the session has expired: no one is logged in any more
    page = f"http://testserver/generations/{gen.pk}/"
    for response in (
        anonymous.get("/jobs/count/?v=0", **htmx("running-badge", HTTP_HX_CURRENT_URL=page)),
        anonymous.get(f"/generations/{gen.pk}/?v=x", **htmx("live", HTTP_HX_CURRENT_URL=page)),
        anonymous.post(
            reverse("generation-like", args=[gen.pk]), **htmx("x", HTTP_HX_CURRENT_URL=page)
        ),
    ):
        assert response.status_code == 200
        assert response["HX-Redirect"] == f"/accounts/login/?next=/generations/{gen.pk}/"
        assert "Location" not in response
        assert b'name="password"' not in response.content  # no login page swapped into a part
    # Without a page to come back to, just the login page; without htmx, the usual redirect.
    bare = anonymous.get("/jobs/count/?v=0", **htmx("running-badge"))
    assert bare["HX-Redirect"] == settings.LOGIN_URL
    plain = anonymous.get("/jobs/count/?v=0")
    assert plain.status_code == 302 and plain["Location"].startswith("/accounts/login/?next=")


def test_the_browser_script_no_longer_guesses_the_login_url():
    script = (Path(settings.BASE_DIR) / "static" / "js" / "app.js").read_text()
    assert "/accounts/login/" not in script and "responseURL" not in script
