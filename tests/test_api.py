"""The JSON API's answers to bad input: 400 with reasons, never 500."""

import json

import pytest
from django.test import Client

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
