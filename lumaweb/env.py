"""Typed readers for environment variables that refuse malformed values.

Every setting lumaweb has comes from the environment. A value that cannot be
read stops start-up with ``ImproperlyConfigured`` naming the variable, instead
of running with a guess.
"""

from __future__ import annotations

import json
import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """A string; ``NAME_FILE`` (a path to a file holding the value) wins, for secrets."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path!r}: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be True or False (also 1/0, true/false), not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_price_table(name: str) -> dict[str, int]:
    """Prices in whole US cents by ``model:resolution:duration`` (e.g. ``ray-2:720p:5s``), as
    a JSON object (``{"ray-2:720p:5s": 71}``) or as ``key=cents`` pairs separated by commas
    (``ray-2:720p:5s=71,ray-flash-2:540p:5s=14``). Unset or empty: no entries."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    example = "e.g. ray-2:720p:5s=71,ray-flash-2:540p:5s=14"
    pairs: list[tuple[str, object]]
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name} is not valid JSON ({example})") from None
        if not isinstance(data, dict):
            raise ImproperlyConfigured(f"{name} must be a JSON object ({example})")
        pairs = list(data.items())
    else:
        pairs = []
        for item in raw.split(","):
            if not item.strip():
                continue
            pair_key, sep, pair_value = item.partition("=")
            if not sep:
                raise ImproperlyConfigured(f"{name}: {item.strip()!r} has no '=cents' ({example})")
            pairs.append((pair_key, pair_value.strip()))
    table: dict[str, int] = {}
    for raw_key, value in pairs:
        key = str(raw_key).strip().lower()
        parts = key.split(":")
        if len(parts) != 3 or not all(parts) or not parts[2].endswith("s"):
            raise ImproperlyConfigured(
                f"{name}: {key!r} is not model:resolution:duration ({example})"
            )
        cents: object = value
        if isinstance(value, str):
            try:
                cents = int(value)
            except ValueError:
                cents = None
        if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
            raise ImproperlyConfigured(
                f"{name}: the price of {key} must be a whole number of US cents, "
                f"0 or more, not {value!r}"
            )
        table[key] = cents
    return table
