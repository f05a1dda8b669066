#!/usr/bin/env python
"""The simulator's small answers before and after the Nagle fix, in one run (results are kept
in docs/PERFORMANCE.md).

    .venv/bin/python scripts/bench_simulator.py [--rounds 3] [--requests 300] [--submits 100]

Starts the simulator as a subprocess twice per round, the old way (headers and body in two
writes, no TCP_NODELAY: ``Handler.single_write`` and ``SimulatorServer.nodelay`` off) and the
new way, and measures against each, over real HTTP on loopback:

- small answers back to back on a kept-alive connection (requests' Session, as lumaweb's
  client): a status GET of one generation, and a creating POST, ``--requests`` of each; then
  POSTs 10, 30 and 100 ms apart (the client's delayed ACK, which the old way waits for, is only
  delayed while the client answers quickly: Linux ACKs at once after a pause);
- lumaweb's submit (``pipeline.submit``: claim, POST, update) of ``--submits`` rows, one after
  another, in a scratch SQLite database (or DATABASE_URL), as ``scripts/bench.py`` does; then
  one poll round of those rows (``pipeline.poll_in_flight``: batched GETs, back to back).

Prints medians over the rounds. No test asserts a time.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN_ENV = "SIMULATOR_CONTROL_TOKEN"


def serve(mode: str, port: int) -> None:
    """The subprocess: the simulator, the old way or the new."""
    from simulator import server

    server.Handler.single_write = mode == "new"
    server.SimulatorServer.nodelay = mode == "new"
    server.serve(
        server.Config(
            port=port,
            duration=3600,
            video_seconds=1,
            quiet=True,
            control_token=os.environ[TOKEN_ENV],
        )
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(mode: str, port: int, token: str) -> subprocess.Popen[bytes]:
    import requests

    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, TOKEN_ENV: token},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/_sim/health", timeout=1).ok:
                return process
        except requests.RequestException:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError(f"the {mode} simulator did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def small_answers(base: str, count: int, method: str, pause: float = 0.0) -> list[float]:
    """Status GETs of one generation (or creating POSTs) on one kept-alive connection, back to
    back or ``pause`` seconds apart (a client that does other work between requests)."""
    import requests

    create = f"{base}/v1/luma-ai/generations"
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer demo"  # any key: the simulator has none
        created = session.post(create, json={"user_prompt": "bench"}, timeout=10)
        created.raise_for_status()
        url = f"{base}/v1/luma-ai/generation?ids={created.json()['id']}"
        session.get(url, timeout=10).raise_for_status()  # warm
        times = []
        for _ in range(count):
            time.sleep(pause)
            began = time.perf_counter()
            if method == "GET":
                session.get(url, timeout=10).raise_for_status()
            else:
                session.post(create, json={"user_prompt": "bench"}, timeout=10).raise_for_status()
            times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=("old", "new"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help="first port to use (default: free)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--submits", type=int, default=100)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    scratch = Path(tempfile.mkdtemp(prefix="lumaweb-bench-sim-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'bench.sqlite3'}")
    os.environ.setdefault("DEBUG", "True")
    os.environ["MEDIA_ROOT"] = str(scratch / "media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from generations import actions, pipeline
    from generations.inputs import GenerationRequest
    from generations.models import Generation

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(f"bench-{secrets.token_hex(4)}", password="x")
    settings.LUMA_MAX_IN_FLIGHT = settings.LUMA_MAX_SUBMITS_PER_MINUTE = 0
    figures: dict[str, dict[str, list[float]]] = {}

    def record(name: str, mode: str, value: float) -> None:
        figures.setdefault(name, {"old": [], "new": []})[mode].append(value)

    token = secrets.token_urlsafe(24)
    for round_ in range(args.rounds):
        for mode in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
            port = args.port + round_ * 2 + (mode == "new") if args.port else free_port()
            process = start(mode, port, token)
            try:
                base = f"http://127.0.0.1:{port}"
                for method in ("GET", "POST"):
                    times = sorted(small_answers(base, args.requests, method))
                    record(f"{method} back to back, median (ms)", mode, median_ms(times))
                    record(f"{method} back to back, p95 (ms)", mode, p95_ms(times))
                for pause in (0.01, 0.03, 0.1):
                    times = small_answers(base, args.requests // 5, "POST", pause)
                    record(f"POST {pause * 1000:.0f} ms apart, median (ms)", mode, median_ms(times))
                settings.LUMA_API_BASE_URL = f"{base}/v1"
                rows = [
                    actions.create_generation(user, GenerationRequest(user_prompt=f"b {i}"))
                    for i in range(args.submits)
                ]
                began = time.perf_counter()
                for row in rows:
                    pipeline.submit(row.pk)
                took = time.perf_counter() - began
                record("lumaweb submits (claim, POST, update) (/s)", mode, args.submits / took)
                ids = [row.pk for row in rows]
                Generation.objects.filter(pk__in=ids).update(next_poll_at=timezone.now())
                batches = -(-args.submits // settings.LUMA_POLL_BATCH_SIZE)
                began = time.perf_counter()
                stats = pipeline.poll_in_flight(limit_batches=10_000)
                took = time.perf_counter() - began
                assert stats.due == args.submits, stats
                record(
                    f"lumaweb poll round, {args.submits} rows, {batches} GETs (ms)",
                    mode,
                    took * 1000,
                )
                Generation.objects.filter(pk__in=ids).delete()  # the next round starts empty
            finally:
                stop(process)

    print(
        f"\nsimulator before / after the Nagle fix, {os.cpu_count()} cores, {connection.vendor}, "
        f"medians of {args.rounds} rounds ({args.requests} requests, {args.submits} submits each)"
    )
    print("| measure | before (two writes) | after (one write, TCP_NODELAY) | after / before |")
    print("|---|---|---|---|")
    for name, values in figures.items():
        old, new = statistics.median(values["old"]), statistics.median(values["new"])
        print(f"| {name} | {old:.2f} | {new:.2f} | x{new / old:.3f} |")


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def p95_ms(times: list[float]) -> float:
    return sorted(times)[int(len(times) * 0.95) - 1] * 1000


if __name__ == "__main__":
    main()
