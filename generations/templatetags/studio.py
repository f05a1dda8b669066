"""Small template helpers for the studio pages: shapes, numbers, durations and progress."""

from __future__ import annotations

import hashlib
from datetime import datetime

from django import template
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from generations import queries, services
from generations.models import Generation, Status

register = template.Library()


@register.filter
def ratio_css(ratio: str) -> str:
    """ "16:9" -> "16 / 9", for the CSS aspect-ratio property (anything odd -> square)."""
    try:
        width, height = (int(part) for part in str(ratio).split(":"))
    except ValueError:
        return "1 / 1"
    return f"{width} / {height}"


@register.filter
def thousands(value) -> str:
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
def duration(seconds) -> str:
    try:
        return human_duration(float(seconds))
    except (TypeError, ValueError):
        return ""


@register.simple_tag
def since(moment: datetime | None):
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
    return queries.is_settled(gen)


@register.filter
def live_version(gen: Generation) -> str:
    """A short stamp that changes whenever a job's live parts (its card, the detail page's
    live block) would look different: a move, a poll (the estimate may change), a copied file,
    settling. Polls send it back (``?v=``, a card's ``watch`` value) to be told "unchanged"."""
    polled = gen.last_polled_at.timestamp() if gen.last_polled_at else 0
    raw = (
        f"{gen.status_changed_at.timestamp():.6f}|{polled:.6f}|{bool(gen.video_file)}"
        f"|{bool(gen.thumbnail_file)}|{queries.is_settled(gen)}"
    )
    return hashlib.blake2s(raw.encode(), digest_size=6).hexdigest()


@register.simple_tag
def progress(gen: Generation) -> dict:
    """The ETA bar of a job: where it starts now and how many seconds until it should be full.

    The estimate is the upstream's remaining time as of the last poll, so the expected end is
    ``last_polled_at (or submitted_at) + estimate``; CSS animates the rest without a request.
    """
    now = timezone.now()
    if gen.status != Status.IN_PROGRESS or not gen.submitted_at:
        return {"kind": "indeterminate"}
    estimate = gen.estimate_wait_seconds
    if estimate is None:
        return {"kind": "indeterminate"}
    seen = gen.last_polled_at or gen.submitted_at
    end = seen.timestamp() + estimate
    total = max(1.0, end - gen.submitted_at.timestamp())
    elapsed = now.timestamp() - gen.submitted_at.timestamp()
    remaining = end - now.timestamp()
    if remaining <= 0:
        return {"kind": "overdue", "percent": 100, "remaining": 0}
    percent = max(0.0, min(99.0, 100 * elapsed / total))
    return {
        "kind": "eta",
        "percent": round(percent, 1),
        "remaining": round(remaining, 1),
        "remaining_text": human_duration(remaining),
    }


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
def can_change(gen: Generation, user) -> bool:
    """Whether this person may retry, cancel, resolve or delete the job (services decide)."""
    try:
        services.check_can_change(gen, user)
    except services.ServiceError:
        return False
    return True


@register.simple_tag
def icon(name: str) -> SafeString:
    """An inline SVG icon from templates/icons.html (``{% icon "download" %}``): one file holds
    every icon, so a page never carries its own copy of a path."""
    return render_to_string(f"icons.html#{name}")


@register.filter
def fields_except(form, names: str) -> list:
    """The form's fields minus those a page lays out by hand (``"a,b,c"``), in form order: a
    field added to the form later still shows, rendered by templates/django/forms/field.html."""
    skip = {name.strip() for name in names.split(",")}
    return [field for field in form if field.name not in skip]
