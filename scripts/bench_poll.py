#!/usr/bin/env python
"""Poll rounds at scale, today's code beside the code before it (results in docs/PERFORMANCE.md).

    createdb -h 127.0.0.1 -U postgres bench_poll
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_poll REDIS_URL=redis://127.0.0.1:6379/4 \\
        .venv/bin/python scripts/bench_poll.py [--rows 1000,10000] [--baseline main]
        [--detection 1,5] [--jobs 40] [--port 9200]

Against PostgreSQL (DATABASE_URL) and the simulator over real HTTP (batched GETs).

Rounds: ``--rows`` in-flight rows, all due. For each count, one round of the baseline's poll
code (``git show <baseline>:generations/pipeline/poll.py``, loaded beside this one in the same
process, same database and simulator) and of this code: rows polled, queries, GETs and wall time;
then this code with ``LUMA_POLL_PARALLEL`` (2) processes sharing the round, as a poller worker
runs it: the time until every row was polled.

Detection (``--detection``, intervals in seconds): a real beat, worker and poller (this code;
for the baseline, beat and worker run from a ``git worktree`` of ``--baseline``) against jobs
that finish on their own in the simulator; an observer asks the simulator every 50 ms (one
batched GET) when each finished, and detection is the row's ``completed_at`` minus that.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    os.environ.setdefault("DEBUG", "True")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


def child(start_at: float) -> None:
    """One poller process of the parallel round: wait for the common start, poll, report."""
    setup_django()
    from generations import pipeline

    time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    stats = pipeline.poll_in_flight()
    print(json.dumps({"began": began, "ended": time.time(), "due": stats.due}))


def load_baseline(ref: str) -> Any:
    """The baseline's poll module, under another name, importing today's other modules."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:generations/pipeline/poll.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = "generations.pipeline._poll_baseline"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"{ref}:generations/pipeline/poll.py", "exec"), module.__dict__)
    return module


