"""Boards on the pages: who sees which board (a private board is 404 to others, a shared one is
the team's), who may rename, share and delete it (its owner or an admin), adding and removing a
video from its card's menu (with htmx and without JavaScript) is idempotent, and the board's ZIP
holds its copied videos under their download names."""

from __future__ import annotations

import io
import re
import zipfile
from html import unescape
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from generations import actions, boards
from generations.models import Board, BoardItem, Generation, Role, Status
from generations.templatetags.studio import download_name
from tests.factories import make_user
from tests.pages.conftest import htmx, make_gen


@pytest.fixture
def carol(db):
    return make_user("carol")


def client_for(person) -> Client:
    client = Client()
    client.force_login(person)
    return client


def test_a_private_board_is_not_found_for_anyone_else_even_an_admin(client, user, other):
    board = boards.create_board(user, "Secret pitch")
    boss = make_user("boss", is_superuser=True)
    for person in (other, boss):
        stranger = client_for(person)
        for url in (
            f"/boards/{board.pk}/",
            f"/boards/{board.pk}/download.zip",
            f"/api/v1/boards/{board.pk}",
        ):
            assert stranger.get(url).status_code == 404, (person, url)
        gen = make_gen()
        posted = stranger.post(f"/generations/{gen.pk}/boards/{board.pk}/", {"on": "yes"})
        assert posted.status_code == 404
        assert stranger.post(f"/boards/{board.pk}/rename/", {"name": "x"}).status_code == 404
        assert stranger.post(f"/boards/{board.pk}/delete/").status_code == 404
        assert "Secret pitch" not in stranger.get("/boards/").content.decode()
    assert not BoardItem.objects.exists()
    assert Board.objects.get(pk=board.pk).name == "Secret pitch"
    assert client.get(f"/boards/{board.pk}/").status_code == 200


def test_a_shared_board_is_seen_and_filled_by_the_team_but_renamed_only_by_its_owner_or_an_admin(
    client, user, other, carol
):
    board = boards.create_board(user, "Moodboard", shared=True)
    gen = make_gen(user=carol)
    viewer = client_for(other)
    actions.set_member(None, other, role=Role.VIEWER)  # viewers organise too
    listing = viewer.get("/boards/").content.decode()
    assert "Moodboard" in listing and "Shared by the team" in listing
    assert viewer.get(f"/boards/{board.pk}/").status_code == 200
    viewer.post(f"/generations/{gen.pk}/boards/{board.pk}/", {"on": "yes"})
    assert list(board.generations.all()) == [gen]

    page = viewer.get(f"/boards/{board.pk}/").content.decode()
    assert "Rename…" not in page and "Delete board" not in page
    refused = viewer.post(f"/boards/{board.pk}/rename/", {"name": "Mine now"}, follow=True)
    assert "Only the person who made this board" in refused.content.decode()
    viewer.post(f"/boards/{board.pk}/sharing/", {"shared": "no"})
    viewer.post(f"/boards/{board.pk}/delete/")
    board.refresh_from_db()
    assert (board.name, board.shared) == ("Moodboard", True)

    boss = make_user("boss")
    actions.set_member(None, boss, role=Role.ADMIN)
    admin = client_for(boss)
    assert "Rename…" in admin.get(f"/boards/{board.pk}/").content.decode()
    admin.post(f"/boards/{board.pk}/rename/", {"name": "  Team   picks "})
    board.refresh_from_db()
    assert board.name == "Team picks"
    client.post(f"/boards/{board.pk}/sharing/", {"shared": "no"})
    board.refresh_from_db()
    assert board.shared is False
    assert viewer.get(f"/boards/{board.pk}/").status_code == 404  # private again: gone for others

    assert client.post(f"/boards/{board.pk}/delete/").status_code == 302
    assert not Board.objects.filter(pk=board.pk).exists()
    assert Generation.objects.filter(pk=gen.pk).exists()  # deleting a board keeps its videos


def test_making_a_board_on_the_boards_page_and_a_bad_name_refused_with_the_reason(client, user):
    answer = client.post("/boards/", {"name": "   ", "shared": "yes"})
    assert answer.status_code == 400
    assert "Give the board a name." in answer.content.decode()
    assert client.post("/boards/", {"name": "x" * 101}).status_code == 400
    assert not Board.objects.exists()
    made = client.post("/boards/", {"name": "Launch reel", "shared": "yes"})
    board = Board.objects.get()
    assert made["Location"] == f"/boards/{board.pk}/"
    assert (board.name, board.shared, board.created_by) == ("Launch reel", True, user)
    page = client.get("/boards/").content.decode()
    assert "Launch reel" in page and "0 videos" in page and "board-cover-empty" in page


