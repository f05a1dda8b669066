"""``MEDIA_STORAGE=s3`` against a real S3-compatible server on loopback: moto's server mode
(``ThreadedMotoServer``, real HTTP, real S3 requests signed by boto3; moto is not AWS, see
docs/MEDIA.md). A worker and beat of the test's own run with the S3 settings: the pipeline
copies the simulator's video into the bucket byte for byte; a logged-in person is sent (302) to
a presigned URL that serves the very bytes and any Range of them; a stranger gets a 404, no
bytes and no address of the bucket; a live share link is sent there too, a revoked one is not.
And in Chromium the video plays from the presigned URL, for the studio and for a share link.

Marked ``pipeline`` (the slow tier, with the other tests that start processes)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
import redis
import requests
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.test import Client
from moto.server import ThreadedMotoServer
from pytest_django.live_server_helper import LiveServer

from devtools.chaos import publishing_to
from devtools.nginx_process import port_in
from devtools.processes import CeleryProcesses
from generations import actions, mediastore, shares
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from lumaweb.logs import RedactSecretsFilter
from simulator.media import Scene, render
from tests.chromium import launch
from tests.conftest import wait_for
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen

pytestmark = pytest.mark.pipeline

PORTS = (9450, 9499)  # this test's own range
BUCKET = "lumaweb-media-test"
KEY_ID, SECRET = "lumaweb-test-key", "lumaweb-test-secret-not-a-real-one"
TIMEOUT_MS = 60_000
# As tests/pages/test_share_browser.py: play muted, wait for data and a moving time.
PLAYS = """async () => {
    const v = document.querySelector('video');
    v.muted = true;
    await v.play();
    const start = performance.now();
    while (!(v.readyState >= 2 && v.currentTime > 0)) {
        if (performance.now() - start > 20000) break;
        await new Promise(r => requestAnimationFrame(r));
    }
    return {ready: v.readyState, t: v.currentTime, error: v.error && v.error.code,
            src: v.currentSrc};
}"""


class S3:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def env(self) -> dict[str, str]:
        return {
            "MEDIA_STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "MEDIA_URL_TTL": "120",
        }


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3]:
    port = port_in(*PORTS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3(f"http://127.0.0.1:{port}")
        s3.client.create_bucket(Bucket=BUCKET)
        yield s3
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3, settings) -> S3:
    """This process stores in the bucket and sends viewers there, as the worker does."""
    settings.MEDIA_STORAGE = "s3"
    settings.MEDIA_URL_TTL = 120
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_ENDPOINT_URL = s3_server.endpoint
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.AWS_ACCESS_KEY_ID = KEY_ID
    settings.AWS_SECRET_ACCESS_KEY = SECRET
    settings.AWS_S3_ADDRESSING_STYLE = "path"
    policy = django_settings.CONTENT_SECURITY_POLICY
    directives = dict(policy["DIRECTIVES"])
    for name in ("img-src", "media-src"):
        directives[name] = [*directives[name], s3_server.endpoint]
    settings.CONTENT_SECURITY_POLICY = {**policy, "DIRECTIVES": directives}
    # Last: a change of STORAGES makes default_storage again, from the settings above.
    settings.STORAGES = {
        **django_settings.STORAGES,
        "default": {"BACKEND": "generations.mediastore.S3MediaStorage"},
    }
    return s3_server


@pytest.fixture(autouse=True)
def _forget_throttle_counts() -> Iterator[None]:
    """The share links' rate counts this module's requests leave in Django's cache, which lives
    in the broker's Redis: a later test that checks the broker is empty must not find them (as
    tests/test_media_proxy.py)."""
    yield
    if not django_settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        return
    broker = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in broker.scan_iter(match=b"lumaweb-cache:*throttle:*"):
        broker.delete(key)


def bucket_location(response, s3: S3) -> str:
    assert response.status_code == 302, response
    location = response["Location"]
    assert location.startswith(f"{s3.endpoint}/{BUCKET}/"), location
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=120" in location
    assert response["Cache-Control"] == "private, no-store"
    return location


def no_bucket_in(response, s3: S3) -> None:
    assert response.status_code == 404
    assert "Location" not in response
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert s3.endpoint.encode() not in body and BUCKET.encode() not in body


def test_the_pipeline_copies_into_the_bucket_and_viewers_are_sent_to_presigned_urls(
    transactional_db, pipeline_env, spare_redis_url, tmp_path, s3, sim, settings
):
    env = {**pipeline_env, **s3.env(), "REDIS_URL": spare_redis_url}
    procs = CeleryProcesses(env, tmp_path)
    procs.start("worker-s3")
    procs.start("beat")
    try:
        alice = make_user("alice")
        with publishing_to(spare_redis_url):
            gen = actions.create_generation(
                alice, GenerationRequest(user_prompt="a lighthouse at dusk", aspect_ratio="16:9")
            )

            def copied() -> Generation | None:
                row = Generation.objects.get(pk=gen.pk)
                assert row.status not in (Status.FAILED, Status.NEEDS_ATTENTION), row.error
                return row if row.video_file and row.thumbnail_file else None

            gen = wait_for(copied, 90, "the job to complete and be copied into the bucket")
    finally:
        logs = procs.logs()
        procs.stop_all()
    assert SECRET not in logs  # never logged, whatever the worker said

    # --- in the bucket, byte for byte what the simulator serves; nothing on the local disk ------
    upstream = requests.get(gen.video_url, timeout=30).content
    stored = s3.read(gen.video_file.name)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(upstream).hexdigest()
    assert gen.video_bytes == len(upstream)
    assert s3.read(gen.thumbnail_file.name)[:3] == b"\xff\xd8\xff"
    local = Path(django_settings.MEDIA_ROOT)
    assert not (local / gen.video_file.name).exists()
    assert default_storage.url(gen.video_file.name) == f"/media/{gen.video_file.name}"

    # --- a logged-in person: a 302 to a presigned URL, which serves the bytes and any slice -----
    studio = Client()
    studio.force_login(alice)
    answer = studio.get(f"/media/{gen.video_file.name}")
    location = bucket_location(answer, s3)
    whole = requests.get(location, timeout=30)
    assert whole.status_code == 200 and whole.content == upstream
    part = requests.get(location, headers={"Range": "bytes=100-1099"}, timeout=30)
    assert part.status_code == 206
    assert part.content == upstream[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(upstream)}"
    poster = bucket_location(studio.get(f"/media/{gen.thumbnail_file.name}"), s3)
    assert requests.get(poster, timeout=30).content[:3] == b"\xff\xd8\xff"
    # The bucket itself gives nothing without a signature.
    bare = requests.get(f"{s3.endpoint}/{BUCKET}/{gen.video_file.name}", timeout=30)
    assert bare.status_code == 403 and upstream not in bare.content

    # --- a stranger: no bytes and no address --------------------------------------------------
    stranger = Client()
    no_bucket_in(stranger.get(f"/media/{gen.video_file.name}"), s3)
    no_bucket_in(stranger.get(f"/media/{gen.thumbnail_file.name}"), s3)
    no_bucket_in(stranger.get(f"/s/not-a-token/{gen.pk}/video.mp4"), s3)

    # --- a share link: sent to the bucket while it lives, not once revoked ----------------------
    link = shares.share_generation(alice, gen, shares.ShareRequest())
    shared = stranger.get(f"/s/{link.token}/{gen.pk}/video.mp4")
    assert shared["Referrer-Policy"] == "no-referrer"
    played = requests.get(bucket_location(shared, s3), headers={"Range": "bytes=0-99"}, timeout=30)
    assert played.status_code == 206 and played.content == upstream[:100]
    shares.revoke(alice, link)
    no_bucket_in(stranger.get(f"/s/{link.token}/{gen.pk}/video.mp4"), s3)


@pytest.fixture
def live_url(transactional_db, settings) -> Iterator[str]:
    """A live server whose /media/ is lumaweb's own view (pytest-django's would send
    MEDIA_ROOT's files itself, to anyone)."""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    server = LiveServer(f"127.0.0.1:{port_in(*PORTS)}", start=False)
    server.thread.static_handler = lambda media_files_handler: media_files_handler.application
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def browser():
    """Debian's chromium under Playwright (as tests/pages/conftest.py's), for the one test that
    drives it: DJANGO_ALLOW_ASYNC_UNSAFE must not outlive it (conftest checks)."""
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as pw:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = launch(pw)
        yield chromium
        chromium.close()


