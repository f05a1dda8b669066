"""What the configured provider can do, for templates: ``{% provider_caps as caps %}`` then
``caps.reverse_extend``, ``caps.interpolate`` (issue 11 #2: shown only where it can)."""

from __future__ import annotations

from django import template

from generations import provider_account, providers

register = template.Library()


@register.simple_tag
def provider_caps() -> providers.Capabilities:
    return providers.current().capabilities


@register.simple_tag(takes_context=True)
def provider_account_for(context: template.Context) -> provider_account.Account:
    """The provider's name and, for an admin, its credit balance (asked of the service when the
    tag is drawn: the Team page's head, not its htmx answers)."""
    return provider_account.account_for(context["request"].user)
