"""GET /api/v1/provider: which upstream lumaweb speaks and what it can do (issue 11 #2).

Everyone signed in sees the name, the capabilities, the concept keys and the cost unit: they
decide which fields a create may send. The account's credit balance is money the team's admins
manage: admins get it (null where the provider has none, or when asking for it failed, with
``credit_balance_error`` saying so); everyone else gets null.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse

from generations import actions, provider_fields, providers
from generations.api.views import api_view

log = logging.getLogger(__name__)


def balance_for(user: object) -> tuple[float | None, str]:
    """(the balance, "") for an admin of a provider with credits; (None, why not) when asking
    failed; (None, "") otherwise. Never raises: a page or an API answer shows "unavailable"."""
    provider = providers.current()
    if not provider.capabilities.credits or not actions.is_admin(user):  # type: ignore[arg-type]
        return None, ""
    try:
        balance = provider.credit_balance()
    except Exception:  # the service is down or refuses the key: said, not raised
        log.warning("The provider's credit balance could not be fetched", exc_info=True)
        return None, "The balance could not be fetched from the service just now."
    return (None if balance is None else float(balance)), ""


@api_view("GET")
def provider(request: HttpRequest) -> HttpResponse:
    current = providers.current()
    caps = current.capabilities
    balance, error = balance_for(request.user)
    body = {
        "name": current.name,
        "label": current.label,
        "capabilities": caps.as_json(),
        "concepts": provider_fields.concepts(),
        "credit_balance": balance,
        "cost_unit": caps.cost_unit,
    }
    if error:
        body["credit_balance_error"] = error
    return JsonResponse(body)
