"""What the configured provider can do, for templates: ``{% provider_caps as caps %}`` then
``caps.reverse_extend``, ``caps.interpolate`` (issue 11 #2: shown only where it can)."""

from __future__ import annotations

from django import template

from generations import providers

register = template.Library()


@register.simple_tag
def provider_caps() -> providers.Capabilities:
    return providers.current().capabilities
