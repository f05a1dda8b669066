"""The chaos run: many generations through real workers while things break.

N generations (with extensions) go through a Redis of the run's own, two Celery worker
processes and a beat, against the simulator with faults on. Meanwhile workers are SIGKILLed and
replaced, Redis is restarted empty and beat is restarted. At the end the simulator's ledger (every
POST it received: it does not trust lumaweb's records) is checked against the database:

* lost: a job not finished, failed or flagged for a person, or a paid upstream generation that no
  row knows and no needs-attention row accounts for: must be 0;
* unrequested second POSTs: a row with more upstream generations than people authorised: must be 0;
* local copies: every completed job's file is compared byte for byte with the upstream's.

Used by ``manage.py chaos`` (full size) and ``tests/test_chaos.py`` (short, in CI).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from devtools.processes import CeleryProcesses, database_url, free_port
from devtools.simulator_process import SimulatorProcess
from generations import actions
from generations.inputs import GenerationRequest
from generations.models import Generation, Status

ROOT = Path(__file__).resolve().parent.parent
FAULTS = {
    "error_rate": 0.10,
    "error_after_create_rate": 0.02,  # the service started the job, then a gateway said 502
    "rate_limit_rate": 0.05,
    "retry_after": 1,
    "slow_rate": 0.03,
    "slow_seconds": 4,  # beyond the workers' 2 s read time-out
    "fail_rate": 0.05,
    "late_url_rate": 0.3,
    "late_url_seconds": 1,
}
PIPELINE_ENV = {
    "LUMA_POLL_INTERVAL": "1",
    "LUMA_SWEEP_INTERVAL": "1",
    "LUMA_READ_TIMEOUT": "2",
    "LUMA_REQUEUE_AFTER": "3",
    "LUMA_SUBMIT_STALE_AFTER": "6",
    "LUMA_POLL_LEASE": "5",
    "LUMA_ASSET_LEASE": "10",
    "LUMA_SUBMIT_MAX_ATTEMPTS": "30",
    "LUMA_API_KEY": "",
    # No capacity limit: 300 jobs at the default 20 POSTs a minute would outlast the run's
    # time-out. (A run with a cap is issue 8's chaos item.)
    "LUMA_MAX_IN_FLIGHT": "0",
    "LUMA_MAX_SUBMITS_PER_MINUTE": "0",
}


@contextlib.contextmanager
def publishing_to(url: str) -> Iterator[None]:
    """Point this process's Celery app at another broker for a while."""
    from lumaweb.celery import app

    def reset() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_url
    app.conf.broker_url = url
    reset()
    try:
        yield
    finally:
        app.conf.broker_url = old
        reset()


