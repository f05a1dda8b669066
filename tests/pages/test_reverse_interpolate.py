"""What came before and Interpolate (issue 11 #2): beside Extend on the card, the detail page
and the viewer only where the provider can make them (the official Luma API); plain POSTs that
redirect without JavaScript, htmx inline in a card like Extend; no stack trace on a refusal; the
interpolate page's query count does not grow with the videos it offers; axe finds nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from generations import actions
from generations.models import Generation, Kind, Role, Status
from tests.factories import make_user, offer_concepts
from tests.pages.conftest import htmx, make_gen

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def luma(settings):
    settings.LUMA_PROVIDER = "luma"
    return settings


def _no_trace(response) -> None:
    body = response.content.decode()
    assert "Traceback" not in body and "Exception Value" not in body


# --- shown only where the provider can ------------------------------------------------------------
def test_with_umamiai_no_page_offers_them_and_their_urls_are_404(client):
    gen = make_gen()
    for path in ("/", f"/generations/{gen.pk}/"):
        page = client.get(path).content.decode()
        assert "/before/" not in page and "/interpolate/" not in page
    assert client.get(f"/generations/{gen.pk}/before/").status_code == 404
    assert client.get(f"/generations/{gen.pk}/interpolate/").status_code == 404
    assert client.post(f"/generations/{gen.pk}/before/", {"user_prompt": "x"}).status_code == 404
    assert Generation.objects.count() == 1


def test_with_luma_the_card_the_detail_page_and_the_viewer_offer_them(client, luma):
    gen = make_gen()
    gallery = client.get("/").content.decode()
    assert f'href="/generations/{gen.pk}/before/"' in gallery
    assert f'href="/generations/{gen.pk}/interpolate/"' in gallery
    detail = client.get(f"/generations/{gen.pk}/").content.decode()
    assert 'id="before"' in detail and 'id="interpolate"' in detail
    assert f'action="/generations/{gen.pk}/before/"' in detail
    viewer = client.get(f"/generations/{gen.pk}/", **htmx("viewer-body")).content.decode()
    assert f'action="/generations/{gen.pk}/before/"' in viewer
    assert f'href="/generations/{gen.pk}/interpolate/"' in viewer


def test_an_unfinished_video_offers_neither(client, luma):
    gen = make_gen(Status.IN_PROGRESS)
    page = client.get(f"/generations/{gen.pk}/").content.decode()
    assert 'id="before"' not in page and 'id="interpolate"' not in page


def test_a_viewer_is_told_why_with_a_403(luma, db):
    vic = make_user("vic")
    actions.set_member(None, vic, role=Role.VIEWER)
    client = Client()
    client.force_login(vic)
    gen = make_gen()
    assert client.get(f"/generations/{gen.pk}/before/").status_code == 403
    assert client.get(f"/generations/{gen.pk}/interpolate/").status_code == 403
    assert 'id="before"' not in client.get(f"/generations/{gen.pk}/").content.decode()


# --- What came before ---------------------------------------------------------------------------
def test_before_without_javascript_is_a_page_and_a_plain_post(client, luma):
    gen = make_gen(aspect_ratio="9:16")
    page = client.get(f"/generations/{gen.pk}/before/")
    assert page.status_code == 200 and b"What happens before?" in page.content
    response = client.post(f"/generations/{gen.pk}/before/", {"user_prompt": "the door opens"})
    made = Generation.objects.get(kind=Kind.REVERSE)
    assert response.status_code == 302 and response["Location"] == f"/generations/{made.pk}/"
    assert (made.parent_id, made.parent_remote_id, made.aspect_ratio) == (
        gen.pk,
        gen.remote_id,
        "9:16",
    )
    detail = client.get(f"/generations/{made.pk}/").content.decode()
    assert "What came before" in detail


def test_before_inline_in_a_card_answers_the_new_card(client, luma):
    gen = make_gen()
    form = client.get(f"/generations/{gen.pk}/before/", **htmx(f"extend-slot-{gen.pk}"))
    assert f'id="before-{gen.pk}-user_prompt"' in form.content.decode()
    assert "<html" not in form.content.decode()
    answer = client.post(
        f"/generations/{gen.pk}/before/", {"user_prompt": "earlier"}, **htmx("card")
    )
    made = Generation.objects.get(kind=Kind.REVERSE)
    assert answer.status_code == 200 and f'id="card-{made.pk}"' in answer.content.decode()
    assert "jobs-changed" in answer["HX-Trigger"]


def test_a_refused_before_keeps_the_form_with_the_reason_and_no_trace(client, luma):
    gen = make_gen()
    plain = client.post(f"/generations/{gen.pk}/before/", {"user_prompt": "  "})
    assert plain.status_code == 400 and b'id="id_user_prompt_error"' in plain.content
    _no_trace(plain)
    inline = client.post(f"/generations/{gen.pk}/before/", {"user_prompt": ""}, **htmx("card"))
    assert inline["HX-Retarget"] == f"#extend-slot-{gen.pk}"
    running = make_gen(Status.IN_PROGRESS)
    refused = client.post(f"/generations/{running.pk}/before/", {"user_prompt": "x"})
    assert refused.status_code == 400 and b"Only a finished video" in refused.content
    _no_trace(refused)
    assert not Generation.objects.filter(kind=Kind.REVERSE).exists()


# --- Interpolate -------------------------------------------------------------------------------
def test_the_interpolate_page_offers_the_other_finished_videos(client, luma):
    gen, other = make_gen(), make_gen(user_prompt="a lighthouse at dawn")
    running = make_gen(Status.IN_PROGRESS, user_prompt="still running")
    page = client.get(f"/generations/{gen.pk}/interpolate/").content.decode()
    assert f'value="{other.pk}"' in page and "a lighthouse at dawn" in page
    assert f'value="{gen.pk}"' not in page and f'value="{running.pk}"' not in page
    chosen = client.get(f"/generations/{gen.pk}/interpolate/", {"end": str(other.pk)})
    assert f'value="{other.pk}" checked' in chosen.content.decode()


def test_interpolate_queues_from_this_one_to_that_one(client, luma):
    gen, other = make_gen(), make_gen()
    response = client.post(
        f"/generations/{gen.pk}/interpolate/", {"user_prompt": "through", "end": str(other.pk)}
    )
    made = Generation.objects.get(kind=Kind.INTERPOLATE)
    assert response["Location"] == f"/generations/{made.pk}/"
    assert (made.parent_id, made.end_parent_id) == (gen.pk, other.pk)
    assert (made.parent_remote_id, made.end_parent_remote_id) == (gen.remote_id, other.remote_id)


@pytest.mark.parametrize("end", ["", "self", "running", "junk"])
def test_a_refused_interpolation_says_why_without_a_trace(client, luma, end):
    gen = make_gen()
    value = {"self": str(gen.pk), "running": str(make_gen(Status.IN_PROGRESS).pk)}.get(end, end)
    response = client.post(
        f"/generations/{gen.pk}/interpolate/", {"user_prompt": "x", "end": value}
    )
    assert response.status_code == 400
    assert b"errorlist" in response.content
    _no_trace(response)
    assert not Generation.objects.filter(kind=Kind.INTERPOLATE).exists()


def _queries(client, path) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    return len(ctx.captured_queries)


def test_the_interpolate_page_reads_a_fixed_number_of_queries(client, luma, user):
    gen = make_gen(user=user)
    make_gen(user=user)
    few = _queries(client, f"/generations/{gen.pk}/interpolate/")
    for _ in range(8):
        make_gen(user=make_user(f"maker{Generation.objects.count()}"))
    assert _queries(client, f"/generations/{gen.pk}/interpolate/") == few
    assert few <= 12


# --- the Team page ------------------------------------------------------------------------------
@pytest.fixture
def admin_client(db):
    boss = make_user("boss")
    actions.set_member(None, boss, role=Role.ADMIN)
    client = Client()
    client.force_login(boss)
    return client


def test_the_team_page_names_the_provider(admin_client):
    page = admin_client.get("/team/").content.decode()
    assert "UmamiAI" in page and "balance unavailable" not in page


def test_the_team_page_says_balance_unavailable_when_the_service_does_not_answer(
    admin_client, luma
):
    luma.LUMA_API_BASE_URL = "http://127.0.0.1:8451/dream-machine/v1"  # nothing listens there
    luma.LUMA_API_KEY = "luma-test-key"
    response = admin_client.get("/team/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Luma Dream Machine API" in page and "balance unavailable" in page
    assert "luma-test-key" not in page
    _no_trace(response)


# --- in a browser: axe, and the two journeys ---------------------------------------------
@pytest.mark.browser
def test_before_inline_and_the_interpolate_page_in_a_browser_pass_axe(
    browser, live_server, transactional_db, settings, tmp_path
):
    from tests.pages.test_accessibility import PHONE, TIMEOUT_MS, Audit, jpeg

    settings.LUMA_PROVIDER = "luma"
    # Luma's concept list where the provider keeps it: no service is asked
    offer_concepts(["dolly_zoom", "orbit_left", "crane_up"], 300)
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(tmp_path / "media")
    make_user("dana", password="dana-pass-123")
    colours = [(40, 90, 160), (170, 80, 60), (60, 140, 90), (120, 70, 150)]
    prompts = [
        "A paper lantern rising over a still lake",
        "A lighthouse beam sweeping through fog",
        "A fox crossing a snowy field at dusk",
        "Rain on a neon-lit street, seen from a window",
    ]
    gens = [
        make_gen(user_prompt=p, thumbnail_file=jpeg(f"t{i}", c))
        for i, (p, c) in enumerate(zip(prompts, colours, strict=True))
    ]
    first = gens[0]
    problems: list[str] = []
    for phone in (False, True):
        viewport = PHONE if phone else {"width": 1280, "height": 900}
        context = browser.new_context(viewport=viewport, is_mobile=phone, bypass_csp=True)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.emulate_media(reduced_motion="reduce")
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        audit = Audit(page, live_server.url, "light", PHONE["width"] if phone else None)
        audit.goto("/accounts/login/")
        page.fill("input[name=username]", "dana")
        page.fill("input[name=password]", "dana-pass-123")
        page.click("button[type=submit]")
        page.wait_for_url(live_server.url + "/")

        if not phone:  # the inline form in a card, with htmx
            page.locator(f"#card-{first.pk} .before-btn").click()
            prompt = page.locator(f"#before-{first.pk}-user_prompt")
            prompt.wait_for()
            audit.check("gallery, What came before open in a card")
            prompt.fill("A hand lights the lantern on the shore")
            page.locator(f"#extend-slot-{first.pk} button[type=submit]").click()
            made = page.locator(".card .kind-tag", has_text="Before")
            made.first.wait_for()
            assert Generation.objects.filter(kind=Kind.REVERSE, parent=first).count() == 1

        audit.goto(f"/generations/{first.pk}/before/")
        audit.check("What came before, its page")
        if os.environ.get("LUMAWEB_DOC_SHOTS") and not phone:
            page.screenshot(path=str(SHOTS / "before.png"), full_page=True)
        audit.goto(f"/generations/{first.pk}/interpolate/?end={gens[1].pk}")
        audit.check("Interpolate, the end picked")
        if os.environ.get("LUMAWEB_DOC_SHOTS"):
            name = "interpolate-phone.png" if phone else "interpolate.png"
            page.screenshot(path=str(SHOTS / name), full_page=True)
        if not phone:
            page.fill("#id_user_prompt", "The lantern drifts into the fog")
            page.click("button:has-text('Interpolate')")
            page.wait_for_url(lambda url: "/interpolate/" not in url)
            audit.check("the interpolation's own page")
            if os.environ.get("LUMAWEB_DOC_SHOTS"):
                page.screenshot(path=str(SHOTS / "interpolation-detail.png"), full_page=True)
            made = Generation.objects.get(kind=Kind.INTERPOLATE)
            assert (made.parent_id, made.end_parent_id) == (first.pk, gens[1].pk)
        context.close()
        assert errors == [], errors
        if audit.findings:
            problems.append(audit.report())
        if audit.too_wide:
            problems.append("wider than a phone:\n  - " + "\n  - ".join(audit.too_wide))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
