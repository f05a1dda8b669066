"""Share links: the public page /s/<token>/ and its media, made from the Share panel, listed on
/shares/, revoked; who may share and revoke; the page's noindex and no-referrer; the rate limit;
the token out of every log line."""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from generations import shares
from generations.models import Board, BoardItem, Generation, Member, Role, ShareLink, Status
from tests.factories import make_user
from tests.pages.conftest import make_gen

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40  # 10 KiB, never decoded
POSTER_BYTES = b"\xff\xd8\xff\xe0" + b"poster" * 50


def stored(gen_name: str, **fields) -> dict:
    """A finished video's local copy and poster in MEDIA_ROOT, as the copy step leaves them."""
    root = Path(django_settings.MEDIA_ROOT)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "thumbnails").mkdir(parents=True, exist_ok=True)
    (root / "videos" / f"{gen_name}.mp4").write_bytes(VIDEO_BYTES)
    (root / "thumbnails" / f"{gen_name}.jpg").write_bytes(POSTER_BYTES)
    return {
        "video_file": f"videos/{gen_name}.mp4",
        "thumbnail_file": f"thumbnails/{gen_name}.jpg",
        **fields,
    }


def stranger() -> Client:
    """No login, and an address of its own (the rate limit counts per address, in Redis, for a
    minute: a test must not inherit another's count)."""
    return Client(REMOTE_ADDR=f"2001:db8:{uuid.uuid4().hex[:4]}::1")


def page_path(link: ShareLink) -> str:
    return f"/s/{link.token}/"


def video_path(link: ShareLink, gen: Generation, name: str = "video.mp4") -> str:
    return f"/s/{link.token}/{gen.pk}/{name}"


@pytest.fixture
def video(user) -> Generation:
    return make_gen(user=user, user_prompt="A paper boat at dusk, secret prompt", **stored("boat"))


def link_to(user, *, generation=None, board=None, **fields) -> ShareLink:
    return ShareLink.objects.create(created_by=user, generation=generation, board=board, **fields)


# --- the public page ------------------------------------------------------------------------------
def test_a_video_link_shows_the_video_with_its_poster_and_nothing_of_the_studio(user, video):
    link = link_to(user, generation=video)
    response = stranger().get(page_path(link))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'src="/s/{link.token}/{video.pk}/video.mp4"' in html
    assert f'poster="/s/{link.token}/{video.pk}/poster.jpg"' in html
    assert '<meta name="robots" content="noindex, nofollow">' in html
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "/media/" not in html  # its files come through the link only
    assert "<a " not in html and "<nav" not in html and "<form" not in html  # no way in
    assert user.get_username() not in html
    assert "secret prompt" not in html  # prompts only when the sharer ticked it
    assert "csrftoken" not in response.cookies and "sessionid" not in response.cookies


def test_the_prompts_show_only_when_the_sharer_ticked_it(user, video):
    hidden = link_to(user, generation=video, show_prompts=False)
    shown = link_to(user, generation=video, show_prompts=True)
    client = stranger()
    assert "secret prompt" not in client.get(page_path(hidden)).content.decode()
    assert "A paper boat at dusk, secret prompt" in client.get(page_path(shown)).content.decode()


def test_each_view_is_counted_by_one_update(user, video, django_assert_max_num_queries):
    link = link_to(user, generation=video)
    client = stranger()
    client.get(page_path(link))
    with django_assert_max_num_queries(3):  # the link, one UPDATE, the video
        client.get(page_path(link))
    link.refresh_from_db()
    assert link.views == 2 and link.last_viewed_at is not None


