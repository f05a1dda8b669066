"""The gallery's one poll for its changing cards (a new extension, a video still being copied)
and for new videos: one watcher element sends every changing card's live version and the page's
live state (#grid-live), and is answered 204 while nothing changed, the changed cards and the new
videos out of band otherwise; on a page that only watches its cards, 286 once none is changing.

A live gallery (the newest-first first page) gets new videos slotted in at the top; another
order, or a later page, a count of them ("2 new videos · Show") and an unchanged grid."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from generations import queries
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


def test_a_gallery_where_nothing_changes_still_watches_slowly_for_new_videos(client):
    make_gen()
    html = client.get("/").content.decode()
    found = watcher(html)
    assert 'hx-trigger="every 10s"' in found and "fast=1" not in found
    assert "#grid-live input" in found and watch_values(html) == []


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
    assert 'hx-trigger="every 10s"' in watcher(client.get("/").content.decode())  # slow before
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
    assert 'hx-trigger="every 10s"' in watcher(first)  # page one: nothing changing
    more = re.search(r'id="more"[^>]*hx-get="([^"]+)"', first).group(1).replace("&amp;", "&")
    html = client.get(more, **htmx("more")).content.decode()
    assert f'id="card-{older.pk}"' in html
    woken = watcher(html)
    assert 'hx-swap-oob="true"' in woken and 'hx-trigger="every 2s"' in woken


# --- the live gallery -----------------------------------------------------------------------------
LIVE = re.compile(r'<div id="grid-live"[^>]*>(.*?)</div>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def live_state(html: str) -> list[tuple[str, str]]:
    """The page's live state, as the watcher sends it (hx-include="#grid-live input")."""
    found = LIVE.search(html)
    assert found, html
    return [(name, unescape(value)) for name, value in HIDDEN.findall(found.group(1))]


class Page:
    """A gallery page as htmx keeps it: its live state, its watcher and its cards' watch
    values, each brought up to date by the out-of-band parts of every answer."""

    def __init__(self, client, url: str = "/") -> None:
        self.client = client
        self.html = client.get(url).content.decode()
        self.state = live_state(self.html)
        self.url = unescape(re.search(r'hx-get="([^"]+)"', watcher(self.html)).group(1))
        self.watch = watch_values(self.html)

    def poll(self):
        params = urlencode([*self.state, *(("watch", value) for value in self.watch)])
        joiner = "&" if "?" in self.url else "?"
        response = self.client.get(f"{self.url}{joiner}{params}", **htmx("grid-watch"))
        if response.status_code == 200:
            html = response.content.decode()
            self.state = live_state(html)
            self.url = unescape(re.search(r'hx-get="([^"]+)"', watcher(html)).group(1))
            self.watch = watch_values(html)
        return response


def slotted_in(html: str) -> list[str]:
    """The ids of the cards an answer slots in at the top of the grid, in order."""
    block = re.search(r'<div hx-swap-oob="afterbegin:#grid">(.*?)</div>\s*$', html, re.S)
    return (
        re.findall(r'<article class="card[^"]*" id="card-([0-9a-f-]+)"', block.group(1))
        if block
        else []
    )


def finished(**fields) -> Generation:
    """A video that finished just now (``make_gen`` dates each row a little further back)."""
    return make_gen(completed_at=timezone.now(), **fields)


def cursor(gen: Generation) -> str:
    gen.refresh_from_db()
    return queries.encode_moment(gen.completed_at, gen.pk)


def test_the_page_remembers_the_newest_finished_video_whatever_its_filters(client, other):
    newest = finished(user=other)
    make_gen(Status.IN_PROGRESS)  # not finished: not a "new video" yet
    assert dict(live_state(client.get("/").content.decode())) == {
        "live": "top",
        "seen": cursor(newest),
    }
    mine = dict(live_state(client.get("/?who=mine&sort=likes").content.decode()))
    assert mine == {
        "live": "count",  # another order: count new videos, leave the grid alone
        "seen": cursor(newest),
        "since": cursor(newest),
        "told": "0",
        "who": "mine",
        "sort": "likes",
        "empty": "1",
    }


def test_nothing_new_answers_204(client):
    make_gen()
    page = Page(client)
    response = page.poll()
    assert response.status_code == 204 and response.content == b""


