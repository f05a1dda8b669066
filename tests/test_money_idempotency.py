"""Issue 8, points 4 and 9: a submit is made once, and a retry that may pay twice asks first.

Idempotent submits: the API's ``Idempotency-Key`` header and the forms' one-time key make one
job of a double-click, a re-posted form or a client's retry, even when the duplicates arrive at
the same moment (one row, one upstream POST, read from the simulator's ledger). The browser side
(the submit button that disables itself) is in ``tests/pages/test_money_double_click.py``.

Retry after "Mark failed": a failed job whose POST may have been charged needs the same say-so
as the needs-attention resolve, on the pages, in the admin and in ``manage.py jobs``.
"""

from __future__ import annotations

import io
import json
import re
import threading

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import close_old_connections
from django.test import Client
from django.urls import reverse

from generations import actions, pipeline
from generations.inputs import GenerationRequest
from generations.models import ApiToken, Generation, Kind, Status, SubmitKey
from tests.factories import make_user
from tests.pages.conftest import htmx, make_gen

API = "/api/v1/generations"


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def api(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def post_json(client: Client, url: str, body: dict, key: str | None = None, **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


def posts_for(sim, prompt: str) -> list[dict]:
    return [p for p in sim.ledger()["posts"] if p["user_prompt"] == prompt]


# --- the API's Idempotency-Key ------------------------------------------------------------------
def test_concurrent_duplicates_with_one_idempotency_key_make_one_row_and_one_upstream_post(
    transactional_db, live_server, sim
):
    """Eight clients send the same create with the same key at the same instant, over real
    HTTP to a threaded server: every one is answered 201 with the same generation, the database
    holds one row and the service sees one POST. (On PostgreSQL the unique (person, key) index
    makes the later INSERTs wait for the first transaction, then find its key.)"""
    alice = make_user("alice")
    _, token = ApiToken.issue(alice, "script")
    body = {"user_prompt": "one lighthouse, asked eight times", "aspect_ratio": "1:1"}
    start = threading.Barrier(8)
    answers: list[tuple[int, str]] = []

    def send() -> None:
        start.wait()
        response = requests.post(
            live_server.url + API,
            json=body,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "batch-7f3a"},
            timeout=30,
        )
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        answers.append((response.status_code, response.json().get("id") if is_json else ""))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 8
    assert {status for status, _ in answers} == {201}
    ids = {pk for _, pk in answers}
    assert len(ids) == 1, answers
    rows = Generation.objects.filter(user_prompt=body["user_prompt"])
    assert rows.count() == 1 and SubmitKey.objects.filter(user=alice).count() == 1
    for row in rows:  # whatever the rows are, each is submitted as a worker would
        pipeline.submit(row.pk)
    assert len(posts_for(sim, body["user_prompt"])) == 1
    close_old_connections()


def test_the_same_key_again_answers_the_first_generation_with_its_status_code(api, alice):
    body = {"user_prompt": "a kite over the dunes"}
    first = post_json(api, API, body, key="k-1")
    again = post_json(api, API, body, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Generation.objects.filter(user_prompt=body["user_prompt"]).count() == 1
    # A new key is a new request.
    other = post_json(api, API, body, key="k-2")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_the_same_key_with_a_different_body_is_refused_with_422(api, alice):
    parent = make_gen(user=alice)
    assert post_json(api, API, {"user_prompt": "a red door"}, key="door").status_code == 201
    changed = post_json(api, API, {"user_prompt": "a blue door"}, key="door")
    assert changed.status_code == 422
    assert "already used for a different request" in changed.json()["error"]
    # The same key for an extension is another request too.
    extend = post_json(api, f"{API}/{parent.pk}/extend", {"user_prompt": "a red door"}, key="door")
    assert extend.status_code == 422
    assert not Generation.objects.filter(user_prompt="a blue door").exists()
    assert Generation.objects.filter(kind=Kind.EXTEND).count() == 0


def test_an_extension_with_the_same_key_is_made_once(api, alice):
    parent = make_gen(user=alice)
    url = f"{API}/{parent.pk}/extend"
    first = post_json(api, url, {"user_prompt": "and then it rains"}, key="ext-1")
    again = post_json(api, url, {"user_prompt": "and then it rains"}, key="ext-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert parent.extensions.count() == 1


def test_a_key_belongs_to_the_person_who_sent_it(api, alice):
    bob = Client()
    bob.force_login(make_user("bob"))
    body = {"user_prompt": "two people, one key"}
    mine = post_json(api, API, body, key="shared")
    his = post_json(bob, API, body, key="shared")
    assert mine.status_code == his.status_code == 201
    assert mine.json()["id"] != his.json()["id"]


def test_a_malformed_key_is_refused_and_nothing_is_queued(api):
    for bad in ("", "x" * 256, "with space", "naïve"):
        response = post_json(
            api,
            API,
            {"user_prompt": "bad key"},
            HTTP_IDEMPOTENCY_KEY=bad.encode().decode("latin-1"),
        )
        assert response.status_code == 400, bad
        assert "Idempotency-Key" in response.json()["error"]
    assert not Generation.objects.filter(user_prompt="bad key").exists()


def test_a_replay_after_the_generation_was_deleted_makes_nothing_new(api, alice):
    body = {"user_prompt": "short-lived"}
    first = post_json(api, API, body, key="gone")
    Generation.objects.filter(pk=first.json()["id"]).update(status=Status.FAILED)
    actions.delete_generation(Generation.objects.get(pk=first.json()["id"]), alice)
    again = post_json(api, API, body, key="gone")
    assert again.status_code == 409 and "deleted" in again.json()["error"]
    assert not Generation.objects.filter(user_prompt="short-lived").exists()


def test_a_request_refused_before_anything_was_queued_leaves_its_key_unused(api, alice):
    """A key is taken only with the row it made: a refused extension (the parent is not
    finished) can be sent again with the same key once the request is right."""
    unfinished = make_gen(Status.IN_PROGRESS, user=alice)
    refused = post_json(api, f"{API}/{unfinished.pk}/extend", {"user_prompt": "later"}, key="e")
    assert refused.status_code == 409
    finished = make_gen(user=alice)
    ok = post_json(api, f"{API}/{finished.pk}/extend", {"user_prompt": "later"}, key="e")
    assert ok.status_code == 201


# --- the forms' one-time key --------------------------------------------------------------------
def form_key(html: str) -> str:
    match = re.search(r'name="submit_key" value="([0-9a-f]{32})"', html)
    assert match, "the form carries no one-time key"
    return match[1]


def test_each_drawing_of_the_create_and_extend_forms_carries_a_new_one_time_key(api, alice):
    parent = make_gen(user=alice)
    keys = {
        form_key(api.get(reverse("generation-new")).content.decode()),
        form_key(api.get(reverse("generation-new")).content.decode()),
        form_key(api.get(reverse("generation-detail", args=[parent.pk])).content.decode()),
        form_key(
            api.get(reverse("generation-extend", args=[parent.pk]), **htmx()).content.decode()
        ),
    }
    assert len(keys) == 4


def test_the_create_form_posted_twice_queues_one_job_and_the_second_post_goes_to_it(api):
    key = form_key(api.get(reverse("generation-new")).content.decode())
    form = {"user_prompt": "a heron at dawn", "aspect_ratio": "16:9", "submit_key": key}
    first = api.post(reverse("generation-new"), form)
    again = api.post(reverse("generation-new"), form, follow=True)
    gen = Generation.objects.get(user_prompt="a heron at dawn")
    assert first["Location"] == reverse("generation-detail", args=[gen.pk])
    assert again.redirect_chain == [(reverse("generation-detail", args=[gen.pk]), 302)]
    assert "already been sent: nothing new was queued" in again.content.decode()


def test_the_create_form_re_posted_with_other_settings_queues_nothing_and_draws_a_fresh_key(api):
    key = form_key(api.get(reverse("generation-new")).content.decode())
    api.post(
        reverse("generation-new"), {"user_prompt": "one", "aspect_ratio": "16:9", "submit_key": key}
    )
    changed = api.post(
        reverse("generation-new"), {"user_prompt": "two", "aspect_ratio": "16:9", "submit_key": key}
    )
    html = changed.content.decode()
    assert changed.status_code == 409 and "already been sent with other settings" in html
    fresh = form_key(html)
    assert fresh != key and not Generation.objects.filter(user_prompt="two").exists()
    api.post(
        reverse("generation-new"),
        {"user_prompt": "two", "aspect_ratio": "16:9", "submit_key": fresh},
    )
    assert Generation.objects.filter(user_prompt="two").count() == 1


@pytest.mark.parametrize("use_htmx", [False, True])
def test_the_extend_form_posted_twice_queues_one_extension(api, alice, use_htmx):
    parent = make_gen(user=alice)
    headers = htmx(f"extend-slot-{parent.pk}") if use_htmx else {}
    url = reverse("generation-extend", args=[parent.pk])
    form = {"user_prompt": "the heron flies off", "submit_key": "f" * 32}
    assert api.post(url, form, **headers).status_code == (200 if use_htmx else 302)
    again = api.post(url, form, **headers)
    child = parent.extensions.get()
    target = reverse("generation-detail", args=[child.pk])
    if use_htmx:  # the page goes to the first extension (htmx follows HX-Redirect)
        assert again["HX-Redirect"] == target
    else:
        assert again["Location"] == target


# --- retry after "Mark failed": the same warning and say-so ------------------------------------
@pytest.fixture
def marked_failed(alice, sim, settings) -> Generation:
    """A job whose POST timed out (it may have started a paid job), then marked failed."""
    gen = actions.create_generation(alice, GenerationRequest(user_prompt="a slow owl"))
    settings.LUMA_READ_TIMEOUT = 0.5
    sim.configure(slow_rate=1.0, slow_seconds=2)
    assert pipeline.submit(gen.pk).result == "needs-attention"
    sim.configure(slow_rate=0.0)
    client = Client()
    client.force_login(alice)
    client.post(reverse("generation-mark-failed", args=[gen.pk]))
    gen.refresh_from_db()
    assert gen.status == Status.FAILED and gen.posts_sent == 1
    return gen


def test_retry_after_mark_failed_shows_the_warning_and_refuses_without_the_say_so(
    api, marked_failed, sim
):
    gen = marked_failed
    for page in (reverse("jobs"), reverse("generation-detail", args=[gen.pk])):
        html = api.get(page).content.decode()
        assert "may charge a second time" in html
        assert "Retry (may pay twice)" in html
        assert 'name="confirm_second_charge" value="yes"' in html
        assert ">Retry</button>" not in html  # no plain Retry for this row
    url = reverse("generation-retry", args=[gen.pk])
    for headers in ({}, htmx("jobs")):
        refused = api.post(url, **headers, follow=not headers)
        assert "may already have reached the service" in refused.content.decode()
        gen.refresh_from_db()
        assert gen.status == Status.FAILED and gen.posts_authorized == 1
    api.post(url, {"confirm_second_charge": "yes"})
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED and gen.posts_authorized == 2
    assert "(may pay twice: confirmed)" in gen.events.last().note
    assert pipeline.submit(gen.pk).result == "accepted"
    assert len(posts_for(sim, "a slow owl")) == 2


def test_a_failed_job_that_cannot_have_been_charged_keeps_its_plain_retry(api, alice, sim):
    """Refused by the service (a 4xx, here a shape it does not make): nothing started,
    ``posts_sent`` is back to 0. (Out of credits is no failure: the account is put on hold.)"""
    odd = GenerationRequest(user_prompt="refused fox", aspect_ratio="2:1")
    gen = actions.create_generation(alice, odd)
    assert pipeline.submit(gen.pk).result == "failed"
    gen.refresh_from_db()
    assert gen.posts_sent == 0 and not gen.retry_may_pay_twice
    html = api.get(reverse("generation-detail", args=[gen.pk])).content.decode()
    assert ">Retry</button>" in html and "may charge a second time" not in html
    api.post(reverse("generation-retry", args=[gen.pk]))
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED


def test_the_jobs_command_needs_yes_for_a_retry_after_mark_failed(marked_failed):
    with pytest.raises(CommandError, match="may pay twice"):
        call_command("jobs", "retry", str(marked_failed.pk), stdout=io.StringIO())
    marked_failed.refresh_from_db()
    assert marked_failed.status == Status.FAILED
    call_command("jobs", "retry", str(marked_failed.pk), "--yes", stdout=io.StringIO())
    marked_failed.refresh_from_db()
    assert marked_failed.status == Status.QUEUED and marked_failed.posts_authorized == 2


def test_the_admin_s_plain_retry_refuses_it_and_the_worded_action_confirms(marked_failed):
    boss = make_user("boss", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(boss)
    changelist = reverse("admin:generations_generation_changelist")
    selected = {"_selected_action": [str(marked_failed.pk)]}
    page = admin.post(changelist, {"action": "retry", **selected}, follow=True)
    assert "may already have reached the service" in page.content.decode()
    marked_failed.refresh_from_db()
    assert marked_failed.status == Status.FAILED
    admin.post(changelist, {"action": "retry_paying_twice", **selected})
    marked_failed.refresh_from_db()
    assert marked_failed.status == Status.QUEUED


def test_a_retry_on_a_stale_view_of_the_row_is_checked_again_in_the_update(alice):
    """The page (or the action's caller) saw a row that could not pay twice; by the time the
    retry arrives, the row counts a POST that may have been charged: refused all the same."""
    gen = make_gen(Status.FAILED, user=alice, posts_sent=0, remote_id=None)
    Generation.objects.filter(pk=gen.pk).update(posts_sent=1)
    with pytest.raises(actions.ServiceError):
        actions.retry_generation(gen, alice)
    gen.refresh_from_db()
    assert gen.status == Status.FAILED and gen.posts_authorized == 1


@pytest.mark.parametrize(
    ("status", "fields", "may_pay_twice"),
    [
        (Status.NEEDS_ATTENTION, {"posts_sent": 1, "remote_id": None}, True),
        # marked failed after needing attention; or a late answer kept as its own row
        (Status.FAILED, {"posts_sent": 1, "remote_id": None, "state": ""}, True),
        # accepted, then timed out (the service may still finish it, and charge)
        (Status.FAILED, {"posts_sent": 1, "state": "dreaming"}, True),
        # accepted and failed by the service: refunded
        (Status.FAILED, {"posts_sent": 1, "state": "failed"}, False),
        # refunded, but an earlier POST of the same row had an unknown outcome
        (Status.FAILED, {"posts_sent": 2, "state": "failed"}, True),
        # refused (4xx) or given up after 429s: nothing started
        (Status.FAILED, {"posts_sent": 0, "remote_id": None}, False),
        # retried after needing attention, then cancelled before it was sent again
        (Status.CANCELLED, {"posts_sent": 1, "remote_id": None}, True),
        (Status.CANCELLED, {"posts_sent": 0, "remote_id": None}, False),
        (Status.COMPLETED, {"posts_sent": 1}, False),
        (Status.QUEUED, {"posts_sent": 1, "remote_id": None}, False),
    ],
)
def test_which_rows_a_retry_may_pay_twice_for(alice, status, fields, may_pay_twice):
    """The row's property and the database predicate say the same."""
    gen = make_gen(status, user=alice, **fields)
    assert gen.retry_may_pay_twice is may_pay_twice
    assert Generation.objects.retry_may_pay_twice().filter(pk=gen.pk).exists() is may_pay_twice
