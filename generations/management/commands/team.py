"""``manage.py team``: roles and monthly budgets, without the Django admin.

manage.py team list                                        members, roles, budgets, this month
manage.py team set USER [--role ROLE] [--budget TOKENS|none]   a person's role and/or budget
manage.py team budget TOKENS|none                          the whole team's monthly budget

Budgets are amounts per calendar month (UTC) in the provider's unit (tokens for UmamiAI,
credits, i.e. US cents, for Luma's API); "none" is no limit. Changes go through
``generations.actions`` like the later Team page's will; the figures are ``generations.money``'s,
the same the budget check and the create page read.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generations import actions, money
from generations.models import Member, Role, Team


def parse_budget(value: str) -> int | None:
    """ "none" (or "unlimited") -> None; "2000000", "2_000_000" or "2,000,000" -> 2000000."""
    if value.strip().lower() in ("none", "unlimited", "no-limit"):
        return None
    digits = value.replace("_", "").replace(",", "").strip()
    if not digits.isdigit():
        raise CommandError(f"{value!r} is not a number of {money.unit()} (or 'none' for no limit)")
    return int(digits)


def _tokens(value: int | None) -> str:
    return "no limit" if value is None else f"{value:,}"


class Command(BaseCommand):
    help = "List the team's roles, budgets and this month's usage; set roles and budgets."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="what", required=True)
        sub.add_parser("list", help="members, roles, budgets and this month's usage")
        one = sub.add_parser("set", help="a person's role and/or monthly budget")
        one.add_argument("username")
        one.add_argument("--role", choices=Role.values)
        unit = money.unit()
        one.add_argument("--budget", help=f"{unit} per month, or 'none' for no limit")
        team = sub.add_parser("budget", help="the whole team's monthly budget")
        team.add_argument("tokens", metavar=unit, help=f"{unit} per month, or 'none' for no limit")

    def handle(self, *args: Any, what: str, **options: Any) -> None:
        try:
            if what == "set":
                self._set(options["username"], options.get("role"), options.get("budget"))
            elif what == "budget":
                team = actions.set_team_budget(None, parse_budget(options["tokens"]))
                budget = _tokens(team.monthly_budget)
                self.stdout.write(f"Team budget: {budget} {money.unit()} a month.")
            else:
                self._list()
        except actions.ServiceError as exc:
            raise CommandError(str(exc)) from None

    def _set(self, username: str, role: str | None, budget: str | None) -> None:
        if role is None and budget is None:
            raise CommandError(
                f"Say what to set: --role ROLE and/or --budget {money.unit().upper()}|none"
            )
        person = get_user_model().objects.filter(username=username).first()
        if person is None:
            raise CommandError(f"No user {username!r}")
        member = actions.set_member(
            None,
            person,
            role=role if role is not None else actions.UNCHANGED,
            budget=parse_budget(budget) if budget is not None else actions.UNCHANGED,
        )
        effective = Member.role_of(person)
        note = " (a superuser: an admin whatever the role says)" if effective != member.role else ""
        budget_text = _tokens(member.monthly_budget)
        self.stdout.write(
            f"{username}: {effective}{note}, budget {budget_text} {money.unit()} a month."
        )

    def _list(self) -> None:
        usage = money.month_usage()
        people = (
            get_user_model()
            .objects.filter(is_active=True)
            .select_related("member")
            .order_by("username")
        )
        worth = f" ({money.unit_note()})" if money.unit_note() else ""
        self.stdout.write(
            f"Month {usage.start:%Y-%m} (UTC). {money.unit().capitalize()}{worth}; "
            "'possibly' is part of spent."
        )
        header = (
            f"{'user':<16} {'role':<8} {'budget':>14} {'spent':>13} {'possibly':>13} "
            f"{'reserved':>13} {'refunded':>13} {'remaining':>14}"
        )
        self.stdout.write(header)
        for person in people:
            budget = Member.budget_of(person)
            self._row(person.get_username(), Member.role_of(person), budget, usage.of(person.pk))
        others = usage.of(None)
        if others.generations:
            self._row("(no one)", "-", None, others)
        team_budget = Team.current().monthly_budget
        self.stdout.write("-" * len(header))
        self._row("TEAM", "", team_budget, usage.team)

    def _row(self, name: str, role: str, budget: int | None, used: money.Usage) -> None:
        left = None if budget is None else max(0, budget - used.counted)
        self.stdout.write(
            f"{name[:16]:<16} {role:<8} {_tokens(budget):>14} {used.spent:>13,} "
            f"{used.possibly:>13,} {used.reserved:>13,} {used.refunded:>13,} {_tokens(left):>14}"
        )
