"""Small template helpers for the studio pages: shapes, numbers, durations and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.forms import BaseForm, BoundField
from django.template import Context
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from generations import actions, naming
from generations.models import (
    Generation,
    Status,
    capacity_limited,
    slot_positions,
    slots,
)

register = template.Library()


@register.filter
def thousands(value: float | str) -> str:
    """500000 -> "500,000"."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


@register.filter
def duration(seconds: float | str) -> str:
    try:
        return human_duration(float(seconds))
    except (TypeError, ValueError):
        return ""


@register.simple_tag
def since(moment: datetime | None) -> str:
    """How long ago, as a <time> that static/js/app.js keeps counting."""
    if moment is None:
        return ""
    elapsed = (timezone.now() - moment).total_seconds()
    return format_html(
        '<time class="since" datetime="{}" data-since="{}">{}</time>',
        moment.isoformat(),
        moment.isoformat(),
        human_duration(elapsed),
    )


@register.filter
def settled(gen: Generation) -> bool:
    return gen.is_settled


@register.filter
def live_version(gen: Generation) -> str:
    """``Generation.live_version``, for templates."""
    return gen.live_version


@register.simple_tag(takes_context=True)
def progress(context: Context, gen: Generation) -> dict[str, object]:
    """The ETA bar of a job (``Generation.eta``), with the remaining time in words; CSS
    animates the rest without a request. A queued job that waits for a free slot under the
    account's capacity says how many jobs go before it (``ahead``; else ``None``)."""
    eta = gen.eta()
    return {
        "kind": eta.kind,
        "percent": eta.percent,
        "remaining": eta.remaining,
        "remaining_text": human_duration(eta.remaining),
        "ahead": _slots_ahead(context, gen),
    }


def _slots_ahead(context: Context, gen: Generation) -> int | None:
    """How many jobs get a slot before this one, when it has to wait for one. Worked out once
    per page or fragment (a few queries, however many cards), kept on the template context."""
    if gen.status != Status.QUEUED or not capacity_limited():
        return None
    wait = getattr(context, "_slot_wait", None)
    if wait is None:
        now = timezone.now()
        state = slots(now)
        positions = slot_positions(now, state.line) if state.room is not None else {}
        wait = (state.room or 0, positions)
        context._slot_wait = wait  # type: ignore[attr-defined]
    room, positions = wait
    ahead = positions.get(gen.pk)
    return ahead if ahead is not None and ahead >= room else None


@register.filter
def short_prompt(text: str, length: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


@register.filter
def orientation(ratio: str) -> str:
    """ "9:16" -> "tall", "16:9" -> "wide", "1:1" -> "square"."""
    try:
        width, height = (int(part) for part in str(ratio).split(":"))
    except ValueError:
        return "square"
    if width == height:
        return "square"
    return "tall" if height > width else "wide"


@register.filter
def ago(moment: datetime | None) -> str:
    """ "just now", "4 minutes ago", "2 days ago"."""
    if moment is None:
        return ""
    seconds = (timezone.now() - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


@register.filter
def can_change(gen: Generation, user: actions.User) -> bool:
    """Whether this person may retry, cancel, resolve or delete the job (``actions`` decides)."""
    try:
        actions.check_can_change(gen, user)
    except actions.ServiceError:
        return False
    return True


@register.simple_tag
def icon(name: str) -> SafeString:
    """An inline SVG icon from templates/icons.html (``{% icon "download" %}``): one file holds
    every icon, so a page never carries its own copy of a path."""
    return render_to_string(f"icons.html#{name}")


@register.filter
def fields_except(form: BaseForm, names: str) -> list[BoundField]:
    """The form's fields minus those a page lays out by hand (``"a,b,c"``), in form order: a
    field added to the form later still shows, rendered by templates/django/forms/field.html."""
    skip = {name.strip() for name in names.split(",")}
    return [field for field in form if field.name not in skip]


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"), tab, CR and LF included.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a text that starts like a formula gets a
    leading apostrophe (names and summaries are typed by people); None is empty; other values
    (our own numbers) go as they are. Used by every CSV export."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@register.filter
def download_name(gen: Any) -> str:
    """A video's file name when downloaded (``generations.naming``, shared with the views)."""
    return naming.download_name(gen)
