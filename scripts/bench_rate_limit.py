#!/usr/bin/env python
"""A burst against a rate-limited upstream: the pacer against today's code (results in
docs/PERFORMANCE.md, "A rate-limited upstream").

    createdb lw_bench_rate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lw_bench_rate \\
    REDIS_URL=redis://127.0.0.1:6379/3 \\
        .venv/bin/python scripts/bench_rate_limit.py [--jobs 200] [--scale 10]

The simulator enforces Luma's entry tier (``--limit-creates 20`` in a minute, ``--limit-running
10``; a create over either is answered 429 with a Retry-After), with time scaled down
``--scale`` times so that a run takes minutes: the rate window is 60/scale seconds (lumaweb's
``LUMA_SUBMIT_RATE_WINDOW`` as short) and a generation runs ``--duration`` seconds (default
60/scale: a minute of Luma's, scaled). Two Celery worker processes (two slots each) and a beat
run against a Redis database of the run's own (``REDIS_URL``, emptied first: give it one that
nothing else uses) and DATABASE_URL (PostgreSQL: two workers write at once).

lumaweb's own caps are off (``LUMA_MAX_IN_FLIGHT=0``, ``LUMA_MAX_SUBMITS_PER_MINUTE=0``), as in
the measurement of issue 12 (28-30 POSTs a second): an install whose caps do not match its
tier. Two modes, one after the other, each from an empty database and a reset simulator:

* baseline: ``LUMA_SUBMIT_PACING=False``, today's code (each refusal an attempt, each job
  backing off on its own, failed after ``LUMA_SUBMIT_MAX_ATTEMPTS=8``);
* paced: the pacer on (the default).

Printed per mode: jobs completed / failed / other, POSTs refused (the simulator's ledger:
POSTs that arrived minus those it accepted), the most running at once upstream, and the time
until every job settled.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--scale", type=float, default=10.0, help="time runs this much faster")
    parser.add_argument("--creates", type=int, default=20, help="creates a (scaled) minute")
    parser.add_argument("--running", type=int, default=10, help="generations running at once")
    parser.add_argument("--duration", type=float, default=None, help="seconds a generation runs")
    parser.add_argument("--timeout", type=float, default=900.0, help="per mode, seconds")
    parser.add_argument("--modes", default="baseline,paced")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a scratch PostgreSQL database")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url.startswith("redis://"):
        sys.exit("set REDIS_URL to a Redis database of this run's own (it is emptied)")
    os.environ.setdefault("DEBUG", "True")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    window = 60.0 / args.scale
    duration = args.duration if args.duration is not None else 60.0 / args.scale

    from devtools.simulator_process import SimulatorProcess

    sim = SimulatorProcess(
        duration=duration,
        video_seconds=1,
        quiet=True,
        seed=12,
        limit_creates=args.creates,
        limit_window=window,
        limit_running=args.running,
    )
    sim.start()
    os.environ["LUMA_API_BASE_URL"] = sim.api_url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(
        f"{args.jobs} jobs; upstream: {args.creates} creates in {window:g} s, {args.running} "
        f"running, each {duration:g} s (time x{args.scale:g}); lumaweb caps off; 2 workers x 2"
    )
    print(
        f"{'mode':10} {'done':>5} {'failed':>6} {'other':>5} {'refused':>7} {'max run':>7} "
        f"{'seconds':>8}"
    )
    try:
        for mode in args.modes.split(","):
            row = run_mode(mode, args, sim, redis_url, window)
            print(
                f"{mode:10} {row['completed']:>5} {row['failed']:>6} {row['other']:>5} "
                f"{row['refused']:>7} {row['max_running']:>7} {row['seconds']:>8.1f}",
                flush=True,
            )
    finally:
        sim.stop()


def run_mode(mode: str, args: argparse.Namespace, sim, redis_url: str, window: float) -> dict:
    import redis
    from django.contrib.auth import get_user_model

    from devtools.chaos import publishing_to
    from devtools.processes import CeleryProcesses, database_url
    from generations import actions
    from generations.inputs import GenerationRequest
    from generations.models import Generation, Status, SubmitGrant

    Generation.objects.all().delete()
    SubmitGrant.objects.all().delete()
    sim.reset()
    redis.Redis.from_url(redis_url).flushdb()  # the run's own database: messages and the pace
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "LUMA_API_BASE_URL": sim.api_url,
        "LUMA_API_KEY": "",
        "LUMA_PROVIDER": "umamiai",
        "LUMA_MAX_IN_FLIGHT": "0",
        "LUMA_MAX_SUBMITS_PER_MINUTE": "0",
        "LUMA_SUBMIT_RATE_WINDOW": str(window),
        "LUMA_SUBMIT_MAX_ATTEMPTS": "8",
        "LUMA_SUBMIT_PACING": "False" if mode == "baseline" else "True",
        "LUMA_POLL_INTERVAL": "1",
        "LUMA_SWEEP_INTERVAL": "1",
        "LUMA_REQUEUE_AFTER": "3",
        "LUMA_SUBMIT_STALE_AFTER": "10",
        "MEDIA_ROOT": tempfile.mkdtemp(prefix="lumaweb-bench-rate-"),
        "LOG_LEVEL": "WARNING",
    }
    user, _ = get_user_model().objects.get_or_create(username="bench-rate")
    procs = CeleryProcesses(env, Path(tempfile.mkdtemp(prefix="lumaweb-bench-rate-logs-")))
    procs.start("worker-a")
    procs.start("worker-b")
    procs.start("beat")
    try:
        time.sleep(3)  # the workers are up before the burst
        started = time.monotonic()
        with publishing_to(redis_url):
            for i in range(args.jobs):
                actions.create_generation(user, GenerationRequest(user_prompt=f"burst {i}"))
        unsettled = [Status.QUEUED, Status.SUBMITTING, Status.IN_PROGRESS]
        while time.monotonic() - started < args.timeout:
            if not Generation.objects.filter(status__in=unsettled).exists():
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
    finally:
        procs.stop_all()
    ledger = sim.ledger()
    statuses = list(Generation.objects.values_list("status", flat=True))
    completed, failed = statuses.count(Status.COMPLETED), statuses.count(Status.FAILED)
    return {
        "completed": completed,
        "failed": failed,
        "other": len(statuses) - completed - failed,
        "refused": len(ledger["post_times"]) - len(ledger["posts"]),
        "max_running": ledger["max_unfinished"],
        "seconds": seconds,
    }


if __name__ == "__main__":
    main()