class RedisServer:
    """A redis-server of the run's own, so that it can be restarted with its data gone."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("the chaos run needs redis-server on PATH")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        for _ in range(100):
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart_empty(self) -> None:
        """Kill it (nothing is saved) and start it again on the same port: every message gone."""
        self.stop()
        self.start()


@dataclass
class Report:
    submitted: int = 0
    extensions: int = 0
    completed: int = 0
    failed: int = 0
    failed_reasons: Counter = field(default_factory=Counter)
    needs_attention: int = 0
    unfinished: int = 0
    orphan_posts: int = 0
    lost: int = 0
    paid_posts: Counter = field(default_factory=Counter)
    unrequested_second_posts: int = 0
    copies_verified: int = 0
    copies_bad: int = 0
    worker_kills: int = 0
    redis_restarts: int = 0
    beat_restarts: int = 0
    upstream_faults: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.unrequested_second_posts == 0
            and self.copies_bad == 0
            and self.copies_verified == self.completed
        )

    def table(self) -> str:
        posts = ", ".join(
            f"{n} POST{'s' if n != 1 else ''}: {c} rows" for n, c in sorted(self.paid_posts.items())
        )
        rows = [
            ("submitted (rows)", f"{self.submitted} ({self.extensions} extensions)"),
            ("completed", self.completed),
            ("failed", self.failed),
            *[(f"  - {reason[:60]}", count) for reason, count in self.failed_reasons.most_common()],
            ("needs_attention", self.needs_attention),
            ("lost (must be 0)", self.lost),
            ("  unfinished rows", self.unfinished),
            ("  paid upstream generations no row accounts for", self.orphan_posts),
            ("paid POSTs per row", posts),
            ("unrequested second POSTs (must be 0)", self.unrequested_second_posts),
            ("local copies verified byte for byte", f"{self.copies_verified}/{self.completed}"),
            (
                "faults: worker SIGKILLs / Redis restarts / beat restarts",
                f"{self.worker_kills} / {self.redis_restarts} / {self.beat_restarts}",
            ),
            (
                "faults the simulator injected (5xx / 502 after starting / 429 / slow)",
                " / ".join(
                    str(self.upstream_faults.get(k, 0))
                    for k in ("error", "error_after_create", "rate_limited", "slow")
                ),
            ),
            ("time", f"{self.seconds:.0f} s"),
        ]
        width = max(len(label) for label, _ in rows)
        head = [f"| {'measure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
        return "\n".join(head + [f"| {label:<{width}} | {value} |" for label, value in rows])


class ChaosRun:
    def __init__(
        self,
        n: int = 300,
        *,
        kills: int = 5,
        redis_restarts: int = 2,
        beat_restarts: int = 1,
        timeout: float = 900,
        seed: int = 1,
        say: Callable[[str], None] = print,
    ) -> None:
        self.n = n
        self.kills, self.redis_restarts, self.beat_restarts = kills, redis_restarts, beat_restarts
        self.timeout = timeout
        self.rng = random.Random(seed)
        self.seed = seed
        self.say = say
        self.ids: list[str] = []
        self.report = Report()

    # --- the run --------------------------------------------------------------------------------
    def run(self) -> Report:
        workdir = Path(tempfile.mkdtemp(prefix="lumaweb-chaos-"))
        media = workdir / "media"
        media.mkdir()
        started = time.monotonic()
        sim = SimulatorProcess(duration=4, video_seconds=1, seed=self.seed, **FAULTS)
        broker = RedisServer(workdir)
        sim.start()
        broker.start()
        env = {
            **os.environ,
            **PIPELINE_ENV,
            "DATABASE_URL": database_url(),
            "REDIS_URL": broker.url,
            "LUMA_API_BASE_URL": sim.api_url,
            "MEDIA_ROOT": str(media),
            "DEBUG": "True",
        }
        procs = CeleryProcesses(env, workdir)
        try:
            procs.start_worker()
            procs.start_worker()
            procs.start("beat")
            with publishing_to(broker.url):
                self._drive(sim, broker, procs, started)
            self.report.seconds = time.monotonic() - started
            self._check(sim, media)
        finally:
            procs.stop_all()
            broker.stop()
            sim.stop()
            if self.report.ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                self.say(f"logs kept in {workdir}")
        return self.report

    def _drive(self, sim, broker: RedisServer, procs: CeleryProcesses, started: float) -> None:
        from django.contrib.auth import get_user_model

        user, _ = get_user_model().objects.get_or_create(username="chaos")
        creates = max(1, self.n - self.n // 5)
        extensions = self.n - creates
        faults = (
            ["kill"] * self.kills + ["redis"] * self.redis_restarts + ["beat"] * self.beat_restarts
        )
        self.rng.shuffle(faults)
        # Spread the faults over the time the work is expected to take.
        expected = max(30.0, self.n * 0.25)
        fault_times = sorted(self.rng.uniform(2, expected) for _ in faults)
        created = 0
        extended: set[str] = set()
        while True:
            elapsed = time.monotonic() - started
            # Feed new generations in waves so that work is in flight while faults happen.
            target = min(creates, int(creates * min(1.0, (elapsed + 2) / (expected * 0.6))))
            while created < target:
                created += 1
                gen = actions.create_generation(
                    user,
                    GenerationRequest(
                        user_prompt=f"chaos #{created}: {self._prompt()}",
                        aspect_ratio=self.rng.choice(["16:9", "9:16", "1:1"]),
                    ),
                )
                self.ids.append(str(gen.pk))
            if len(extended) < extensions:
                for parent in Generation.objects.filter(
                    pk__in=self.ids, status=Status.COMPLETED, parent__isnull=True
                ).exclude(pk__in=extended)[: extensions - len(extended)]:
                    child = actions.extend_generation(
                        parent,
                        user,
                        GenerationRequest(
                            user_prompt=f"chaos ext of {parent.pk}: and then it rains",
                            aspect_ratio=parent.aspect_ratio,
                        ),
                    )
                    extended.add(str(parent.pk))
                    self.ids.append(str(child.pk))
            while fault_times and elapsed >= fault_times[0]:
                fault_times.pop(0)
                self._fault(faults.pop(0), broker, procs)
            if created >= creates and not faults and self._settled(extended, extensions):
                return
            if elapsed > self.timeout:
                self.say("timed out: checking what is there")
                return
            time.sleep(0.5)

    def _settled(self, extended: set[str], extensions: int) -> bool:
        """Every row finished (and copied), and every extension made that can be made."""
        mine = Generation.objects.filter(pk__in=self.ids)
        if mine.unsettled().exists():  # the same definition the pages poll by
            return False
        can_extend = (
            mine.filter(status=Status.COMPLETED, parent__isnull=True)
            .exclude(pk__in=extended)
            .exists()
        )
        return len(extended) >= extensions or not can_extend

    def _prompt(self) -> str:
        return self.rng.choice(
            [
                "a lighthouse in a storm",
                "a fox in snow",
                "neon rain",
                "a paper boat",
                "a desert caravan at dusk",
            ]
        )

    def _fault(self, kind: str, broker: RedisServer, procs: CeleryProcesses) -> None:
        if kind == "kill":
            victim = self.rng.choice(procs.workers())
            procs.kill(victim, signal.SIGKILL)
            procs.start_worker()
            self.report.worker_kills += 1
            self.say(f"  SIGKILL {victim}, started a new worker")
        elif kind == "redis":
            broker.restart_empty()
            self.report.redis_restarts += 1
            self.say("  restarted Redis with its data flushed")
        else:
            procs.kill("beat", signal.SIGTERM)
            procs.start("beat")
            self.report.beat_restarts += 1
            self.say("  restarted beat")

    # --- the check ------------------------------------------------------------------------------
    def _check(self, sim, media: Path) -> None:
        rep = self.report
        rows = list(Generation.objects.filter(pk__in=self.ids))
        full = sim.ledger()
        ledger = full["posts"]
        rep.upstream_faults = dict(full.get("faults", {}))
        by_prompt = Counter(p["user_prompt"] for p in ledger)
        known_remote = {row.remote_id for row in rows if row.remote_id}
        rep.submitted = len(rows)
        rep.extensions = sum(1 for row in rows if row.parent_id)
        flagged = 0
        for row in rows:
            posts = by_prompt.get(row.user_prompt, 0)
            rep.paid_posts[posts] += 1
            if posts > row.posts_authorized:
                rep.unrequested_second_posts += 1
            if row.status == Status.COMPLETED:
                rep.completed += 1
            elif row.status == Status.FAILED:
                rep.failed += 1
                rep.failed_reasons[_reason(row.error)] += 1
            elif row.status == Status.NEEDS_ATTENTION:
                rep.needs_attention += 1
                if not row.remote_id and posts:
                    flagged += posts
            elif row.status != Status.CANCELLED:
                rep.unfinished += 1
        mine = {p["id"] for p in ledger if p["user_prompt"] in {r.user_prompt for r in rows}}
        rep.orphan_posts = max(0, len(mine - known_remote) - flagged)
        rep.lost = rep.unfinished + rep.orphan_posts
        for row in rows:
            if row.status != Status.COMPLETED:
                continue
            path = media / row.video_file.name if row.video_file else None
            if path is None or not path.exists():
                rep.copies_bad += 1
                continue
            upstream = requests.get(row.video_url, timeout=30).content
            if path.read_bytes() == upstream:
                rep.copies_verified += 1
            else:
                rep.copies_bad += 1


def _reason(error: str) -> str:
    if error.startswith("Timed out"):
        return "timed out"
    if "gave up after" in error:
        return "gave up after repeated refusals"
    return error.split(".")[0] or "unknown"
