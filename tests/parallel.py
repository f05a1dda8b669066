"""Parallel runs (``pytest -n N``, pytest-xdist): each worker gets a Redis database of its own.

Loaded with ``-p tests.parallel`` (``addopts`` in pyproject.toml), before pytest-django reads
the settings. Each xdist worker already has a database of its own (pytest-django names it
``test_<name>_gwN``); what it lacks is a broker of its own: the shared worker and beat it starts
for the pipeline tests would otherwise take the other workers' messages, and the guard tests
would find them. Worker ``gwN`` uses database ``REDIS_URL``'s number minus 2N (its spare, for
tests that start processes of their own, is the one below: ``conftest.spare_redis_db``), so
with the default db 15, ``-n 3`` uses 15 and 14, 13 and 12, 11 and 10. Without xdist nothing
changes.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def worker_redis_url(url: str, worker: str) -> str:
    """``redis://host/15`` for gw0, ``/13`` for gw1, ...; refuses to reach db 0 or below."""
    index = int(worker.removeprefix("gw"))
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) - 2 * index
    if db < 2:
        raise RuntimeError(
            f"{worker}: REDIS_URL's database number leaves no Redis database for this many "
            "workers (each needs two, and never db 0): use db 15 or fewer workers"
        )
    return urlunsplit(parts._replace(path=f"/{db}"))


_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker:
    os.environ["REDIS_URL"] = worker_redis_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"), _worker
    )
