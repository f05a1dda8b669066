"""Issue 8, point 7: one submit of the create form queues a batch (one video per line, in one or
several aspect ratios, at most 20), priced before it is sent, within the budget as a whole or
not at all, and made once however often the form is posted.

The browser side (the live count and cost line, a double-click) is in
``tests/pages/test_money_double_click.py``; the fair share against a batch made through the form
is at the end of this file. Run it with DATABASE_URL pointing at PostgreSQL to exercise the
team row's lock in the concurrent test.
"""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import close_old_connections, connection
from django.test import Client
from django.urls import reverse
from PIL import Image

from generations import actions, pipeline
from generations.forms import MAX_PROMPT
from generations.inputs import GenerationRequest
from generations.models import Generation, SubmitKey
from tests.factories import make_user

COST = 500_000
NEW = "/generations/new/"
API = "/api/v1/generations"


@pytest.fixture(autouse=True)
def _cost(settings) -> None:
    settings.LUMA_TOKENS_PER_GENERATION = COST


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def batch_form(prompts: list[str], ratio: str = "16:9", more: list[str] | None = None, **extra):
    return {
        "user_prompt": "\n".join(prompts),
        "batch": "on",
        "aspect_ratio": ratio,
        "more_aspect_ratios": more or [],
        **extra,
    }


def made() -> list[tuple[str, str]]:
    return sorted(Generation.objects.values_list("user_prompt", "aspect_ratio"))


def _png() -> SimpleUploadedFile:
    buf = io.BytesIO()
    Image.new("RGB", (16, 9), (30, 120, 200)).save(buf, "PNG")
    return SimpleUploadedFile("start.png", buf.getvalue(), content_type="image/png")


# --- what a batch makes ---------------------------------------------------------------------------
def test_several_lines_in_several_aspect_ratios_queue_every_pair_in_one_batch(client):
    form = batch_form(
        ["a heron at dawn", "", "  a fox in snow  ", ""],
        ratio="16:9",
        more=["9:16", "1:1", "16:9"],  # the chosen one ticked again counts once
        submit_key="a" * 32,
    )
    response = client.post(NEW, form, follow=True)
    assert response.redirect_chain == [(reverse("jobs"), 302)]
    assert "Queued 6 videos · 3,000,000 tokens." in response.content.decode()
    assert made() == sorted(
        (prompt, ratio)
        for prompt in ("a heron at dawn", "a fox in snow")
        for ratio in ("16:9", "9:16", "1:1")
    )
    # One key for the whole batch: every row is held by it.
    key = SubmitKey.objects.get()
    assert key.generations.count() == 6


def test_without_the_tick_line_breaks_stay_in_one_prompt_and_one_aspect_ratio(client):
    form = batch_form(["a heron at dawn", "it takes off"], more=["9:16"])
    del form["batch"]
    response = client.post(NEW, form)
    gen = Generation.objects.get()
    assert response["Location"] == reverse("generation-detail", args=[gen.pk])
    assert (gen.user_prompt, gen.aspect_ratio) == ("a heron at dawn\nit takes off", "16:9")


def test_a_batch_of_one_line_is_an_ordinary_single_job(client):
    response = client.post(NEW, batch_form(["a heron at dawn"]))
    gen = Generation.objects.get()
    assert response["Location"] == reverse("generation-detail", args=[gen.pk])


@pytest.mark.parametrize(
    ("lines", "more", "words"),
    [
        (21, [], "That is 21 videos; one batch makes at most 20."),
        (7, ["9:16", "1:1"], "That is 21 videos (7 prompts in 3 aspect ratios each)"),
    ],
)
def test_a_batch_over_twenty_videos_is_refused_and_nothing_is_queued(client, lines, more, words):
    form = batch_form([f"shot {i}" for i in range(lines)], more=more, submit_key="b" * 32)
    response = client.post(NEW, form)
    html = response.content.decode()
    assert response.status_code == 400
    assert words in html and "Nothing was queued" in html
    assert "21 videos: one batch makes at most 20." in html  # the cost line says it too
    assert Generation.objects.count() == 0 and SubmitKey.objects.count() == 0
    assert "shot 6" in html  # the lines are kept in the form


def test_exactly_twenty_videos_are_queued(client):
    client.post(NEW, batch_form([f"shot {i}" for i in range(10)], more=["1:1"]))
    assert Generation.objects.count() == 20


