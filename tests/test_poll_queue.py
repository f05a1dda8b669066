"""Poll rounds go to their own Celery queue, and every way of running lumaweb starts a worker
that consumes it: a dedicated poller (polls only, so copies never delay them) in scripts/run
and compose, and the test pipeline's worker (every queue)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import redis
import yaml
from django.conf import settings

from generations import tasks
from generations.models import Generation
from lumaweb.celery import app
from tests.conftest import purge_broker
from tests.factories import in_progress_row, remote_create

ROOT = Path(__file__).resolve().parent.parent
ALL = {queue.name for queue in settings.CELERY_TASK_QUEUES}


def consumed(argv: list[str]) -> set[str] | None:
    """The queues a ``celery worker`` command consumes (every queue without -Q); None if it is
    not a worker."""
    if "worker" not in argv:
        return None
    for flag in ("-Q", "--queues"):
        if flag in argv:
            return set(argv[argv.index(flag) + 1].split(","))
    return set(ALL)


def _compose_words(command: str) -> list[str]:
    """A compose command with its ``${NAME:-default}`` variables at their defaults."""
    return shlex.split(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", command))


def test_poll_rounds_are_routed_to_their_own_queue():
    assert settings.LUMA_POLL_QUEUE == "poll" and sorted(ALL) == ["celery", "poll"]
    route = app.amqp.router.route({}, tasks.poll_in_flight.name)
    assert route["queue"].name == "poll"
    assert app.amqp.router.route({}, tasks.copy_assets.name)["queue"].name == "celery"


def test_compose_runs_a_poller_and_a_worker_for_everything_else():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    workers = {
        name: consumed(_compose_words(service["command"]))
        for name, service in compose["services"].items()
        if isinstance(service.get("command"), str) and "celery" in service["command"]
    }
    workers = {name: queues for name, queues in workers.items() if queues is not None}
    assert workers == {"worker": ALL, "poller": {"poll"}}


def test_scripts_run_starts_a_poller_and_a_worker_for_everything_else(tmp_path):
    from generations.management.commands.runstack import celery_commands

    commands = celery_commands("python", tmp_path, [])
    assert consumed(commands["worker"]) == ALL
    assert consumed(commands["poller"]) == {"poll"}
    assert consumed(commands["beat"]) is None


def test_the_test_pipelines_worker_consumes_every_queue(tmp_path, monkeypatch):
    import subprocess

    from devtools.processes import CeleryProcesses

    started: list[list[str]] = []
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kwargs: started.append(argv))
    CeleryProcesses({}, tmp_path).start("worker1")
    assert consumed(started[0]) == ALL


@pytest.fixture
def broker(redis_url):
    """The broker's queues, empty before and after (no worker runs in these tests)."""
    purge_broker(redis_url)
    yield redis.Redis.from_url(redis_url)
    purge_broker(redis_url)


def _poll_messages(broker) -> list[dict]:
    return [json.loads(raw) for raw in broker.lrange(settings.LUMA_POLL_QUEUE, 0, -1)]


def test_a_round_with_more_due_than_a_lease_asks_another_poller_to_share(db, sim, settings, broker):
    settings.LUMA_POLL_BATCH_SIZE = 2  # a lease: 4 batches, 8 rows
    settings.LUMA_POLL_PARALLEL = 2
    sim.configure(duration=3600)
    for i in range(12):
        in_progress_row(remote_create(sim, f"clip {i}")["id"])
    assert tasks.poll_in_flight()["due"] == 12  # this round polls them all meanwhile
    [helper] = _poll_messages(broker)
    assert helper["headers"]["task"] == tasks.poll_in_flight.name
    assert helper["headers"]["kwargsrepr"] == "{'helper': True}"
    assert helper["headers"]["expires"]  # a helper not taken in time is dropped


def test_a_helper_round_or_a_small_one_asks_for_no_more(db, sim, settings, broker):
    settings.LUMA_POLL_BATCH_SIZE = 2
    sim.configure(duration=3600)
    for i in range(12):
        in_progress_row(remote_create(sim, f"clip {i}")["id"])
    tasks.poll_in_flight(helper=True)
    for row in Generation.objects.all():
        Generation.objects.filter(pk=row.pk).update(next_poll_at=row.created_at)
    Generation.objects.filter(pk__in=Generation.objects.values("pk")[:6]).delete()
    tasks.poll_in_flight()  # 6 due: less than a lease
    assert _poll_messages(broker) == []
