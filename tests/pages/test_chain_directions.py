"""Issue 11 on the pages: the chain section (on the detail page, and so in the viewer) says which
way each video goes, in words a screen reader reads: "What came before:" for a reverse
extension, "Interpolation:" and "Interpolation to <its end>" for an interpolation (or "Removed
video" once the end is deleted), and, on the end's page, "Reached from <A> by an
interpolation". "Play from the start" offers each leaf's playback order, and the page costs the
same queries however deep such a chain is. Axe finds no blocking problem in these states."""

from __future__ import annotations

import re

import pytest
from django.utils.html import escape

from generations import actions
from generations.models import Generation, Kind
from tests.pages.conftest import htmx, make_gen
from tests.pages.test_query_counts import queries_for


def chain_section(client, gen, **headers) -> str:
    response = client.get(f"/generations/{gen.pk}/", **headers)
    assert response.status_code == 200
    page = response.content.decode()
    found = re.search(r'<section class="chain-wrap panel" id="chain".*?</section>', page, re.S)
    assert found, "no chain section"
    return found.group(0)


@pytest.mark.django_db
def test_the_chain_section_says_which_way_each_video_goes(client, user):
    a = make_gen(user=user, user_prompt="A lantern over a lake")
    v = make_gen(user=user, parent=a, kind=Kind.EXTEND, user_prompt="It rises")
    r = make_gen(user=user, parent=v, kind=Kind.REVERSE, user_prompt="Someone lights it")
    b = make_gen(user=user, user_prompt="A boat at dawn")
    i = make_gen(
        user=user, parent=a, end_parent=b, kind=Kind.INTERPOLATE, user_prompt="Drifting ashore"
    )

    section = chain_section(client, r)
    assert "What came before:</span> Someone lights it" in section
    assert f'data-chain-play="{r.pk},{v.pk}"' in section  # the page's own: R, then V
    assert f'data-chain-play="{a.pk},{i.pk},{b.pk}"' in section  # the interpolation's leaf
    assert "Interpolation:</span> Drifting ashore" in section
    to_b = re.search(r'<a class="chain-to-link" href="([^"]+)" data-chain-clip="([^"]+)"', section)
    assert to_b and to_b.groups() == (f"/generations/{b.pk}/", str(b.pk))  # playable into B
    assert "Interpolation to" in section
    # The viewer shows the same section.
    viewer = chain_section(client, r, **htmx("viewer-body"))
    assert "What came before:" in viewer and "chain-to-link" in viewer

    # B's own page: one video, reached from A by the interpolation.
    theirs = chain_section(client, b)
    assert "Reached by an interpolation" in theirs
    assert f'Reached from <a href="/generations/{a.pk}/">{escape(a.user_prompt)}</a>' in theirs
    assert f'<a href="/generations/{i.pk}/">Drifting ashore</a>' in theirs


@pytest.mark.django_db
def test_deleted_sources_read_removed_video_not_an_error(client, user, other):
    a = make_gen(user=other, user_prompt="The start")
    b = make_gen(user=other, user_prompt="The end")
    i = make_gen(user=user, parent=a, end_parent=b, kind=Kind.INTERPOLATE, user_prompt="Between")
    actions.delete_generation(Generation.objects.get(pk=b.pk), other)
    section = chain_section(client, i)
    assert 'Interpolation to <span class="chain-to-removed">Removed video</span>' in section
    actions.delete_generation(Generation.objects.get(pk=a.pk), other)
    section = chain_section(client, i)
    assert "Removed video</span>" in section and "chain-to-link" not in section


@pytest.mark.django_db
def test_the_detail_page_costs_the_same_with_both_directions_20_deep_as_3_deep(client, user):
    def chain(depth: int):
        end = make_gen(user=user, video_file="videos/end.mp4")
        link = make_gen(user=user)
        for step in range(depth):
            kind = (Kind.EXTEND, Kind.REVERSE, Kind.INTERPOLATE)[step % 3]
            extra = {"end_parent": end} if kind == Kind.INTERPOLATE else {}
            link = make_gen(user=user, parent=link, kind=kind, video_file=f"v/{step}.mp4", **extra)
        return link, end

    (shallow, shallow_end), (deep, deep_end) = chain(3), chain(20)
    assert queries_for(client, f"/generations/{shallow.pk}/") == queries_for(
        client, f"/generations/{deep.pk}/"
    )
    # The end's page, reached by 1 interpolation or by 6.
    assert queries_for(client, f"/generations/{shallow_end.pk}/") == queries_for(
        client, f"/generations/{deep_end.pk}/"
    )
    assert chain_section(client, deep_end).count("Reached from") == 6


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_blocking_problem_in_the_chain_directions(
    browser, live_server, transactional_db, settings, scheme
):
    from tests.factories import make_user
    from tests.pages.test_accessibility import TIMEOUT_MS, Audit

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    dana = make_user("dana", password="dana-pass-123")
    a = make_gen(user=dana, user_prompt="A lantern over a lake")
    v = make_gen(user=dana, parent=a, kind=Kind.EXTEND, user_prompt="It rises")
    r = make_gen(user=dana, parent=v, kind=Kind.REVERSE, user_prompt="Someone lights it")
    b = make_gen(user=dana, user_prompt="A boat at dawn")
    i = make_gen(user=dana, parent=a, end_parent=b, kind=Kind.INTERPOLATE, user_prompt="Ashore")
    gone = make_gen(user=dana, user_prompt="Gone soon")
    make_gen(user=dana, parent=v, end_parent=gone, kind=Kind.INTERPOLATE, user_prompt="Into it")
    actions.delete_generation(gone, dana)

    context = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    audit = Audit(page, live_server.url, scheme)
    audit.goto("/accounts/login/")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "dana-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    for gen, state in ((r, "what came before"), (i, "an interpolation"), (b, "reached by one")):
        audit.goto(f"/generations/{gen.pk}/")
        page.locator("#chain").wait_for()
        audit.check(f"chain: {state}")
    context.close()
    assert errors == [], errors
    if audit.findings:
        pytest.fail(audit.report(), pytrace=False)