def stored_video(name: str, offset: float = 0.0) -> dict:
    """A real H.264 MP4 and its poster (the simulator's renderer), stored in the bucket."""
    folder = Path(tempfile.mkdtemp(prefix="lumaweb-s3-"))
    scene = Scene(prompt="A paper boat drifting at dusk", seconds=2.0, fps=12, time_offset=offset)
    render(scene, folder / "video.mp4", folder / "poster.jpg")
    fields = {}
    for field, local, key in (
        ("video_file", folder / "video.mp4", f"videos/{name}.mp4"),
        ("thumbnail_file", folder / "poster.jpg", f"thumbnails/{name}.jpg"),
    ):
        with local.open("rb") as fh:
            fields[field] = default_storage.save(key, fh)
    return fields


@pytest.mark.browser
def test_the_video_plays_in_chromium_from_the_presigned_url(browser, s3, live_url):
    dana = make_user("dana", password="dana-pass-123")
    name = f"boat-{uuid.uuid4().hex[:8]}"
    gen = make_gen(user=dana, user_prompt="A paper boat drifting at dusk", **stored_video(name))
    assert not (Path(django_settings.MEDIA_ROOT) / "videos" / f"{name}.mp4").exists()

    studio = browser.new_context(viewport={"width": 1280, "height": 900})
    studio.set_default_timeout(TIMEOUT_MS)
    page = studio.new_page()
    refused: list[str] = []
    page.on("console", lambda msg: refused.append(msg.text) if msg.type == "error" else None)
    log_in(page, live_url, "dana", "dana-pass-123")
    page.goto(f"{live_url}/generations/{gen.pk}/")
    playing = page.evaluate(PLAYS)
    assert playing["ready"] >= 2 and playing["t"] > 0, (playing, refused)
    # The element asked lumaweb; the bytes came from the bucket.
    assert urlsplit(playing["src"]).path == f"/media/{gen.video_file.name}"
    studio.close()

    # A stranger with a share link: the public page's video plays from the bucket too.
    link = shares.share_generation(dana, gen, shares.ShareRequest())
    outside = browser.new_context(viewport={"width": 1280, "height": 900})
    outside.set_default_timeout(TIMEOUT_MS)
    public = outside.new_page()
    answer = public.goto(f"{live_url}/s/{link.token}/")
    assert answer is not None and answer.status == 200
    shared = public.evaluate(PLAYS)
    assert shared["ready"] >= 2 and shared["t"] > 0, shared
    # No login, no link: no bytes and no address.
    plain = outside.request.get(f"{live_url}/media/{gen.video_file.name}", max_redirects=0)
    assert plain.status == 404 and "location" not in plain.headers
    outside.close()


