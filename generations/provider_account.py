"""The provider's account as the team's admins see it (issue 11 #2): its name, and its credit
balance where it has one. Shared by the Team page and ``GET /api/v1/provider``.

The balance is money the admins manage: only they get it; everyone else gets none. Asking the
service can fail (down, key refused): that is said ("balance unavailable"), never raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from generations import actions, providers

if TYPE_CHECKING:
    from generations.actions import User

log = logging.getLogger(__name__)

UNAVAILABLE = "The balance could not be fetched from the service just now."


@dataclass(frozen=True)
class Account:
    name: str
    label: str
    has_credits: bool  # the provider has a balance to show (to admins)
    balance: float | None  # None: not shown to this person, or unavailable
    error: str  # why an admin sees no balance ("" when there is one, or none to see)
    cost_unit: str


def account_for(user: User) -> Account:
    provider = providers.current()
    caps = provider.capabilities
    balance, error = None, ""
    if caps.credits and actions.is_admin(user):
        try:
            answered = provider.credit_balance()
        except Exception:  # the service is down, refuses the key, answers nonsense
            log.warning("The provider's credit balance could not be fetched", exc_info=True)
            error = UNAVAILABLE
        else:
            balance = None if answered is None else float(answered)
            error = "" if answered is not None else UNAVAILABLE
    return Account(provider.name, provider.label, caps.credits, balance, error, caps.cost_unit)
