#!/usr/bin/env python
"""Benchmarks that print figures (results are kept in docs/PERFORMANCE.md).

    .venv/bin/python scripts/bench.py [--rows 1000]

Runs against a scratch SQLite database (or DATABASE_URL if set) and the simulator over real
HTTP: batch polling, submitting, and the gallery and dashboard pages.
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


def main() -> None:
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
