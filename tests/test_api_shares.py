"""The share-link API: make (201 with an absolute url), list, revoke (204, then the page and its
video answer 404); bad bodies answer 400 with the field at fault; who may share and revoke."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from generations.models import ApiToken, Board, Generation, ShareLink, Status
from tests.factories import make_user


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def api(alice):
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def done(alice) -> Generation:
    root = Path(django_settings.MEDIA_ROOT)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "videos" / "api-share.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 1000)
    return Generation.objects.create(
        user_prompt="a lighthouse in fog",
        status=Status.COMPLETED,
        remote_id="r-1",
        created_by=alice,
        video_file="videos/api-share.mp4",
    )


def post(client, path, body):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, raw, content_type="application/json")


def stranger() -> Client:
    return Client(REMOTE_ADDR=f"2001:db8:{uuid.uuid4().hex[:4]}::2")


def test_a_round_trip_make_list_revoke_then_the_page_and_video_are_gone(api, done):
    made = post(api, f"/api/v1/generations/{done.pk}/share", {"expires_in_days": 7})
    assert made.status_code == 201
    body = made.json()
    assert set(body) >= {"url", "token", "expires_at"}
    assert body["url"] == f"http://testserver/s/{body['token']}/"
    expires = timezone.datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=6, hours=23) < expires - timezone.now() <= timedelta(days=7)
    outside = stranger()
    assert outside.get(f"/s/{body['token']}/").status_code == 200
    assert outside.get(f"/s/{body['token']}/{done.pk}/video.mp4").status_code == 200

    listed = api.get("/api/v1/shares").json()["shares"]
    assert [(s["token"], s["status"], s["kind"]) for s in listed] == [
        (body["token"], "live", "generation")
    ]
    assert listed[0]["generation_id"] == str(done.pk) and listed[0]["views"] == 1

    assert api.delete(f"/api/v1/shares/{body['token']}").status_code == 204
    assert outside.get(f"/s/{body['token']}/").status_code == 404
    assert outside.get(f"/s/{body['token']}/{done.pk}/video.mp4").status_code == 404
    assert api.get("/api/v1/shares").json()["shares"][0]["status"] == "revoked"
    assert api.delete(f"/api/v1/shares/{body['token']}").status_code == 204  # again: harmless
    assert api.delete("/api/v1/shares/" + "n" * 43).status_code == 404


def test_never_expiring_links_and_public_base_url(api, done, settings):
    settings.PUBLIC_BASE_URL = "https://videos.example.com"
    made = post(api, f"/api/v1/generations/{done.pk}/share", {"show_prompts": True})
    assert made.status_code == 201
    assert made.json()["expires_at"] is None
    assert made.json()["url"].startswith("https://videos.example.com/s/")
    assert ShareLink.objects.get().show_prompts is True


def test_a_personal_token_can_share_without_a_csrf_token(alice, done):
    _, key = ApiToken.issue(alice, "script")
    client = Client(enforce_csrf_checks=True)
    made = client.post(
        f"/api/v1/generations/{done.pk}/share",
        "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert made.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 366}, "expires_in_days"),
        ({"expires_in_days": "7"}, "expires_in_days"),
        ({"expires_in_days": 1.5}, "expires_in_days"),
        ({"expires_in_days": True}, "expires_in_days"),
        ({"show_prompts": "yes"}, "show_prompts"),
        ({"show_prompts": 1}, "show_prompts"),
        ({"expires": 7}, "expires"),
        ("[]", None),
        ("not json", None),
    ],
)
def test_bad_bodies_answer_400_with_the_reason(api, done, body, field):
    response = post(api, f"/api/v1/generations/{done.pk}/share", body)
    assert response.status_code == 400
    assert response.json()["error"]
    if field:
        assert field in response.json()["fields"]
    assert not ShareLink.objects.exists()


def test_sharing_what_cannot_be_shared(api, alice):
    queued = Generation.objects.create(user_prompt="later", created_by=alice)
    assert post(api, f"/api/v1/generations/{queued.pk}/share", {}).status_code == 409
    assert post(api, f"/api/v1/generations/{uuid.uuid4()}/share", {}).status_code == 404
    assert Client().post(f"/api/v1/generations/{queued.pk}/share").status_code == 401


def test_boards_private_to_someone_else_are_not_found(api, alice):
    bob = make_user("bob")
    private = Board.objects.create(name="Bob's private", created_by=bob)
    shared = Board.objects.create(name="Team board", created_by=bob, shared=True)
    mine = Board.objects.create(name="Mine", created_by=alice)
    assert post(api, f"/api/v1/boards/{private.pk}/share", {}).status_code == 404
    assert post(api, "/api/v1/boards/999999/share", {}).status_code == 404
    for board in (shared, mine):
        made = post(api, f"/api/v1/boards/{board.pk}/share", {"expires_in_days": 30})
        assert made.status_code == 201
    kinds = {(s["kind"], s["board_id"]) for s in api.get("/api/v1/shares").json()["shares"]}
    assert kinds == {("board", shared.pk), ("board", mine.pk)}


def test_only_the_maker_or_an_admin_revokes_and_admins_list_everyone(api, alice, done):
    bob = make_user("bob")
    bobs = ShareLink.objects.create(generation=done, created_by=bob)
    refused = api.delete(f"/api/v1/shares/{bobs.token}")
    assert refused.status_code == 403 and refused.json()["error"]
    assert api.get("/api/v1/shares").json()["shares"] == []
    boss = Client()
    boss.force_login(make_user("boss", is_superuser=True))
    everyone = boss.get("/api/v1/shares").json()["shares"]
    assert [(s["token"], s["created_by"]) for s in everyone] == [(bobs.token, "bob")]
    assert boss.delete(f"/api/v1/shares/{bobs.token}").status_code == 204
    bobs.refresh_from_db()
    assert bobs.revoked_at is not None


def test_the_openapi_schema_describes_the_share_routes(api):
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    assert "post" in paths["/generations/{id}/share"]
    assert "post" in paths["/boards/{board_id}/share"]
    assert "get" in paths["/shares"]
    assert "delete" in paths["/shares/{token}"]
    body = paths["/generations/{id}/share"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["expires_in_days"]["maximum"] == 365


def test_unsharing_revokes_others_links_and_the_board_owner_revokes_any(api, alice, done):
    """Security review, finding 1, over the API: the board's owner revokes a teammate's link
    (DELETE), and after unsharing the teammate's list names neither the board nor the token."""
    bob = make_user("bob")
    bob_api = Client()
    bob_api.force_login(bob)
    board = Board.objects.create(name="alice-board", created_by=alice, shared=True)
    first = post(bob_api, f"/api/v1/boards/{board.pk}/share", {}).json()["token"]
    assert api.delete(f"/api/v1/shares/{first}").status_code == 204
    assert ShareLink.objects.get(token=first).revoked_at is not None
    second = post(bob_api, f"/api/v1/boards/{board.pk}/share", {}).json()["token"]
    page = Client()  # the API has no unshare: the board page's POST does it
    page.force_login(alice)
    assert page.post(f"/boards/{board.pk}/sharing/", {"shared": "no"}).status_code == 302
    assert ShareLink.objects.get(token=second).revoked_at is not None
    body = bob_api.get("/api/v1/shares").content.decode()
    assert "alice-board" not in body and first not in body and second not in body
    rows = bob_api.get("/api/v1/shares").json()["shares"]
    assert len(rows) == 2 and all(r["status"] == "revoked" and r["url"] is None for r in rows)


def test_a_viewer_cannot_make_a_public_link_over_the_api(done):
    """Security review, finding 4: publishing outside the team is for creators and admins."""
    from generations.models import Member, Role

    viewer = make_user("vera")
    Member.objects.create(user=viewer, role=Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    shared = Board.objects.create(name="Team board", created_by=done.created_by, shared=True)
    for path in (f"/api/v1/generations/{done.pk}/share", f"/api/v1/boards/{shared.pk}/share"):
        refused = post(client, path, {})
        assert refused.status_code == 403, path
        assert "Viewers cannot make public share links" in refused.json()["error"]
    assert not ShareLink.objects.exists()
