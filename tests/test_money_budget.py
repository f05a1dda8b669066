"""Issue 8, roles and budgets: viewers never spend, nobody spends past their month's budget or
the team's, and the budget check holds under concurrent requests (run this file with
DATABASE_URL pointing at PostgreSQL to exercise the row lock; on SQLite the IMMEDIATE
transactions serialise the same requests)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import close_old_connections, connection
from django.test import Client

from generations import actions, money
from generations.inputs import GenerationRequest
from generations.models import DeletedSpending, Generation, Member, Role, Status, Team
from tests.factories import make_user
from tests.pages.conftest import make_gen

COST = 500_000


@pytest.fixture(autouse=True)
def _cost(settings) -> None:
    settings.LUMA_TOKENS_PER_GENERATION = COST


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_post(client: Client, path: str, body: dict):
    return client.post(path, json.dumps(body), content_type="application/json")


def viewer(name: str = "vera"):
    person = make_user(name)
    actions.set_member(None, person, role=Role.VIEWER)
    return person


def ask(prompt: str = "a lighthouse at dusk") -> GenerationRequest:
    return GenerationRequest(user_prompt=prompt)


# --- roles ----------------------------------------------------------------------------------------
def test_new_accounts_are_creators_and_superusers_are_admins(db):
    plain = make_user("carol")
    boss = make_user("root", is_superuser=True, is_staff=True)
    assert Member.role_of(plain) == Role.CREATOR
    assert Member.role_of(boss) == Role.ADMIN
    actions.set_member(None, boss, role=Role.VIEWER)  # a superuser stays an admin
    assert Member.role_of(make_user("root")) == Role.ADMIN
    assert not Member.objects.filter(user=plain).exists()  # reading a role writes nothing


def test_a_viewer_is_refused_create_and_extend_by_the_api_with_403(db):
    client = login(viewer())
    parent = make_gen(Status.COMPLETED, user=make_user("alice"))
    created = api_post(client, "/api/v1/generations", {"user_prompt": "a cat"})
    extended = api_post(client, f"/api/v1/generations/{parent.pk}/extend", {"user_prompt": "on"})
    assert created.status_code == 403 and "Viewers cannot" in created.json()["error"]
    assert extended.status_code == 403 and "Viewers cannot" in extended.json()["error"]
    assert Generation.objects.count() == 1


def test_a_creator_may_create_and_extend_through_the_api(db):
    client = login(make_user("carol"))
    parent = make_gen(Status.COMPLETED, user=make_user("alice"))
    assert api_post(client, "/api/v1/generations", {"user_prompt": "a cat"}).status_code == 201
    extended = api_post(client, f"/api/v1/generations/{parent.pk}/extend", {"user_prompt": "on"})
    assert extended.status_code == 201
    assert Generation.objects.count() == 3


def _pages(client: Client, done: Generation, failed: Generation) -> str:
    return "".join(
        client.get(url).content.decode()
        for url in ("/", "/jobs/", f"/generations/{done.pk}/", f"/generations/{failed.pk}/")
    )


def test_the_pages_offer_a_viewer_no_new_extend_or_retry_and_a_creator_all_three(db):
    vera, carol = viewer(), make_user("carol")
    done = make_gen(Status.COMPLETED, user=carol)
    failed = make_gen(Status.FAILED, user=vera)  # hers, from before she was made a viewer
    make_gen(Status.NEEDS_ATTENTION, user=vera)
    seen = _pages(login(vera), done, failed)
    assert "/generations/new/" not in seen
    assert f"/generations/{done.pk}/extend/" not in seen and 'id="extend"' not in seen
    assert "/retry/" not in seen and "Retry" not in seen
    assert "/mark-failed/" in seen  # she may still resolve her job without paying
    page = login(vera).get("/generations/new/")
    assert page.status_code == 403 and b"Viewers cannot" in page.content

    failed_too = make_gen(Status.FAILED, user=carol)
    seen = _pages(login(carol), done, failed_too)
    assert "/generations/new/" in seen
    assert f"/generations/{done.pk}/extend/" in seen
    assert f"/generations/{failed_too.pk}/retry/" in seen


def test_a_viewer_cannot_retry_even_her_own_failed_job(db):
    vera = viewer()
    failed = make_gen(Status.FAILED, user=vera)
    response = login(vera).post(f"/generations/{failed.pk}/retry/", follow=True)
    assert b"Viewers cannot" in response.content
    failed.refresh_from_db()
    assert failed.status == Status.FAILED and failed.posts_authorized == 1
    with pytest.raises(actions.NotAllowed):
        actions.extend_generation(make_gen(Status.COMPLETED), vera, ask())


# --- budgets ------------------------------------------------------------------------------------
def test_a_create_over_the_persons_budget_is_refused_with_402_and_what_is_left(db):
    carol = make_user("carol")
    actions.set_member(None, carol, budget=COST + COST // 2)  # room for one and a half
    client = login(carol)
    assert api_post(client, "/api/v1/generations", {"user_prompt": "one"}).status_code == 201
    refused = api_post(client, "/api/v1/generations", {"user_prompt": "two"})
    assert refused.status_code == 402
    body = refused.json()
    assert "your monthly budget" in body["error"]
    assert body["budget"] == {
        "exceeded": "person",
        "cost": COST,
        "left": COST // 2,
        "person": {"budget": COST + COST // 2, "used": COST, "left": COST // 2},
        "team": {"budget": None, "used": COST, "left": None},
    }
    assert Generation.objects.count() == 1  # nothing queued


def test_the_team_budget_binds_everyone_and_an_extend_answers_402_too(db):
    actions.set_team_budget(None, COST)
    parent = make_gen(Status.COMPLETED, user=make_user("alice"))  # spent: the team's one
    refused = api_post(
        login(make_user("carol")), f"/api/v1/generations/{parent.pk}/extend", {"user_prompt": "x"}
    )
    assert refused.status_code == 402
    assert refused.json()["budget"]["exceeded"] == "team"
    assert refused.json()["budget"]["team"] == {"budget": COST, "used": COST, "left": 0}
    with pytest.raises(actions.OverBudget):
        actions.create_generation(None, ask())  # the operator is bound by the team's budget
    actions.set_team_budget(None, None)  # no limit
    assert actions.create_generation(None, ask()).status == Status.QUEUED


def test_the_create_page_shows_what_is_left_and_refuses_over_budget_in_words(db):
    carol = make_user("carol")
    actions.set_member(None, carol, budget=COST + 1)
    client = login(carol)
    page = client.get("/generations/new/").content.decode()
    assert "500,001 tokens</strong> left this month" in page
    assert client.post("/generations/new/", {"user_prompt": "one", "aspect_ratio": "16:9"})
    second = client.post("/generations/new/", {"user_prompt": "two", "aspect_ratio": "16:9"})
    assert second.status_code == 402
    text = second.content.decode()
    assert "It costs 500,000 tokens and 1 are left this month" in text
    assert "not enough for one more" in text
    assert Generation.objects.count() == 1


def test_a_retry_over_budget_is_refused_before_anything_is_queued(db):
    carol = make_user("carol")
    actions.set_member(None, carol, budget=COST)
    stuck = make_gen(Status.NEEDS_ATTENTION, user=carol, remote_id=None)  # possibly charged
    assert money.month_usage().of(carol.pk).possibly == COST
    with pytest.raises(actions.OverBudget):
        actions.retry_generation(  # her budget counts, whoever presses Retry
            stuck, make_user("root", is_superuser=True), confirm_second_charge=True
        )
    stuck.refresh_from_db()
    assert stuck.status == Status.NEEDS_ATTENTION and stuck.posts_authorized == 1


def test_what_counts_spent_reserved_refunded_and_nothing(db):
    carol = make_user("carol")
    make_gen(Status.COMPLETED, user=carol)  # spent, confirmed
    make_gen(Status.NEEDS_ATTENTION, user=carol, remote_id=None)  # spent, possibly
    make_gen(Status.QUEUED, user=carol)  # reserved
    make_gen(Status.FAILED, user=carol, state="failed")  # failed after starting: refunded
    make_gen(Status.FAILED, user=carol, remote_id=None, posts_sent=0)  # refused before: nothing
    make_gen(Status.CANCELLED, user=carol, remote_id=None, posts_sent=0)  # cancelled: nothing
    usage = money.month_usage().of(carol.pk)
    assert usage == money.Usage(
        spent=2 * COST, possibly=COST, reserved=COST, refunded=COST, generations=6
    )
    assert money.allowance(carol).person_used == 3 * COST


def test_a_generation_billed_last_month_does_not_count_this_month(db):
    carol = make_user("carol")
    actions.set_member(None, carol, budget=COST)
    start, _ = money.month_window()
    make_gen(Status.COMPLETED, user=carol, billed_at=start - timedelta(seconds=1))
    assert money.month_usage().of(carol.pk) == money.Usage()
    last_month = money.month_usage(start - timedelta(days=1))
    assert last_month.of(carol.pk).spent == COST
    assert actions.create_generation(carol, ask()).status == Status.QUEUED


def test_a_retried_job_counts_in_the_month_of_the_retry_and_keeps_its_refund(db):
    carol = make_user("carol")
    start, _ = money.month_window()
    old = make_gen(Status.FAILED, user=carol, state="failed", billed_at=start - timedelta(days=3))
    actions.retry_generation(old, carol)
    old.refresh_from_db()
    assert old.status == Status.QUEUED and old.posts_refunded == 1
    assert money.month_usage().of(carol.pk) == money.Usage(
        spent=0, reserved=COST, refunded=COST, generations=1
    )


def test_deleting_a_video_gives_no_tokens_back(db):
    carol = make_user("carol")
    actions.set_member(None, carol, budget=COST)
    done = make_gen(Status.COMPLETED, user=carol)
    actions.delete_generation(done, carol)
    assert DeletedSpending.objects.get().spent == 1
    assert money.month_usage().of(carol.pk).spent == COST
    with pytest.raises(actions.OverBudget):
        actions.create_generation(carol, ask())


def test_concurrent_creates_against_a_budget_for_two_make_exactly_two_jobs(transactional_db):
    """Twelve threads, each its own database connection, released together: the team row's
    lock makes each check see the rows the others committed."""
    carol = make_user("carol")
    actions.set_member(None, carol, budget=2 * COST)
    threads, start = 12, threading.Barrier(12)
    made, refused, errors = [], [], []

    def create() -> None:
        try:
            start.wait(5)
            made.append(actions.create_generation(carol, ask()).pk)
        except actions.OverBudget:
            refused.append(1)
        except Exception as exc:  # a deadlock or a lock time-out would show here
            errors.append(repr(exc))
        finally:
            close_old_connections()

    workers = [threading.Thread(target=create) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert errors == [], (connection.vendor, errors)
    assert len(made) == 2 and len(refused) == threads - 2
    assert Generation.objects.filter(created_by=carol).count() == 2


# --- manage.py team -------------------------------------------------------------------------------
def test_the_team_command_sets_roles_and_budgets_and_lists_this_months_usage(db):
    carol, vera = make_user("carol"), make_user("vera")
    out = StringIO()
    call_command("team", "set", "vera", "--role", "viewer", stdout=out)
    call_command("team", "set", "carol", "--budget", "2,000,000", stdout=out)
    call_command("team", "budget", "5_000_000", stdout=out)
    assert Member.role_of(vera) == Role.VIEWER
    assert Member.objects.get(user=carol).monthly_budget == 2_000_000
    assert Team.current().monthly_budget == 5_000_000
    make_gen(Status.COMPLETED, user=carol)
    make_gen(Status.QUEUED, user=carol)

    listing = StringIO()
    call_command("team", "list", stdout=listing)
    lines = {line.split()[0]: line.split() for line in listing.getvalue().splitlines()[2:]}
    assert lines["carol"] == [
        "carol", "creator", "2,000,000", "500,000", "0", "500,000", "0", "1,000,000"
    ]  # fmt: skip
    assert lines["vera"][:3] == ["vera", "viewer", "no"]
    assert lines["TEAM"][1:] == ["5,000,000", "500,000", "0", "500,000", "0", "4,000,000"]

    call_command("team", "set", "carol", "--budget", "none", stdout=out)
    call_command("team", "budget", "none", stdout=out)
    assert Member.budget_of(make_user("carol")) is None
    assert Team.current().monthly_budget is None


def test_the_team_command_refuses_an_unknown_person_and_a_budget_that_is_not_a_number(db):
    make_user("carol")
    with pytest.raises(CommandError, match="No user"):
        call_command("team", "set", "nobody", "--role", "viewer")
    with pytest.raises(CommandError, match="not a number"):
        call_command("team", "set", "carol", "--budget", "lots")
    with pytest.raises(CommandError, match="Say what to set"):
        call_command("team", "set", "carol")
    assert not Member.objects.exists()


def test_odd_rows_never_count_below_zero_nor_break_a_delete(db):
    """A row with an upstream id but no POST counted (made by hand, or by an older version):
    it costs nothing, and deleting it works (found by the API fuzzer: a 500 on DELETE)."""
    carol = make_user("carol")
    odd = make_gen(Status.COMPLETED, user=carol, posts_sent=0)
    assert money.month_usage().of(carol.pk) == money.Usage(generations=1)
    actions.delete_generation(odd, carol)
    assert not DeletedSpending.objects.exists()


def test_a_budget_lowered_during_a_request_counts_at_the_check(db):
    """The check reads the budget under the team's lock, not from what the request's user
    object read earlier (its role, for instance)."""
    carol = make_user("carol")
    assert Member.role_of(carol) == Role.CREATOR  # the request has read her (default) row
    actions.set_member(None, make_user("carol"), budget=0)  # an admin, elsewhere
    with pytest.raises(actions.OverBudget):
        actions.create_generation(carol, ask())


def test_a_create_with_no_budget_set_does_not_sum_the_month(db):
    """With neither a person nor a team budget there is nothing to break: the create takes the
    team lock and reads the two budgets, not the month's usage (scripts/bench_money.py)."""
    from django.test.utils import CaptureQueriesContext

    owner = make_user()
    make_gen(Status.COMPLETED, user=owner, posts_sent=1)

    def sums(sql: list[str]) -> int:
        return sum("SUM(" in q.upper() for q in sql)

    with CaptureQueriesContext(connection) as free:
        actions.create_generation(owner, ask())
    assert sums([q["sql"] for q in free.captured_queries]) == 0
    actions.set_team_budget(None, 10 * COST)
    with CaptureQueriesContext(connection) as bound:
        actions.create_generation(owner, ask())
    assert sums([q["sql"] for q in bound.captured_queries]) >= 1  # the budget is checked


def test_a_retry_of_last_months_possibly_charged_job_is_checked_with_what_it_brings_along(db):
    """A retry moves the row (and its earlier, possibly charged POST) into this month: the
    budget check counts that POST too, or the month could end over budget (outside review)."""
    carol = make_user("carol")
    actions.set_member(None, carol, budget=2 * COST)
    make_gen(Status.COMPLETED, user=carol)
    start, _ = money.month_window()
    old = make_gen(
        Status.NEEDS_ATTENTION,
        user=carol,
        remote_id=None,
        posts_sent=1,
        posts_authorized=1,
        billed_at=start - timedelta(days=3),
    )
    with pytest.raises(actions.OverBudget):
        actions.retry_generation(old, carol, confirm_second_charge=True)
    assert money.month_usage().of(carol.pk).counted <= 2 * COST
    old.refresh_from_db()
    assert old.status == Status.NEEDS_ATTENTION and old.billed_at < start
