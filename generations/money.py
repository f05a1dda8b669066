"""The team's money, read from the rows: what each person and the team spent, reserved and got
refunded in a calendar month (UTC), and what is left of their budgets.

This is the one definition of what counts. The budget check (``generations.actions``), the
create page's "left this month" line, ``manage.py team list``, the Usage page (its chart and
CSV) and ``/api/v1/usage`` all read it, so they can never disagree. Everything is counted in
POSTs, and each row's POSTs are priced in SQL at the row's ``unit_cost`` (what one POST of it
costs in the provider's unit, ``unit()``: UmamiAI's tokens or Luma's credits, recorded when the
row was made). A row older than per-row pricing (``unit_cost`` 0) was an UmamiAI job: it counts
at ``LUMA_TOKENS_PER_GENERATION`` where the installation counts in tokens, and at nothing where
it counts in credits (tokens are no credits: an installation keeps one provider, see
docs/ARCHITECTURE.md, "Money in the provider's unit").

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
cost is kept in ``DeletedSpending`` (its POSTs and the row's ``unit_cost``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, TruncDate, TruncMonth
from django.utils import timezone

from generations import providers
from generations.inputs import GenerationRequest
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


_BIG: BigIntegerField[int, int] = BigIntegerField()


def _total(expression: Any) -> Coalesce:
    return Coalesce(Sum(expression, output_field=_INT), Value(0), output_field=_INT)


def _amount(expression: Any) -> Coalesce:
    """A sum of amounts (POSTs times a row's price). Postgres sums bigints as numeric: read it with
    ``int()``."""
    return Coalesce(Sum(expression, output_field=_BIG), Value(0), output_field=_BIG)


# --- prices: the provider's unit ------------------------------------------------------------------
UNIT_NOTES = {"credits": "1 credit = 1 US cent"}


def unit() -> str:
    """What the installation's money counts in: the provider's ``cost_unit`` ("tokens" for
    UmamiAI, "credits" for Luma's API: Luma's own credits, US cents)."""
    return providers.current().capabilities.cost_unit


def unit_note() -> str:
    """A few words saying what the unit is worth, where that is not obvious ("" for tokens)."""
    return UNIT_NOTES.get(unit(), "")


def amount(value: int) -> str:
    """An amount in words: "500,000 tokens", "150 credits"."""
    return f"{value:,} {unit()}"


def legacy_unit_cost() -> int:
    """What a row without a price of its own (``unit_cost`` 0: made before per-row pricing,
    always an UmamiAI job) costs a POST: ``LUMA_TOKENS_PER_GENERATION`` tokens where the
    installation counts in tokens; nothing where it counts in another unit (never mixed in)."""
    return int(settings.LUMA_TOKENS_PER_GENERATION) if unit() == "tokens" else 0


def price(request: GenerationRequest) -> int:
    """What one POST of ``request`` costs now, in ``unit()``: recorded on the row made for it."""
    return int(providers.current().unit_cost(request))


def row_price(gen: Generation) -> int:
    """What one POST of this row costs, in ``unit()`` (its own price, or the legacy one)."""
    return gen.unit_cost or legacy_unit_cost()


def _priced(name: str = "unit_cost") -> Case:
    """A row's price per POST, in SQL (``row_price``)."""
    return Case(
        When(**{name: 0}, then=Value(legacy_unit_cost())),
        default=F(name),
        output_field=_BIG,
    )


PRICED_OPTIONS = ("model", "resolution", "duration")


def _request(options: dict[str, str]) -> GenerationRequest:
    """A request with these options (and nothing else that could change its price)."""
    return GenerationRequest(
        user_prompt="",
        model=options.get("model", ""),
        resolution=options.get("resolution", ""),
        duration=options.get("duration", ""),
    )


def default_options() -> dict[str, str]:
    """The provider's default model, resolution and duration (only those it lets one choose)."""
    caps = providers.current().capabilities
    chosen = {
        "model": caps.default_model if caps.models else "",
        "resolution": caps.default_resolution if caps.resolutions else "",
        "duration": caps.default_duration if caps.durations else "",
    }
    return {name: value for name, value in chosen.items() if value}


def default_cost() -> int:
    """What one POST of a request with the provider's default options costs (the Extend
    button's note, the jobs page): ``LUMA_TOKENS_PER_GENERATION`` for UmamiAI."""
    return price(_request(default_options()))


def cost_of_options(data: Any) -> int:
    """The price of a request with the model, resolution and duration chosen in ``data`` (a
    form's data or initial values); a value the provider does not offer counts as its default."""
    caps = providers.current().capabilities
    offered = {"model": caps.models, "resolution": caps.resolutions, "duration": caps.durations}
    options = default_options()
    for name in options:
        value = str(data.get(name) or "") if data is not None else ""
        if value in offered[name]:
            options[name] = value
    return price(_request(options))


def price_table() -> dict[str, Any] | None:
    """Every price the provider's choices lead to, for the create page's cost line (its script
    picks the chosen model, resolution and duration): ``{"options": [names], "default":
    {name: value}, "prices": {"v1|v2|v3": price}}``; None when nothing chosen changes the price
    (UmamiAI: one price)."""
    caps = providers.current().capabilities
    offered = {"model": caps.models, "resolution": caps.resolutions, "duration": caps.durations}
    names = [name for name in PRICED_OPTIONS if offered[name]]
    if not names:
        return None
    combos: list[dict[str, str]] = [{}]
    for name in names:
        combos = [{**combo, name: value} for combo in combos for value in offered[name]]
    prices = {"|".join(combo[name] for name in names): price(_request(combo)) for combo in combos}
    if len(set(prices.values())) <= 1:
        return None
    return {"options": names, "default": default_options(), "prices": prices}


def cost_per_generation() -> int:
    """The price of one generation with the provider's default options (see ``default_cost``)."""
    return default_cost()


@dataclass(frozen=True)
class Usage:
    """One person's (or the team's) month, in the provider's unit (``unit()``)."""

    spent: int = 0
    possibly: int = 0  # the part of ``spent`` the service never confirmed (needs attention…)
    reserved: int = 0
    refunded: int = 0
    generations: int = 0
    # Of ``generations``, those counted at no price: older than per-row prices (UmamiAI's
    # tokens) where the installation counts in another unit. Shown, so nothing is left out
    # silently.
    unpriced: int = 0

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
            self.unpriced + other.unpriced,
        )


