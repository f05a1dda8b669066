"""Issue 8, point 8: the audit log of money-relevant actions. Each action writes one entry in
the same transaction as its change (who, what, whom, which job, old -> new), a refused action
writes none, and the log is append-only: nothing changes or deletes an entry, not the ORM, not
the admin. Entries outlive the people and the videos they name."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from generations import actions, audit, pipeline
from generations.inputs import GenerationRequest
from generations.models import (
    AccountHold,
    AppendOnlyError,
    AuditAction,
    AuditEntry,
    Generation,
    HoldCause,
    Role,
    Status,
)
from generations.pipeline import hold
from tests.factories import make_user
from tests.pages.conftest import make_gen

COST = 500_000


@pytest.fixture(autouse=True)
def _cost(settings) -> None:
    settings.LUMA_TOKENS_PER_GENERATION = COST


def entries(action: AuditAction | None = None) -> list[AuditEntry]:
    rows = AuditEntry.objects.order_by("id")
    return list(rows.filter(action=action) if action else rows)


def ask(prompt: str = "a lighthouse at dusk") -> GenerationRequest:
    return GenerationRequest(user_prompt=prompt)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def may_pay_twice(owner) -> Generation:
    """Marked failed after needing attention: its POST may have been charged."""
    return make_gen(Status.FAILED, user=owner, remote_id=None, state="", posts_sent=1)


# --- who spent ------------------------------------------------------------------------------------
def test_a_create_and_an_extend_each_record_who_spent_on_which_job_and_what_it_cost(db):
    alice = make_user("alice")
    gen = actions.create_generation(alice, ask())
    parent = make_gen(Status.COMPLETED, user=alice)
    child = actions.extend_generation(parent, alice, ask("further"))

    spent = entries(AuditAction.SPENT)
    assert [(e.actor, e.actor_name, e.subject, e.generation_id) for e in spent] == [
        (alice, "alice", alice, gen.pk),
        (alice, "alice", alice, child.pk),
    ]
    assert [e.details["cost"] for e in spent] == [COST, COST]
    assert [e.details["kind"] for e in spent] == ["create", "extend"]
    assert "500,000 tokens" in spent[0].summary


def test_a_replayed_or_refused_create_records_nothing(db):
    alice = make_user("alice")
    actions.create_generation(alice, ask(), idempotency_key="k1")
    with pytest.raises(actions.AlreadySubmitted):
        actions.create_generation(alice, ask(), idempotency_key="k1")
    actions.set_team_budget(None, COST)  # one entry of its own
    with pytest.raises(actions.OverBudget):
        actions.create_generation(alice, ask("one more"))
    assert [e.action for e in entries()] == [AuditAction.SPENT, AuditAction.TEAM_BUDGET]


def test_an_api_create_is_recorded_with_the_token_holder_as_who(db):
    alice = make_user("alice")
    response = login(alice).post(
        "/api/v1/generations",
        json.dumps({"user_prompt": "from a script"}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    (entry,) = entries(AuditAction.SPENT)
    assert entry.actor_name == "alice" and str(entry.generation_id) == response.json()["id"]


def test_a_retry_records_the_spending_and_no_second_charge_when_none_is_possible(db):
    alice = make_user("alice")
    refunded = make_gen(Status.FAILED, user=alice)  # the service failed it: refunded
    actions.retry_generation(refunded, alice)
    assert [e.action for e in entries()] == [AuditAction.SPENT]
    assert entries()[0].details["kind"] == "retry"


# --- who authorised a possible second charge ------------------------------------------------------
def test_the_page_retry_that_may_pay_twice_records_who_confirmed_it_on_which_job(db):
    alice = make_user("alice")
    gen = may_pay_twice(alice)
    response = login(alice).post(
        f"/generations/{gen.pk}/retry/", {"confirm_second_charge": "yes", "next": "/jobs/"}
    )
    assert response.status_code == 302
    (second,) = entries(AuditAction.SECOND_CHARGE)
    assert (second.actor, second.generation_id, second.subject) == (alice, gen.pk, alice)
    assert second.details["posts_sent"] == 1
    assert len(entries(AuditAction.SPENT)) == 1


def test_an_unconfirmed_retry_that_may_pay_twice_is_refused_and_records_nothing(db):
    alice = make_user("alice")
    gen = may_pay_twice(alice)
    with pytest.raises(actions.SecondChargeNotConfirmed):
        actions.retry_generation(gen, alice)
    assert entries() == []


def test_the_admin_action_records_the_admin_as_who_authorised_a_second_charge(db):
    root = make_user("root", is_staff=True, is_superuser=True)
    gen = may_pay_twice(make_user("alice"))
    response = login(root).post(
        "/admin/generations/generation/",
        {"action": "retry_paying_twice", "_selected_action": [str(gen.pk)]},
    )
    assert response.status_code == 302
    (second,) = entries(AuditAction.SECOND_CHARGE)
    assert (second.actor_name, second.generation_id) == ("root", gen.pk)
    assert second.subject_name == "alice" and second.details["via"] == "admin"


def test_the_jobs_command_with_yes_records_the_operator(db):
    gen = may_pay_twice(make_user("alice"))
    call_command("jobs", "retry", str(gen.pk), "--yes", stdout=io.StringIO())
    (second,) = entries(AuditAction.SECOND_CHARGE)
    assert (second.actor, second.actor_name, second.generation_id) == (None, "operator", gen.pk)
    assert second.details["via"] == "command"


# --- roles, budgets, members ----------------------------------------------------------------------
def test_role_and_budget_changes_record_old_and_new_and_an_unchanged_save_records_nothing(db):
    boss = make_user("boss", is_superuser=True)
    carol = make_user("carol")
    actions.set_member(boss, carol, role=Role.VIEWER, budget=2_000_000)
    actions.set_member(boss, carol, role=Role.VIEWER, budget=2_000_000)  # nothing changes
    actions.set_member(boss, carol, budget=None)
    actions.set_team_budget(boss, 9_000_000)
    actions.set_team_budget(boss, 9_000_000)

    found = [(e.action, e.actor_name, e.subject_name, e.details) for e in entries()]
    assert found == [
        (AuditAction.ROLE, "boss", "carol", {"old": "creator", "new": "viewer"}),
        (AuditAction.BUDGET, "boss", "carol", {"old": None, "new": 2_000_000}),
        (AuditAction.BUDGET, "boss", "carol", {"old": 2_000_000, "new": None}),
        (AuditAction.TEAM_BUDGET, "boss", "", {"old": None, "new": 9_000_000}),
    ]
    assert entries()[1].summary == "carol: budget no limit -> 2,000,000 tokens"


def test_the_team_command_records_the_operator(db):
    make_user("carol")
    call_command("team", "set", "carol", "--role", "viewer", stdout=io.StringIO())
    call_command("team", "budget", "none", stdout=io.StringIO())  # already none: nothing
    call_command("team", "budget", "1000000", stdout=io.StringIO())
    assert [(e.action, e.actor_name) for e in entries()] == [
        (AuditAction.ROLE, "operator"),
        (AuditAction.TEAM_BUDGET, "operator"),
    ]


def test_adding_deactivating_and_reactivating_a_member_is_recorded(db):
    boss = make_user("boss", is_superuser=True)
    dave = actions.add_member(boss, "dave", "a-long-pass-phrase-77", role=Role.VIEWER, budget=10)
    actions.set_active(boss, dave, False)
    actions.set_active(boss, dave, False)  # already: nothing
    actions.set_active(boss, dave, True)
    assert [(e.action, e.actor_name, e.subject_name) for e in entries()] == [
        (AuditAction.MEMBER_ADDED, "boss", "dave"),
        (AuditAction.MEMBER_DEACTIVATED, "boss", "dave"),
        (AuditAction.MEMBER_REACTIVATED, "boss", "dave"),
    ]
    assert entries()[0].details == {"role": "viewer", "budget": 10}


def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated_and_nothing_is_recorded(db):
    boss = make_user("boss")
    actions.set_member(None, boss, role=Role.ADMIN)
    before = len(entries())
    with pytest.raises(actions.ServiceError, match="last active admin"):
        actions.set_member(None, boss, role=Role.CREATOR)
    with pytest.raises(actions.ServiceError, match="last active admin"):
        actions.set_active(None, boss, False)
    assert len(entries()) == before
    # With a second admin, either may go.
    other = make_user("other", is_superuser=True)
    actions.set_member(other, boss, role=Role.CREATOR)
    assert get_user_model().objects.get(pk=boss.pk).member.role == Role.CREATOR


def test_an_admin_cannot_deactivate_herself(db):
    boss = make_user("boss", is_superuser=True)
    make_user("root", is_superuser=True)
    with pytest.raises(actions.ServiceError, match="yourself"):
        actions.set_active(boss, boss, False)


def test_a_weak_password_or_a_taken_name_adds_nobody(db):
    boss = make_user("boss", is_superuser=True)
    with pytest.raises(actions.ServiceError):
        actions.add_member(boss, "dave", "short")
    make_user("erin")
    with pytest.raises(actions.ServiceError, match="already"):
        actions.add_member(boss, "ERIN", "a-long-pass-phrase-77")
    assert entries() == [] and not get_user_model().objects.filter(username="dave").exists()


# --- the hold -------------------------------------------------------------------------------------
def test_a_hold_begun_by_the_service_and_lifted_by_a_probe_is_recorded_as_lumaweb(
    db, sim, settings
):
    settings.LUMA_HOLD_RETRY = 1.0
    sim.configure(credits=0)
    gens = [actions.create_generation(make_user("alice"), ask(f"job {i}")) for i in range(2)]
    for gen in gens:
        pipeline.submit(gen.pk)
    assert hold.current() is not None
    (began,) = entries(AuditAction.HOLD_BEGAN)  # a second refusal is not a second hold
    assert began.actor is None and began.actor_name == "lumaweb"
    assert began.details["cause"] == HoldCause.CREDITS

    sim.configure(credits=10 * COST)
    held = AccountHold.objects.get()
    time.sleep(max(0.0, (held.retry_at - timezone.now()).total_seconds()) + 0.05)
    probe = pipeline.sweep().probe
    assert pipeline.submit(probe).result == "accepted"
    (lifted,) = entries(AuditAction.HOLD_LIFTED)
    assert lifted.actor_name == "lumaweb" and "accepted" in lifted.summary
    assert lifted.details["waiting"] == 1  # the other job, woken


def test_a_resume_and_a_cancel_of_the_waiting_jobs_record_who_and_how_many(db):
    boss = make_user("boss", is_superuser=True)
    hold.put_on_hold(HoldCause.CREDITS, "out of credits", 402)
    actions.resume_account(boss)
    hold.put_on_hold(HoldCause.CREDITS, "out of credits", 402)
    for i in range(3):
        actions.create_generation(make_user("alice"), ask(f"job {i}"))
    assert actions.cancel_waiting(boss) == 3
    call_command("jobs", "resume", stdout=io.StringIO())

    found = [(e.action, e.actor_name) for e in entries() if e.action != AuditAction.SPENT]
    assert found == [
        (AuditAction.HOLD_BEGAN, "lumaweb"),
        (AuditAction.HOLD_LIFTED, "boss"),
        (AuditAction.HOLD_BEGAN, "lumaweb"),
        (AuditAction.CANCEL_WAITING, "boss"),
        (AuditAction.HOLD_LIFTED, "operator"),
    ]
    assert entries(AuditAction.CANCEL_WAITING)[0].details == {"cancelled": 3}


# --- deletions ------------------------------------------------------------------------------------
def test_a_deletion_records_who_which_and_its_cost_and_outlives_the_row_and_the_people(db):
    alice = make_user("alice")
    boss = make_user("boss", is_superuser=True)
    gen = make_gen(Status.COMPLETED, user=alice, user_prompt="the lantern")
    actions.delete_generation(gen, boss)
    (deleted,) = entries(AuditAction.DELETED)
    assert (deleted.actor_name, deleted.subject_name, deleted.generation_id) == (
        "boss",
        "alice",
        gen.pk,
    )
    assert deleted.details["spent"] == COST and "the lantern" in deleted.summary
    assert not Generation.objects.filter(pk=gen.pk).exists()

    get_user_model().objects.filter(pk__in=[alice.pk, boss.pk]).delete()
    kept = AuditEntry.objects.get(pk=deleted.pk)
    assert (kept.actor, kept.subject) == (None, None)
    assert (kept.actor_name, kept.subject_name, kept.generation_id) == ("boss", "alice", gen.pk)


def test_a_refused_delete_records_nothing(db):
    alice = make_user("alice")
    gen = make_gen(Status.IN_PROGRESS, user=alice)
    with pytest.raises(actions.ServiceError):
        actions.delete_generation(gen, alice)
    assert entries() == []


# --- append-only ----------------------------------------------------------------------------------
def test_the_log_cannot_be_changed_or_deleted_through_the_orm(db):
    entry = audit.record(None, AuditAction.TEAM_BUDGET, "Team budget no limit -> 1 tokens")
    entry.summary = "nothing happened"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(summary="nothing happened")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(actor_name="someone else", actor=None)
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.bulk_update([entry], ["summary"])
    assert AuditEntry.objects.get(pk=entry.pk).summary == "Team budget no limit -> 1 tokens"


def test_the_admin_shows_the_log_read_only(db):
    root = make_user("root", is_staff=True, is_superuser=True)
    entry = audit.record(root, AuditAction.TEAM_BUDGET, "Team budget no limit -> 1 tokens")
    client = login(root)
    listing = client.get("/admin/generations/auditentry/")
    assert listing.status_code == 200 and "Team budget no limit" in listing.content.decode()
    assert client.get("/admin/generations/auditentry/add/").status_code == 403
    page = client.get(f"/admin/generations/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    posted = client.post(
        f"/admin/generations/auditentry/{entry.pk}/change/", {"summary": "nothing happened"}
    )
    assert posted.status_code == 403
    assert client.post(f"/admin/generations/auditentry/{entry.pk}/delete/").status_code == 403
    bulk = client.post(
        "/admin/generations/auditentry/",
        {"action": "delete_selected", "_selected_action": [str(entry.pk)], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert AuditEntry.objects.get(pk=entry.pk).summary == "Team budget no limit -> 1 tokens"
