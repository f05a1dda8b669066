"""Issue 8, usage: a month per UTC day, the months there is usage in, the month a person asks
for, and the report the Usage page and /api/v1/usage read, all from ``generations.money``'s
one definition of what counts, against hand-built rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generations import actions, money
from generations.models import DeletedSpending, Role, Status
from tests.factories import make_user
from tests.pages.conftest import make_gen

COST = 500_000


@pytest.fixture(autouse=True)
def _cost(settings) -> None:
    settings.LUMA_TOKENS_PER_GENERATION = COST


def start_of_month() -> datetime:
    return money.month_window()[0]


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """An instant on ``day`` of this month (UTC)."""
    return start_of_month() + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)


def test_a_month_by_day_counts_each_row_on_its_utc_day_per_person(db):
    carol, dave = make_user("carol"), make_user("dave")
    make_gen(Status.COMPLETED, user=carol, billed_at=at(2))  # spent
    make_gen(Status.NEEDS_ATTENTION, user=carol, remote_id=None, billed_at=at(2))  # possibly
    make_gen(Status.QUEUED, user=dave, billed_at=at(2))  # reserved
    make_gen(Status.FAILED, user=dave, state="failed", billed_at=at(5))  # refunded
    make_gen(Status.FAILED, user=dave, remote_id=None, posts_sent=0, billed_at=at(5))  # nothing
    DeletedSpending.objects.create(user=carol, billed_at=at(5), spent=1, possibly=0)
    make_gen(Status.COMPLETED, user=carol, billed_at=start_of_month() - timedelta(seconds=1))

    month = money.month_days()
    days = {day.day: day for day in month.days}
    second, fifth = days[at(2).date()], days[at(5).date()]
    assert second.of(carol.pk) == money.Usage(
        spent=2 * COST, possibly=COST, reserved=0, refunded=0, generations=2
    )
    assert second.of(dave.pk) == money.Usage(reserved=COST, generations=1)
    assert second.team == money.Usage(spent=2 * COST, possibly=COST, reserved=COST, generations=3)
    assert fifth.of(dave.pk) == money.Usage(refunded=COST, generations=2)
    assert fifth.of(carol.pk) == money.Usage(spent=COST, generations=1)  # a deleted row's cost
    assert days[at(3).date()].team == money.Usage()
    # Every day of the month, in order; the month's sums are month_usage's, exactly.
    assert month.days[0].day == start_of_month().date()
    assert [d.day for d in month.days] == sorted(days)
    assert (month.days[-1].day + timedelta(days=1)).day == 1
    assert month.month.people == money.month_usage().people


def test_the_day_boundary_is_midnight_utc_whatever_the_time_zone(db, settings):
    settings.TIME_ZONE = "America/New_York"  # 5 hours behind: 02:00 UTC is the day before there
    carol = make_user("carol")
    make_gen(Status.COMPLETED, user=carol, billed_at=at(3, 23, 59, 59))
    make_gen(Status.COMPLETED, user=carol, billed_at=at(4, 0, 0, 0))
    make_gen(Status.COMPLETED, user=carol, billed_at=at(4, 2))
    days = {day.day: day.team.generations for day in money.month_days().days}
    assert days[at(3).date()] == 1
    assert days[at(4).date()] == 2


def test_a_month_by_day_costs_two_queries_whatever_the_number_of_rows(db):
    people = [make_user(f"p{i}") for i in range(4)]

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            money.month_days()
        return len(ctx.captured_queries)

    make_gen(Status.COMPLETED, user=people[0], billed_at=at(1))
    few = count()
    for i in range(60):
        make_gen(Status.COMPLETED, user=people[i % 4], billed_at=at(1 + i % 25))
        DeletedSpending.objects.create(user=people[i % 4], billed_at=at(1 + i % 20), spent=1)
    assert few == count() == 2


def test_the_months_with_usage_are_listed_newest_first_with_this_month_always(db):
    carol = make_user("carol")
    this = start_of_month()
    assert money.months_with_usage() == [this]
    two_ago = money.month_window(this - timedelta(days=40))[0]
    five_ago = money.month_window(this - timedelta(days=140))[0]
    make_gen(Status.COMPLETED, user=carol, billed_at=two_ago + timedelta(days=3))
    make_gen(Status.QUEUED, user=carol, billed_at=two_ago + timedelta(days=9))
    DeletedSpending.objects.create(user=carol, billed_at=five_ago + timedelta(hours=1), spent=1)
    make_gen(Status.COMPLETED, user=carol, billed_at=this + timedelta(days=40))  # next month: odd
    assert money.months_with_usage() == [this, two_ago, five_ago]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-13", "the month is 01 to 12"),
        ("2026-00", "the month is 01 to 12"),
        ("november", "write it as YYYY-MM"),
        ("2026-1", "write it as YYYY-MM"),
        ("2026-11-01", "write it as YYYY-MM"),
        ("", "write it as YYYY-MM"),
        ("\uff12\uff10\uff12\uff16-\uff11\uff11", "write it as YYYY-MM"),  # full-width digits
        ("1999-12", "counts usage from 2000"),
        ("0000-01", "counts usage from 2000"),  # year 0: no datetime can hold it (fuzz found a 500)
    ],
)
def test_a_month_that_is_not_one_is_refused_in_words(value, words):
    with pytest.raises(money.BadMonth, match=words):
        money.parse_month(value)


def test_a_month_is_read_in_utc_and_one_not_begun_is_refused():
    moment = datetime(2026, 11, 27, 15, tzinfo=UTC)
    assert money.parse_month("2026-11", moment) == datetime(2026, 11, 1, tzinfo=UTC)
    assert money.parse_month(" 2024-02 ", moment) == datetime(2024, 2, 1, tzinfo=UTC)
    with pytest.raises(money.BadMonth, match="has not begun"):
        money.parse_month("2026-12", moment)
    with pytest.raises(money.BadMonth, match="has not begun"):
        money.parse_month("9999-12", moment)


def test_the_report_for_an_admin_holds_everyone_with_budgets_and_what_is_left(db):
    boss = make_user("boss", is_superuser=True, is_staff=True)
    carol, dave = make_user("carol"), make_user("dave")
    make_user("idle")
    gone = make_user("gone")
    actions.set_member(None, carol, budget=3 * COST)
    actions.set_member(None, dave, role=Role.VIEWER)
    actions.set_team_budget(None, 4 * COST)
    make_gen(Status.COMPLETED, user=carol, billed_at=at(2))
    make_gen(Status.NEEDS_ATTENTION, user=carol, remote_id=None, billed_at=at(3))
    make_gen(Status.QUEUED, user=carol, billed_at=at(3))
    make_gen(Status.COMPLETED, user=dave, billed_at=at(4))  # made before he became a viewer
    make_gen(Status.COMPLETED, user=gone, billed_at=at(4))
    make_gen(Status.COMPLETED, user=None, billed_at=at(4))  # an operator's
    gone.is_active = False
    gone.save()

    report = money.usage_report(boss, at(10), everyone=True)
    lines = {line.name: line for line in report.people}
    assert list(lines) == ["boss", "carol", "dave", "gone", "idle", None]
    assert lines["boss"].role == Role.ADMIN and lines["dave"].role == Role.VIEWER
    assert lines["carol"].usage == money.Usage(
        spent=2 * COST, possibly=COST, reserved=COST, generations=3
    )
    assert lines["carol"].budget == 3 * COST and lines["carol"].remaining == 0
    assert lines["idle"].usage == money.Usage() and lines["idle"].remaining is None
    assert lines[None].usage.spent == COST
    assert report.team.budget == 4 * COST
    assert report.team.usage.counted == 6 * COST and report.team.remaining == 0
    assert report.month == f"{start_of_month():%Y-%m}" and report.cost == COST
    fourth = next(day for day in report.days if day.day == at(4).date())
    assert set(fourth.people) == {"dave", "gone", None}
    assert fourth.team.spent == 3 * COST


def test_the_report_for_anyone_else_holds_their_own_line_and_the_teams_totals(db):
    carol, dave = make_user("carol"), make_user("dave")
    make_gen(Status.COMPLETED, user=carol, billed_at=at(2))
    make_gen(Status.COMPLETED, user=dave, billed_at=at(2))
    make_gen(Status.QUEUED, user=dave, billed_at=at(3))

    report = money.usage_report(carol, at(10))
    assert [line.name for line in report.people] == ["carol"]
    assert report.people[0].usage.spent == COST
    assert report.team.usage == money.Usage(spent=2 * COST, reserved=COST, generations=3)
    second = next(day for day in report.days if day.day == at(2).date())
    assert list(second.people) == ["carol"]  # dave's day is in the team's figure only
    assert second.team.spent == 2 * COST
    third = next(day for day in report.days if day.day == at(3).date())
    assert third.people == {} and third.team.reserved == COST


def test_a_past_months_report_reads_that_month_only(db):
    carol = make_user("carol")
    last = money.month_window(start_of_month() - timedelta(days=1))[0]
    make_gen(Status.COMPLETED, user=carol, billed_at=last + timedelta(days=6, hours=1))
    make_gen(Status.COMPLETED, user=carol, billed_at=at(1))
    report = money.usage_report(carol, last)
    assert report.start == last and report.team.usage.spent == COST
    assert report.days[0].day == last.date()
    assert [d.day for d in report.days if d.team.spent] == [date(last.year, last.month, 7)]
