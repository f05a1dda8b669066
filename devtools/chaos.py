"""The chaos run: many generations through real workers while things break.

N generations (with extensions) go through a Redis of the run's own, two Celery worker
processes and a beat, against the simulator with faults on. Meanwhile workers are SIGKILLed and
replaced, Redis is restarted empty and beat is restarted. With ``postgres_restarts`` the whole
run (workers, beat and this process's checks) uses a PostgreSQL server of its own
(``devtools.pgcluster``), which it stops for a few seconds and starts again that many times; the
first time while a POST is out (the simulator answers slowly for a moment, and the server is
stopped once a row is seen sending), so that a worker holds a paid generation's answer while
the database is away and must keep it (``generations/pipeline/journal.py``). At the end the
simulator's ledger (every POST it received: it does not trust lumaweb's records) is checked
against the database:

* lost: a job not finished, failed or flagged for a person, or a paid upstream generation that no
  row knows and no needs-attention row accounts for: must be 0;
* unrequested second POSTs: a row with more upstream generations than people authorised: must be 0;
* local copies: every completed job's file is compared byte for byte with the upstream's.

With a capacity cap (``max_in_flight``, ``submits_per_minute``) the ledger must also show never
more generations running at once than the cap, and never more POSTs (refused ones included) in
any 60 s than the rate. With a credits window the simulator's credits run out part-way through
and come back ``credits_window`` seconds after the account went on hold: no job may fail for
it, and the hold must lift by itself once the credits are back.

With ``provider="luma"`` the same run goes to Luma's official API (the simulator's luma
dialect, ``LUMA_PROVIDER=luma`` for the workers): new videos ask for a random model, resolution,
duration and loop, the extensions are extensions, reverse extensions and interpolations, and the
check adds, from the simulator's ledger: every POST's body carried the options and keyframes its
row asked for; the GETs of one poll interval never exceeded ``LUMA_POLL_MAX_REQUESTS``; and how
the POSTs of unknown outcome (a read time-out, a 5xx after the job may have started) were
decided by Luma's list of generations: found (adopted), nothing made (sent again), or left to
a person.

Used by ``manage.py chaos`` (full size) and ``tests/test_chaos.py`` /
``tests/test_chaos_luma.py`` (short, in CI).
"""

from __future__ import annotations

import contextlib
import json
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
from datetime import timedelta
from pathlib import Path