def test_a_board_link_shows_the_board_name_and_its_finished_videos(user, video):
    board = Board.objects.create(name="Client review: boats", created_by=user)
    other = make_gen(user=user, user_prompt="A second boat", **stored("second"))
    running = make_gen(Status.IN_PROGRESS, user=user, user_prompt="Still dreaming")
    for gen in (video, other, running):
        BoardItem.objects.create(board=board, generation=gen)
    link = link_to(user, board=board, show_prompts=True)
    html = stranger().get(page_path(link)).content.decode()
    assert "Client review: boats" in html
    assert f"/s/{link.token}/{video.pk}/video.mp4" in html
    assert f"/s/{link.token}/{other.pk}/video.mp4" in html
    assert str(running.pk) not in html and "Still dreaming" not in html


def test_unknown_expired_and_revoked_tokens_get_the_same_404(user, video):
    expired = link_to(user, generation=video, expires_at=timezone.now() - timedelta(seconds=1))
    revoked = link_to(user, generation=video, revoked_at=timezone.now())
    client = stranger()
    answers = [
        client.get(path)
        for path in ("/s/" + "x" * 43 + "/", page_path(expired), page_path(revoked))
    ]
    assert [a.status_code for a in answers] == [404, 404, 404]
    bodies = {a.content for a in answers}
    assert len(bodies) == 1  # no hint which
    body = bodies.pop().decode()
    assert "noindex" in body and "<a " not in body
    assert all(a["X-Robots-Tag"] == "noindex, nofollow" for a in answers)
    expired.refresh_from_db()
    assert expired.views == 0


def test_a_link_expires_on_time(user, video):
    link = link_to(user, generation=video, expires_at=timezone.now() + timedelta(days=1))
    client = stranger()
    assert client.get(page_path(link)).status_code == 200
    assert client.get(video_path(link, video)).status_code == 200
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(page_path(link)).status_code == 404
    assert client.get(video_path(link, video)).status_code == 404


# --- media through the link -----------------------------------------------------------------------
def test_the_video_is_served_with_byte_ranges_through_the_link(user, video):
    link = link_to(user, generation=video)
    client = stranger()
    whole = client.get(video_path(link, video))
    assert whole.status_code == 200
    assert b"".join(whole.streaming_content) == VIDEO_BYTES
    assert whole["Accept-Ranges"] == "bytes"
    assert whole["X-Robots-Tag"] == "noindex, nofollow"
    assert whole["Referrer-Policy"] == "no-referrer"
    part = client.get(video_path(link, video), HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(VIDEO_BYTES)}"
    assert b"".join(part.streaming_content) == VIDEO_BYTES[100:200]
    poster = client.get(video_path(link, video, "poster.jpg"))
    assert poster.status_code == 200
    assert b"".join(poster.streaming_content) == POSTER_BYTES


def test_a_video_not_on_the_shared_board_is_not_served_through_its_link(user, video):
    board = Board.objects.create(name="Only the boat", created_by=user)
    BoardItem.objects.create(board=board, generation=video)
    elsewhere = make_gen(user=user, **stored("elsewhere"))
    link = link_to(user, board=board)
    single = link_to(user, generation=video)
    client = stranger()
    assert client.get(video_path(link, video)).status_code == 200
    assert client.get(video_path(link, elsewhere)).status_code == 404
    assert client.get(video_path(link, elsewhere, "poster.jpg")).status_code == 404
    assert client.get(video_path(single, elsewhere)).status_code == 404
    # taken off the board: no longer served through the board's link
    BoardItem.objects.filter(board=board, generation=video).delete()
    assert client.get(video_path(link, video)).status_code == 404


def test_media_stays_private_outside_the_link(user, video):
    link = link_to(user, generation=video)
    client = stranger()
    assert client.get("/media/" + video.video_file.name).status_code == 404
    assert client.get("/media/" + video.thumbnail_file.name).status_code == 404
    assert client.get(f"/s/{link.token}/{video.pk}/../../media/videos/boat.mp4").status_code == 404