def create_remote(api_url: str, count: int) -> list[str]:
    """``count`` generations at the simulator (8 threads, kept-alive connections)."""
    import requests

    local = threading.local()

    def one(i: int) -> str:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        response = session.post(
            f"{api_url}/luma-ai/generations",
            json={"user_prompt": f"poll bench {i}", "aspect_ratio": "16:9"},
            headers={"Authorization": "Bearer bench"},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="1000,10000")
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--detection", default="", help="intervals, e.g. 1,5 (slow: minutes)")
    parser.add_argument("--jobs", type=int, default=40, help="jobs per detection run")
    parser.add_argument("--port", type=int, default=9200, help="the simulator's port")
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL to a scratch PostgreSQL database")
    setup_django()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    import devtools.simulator_process as simproc
    from generations import pipeline
    from generations.models import Generation, Status

    call_command("migrate", verbosity=0)
    simproc.free_port = lambda host="127.0.0.1": args.port
    counts = [int(n) for n in args.rows.split(",") if n]
    baseline = load_baseline(args.baseline)
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    say(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; PostgreSQL; "
        f"batch {settings.LUMA_POLL_BATCH_SIZE}, interval {settings.LUMA_POLL_INTERVAL:g} s"
    )
    with simproc.SimulatorProcess(duration=3600, quiet=True) as sim:
        settings.LUMA_API_BASE_URL = sim.api_url
        os.environ["LUMA_API_BASE_URL"] = sim.api_url
        Generation.objects.all().delete()
        started = time.perf_counter()
        remote_ids = create_remote(sim.api_url, max(counts))
        now = timezone.now()
        Generation.objects.bulk_create(
            (
                Generation(
                    user_prompt=f"poll bench {i}",
                    status=Status.IN_PROGRESS,
                    remote_id=remote_id,
                    posts_sent=1,
                    submitted_at=now,
                    last_progress_at=now,
                    next_poll_at=now,
                )
                for i, remote_id in enumerate(remote_ids)
            ),
            batch_size=2000,
        )
        say(f"setup: {len(remote_ids)} in flight ({time.perf_counter() - started:.0f} s)")
        all_ids = list(Generation.objects.order_by("pk").values_list("pk", flat=True))

        def make_due(count: int) -> None:
            """``count`` rows due now, the rest in flight but not due (polled a moment ago)."""
            now = timezone.now()
            Generation.objects.update(
                next_poll_at=now + timedelta(hours=1), poll_lease="", last_polled_at=None
            )
            due = all_ids[:count]
            for start in range(0, len(due), 5000):
                Generation.objects.filter(pk__in=due[start : start + 5000]).update(
                    next_poll_at=now - timedelta(seconds=1)
                )

        for count in counts:
            say(f"\n{count} in flight, all due:")
            for label, module in (("baseline", baseline), ("this code", pipeline.poll)):
                make_due(count)
                gets = sim.ledger()["get_requests"]
                with CaptureQueriesContext(connection) as queries:
                    took = time.perf_counter()
                    stats = module.poll_in_flight()
                    took = time.perf_counter() - took
                gets = sim.ledger()["get_requests"] - gets
                batches = max(1, math.ceil(stats.due / settings.LUMA_POLL_BATCH_SIZE))
                left = Generation.objects.filter(
                    last_polled_at__isnull=True, pk__in=all_ids[:count]
                )
                rounds = math.ceil(count / max(1, stats.due))
                say(
                    f"  {label:10} one round: {stats.due} rows, {len(queries)} queries "
                    f"({len(queries) / batches:.1f} a 50-row batch), {gets} GETs, "
                    f"{took:.2f} s ({stats.due / took:.0f} rows/s); not polled: {left.count()}; "
                    f"every row looked at every {rounds} round(s) = "
                    f"{rounds * settings.LUMA_POLL_INTERVAL:g} s at interval "
                    f"{settings.LUMA_POLL_INTERVAL:g} s"
                )
            # LUMA_POLL_PARALLEL processes share the round, as a poller worker's slots do.
            make_due(count)
            parallel = settings.LUMA_POLL_PARALLEL
            start_at = time.time() + 4.0  # after every child's Django start-up
            children = [
                subprocess.Popen(
                    [sys.executable, __file__, "--child", str(start_at)],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=dict(os.environ),
                )
                for _ in range(parallel)
            ]
            reports = [json.loads(c.communicate()[0].strip().splitlines()[-1]) for c in children]
            wall = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
            left = Generation.objects.filter(last_polled_at__isnull=True, pk__in=all_ids[:count])
            say(
                f"  this code, {parallel} pollers: {sum(r['due'] for r in reports)} rows "
                f"({'/'.join(str(r['due']) for r in reports)}) in {wall:.2f} s; "
                f"not polled: {left.count()}"
            )
        Generation.objects.all().delete()

        for interval in [float(i) for i in args.detection.split(",") if i]:
            for label in ("baseline", "this code"):
                say("")
                say(detection(sim, label, interval, args))
    out = ROOT / ".run" / "bench_poll.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"\n(written to {out})")