def test_the_card_menu_adds_and_removes_idempotently_with_htmx(client, user):
    board = boards.create_board(user, "Picks")
    gen = make_gen(user=user)
    target = htmx(f"board-pick-{gen.pk}")
    menu = client.get(f"/generations/{gen.pk}/boards/", **target).content.decode()
    assert f'id="board-toggle-{gen.pk}-{board.pk}"' in menu
    assert 'aria-pressed="false"' in menu and 'aria-expanded="true"' in menu

    url = f"/generations/{gen.pk}/boards/{board.pk}/"
    for _ in range(2):  # a double click: still once on the board
        answer = client.post(url, {"on": "yes"}, **target).content.decode()
        assert 'aria-pressed="true"' in answer
        assert BoardItem.objects.filter(board=board, generation=gen).count() == 1
    assert "Already on “Picks”." in answer  # the toast of the second click
    for _ in range(2):
        answer = client.post(url, {"on": "no"}, **target).content.decode()
        assert 'aria-pressed="false"' in answer
    assert not BoardItem.objects.exists()

    closed = client.get(f"/generations/{gen.pk}/boards/?closed=1", **target).content.decode()
    assert 'aria-expanded="false"' in closed and "board-toggle" not in closed


def test_the_menu_works_without_javascript_and_comes_back_to_the_page(client, user):
    board = boards.create_board(user, "Picks")
    gen = make_gen(user=user)
    gallery = client.get("/").content.decode()
    assert f'action="/generations/{gen.pk}/boards/"' in gallery  # the card's Boards button
    page = client.get(f"/generations/{gen.pk}/boards/?next=/%3Fq%3Dtest").content.decode()
    assert "Boards for this video" in page and 'href="/?q=test"' in page
    back = f"/generations/{gen.pk}/boards/?next=/%3Fq%3Dtest"
    answer = client.post(f"/generations/{gen.pk}/boards/{board.pk}/", {"on": "yes", "next": back})
    assert answer.status_code == 302 and answer["Location"] == back
    assert list(board.generations.all()) == [gen]
    made = client.post(f"/generations/{gen.pk}/boards/new/", {"name": "Fresh", "next": "/"})
    assert made["Location"] == "/"
    assert list(Board.objects.get(name="Fresh").generations.all()) == [gen]
    off_site = client.post(
        f"/generations/{gen.pk}/boards/{board.pk}/", {"on": "no", "next": "https://evil.test/"}
    )
    assert off_site["Location"] == f"/generations/{gen.pk}/"


def test_the_detail_page_carries_the_board_menu_inside_its_main_part(client, user):
    gen = make_gen(user=user)
    page = client.get(f"/generations/{gen.pk}/").content.decode()
    live = page[page.index('id="live"') : page.index('id="live-notes"')]
    assert f'id="board-pick-{gen.pk}"' in live


def test_a_board_page_shows_its_cards_cover_and_count_and_removes_a_card(client, user):
    board = boards.create_board(user, "Picks", shared=True)
    first = make_gen(user=user, thumbnail_url="http://127.0.0.1:9/cdn/first.jpg")
    last = make_gen(user=user, thumbnail_url="http://127.0.0.1:9/cdn/last.jpg")
    boards.add(board, first, user)
    boards.add(board, last, user)
    page = client.get(f"/boards/{board.pk}/").content.decode()
    assert page.index(f"card-{last.pk}") < page.index(f"card-{first.pk}")  # newest added first
    assert "2 videos" in page
    head = page[page.index('id="board-head"') :]
    assert "cdn/last.jpg" in head.split("</header>")[0]  # the cover: the last one added
    assert 'id="board-share"' in head  # the slot for the Share panel

    answer = client.post(
        f"/generations/{last.pk}/boards/{board.pk}/", {"on": "no"}, **htmx(f"card-{last.pk}")
    ).content.decode()
    assert f"card-{last.pk}" not in answer.split('<span id="board-count"')[0]
    assert '<span id="board-count" hx-swap-oob="true">1 video</span>' in answer
    assert list(board.generations.all()) == [first]


