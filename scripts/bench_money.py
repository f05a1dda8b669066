#!/usr/bin/env python
"""What the budget and capacity checks cost per submit (results in docs/PERFORMANCE.md).

    createdb bench_money
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_money \\
        .venv/bin/python scripts/bench_money.py [--rows 2000] [--jobs 50] [--threads 8]

Runs against DATABASE_URL (PostgreSQL: the team-row lock and the advisory lock are what is
measured; SQLite serialises writers anyway) and the simulator over real HTTP. ``--rows`` finished
jobs of this month are in the database first (the money query reads the month's rows).

Two modes, in alternating rounds of one run (medians of every job's time, so that a busy
machine's spikes do not decide the figure):

* off: no person budget, no team budget, both capacity limits 0 (the baseline);
* on: a person budget and a team budget (high enough never to refuse), LUMA_MAX_IN_FLIGHT and
  LUMA_MAX_SUBMITS_PER_MINUTE on (high enough never to refuse, so every check runs in full).

Per job: ``actions.create_generation`` (team-row lock, the budget's money query, INSERT) and
``pipeline.submit`` (the claim with the advisory lock, the slot count and the grant, the real
POST to the simulator, the update). The wake-up message a create sends after its commit is left
out (no broker: the same in both modes). Then ``--threads`` threads create jobs at once: the
team-row lock serialises them, so this shows the lock's cost under contention.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HIGH = 10**15  # a budget no run reaches
ROUNDS = 6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000, help="finished jobs already this month")
    parser.add_argument("--jobs", type=int, default=40, help="jobs per round and mode")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a scratch PostgreSQL database")
    os.environ.setdefault("DEBUG", "True")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import close_old_connections, connection
    from django.utils import timezone

    from devtools.simulator_process import SimulatorProcess
    from generations import actions, pipeline, tasks
    from generations.inputs import GenerationRequest
    from generations.models import Generation, Member, Status, Team

    call_command("migrate", verbosity=0)
    if Generation.objects.exists():
        sys.exit("this database already holds generations: use a scratch database")
    tasks.wake_submit_on_commit = lambda _pk: None  # no broker (see the docstring)
    users = get_user_model().objects
    people = [users.create_user(f"bench{i}", password="x") for i in range(4)]
    now = timezone.now()
    Generation.objects.bulk_create(
        Generation(
            created_by=people[i % 4],
            user_prompt=f"done {i}",
            status=Status.COMPLETED,
            remote_id=f"done-{i}",
            posts_sent=1,
            posts_authorized=1,
            billed_at=now,
        )
        for i in range(args.rows)
    )

    def mode(on: bool) -> None:
        settings.LUMA_MAX_IN_FLIGHT = 100_000 if on else 0
        settings.LUMA_MAX_SUBMITS_PER_MINUTE = 100_000 if on else 0
        team = Team.current()
        team.monthly_budget = HIGH if on else None
        team.save()
        for person in people:
            Member.objects.update_or_create(
                user=person, defaults={"monthly_budget": HIGH if on else None}
            )

    timings: dict[str, dict[str, list[float]]] = {
        name: {"off": [], "on": []} for name in ("create", "submit", "concurrent create")
    }
    with SimulatorProcess(duration=3600, video_seconds=1) as sim:
        settings.LUMA_API_BASE_URL = sim.api_url
        for round_ in range(ROUNDS):
            for name in ("off", "on"):
                mode(name == "on")
                batch = []
                for i in range(args.jobs):
                    start = time.perf_counter()
                    batch.append(
                        actions.create_generation(
                            people[i % 4], GenerationRequest(user_prompt=f"{name} {round_} {i}")
                        )
                    )
                    timings["create"][name].append(time.perf_counter() - start)
                for gen in batch:
                    start = time.perf_counter()
                    assert pipeline.submit(gen.pk).result == "accepted"
                    timings["submit"][name].append(time.perf_counter() - start)
                # Finished, as the poller would: the jobs in flight stay few, as under a cap.
                Generation.objects.filter(pk__in=[g.pk for g in batch]).update(
                    status=Status.COMPLETED
                )
                timings["concurrent create"][name].append(
                    concurrent_creates(people, args.threads, args.jobs, f"{name} {round_}")
                )
        mode(False)

    def med(name: str, which: str) -> float:
        return statistics.median(timings[name][which]) * 1000

    print(
        f"\nbudget and capacity checks on {os.cpu_count()} cores, {connection.vendor} "
        f"{connection.pg_version if connection.vendor == 'postgresql' else ''}, "
        f"{args.rows} finished jobs this month, {ROUNDS} rounds of {args.jobs} jobs each way, "
        "medians"
    )
    print("| per job | checks off | checks on | on / off |")
    print("|---|---|---|---|")
    rows = [
        ("create (team lock, budget check, INSERT)", med("create", "off"), med("create", "on")),
        ("submit (claim, slot check, POST, update)", med("submit", "off"), med("submit", "on")),
        (
            "create + submit",
            med("create", "off") + med("submit", "off"),
            med("create", "on") + med("submit", "on"),
        ),
        (
            f"create, {args.threads} threads at once (wall time / job)",
            med("concurrent create", "off"),
            med("concurrent create", "on"),
        ),
    ]
    for label, off, on in rows:
        print(f"| {label} | {off:.2f} ms | {on:.2f} ms | x{on / off:.2f} |")
    close_old_connections()


def concurrent_creates(people: list, threads: int, jobs: int, tag: str) -> float:
    """``threads`` threads create ``jobs`` jobs between them at once: wall time per job."""
    from django.db import close_old_connections

    from generations import actions
    from generations.inputs import GenerationRequest

    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(n, jobs, threads):
                actions.create_generation(
                    people[i % len(people)], GenerationRequest(user_prompt=f"{tag} c{i}")
                )
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            close_old_connections()

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    took = time.perf_counter() - start
    if errors:
        raise errors[0]
    from generations.models import Generation, Status

    Generation.objects.filter(user_prompt__startswith=f"{tag} c", status=Status.QUEUED).update(
        status=Status.CANCELLED
    )
    return took / jobs


if __name__ == "__main__":
    main()
