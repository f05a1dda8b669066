"""Poll rounds go to their own Celery queue, and every way of running lumaweb starts a worker
that consumes it: a dedicated poller (polls only, so copies never delay them) in scripts/run
and compose, and the test pipeline's worker (every queue)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from django.conf import settings

from generations import tasks
from lumaweb.celery import app

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
