"""Celery tasks: thin wiring from messages to ``generations.pipeline``, and the wake-ups.

Tasks take ids, do one short step each and are safe to run twice (the pipeline claims rows with
conditional updates). A pipeline step returns what should happen next; this module is the only
one that sends messages. Waiting is done by the database (``next_poll_at``, ``next_attempt_at``)
and beat, never by long countdowns that Redis would redeliver.

The ``wake_*`` helpers are for callers inside a transaction (``actions``): the message goes out
only after the commit, and a broker that is down does not fail the request (``robust=True``):
the row is already stamped, and the sweeper sends the wake-up again later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction

from generations import pipeline, webhooks

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def submit_generation(generation_id: str) -> str:
    pipeline.replay_journal()  # answers this host kept while the database was away
    outcome = pipeline.submit(generation_id)
    if outcome.retry_in is not None:
        _send(submit_generation, generation_id, countdown=outcome.retry_in)
    if outcome.result in (pipeline.Submitted.RETRY, pipeline.Submitted.FAILED):
        _send_each(submit_generation, pipeline.fill_free_slots())  # its slot is free again
    if outcome.wake_waiting:  # an account hold was lifted: the jobs that waited go now
        _send_sweep()
    if outcome.fill_in is not None and pipeline.fill_due(outcome.fill_in):
        # paced: the next in line goes when the pause ends or the next spacing has passed
        try:
            fill_free_slots.apply_async(countdown=outcome.fill_in)
        except Exception:
            log.warning("could not send a slot fill; the sweeper will", exc_info=True)
    return str(outcome.result)


@shared_task(ignore_result=True)
def fill_free_slots() -> int:
    """Wake the jobs whose turn it is for the slots free now (sent by a paced submit)."""
    ids = pipeline.fill_free_slots()
    _send_each(submit_generation, ids)
    return len(ids)


@shared_task(ignore_result=True)
def poll_in_flight(helper: bool = False) -> dict[str, Any]:
    """A poll round (on its own queue, ``LUMA_POLL_QUEUE``, so copies never delay it). When
    more rows are due than one batch, beat's round asks ``LUMA_POLL_PARALLEL - 1`` more
    pollers to share them (``helper``: such a round asks for no more). Each batch's finished
    rows get their copy sent at once, not at the end of the round."""
    stats = pipeline.poll_in_flight(
        on_backlog=None if helper else _send_poll_helpers,
        on_completed=lambda ids: _send_each(copy_assets, ids),
    )
    if stats.finished:  # their slots are free: the next jobs in line go now, not at the sweep
        _send_each(submit_generation, pipeline.fill_free_slots())
    return {"due": stats.due, "requests": stats.requests, "errors": stats.errors}


def _send_poll_helpers() -> None:
    for _ in range(settings.LUMA_POLL_PARALLEL - 1):
        try:
            poll_in_flight.apply_async(
                kwargs={"helper": True}, expires=max(settings.LUMA_POLL_INTERVAL, 2.0)
            )
        except Exception:
            log.warning("could not send a poll helper; this round goes on alone", exc_info=True)
            return


@shared_task(ignore_result=True)
def copy_assets(generation_id: str) -> str:
    return str(pipeline.copy_assets(generation_id))


@shared_task(ignore_result=True)
def sweep() -> dict[str, int]:
    stats = pipeline.sweep()
    _send_each(submit_generation, stats.to_submit)
    _send_each(copy_assets, stats.to_copy)
    _send_each(deliver_webhook, stats.to_deliver)
    return stats.counts()


@shared_task(ignore_result=True)
def deliver_webhook(delivery_id: int) -> str:
    outcome = pipeline.deliver(int(delivery_id))
    if outcome.retry_in is not None:
        _send(deliver_webhook, delivery_id, countdown=outcome.retry_in)
    return str(outcome.result)


# --- wake-ups ------------------------------------------------------------------------------------
def wake_submit_on_commit(generation_id: Any) -> None:
    """After the current transaction commits, wake a worker to submit this row."""
    transaction.on_commit(lambda: submit_generation.delay(str(generation_id)), robust=True)


def wake_copy_on_commit(generation_id: Any) -> None:
    """After the current transaction commits, wake a worker to copy this row's files."""
    transaction.on_commit(lambda: _send(copy_assets, generation_id), robust=True)


def wake_sweep_on_commit() -> None:
    """After the current transaction commits, run the sweeper now (an admin lifted the account
    hold: the jobs that waited should not wait for the next beat)."""
    transaction.on_commit(_send_sweep, robust=True)


def wake_deliveries_on_commit(ids: list[int]) -> None:
    """After the current transaction commits, send these webhook deliveries (a resumed
    webhook's, stamped as woken in that transaction)."""
    if ids:
        transaction.on_commit(lambda: _send_each(deliver_webhook, ids), robust=True)


def _wake_deliveries(ids: list[int]) -> None:
    """Deliveries recorded with a status move, once it committed (``webhooks.record``)."""
    _send_each(deliver_webhook, ids)


webhooks.set_waker(_wake_deliveries)


def wake_poller() -> None:
    """Run a poll round now (a provider's callback made a row due): a broker error is
    logged, not raised (beat runs one every ``LUMA_POLL_INTERVAL`` anyway)."""
    try:
        poll_in_flight.delay()
    except Exception:
        log.warning("could not send a poll round; beat will run one", exc_info=True)


def _send_sweep() -> None:
    try:
        sweep.delay()
    except Exception:
        log.warning("could not send the sweep; beat will run it", exc_info=True)


def _send(task: Any, generation_id: Any, countdown: float | None = None) -> None:
    """Send one wake-up now; a broker error is logged, not raised (the sweeper resends)."""
    try:
        task.apply_async((str(generation_id),), countdown=countdown)
    except Exception:
        log.warning(
            "generation=%s could not send %s; the sweeper will",
            generation_id,
            task.name,
            exc_info=True,
        )


def _send_each(task: Any, ids: Iterable[Any]) -> None:
    for generation_id in ids:
        _send(task, generation_id)
