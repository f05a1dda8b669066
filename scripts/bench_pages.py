#!/usr/bin/env python
"""Live pages under many viewers (issue 12, point 2): 50 people with the Jobs page open and 5
scrolling the gallery, against 100,000 rows, while a fake poller stamps ``last_polled_at`` on the
jobs in flight, as the real poller does. Served by gunicorn as docker-compose.yml configures it
(3 gthread workers, 8 threads each), this tree against a baseline tree (main's code, a second
``git worktree``) in the same run, the phases alternating. Results in docs/PERFORMANCE.md.

    createdb lw_bench
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/lw_bench REDIS_URL=redis://127.0.0.1:6379/6
    .venv/bin/python scripts/bench_pages.py seed --rows 100000
    git -C ../main worktree add --detach /tmp/lw-base main
    .venv/bin/python scripts/bench_pages.py run --baseline /tmp/lw-base --port 9300 [--seconds 60]

``seed`` migrates and fills the database (92 % finished, 1,000 in flight, failed, needing attention,
cancelled; a 20-extension chain; one rare word in one prompt). ``run`` migrates the database to
each tree's migrations before serving it (the baseline's schema is the baseline's own), starts
gunicorn with that tree's code, runs the load for ``--seconds`` and prints, per phase: the
dashboard polls' and the gallery pages' p50 / p99, requests served / offered (a viewer asks
every 2 s; a request still running at the next tick makes that tick lost, as htmx's polling
drops it), the bytes per answer, and the web processes' CPU (user + system of the gunicorn
master and workers, from /proc) per wall second. Also single-request timings of the pages the
issue measured (dashboard, search for a rare word, a deep gallery page, the chain's detail page).

The figures are from a shared 2-core machine with other work on it: read them as ratios
against the baseline measured beside them.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
POLL_EVERY = 2.0
RARE_WORD = "quixotically"
WORDS = [
    "fox",
    "snow",
    "dusk",
    "lake",
    "paper",
    "boat",
    "lantern",
    "city",
    "neon",
    "rain",
    "forest",
    "river",
    "mountain",
    "sunset",
    "ocean",
    "desert",
    "train",
    "bridge",
    "garden",
    "storm",
    "cloud",
    "night",
    "morning",
    "street",
    "market",
    "castle",
    "robot",
    "dragon",
    "flower",
    "meadow",
    "winter",
    "summer",
    "autumn",
    "spring",
    "cat",
    "dog",
    "horse",
    "bird",
    "whale",
    "glowing",
    "drifting",
    "slow",
    "cinematic",
    "aerial",
    "closeup",
    "wide",
    "golden",
    "misty",
    "quiet",
    "busy",
    "ancient",
    "modern",
    "tiny",
    "giant",
]
HX_GET = re.compile(r'<div id="(jobs-live|jobs)"[^>]*?hx-get="([^"]+)"', re.S)
MORE = re.compile(r'[?&]after=([^"&]+)')


SECRET = "bench-pages-not-secret"  # the servers' and this process's (the sessions it signs)


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["SECRET_KEY"] = SECRET
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()


# --- seed ---------------------------------------------------------------------------------------
def seed(rows: int) -> None:
    django_setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from generations.models import Generation, Status

    call_command("migrate", verbosity=0)  # a new database: this tree's schema
    user_model = get_user_model()
    people = []
    for n in range(5):
        person, _ = user_model.objects.get_or_create(username=f"bench{n}")
        person.set_password("bench-password")
        person.is_superuser = person.is_staff = n == 0
        person.save()
        people.append(person)
    rng = random.Random(12)
    shares = [
        (Status.COMPLETED, 0.92),
        (Status.FAILED, 0.04),
        (Status.CANCELLED, 0.009),
        (Status.NEEDS_ATTENTION, 0.001),
    ]
    counts = {status: int(rows * share) for status, share in shares}
    in_flight = rows - sum(counts.values())
    counts[Status.IN_PROGRESS] = in_flight * 6 // 10
    counts[Status.SUBMITTING] = in_flight // 10
    counts[Status.QUEUED] = in_flight - counts[Status.IN_PROGRESS] - counts[Status.SUBMITTING]
    Generation.objects.all().delete()
    batch: list[Generation] = []
    made = 0
    for status, count in counts.items():
        for _ in range(count):
            prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
            batch.append(
                Generation(
                    status=status,
                    user_prompt=prompt,
                    prompt=prompt if status == Status.COMPLETED else "",
                    created_by=people[made % len(people)],
                    aspect_ratio=rng.choice(["16:9", "9:16", "1:1"]),
                    remote_id=None,
                    error="it broke" if status == Status.FAILED else "",
                )
            )
            made += 1
            if len(batch) == 5000:
                Generation.objects.bulk_create(batch)
                batch.clear()
                print(f"  {made:,} rows", flush=True)
    Generation.objects.bulk_create(batch)
    table = Generation._meta.db_table
    with connection.cursor() as cursor:
        # Spread the times over 60 days (bulk_create stamped them all "now").
        cursor.execute(f"UPDATE {table} SET created_at = now() - random() * interval '60 days'")
        cursor.execute(
            f"UPDATE {table} SET status_changed_at = created_at + random() * interval '10 minutes',"
            " last_polled_at = CASE WHEN status IN ('queued', 'submitting', 'in_progress')"
            " THEN now() END"
        )
        cursor.execute(
            f"UPDATE {table} SET completed_at = status_changed_at WHERE status = 'completed'"
        )
        cursor.execute(
            f"UPDATE {table} SET user_prompt = user_prompt || ' {RARE_WORD}'"
            " WHERE id = (SELECT id FROM {table} WHERE status = 'completed' LIMIT 1)".format(
                table=table
            )
        )
        cursor.execute(f"ANALYZE {table}")
    # A chain of 20 extensions under one finished video.
    parent = Generation.objects.filter(status=Status.COMPLETED).order_by("completed_at").first()
    assert parent is not None
    for level in range(20):
        parent = Generation.objects.create(
            status=Status.COMPLETED,
            kind="extend",
            parent=parent,
            user_prompt=f"chain level {level + 1}",
            created_by=people[0],
            completed_at=parent.completed_at,
        )
    print(f"seeded {Generation.objects.count():,} rows: {counts}; chain leaf {parent.pk}")


# --- the servers --------------------------------------------------------------------------------
@dataclass
class Server:
    tree: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.tree,
            env={**self.env, "PYTHONPATH": str(self.tree)},
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "lumaweb.wsgi",
                "--chdir",
                str(self.tree),
                "--bind",
                f"127.0.0.1:{self.port}",
                # as docker-compose.yml's web service
                *("--workers", "3", "--worker-class", "gthread", "--threads", "8"),
                *("--timeout", "120", "--keep-alive", "75"),
                "--no-control-socket",  # gunicorn 27's, at a user-wide path by default
            ],
            cwd=self.tree,
            env={**self.env, "PYTHONPATH": str(self.tree)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.5)
        raise SystemExit(f"gunicorn on {self.port} did not start")

    def cpu_seconds(self) -> float:
        """User + system CPU of the master and its workers (clock ticks → seconds)."""
        assert self.process is not None
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(pid) for pid in children.read_text().split()]
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
            self.process = None


# --- the load -----------------------------------------------------------------------------------
@dataclass
class Tally:
    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    offered: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, response: requests.Response | None) -> None:
        with self.lock:
            if response is None or response.status_code >= 400:
                self.errors += 1
            else:
                self.times.append(seconds)
                self.sizes.append(len(response.content))
            if response is not None:
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1

    def line(self, name: str) -> str:
        if not self.times:
            return f"  {name}: nothing served ({self.errors} errors)"
        ordered = sorted(self.times)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"  {name}: p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
            f" served {len(ordered)}/{self.offered} offered ({self.errors} errors),"
            f" mean {statistics.mean(self.sizes) / 1000:.1f} KB,"
            f" answers {dict(sorted(self.statuses.items()))}"
        )


def sessions(n: int) -> list[str]:
    """Session cookies for the bench people (made in the database: no login throttling)."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    people = list(get_user_model().objects.filter(username__startswith="bench").order_by("pk"))
    keys = []
    for i in range(n):
        person = people[i % len(people)]
        store = SessionStore()
        store[SESSION_KEY] = str(person.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = person.get_session_auth_hash()
        store.create()
        keys.append(store.session_key or "")
    return keys


def viewer(base: str, cookie: str, stop: threading.Event, tally: Tally) -> None:
    """A browser with the Jobs page open: the page, then its poll every 2 s, taking the poll
    address (with its stamp) from each answer that brings a new one."""
    http = requests.Session()
    http.cookies.set("sessionid", cookie)
    try:
        page = http.get(base + "/jobs/", timeout=60).text
    except requests.RequestException as exc:
        print(f"  a viewer could not open the Jobs page: {exc.__class__.__name__}", flush=True)
        tally.add(0.0, None)
        return
    found = HX_GET.search(page)
    if found is None:
        print(f"  no poll on the Jobs page: {page[:200]!r}", flush=True)
        tally.add(0.0, None)
        return
    target, url = found.group(1), unescape(found.group(2))
    headers = {"HX-Request": "true", "HX-Target": target, "HX-Current-URL": base + "/jobs/"}
    next_tick = time.monotonic() + random.random() * POLL_EVERY
    while not stop.is_set():
        now = time.monotonic()
        if now < next_tick:
            stop.wait(next_tick - now)
            continue
        lost = int((now - next_tick) // POLL_EVERY)  # ticks that came while a request ran
        next_tick += (lost + 1) * POLL_EVERY
        with tally.lock:
            tally.offered += 1 + lost
        started = time.monotonic()
        try:
            response = http.get(base + url, headers=headers, timeout=60)
        except requests.RequestException:
            tally.add(time.monotonic() - started, None)
            continue
        tally.add(time.monotonic() - started, response)
        if response.status_code in (200, 286):
            again = HX_GET.search(response.text)
            if again is not None:
                url = unescape(again.group(2))


def scroller(
    base: str, cookie: str, starts: list[str], stop: threading.Event, tally: Tally
) -> None:
    """Someone scrolling the gallery from a deep place: a page, a second to look, the next."""
    http = requests.Session()
    http.cookies.set("sessionid", cookie)
    headers = {"HX-Request": "true", "HX-Target": "gallery-results"}
    after = random.choice(starts)
    while not stop.is_set():
        with tally.lock:
            tally.offered += 1
        started = time.monotonic()
        try:
            response = http.get(base + "/", params={"after": after}, headers=headers, timeout=60)
        except requests.RequestException:
            tally.add(time.monotonic() - started, None)
            continue
        tally.add(time.monotonic() - started, response)
        more = MORE.findall(response.text)
        after = unescape(more[-1]) if more else random.choice(starts)
        stop.wait(1.0)


POLLER_DONE = {"updates": 0, "moves": 0}  # what the fake poller managed (a loaded machine)


def fake_poller(stop: threading.Event, per_second: int, moves: int) -> None:
    """The poller's writes: ``last_polled_at`` on ``per_second`` in-flight rows every second (one
    UPDATE per row, as the poll round writes them); ``moves`` jobs a second finish (through the
    transitions, which bump this tree's stamp; the baseline reads the rows)."""
    from django.db import connection
    from django.utils import timezone

    from generations.models import Generation, Status
    from generations.pipeline import transitions

    logging.getLogger("generations").setLevel(logging.WARNING)  # a line per move otherwise
    flying = list(Generation.objects.filter(status=Status.IN_PROGRESS).values_list("pk", flat=True))
    while not stop.is_set():
        tick = time.monotonic()
        for pk in random.sample(flying, min(per_second, len(flying))):
            Generation.objects.filter(pk=pk).update(last_polled_at=timezone.now())
            POLLER_DONE["updates"] += 1
        for pk in random.sample(flying, min(moves, len(flying))):
            # Finished, then back in flight (so the in-flight count stays as seeded).
            transitions.move(pk, [Status.IN_PROGRESS], Status.COMPLETED, note="bench")
            transitions.move(pk, [Status.COMPLETED], Status.IN_PROGRESS, note="bench")
            POLLER_DONE["moves"] += 1
        stop.wait(max(0.0, 1.0 - (time.monotonic() - tick)))
    connection.close()


def deep_cursors() -> list[str]:
    from generations.models import Generation, Status
    from generations.queries import encode_moment

    rows = list(
        Generation.objects.filter(status=Status.COMPLETED)
        .order_by("-completed_at", "-pk")
        .values_list("completed_at", "pk")[30_000:60_000:500]
    )
    return [encode_moment(moment, pk) for moment, pk in rows]


def single_timings(base: str, cookie: str) -> str:
    from generations.models import Generation

    http = requests.Session()
    http.cookies.set("sessionid", cookie)
    leaf = Generation.objects.filter(user_prompt="chain level 20").values_list("pk", flat=True)
    deep = deep_cursors()[len(deep_cursors()) // 2]
    pages = {
        "dashboard": "/jobs/",
        "search, rare word": f"/?q={RARE_WORD}",
        "search, missing word": "/?q=zzyzzyva",
        "gallery page ~45,000 rows down": f"/?after={deep}",
        "detail of a 20-extension chain": f"/generations/{leaf.first()}/",
    }
    lines = []
    for name, path in pages.items():
        times, size = [], 0
        for _ in range(5):
            started = time.monotonic()
            response = http.get(base + path, timeout=60)
            times.append(time.monotonic() - started)
            size = len(response.content)
        lines.append(
            f"  {name}: median {statistics.median(times) * 1000:.0f} ms, {size / 1000:.0f} KB"
        )
    return "\n".join(lines)


def phase(
    name: str,
    server: Server,
    ours: Server,
    args: argparse.Namespace,
    cookies: list[str],
    starts: list[str],
) -> None:
    # The tree's own schema; migrated by this tree, which knows every migration (also how to
    # take its own back off for the baseline).
    migrations = sorted(p.stem for p in (server.tree / "generations" / "migrations").glob("0*.py"))
    ours.manage("migrate", "generations", migrations[-1], "--noinput")
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        single = single_timings(base, cookies[0])
        stop = threading.Event()
        dashboards, galleries = Tally(), Tally()
        threads = [
            threading.Thread(target=viewer, args=(base, cookies[i], stop, dashboards))
            for i in range(args.viewers)
        ]
        threads += [
            threading.Thread(
                target=scroller, args=(base, cookies[i], starts, stop, galleries), daemon=True
            )
            for i in range(args.scrollers)
        ]
        poller = threading.Thread(target=fake_poller, args=(stop, args.polls, args.moves))
        poller.start()
        for thread in threads:
            thread.start()
        time.sleep(POLL_EVERY * 2)  # every viewer has its page: measure from here
        with dashboards.lock, galleries.lock:
            for tally in (dashboards, galleries):
                tally.times.clear(), tally.sizes.clear(), tally.statuses.clear()
                tally.offered = tally.errors = 0
        cpu0, wall0 = server.cpu_seconds(), time.monotonic()
        done0 = dict(POLLER_DONE)
        time.sleep(args.seconds)
        wall = time.monotonic() - wall0
        cpu = (server.cpu_seconds() - cpu0) / wall
        done = {key: (POLLER_DONE[key] - done0[key]) / wall for key in POLLER_DONE}
        stop.set()
        for thread in [*threads, poller]:
            thread.join(timeout=120)
        print(f"{name} ({server.tree}):")
        print(single)
        print(dashboards.line(f"{args.viewers} dashboards, polls"))
        print(galleries.line(f"{args.scrollers} gallery scrollers, pages"))
        print(f"  web CPU: {cpu:.2f} cores", flush=True)
        print(
            f"  fake poller: {done['updates']:.0f} last_polled_at UPDATEs/s,"
            f" {done['moves']:.1f} jobs finished (and back) per second",
            flush=True,
        )
    finally:
        server.stop()


def run(args: argparse.Namespace) -> None:
    django_setup()
    from django.db import connection

    cookies = sessions(max(args.viewers, args.scrollers))
    starts = deep_cursors()
    connection.close()
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": SECRET,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
    }
    ours = Server(ROOT, args.port, {**env, "STATIC_ROOT": tempfile.mkdtemp(prefix="bench-ours-")})
    base = Server(
        Path(args.baseline).resolve(),
        args.port + 1,
        {**env, "STATIC_ROOT": tempfile.mkdtemp(prefix="bench-base-")},
    )
    for server in (ours, base):
        server.manage("collectstatic", "--noinput")
    order = [("baseline (main)", base), ("this branch", ours)] * args.rounds
    for name, server in order:
        phase(name, server, ours, args, cookies, starts)
    ours.manage("migrate", "--noinput")  # leave the database on this tree's schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seeding = sub.add_parser("seed")
    seeding.add_argument("--rows", type=int, default=100_000)
    running = sub.add_parser("run")
    running.add_argument("--baseline", required=True, help="a worktree of main")
    running.add_argument("--port", type=int, default=9300)
    running.add_argument("--seconds", type=float, default=60)
    running.add_argument("--viewers", type=int, default=50)
    running.add_argument("--scrollers", type=int, default=5)
    running.add_argument("--polls", type=int, default=200, help="rows polled a second")
    running.add_argument("--moves", type=int, default=0, help="jobs finishing a second")
    running.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.command == "seed":
        seed(args.rows)
    else:
        run(args)


if __name__ == "__main__":
    main()
