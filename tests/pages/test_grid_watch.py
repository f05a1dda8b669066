"""The gallery's one poll for its changing cards (a new extension, a video still being copied):
one watcher element sends every changing card's live version, and is answered 204 while none
changed, the changed cards out of band otherwise, and 286 once none is changing."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from generations.models import Generation, Status
from generations.templatetags.studio import download_name
from tests.pages.conftest import htmx, make_gen

WATCHER = re.compile(r'<div id="grid-watch"[^>]*>', re.S)


def copying(**fields) -> Generation:
    """A finished video whose local copy is still to be made: its card keeps changing."""
    return make_gen(Status.COMPLETED, assets_next_at=timezone.now(), **fields)


def watch_values(html: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="watch" value="([^"]+)">', html)


def poll(client, values: list[str]):
    query = "&".join(f"watch={value}" for value in values)
    return client.get(f"{reverse('generation-cards')}?{query}", **htmx("grid-watch"))


def watcher(html: str) -> str:
    found = WATCHER.search(html)
    assert found, html
    return found.group(0)


def test_the_gallery_polls_once_for_all_its_changing_cards(client):
    settled = make_gen()
    changing = [copying(), copying()]
    html = client.get("/").content.decode()
    assert 'hx-trigger="every 2s"' in watcher(html)
    assert html.count("every 2s") == 1  # no card polls by itself any more
    watched = {value.split(".")[0] for value in watch_values(html)}
    assert watched == {str(gen.pk) for gen in changing}
    assert str(settled.pk) not in watched


def test_a_gallery_where_nothing_changes_has_an_idle_watcher(client):
    make_gen()
    html = client.get("/").content.decode()
    assert "hx-get" not in watcher(html) and watch_values(html) == []


def test_the_watcher_answers_204_while_no_card_changed(client):
    copying()
    copying()
    values = watch_values(client.get("/").content.decode())
    response = poll(client, values)
    assert response.status_code == 204 and response.content == b""


def test_the_watcher_answers_only_the_changed_cards_out_of_band_and_keeps_watching(client):
    done_soon, still = copying(), copying()
    values = watch_values(client.get("/").content.decode())
    Generation.objects.filter(pk=done_soon.pk).update(video_file="videos/x.mp4")
    response = poll(client, values)
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(rf'<article [^>]*id="card-{done_soon.pk}"[^>]*hx-swap-oob="true"', html)
    assert f"card-{still.pk}" not in html  # unchanged: not sent again
    assert 'hx-trigger="every 2s"' in watcher(html)  # the other one still changes
    assert f'download="{download_name(done_soon)}"' in html  # the copy can be downloaded now
    assert watch_values(html) == []  # the settled card asks to be watched no more


def test_the_watcher_stops_with_286_when_no_card_changes_any_more(client):
    gen = copying()
    values = watch_values(client.get("/").content.decode())
    Generation.objects.filter(pk=gen.pk).update(video_file="videos/x.mp4")
    response = poll(client, values)
    html = response.content.decode()
    assert response.status_code == 286
    assert f'id="card-{gen.pk}"' in html and "hx-get" not in watcher(html)


def test_a_copy_given_up_on_settles_the_card_too(client):
    gen = copying()
    values = watch_values(client.get("/").content.decode())
    Generation.objects.filter(pk=gen.pk).update(assets_next_at=None)  # no local copy, ever
    response = poll(client, values)
    assert response.status_code == 286 and f'id="card-{gen.pk}"' in response.content.decode()


def test_a_deleted_card_is_removed_and_the_watch_ends(client):
    gen = copying()
    values = watch_values(client.get("/").content.decode())
    Generation.objects.filter(pk=gen.pk).delete()
    response = poll(client, values)
    assert response.status_code == 286
    assert f'<div id="card-{gen.pk}" hx-swap-oob="delete"></div>' in response.content.decode()


def test_odd_watch_values_are_ignored_and_a_plain_visit_goes_to_the_gallery(client):
    response = poll(client, ["not-a-uuid.x", "", "." * 40])
    assert response.status_code == 286 and "hx-get" not in watcher(response.content.decode())
    plain = client.get(reverse("generation-cards") + "?watch=x")
    assert plain.status_code == 302 and plain["Location"] == reverse("gallery")


def test_an_inline_extend_wakes_the_watcher_for_the_new_card(client, user):
    parent = make_gen(user=user)
    assert "hx-get" not in watcher(client.get("/").content.decode())  # idle before
    response = client.post(
        reverse("generation-extend", args=[parent.pk]),
        {"user_prompt": "then it snows"},
        **htmx(f"card-{parent.pk}"),
    )
    child = Generation.objects.get(parent=parent)
    html = response.content.decode()
    assert re.search(rf'<article [^>]*id="card-{child.pk}"', html)
    assert [v.split(".")[0] for v in watch_values(html)] == [str(child.pk)]
    woken = watcher(html)
    assert 'hx-swap-oob="true"' in woken and 'hx-trigger="every 2s"' in woken
    # The watcher, polling with the new card's value, is told "unchanged" until it moves.
    assert poll(client, watch_values(html)).status_code == 204
    Generation.objects.filter(pk=child.pk).update(
        status=Status.IN_PROGRESS, status_changed_at=timezone.now()
    )
    moved = poll(client, watch_values(html))
    assert moved.status_code == 200 and "In progress" in moved.content.decode()


def test_load_more_with_a_changing_card_wakes_the_watcher(client):
    for _ in range(24):
        make_gen()
    older = copying(completed_at=timezone.now() - timedelta(days=1))
    first = client.get("/").content.decode()
    assert "hx-get" not in watcher(first)  # page one: nothing changing
    more = re.search(r'id="more"[^>]*hx-get="([^"]+)"', first).group(1).replace("&amp;", "&")
    html = client.get(more, **htmx("more")).content.decode()
    assert f'id="card-{older.pk}"' in html
    woken = watcher(html)
    assert 'hx-swap-oob="true"' in woken and 'hx-trigger="every 2s"' in woken
