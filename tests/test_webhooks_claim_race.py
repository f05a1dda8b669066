"""A webhook delivery is taken by one claimer, and woken by one sweeper, even when two race on
PostgreSQL.

The race is real: two database connections (two threads), the first claims inside a
transaction it keeps open, the second runs the same claim and waits on the row's lock, then the
first commits. Under READ COMMITTED the second re-checks its WHERE on the committed row; an
UPDATE Django filtered through a join (``WHERE id IN (SELECT ... JOIN ...)``) re-checks only
``id IN (...)`` and took the row a second time: two POSTs at once. SQLite has no row locks (one
writer at a time), so the race is PostgreSQL's alone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from generations import pipeline
from generations.models import Generation, Status, Webhook, WebhookDelivery
from generations.pipeline import hold
from generations.pipeline.deliver import claim
from tests.pages.conftest import make_gen

SECRET = "whsec_claim-race-secret-71c2e9"

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks and READ COMMITTED re-checks are PostgreSQL's; SQLite has one writer",
)


def due_delivery(url: str) -> WebhookDelivery:
    """A pending delivery, due, with no wake-up on its way."""
    hook = Webhook.objects.create(url=url, secret=SECRET, active=True)
    gen = make_gen(Status.FAILED)
    now = timezone.now()
    return WebhookDelivery.objects.create(
        webhook=hook,
        generation_id=gen.pk,
        event="generation.failed",
        payload="{}",
        next_attempt_at=now - timedelta(seconds=1),
        enqueued_at=None,
    )


def waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(cursor.fetchone()[0])


def race(step: Callable[[], object]) -> tuple[object, object]:
    """Run ``step`` in a transaction left open, then ``step`` again on a second connection
    until it waits on the first's row lock; then commit the first. Both results."""
    results: dict[str, object] = {}
    errors: list[str] = []
    first_done, release = threading.Event(), threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                results["first"] = step()
                first_done.set()
                assert release.wait(30), "the second claimer was never seen waiting"
        except BaseException as exc:
            errors.append(repr(exc))
            first_done.set()
        finally:
            connection.close()

    def second() -> None:
        try:
            first_done.wait(30)
            results["second"] = step()
        except BaseException as exc:
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 15
    seen_waiting = False
    while time.monotonic() < deadline and not errors:
        if waiting_on_a_lock():
            seen_waiting = True
            break
        time.sleep(0.02)
    release.set()
    for thread in threads:
        thread.join(30)
    assert errors == [], errors
    assert seen_waiting, "the second claim never waited on the first's lock: no race was run"
    return results["first"], results["second"]


@postgres_only
def test_two_senders_racing_for_one_delivery_on_postgres_only_one_claims_it(transactional_db):
    delivery = due_delivery("http://127.0.0.1:9/hook")
    first, second = race(lambda: claim(delivery.pk, timezone.now()))
    assert (first, second) == (True, False)
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.enqueued_at is None


@postgres_only
def test_two_sweepers_racing_to_wake_one_delivery_on_postgres_wake_it_once(transactional_db):
    delivery = due_delivery("http://127.0.0.1:9/hook")
    first, second = race(lambda: pipeline.wake_deliveries(timezone.now()))
    assert (first, second) == ([delivery.pk], [])


def update_sql(queryset: QuerySet) -> str:
    """The UPDATE Django would run for ``queryset.update(enqueued_at=None)``."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values({"enqueued_at": None})
    sql, _ = query.get_compiler(connection=connection).as_sql()
    return sql


def test_no_claim_or_wake_up_update_goes_through_a_join(db):
    """Every conditional UPDATE the pipeline claims or wakes with keeps its conditions on the
    row itself (a subquery or EXISTS in the WHERE is fine; a join is not: see the top)."""
    now = timezone.now()
    generations = Generation.objects
    claims = {
        "delivery due": WebhookDelivery.objects.due(now).filter(pk=1),
        "delivery waiting": WebhookDelivery.objects.waiting_for_a_worker(now).filter(pk=1),
        "job waiting": generations.waiting_for_a_worker(now).filter(pk=uuid.uuid4()),
        "job for a slot": generations.waiting_for_a_slot(now).filter(pk=uuid.uuid4()),
        "job submit claim": generations.filter(hold.sending_allowed(), pk=uuid.uuid4()),
        "job poll": generations.due_for_poll(now).filter(pk__in=[uuid.uuid4()]),
        "job copy": generations.copy_due(now).filter(pk=uuid.uuid4()),
        "job stale": generations.stale_submitting(now).filter(pk=uuid.uuid4()),
    }
    for name, queryset in claims.items():
        sql = update_sql(queryset).upper()
        table = queryset.model._meta.db_table.upper()
        assert "JOIN" not in sql, (name, sql)
        assert f'"{table}"."ID" IN (SELECT' not in sql, (name, sql)
