"""The Jobs page's change stamp, kept on write (issue 12, point 2).

The dashboard's poll asks "did anything I show change?" every 2 s per open page. Computing the
answer from the table (an aggregate over every row, ``last_polled_at`` included) cost 47-114 ms at
100,000 rows and changed with every poll of a running job. Instead every write that changes what
the page shows bumps a counter per dashboard section in the cache (Redis, shared by every process),
and the poll reads them in one ``MGET``:

- ``transitions.move`` (and ``transitions.complete_many``, the poll's batched completions) bumps
  the sections of the statuses the row left and entered; a copy settling (the thumbnail) or
  given up on ("Copy again") bumps "finished";
- any ``Generation.save()`` or delete (a person's edit, a new row) bumps every section (signals
  connected in ``apps.py``).

A service poll that only stamps ``last_polled_at`` (or the estimate) bumps nothing: the progress
bar counts down in the browser.

Each bump happens at once and again after the transaction commits, so a reader never keeps a
stamp taken before the commit with a page drawn before it (the page is drawn after the stamp is
read, and the commit's bump moves it once more). A missing key (a new or flushed cache) starts at a
random value, so a page's old stamp never matches it by chance. A cache that is down never fails a
write: the bump is skipped and logged (pages re-render when it returns with new random stamps).

Without a shared cache (``LocMemCache``: no Redis, the filesystem broker of a laptop), the worker's
bumps would stay in its own process: ``shared()`` is False and the views add a database stamp.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

log = logging.getLogger(__name__)

# The dashboard's sections, in page order, and the statuses each one lists.
SECTIONS: dict[str, tuple[str, ...]] = {
    "attention": ("needs_attention",),
    "running": ("submitting", "in_progress"),
    "queued": ("queued",),
    "failed": ("failed",),
    "finished": ("completed", "cancelled"),
}
_OF_STATUS = {status: name for name, statuses in SECTIONS.items() for status in statuses}
_PREFIX = "live:jobs:"


def _key(section: str) -> str:
    return _PREFIX + section


def sections_of(statuses: Iterable[str]) -> set[str]:
    """The sections that list these statuses (an unknown status: none)."""
    return {_OF_STATUS[status] for status in statuses if status in _OF_STATUS}


def shared() -> bool:
    """Whether every process reads the same cache (Redis), so a worker's bump reaches the pages."""
    backend = str(settings.CACHES.get("default", {}).get("BACKEND", ""))
    return not backend.endswith(("LocMemCache", "DummyCache"))


def _seed() -> int:
    return secrets.randbelow(2**40)


def _incr(sections: Iterable[str]) -> None:
    try:
        for section in sections:
            key = _key(section)
            try:
                cache.incr(key)
            except ValueError:  # no such key yet (new or flushed cache)
                cache.add(key, _seed(), timeout=None)
                cache.incr(key)
    except Exception:
        log.warning("live stamp not bumped (cache unavailable)", exc_info=True)


def bump(statuses: Iterable[str] | None = None) -> None:
    """The sections of ``statuses`` (every section for None) changed: now, and after the
    transaction commits (at once when there is none)."""
    names = set(SECTIONS) if statuses is None else sections_of(statuses)
    if not names:
        return
    _incr(names)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _incr(names), robust=True)


def bump_for_row(sender: object, **kwargs: object) -> None:
    """``post_save`` / ``post_delete`` of a generation: every section may show it."""
    bump()


def read() -> dict[str, str]:
    """Each section's stamp, in one cache read (``get_many``); a missing one is started."""
    keys = {_key(section): section for section in SECTIONS}
    try:
        found = cache.get_many(list(keys))
        for key in keys:
            if key not in found:
                cache.add(key, _seed(), timeout=None)
                found[key] = cache.get(key, "")
    except Exception:
        log.warning("live stamp unreadable (cache unavailable)", exc_info=True)
        return {section: "x" for section in SECTIONS}
    return {section: format(int(found[key] or 0), "x") for key, section in keys.items()}


def encode(stamps: dict[str, str]) -> str:
    """The stamps as one token for the page's poll URL (``-`` between sections, page order)."""
    return "-".join(stamps.get(section, "") for section in SECTIONS)


def decode(token: str) -> dict[str, str]:
    """A poll's token back to its sections' stamps (an odd token: nothing, so all changed)."""
    parts = token.split("-")
    if len(parts) != len(SECTIONS):
        return {}
    return dict(zip(SECTIONS, parts, strict=True))


def changed(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The sections whose stamp moved, in page order."""
    return [section for section in SECTIONS if old.get(section) != new.get(section)]