import redis
import requests
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from devtools.pgcluster import PrivatePostgres, using_database
from devtools.processes import CeleryProcesses, database_url, free_port
from devtools.simulator_process import SimulatorProcess
from generations import actions, tasks
from generations.inputs import GenerationRequest
from generations.models import Generation, Kind, Status, StatusEvent
from generations.pipeline import hold, journal, lookup

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
    "LUMA_HOLD_RETRY": "2",
    # A needs-attention row keeps its slot this long (its POST may have started a job): the
    # simulator's jobs take 4 s, so 15 s is ample, and the run does not wait 10 minutes for
    # slots that nobody will resolve.
    "LUMA_POLL_DEADLINE": "15",
    # The capacity limits come from ChaosRun (0: none).
    # An answer that comes while the database is away is journalled after a second of tries
    # (the run's outages last longer), so the journal is what is exercised.
    "LUMA_DB_RETRY_SECONDS": "1",
}
# A PostgreSQL restart: the server is down this long.
POSTGRES_DOWN_SECONDS = 4.0
# While the run waits for a POST to be out before the first restart, the simulator answers
# every request this late (under the workers' 2 s read time-out: an answer, not a time-out).
SLOW_ANSWER_SECONDS = 1.5
CREDITS_REFUSED = "credits"  # in the simulator's out-of-credits message
PROVIDERS = ("umamiai", "luma")
# Luma's official API: the same faults, and more POSTs that start a job and then answer 502
# (the list has something to find); 5xx before starting and read time-outs on slow replies are
# there already (FAULTS).
LUMA_FAULTS = {**FAULTS, "error_after_create_rate": 0.05}
LUMA_ENV = {
    "LUMA_PROVIDER": "luma",
    # Luma's list is taken to be current 30 s after a POST ended (providers/luma.py
    # LIST_SETTLE): the sweeper's second look comes after that, so it can decide "nothing made".
    "LUMA_LIST_LOOKUP_AGAIN_AFTER": "32",
    # the second looks come half a minute after the POST: the slots of needs-attention rows
    # are kept as long (they may run on the account)
    "LUMA_POLL_DEADLINE": "40",
}
LUMA_MODELS = ("ray-2", "ray-flash-2", "ray-1-6")
LUMA_RESOLUTIONS = ("540p", "720p", "1080p", "4k")
LUMA_DURATIONS = ("5s", "9s")
LUMA_DEFAULTS = {"model": "ray-2", "resolution": "720p", "duration": "5s"}
# What the extensions of a luma run are, in turn.
LUMA_EXTENSION_KINDS = (Kind.EXTEND, Kind.REVERSE, Kind.INTERPOLATE)


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
    postgres_restarts: int = 0
    posts_out_at_restart: int = 0  # rows seen sending (their POST out) as PostgreSQL stopped
    journalled: int = 0  # answers recorded from the journal after an outage
    journal_left: int = 0  # answers still in the journal at the end: must be 0
    upstream_faults: dict = field(default_factory=dict)
    seconds: float = 0.0
    # capacity (0: no limit) and what the simulator's ledger saw
    max_in_flight: int = 0
    submits_per_minute: int = 0
    max_running: int = 0  # the most generations running upstream at once
    max_posts_in_60s: int = 0  # the most POSTs (refused ones included) in any 60 s
    # the out-of-credits window (0: none)
    credits_window: float = 0.0
    credits_out_at: float | None = None  # seconds into the run
    credits_back_at: float | None = None
    hold_began_at: float | None = None
    hold_lifted_at: float | None = None
    held_refusals: int = 0  # POSTs refused for the account: each job went back to the queue
    most_waiting_in_hold: int = 0  # queued jobs seen waiting while the account was on hold
    failed_for_credits: int = 0  # must be 0: a job failed for the account's sake
    # the simulator enforcing an account's limits as Luma does (0: none): creates a minute and
    # generations running at once, a create over either answered 429 with a Retry-After
    upstream_creates_per_minute: int = 0
    upstream_running: int = 0
    refused_for_limits: int = 0  # creates the simulator refused for them (the ledger's faults)
    failed_for_rate_limits: int = 0  # must be 0: a job failed for a 429 (it started nothing)
    still_on_hold: bool = False  # the hold was still there at the end
    # Luma's official API (provider "luma")
    provider: str = "umamiai"
    by_kind: Counter = field(default_factory=Counter)  # rows by kind
    completed_by_kind: Counter = field(default_factory=Counter)
    ambiguous_posts: int = 0  # POSTs of unknown outcome (each decided or left below)
    list_found: int = 0  # the list showed the job it started: adopted, nothing sent again
    list_nothing: int = 0  # the list showed nothing was made: sent again
    list_left: int = 0  # the list could not tell (twice): left to a person
    list_pending: int = 0  # still waiting for the second look when the run ended
    bodies_checked: int = 0  # ledger POSTs compared with their rows (options, keyframes)
    bodies_bad: list = field(default_factory=list)  # what did not match
    poll_budget: int = 0  # LUMA_POLL_MAX_REQUESTS (0: not checked)
    poll_interval: float = 1.0
    polls: int = 0  # GET /generations/{id} the simulator received
    max_polls_in_interval: int = 0  # the most of them in one poll interval (as the budget counts)
    over_budget: list = field(default_factory=list)  # (wall-clock window start, GETs) over it
    # the most in two intervals running: a GET sent at the end of one interval that reaches a
    # busy simulator in the next counts there, but no pair can hold more than two budgets
    max_polls_in_two_intervals: int = 0

    @property
    def cap_ok(self) -> bool:
        return not self.max_in_flight or self.max_running <= self.max_in_flight

    @property
    def rate_ok(self) -> bool:
        return not self.submits_per_minute or self.max_posts_in_60s <= self.submits_per_minute

    @property
    def hold_ok(self) -> bool:
        """Without a window: there is nothing to show. With one: the hold began, held, lifted."""
        if not self.credits_window:
            return True
        return (
            self.hold_began_at is not None
            and self.hold_lifted_at is not None
            and self.failed_for_credits == 0
            and not self.still_on_hold
        )

    @property
    def budget_ok(self) -> bool:
        return not self.poll_budget or self.max_polls_in_interval <= self.poll_budget

    @property
    def list_resolved(self) -> int:
        """POSTs of unknown outcome the list decided by itself (found or nothing made)."""
        return self.list_found + self.list_nothing

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.unrequested_second_posts == 0
            and self.copies_bad == 0
            and self.copies_verified == self.completed
            and self.cap_ok
            and self.rate_ok
            and self.hold_ok
            and self.failed_for_rate_limits == 0
            and self.journal_left == 0
            and not self.bodies_bad
            and self.budget_ok
        )

    def table(self) -> str:
        posts = ", ".join(
            f"{n} POST{'s' if n != 1 else ''}: {c} rows" for n, c in sorted(self.paid_posts.items())
        )
        rows = [
            ("provider", self.provider),
            ("submitted (rows)", f"{self.submitted} ({self.extensions} extensions)"),
            *self._kind_rows(),
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
            *self._postgres_rows(),
            (
                "faults the simulator injected (5xx / 502 after starting / 429 / slow)",
                " / ".join(
                    str(self.upstream_faults.get(k, 0))
                    for k in ("error", "error_after_create", "rate_limited", "slow")
                ),
            ),
            *self._capacity_rows(),
            *self._hold_rows(),
            *self._luma_rows(),
            ("time", f"{self.seconds:.0f} s"),
        ]
        width = max(len(label) for label, _ in rows)
        head = [f"| {'measure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
        return "\n".join(head + [f"| {label:<{width}} | {value} |" for label, value in rows])

    def _kind_rows(self) -> list[tuple[str, object]]:
        if self.provider != "luma":
            return []
        return [
            (
                f"  {kind}: rows / completed",
                f"{self.by_kind.get(kind, 0)} / {self.completed_by_kind.get(kind, 0)}",
            )
            for kind in (Kind.CREATE, Kind.EXTEND, Kind.REVERSE, Kind.INTERPOLATE)
        ]

    def _luma_rows(self) -> list[tuple[str, object]]:
        if self.provider != "luma":
            return []
        return [
            ("POSTs of unknown outcome (read time-out, 5xx)", self.ambiguous_posts),
            ("  found by the list: adopted, not sent again", self.list_found),
            ("  nothing made, says the list: sent again", self.list_nothing),
            ("  the list could not tell: left to a person", self.list_left),
            ("  still waiting for the list's second look", self.list_pending),
            (
                "POST bodies with the row's options and keyframes",
                f"{self.bodies_checked - len(self.bodies_bad)}/{self.bodies_checked}",
            ),
            (
                "GETs of one id in one poll interval, most (budget)",
                f"{self.max_polls_in_interval} ({self.poll_budget}; {self.polls} GETs in all, "
                f"interval {self.poll_interval:g} s)",
            ),
            ("  intervals over the budget", len(self.over_budget)),
            (
                "  most in two intervals running (twice the budget)",
                f"{self.max_polls_in_two_intervals} ({2 * self.poll_budget})",
            ),
        ]

    def _postgres_rows(self) -> list[tuple[str, object]]:
        if not self.postgres_restarts:
            return []
        return [
            (
                f"PostgreSQL restarts ({POSTGRES_DOWN_SECONDS:g} s down each)",
                self.postgres_restarts,
            ),
            ("  rows sending (POST out) when it stopped", self.posts_out_at_restart),
            ("  answers journalled, recorded once it was back", self.journalled),
            ("  answers left in the journal (must be 0)", self.journal_left),
        ]

    def _capacity_rows(self) -> list[tuple[str, object]]:
        cap = self.max_in_flight or "no limit"
        rate = self.submits_per_minute or "no limit"
        upstream = (
            f"{self.upstream_creates_per_minute or 'any'} creates a minute, "
            f"{self.upstream_running or 'any'} running"
        )
        return [
            ("upstream's limits (429 over them)", upstream),
            ("creates the upstream refused for them", self.refused_for_limits),
            ("jobs failed for a 429 (must be 0)", self.failed_for_rate_limits),
            ("most generations running upstream at once (cap)", f"{self.max_running} ({cap})"),
            (
                "most POSTs in any 60 s, refused ones included (rate)",
                f"{self.max_posts_in_60s} ({rate})",
            ),
        ]

    def _hold_rows(self) -> list[tuple[str, object]]:
        if not self.credits_window:
            return [("out-of-credits window", "none")]

        def at(moment: float | None) -> str:
            return "never" if moment is None else f"{moment:.0f} s"

        return [
            (
                "credits out / back (s into the run)",
                f"{at(self.credits_out_at)} / {at(self.credits_back_at)}",
            ),
            (
                "hold began / lifted by itself",
                f"{at(self.hold_began_at)} / {at(self.hold_lifted_at)}",
            ),
            ("POSTs refused for credits (job requeued each time)", self.held_refusals),
            ("most jobs waiting in the queue during the hold", self.most_waiting_in_hold),
            ("jobs failed for the account (must be 0)", self.failed_for_credits),
            ("still on hold at the end (must be no)", "yes" if self.still_on_hold else "no"),
        ]


def most_in_interval(times: list[float], interval: float) -> int:
    """The most of ``times`` (wall clock) in one ``interval`` of the clock, the windows the poll
    budget is counted in (``generations.pipeline.poll.budget_key``)."""
    counts = Counter(int(moment // interval) for moment in times)
    return max(counts.values(), default=0)


def most_in_window(times: list[float], window: float = 60.0) -> int:
    """The most of ``times`` inside any ``[t, t + window)``."""
    ordered = sorted(times)
    most = first = 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - window:
            first += 1
        most = max(most, last - first + 1)
    return most


class ChaosRun:
    def __init__(
        self,
        n: int = 300,
        *,
        kills: int = 5,
        redis_restarts: int = 2,
        beat_restarts: int = 1,
        postgres_restarts: int = 0,
        timeout: float = 900,
        seed: int = 1,
        max_in_flight: int = 0,
        submits_per_minute: int = 0,
        credits_window: float = 0.0,
        upstream_creates_per_minute: int = 0,
        upstream_running: int = 0,
        provider: str = "umamiai",
        poll_budget: int = 4,
        say: Callable[[str], None] = print,
    ) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
        self.provider = provider
        self.n = n
        self.kills, self.redis_restarts, self.beat_restarts = kills, redis_restarts, beat_restarts
        self.postgres_restarts = postgres_restarts
        self.postgres: PrivatePostgres | None = None
        self.timeout = timeout
        self.rng = random.Random(seed)
        self.seed = seed
        self.say = say
        self.ids: list[str] = []
        self.report = Report(
            max_in_flight=max_in_flight,
            submits_per_minute=submits_per_minute,
            credits_window=credits_window,
            upstream_creates_per_minute=upstream_creates_per_minute,
            upstream_running=upstream_running,
            provider=provider,
            poll_budget=poll_budget if provider == "luma" else 0,
            poll_interval=float(PIPELINE_ENV["LUMA_POLL_INTERVAL"]),
        )

    # --- the run --------------------------------------------------------------------------------
    def run(self) -> Report:
        """The run; with PostgreSQL restarts, on a server of its own, removed afterwards."""
        if not self.postgres_restarts:
            return self._run()
        with PrivatePostgres() as self.postgres:
            self.say(f"  PostgreSQL of the run's own on port {self.postgres.port}: migrating")
            with using_database(self.postgres.url("lumaweb_chaos")):
                return self._run()

    def _run(self) -> Report:
        workdir = Path(tempfile.mkdtemp(prefix="lumaweb-chaos-"))
        media = workdir / "media"
        media.mkdir()
        started = time.monotonic()
        luma = self.provider == "luma"
        faults = LUMA_FAULTS if luma else FAULTS
        dialect = {"dialect": "luma"} if luma else {}
        limits = {
            "limit_creates": self.report.upstream_creates_per_minute,
            "limit_window": 60,
            "limit_running": self.report.upstream_running,
        }
        sim = SimulatorProcess(
            duration=4, video_seconds=1, seed=self.seed, **dialect, **faults, **limits
        )
        broker = RedisServer(workdir)
        sim.start()
        broker.start()
        luma_env = {**LUMA_ENV, "LUMA_POLL_MAX_REQUESTS": str(self.report.poll_budget)}
        env = {
            **os.environ,
            **PIPELINE_ENV,
            **(luma_env if luma else {"LUMA_PROVIDER": "umamiai"}),
            "LUMA_MAX_IN_FLIGHT": str(self.report.max_in_flight),
            "LUMA_MAX_SUBMITS_PER_MINUTE": str(self.report.submits_per_minute),
            "DATABASE_URL": database_url(),
            "REDIS_URL": broker.url,
            "LUMA_API_BASE_URL": sim.api_url,
            "MEDIA_ROOT": str(media),
            "LUMA_JOURNAL_DIR": str(workdir / "journal"),
            "DEBUG": "True",
        }
        procs = CeleryProcesses(env, workdir)
        try:
            procs.start_worker()
            procs.start_worker()
            procs.start("beat")
            # This process reads the provider's list (the report) and queues rows as the
            # workers' provider would have them.
            with (
                publishing_to(broker.url),
                override_settings(LUMA_PROVIDER=self.provider, LUMA_API_BASE_URL=sim.api_url),
            ):
                self._drive(sim, broker, procs, started)
                self.report.seconds = time.monotonic() - started
                self._check(sim, media, workdir / "journal")
                with contextlib.suppress(Exception):  # for whoever reads the kept logs
                    (workdir / "ledger.json").write_text(json.dumps(sim.ledger()))
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
        # PostgreSQL restarts: the first with POSTs out, once the first wave is sending; the
        # others spread over the rest (each a fault of its own kind, timed as the others).
        for nth in range(self.postgres_restarts):
            moment = 3.0 if nth == 0 else self.rng.uniform(5, expected)
            at = next((i for i, when in enumerate(fault_times) if when > moment), len(faults))
            fault_times.insert(at, moment)
            faults.insert(at, "postgres-sending" if nth == 0 else "postgres")
        created = 0
        extended: set[str] = set()
        # The credits run out once the work is well under way, and come back a while later.
        out_at = max(5.0, expected * 0.4)
        while True:
            elapsed = time.monotonic() - started
            if self.report.credits_window:
                self._credits(sim, elapsed, out_at)
                self._watch_hold(elapsed)
            # Feed new generations in waves so that work is in flight while faults happen.
            target = min(creates, int(creates * min(1.0, (elapsed + 2) / (expected * 0.6))))
            while created < target:
                created += 1
                gen = actions.create_generation(
                    user,
                    GenerationRequest(
                        user_prompt=f"chaos #{created}: {self._prompt()}",
                        aspect_ratio=self.rng.choice(["16:9", "9:16", "1:1"]),
                        **self._options(),
                    ),
                )
                self.ids.append(str(gen.pk))
            if len(extended) < extensions:
                for parent in Generation.objects.filter(
                    pk__in=self.ids, status=Status.COMPLETED, parent__isnull=True
                ).exclude(pk__in=extended)[: extensions - len(extended)]:
                    child = self._extend(parent, user, len(extended))
                    extended.add(str(parent.pk))
                    self.ids.append(str(child.pk))
            while fault_times and elapsed >= fault_times[0]:
                fault_times.pop(0)
                self._fault(faults.pop(0), broker, procs, sim)
            if (
                created >= creates
                and not faults
                and self._credits_settled()
                and self._settled(extended, extensions)
            ):
                return
            if elapsed > self.timeout:
                self.say("timed out: checking what is there")
                return
            time.sleep(0.5)

    def _options(self) -> dict[str, object]:
        """A luma run's new videos ask for a random model, resolution, duration and loop."""
        if self.provider != "luma":
            return {}
        return {
            "model": self.rng.choice(LUMA_MODELS),
            "resolution": self.rng.choice(LUMA_RESOLUTIONS),
            "duration": self.rng.choice(LUMA_DURATIONS),
            "loop": self.rng.random() < 0.3,
        }

    def _extend(self, parent: Generation, user, nth: int) -> Generation:
        """The ``nth`` extension: an extension (UmamiAI); in a luma run in turn an extension,
        a reverse extension (what came before ``parent``) or an interpolation from ``parent``
        into another finished video."""
        kind = LUMA_EXTENSION_KINDS[nth % 3] if self.provider == "luma" else Kind.EXTEND
        end = None
        if kind == Kind.INTERPOLATE:
            end = (
                Generation.objects.filter(
                    pk__in=self.ids, status=Status.COMPLETED, remote_id__isnull=False
                )
                .exclude(pk=parent.pk)
                .order_by("?")
                .first()
            )
            if end is None:
                kind = Kind.EXTEND
        words = {
            Kind.EXTEND: "and then it rains",
            Kind.REVERSE: "what came before",
            Kind.INTERPOLATE: f"on the way to {end.pk if end else ''}",
        }[kind]
        request = GenerationRequest(
            user_prompt=f"chaos {kind} of {parent.pk}: {words}",
            aspect_ratio=parent.aspect_ratio,
            **self._options(),
        )
        if kind == Kind.EXTEND:
            return actions.extend_generation(parent, user, request)
        return queue_from_sources(user, request, kind, parent, end)

    def _credits(self, sim, elapsed: float, out_at: float) -> None:
        """Out of credits at ``out_at``; back ``credits_window`` seconds after the account went
        on hold (the first POST refused may come a while later, when the capacity limits let
        one go), or after a minute more if it never does."""
        rep = self.report
        if rep.credits_out_at is None and elapsed >= out_at:
            sim.configure(credits=0)
            rep.credits_out_at = elapsed
            self.say(f"  credits run out ({elapsed:.0f} s)")
        elif (
            rep.credits_out_at is not None
            and rep.credits_back_at is None
            and elapsed >= (rep.hold_began_at or rep.credits_out_at + 60) + rep.credits_window
        ):
            sim.configure(credits=None)  # no balance: unlimited again
            rep.credits_back_at = elapsed
            self.say(f"  credits are back ({elapsed:.0f} s)")

    def _watch_hold(self, elapsed: float) -> None:
        """When the account went on hold and off it again, and how many jobs waited meanwhile."""
        rep = self.report
        held = hold.current() is not None
        if held:
            if rep.hold_began_at is None:
                rep.hold_began_at = elapsed
                self.say(f"  account on hold ({elapsed:.0f} s)")
            waiting = Generation.objects.filter(pk__in=self.ids, status=Status.QUEUED).count()
            rep.most_waiting_in_hold = max(rep.most_waiting_in_hold, waiting)
        elif rep.hold_began_at is not None and rep.hold_lifted_at is None:
            rep.hold_lifted_at = elapsed
            self.say(f"  hold lifted ({elapsed:.0f} s)")

    def _credits_settled(self) -> bool:
        """No window, or the credits are back and no hold is left."""
        rep = self.report
        if not rep.credits_window:
            return True
        return rep.credits_back_at is not None and hold.current() is None

    def _settled(self, extended: set[str], extensions: int) -> bool:
        """Every row finished (and copied), and every extension made that can be made."""
        mine = Generation.objects.filter(pk__in=self.ids)
        if mine.unsettled().exists():  # the same definition the pages poll by
            return False
        if self.provider == "luma" and self._second_looks_due(mine):
            return False  # a POST of unknown outcome Luma's list is to look at once more
        can_extend = (
            mine.filter(status=Status.COMPLETED, parent__isnull=True)
            .exclude(pk__in=extended)
            .exists()
        )
        return len(extended) >= extensions or not can_extend

    @staticmethod
    def _second_looks_due(mine) -> bool:
        """Rows waiting for the list's second look (``lookup.due_again``; only a provider with
        a list makes them: elsewhere a needs-attention row may keep an old retry time)."""
        return lookup.due_again(timezone.now() + timedelta(days=1)).filter(pk__in=mine).exists()

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

    def _fault(self, kind: str, broker: RedisServer, procs: CeleryProcesses, sim) -> None:
        if kind.startswith("postgres"):
            self._restart_postgres(sim, while_sending=kind == "postgres-sending")
        elif kind == "kill":
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

    def _restart_postgres(self, sim, *, while_sending: bool) -> None:
        """Stop the run's PostgreSQL for ``POSTGRES_DOWN_SECONDS`` and start it again.
        ``while_sending``: first make the simulator answer slowly and wait (up to a minute)
        until a row is sending, so its POST's answer comes while the database is away."""
        pg = self.postgres
        assert pg is not None
        sending = 0
        if while_sending:
            sim.configure(slow_rate=1.0, slow_seconds=SLOW_ANSWER_SECONDS)
            deadline = time.monotonic() + 60
            while not sending and time.monotonic() < deadline:
                sending = Generation.objects.filter(
                    pk__in=self.ids, status=Status.SUBMITTING, post_started_at__isnull=False
                ).count()
                if not sending:
                    time.sleep(0.05)
        connection.close()
        pg.stop()
        self.report.posts_out_at_restart += sending
        self.say(f"  stopped PostgreSQL ({sending} rows sending)")
        if while_sending:
            faults = LUMA_FAULTS if self.provider == "luma" else FAULTS
            sim.configure(slow_rate=faults["slow_rate"], slow_seconds=faults["slow_seconds"])
        time.sleep(POSTGRES_DOWN_SECONDS)
        pg.start()  # pg_ctl -w: back when it accepts connections
        self.report.postgres_restarts += 1
        self.say("  started PostgreSQL again")

    # --- the check ------------------------------------------------------------------------------
    def _check(self, sim, media: Path, journal_dir: Path) -> None:
        rep = self.report
        rows = list(Generation.objects.filter(pk__in=self.ids))
        if self.postgres_restarts:  # the run's own database: every answer in it is the run's
            rep.journalled = StatusEvent.objects.filter(note__contains=lookup.JOURNAL_NOTE).count()
            rep.journal_left = sum(
                len(path.read_text().splitlines())
                for path in journal_dir.glob(f"*{journal.SUFFIX}*")
            )
        full = sim.ledger()
        ledger = full["posts"]
        rep.upstream_faults = dict(full.get("faults", {}))
        rep.refused_for_limits = rep.upstream_faults.get("over_rate", 0) + rep.upstream_faults.get(
            "over_running", 0
        )
        rep.max_running = int(full.get("max_unfinished", 0))
        rep.max_posts_in_60s = most_in_window(full.get("post_times", []))
        if rep.credits_window:
            rep.held_refusals = StatusEvent.objects.filter(
                generation_id__in=self.ids, note__startswith="account on hold"
            ).count()
            rep.still_on_hold = hold.current() is not None
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
                if CREDITS_REFUSED in row.error.lower():
                    rep.failed_for_credits += 1
                if row.error_code == 429:
                    rep.failed_for_rate_limits += 1
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
        if self.provider == "luma":
            self._check_luma(rows, full)
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

    def _check_luma(self, rows: list[Generation], full: dict) -> None:
        """Kinds, the list's decisions (from the rows' status notes), the bodies the simulator
        received (each against its row) and the GETs per poll interval."""
        rep = self.report
        for row in rows:
            rep.by_kind[row.kind] += 1
            if row.status == Status.COMPLETED:
                rep.completed_by_kind[row.kind] += 1
        events = StatusEvent.objects.filter(generation_id__in=[row.pk for row in rows])
        rep.list_found = events.filter(note__startswith=lookup.FOUND_NOTE).count()
        rep.list_nothing = events.filter(note__startswith=lookup.NOTHING_PREFIX).count()
        rep.list_left = events.filter(note__startswith=lookup.LEFT_NOTE).count()
        rep.list_pending = (
            lookup.due_again(timezone.now() + timedelta(days=1))
            .filter(pk__in=[row.pk for row in rows])
            .count()
        )
        # Each POST of unknown outcome (a read time-out or 5xx on it, or a worker killed while
        # sending) ends in one of these: decided by the first look (found, nothing) or the
        # second (found, nothing, left), or still waiting for the second.
        rep.ambiguous_posts = rep.list_found + rep.list_nothing + rep.list_left + rep.list_pending
        by_prompt: dict[str, list[dict]] = {}
        for post in full["posts"]:
            by_prompt.setdefault(post["user_prompt"], []).append(post)
        for row in rows:
            for post in by_prompt.get(row.user_prompt, []):
                rep.bodies_checked += 1
                wrong = body_mismatch(row, post)
                if wrong:
                    rep.bodies_bad.append(f"{row.pk} ({row.kind}): {wrong}")
        times = full.get("poll_times", [])
        rep.polls = len(times)
        rep.max_polls_in_interval = most_in_interval(times, rep.poll_interval)
        windows = Counter(int(moment // rep.poll_interval) for moment in times)
        rep.max_polls_in_two_intervals = max(
            (windows[w] + windows.get(w + 1, 0) for w in windows), default=0
        )
        rep.over_budget = sorted(
            (window * rep.poll_interval, n) for window, n in windows.items() if n > rep.poll_budget
        )


def queue_from_sources(
    user, request: GenerationRequest, kind: str, parent: Generation, end: Generation | None
) -> Generation:
    """Queue a reverse extension of ``parent`` or an interpolation from ``parent`` into ``end``
    as ``actions.create_generations`` queues an extension: the sources' upstream ids copied onto
    the row, the wake-up sent after the commit. (The pages' own action for these kinds is on
    another branch; this sets the columns directly.)"""
    with transaction.atomic():
        gen = Generation.objects.create(
            created_by=user,
            kind=kind,
            parent=parent,
            parent_remote_id=parent.remote_id or "",
            end_parent=end,
            end_parent_remote_id=(end.remote_id or "") if end else "",
            status=Status.QUEUED,
            enqueued_at=timezone.now(),
            **request.row_fields(),
        )
        StatusEvent.objects.create(
            generation=gen, at=gen.created_at, status=Status.QUEUED, note=f"chaos: {kind}"
        )
        tasks.wake_submit_on_commit(gen.pk)
    return gen


def expected_keyframes(row: Generation) -> dict | None:
    """The keyframes a row's POST must carry (the chaos run sends no images)."""

    def generation(remote_id: str) -> dict:
        return {"type": "generation", "id": remote_id}

    if row.kind == Kind.EXTEND:
        return {"frame0": generation(row.parent_remote_id)}
    if row.kind == Kind.REVERSE:
        return {"frame1": generation(row.parent_remote_id)}
    if row.kind == Kind.INTERPOLATE:
        return {
            "frame0": generation(row.parent_remote_id),
            "frame1": generation(row.end_parent_remote_id),
        }
    return None


def body_mismatch(row: Generation, post: dict) -> str:
    """What in the POST the simulator recorded differs from what the row asked ("" if
    nothing): model, resolution, duration, loop and keyframes."""
    wrong = []
    for name in ("model", "resolution", "duration"):
        asked = getattr(row, name) or LUMA_DEFAULTS[name]
        if post.get(name) != asked:
            wrong.append(f"{name} {post.get(name)!r} for {asked!r}")
    if bool(post.get("loop")) != row.loop:
        wrong.append(f"loop {post.get('loop')!r} for {row.loop!r}")
    keyframes = post.get("keyframes") or None
    if keyframes != expected_keyframes(row):
        wrong.append(f"keyframes {keyframes!r} for {expected_keyframes(row)!r}")
    return "; ".join(wrong)


def _reason(error: str) -> str:
    if error.startswith("Timed out"):
        return "timed out"
    if "gave up after" in error:
        return "gave up after repeated refusals"
    return error.split(".")[0] or "unknown"
