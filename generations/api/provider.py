"""GET /api/v1/provider: which upstream lumaweb speaks and what it can do (issue 11 #2).

Everyone signed in sees the name, the capabilities, the concept keys and the cost unit: they
decide which fields a create may send. The account's credit balance is money the team's admins
manage: admins get it (null where the provider has none, or when asking for it failed, with
``credit_balance_error`` saying so); everyone else gets null (``provider_account``).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from generations import provider_account, provider_fields, providers
from generations.api.views import api_view


@api_view("GET")
def provider(request: HttpRequest) -> HttpResponse:
    account = provider_account.account_for(request.user)
    body = {
        "name": account.name,
        "label": account.label,
        "capabilities": providers.current().capabilities.as_json(),
        "concepts": provider_fields.concepts(),
        "credit_balance": account.balance,
        "cost_unit": account.cost_unit,
    }
    if account.error:
        body["credit_balance_error"] = account.error
    return JsonResponse(body)