def total(usages: Iterable[Usage]) -> Usage:
    """The sum of several people's (or days') usage: the team's."""
    summed = Usage()
    for usage in usages:
        summed += usage
    return summed


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
        return total(self.people.values())

    def of(self, user_id: int | None) -> Usage:
        return self.people.get(user_id, Usage())


def _grouped(
    start: datetime, end: datetime, by_day: bool
) -> dict[tuple[date | None, int | None], Usage]:
    """Usage in [start, end), per person (and per UTC day with ``by_day``; the day is None
    without), in two queries: live rows, then deleted rows' kept costs. The one place the sums
    are made: the month's figures and the days' are the same expressions, grouped differently."""
    cost = _priced()
    # Rows without a price of their own count nothing where the unit is not tokens: say how many.
    unpriced: Any = Count("pk", filter=Q(unit_cost=0)) if not legacy_unit_cost() else Value(0)
    grouped: dict[tuple[date | None, int | None], Usage] = {}
    live = Generation.objects.filter(billed_at__gte=start, billed_at__lt=end).order_by()
    gone = DeletedSpending.objects.filter(billed_at__gte=start, billed_at__lt=end).order_by()
    if by_day:
        live = live.annotate(day=TruncDate("billed_at", tzinfo=UTC))
        gone = gone.annotate(day=TruncDate("billed_at", tzinfo=UTC))
    day_key = ["day"] if by_day else []
    for row in live.values(*day_key, "created_by").annotate(
        spent=_amount(SPENT * cost),
        possibly=_amount(POSSIBLY * cost),
        reserved=_amount(RESERVED * cost),
        refunded=_amount(REFUNDED * cost),
        generations=Count("pk"),
        unpriced=unpriced,
    ):
        grouped[(row.get("day"), row["created_by"])] = Usage(
            int(row["spent"]),
            int(row["possibly"]),
            int(row["reserved"]),
            int(row["refunded"]),
            row["generations"],
            row["unpriced"],
        )
    kept = _priced()  # a deleted row's POSTs, at the price that row had
    for row in gone.values(*day_key, "user").annotate(
        spent=_amount(F("spent") * kept),
        possibly=_amount(F("possibly") * kept),
        refunded=_amount(F("refunded") * kept),
        generations=Count("pk"),
        unpriced=unpriced,
    ):
        key = (row.get("day"), row["user"])
        grouped[key] = grouped.get(key, Usage()) + Usage(
            spent=int(row["spent"]),
            possibly=int(row["possibly"]),
            refunded=int(row["refunded"]),
            generations=row["generations"],
            unpriced=row["unpriced"],
        )
    return grouped


