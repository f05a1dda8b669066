"""``{% price_table_script %}``: the provider's price table as JSON (``money.price_table``), for
static/js/option_prices.js; nothing where the options do not change the price (UmamiAI)."""

from __future__ import annotations

from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString, mark_safe

from generations import money

register = template.Library()


@register.simple_tag
def price_table_script() -> SafeString:
    table = money.price_table()
    return json_script(table, "price-table") if table else mark_safe("")
