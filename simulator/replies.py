"""What the simulator's routes answer, shared by both dialects (``server`` and ``luma``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    """What the handler sends back."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    file: Path | None = None


class ApiError(Exception):
    """An error, answered in the dialect's JSON shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def json_reply(status: int, payload: Any, **kwargs: Any) -> Reply:
    return Reply(status, json.dumps(payload).encode(), **kwargs)


def detail_reply(status: int, message: str, path: str = "", **kwargs: Any) -> Reply:
    """An error in the luma dialect's shape (``path`` unused: the same signature as
    ``server.error_reply``)."""
    return json_reply(status, {"detail": message}, **kwargs)


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
