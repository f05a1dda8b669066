"""``GET /api/v1/usage[?month=YYYY-MM]``: the Usage page's figures as JSON.

The caller's own line and the team's totals; every person's for an admin. The figures are
``generations.money.usage_report``'s, the same the page, its CSV, the budget check and
``manage.py team list`` read. Every amount is in ``unit``: the provider's ("tokens" for
UmamiAI, "credits" for Luma's API: US cents), each job priced by its own request;
``possibly`` is part of ``spent``; ``refunded`` is shown, not counted; ``budget`` and
``remaining`` are null for "no limit".
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from generations import actions, money
from generations.api.errors import json_error
from generations.api.views import api_view


def usage_fields(usage: money.Usage) -> dict[str, int]:
    return {
        "spent": usage.spent,
        "possibly": usage.possibly,
        "reserved": usage.reserved,
        "refunded": usage.refunded,
        "generations": usage.generations,
    }


def line_fields(line: money.Line) -> dict[str, Any]:
    return {**usage_fields(line.usage), "budget": line.budget, "remaining": line.remaining}


def report_json(report: money.UsageReport, months: list[str]) -> dict[str, Any]:
    return {
        "month": report.month,
        "unit": report.unit,
        "cost_per_generation": report.cost,
        # The team's jobs counted at no price (older than per-row prices, in another unit).
        "unpriced": report.team.usage.unpriced,
        "team": line_fields(report.team),
        # ``user`` null: jobs of no one (an operator's, a removed account's); admins only.
        "people": [
            {"user": line.name, "role": line.role or None, **line_fields(line)}
            for line in report.people
        ],
        "days": [
            {
                "date": day.day.isoformat(),
                "team": usage_fields(day.team),
                "people": [
                    {"user": name, **usage_fields(used)} for name, used in day.people.items()
                ],
            }
            for day in report.days
        ],
        "months": months,
    }


@api_view("GET")
def usage(request: HttpRequest) -> HttpResponse:
    moment = None
    if raw := request.GET.get("month", "").strip():  # empty: this month, as without it
        try:
            moment = money.parse_month(raw)
        except money.BadMonth as exc:
            return json_error(400, str(exc), {"month": [str(exc)]})
    report = money.usage_report(request.user, moment, everyone=actions.is_admin(request.user))
    months = [f"{month:%Y-%m}" for month in money.months_with_usage()]
    return JsonResponse(report_json(report, months))