def detection(sim: Any, label: str, interval: float, args: argparse.Namespace) -> str:
    """Detection latency with real beat, worker and (this code) poller processes."""
    import requests
    from django.utils import timezone

    from generations.models import Generation, Status

    Generation.objects.all().delete()
    sim.configure(duration=20.0)
    workdir = ROOT
    scratch = Path(tempfile.mkdtemp(prefix="lumaweb-bench-poll-"))
    if label == "baseline":
        workdir = scratch / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(workdir), args.baseline],
            check=True,
            capture_output=True,
        )
    env = dict(
        os.environ,
        LUMA_POLL_INTERVAL=str(interval),
        LUMA_API_BASE_URL=sim.api_url,
        LUMA_MAX_IN_FLIGHT="0",
        LUMA_MAX_SUBMITS_PER_MINUTE="0",
        CELERY_BEAT_SCHEDULE_FILENAME=str(scratch / "beat-schedule"),
        PYTHONPATH=str(workdir),
        MEDIA_ROOT=str(scratch / "media"),
    )
    purge_queues()
    celery = [sys.executable, "-m", "celery", "-A", "lumaweb", "--quiet"]
    commands = {
        "beat": [*celery, "beat", "--loglevel", "WARNING"],
        "worker": [
            *celery,
            "worker",
            "--loglevel",
            "WARNING",
            "--concurrency",
            "4",
            "--hostname",
            "bench-worker@%h",
            "--without-gossip",
            "--without-mingle",
        ],
    }
    if label != "baseline":
        commands["poller"] = [
            *celery,
            "worker",
            "--loglevel",
            "WARNING",
            "--queues",
            "poll",
            "--concurrency",
            "2",
            "--hostname",
            "bench-poller@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    procs = {
        name: subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdout=open(scratch / f"{name}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, cmd in commands.items()
    }
    seen: dict[str, float] = {}
    stop = threading.Event()
    try:
        time.sleep(6)  # the processes start
        ids: list[str] = []
        spread = max(10.0, 3 * interval)
        for i in range(args.jobs):  # jobs start spread over `spread` seconds
            remote = create_remote_one(sim.api_url, i)
            now = timezone.now()
            Generation.objects.create(
                user_prompt=f"detect {i}",
                status=Status.IN_PROGRESS,
                remote_id=remote["id"],
                posts_sent=1,
                submitted_at=now,
                last_progress_at=now,
                next_poll_at=now,
                state=remote.get("state") or "",
            )
            ids.append(remote["id"])
            time.sleep(spread / args.jobs)

        def observe() -> None:
            session = requests.Session()
            while not stop.is_set():
                asked = time.time()
                for start in range(0, len(ids), 100):
                    chunk = ids[start : start + 100]
                    answer = session.get(
                        f"{sim.api_url}/luma-ai/generation",
                        params=[(f"ids[{n}]", rid) for n, rid in enumerate(chunk)],
                        headers={"Authorization": "Bearer bench"},
                        timeout=10,
                    )
                    for gen in answer.json():
                        if gen["state"] == "completed" and (gen.get("video") or {}).get("url"):
                            seen.setdefault(gen["id"], asked)
                time.sleep(0.05)

        observer = threading.Thread(target=observe, daemon=True)
        observer.start()
        deadline = time.time() + 40 + 2 * interval
        while time.time() < deadline:
            if not Generation.objects.filter(status=Status.IN_PROGRESS).exists():
                break
            time.sleep(0.5)
    finally:
        stop.set()
        for proc in procs.values():
            os.killpg(proc.pid, 15)
        for proc in procs.values():
            proc.wait(timeout=30)
        if label == "baseline":
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(workdir)],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(scratch, ignore_errors=True)
    latencies = []
    for gen in Generation.objects.filter(status=Status.COMPLETED):
        if gen.remote_id in seen and gen.completed_at:
            latencies.append(gen.completed_at.timestamp() - seen[gen.remote_id])
    latencies.sort()
    if not latencies:
        return f"detection, {label}, interval {interval:g} s: nothing completed"
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    return (
        f"detection, {label:9}, interval {interval:g} s: {len(latencies)}/{args.jobs} jobs, "
        f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {latencies[-1]:.2f} s "
        f"(targets: p50 <= {interval / 2 + 0.5:g} s, p99 <= {interval + 1:g} s)"
    )


def purge_queues() -> None:
    """Nothing left in this REDIS_URL's Celery queues from an earlier run."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for queue in ("celery", "poll"):
        client.delete(queue)


def create_remote_one(api_url: str, i: int) -> dict[str, Any]:
    import requests

    response = requests.post(
        f"{api_url}/luma-ai/generations",
        json={"user_prompt": f"detect {i}", "aspect_ratio": "16:9"},
        headers={"Authorization": "Bearer bench"},
        timeout=30,
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


if __name__ == "__main__":
    main()
