"""/healthz: 200 when the database and the broker answer, 503 otherwise.

An account hold (out of credits, key refused) is reported as ``hold`` but keeps the 200: the
app itself is up and nothing is lost; a monitor can alert on the field. So are the background
processes (``processes``: per kind, how many were seen in the last ``LUMA_HEARTBEAT_STALE_AFTER``
seconds and when one was last seen): no worker means jobs wait, not that the web is down."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from generations import queries


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"
        return f"error: {type(exc).__name__}"
    return "ok"


def _broker() -> str:
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        return "ok" if os.access(folder, os.W_OK) else "error: queue folder not writable"
    import redis

    try:
        client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1
        )
        client.ping()
        client.close()
    except Exception as exc:  # any failure means "down"
        return f"error: {type(exc).__name__}"
    return "ok"


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "broker": _broker()}
    healthy = all(value == "ok" for value in checks.values())
    held = _hold() if checks["database"] == "ok" else None
    running = _processes() if checks["database"] == "ok" else None
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            **checks,
            "hold": held,
            "processes": running,
        },
        status=200 if healthy else 503,
    )


def _hold() -> dict[str, object] | None:
    try:
        view = queries.account_hold()
    except Exception as exc:  # a health check never fails on a report
        return {"error": type(exc).__name__}
    return view.as_json() if view else None


def _processes() -> dict[str, object]:
    try:
        return dict(queries.processes())
    except Exception as exc:  # a health check never fails on a report
        return {"error": type(exc).__name__}