def month_usage(moment: datetime | None = None) -> MonthUsage:
    """Every person's usage in the month of ``moment`` (default: now), in two queries (live
    rows, then deleted rows' kept costs), whatever the number of jobs."""
    start, end = month_window(moment)
    people = {user_id: usage for (_, user_id), usage in _grouped(start, end, by_day=False).items()}
    return MonthUsage(start, end, people)


@dataclass(frozen=True)
class DayUsage:
    """One calendar day (UTC) of a month: per person (by user id, None as in ``MonthUsage``)."""

    day: date
    people: dict[int | None, Usage] = field(default_factory=dict)

    @property
    def team(self) -> Usage:
        return total(self.people.values())

    def of(self, user_id: int | None) -> Usage:
        return self.people.get(user_id, Usage())


@dataclass(frozen=True)
class MonthDays:
    """A month's usage day by day (``days``: every day of the month, in order, quiet ones
    included); ``month`` is the same figures summed per person, equal to ``month_usage``."""

    month: MonthUsage
    days: list[DayUsage]


def month_days(moment: datetime | None = None) -> MonthDays:
    """The month of ``moment`` (default: now), per UTC day and person, in two queries whatever
    the number of jobs (the rows are grouped by day in the database: ``TruncDate`` in UTC)."""
    start, end = month_window(moment)
    by_day: dict[date, dict[int | None, Usage]] = {}
    month: dict[int | None, Usage] = {}
    for (day, user_id), usage in _grouped(start, end, by_day=True).items():
        if day is None:  # never: every row of the window has a billed_at
            continue
        by_day.setdefault(day, {})[user_id] = usage
        month[user_id] = month.get(user_id, Usage()) + usage
    days = []
    day = start.date()
    while day < end.date():
        days.append(DayUsage(day, by_day.get(day, {})))
        day += timedelta(days=1)
    return MonthDays(MonthUsage(start, end, month), days)


def months_with_usage(moment: datetime | None = None) -> list[datetime]:
    """The first instant (UTC) of every month that has a row counted in it (a live one or a
    deleted one's kept cost), and of the month of ``moment`` (default: now), newest first; two
    queries. Months after ``moment`` are left out."""
    current, end = month_window(moment)
    months = {current}
    for model in (Generation, DeletedSpending):
        stamps = (
            model.objects.filter(billed_at__lt=end)
            .order_by()
            .annotate(month=TruncMonth("billed_at", tzinfo=UTC))
            .values_list("month", flat=True)
            .distinct()
        )
        months.update(month_window(stamp)[0] for stamp in stamps if stamp is not None)
    return sorted(months, reverse=True)


class BadMonth(ValueError):
    """A month asked for (``?month=``) that is not one lumaweb can show; says why in words."""


FIRST_YEAR = 2000
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")


def parse_month(value: str, moment: datetime | None = None) -> datetime:
    """``"2026-11"`` -> the first instant of that month (UTC). Refused, with a sentence a person
    can act on: anything but YYYY-MM, a month that does not exist, one before 2000 or after the
    month of ``moment`` (default: now): no usage can be counted there yet."""
    text = value.strip()
    example = f"for example {month_window(moment)[0]:%Y-%m}"
    if not _MONTH.fullmatch(text):  # ASCII digits only: int() would read others too
        raise BadMonth(f"“{text[:20]}” is not a month: write it as YYYY-MM, {example}.")
    year, _, month = text.partition("-")
    if not 1 <= int(month) <= 12:
        raise BadMonth(f"“{text}” is not a month: the month is 01 to 12, {example}.")
    if int(year) < FIRST_YEAR:  # before building the date: year 0 is no datetime at all
        raise BadMonth(f"“{text}” is too long ago: lumaweb counts usage from {FIRST_YEAR}.")
    start = datetime(int(year), int(month), 1, tzinfo=UTC)
    if start > month_window(moment)[0]:
        raise BadMonth(f"“{text}” has not begun yet: nothing can have been spent in it.")
    return start


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
    cost: int | None = None,
) -> Allowance:
    """What ``user`` (None: the operator, bound by the team's budget only) may still spend in
    the month of ``moment``. Pass the locked ``team`` row when deciding (``actions``), and
    ``cost``: what one of what is asked costs (default: a generation with the provider's
    default options)."""
    team = team or Team.current()
    usage = month_usage(moment)
    user_id = _user_id(user)
    budget = _person_budget(user_id)
    return Allowance(
        cost=default_cost() if cost is None else cost,
        person_budget=budget,
        person_used=usage.of(user_id).counted if user_id is not None else 0,
        team_budget=team.monthly_budget,
        team_used=usage.team.counted,
    )