def test_a_line_too_long_is_named_and_nothing_is_queued(client):
    long = "x" * (MAX_PROMPT + 1)
    response = client.post(NEW, batch_form(["a heron at dawn", "", long, "a fox"]))
    html = response.content.decode()
    assert response.status_code == 400
    assert "Line 3 is too long: a prompt has at most 2,000 characters (it has 2,001)." in html
    assert Generation.objects.count() == 0
    assert long in html  # nothing the person typed is lost


def test_a_batch_may_hold_more_text_than_one_prompt(client):
    lines = [f"{i} " + "y" * (MAX_PROMPT - 3) for i in range(4)]
    client.post(NEW, batch_form(lines))
    assert Generation.objects.count() == 4
    assert all(
        len(p) == MAX_PROMPT - 1 for p in Generation.objects.values_list("user_prompt", flat=True)
    )


def test_one_prompt_keeps_its_own_length_limit_outside_batch_mode(client):
    response = client.post(NEW, {"user_prompt": "z" * (MAX_PROMPT + 1), "aspect_ratio": "16:9"})
    assert response.status_code == 400
    assert "at most 2000 characters" in response.content.decode()
    assert Generation.objects.count() == 0


def test_every_job_of_a_batch_gets_the_keyframe_stored_once(client):
    client.post(NEW, batch_form(["a kite", "a balloon"], more=["1:1"], image_file=_png()))
    names = set(Generation.objects.values_list("image_file", flat=True))
    assert len(names) == 1 and names != {""}
    assert Generation.objects.count() == 4


# --- money: priced first, all or nothing, once -------------------------------------------------
def test_the_page_prices_the_batch_as_posted(client, alice):
    actions.set_member(None, alice, budget=3 * COST)
    response = client.post(NEW, batch_form(["one", "two", "three", "four"]))
    html = response.content.decode()
    assert response.status_code == 402
    assert "4 videos · 2,000,000 tokens" in html
    assert "1,500,000 tokens</strong> left this month" in html
    assert "not enough for these 4 videos" in html


def test_a_batch_over_the_budget_queues_none_of_its_jobs(client, alice):
    actions.set_member(None, alice, budget=3 * COST)
    response = client.post(NEW, batch_form(["one", "two", "three", "four"], submit_key="c" * 32))
    html = response.content.decode()
    assert response.status_code == 402
    assert (
        "Nothing queued: these 4 videos would take your monthly budget over its limit. "
        "It costs 2,000,000 tokens and 1,500,000 are left this month"
    ) in html
    assert Generation.objects.count() == 0 and SubmitKey.objects.count() == 0
    # Three fit: the same form less a line goes through, under the same key.
    client.post(NEW, batch_form(["one", "two", "three"], submit_key="c" * 32))
    assert Generation.objects.count() == 3


def test_the_same_batch_posted_twice_is_queued_once_and_the_replay_goes_to_its_jobs(client):
    form = batch_form(["one", "two"], more=["9:16"], submit_key="d" * 32)
    client.post(NEW, form)
    again = client.post(NEW, form, follow=True)
    assert Generation.objects.count() == 4
    assert again.redirect_chain == [(reverse("jobs"), 302)]
    assert "already been sent: nothing new was queued. Its 4 videos are here." in (
        again.content.decode()
    )


def test_the_same_batch_with_its_keyframe_posted_twice_is_queued_once(client):
    key = {"submit_key": "k" * 32}
    first = client.post(NEW, batch_form(["a kite", "a balloon"], image_file=_png(), **key))
    again = client.post(NEW, batch_form(["a kite", "a balloon"], image_file=_png(), **key))
    assert first.status_code == 302 and again.status_code == 302  # a replay, not a 409
    assert again["Location"] == reverse("jobs")
    assert Generation.objects.count() == 2


def test_the_same_key_with_another_batch_queues_nothing(client):
    client.post(NEW, batch_form(["one", "two"], submit_key="e" * 32))
    changed = client.post(NEW, batch_form(["one", "three"], submit_key="e" * 32))
    assert changed.status_code == 409
    assert "already been sent with other settings" in changed.content.decode()
    assert made() == [("one", "16:9"), ("two", "16:9")]