def test_frames_and_chain_joins_read_a_copy_streamed_from_the_bucket(s3, transactional_db):
    """What needs a file on this machine (a frame, a chain joined into one MP4) streams one
    from the bucket into MEDIA_ROOT/.s3-cache/; a one-clip chain's download is a presigned URL
    with the download's file name."""
    alice = make_user("alice")
    root = make_gen(user=alice, user_prompt="Part one", **stored_video("part-1"))
    leaf = make_gen(
        user=alice, parent=root, user_prompt="Part two", **stored_video("part-2", offset=2.0)
    )
    cache = Path(django_settings.MEDIA_ROOT) / ".s3-cache"
    studio = Client()
    studio.force_login(alice)

    frame = studio.get(f"/generations/{leaf.pk}/frame.jpg?t=1")
    assert frame.status_code == 200, frame.content[:200]
    assert frame.content[:3] == b"\xff\xd8\xff"
    assert (cache / leaf.video_file.name).read_bytes() == s3.read(leaf.video_file.name)

    joined = studio.get(f"/generations/{leaf.pk}/chain.mp4")
    assert joined.status_code == 200, joined
    assert joined["Content-Type"] == "video/mp4"
    data = b"".join(joined.streaming_content)
    assert data[4:8] == b"ftyp" and len(data) > len(s3.read(leaf.video_file.name))

    single = studio.get(f"/generations/{root.pk}/chain.mp4")
    location = bucket_location(single, s3)
    sent = requests.get(location, timeout=30)
    assert sent.status_code == 200 and sent.content == s3.read(root.video_file.name)
    assert sent.headers["Content-Disposition"].startswith("attachment; filename=")

    # A stranger: no frame, no join, no address.
    stranger = Client()
    for url in (f"/generations/{leaf.pk}/frame.jpg", f"/generations/{root.pk}/chain.mp4"):
        answer = stranger.get(url)
        assert answer.status_code in (302, 404) and s3.endpoint not in answer.get("Location", "")


def test_the_storage_secret_is_redacted_from_what_is_logged(settings):
    """Never logged: whatever a library or a traceback says, the log filter takes it out."""
    settings.AWS_SECRET_ACCESS_KEY = SECRET
    record = logging.LogRecord(
        "botocore", logging.WARNING, __file__, 1, "signing with %s failed", (SECRET,), None
    )
    assert RedactSecretsFilter().filter(record)
    assert SECRET not in record.getMessage() and "[redacted]" in record.getMessage()


def test_local_copies_not_read_for_the_cache_days_are_pruned(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.LUMA_CHAIN_CACHE_DAYS = 7
    cache = tmp_path / mediastore.CACHE_DIR / "videos"
    cache.mkdir(parents=True)
    old, fresh = cache / "old.mp4", cache / "fresh.mp4"
    old.write_bytes(b"old")
    fresh.write_bytes(b"fresh")
    now = time.time()
    os.utime(old, (now - 8 * 86400, now - 8 * 86400))
    assert mediastore.prune_cache(now) == 1
    assert not old.exists() and fresh.exists()
    assert mediastore.prune_cache(now + 10) == 0  # one scan per PRUNE_EVERY at most
    os.utime(fresh, (now - 8 * 86400, now - 8 * 86400))
    assert mediastore.prune_cache(now + mediastore.PRUNE_EVERY + 1) == 1
