#!/usr/bin/env python
"""Stored files sent by Django (``MEDIA_SERVE=django``) against the same files sent by nginx
after Django's check (``MEDIA_SERVE=accel``, ``deploy/nginx.conf``), in one run (results in
docs/PERFORMANCE.md, "Media: Django vs the proxy"), and, unless ``--no-s3``, against the same
files in a bucket (``MEDIA_STORAGE=s3``: Django's check, then a 302 to a presigned URL that the
S3 server answers; results in docs/PERFORMANCE.md, "Media: the S3 way").

    .venv/bin/python scripts/bench_media.py [--seconds 2.5] [--rounds 2] [--port 8620] [--no-s3]

Two app servers on the same scratch SQLite database and MEDIA_ROOT: gunicorn from the venv
(gthread, as compose runs it, fewer workers) or, if it is missing, ``manage.py runserver``; the
output says which. One sends files itself; the other answers X-Accel-Redirect and Debian's nginx
(``devtools.nginx_process``) sends them. A logged-in client (a session made here) asks for:

* **thumbnails**: 40 KB JPEG-sized files, one request each, from 8 threads with keep-alive;
* **videos**: a 20 MB file asked as a browser's player does (``Range: bytes=0-``: a 206 of the
  rest of the file), read to the end by 4 threads at once.

The S3 server is moto's (``python -m moto.server``, its own process): a Python stand-in for S3
on this machine, not a real one. Its figures say what the redirect costs lumaweb (one short
answer per file, no byte of media) and how a mock in Python sends bytes; a real service (AWS,
MinIO, R2) sends them from other machines, at its own speed.

Each figure is the median of ``--rounds`` rounds; the two sides alternate in each round, so a
busy machine slows both alike. The client is Python (requests), on the same cores: it caps
both sides, so the ratios understate what nginx saves the server. Under a minute by default.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THUMBS = 20
THUMB_BYTES = 40_000
VIDEO_BYTES = 20_000_000


def wait_until_up(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            requests.get(url + "/healthz", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer on {url}")


def app_server(port: int, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    if gunicorn.exists():
        command = [
            str(gunicorn),
            "lumaweb.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--keep-alive",
            "75",
        ]
        kind = "gunicorn (2 workers x 4 threads, gthread)"
    else:
        command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        kind = "manage.py runserver (threaded)"
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115 (the child keeps it)
    )
    return proc, kind


def fill_bucket(env: dict[str, str], media: Path, names: list[str]) -> None:
    """The same files as MEDIA_ROOT's, in the bucket moto serves."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_S3_REGION_NAME"],
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket=env["AWS_STORAGE_BUCKET_NAME"])
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)  # moto still starting
    for name in names:
        client.upload_file(str(media / name), env["AWS_STORAGE_BUCKET_NAME"], name)


def sequential_ms(base: str, name: str, count: int = 200) -> str:
    """lumaweb's own answer for ``name``, not followed (with S3 the check and the presigning, no
    byte of media; else the check and the file): the median and p95 of ``count`` sequential
    requests, one client."""
    times = []
    with requests.Session() as session:
        session.cookies.update(COOKIES)
        for _ in range(count):
            started = time.perf_counter()
            response = session.get(f"{base}/media/{name}", allow_redirects=False, timeout=30)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code in (200, 302), response.status_code
    times.sort()
    return f"p50 {statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95)]:.1f} ms"


def presign_cpu(env: dict[str, str], count: int = 2000) -> str:
    """CPU time of ``mediastore.presigned_redirect`` alone (boto3's signing), per call: the
    median of 5 runs of ``count``. Nothing is sent: a presigned URL is made locally."""
    from django.test import override_settings

    from generations import mediastore

    with override_settings(
        MEDIA_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME=env["AWS_STORAGE_BUCKET_NAME"],
        AWS_S3_ENDPOINT_URL=env["AWS_S3_ENDPOINT_URL"],
        AWS_S3_REGION_NAME=env["AWS_S3_REGION_NAME"],
        AWS_ACCESS_KEY_ID=env["AWS_ACCESS_KEY_ID"],
        AWS_SECRET_ACCESS_KEY=env["AWS_SECRET_ACCESS_KEY"],
        AWS_S3_ADDRESSING_STYLE="path",
        STORAGES={"default": {"BACKEND": "generations.mediastore.S3MediaStorage"}},
    ):
        mediastore.presigned_redirect("thumbnails/warm.jpg")  # the client is made once
        runs = []
        for _ in range(5):
            started = time.process_time()
            for n in range(count):
                mediastore.presigned_redirect(f"thumbnails/t{n}.jpg")
            runs.append((time.process_time() - started) / count * 1000)
    return f"{statistics.median(runs):.2f} ms of CPU each (median of 5 runs of {count})"


def load(
    threads: int, seconds: float, work: Callable[[requests.Session], int]
) -> tuple[float, float]:
    """Run ``work`` in a loop on ``threads`` sessions for ``seconds``: (requests/s, bytes/s)."""
    counts = [0] * threads
    sizes = [0] * threads
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with requests.Session() as session:
            session.cookies.update(COOKIES)
            while time.monotonic() < stop:
                sizes[i] += work(session)
                counts[i] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return sum(counts) / elapsed, sum(sizes) / elapsed