# --- the Usage page and /api/v1/usage ------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One line of a usage table: a person, the team, or the jobs of no one (an operator's, a
    removed account's: ``name`` None), with the budget it is held to (None: no limit).

    Budgets are today's: lumaweb keeps no history of them, so a past month's ``remaining`` is
    what today's budget leaves of that month's usage."""

    name: str | None
    role: str
    budget: int | None
    usage: Usage

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else max(0, self.budget - self.usage.counted)


@dataclass(frozen=True)
class ReportDay:
    """One day (UTC) of a report: the team's figures, and those of the people the reader may
    see (only people with a row that day)."""

    day: date
    team: Usage
    people: dict[str | None, Usage]


@dataclass(frozen=True)
class UsageReport:
    """A month as one reader may see it: the team's line, the people's (everyone for an
    admin, else the reader's own), every day of the month, and the months there is usage in."""

    start: datetime
    cost: int
    team: Line
    people: list[Line]
    days: list[ReportDay]
    everyone: bool
    unit: str = "tokens"  # what every figure counts in (``unit()``)
    unit_note: str = ""  # what the unit is worth ("1 credit = 1 US cent"), where not obvious
    priced_by_options: bool = False  # a job's price follows its model, resolution, duration

    @property
    def month(self) -> str:
        return f"{self.start:%Y-%m}"


NO_ONE = "(no one)"  # how the pages and the CSV name the jobs of nobody's
TEAM = "(team)"  # the team's line (no username has brackets: it can be told apart)


def usage_report(
    reader: AbstractBaseUser | AnonymousUser,
    moment: datetime | None = None,
    everyone: bool = False,
) -> UsageReport:
    """The month of ``moment`` (default: now) for ``reader``; ``everyone`` (the caller decides:
    admins) adds every active person and anyone with usage that month. A fixed number of
    queries: the month by day (two), the people with their roles and budgets (one, or none for
    the reader alone), the team's budget (one)."""
    month = month_days(moment)
    usage = month.month
    reader_id = reader.pk if getattr(reader, "is_authenticated", False) else None
    people: list[Any]
    if everyone:
        ids = [user_id for user_id in usage.people if user_id is not None]
        people = list(
            get_user_model()
            .objects.filter(Q(is_active=True) | Q(pk__in=ids))
            .select_related("member")
            .order_by("username")
        )
    else:
        people = [reader] if reader_id is not None else []
    lines = [
        Line(
            name=person.get_username(),
            role=Member.role_of(person),
            budget=Member.budget_of(person),
            usage=usage.of(person.pk),
        )
        for person in people
    ]
    names: dict[int | None, str | None] = {person.pk: person.get_username() for person in people}
    if everyone and usage.of(None).generations:
        lines.append(Line(name=None, role="", budget=None, usage=usage.of(None)))
        names[None] = None
    days = [
        ReportDay(
            day=day.day,
            team=day.team,
            people={names[uid]: used for uid, used in day.people.items() if uid in names},
        )
        for day in month.days
    ]
    team = Line(name=TEAM, role="", budget=Team.current().monthly_budget, usage=usage.team)
    return UsageReport(
        start=usage.start,
        cost=cost_per_generation(),
        team=team,
        people=lines,
        days=days,
        everyone=everyone,
        unit=unit(),
        unit_note=unit_note(),
        priced_by_options=price_table() is not None,
    )