def test_a_board_zip_holds_the_copied_videos_under_their_download_names(
    client, user, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    (tmp_path / "videos").mkdir()
    board = boards.create_board(user, "Reel: Autumn!")
    copied = []
    for i, prompt in enumerate(["A paper boat at dusk", "A paper boat at dusk", "Fox"]):
        gen = make_gen(user=user, user_prompt=prompt)
        data = f"video {i} ".encode() * 1000
        Path(tmp_path / "videos" / f"{gen.pk}.mp4").write_bytes(data)
        Generation.objects.filter(pk=gen.pk).update(video_file=f"videos/{gen.pk}.mp4")
        gen.refresh_from_db()
        boards.add(board, gen, user)
        copied.append((gen, data))
    uncopied = make_gen(user=user, user_prompt="Still copying this one")
    boards.add(board, uncopied, user)

    response = client.get(f"/boards/{board.pk}/download.zip")
    assert response.status_code == 200
    assert response.streaming  # written as it is sent
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="reel-autumn.zip"'
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    names = archive.namelist()
    assert len(set(names)) == len(names) == 4
    for gen, data in copied:
        name = download_name(gen)
        assert name in names, (name, names)
        assert archive.read(name) == data
        assert archive.getinfo(name).compress_type == zipfile.ZIP_STORED
    readme = archive.read("README.txt").decode()
    assert "Still copying this one" in readme and str(uncopied.pk) in readme


def test_two_videos_with_the_same_download_name_get_unique_names_in_the_zip(
    client, user, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    (tmp_path / "videos").mkdir()
    board = boards.create_board(user, "Twins")
    base = "3f2a0000-0000-4000-8000-00000000000"
    for i in (1, 2):  # same prompt, same first four hex digits: the same download name
        gen = make_gen(user=user, user_prompt="Twin", pk=f"{base}{i}")
        (tmp_path / "videos" / f"{i}.mp4").write_bytes(b"twin %d" % i)
        Generation.objects.filter(pk=gen.pk).update(video_file=f"videos/{i}.mp4")
        boards.add(board, gen, user)
    body = b"".join(client.get(f"/boards/{board.pk}/download.zip").streaming_content)
    names = sorted(zipfile.ZipFile(io.BytesIO(body)).namelist())
    assert names == ["twin-3f2a-2.mp4", "twin-3f2a.mp4"]


def test_deleting_a_video_takes_it_off_its_boards(client, user):
    board = boards.create_board(user, "Picks")
    gen = make_gen(Status.COMPLETED, user=user)
    boards.add(board, gen, user)
    actions.delete_generation(gen, user)
    assert Board.objects.filter(pk=board.pk).exists()
    assert not BoardItem.objects.exists()


def test_the_cover_is_the_latest_added_video_that_has_a_thumbnail_and_every_card_can_go(
    client, user
):
    board = boards.create_board(user, "Picks")
    boards.add(board, make_gen(user=user, thumbnail_url="http://127.0.0.1:9/cdn/cover.jpg"), user)
    running = make_gen(Status.IN_PROGRESS, user=user, thumbnail_url="")
    boards.add(board, running, user)  # added last, but nothing to show
    page = client.get(f"/boards/{board.pk}/").content.decode()
    head = page[page.index('id="board-head"') :].split("</header>")[0]
    assert "cdn/cover.jpg" in head
    card = page[page.index(f'id="card-{running.pk}"') :]
    assert f'action="/generations/{running.pk}/boards/{board.pk}/"' in card.split("</article>")[0]


def test_renaming_and_sharing_with_htmx_answer_the_header_and_a_bad_name_keeps_the_form_open(
    client, user
):
    board = boards.create_board(user, "Picks")
    head = htmx("board-head")
    renamed = client.post(f"/boards/{board.pk}/rename/", {"name": "Final cut"}, **head)
    text = renamed.content.decode()
    assert renamed.status_code == 200 and text.lstrip().startswith('<header id="board-head"')
    assert "<h1>Final cut</h1>" in text and "Renamed the board to “Final cut”." in text
    refused = client.post(f"/boards/{board.pk}/rename/", {"name": "\x00  "}, **head)
    text = refused.content.decode()
    assert (
        "Give the board a name." in text and '<details class="resolve board-rename" open>' in text
    )
    board.refresh_from_db()
    assert board.name == "Final cut"
    shared = client.post(f"/boards/{board.pk}/sharing/", {"shared": "yes"}, **head)
    assert "Make private" in shared.content.decode()
    board.refresh_from_db()
    assert board.shared
    plain = client.post(f"/boards/{board.pk}/rename/", {"name": ""})  # no JavaScript
    assert plain.status_code == 400 and "Give the board a name." in plain.content.decode()


# --- a board page's changing cards ---------------------------------------------------------------
BOARD_WATCHER = re.compile(r'<div id="grid-watch"[^>]*>', re.S)


def board_watcher(html: str) -> str:
    found = BOARD_WATCHER.search(html)
    assert found, html
    return found.group(0)


def test_a_board_page_watches_its_changing_cards_and_stops_when_they_settle(client, user):
    """The board page has the gallery's one watcher, without the live gallery's state: it
    polls only while a card changes (a video still being copied), keeps the board's own tools
    on the cards it answers, and stops (286) once they settle."""
    board = boards.create_board(user, "Picks", shared=True)
    settled = make_gen(user=user)
    copying = make_gen(user=user, assets_next_at=timezone.now())
    boards.add(board, settled, user)
    boards.add(board, copying, user)
    page = client.get(f"/boards/{board.pk}/").content.decode()
    assert "Copying the video…" in page
    found = board_watcher(page)
    assert 'hx-trigger="every 2s"' in found and 'id="grid-live"' not in page
    url = unescape(re.search(r'hx-get="([^"]+)"', found).group(1))
    values = re.findall(r'<input type="hidden" name="watch" value="([^"]+)">', page)
    assert [value.split(".")[0] for value in values] == [str(copying.pk)]

    def poll():
        query = "&".join(f"watch={value}" for value in values)
        return client.get(f"{url}&{query}", **htmx("grid-watch"))

    assert poll().status_code == 204
    Generation.objects.filter(pk=copying.pk).update(video_file="videos/x.mp4")
    answer = poll()
    html = answer.content.decode()
    assert answer.status_code == 286 and "hx-get" not in board_watcher(html)
    card = html[html.index(f'id="card-{copying.pk}"') :]
    assert f'download="{download_name(copying)}"' in card  # Download works now
    assert f'action="/generations/{copying.pk}/boards/{board.pk}/"' in card  # still removable


def test_a_settled_board_page_has_an_idle_watcher_and_extend_goes_to_the_detail_page(client, user):
    """Nothing changes on the board: the watcher is there (an out-of-band swap has its target)
    but sends nothing. Extend on a board card opens the video's page at its extend form: the
    extension is not on the board, so the board does not show its working card."""
    board = boards.create_board(user, "Picks", shared=True)
    gen = make_gen(user=user)
    boards.add(board, gen, user)
    page = client.get(f"/boards/{board.pk}/").content.decode()
    assert "hx-get" not in board_watcher(page)
    extend = re.search(r'<a class="btn btn-small btn-soft extend-btn"[^>]*>', page).group(0)
    assert f'href="/generations/{gen.pk}/#extend"' in extend and "hx-get" not in extend
    gallery = client.get("/").content.decode()  # the gallery keeps its inline extend
    inline = re.search(r'<a class="btn btn-small btn-soft extend-btn"[^>]*>', gallery).group(0)
    assert f'hx-get="/generations/{gen.pk}/extend/"' in inline


def test_a_watch_for_a_board_this_person_does_not_see_shows_no_board_tools(client, user, other):
    secret = boards.create_board(other, "Secret pitch")
    gen = make_gen(user=user, assets_next_at=timezone.now())
    url = f"/generations/cards/?board={secret.pk}&watch={gen.pk}.stale"
    html = client.get(url, **htmx("grid-watch")).content.decode()
    assert f'id="card-{gen.pk}"' in html
    assert "board-remove" not in html and "Secret pitch" not in html
    odd = client.get("/generations/cards/?board=x%00&watch=1", **htmx("grid-watch"))
    assert odd.status_code == 286


def test_in_the_viewer_the_menu_and_like_render_the_viewers_own_ids(client, user):
    """The gallery's viewer (Lumaweb-Viewer: 1) shows a video's menu and Like over its card:
    their ids start with "v-", and the views answer its prefixed targets the same."""
    board = boards.create_board(user, "Picks")
    gen = make_gen(user=user)
    viewer = {**htmx(f"v-board-pick-{gen.pk}"), "HTTP_LUMAWEB_VIEWER": "1"}
    menu = client.get(f"/generations/{gen.pk}/boards/", **viewer)
    assert "Lumaweb-Viewer" in menu["Vary"]
    html = menu.content.decode()
    assert f'id="v-board-pick-{gen.pk}"' in html and f'hx-target="#v-board-pick-{gen.pk}"' in html
    assert f'id="v-board-toggle-{gen.pk}-{board.pk}"' in html
    assert f'id="board-pick-{gen.pk}"' not in html
    answer = client.post(f"/generations/{gen.pk}/boards/{board.pk}/", {"on": "yes"}, **viewer)
    assert 'aria-pressed="true"' in answer.content.decode()  # the menu again, not a redirect
    assert BoardItem.objects.filter(board=board, generation=gen).exists()

    like = client.post(f"/generations/{gen.pk}/like/", **viewer).content.decode()
    assert f'id="v-like-{gen.pk}"' in like
    whole = {**htmx("viewer-body"), "HTTP_LUMAWEB_VIEWER": "1"}
    part = client.get(f"/generations/{gen.pk}/", **whole).content.decode()
    assert f'id="v-like-{gen.pk}"' in part and f'id="v-board-pick-{gen.pk}"' in part
    # The page itself, and the gallery's cards, keep the plain ids.
    page = client.get(f"/generations/{gen.pk}/").content.decode()
    assert f'id="like-{gen.pk}"' in page and f'id="board-pick-{gen.pk}"' in page
    assert f'id="like-{gen.pk}"' in client.get("/").content.decode()