COOKIES: dict[str, str] = {}
STARTED = time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=8620, help="first of five ports")
    parser.add_argument("--no-s3", action="store_true", help="skip MEDIA_STORAGE=s3 (moto)")
    args = parser.parse_args()

    from devtools.nginx_process import NginxProcess, nginx_binary

    if nginx_binary() is None:
        raise SystemExit("nginx is not installed: apt-get install -y nginx-light")

    tmp = Path(tempfile.mkdtemp(prefix="bench-media-"))
    tmp.chmod(0o755)  # nginx's workers are another user (devtools.nginx_process)
    media = tmp / "media"
    env = {
        **os.environ,
        "DEBUG": "False",
        "SECRET_KEY": "bench-media-only",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "False",
        "SESSION_COOKIE_SECURE": "False",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "MEDIA_ROOT": str(media),
        "REDIS_URL": "memory://",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "lumaweb.settings",
    }
    os.environ.update({k: v for k, v in env.items() if k != "MEDIA_SERVE"})
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from tests.factories import make_user

    procs: list[subprocess.Popen[bytes]] = []
    nginx = None
    try:
        # Started first: their start-up overlaps the migration and the files.
        plain, kind = app_server(args.port, {**env, "MEDIA_SERVE": "django"}, tmp / "plain.log")
        procs.append(plain)
        accel, _ = app_server(args.port + 1, {**env, "MEDIA_SERVE": "accel"}, tmp / "accel.log")
        procs.append(accel)
        s3_env = {
            **env,
            "MEDIA_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": "bench-media",
            "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{args.port + 4}",
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
        }
        if not args.no_s3:
            moto = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(args.port + 4)],
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(moto)
            bucketed, _ = app_server(args.port + 3, s3_env, tmp / "s3.log")
            procs.append(bucketed)
        call_command("migrate", verbosity=0)
        user = make_user("bench")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        COOKIES[settings.SESSION_COOKIE_NAME] = session.session_key or ""

        (media / "thumbnails").mkdir(parents=True)
        (media / "videos").mkdir(parents=True)
        thumbs = [f"thumbnails/t{n}.jpg" for n in range(THUMBS)]
        for name in thumbs:
            (media / name).write_bytes(b"\xff\xd8\xff" + os.urandom(THUMB_BYTES - 3))
        video = "videos/v.mp4"
        (media / video).write_bytes(os.urandom(VIDEO_BYTES))
        django_url = f"http://127.0.0.1:{args.port}"
        wait_until_up(django_url, plain, kind)
        wait_until_up(f"http://127.0.0.1:{args.port + 1}", accel, kind)
        nginx = NginxProcess(
            upstream=f"127.0.0.1:{args.port + 1}", port=args.port + 2, media_root=media
        ).start()
        sides = {"Django": django_url, "nginx": nginx.url}
        if not args.no_s3:
            fill_bucket(s3_env, media, [*thumbs, video])
            sides["S3"] = f"http://127.0.0.1:{args.port + 3}"
            wait_until_up(sides["S3"], bucketed, kind)

        def thumb(base: str) -> Callable[[requests.Session], int]:
            def get(session: requests.Session) -> int:
                response = session.get(f"{base}/media/{random.choice(thumbs)}", timeout=30)
                assert response.status_code == 200, response.status_code
                assert len(response.history) == (base == sides.get("S3")), response.history
                return len(response.content)

            return get

        def movie(base: str) -> Callable[[requests.Session], int]:
            def get(session: requests.Session) -> int:
                size = 0
                with session.get(
                    f"{base}/media/{video}", headers={"Range": "bytes=0-"}, stream=True, timeout=60
                ) as response:
                    assert response.status_code == 206, response.status_code
                    for chunk in response.iter_content(1 << 20):
                        size += len(chunk)
                assert size == VIDEO_BYTES, size
                return size

            return get

        with requests.Session() as warm:  # the same bytes both ways, and warm
            warm.cookies.update(COOKIES)
            for side, base in sides.items():
                assert thumb(base)(warm) == THUMB_BYTES, side
                assert movie(base)(warm) == VIDEO_BYTES, side
        print(f"set up in {time.monotonic() - STARTED:.0f} s", file=sys.stderr)
        results: dict[str, dict[str, list[float]]] = {
            side: {"thumbs": [], "video": []} for side in sides
        }
        for _ in range(args.rounds):
            for side, base in sides.items():
                results[side]["thumbs"].append(load(8, args.seconds, thumb(base))[0])
                results[side]["video"].append(load(4, args.seconds, movie(base))[1] / 1e6)
        median = {
            side: {what: statistics.median(values) for what, values in found.items()}
            for side, found in results.items()
        }
        print(f"app server: {kind}; client: Python requests on the same machine")
        print(f"median of {args.rounds} rounds of {args.seconds:g} s each")
        s3 = "S3" in median
        head = "| measure | Django sends (MEDIA_SERVE=django) | nginx sends (accel) | ratio |"
        print(head + (" 302 + moto sends (MEDIA_STORAGE=s3) | ratio |" if s3 else ""))
        print("|---|---|---|---|" + ("---|---|" if s3 else ""))
        for what, label, unit in (
            ("thumbs", "thumbnails (40 KB), 8 clients", "/s"),
            ("video", "video (20 MB, `Range: bytes=0-`), 4 clients", " MB/s"),
        ):
            ours, theirs = median["nginx"][what], median["Django"][what]
            row = f"| {label} | {theirs:.0f}{unit} | {ours:.0f}{unit} | x{ours / theirs:.2f} |"
            if s3:
                bucket = median["S3"][what]
                row += f" {bucket:.0f}{unit} | x{bucket / theirs:.2f} |"
            print(row)
        if s3:
            # One client, one request at a time: what each answer costs the web process.
            for side, label in (("Django", "a thumbnail sent by Django"), ("S3", "the 302")):
                print(f"{label}, alone: {sequential_ms(sides[side], thumbs[0])}")
            print(f"a presigned 302 made in this process: {presign_cpu(s3_env)}")
    finally:
        if nginx is not None:
            nginx.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
