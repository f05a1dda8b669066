#!/usr/bin/env python
"""Benchmarks that print figures (results are kept in docs/PERFORMANCE.md).

    .venv/bin/python scripts/bench.py [--rows 1000]
    .venv/bin/python scripts/bench.py scale [--baseline 41723db] [--quick] [--only poll,pages]

Without a command: a scratch SQLite database (or DATABASE_URL if set) and the simulator over
real HTTP: batch polling, submitting, and the gallery and dashboard pages.

``scale`` reproduces every figure of issue 12 (docs/PERFORMANCE.md, "Issue 12"), each beside
its baseline in the same run, by running the benchmark scripts one after the other, never two
at once (they would measure each other): ``bench_poll.py`` (poll rounds of 1,000 and 10,000
rows and detection at intervals 1 and 5, against ``--baseline``'s poll code),
``bench_pages.py`` (100,000 rows, 50 Jobs pages and 5 gallery readers with the poller running,
against ``--baseline``'s tree), ``bench_rate_limit.py`` (a burst of 200 against a simulator
enforcing 20 creates a minute and 10 running, today's way beside the pacer),
``bench_media.py`` (Django vs nginx vs S3) and ``bench_simulator.py`` (the Nagle fix). It
makes its own PostgreSQL databases (``lw_bench_*`` on the server of ``--postgres``, dropped
first) and a ``git worktree`` of ``--baseline`` (default 41723db, main before issue 12), and
uses Redis databases 4-6 of ``--redis`` (emptied: give it a Redis nothing else uses there).
Everything it prints is also written to ``--log``. ``--quick`` runs each at a smaller size
(to try the runner, not to quote). A full run takes about an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# Issue 12's benchmarks, in the order they run: (name, script, arguments, quick arguments).
# ``{baseline}`` is the git revision, ``{worktree}`` a checkout of it.
SCALE_STEPS: list[tuple[str, str, list[str], list[str]]] = [
    (
        "simulator",
        "bench_simulator.py",
        [],
        ["--rounds", "1", "--requests", "50", "--submits", "20"],
    ),
    (
        "poll",
        "bench_poll.py",
        ["--rows", "1000,10000", "--detection", "1,5", "--baseline", "{baseline}"],
        ["--rows", "1000", "--baseline", "{baseline}"],
    ),
    ("pages-seed", "bench_pages.py", ["seed", "--rows", "100000"], ["seed", "--rows", "5000"]),
    (
        "pages",
        "bench_pages.py",
        ["run", "--baseline", "{worktree}", "--seconds", "60"],
        ["run", "--baseline", "{worktree}", "--seconds", "10"],
    ),
    ("rate-limit", "bench_rate_limit.py", [], ["--jobs", "40"]),
    ("media", "bench_media.py", [], ["--rounds", "1", "--seconds", "1"]),
]
# Each step's own database (bench_pages' seed and run share one) and Redis database.
SCALE_DATABASES = {"poll": "poll", "pages-seed": "pages", "pages": "pages", "rate-limit": "rate"}
SCALE_REDIS = {"poll": 4, "pages-seed": 5, "pages": 5, "rate-limit": 6}


def scale(argv: list[str]) -> None:
    """Run issue 12's benchmarks one after the other (see the module's docstring)."""
    import subprocess

    parser = argparse.ArgumentParser(prog="bench.py scale")
    parser.add_argument("--baseline", default="41723db", help="git revision to compare with")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--only", default="", help="comma-separated step names")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, to try the runner")
    parser.add_argument("--log", default=str(ROOT / ".run" / "bench-scale.log"))
    args = parser.parse_args(argv)
    wanted = {name for name in args.only.split(",") if name}
    steps = [step for step in SCALE_STEPS if not wanted or step[0] in wanted]
    if "pages" in wanted and "pages-seed" not in wanted:
        steps.insert(0, next(step for step in SCALE_STEPS if step[0] == "pages-seed"))
    log_path = Path(args.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    worktree = Path(tempfile.mkdtemp(prefix="lumaweb-baseline-")) / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.baseline],
        check=True,
        capture_output=True,
    )
    python = sys.executable
    with log_path.open("w") as log:

        def say(line: str) -> None:
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()

        say(f"# bench.py scale, baseline {args.baseline}, {os.cpu_count()} cores, {time.ctime()}")
        try:
            made: set[str] = set()
            for name, script, full, quick in steps:
                env = dict(os.environ)
                database = SCALE_DATABASES.get(name)
                if database:
                    env["DATABASE_URL"] = f"{args.postgres}/lw_bench_{database}"
                    if database not in made:
                        _recreate_database(args.postgres, f"lw_bench_{database}")
                        made.add(database)
                if name in SCALE_REDIS:
                    env["REDIS_URL"] = f"{args.redis}/{SCALE_REDIS[name]}"
                chosen = quick if args.quick else full
                cmd = [python, str(ROOT / "scripts" / script)] + [
                    part.format(baseline=args.baseline, worktree=worktree) for part in chosen
                ]
                say(f"\n## {name}: {' '.join(cmd[1:])}")
                started = time.perf_counter()
                with subprocess.Popen(
                    cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                ) as proc:
                    assert proc.stdout is not None
                    for line in proc.stdout:
                        say(line.rstrip("\n"))
                say(f"## {name}: exit {proc.returncode}, {time.perf_counter() - started:.0f} s")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                check=False,
                capture_output=True,
            )
    print(f"\n(also in {log_path})")


def _recreate_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    if sys.argv[1:2] == ["scale"]:
        scale(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="lumaweb-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'bench.sqlite3'}")
    os.environ.setdefault("DEBUG", "True")
    os.environ["MEDIA_ROOT"] = str(scratch / "media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from devtools.simulator_process import SimulatorProcess
    from generations import actions, pipeline
    from generations.inputs import GenerationRequest
    from generations.models import Generation, Status
    from generations.pipeline.transitions import claim_for_submit

    call_command("migrate", verbosity=0)
    settings.ALLOWED_HOSTS = ["testserver"]
    with SimulatorProcess(duration=3600, video_seconds=1) as sim:
        settings.LUMA_API_BASE_URL = sim.api_url
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("bench", password="x")
        results: list[tuple[str, str]] = []

        # 1. submit: claim + one POST + status change, per row, sequentially (no capacity limit)
        settings.LUMA_MAX_IN_FLIGHT = settings.LUMA_MAX_SUBMITS_PER_MINUTE = 0
        rows = [
            actions.create_generation(user, GenerationRequest(user_prompt=f"bench {i}"))
            for i in range(200)
        ]
        start = time.perf_counter()
        for gen in rows:
            pipeline.submit(gen.pk)
        took = time.perf_counter() - start
        results.append(
            ("submit (claim, POST, update), 200 rows", f"{took:.2f} s, {200 / took:.0f} rows/s")
        )

        # 1b. the capacity check's cost per submit: the same submits with the limits off and on
        # (limits high enough that every check runs in full and none refuses), in alternating
        # rounds of the same run, with four people's jobs waiting in line.
        people = [get_user_model().objects.create_user(f"cap{i}", password="x") for i in range(4)]
        per_row: dict[str, list[float]] = {"off": [], "on": []}
        per_claim: dict[str, list[float]] = {"off": [], "on": []}
        for _round in range(4):
            for mode in ("off", "on"):
                limit = 100_000 if mode == "on" else 0
                settings.LUMA_MAX_IN_FLIGHT = settings.LUMA_MAX_SUBMITS_PER_MINUTE = limit
                batch = [
                    actions.create_generation(
                        people[i % 4], GenerationRequest(user_prompt=f"cap {mode} {i}")
                    )
                    for i in range(100)
                ]
                start = time.perf_counter()
                for gen in batch[:50]:
                    pipeline.submit(gen.pk)
                per_row[mode].append((time.perf_counter() - start) / 50)
                start = time.perf_counter()
                for gen in batch[50:]:  # the claim alone (left in submitting, then cleared)
                    claim_for_submit(gen.pk, "bench", timezone.now())
                per_claim[mode].append((time.perf_counter() - start) / 50)
                Generation.objects.filter(status=Status.SUBMITTING).delete()
        settings.LUMA_MAX_IN_FLIGHT = settings.LUMA_MAX_SUBMITS_PER_MINUTE = 0
        Generation.objects.filter(created_by__in=people).delete()  # not in the later figures
        for name, timings in (("submit", per_row), ("claim alone", per_claim)):
            off, on = statistics.median(timings["off"]), statistics.median(timings["on"])
            results.append(
                (
                    f"{name}: capacity limits off / on, 200 rows each",
                    f"{off * 1000:.2f} ms / {on * 1000:.2f} ms per row, x{on / off:.2f}",
                )
            )

        # 2. batch poll of N in-flight rows
        remote_ids = []
        for i in range(args.rows - 200):
            gen = actions.create_generation(user, GenerationRequest(user_prompt=f"poll {i}"))
            pipeline.submit(gen.pk)
        Generation.objects.filter(status=Status.IN_PROGRESS).update(next_poll_at=timezone.now())
        remote_ids = list(
            Generation.objects.filter(status=Status.IN_PROGRESS).values_list("remote_id", flat=True)
        )
        before = sim.ledger()["get_requests"]
        start = time.perf_counter()
        stats = pipeline.poll_in_flight(limit_batches=10_000)
        took = time.perf_counter() - start
        gets = sim.ledger()["get_requests"] - before
        results.append(
            (
                f"poll {len(remote_ids)} in-flight rows",
                f"{took:.2f} s, {gets} GETs, {stats.due / took:.0f} rows/s",
            )
        )

        # 3. pages
        for gen in Generation.objects.filter(status=Status.IN_PROGRESS)[:200]:
            sim.force_complete(gen.remote_id)
        Generation.objects.filter(status=Status.IN_PROGRESS).update(next_poll_at=timezone.now())
        pipeline.poll_in_flight(limit_batches=10_000)
        client = Client()
        client.force_login(user)
        for path in ("/", "/jobs/"):
            client.get(path)
            times = []
            for _ in range(30):
                start = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - start)
                assert response.status_code == 200, response.status_code
            with CaptureQueriesContext(connection) as queries:
                client.get(path)
            results.append(
                (
                    f"GET {path} ({Generation.objects.count()} rows in the database)",
                    f"median {statistics.median(times) * 1000:.1f} ms, "
                    f"p95 {sorted(times)[int(len(times) * 0.95) - 1] * 1000:.1f} ms, "
                    f"{len(queries)} queries",
                )
            )

        # 4. the simulator's renders (first fetch of a finished video renders it)
        import requests

        done = list(Generation.objects.filter(status=Status.COMPLETED)[:5])
        times = []
        for gen in done:
            start = time.perf_counter()
            requests.get(gen.video_url, timeout=60).raise_for_status()
            times.append(time.perf_counter() - start)
        results.append(
            (
                "simulator: first fetch of a 1 s clip (render + send)",
                f"median {statistics.median(times) * 1000:.0f} ms",
            )
        )

    width = max(len(name) for name, _ in results)
    print(f"\nlumaweb benchmarks on {os.cpu_count()} cores, {connection.vendor}")
    for name, value in results:
        print(f"| {name:<{width}} | {value} |")


if __name__ == "__main__":
    main()
