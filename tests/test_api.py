"""The JSON API: 400 with reasons (never 500) for bad input; `liked` and the counts read through
the pages' queries, at a fixed number of SQL queries."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from generations.models import Generation, Status
from tests.factories import make_user


@pytest.fixture
def api(db):
    client = Client()
    client.force_login(make_user())
    return client


def post(api, body, path="/api/v1/generations"):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return api.post(path, raw, content_type="application/json")


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,  # nesting deep enough to exhaust the parser's recursion
        '{"user_prompt": "a\\ud800b"}',  # a lone surrogate no database can store
        '{"user_prompt": "ok", "image_url": "https://example.com/\\udfff.png"}',
        "not json",
        "[]",
        "42",
        '{"user_prompt": ["a"]}',
        '{"user_prompt": "x", "expand_prompt": "yes"}',
        '{"user_prompt": ""}',
        '{"user_prompt": "x", "aspect_ratio": "2:1"}',
        b"\xff\xfe",
    ],
)
def test_bad_bodies_answer_400_with_a_reason(api, body):
    response = post(api, body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert not Generation.objects.exists()


def test_create_defaults_the_aspect_ratio_and_answers_201(api):
    response = post(api, {"user_prompt": "a whale breaching"})
    assert response.status_code == 201
    assert response.json()["aspect_ratio"] == "16:9"
    assert response.json()["status"] == "queued"


def test_list_by_ids_and_refuse_bad_ids(api):
    gen = Generation.objects.create(user_prompt="x", status=Status.COMPLETED)
    listed = api.get("/api/v1/generations", {"ids": f"{gen.pk},{gen.pk}"}).json()
    assert [g["id"] for g in listed] == [str(gen.pk)]
    assert api.get("/api/v1/generations", {"ids": "nope"}).status_code == 400
    assert api.get("/api/v1/generations", {"ids": ",".join([str(gen.pk)] * 101)}).status_code == 400


def test_extend_of_an_unfinished_video_is_409(api):
    running = Generation.objects.create(user_prompt="x", status=Status.IN_PROGRESS)
    response = post(api, {"user_prompt": "next"}, f"/api/v1/generations/{running.pk}/extend")
    assert response.status_code == 409


def test_anonymous_gets_json_401(db):
    response = Client().get("/api/v1/generations")
    assert response.status_code == 401 and "error" in response.json()


@pytest.fixture
def liker(db):
    """Bob, who liked one finished video; the video's author is alice."""
    author, bob = make_user("alice"), make_user("bob")
    gen = Generation.objects.create(user_prompt="liked", status=Status.COMPLETED, created_by=author)
    gen.liked_by.add(bob)
    Generation.objects.create(user_prompt="child", status=Status.QUEUED, parent=gen)
    client = Client()
    client.force_login(bob)
    return client, gen


def _three_reads(client, gen) -> list[dict]:
    """The same generation as the newest list, the ids= list and the single GET show it."""
    newest = client.get("/api/v1/generations").json()
    by_ids = client.get("/api/v1/generations", {"ids": str(gen.pk)}).json()
    single = client.get(f"/api/v1/generations/{gen.pk}").json()
    return [next(g for g in newest if g["id"] == str(gen.pk)), by_ids[0], single]


def test_a_user_who_liked_a_generation_sees_liked_true_everywhere(liker):
    client, gen = liker
    for body in _three_reads(client, gen):
        assert body["liked"] is True
        assert body["like_count"] == 1
        assert body["extension_count"] == 1


def test_another_user_sees_liked_false_with_the_same_counts(liker):
    _, gen = liker
    carol = Client()
    carol.force_login(make_user("carol"))
    for body in _three_reads(carol, gen):
        assert body["liked"] is False
        assert body["like_count"] == 1
        assert body["extension_count"] == 1


def test_a_new_generation_answers_not_liked_with_zero_counts(api):
    body = post(api, {"user_prompt": "fresh"}).json()
    assert (body["liked"], body["like_count"], body["extension_count"]) == (False, 0, 0)


def _list_queries(client, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/api/v1/generations", params or {})
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _add_rows(n: int, author, liker) -> list[Generation]:
    rows = []
    for i in range(n):
        gen = Generation.objects.create(
            user_prompt=f"row {i}", status=Status.COMPLETED, created_by=author
        )
        if i % 2:
            gen.liked_by.add(liker)
        if i % 3 == 0:
            Generation.objects.create(
                user_prompt=f"child {i}", status=Status.QUEUED, parent=gen, created_by=author
            )
        rows.append(gen)
    return rows


def test_the_list_costs_the_same_queries_with_3_rows_as_with_30(api):
    author, viewer = make_user("author"), make_user("alice")
    first = _add_rows(3, author, viewer)
    small = (_list_queries(api), _list_queries(api, {"ids": ",".join(str(g.pk) for g in first)}))
    more = first + _add_rows(27, author, viewer)
    large = (_list_queries(api), _list_queries(api, {"ids": ",".join(str(g.pk) for g in more)}))
    assert small == large
