"""Path converters for the URL maps (registered on import: both URL maps import this module).

``<token:token>``: a share link's token as lumaweb makes them (``secrets.token_urlsafe``: the
URL-safe base64 alphabet), at most the column's 64 characters. Anything else in its place (a
NUL, which PostgreSQL refuses in a text value, non-ASCII, a dot, too long) does not match the
route at all, so it is an ordinary 404 and never reaches a view or the database.
"""

from __future__ import annotations

from django.urls import register_converter


class TokenConverter:
    regex = "[A-Za-z0-9_-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TokenConverter, "token")
