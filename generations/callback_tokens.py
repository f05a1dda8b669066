"""The address a provider calls back on when one of our generations changes (Luma's
``callback_url``): ``PUBLIC_BASE_URL/hooks/upstream/<token>/``, one per row.

The token is the row's id and an HMAC of it under ``SECRET_KEY`` (a salt of its own), so it
cannot be guessed or made for another row, and nothing is stored. The callback itself is never
trusted (Luma's are unsigned): ``callback_views`` only makes that row's poll due now.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "lumaweb.upstream-callback"
MAC_CHARS = 24  # 96 bits: the converter's 64 characters hold the 32-character id, a dash, these


def token_for(gen_id: Any) -> str:
    row = uuid.UUID(str(gen_id)).hex
    return f"{row}-{_mac(row)}"


def row_for(token: str) -> uuid.UUID | None:
    """The row a token stands for, or None when it is not one of ours."""
    row, _, mac = token.partition("-")
    if len(row) != 32 or not mac or not constant_time_compare(mac, _mac(row)):
        return None
    try:
        return uuid.UUID(hex=row)
    except ValueError:
        return None


def callback_url(gen_id: Any) -> str:
    """The absolute callback address, or "" when the site has no public address."""
    if not settings.PUBLIC_BASE_URL:
        return ""
    return settings.PUBLIC_BASE_URL + reverse("upstream-callback", args=[token_for(gen_id)])


def _mac(row: str) -> str:
    return salted_hmac(SALT, row, algorithm="sha256").hexdigest()[:MAC_CHARS]
