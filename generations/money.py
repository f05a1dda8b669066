"""The team's money, read from the rows: what each person and the team spent, reserved and got
refunded in a calendar month (UTC), and what is left of their budgets.

This is the one definition of what counts. The budget check (``generations.actions``), the
create page's "left this month" line, ``manage.py team list`` and the later Usage page all read
it, so they can never disagree. Everything is counted in POSTs (each may be charged
``LUMA_TOKENS_PER_GENERATION`` tokens) and turned into tokens at the end:

* *spent*: POSTs that went out (``posts_sent``: counted before the POST, taken back only when
  the answer proves nothing started), less refunded ones. A needs-attention job's POST counts:
  it may have been charged (*possibly*, the part of *spent* the service never confirmed).
* *reserved*: POSTs a queued (or being submitted) job is still allowed to send.
* *refunded*: a job the service failed after starting (``state == "failed"``), shown but not
  counted; ``posts_refunded`` keeps that count when such a job is retried.
* a job refused before starting (4xx, cancelled while queued) costs nothing: its POST count was
  taken back.
* a late answer (a POST answered after the row had moved on: marked failed, or retried) is kept
  as a row of its own, which counts that POST; the row that sent it counts it in
  ``posts_adopted`` and no longer in *spent* (it still counts in ``posts_sent``, so a Retry of
  it still warns that its request reached the service).

A row counts in the month of ``billed_at`` (its creation, or its latest retry); a deleted row's
cost is kept in ``DeletedSpending``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from generations.models import DeletedSpending, Generation, Member, Status, Team

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

_INT: IntegerField[int, int] = IntegerField()
# Per row, in POSTs (the expressions the sums below are made of).
_REFUNDED_NOW = Case(
    When(Q(status=Status.FAILED, remote_id__isnull=False, state="failed"), then=Value(1)),
    default=Value(0),
    output_field=_INT,
)
REFUNDED = F("posts_refunded") + _REFUNDED_NOW
# Never below 0, whatever a row holds (rows made by hand or by an older version: a row with an
# upstream id and no POST counted must not give tokens back). A POST whose late answer was kept
# as a row of its own (``posts_adopted``) is counted on that row, not twice.
SPENT = Greatest(F("posts_sent") - REFUNDED - F("posts_adopted"), Value(0), output_field=_INT)
_CONFIRMED = (
    Case(When(remote_id__isnull=False, then=Value(1)), default=Value(0), output_field=_INT)
    - _REFUNDED_NOW
)
POSSIBLY = Greatest(SPENT - _CONFIRMED, Value(0), output_field=_INT)
RESERVED = Case(
    When(
        status__in=[Status.QUEUED, Status.SUBMITTING],
        then=F("posts_authorized") - F("posts_sent"),
    ),
    default=Value(0),
    output_field=_INT,
)


def _total(expression: Any) -> Coalesce:
    return Coalesce(Sum(expression, output_field=_INT), Value(0), output_field=_INT)


def cost_per_generation() -> int:
    return int(settings.LUMA_TOKENS_PER_GENERATION)


@dataclass(frozen=True)
class Usage:
    """One person's (or the team's) month, in tokens."""

    spent: int = 0
    possibly: int = 0  # the part of ``spent`` the service never confirmed (needs attention…)
    reserved: int = 0
    refunded: int = 0
    generations: int = 0

    @property
    def counted(self) -> int:
        """What the budget is charged with: spent (possibly charged included) and reserved."""
        return self.spent + self.reserved

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.spent + other.spent,
            self.possibly + other.possibly,
            self.reserved + other.reserved,
            self.refunded + other.refunded,
            self.generations + other.generations,
        )


def month_window(moment: datetime | None = None) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``moment``: [first instant, first instant of the next)."""
    now = (moment or timezone.now()).astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def row_units(rows: QuerySet[Generation]) -> dict[str, int]:
    """Spent, possibly and refunded POSTs of these rows, summed (for a row about to be
    deleted: its cost is kept in ``DeletedSpending``)."""
    return rows.aggregate(spent=_total(SPENT), possibly=_total(POSSIBLY), refunded=_total(REFUNDED))


@dataclass(frozen=True)
class MonthUsage:
    """A month's usage: per person (by user id; None for jobs of nobody's, e.g. an
    operator's) and for the whole team."""

    start: datetime
    end: datetime
    people: dict[int | None, Usage] = field(default_factory=dict)

    @property
    def team(self) -> Usage:
        total = Usage()
        for usage in self.people.values():
            total += usage
        return total

    def of(self, user_id: int | None) -> Usage:
        return self.people.get(user_id, Usage())