def test_revoking_stops_the_page_and_its_media_at_once(user, video):
    link = link_to(user, generation=video)
    client = stranger()
    assert client.get(video_path(link, video)).status_code == 200
    login = Client()
    login.force_login(user)
    response = login.post(f"/shares/{link.pk}/revoke/", {"next": "/shares/"})
    assert response.status_code == 302
    assert client.get(page_path(link)).status_code == 404
    assert client.get(video_path(link, video)).status_code == 404
    assert client.get(video_path(link, video, "poster.jpg")).status_code == 404


# --- the rate limit -------------------------------------------------------------------------------
@pytest.fixture
def mid_minute(monkeypatch) -> float:
    """The rate limiter's clock held in the middle of one minute's window: on a loaded machine
    the test's requests could otherwise straddle a window's edge, and the count start again
    (seen with the suite in parallel)."""
    from generations import throttle

    now = (time.time() // throttle.WINDOW + 0.5) * throttle.WINDOW
    monkeypatch.setattr(throttle, "time", SimpleNamespace(time=lambda: now))
    return now


def test_the_page_and_its_media_answer_429_with_retry_after_past_the_rate(
    user, video, settings, mid_minute
):
    settings.SHARE_PAGE_RATE = 3
    settings.SHARE_MEDIA_RATE = 5
    link = link_to(user, generation=video)
    client = stranger()
    pages = [client.get(page_path(link)).status_code for _ in range(4)]
    assert pages == [200, 200, 200, 429]
    refused = client.get(page_path(link))
    assert int(refused["Retry-After"]) == 30  # the rest of the window
    assert refused["X-Robots-Tag"] == "noindex, nofollow"
    media = [client.get(video_path(link, video)).status_code for _ in range(6)]
    assert media == [200] * 5 + [429]
    # unknown tokens count too: guessing is throttled like watching
    assert client.get("/s/" + "y" * 43 + "/").status_code == 429
    # another address is not affected
    assert stranger().get(page_path(link)).status_code == 200
    link.refresh_from_db()
    assert link.views == 4  # refused requests are not views


# --- making links on the pages --------------------------------------------------------------------
def test_the_detail_page_has_a_share_panel_for_a_finished_video_only(client, user, video):
    html = client.get(f"/generations/{video.pk}/").content.decode()
    assert f'id="share-gen-{video.pk}"' in html
    assert f'action="/generations/{video.pk}/share/"' in html
    running = make_gen(Status.IN_PROGRESS, user=user)
    assert "data-share-panel" not in client.get(f"/generations/{running.pk}/").content.decode()


def test_the_share_form_makes_a_link_and_comes_back_to_the_panel_with_it(client, user, other):
    # any team member may share any video: here bob's
    bobs = make_gen(user=other, **stored("bobs"))
    response = client.post(
        f"/generations/{bobs.pk}/share/",
        {"expires": "7", "show_prompts": "on", "next": f"/generations/{bobs.pk}/"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/generations/{bobs.pk}/#share-gen-{bobs.pk}"
    link = ShareLink.objects.get()
    assert link.created_by == user and link.generation == bobs and link.show_prompts
    assert timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= timedelta(days=7)
    html = client.get(f"/generations/{bobs.pk}/").content.decode()
    assert f'value="http://testserver/s/{link.token}/"' in html
    assert f'action="/shares/{link.pk}/revoke/"' in html
    # never expires
    client.post(f"/generations/{bobs.pk}/share/", {"expires": "never"})
    assert ShareLink.objects.filter(expires_at__isnull=True, show_prompts=False).count() == 1
    # a made-up expiry is refused with a message, nothing made
    client.post(f"/generations/{bobs.pk}/share/", {"expires": "9999"})
    assert ShareLink.objects.count() == 2


def test_an_unfinished_video_cannot_be_shared(client, user):
    running = make_gen(Status.IN_PROGRESS, user=user)
    client.post(f"/generations/{running.pk}/share/", {"expires": "never"})
    assert not ShareLink.objects.exists()


def test_public_base_url_makes_the_links_address(client, user, video, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    link = link_to(user, generation=video)
    html = client.get(f"/generations/{video.pk}/").content.decode()
    assert f'value="https://studio.example.com/s/{link.token}/"' in html


# --- boards: who may share ------------------------------------------------------------------------
def test_a_private_board_is_shared_by_its_owner_only_and_a_shared_one_by_anyone(
    client, user, other, video
):
    mine = Board.objects.create(name="Mine", created_by=user)
    bobs_private = Board.objects.create(name="Bob's", created_by=other)
    bobs_shared = Board.objects.create(name="Team", created_by=other, shared=True)
    assert client.post(f"/boards/{bobs_private.pk}/share/", {"expires": "1"}).status_code == 404
    assert not ShareLink.objects.exists()
    response = client.post(f"/boards/{mine.pk}/share/", {"expires": "1", "next": "/shares/"})
    assert response.status_code == 302 and response["Location"] == f"/shares/#share-board-{mine.pk}"
    assert client.post(f"/boards/{bobs_shared.pk}/share/", {"expires": "30"}).status_code == 302
    assert set(ShareLink.objects.values_list("board__name", flat=True)) == {"Mine", "Team"}


# --- revoking: the maker or an admin --------------------------------------------------------------
def test_only_the_maker_or_an_admin_may_revoke(client, user, other, video):
    bobs = link_to(other, generation=video)
    client.post(f"/shares/{bobs.pk}/revoke/")
    bobs.refresh_from_db()
    assert bobs.revoked_at is None
    boss = make_user("boss")
    Member.objects.create(user=boss, role=Role.ADMIN)
    admin = Client()
    admin.force_login(boss)
    admin.post(f"/shares/{bobs.pk}/revoke/")
    bobs.refresh_from_db()
    assert bobs.revoked_at is not None


# --- the Shared links page ------------------------------------------------------------------------
def test_the_shared_links_page_lists_mine_with_their_state_and_admins_see_everyones(
    client, user, other, video
):
    live = link_to(user, generation=video)
    link_to(user, generation=video, expires_at=timezone.now() - timedelta(days=1))
    link_to(user, generation=video, revoked_at=timezone.now())
    bobs = link_to(other, generation=video)
    html = client.get("/shares/").content.decode()
    assert 'href="/shares/" aria-current="page"' in html  # in the navigation
    assert html.count('class="panel share-row') == 3
    states = set(re.findall(r"share-row is-(live|expired|revoked)", html))
    assert states == {"live", "expired", "revoked"}
    assert f"/s/{live.token}/" in html
    assert bobs.token not in html
    assert html.count("data-copy=") == 1  # the live one only
    boss = make_user("boss", is_superuser=True)
    admin = Client()
    admin.force_login(boss)
    html = admin.get("/shares/").content.decode()
    assert html.count('class="panel share-row') == 4
    assert bobs.token in html and "Made by bob" in html


# --- the token in no log line ---------------------------------------------------------------------
def test_a_share_token_is_redacted_from_every_log_line(user, video, caplog):
    from lumaweb.logs import PlainFormatter, RedactSecretsFilter

    link = link_to(user, generation=video)
    ShareLink.objects.filter(pk=link.pk).update(revoked_at=timezone.now())
    with caplog.at_level(logging.WARNING, logger="django.request"):
        stranger().get(page_path(link))  # Django logs "Not Found: <path>" for a 404
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records, "Django logged nothing for the 404"
    for record in records:
        RedactSecretsFilter().filter(record)
        assert link.token not in record.getMessage()
        assert link.token not in PlainFormatter("%(message)s").format(record)
    runserver = logging.LogRecord(
        "django.server",
        logging.WARNING,
        __file__,
        1,
        '"%s" %s %s',
        (f"GET /s/{link.token}/{video.pk}/video.mp4 HTTP/1.1", 404, 10),
        None,
    )
    RedactSecretsFilter().filter(runserver)
    assert link.token not in runserver.getMessage()
    assert "/s/[redacted]/" in runserver.getMessage()
    assert link.token not in repr(link) and link.token not in str(link)


def test_share_links_and_their_queryset_helpers(user, video):
    link = link_to(user, generation=video)
    assert shares.live_link(link.token) == link
    assert shares.live_link("") is None and shares.live_link("z" * 500) is None
    assert shares.status_of(link) == "live"


def test_the_shared_links_page_and_the_panel_cost_the_same_for_2_links_as_for_20(
    client, user, video
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def counted(path: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)

    for _ in range(2):
        link_to(user, generation=video)
    few = counted("/shares/"), counted(f"/generations/{video.pk}/")
    for _ in range(18):
        link_to(user, generation=video)
    assert (counted("/shares/"), counted(f"/generations/{video.pk}/")) == few


def test_the_share_panel_renders_for_a_board_on_any_page(rf, user, other):
    """The board page (another module) includes the panel with only ``board=``: its tag finds
    the links and the form posts to /boards/<id>/share/."""
    from django.template.loader import render_to_string

    board = Board.objects.create(name="Moodboard", created_by=user)
    mine = link_to(user, board=board)
    bobs = link_to(other, board=board)
    request = rf.get(f"/boards/{board.pk}/")
    request.user = user
    html = render_to_string("generations/share_panel.html", {"board": board}, request=request)
    assert f'id="share-board-{board.pk}"' in html
    assert f'action="/boards/{board.pk}/share/"' in html
    assert f"/s/{mine.token}/" in html and f"/s/{bobs.token}/" in html
    assert html.count("Revoke<") == 2  # bob's link too: she owns the board
    assert "made by bob" in html
    request.user = other  # bob may revoke his own only
    html = render_to_string("generations/share_panel.html", {"board": board}, request=request)
    assert html.count("Revoke<") == 1


# --- unsharing a board ends the links others made to it (security review, finding 1) --------------
def test_unsharing_a_board_revokes_teammates_links_and_its_owner_may_revoke_any(
    client, user, other, video
):
    """Alice's board was shared; Bob made a public link; Alice makes the board private: Bob's
    link stops at once, and Bob's Shared links page no longer names the board or its URL.
    Alice's own link to it stays. On a shared board the owner may revoke anyone's link."""
    board = Board.objects.create(name="alice-later-private", created_by=user, shared=True)
    BoardItem.objects.create(board=board, generation=video)
    bob = Client()
    bob.force_login(other)
    assert bob.post(f"/boards/{board.pk}/share/", {"expires": "never"}).status_code == 302
    bobs = ShareLink.objects.get(board=board, created_by=other)
    alices = link_to(user, board=board)
    assert stranger().get(page_path(bobs)).status_code == 200
    assert client.post(f"/boards/{board.pk}/sharing/", {"shared": "no"}).status_code == 302
    bobs.refresh_from_db()
    alices.refresh_from_db()
    assert bobs.revoked_at is not None and alices.revoked_at is None
    assert stranger().get(page_path(bobs)).status_code == 404
    assert stranger().get(page_path(alices)).status_code == 200
    html = bob.get("/shares/").content.decode()
    assert "alice-later-private" not in html and bobs.token not in html
    assert "a board you can no longer see" in html
    # shared again: Bob makes a new link; its owner may revoke it (page), though Bob made it
    board.shared = True
    board.save(update_fields=["shared"])
    assert bob.post(f"/boards/{board.pk}/share/", {"expires": "never"}).status_code == 302
    again = ShareLink.objects.live().get(board=board, created_by=other)
    panel = client.get(f"/boards/{board.pk}/").content.decode()
    assert f'action="/shares/{again.pk}/revoke/"' in panel
    client.post(f"/shares/{again.pk}/revoke/")
    again.refresh_from_db()
    assert again.revoked_at is not None


# --- odd tokens (security review, finding 2) ------------------------------------------------------
ODD_TOKENS = ["%00", "a%00b", "%C3%A9%F0%9F%98%80", "a" * 65, "a%0Ab", "a.b", "%20"]


@pytest.mark.parametrize("token", ODD_TOKENS)
def test_an_odd_token_is_the_public_pages_own_404_and_never_reaches_the_database(
    user, video, token
):
    """A NUL in a token made PostgreSQL refuse the query (a 500). Every route that takes a
    token takes only [A-Za-z0-9_-]{1,64} (the `token` converter): anything else is the public
    page's own minimal 404, before any query; the API's is its JSON 404."""
    from django.urls import Resolver404, resolve

    for path in (
        f"/s/{token}/",
        f"/s/{token}/{video.pk}/video.mp4",
        f"/s/{token}/{video.pk}/poster.jpg",
    ):
        try:
            match = resolve(path.replace("%00", "\x00").replace("%0A", "\n"))
        except Resolver404:
            match = None
        assert match is None or match.url_name not in ("share-page", "share-video", "share-poster")
        visitor = stranger()
        visitor.raise_request_exception = False
        response = visitor.get(path)
        assert response.status_code == 404, path
        html = response.content.decode()
        assert "This link does not work" in html, path  # the public page's own 404
        assert "<nav" not in html and response["X-Robots-Tag"] == "noindex, nofollow"
        assert response["Referrer-Policy"] == "no-referrer"
    api = Client()
    api.force_login(user)
    api.raise_request_exception = False
    answer = api.delete(f"/api/v1/shares/{token}")
    assert answer.status_code == 404 and answer.json() == {"error": "Not found."}


def test_a_well_formed_token_still_resolves_at_its_longest(user, video):
    link = link_to(user, generation=video)
    assert stranger().get(page_path(link)).status_code == 200
    assert stranger().get("/s/" + "A-_z9" * 12 + "abcd/").status_code == 404  # 64: looked up


# --- viewers do not publish (security review, finding 4) ------------------------------------------
def test_a_viewer_has_no_share_panel_and_their_share_posts_are_refused_with_the_reason(
    user, other, video
):
    """Viewers are read-only members: they watch, like, download and organise boards inside the
    team, but making a public link publishes outside it: creators and admins only."""
    Member.objects.create(user=other, role=Role.VIEWER)
    viewer = Client()
    viewer.force_login(other)
    team = Board.objects.create(name="Team board", created_by=user, shared=True)
    BoardItem.objects.create(board=team, generation=video)
    own = Board.objects.create(name="Viewer's own", created_by=other)
    assert "data-share-panel" not in viewer.get(f"/generations/{video.pk}/").content.decode()
    assert "data-share-panel" not in viewer.get(f"/boards/{team.pk}/").content.decode()
    for path in (
        f"/generations/{video.pk}/share/",
        f"/boards/{team.pk}/share/",
        f"/boards/{own.pk}/share/",
    ):
        response = viewer.post(path, {"expires": "never", "show_prompts": "on"})
        assert response.status_code == 403, path
        assert "Viewers cannot make public share links" in response.content.decode()
    assert not ShareLink.objects.exists()
    # a creator (the default role) still has the panel
    creator = Client()
    creator.force_login(user)
    assert "data-share-panel" in creator.get(f"/generations/{video.pk}/").content.decode()


# --- admins do not see private boards through links (security review, finding 5) -----------------
def test_an_admin_sees_a_link_to_someones_private_board_without_its_name_or_token_and_revokes_it(
    user, video
):
    board = Board.objects.create(name="alice-private-board", created_by=user)
    BoardItem.objects.create(board=board, generation=video)
    link = link_to(user, board=board)
    shared = Board.objects.create(name="team-board", created_by=user, shared=True)
    on_shared = link_to(user, board=shared)
    boss = make_user("boss", is_superuser=True)
    admin = Client()
    admin.force_login(boss)
    assert admin.get(f"/boards/{board.pk}/").status_code == 404  # boards' rule: admins included
    html = admin.get("/shares/").content.decode()
    assert "alice-private-board" not in html and link.token not in html
    assert "a private board of alice" in html
    assert f'action="/shares/{link.pk}/revoke/"' in html  # still revocable, by its id
    assert "team-board" in html and on_shared.token in html  # a board the admin sees: as before
    body = admin.get("/api/v1/shares").content.decode()
    assert "alice-private-board" not in body and link.token not in body
    assert on_shared.token in body
    admin.post(f"/shares/{link.pk}/revoke/")
    link.refresh_from_db()
    assert link.revoked_at is not None
    # the owner still sees her own link in full
    owner = Client()
    owner.force_login(user)
    assert link.token not in owner.get("/shares/").content.decode()  # revoked: no URL
    assert "alice-private-board" in owner.get("/shares/").content.decode()


# --- links do not outlive their maker; the audit log (security review, finding 6) ----------------
def test_deactivating_a_person_revokes_their_live_links_and_the_audit_log_records_it(
    client, user, other, video
):
    from generations import actions
    from generations.models import AuditAction, AuditEntry

    boss = make_user("boss", is_superuser=True)
    bob = Client()
    bob.force_login(other)
    assert bob.post(f"/generations/{video.pk}/share/", {"expires": "never"}).status_code == 302
    bobs_live = ShareLink.objects.get(created_by=other)
    bobs_old = link_to(other, generation=video, revoked_at=timezone.now() - timedelta(days=1))
    alices = link_to(user, generation=video)
    made = AuditEntry.objects.get(action=AuditAction.SHARE_MADE)
    assert made.actor_name == "bob" and made.generation_id == video.pk
    assert made.details["link"] == bobs_live.pk
    assert actions.set_active(boss, other, False)
    bobs_live.refresh_from_db()
    bobs_old.refresh_from_db()
    alices.refresh_from_db()
    assert bobs_live.revoked_at is not None and alices.revoked_at is None
    assert bobs_old.revoked_at < bobs_live.revoked_at  # an old revocation is kept as it was
    assert stranger().get(page_path(bobs_live)).status_code == 404
    revoked = AuditEntry.objects.get(action=AuditAction.SHARE_REVOKED)
    assert revoked.subject_name == "bob" and revoked.actor_name == "boss"
    assert revoked.details["links"] == [bobs_live.pk]
    # revoking by hand and the links an unshare revokes are recorded too; never a token
    client.post(f"/shares/{alices.pk}/revoke/")
    board = Board.objects.create(name="b", created_by=user, shared=True)
    boss_client = Client()
    boss_client.force_login(boss)
    assert boss_client.post(f"/boards/{board.pk}/share/", {"expires": "1"}).status_code == 302
    client.post(f"/boards/{board.pk}/sharing/", {"shared": "no"})
    kinds = list(AuditEntry.objects.order_by("id").values_list("action", "actor_name"))
    assert kinds[-3:] == [
        (AuditAction.SHARE_REVOKED, "alice"),  # by hand
        (AuditAction.SHARE_MADE, "boss"),
        (AuditAction.SHARE_REVOKED, "alice"),  # the unshare revoked boss's link
    ]
    everything = " ".join(str(e.details) + e.summary for e in AuditEntry.objects.all())
    for link in ShareLink.objects.all():
        assert link.token not in everything


def test_making_and_revoking_over_the_api_is_audited(user, video):
    from generations.models import AuditAction, AuditEntry

    api = Client()
    api.force_login(user)
    made = api.post(f"/api/v1/generations/{video.pk}/share", "{}", content_type="application/json")
    assert made.status_code == 201
    assert api.delete(f"/api/v1/shares/{made.json()['token']}").status_code == 204
    assert api.delete(f"/api/v1/shares/{made.json()['token']}").status_code == 204  # no entry
    actions_ = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions_ == [AuditAction.SHARE_MADE, AuditAction.SHARE_REVOKED]
