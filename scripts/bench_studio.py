#!/usr/bin/env python
"""What the studio's new work costs, each against a baseline timed in the same run (results in
docs/PERFORMANCE.md).

    createdb bench_studio
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_studio \\
        .venv/bin/python scripts/bench_studio.py [--rows 5000] [--rounds 7]

Without DATABASE_URL it runs on a temporary SQLite database. Videos are the simulator's real
H.264 MP4s (``simulator.media.render``), written to a temporary MEDIA_ROOT.

* **The live gallery's "nothing new?" poll** (``/generations/cards/`` with the page's live
  state, answered 204) against drawing the gallery's first page itself, with ``--rows``
  finished videos in the database: what 50 open galleries cost while nothing happens.
* **A frame as a keyframe** (``frames.frame_jpeg``: seek, decode to the exact frame, JPEG) for
  the first, a middle and the last frame, against decoding the whole clip (the naive way).
* **A chain's MP4** (``joining.join`` of three clips, packets copied) against copying the same
  bytes with ``shutil.copyfile`` (the least any join can cost).

Every figure is the median of ``--rounds`` rounds; the two sides of a pair alternate in each
round, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LIVE = re.compile(r'<div id="grid-live"[^>]*>(.*?)</div>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def pair(
    name: str, base_name: str, fn: Callable[[], object], base: Callable[[], object], rounds: int
) -> None:
    ours, theirs = [], []
    fn(), base()  # warm caches (templates, the decoder, the page cache) before timing
    for _ in range(rounds):
        ours.append(timed(fn))
        theirs.append(timed(base))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(
        f"  {name:<46} {a * 1000:9.2f} ms   {base_name:<34} {b * 1000:9.2f} ms   ratio {a / b:6.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000, help="finished videos in the database")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-studio-"))
    os.environ.setdefault("DEBUG", "True")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'db.sqlite3'}")
    os.environ["MEDIA_ROOT"] = str(tmp / "media")
    os.environ["REDIS_URL"] = "memory://"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import av
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from generations import frames, joining
    from generations.models import Generation, Heartbeat, Status
    from simulator.media import Scene, render

    try:
        call_command("migrate", verbosity=0)
        Generation.objects.all().delete()
        media = tmp / "media" / "videos"
        media.mkdir(parents=True)
        print(f"database: {connection.vendor}, {args.rows} finished videos, {args.rounds} rounds\n")

        # --- the live gallery's "nothing new?" ---------------------------------------------
        user = get_user_model().objects.create_user("bench", password="bench-pass-123")
        now = timezone.now()
        Generation.objects.bulk_create(
            [
                Generation(
                    created_by=user,
                    user_prompt=f"video {i} of a paper boat at dusk",
                    status=Status.COMPLETED,
                    completed_at=now - timezone.timedelta(seconds=i),
                    status_changed_at=now - timezone.timedelta(seconds=i),
                    remote_id=f"bench-{i}",
                )
                for i in range(args.rows)
            ],
            batch_size=1000,
        )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE generations_generation")
        for kind in ("worker", "beat"):  # no "no worker" banner: the page as people see it
            Heartbeat.record(kind, "bench", 1)
        client = Client()
        client.force_login(user)
        page = client.get("/").content.decode()
        found = LIVE.search(page)
        if not found:
            sys.exit("the gallery has no live state (#grid-live): nothing to poll")
        state = [(n, unescape(v)) for n, v in HIDDEN.findall(found.group(1))]
        headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "grid-watch"}

        def poll() -> None:
            response = client.get("/generations/cards/", dict(state), **headers)
            assert response.status_code == 204, response.status_code

        def gallery() -> None:
            assert client.get("/").status_code == 200

        print("live gallery")
        pair("poll, nothing new (204)", "the gallery's first page", poll, gallery, args.rounds * 3)

        # --- a frame as a keyframe -----------------------------------------------------------
        print("frames (a 5 s clip, 24 fps, as the simulator draws it)")
        path = media / "frames.mp4"
        render(Scene(prompt="a lantern over a lake", seconds=5.0), path, tmp / "t.jpg")
        info = frames.probe(str(path))

        def whole() -> None:
            with av.open(str(path)) as container:
                for _ in container.decode(container.streams.video[0]):
                    pass

        for where, index in (("first", 0), ("middle", info.frames // 2), ("last", None)):

            def one(index: int | None = index) -> None:
                frames.extract(str(path), index)  # not cached: the seek and decode every time

            label = f"{info.width}x{info.height}, the {where} frame"
            pair(label, "decoding the whole clip", one, whole, args.rounds)

        # --- a chain's MP4 -----------------------------------------------------------------
        print("chain join (3 clips of 5 s, 640x360)")
        clips = []
        for i in range(3):
            path = media / f"chain-{i}.mp4"
            render(Scene(prompt=f"part {i}", seconds=5.0, time_offset=5.0 * i), path, tmp / "t.jpg")
            clips.append(path)
        out = tmp / "joined.mp4"
        copy_to = tmp / "copied.mp4"
        total = sum(p.stat().st_size for p in clips)

        def join() -> None:
            joining.join(clips, out)

        def copy() -> None:
            with open(copy_to, "wb") as target:
                for clip in clips:
                    with open(clip, "rb") as source:
                        shutil.copyfileobj(source, target)

        pair(
            f"join, packets copied ({total / 1e6:.1f} MB)",
            "copying the same bytes",
            join,
            copy,
            args.rounds,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