def test_a_new_video_is_slotted_in_at_the_top_once(client, other):
    make_gen()
    page = Page(client)
    first, second = finished(user=other), finished(user=other)  # anyone's
    response = page.poll()
    html = response.content.decode()
    assert response.status_code == 200  # never 286: new videos may come at any time
    order = sorted([first, second], key=cursor, reverse=True)
    assert slotted_in(html) == [str(gen.pk) for gen in order]  # newest first
    assert 'class="card card-completed is-new"' in html
    assert "2 new videos at the top of the gallery." in html  # for screen readers
    assert dict(page.state)["seen"] == cursor(order[0])
    assert 'hx-trigger="every 10s"' in watcher(html)
    assert page.poll().status_code == 204  # told once: the next poll has nothing new


def test_a_new_video_that_is_still_being_copied_hurries_the_watcher(client, other):
    make_gen()
    page = Page(client)
    new = copying(user=other, completed_at=timezone.now())
    html = page.poll().content.decode()
    assert slotted_in(html) == [str(new.pk)]
    assert 'hx-trigger="every 2s"' in watcher(html) and "fast=1" in page.url
    assert page.watch and page.watch[0].startswith(str(new.pk))
    assert page.poll().status_code == 204  # fast, watching it, nothing changed
    Generation.objects.filter(pk=new.pk).update(video_file="videos/x.mp4")
    settled = page.poll()
    assert settled.status_code == 200 and f'id="card-{new.pk}"' in settled.content.decode()
    assert 'hx-trigger="every 10s"' in watcher(settled.content.decode())  # slow again


def test_new_videos_the_filters_leave_out_are_not_shown_and_not_asked_about_again(
    client, user, other
):
    make_gen(user=user)
    page = Page(client, "/?who=mine")
    theirs = finished(user=other)
    response = page.poll()
    assert response.status_code == 200 and slotted_in(response.content.decode()) == []
    assert dict(page.state)["seen"] == cursor(theirs)  # moved on all the same
    assert page.poll().status_code == 204
    mine = finished(user=user)
    assert slotted_in(page.poll().content.decode()) == [str(mine.pk)]


def test_the_first_new_video_turns_an_empty_gallery_into_a_grid(client, other):
    page = Page(client)
    assert '<div class="grid" id="grid" hidden></div>' in page.html
    assert 'id="gallery-empty"' in page.html and dict(page.state)["empty"] == "1"
    new = finished(user=other)
    html = page.poll().content.decode()
    assert re.search(
        rf'<div class="grid" id="grid" hx-swap-oob="true">\s*<article[^>]*id="card-{new.pk}"', html
    )
    assert '<div id="gallery-empty" hx-swap-oob="delete"></div>' in html
    assert "empty" not in dict(page.state)
    another = finished(user=other)
    assert slotted_in(page.poll().content.decode()) == [str(another.pk)]  # a grid now


def test_a_finished_extension_replaces_its_working_card_and_is_not_slotted_in(client, user):
    parent = make_gen(user=user)
    page = Page(client)
    extended = client.post(
        reverse("generation-extend", args=[parent.pk]),
        {"user_prompt": "then it snows"},
        **htmx(f"card-{parent.pk}"),
    ).content.decode()
    child = Generation.objects.get(parent=parent)
    page.watch = watch_values(extended)  # the working card, next to its parent
    page.url = unescape(re.search(r'hx-get="([^"]+)"', watcher(extended)).group(1))
    assert page.poll().status_code == 204
    now = timezone.now()
    Generation.objects.filter(pk=child.pk).update(
        status=Status.COMPLETED, completed_at=now, status_changed_at=now, video_url="http://x/v.mp4"
    )
    html = page.poll().content.decode()
    assert re.search(
        rf'<article class="card card-completed" id="card-{child.pk}"[^>]*hx-swap-oob="true"', html
    )
    assert slotted_in(html) == []  # replaced where it is, not added again at the top
    assert html.count(f'id="card-{child.pk}"') == 1
    assert page.poll().status_code == 204


@pytest.mark.parametrize("url", ["/?sort=likes", "/?sort=oldest", "/?ar=16:9&after=LATER"])
def test_another_order_or_a_later_page_gets_a_notice_not_new_cards(client, other, url):
    for _ in range(3):
        make_gen()
    later = queries.encode_moment(timezone.now() + timedelta(days=1), Generation.objects.first().pk)
    page = Page(client, url.replace("LATER", later))
    grid_before = re.findall(r'id="card-([0-9a-f-]+)"', page.html)
    finished(user=other)
    html = page.poll().content.decode()
    assert slotted_in(html) == [] and "is-new" not in html
    notice = re.search(
        r'<div id="gallery-news"[^>]*hx-swap-oob="innerHTML">(.*?)</div>', html, re.S
    )
    assert notice and "1 new video</span>" in notice.group(1)
    show = re.search(r'<a href="([^"]+)">Show', notice.group(1)).group(1)
    assert show == ("/?ar=16%3A9" if "ar=" in url else "/")  # newest first, from the top
    assert page.poll().status_code == 204
    finished(user=other)
    assert "2 new videos</span>" in page.poll().content.decode()
    assert re.findall(r'id="card-([0-9a-f-]+)"', page.html) == grid_before