def month_usage(moment: datetime | None = None) -> MonthUsage:
    """Every person's usage in the month of ``moment`` (default: now), in two queries (live
    rows, then deleted rows' kept costs), whatever the number of jobs."""
    start, end = month_window(moment)
    cost = cost_per_generation()
    people: dict[int | None, Usage] = {}
    live = (
        Generation.objects.filter(billed_at__gte=start, billed_at__lt=end)
        .order_by()
        .values("created_by")
        .annotate(
            spent=_total(SPENT),
            possibly=_total(POSSIBLY),
            reserved=_total(RESERVED),
            refunded=_total(REFUNDED),
            generations=Count("pk"),
        )
    )
    for row in live:
        people[row["created_by"]] = Usage(
            row["spent"] * cost,
            row["possibly"] * cost,
            row["reserved"] * cost,
            row["refunded"] * cost,
            row["generations"],
        )
    deleted = (
        DeletedSpending.objects.filter(billed_at__gte=start, billed_at__lt=end)
        .order_by()
        .values("user")
        .annotate(
            spent=_total("spent"),
            possibly=_total("possibly"),
            refunded=_total("refunded"),
            generations=Count("pk"),
        )
    )
    for row in deleted:
        gone = Usage(
            spent=row["spent"] * cost,
            possibly=row["possibly"] * cost,
            refunded=row["refunded"] * cost,
            generations=row["generations"],
        )
        people[row["user"]] = people.get(row["user"], Usage()) + gone
    return MonthUsage(start, end, people)


@dataclass(frozen=True)
class Allowance:
    """What one person may still spend this month: their own budget and the team's, each
    None for "no limit"."""

    cost: int
    person_budget: int | None
    person_used: int
    team_budget: int | None
    team_used: int

    @property
    def person_left(self) -> int | None:
        return None if self.person_budget is None else max(0, self.person_budget - self.person_used)

    @property
    def team_left(self) -> int | None:
        return None if self.team_budget is None else max(0, self.team_budget - self.team_used)

    @property
    def left(self) -> int | None:
        """The smaller of the two; None when neither is limited."""
        limits = [x for x in (self.person_left, self.team_left) if x is not None]
        return min(limits) if limits else None

    def short_of(self, generations: int = 1) -> str:
        """ "" when ``generations`` more fit; else whose budget they would break:
        "person" or "team" (the person's first: it is the one they can ask about)."""
        wanted = self.cost * generations
        if self.person_left is not None and wanted > self.person_left:
            return "person"
        if self.team_left is not None and wanted > self.team_left:
            return "team"
        return ""

    def as_json(self, generations: int = 1) -> dict[str, Any]:
        return {
            "cost": self.cost * generations,
            "left": self.left,
            "person": {
                "budget": self.person_budget,
                "used": self.person_used,
                "left": self.person_left,
            },
            "team": {"budget": self.team_budget, "used": self.team_used, "left": self.team_left},
        }


def _user_id(user: AbstractBaseUser | AnonymousUser | None) -> int | None:
    return user.pk if user is not None and getattr(user, "is_authenticated", False) else None


def _person_budget(user_id: int | None) -> int | None:
    """Read now, not from the user object's cache: under the lock, a budget just changed counts."""
    if user_id is None:
        return None
    return Member.objects.filter(user_id=user_id).values_list("monthly_budget", flat=True).first()


def limited(user: AbstractBaseUser | AnonymousUser | None, team: Team) -> bool:
    """Whether any budget binds ``user``'s spending (theirs or the team's): without one, a
    create need not sum the month (one small query instead of the month's usage)."""
    return team.monthly_budget is not None or _person_budget(_user_id(user)) is not None


def allowance(
    user: AbstractBaseUser | AnonymousUser | None,
    team: Team | None = None,
    moment: datetime | None = None,
) -> Allowance:
    """What ``user`` (None: the operator, bound by the team's budget only) may still spend in
    the month of ``moment``. Pass the locked ``team`` row when deciding (``actions``)."""
    team = team or Team.current()
    usage = month_usage(moment)
    user_id = _user_id(user)
    budget = _person_budget(user_id)
    return Allowance(
        cost=cost_per_generation(),
        person_budget=budget,
        person_used=usage.of(user_id).counted if user_id is not None else 0,
        team_budget=team.monthly_budget,
        team_used=usage.team.counted,
    )
