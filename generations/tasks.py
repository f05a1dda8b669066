"""Celery tasks: thin wiring from messages to ``generations.services``.

Tasks take ids, do one short step each and are safe to run twice (the services claim rows with
conditional updates). Waiting is done by the database (``next_poll_at``, ``next_attempt_at``)
and beat, never by long countdowns that Redis would redeliver.
"""

from __future__ import annotations

from celery import shared_task

from generations import services


@shared_task(ignore_result=True)
def submit_generation(generation_id: str) -> str:
    return services.submit(generation_id)


@shared_task(ignore_result=True)
def poll_in_flight() -> dict:
    stats = services.poll_in_flight()
    return {"due": stats.due, "requests": stats.requests, "errors": stats.errors}


@shared_task(ignore_result=True)
def copy_assets(generation_id: str) -> str:
    return services.copy_assets(generation_id)


@shared_task(ignore_result=True)
def sweep() -> dict:
    return vars(services.sweep())