def test_more_new_videos_than_a_page_holds_become_a_notice(client, other):
    make_gen()
    page = Page(client)
    for _ in range(queries.GALLERY_PAGE_SIZE + 2):
        finished(user=other)
    html = page.poll().content.decode()
    assert slotted_in(html) == []
    assert f"{queries.GALLERY_PAGE_SIZE + 2} new videos</span>" in html
    assert dict(page.state)["live"] == "count"


def test_a_poll_answered_twice_names_the_same_videos_and_nothing_newer_than_it_reports(
    client, other
):
    """The server does not remember what it sent: two polls with the same state get the same
    cards (gallery.js keeps a card the page shows from being slotted in twice), and a video
    finishing between the answer's two queries waits for the next poll."""
    make_gen()
    page = Page(client)
    state = list(page.state)
    new = finished(user=other)
    first = page.poll().content.decode()
    page.state = state
    again = page.poll().content.decode()
    assert slotted_in(first) == slotted_in(again) == [str(new.pk)]


def test_a_video_finishing_while_the_page_is_drawn_comes_with_the_next_poll(
    client, other, monkeypatch
):
    """The page reads the newest finished video before its cards: one that finishes between
    the two reads is not on the page, and the page's state does not point past it either."""
    make_gen()
    working = make_gen(Status.IN_PROGRESS, user=other)
    read_page = queries.gallery_page

    def page_then_a_video_finishes(*args, **kwargs):
        page = read_page(*args, **kwargs)
        now = timezone.now()
        Generation.objects.filter(pk=working.pk).update(
            status=Status.COMPLETED, completed_at=now, status_changed_at=now
        )
        return page

    monkeypatch.setattr(queries, "gallery_page", page_then_a_video_finishes)
    page = Page(client)
    assert f'id="card-{working.pk}"' not in page.html
    response = page.poll()
    assert response.status_code == 200
    assert slotted_in(response.content.decode()) == [str(working.pk)]


def test_the_nothing_new_answer_costs_the_same_few_indexed_queries_with_3_or_30_videos(
    client, other
):
    def cost() -> int:
        page = Page(client)
        with CaptureQueriesContext(connection) as ctx:
            assert page.poll().status_code == 204
        return len(ctx.captured_queries)

    for _ in range(3):
        finished(user=other)
    few = cost()
    for _ in range(27):
        finished(user=other)
    assert cost() == few <= 3  # the session, the user, the newest finished video


@pytest.mark.parametrize(
    "query",
    [
        "live=top&seen=garbage",
        "live=count&since=-1.x&told=99999999999",
        "live=count&told=%C2%B2&fast=%C2%B2&empty=yes",
        "live=top&seen=99999999999999999999.00000000-0000-0000-0000-000000000000",
        "live=elsewhere&seen=1",
        "live=count&sort=likes&after=1.2.3&q=%00",
    ],
)
def test_odd_live_states_never_fail(client, query):
    make_gen()
    response = client.get(f"{reverse('generation-cards')}?{query}", **htmx("grid-watch"))
    assert response.status_code in (200, 204, 286)


def test_the_results_are_no_live_region_only_the_news_and_the_filter_summary_are(client, user):
    """Cards slotted in or replaced are not read aloud in full: the results section is no live
    region. The new-videos notice is one, and so is a short summary a filter change fills."""
    make_gen(user=user)
    make_gen()
    html = client.get("/").content.decode()
    section = re.search(r'<section id="gallery-results"[^>]*>', html).group(0)
    assert "aria-live" not in section and "role=" not in section
    assert re.search(r'<div id="gallery-news" class="news" role="status" aria-live="polite"', html)
    summary = re.search(r'<p id="gallery-summary"[^>]*>(.*?)</p>', html, re.S)
    assert summary and 'role="status"' in summary.group(0) and summary.group(1) == ""
    assert html.index('id="gallery-summary"') < html.index('id="gallery-results"')  # outside
    mine = client.get("/?who=mine", **htmx("gallery-results")).content.decode()
    assert "aria-live" not in re.search(r'<section id="gallery-results"[^>]*>', mine).group(0)
    told = re.search(r'<p id="gallery-summary" hx-swap-oob="innerHTML">(.*?)</p>', mine, re.S)
    assert told and told.group(1).strip() == "1 video."
    none = client.get("/?q=zebra", **htmx("gallery-results")).content.decode()
    assert "Nothing matches these filters." in none