def test_concurrent_batches_against_a_budget_for_four_make_exactly_one_batch(transactional_db):
    """Six threads each queue a batch of three against a budget for four: the team row's lock
    decides them one after another, so exactly one batch (three rows) is made."""
    carol = make_user("carol")
    actions.set_member(None, carol, budget=4 * COST)
    threads, start = 6, threading.Barrier(6)
    done, refused, errors = [], [], []

    def create(n: int) -> None:
        try:
            start.wait(5)
            batch = [GenerationRequest(user_prompt=f"t{n} shot {i}") for i in range(3)]
            done.append(len(actions.create_generations(carol, batch)))
        except actions.OverBudget:
            refused.append(n)
        except Exception as exc:  # a deadlock or a lock time-out would show here
            errors.append(repr(exc))
        finally:
            close_old_connections()

    workers = [threading.Thread(target=create, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert errors == [], (connection.vendor, errors)
    assert done == [3] and len(refused) == threads - 1
    assert Generation.objects.filter(created_by=carol).count() == 3


def test_no_request_queues_more_than_twenty_at_once(alice):
    with pytest.raises(actions.ServiceError, match="at most 20"):
        actions.create_generations(alice, [GenerationRequest(user_prompt="x")] * 21)
    assert Generation.objects.count() == 0


# --- the API ------------------------------------------------------------------------------------
def post_json(client: Client, body: dict, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(API, json.dumps(body), content_type="application/json", **headers)


def test_the_api_queues_a_batch_of_prompts_and_aspect_ratios(client):
    response = post_json(
        client, {"user_prompts": ["a kite", "a balloon"], "aspect_ratios": ["16:9", "1:1"]}
    )
    assert response.status_code == 201
    rows = response.json()["generations"]
    assert [(r["user_prompt"], r["aspect_ratio"]) for r in rows] == [
        ("a kite", "16:9"),
        ("a kite", "1:1"),
        ("a balloon", "16:9"),
        ("a balloon", "1:1"),
    ]
    assert Generation.objects.count() == 4


def test_the_api_batch_takes_one_prompt_in_several_ratios_and_the_other_fields_for_each(client):
    response = post_json(
        client, {"user_prompt": "a kite", "aspect_ratios": ["9:16", "1:1"], "expand_prompt": True}
    )
    assert response.status_code == 201
    assert made() == [("a kite", "1:1"), ("a kite", "9:16")]
    assert set(Generation.objects.values_list("expand_prompt", flat=True)) == {True}


def test_the_api_batch_is_idempotent_as_a_whole(client):
    body = {"user_prompts": ["a kite", "a balloon"]}
    first = post_json(client, body, key="batch-1")
    again = post_json(client, body, key="batch-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert [r["id"] for r in again.json()["generations"]] == [
        r["id"] for r in first.json()["generations"]
    ]
    other = post_json(client, {"user_prompts": ["a kite"]}, key="batch-1")
    assert other.status_code == 422
    assert Generation.objects.count() == 2


def test_the_api_batch_over_the_budget_answers_402_for_the_whole_batch(client, alice):
    actions.set_member(None, alice, budget=2 * COST)
    response = post_json(client, {"user_prompts": ["a", "b", "c"]})
    assert response.status_code == 402
    assert response.json()["budget"]["cost"] == 3 * COST
    assert Generation.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"user_prompts": ["ok", "x" * (MAX_PROMPT + 1)]}, "user_prompts", "Item 2:"),
        ({"user_prompts": ["ok", "  "]}, "user_prompts", "Item 2:"),
        ({"user_prompts": "one"}, "user_prompts", "a list"),
        ({"user_prompts": []}, "user_prompts", "a list"),
        ({"user_prompt": "a", "aspect_ratios": ["16:9", "5:4"]}, "aspect_ratios", "Item 2:"),
        ({"user_prompts": ["a"], "user_prompt": "b"}, "user_prompts", "not both"),
        ({"user_prompts": [f"s{i}" for i in range(21)]}, "user_prompts", "at most 20"),
    ],
)
def test_the_api_refuses_a_bad_batch_with_400_and_queues_nothing(client, body, field, words):
    response = post_json(client, body)
    assert response.status_code == 400, response.content
    assert any(words in message for message in response.json()["fields"][field]), response.json()
    assert Generation.objects.count() == 0


# --- fair share ---------------------------------------------------------------------------------
def test_a_colleagues_single_job_gets_one_of_the_first_free_slots_against_a_form_batch_of_twenty(
    client, sim, settings
):
    settings.LUMA_MAX_IN_FLIGHT, settings.LUMA_MAX_SUBMITS_PER_MINUTE = 3, 0
    client.post(NEW, batch_form([f"alice's {i}" for i in range(10)], more=["9:16"]))
    batch = list(Generation.objects.order_by("created_at"))
    assert len(batch) == 20
    bob = make_user("bob")
    single = actions.create_generation(bob, GenerationRequest(user_prompt="bob's"))
    # The workers take the messages in the order they were sent: the batch's first.
    results = {gen.pk: str(pipeline.submit(gen.pk).result) for gen in [*batch, single]}
    assert results[single.pk] == "accepted"
    assert list(results.values()).count("accepted") == 3
