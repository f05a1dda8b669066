"""Values every page shows: the running-jobs count, demo mode, the cost of one generation and
the unit it counts in,
whether this person may spend (viewers are not offered New, Extend or Retry), and the account
hold's banner (why, how many jobs wait), and the banner when no worker or no beat is running."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from generations import actions, money, queries


def studio(request: HttpRequest) -> dict[str, Any]:
    context: dict[str, Any] = {
        "demo_mode": settings.LUMA_DEMO_MODE,
        # One generation with the provider's default options, in ``cost_unit`` (the name is
        # older than per-row prices: LUMA_TOKENS_PER_GENERATION for UmamiAI).
        "tokens_per_generation": money.default_cost(),
        "cost_unit": money.unit(),  # "tokens" (UmamiAI) or "credits" (Luma's API: US cents)
        "cost_unit_note": money.unit_note(),
        # "v-" in the gallery's viewer: its ids are not the cards' behind it (generations/htmx.py)
        "id_prefix": getattr(request, "id_prefix", ""),
    }
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        # Lazy, and counted once per response however often the page shows it.
        context["running_jobs"] = SimpleLazyObject(queries.running_count)
        # Where the badge's poll starts telling this page about the person's finished jobs.
        user_now = request.user
        context["notify_cursor"] = SimpleLazyObject(lambda: queries.notify_cursor(user_now))
        # Everyone sees the hold (their jobs wait too); one query, only when a page shows it.
        context["account_hold"] = SimpleLazyObject(queries.account_hold)
        # No worker or no beat seen for a minute: jobs wait, and every page says so (one query).
        context["missing_processes"] = SimpleLazyObject(queries.missing_processes)
    user = getattr(request, "user", None)
    # Lazy (read only by pages that offer a paid action) and one query at most per request.
    context["can_spend"] = SimpleLazyObject(
        lambda: user is not None and user.is_authenticated and actions.may_spend(user)
    )
    context["is_team_admin"] = SimpleLazyObject(
        lambda: user is not None and user.is_authenticated and actions.is_admin(user)
    )
    return context
