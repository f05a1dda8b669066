"""The gallery's viewer, server side: the detail URL answers the viewer (htmx aimed at
#viewer-body) with only the detail page's ``viewer`` partial, and everyone else with the whole
page; a gallery card links to that URL, so without JavaScript a click opens the detail page."""

from __future__ import annotations

import re

from django.urls import reverse
from django.utils import timezone

from generations.models import Status
from tests.pages.conftest import htmx, make_gen


def test_an_htmx_request_for_the_viewer_gets_only_the_detail_partial(client, user):
    gen = make_gen(user=user, user_prompt="a paper boat at dusk", video_file="videos/boat.mp4")
    url = reverse("generation-detail", args=[gen.pk])

    response = client.get(url, **htmx("viewer-body"))

    assert response.status_code == 200
    html = response.content.decode()
    assert not html.lstrip().startswith("<!doctype")
    assert "<html" not in html and "topbar" not in html  # no page around it
    assert 'class="crumbs' not in html
    assert html.lstrip().startswith('<div class="detail">')
    assert '<h1 class="detail-prompt">a paper boat at dusk</h1>' in html
    assert re.search(r"<video [^>]*controls", html)  # the player
    assert 'id="like-' in html and "Download MP4" in html  # and its actions
    assert 'id="live-side"' in html  # what the page shows beside the video comes along
    assert "HX-Target" in response["Vary"]  # one URL, two answers: caches must tell them apart


def test_a_normal_request_for_the_detail_url_gets_the_whole_page(client, user):
    gen = make_gen(user=user, user_prompt="a paper boat at dusk", video_file="videos/boat.mp4")
    url = reverse("generation-detail", args=[gen.pk])

    for headers in ({}, htmx()):  # a plain load, and htmx aimed at nothing (hx-boost and such)
        html = client.get(url, **headers).content.decode()
        assert html.lstrip().lower().startswith("<!doctype html>")
        assert 'class="topbar"' in html and 'class="crumbs' in html
        assert '<div class="detail">' in html and re.search(r"<video [^>]*controls", html)


def test_a_gallery_card_links_its_video_to_the_detail_page(client, user):
    done = make_gen(user=user, user_prompt="done one")
    working = make_gen(Status.IN_PROGRESS, user=user, user_prompt="working one", parent=done)
    detail = reverse("generation-detail", args=[done.pk])

    html = client.get(reverse("gallery")).content.decode()

    card = html[html.index(f'id="card-{done.pk}"') :]
    card = card[: card.index("</article>")]
    # The picture itself is a link (out of the tab order: the prompt's link is the card's one
    # stop), and both are marked for the viewer; without JavaScript they open the page.
    assert re.search(rf'<a class="card-open" href="{detail}" data-viewer tabindex="-1"', card)
    assert re.search(rf'<a href="{detail}" data-viewer title="done one">done one</a>', card)
    cards = client.get(reverse("generation-cards") + f"?watch={working.pk}.x", **htmx())
    assert b"data-viewer" not in cards.content  # a working card has no video to view yet


def test_the_viewer_of_a_video_still_being_copied_holds_every_target_of_its_poll(client, user):
    """The live block polls in the viewer as on the page; its answer swaps #live-notes and
    #live-side out of band, so the partial must hold them (the gallery has no others)."""
    gen = make_gen(user=user, assets_next_at=timezone.now())  # finished, not copied yet
    url = reverse("generation-detail", args=[gen.pk])

    html = client.get(url, **htmx("viewer-body")).content.decode()

    assert re.search(r'id="live"[^>]*hx-get="[^"]+" hx-trigger="every 2s"', html)
    assert 'id="live-notes"' in html and 'id="live-side"' in html
