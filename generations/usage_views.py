"""The Usage page (``/usage/``) and its CSV export (``/usage.csv``): a month's spending per person
and for the team, with a per-day chart.

Every figure is ``generations.money``'s (``usage_report``), the same definition the budget
check, the create page's "left this month" line, ``manage.py team list`` and ``/api/v1/usage``
read. Admins see everyone; anyone else sees their own line and the team's totals.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from generations import actions, money
from generations.htmx import HtmxHttpRequest, render_for_target
from generations.templatetags.studio import safe_cell, thousands

# The chart's drawing box (SVG user units; the CSS scales it to the page's width).
WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 70, 10, 14, 26
TICKS = 4


def requested_month(request: HttpRequest) -> tuple[datetime | None, str]:
    """The month ``?month=YYYY-MM`` asks for (None: this month) and, for a value lumaweb cannot
    show, the sentence that says why (the page then shows this month)."""
    raw = request.GET.get("month", "").strip()
    if not raw:
        return None, ""
    try:
        return money.parse_month(raw), ""
    except money.BadMonth as exc:
        return None, f"{exc} Showing this month instead."


# --- the chart ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    y: float
    height: float
    kind: str  # spent | possibly | reserved: the CSS class (colours for light and dark)


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    label: str  # what a pointer hovering the bar is told (the table says it for everyone)
    segments: list[Segment]


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    """A month of the team's counted tokens per day, as stacked bars: confirmed spending,
    possibly charged, reserved (refunded ones are not counted, so not drawn)."""

    width: int
    height: int
    baseline: float
    plot_left: int
    plot_right: int
    bars: list[Bar]
    ticks: list[Tick]
    days: list[DayLabel]
    busiest: money.ReportDay | None


def short_tokens(value: int) -> str:
    """An axis label: 2500000 -> "2.5M", 750000 -> "750K"."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "K")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return str(value)


def _step(top: int) -> int:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) so that TICKS steps reach
    ``top``."""
    raw = max(1.0, top / TICKS)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return max(1, int(factor * power))
    return int(10 * power)  # pragma: no cover (the loop always answers)


def _day_total(day: money.ReportDay) -> int:
    return day.team.counted


def build_chart(report: money.UsageReport) -> Chart:
    busiest = max(report.days, key=_day_total, default=None)
    if busiest is not None and not _day_total(busiest):
        busiest = None
    step = _step(_day_total(busiest) if busiest else report.cost)
    top = step * TICKS
    plot_h = HEIGHT - TOP - BOTTOM
    baseline = float(HEIGHT - BOTTOM)
    band = (WIDTH - LEFT - RIGHT) / max(1, len(report.days))
    width = round(band * 0.68, 1)

    def height(value: int) -> float:
        return round(plot_h * value / top, 2)

    bars, labels = [], []
    for index, day in enumerate(report.days):
        x = round(LEFT + index * band + (band - width) / 2, 1)
        team = day.team
        parts = (
            ("spent", team.spent - team.possibly),
            ("possibly", team.possibly),
            ("reserved", team.reserved),
        )
        segments, y = [], baseline
        for kind, value in parts:
            if value > 0:
                h = height(value)
                y = round(y - h, 2)
                segments.append(Segment(y=y, height=h, kind=kind))
        words = [
            f"{thousands(v)} {k.replace('possibly', 'possibly charged')}" for k, v in parts if v
        ]
        bars.append(
            Bar(
                x=x,
                width=width,
                label=f"{day.day.day} {day.day:%b}: " + (", ".join(words) if words else "nothing"),
                segments=segments,
            )
        )
        if day.day.day == 1 or day.day.day % 5 == 0:
            labels.append(DayLabel(x=round(x + width / 2, 1), label=str(day.day.day)))
    ticks = [
        Tick(y=round(baseline - plot_h * n / TICKS, 1), label=short_tokens(step * n))
        for n in range(TICKS + 1)
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        baseline=baseline,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        bars=bars,
        ticks=ticks,
        days=labels,
        busiest=busiest,
    )


def month_label(start: datetime) -> str:
    return f"{start:%B %Y}"


# --- the page and the CSV -------------------------------------------------------------------------
def _report(request: HttpRequest, moment: datetime | None) -> money.UsageReport:
    return money.usage_report(request.user, moment, everyone=actions.is_admin(request.user))


@require_GET
def usage(request: HtmxHttpRequest) -> HttpResponse:
    moment, problem = requested_month(request)
    report = _report(request, moment)
    this_month = money.month_window()[0]
    months = sorted({*money.months_with_usage(), report.start}, reverse=True)
    context: dict[str, Any] = {
        "report": report,
        "month_label": month_label(report.start),
        "chart": build_chart(report),
        # Labels made here, in UTC: the template's date filter would show them in TIME_ZONE.
        "months": [(f"{month:%Y-%m}", month_label(month)) for month in months],
        "is_current": report.start == this_month,
        "problem": problem,
        "active_days": [day for day in report.days if day.team.generations],
    }
    return render_for_target(
        request,
        "generations/usage.html",
        context,
        {"usage-body": "body"},
        status=400 if problem else 200,
    )


CSV_HEADER = [
    "month",
    "user",
    "role",
    "budget",
    "spent",
    "possibly_charged",
    "reserved",
    "refunded",
    "remaining",
    "generations",
]


def _csv_row(month: str, line: money.Line, name: str) -> list[object]:
    used = line.usage
    no_limit = "no limit"
    return [
        month,
        name,
        line.role,
        no_limit if line.budget is None else line.budget,
        used.spent,
        used.possibly,
        used.reserved,
        used.refunded,
        no_limit if line.remaining is None else line.remaining,
        used.generations,
    ]


@require_GET
def usage_csv(request: HttpRequest) -> HttpResponse:
    """The page's table as CSV: the same lines the reader may see, then the team's. In the
    provider's unit (tokens, credits: the page and /api/v1/usage name it);
    ``possibly_charged`` is part of ``spent``; ``refunded`` is not counted."""
    moment, problem = requested_month(request)
    if problem:
        return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")
    report = _report(request, moment)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="lumaweb-usage-{report.month}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    for line in report.people:
        name = line.name if line.name is not None else money.NO_ONE
        writer.writerow([safe_cell(cell) for cell in _csv_row(report.month, line, name)])
    writer.writerow(_csv_row(report.month, report.team, money.TEAM))
    return response
