"""Boards over the JSON API: a round trip (make, fill, read, empty, delete), idempotent adds and
removes, bad input answered 400 with the reason, a private board 404 to everyone else, and a
shared board deleted only by its owner or an admin. Scripts use a personal token."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from generations import boards
from generations.models import ApiToken, Board, Generation, Status
from tests.factories import make_user
from tests.pages.conftest import make_gen


def token_client(person) -> Client:
    _, key = ApiToken.issue(person, "test")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def api(db):
    return token_client(make_user("alice"))


def post(client, path, body):
    return client.post(path, json.dumps(body), content_type="application/json")


def test_a_board_round_trip_make_fill_read_empty_and_delete(api):
    made = post(api, "/api/v1/boards", {"name": "Client picks", "shared": True})
    assert made.status_code == 201
    board = made.json()
    assert {k: board[k] for k in ("name", "shared", "owner", "count")} == {
        "name": "Client picks",
        "shared": True,
        "owner": "alice",
        "count": 0,
    }
    assert board["url"] == f"http://testserver/boards/{board['id']}/"
    assert board["created_at"]

    first, second = make_gen(), make_gen(status=Status.COMPLETED)
    items = f"/api/v1/boards/{board['id']}/items"
    assert post(api, items, {"generation_id": str(first.pk)}).status_code == 201
    added = post(api, items, {"generation_id": str(second.pk)})
    assert added.status_code == 201 and added.json()["count"] == 2
    again = post(api, items, {"generation_id": str(second.pk)})  # idempotent: 200, once
    assert again.status_code == 200 and again.json()["count"] == 2

    read = api.get(f"/api/v1/boards/{board['id']}").json()
    assert [g["id"] for g in read["generations"]] == [str(second.pk), str(first.pk)]
    assert set(read["generations"][0]) >= {"id", "status", "user_prompt", "video", "liked"}
    assert [b["id"] for b in api.get("/api/v1/boards").json()] == [board["id"]]

    gone = api.delete(f"{items}/{second.pk}")
    assert gone.status_code == 204
    assert api.delete(f"{items}/{second.pk}").status_code == 204  # idempotent
    assert api.get(f"/api/v1/boards/{board['id']}").json()["count"] == 1

    assert api.delete(f"/api/v1/boards/{board['id']}").status_code == 204
    assert api.get(f"/api/v1/boards/{board['id']}").status_code == 404
    assert Generation.objects.filter(pk__in=[first.pk, second.pk]).count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 7}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "shared": "yes"}, "shared"),
    ],
)
def test_a_bad_board_body_answers_400_with_the_field_and_its_reason(api, body, field):
    answer = post(api, "/api/v1/boards", body)
    assert answer.status_code == 400
    assert field in answer.json()["fields"]
    assert not Board.objects.exists()


def test_bad_items_answer_400_and_a_body_that_is_no_object_too(api):
    board = post(api, "/api/v1/boards", {"name": "B"}).json()
    items = f"/api/v1/boards/{board['id']}/items"
    for body in ({}, {"generation_id": "nope"}, {"generation_id": 12}):
        answer = post(api, items, body)
        assert answer.status_code == 400 and "generation_id" in answer.json()["fields"]
    unknown = post(api, items, {"generation_id": "00000000-0000-4000-8000-000000000000"})
    assert unknown.json()["fields"]["generation_id"] == ["No generation has this id."]
    raw = api.post(items, "[1, 2]", content_type="application/json")
    assert raw.status_code == 400 and raw.json()["error"] == "The body must be a JSON object."
    assert api.post("/api/v1/boards", "{", content_type="application/json").status_code == 400


def test_a_private_board_is_404_to_others_and_a_shared_one_deleted_only_by_owner_or_admin(db):
    alice, bob = make_user("alice"), make_user("bob")
    private = boards.create_board(alice, "Mine")
    shared = boards.create_board(alice, "Ours", shared=True)
    gen = make_gen()
    as_bob = token_client(bob)
    for answer in (
        as_bob.get(f"/api/v1/boards/{private.pk}"),
        as_bob.delete(f"/api/v1/boards/{private.pk}"),
        post(as_bob, f"/api/v1/boards/{private.pk}/items", {"generation_id": str(gen.pk)}),
        as_bob.delete(f"/api/v1/boards/{private.pk}/items/{gen.pk}"),
        as_bob.get("/api/v1/boards/99999999"),
    ):
        assert answer.status_code == 404
        assert answer.json() == {"error": "No such board (or it is someone else's private board)."}
    assert [b["name"] for b in as_bob.get("/api/v1/boards").json()] == ["Ours"]
    assert (
        post(
            as_bob, f"/api/v1/boards/{shared.pk}/items", {"generation_id": str(gen.pk)}
        ).status_code
        == 201
    )
    refused = as_bob.delete(f"/api/v1/boards/{shared.pk}")
    assert refused.status_code == 403 and "Only the person who made" in refused.json()["error"]
    boss = make_user("boss", is_superuser=True)
    assert token_client(boss).delete(f"/api/v1/boards/{shared.pk}").status_code == 204
    assert Board.objects.filter(pk=private.pk).exists()
    assert Generation.objects.filter(pk=gen.pk).exists()


def test_the_board_api_needs_authentication_and_is_in_the_openapi_schema(db):
    assert Client().get("/api/v1/boards").status_code == 401
    api = Client()
    api.force_login(make_user("alice"))
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    assert set(paths["/boards"]) == {"get", "post"}
    assert set(paths["/boards/{board_id}"]) >= {"get", "delete"}
    assert "post" in paths["/boards/{board_id}/items"]
    assert "delete" in paths["/boards/{board_id}/items/{generation_id}"]
