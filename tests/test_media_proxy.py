"""lumaweb behind nginx with ``MEDIA_SERVE=accel``: Debian's nginx runs ``deploy/nginx.conf``
(devtools.nginx_process) in front of a live Django server, and every stored file goes through
it as a browser would ask for it. A logged-in person gets the very bytes (and the slice a Range
asks for), a share link's viewer too while the link lives; a stranger gets none, and nobody can
ask nginx for /protected-media/ directly; validators and 304s work through the proxy.

Marked ``pipeline`` (the slow tier, with the other tests that start processes): scripts/test
installs nginx for that tier."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings as django_settings
from django.test import Client
from pytest_django.live_server_helper import LiveServer

from devtools.nginx_process import NginxProcess, nginx_binary, port_in
from generations.models import ShareLink
from tests.factories import make_user
from tests.pages.conftest import make_gen
from tests.pages.test_chains import a_chain

pytestmark = pytest.mark.pipeline

# Ports of this test's own (the helper's range), whatever else runs on the machine.
PORTS = (8600, 8649)
VIDEO = os.urandom(300_000) + b"\x00" * 100_000  # bigger than one sendfile chunk or buffer
IMMUTABLE = "private, max-age=31536000, immutable"


class Proxy:
    def __init__(self, url: str, nginx: NginxProcess) -> None:
        self.url = url
        self.nginx = nginx


@pytest.fixture
def proxy(transactional_db, settings, media_root: Path) -> Iterator[Proxy]:
    if nginx_binary() is None:
        pytest.fail("nginx is not installed: apt-get install -y nginx-light (scripts/test does)")
    settings.MEDIA_SERVE = "accel"
    # nginx's workers are another user than lumaweb, as in compose (the official image's
    # `nginx`): the folder must be theirs to enter, every file theirs to read.
    media_root.chmod(0o755)
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    django_port = port_in(*PORTS)
    server = LiveServer(f"127.0.0.1:{django_port}", start=False)
    # Django's live server sends MEDIA_URL's files itself, to anyone (_MediaFilesHandler):
    # lumaweb's own /media/ view, as in production, instead.
    server.thread.static_handler = lambda media_files_handler: media_files_handler.application
    server.start()
    try:
        nginx = NginxProcess(
            upstream=f"127.0.0.1:{django_port}",
            port=port_in(django_port + 1, PORTS[1]),
            media_root=media_root,
        ).start()
        try:
            yield Proxy(nginx.url, nginx)
        finally:
            nginx.stop()
    finally:
        server.stop()
        _forget_throttle_counts()


def _forget_throttle_counts() -> None:
    """The share links' rate counts this test's requests left in Django's cache, which lives in
    the broker's Redis: a later test that checks the broker is empty must not find them."""
    if not django_settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        return
    broker = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in broker.scan_iter(match=b"lumaweb-cache:*throttle:*"):
        broker.delete(key)


def session_of(user) -> requests.Session:
    client = Client()
    client.force_login(user)
    browser = requests.Session()
    browser.cookies.set(
        django_settings.SESSION_COOKIE_NAME,
        client.cookies[django_settings.SESSION_COOKIE_NAME].value,
    )
    return browser


def put(relative: str, data: bytes = VIDEO) -> Path:
    path = Path(django_settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def get(session, url: str, **headers: str) -> requests.Response:
    return session.get(url, headers=headers, allow_redirects=False, timeout=30)


def test_a_logged_in_person_gets_the_very_bytes_and_any_slice_through_nginx(proxy):
    alice = session_of(make_user("alice"))
    name = f"videos/{uuid.uuid4().hex}.mp4"
    stat = put(name).stat()
    url = f"{proxy.url}/media/{name}"

    whole = get(alice, url)
    assert whole.status_code == 200, proxy.nginx.error_log()
    assert whole.content == VIDEO
    assert whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Content-Length"] == str(len(VIDEO))
    assert "X-Accel-Redirect" not in whole.headers  # nginx's business, never the browser's
    assert whole.headers["Cache-Control"] == IMMUTABLE
    assert whole.headers["ETag"] == f'"{int(stat.st_mtime):x}-{stat.st_size:x}"'
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"

    part = get(alice, url, Range="bytes=1000-200999")
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-200999/{len(VIDEO)}"
    assert part.content == VIDEO[1000:201000]
    tail = get(alice, url, Range="bytes=-500")
    assert tail.status_code == 206 and tail.content == VIDEO[-500:]

    # The browser's copy is current: 304 and no bytes, by ETag or by date.
    by_etag = get(alice, url, **{"If-None-Match": whole.headers["ETag"]})
    assert by_etag.status_code == 304 and by_etag.content == b""
    by_date = get(alice, url, **{"If-Modified-Since": whole.headers["Last-Modified"]})
    assert by_date.status_code == 304 and by_date.content == b""


def test_a_stranger_gets_no_bytes_and_protected_media_is_never_served_directly(proxy):
    alice = session_of(make_user("alice"))
    name = f"videos/{uuid.uuid4().hex}.mp4"
    put(name)
    stranger = requests.Session()
    refused = get(stranger, f"{proxy.url}/media/{name}")
    assert refused.status_code in (302, 403, 404)
    assert VIDEO[:1000] not in refused.content
    for who in (stranger, alice):
        for path in (
            f"/protected-media/{name}",
            f"/protected-media/chains/../{name}",
            "/protected-media/../../etc/passwd",
        ):
            direct = get(who, proxy.url + path)
            assert direct.status_code == 404, path
            assert VIDEO[:1000] not in direct.content
    # dotted or encoded paths out of MEDIA_ROOT: nothing, through Django or nginx
    for path in ("/media/..%2f..%2fetc/passwd", "/media/videos/%2e%2e/%2e%2e/etc/passwd"):
        response = get(alice, proxy.url + path)
        assert response.status_code in (400, 404), path
        assert b"root:" not in response.content


def test_an_odd_file_name_reaches_nginx_encoded_and_comes_back_whole(proxy):
    alice = session_of(make_user("alice"))
    data = b"\x89PNG" + os.urandom(5000)
    put("keyframes/odd name?%.png", data)
    response = get(alice, f"{proxy.url}/media/keyframes/odd%20name%3F%25.png")
    assert response.status_code == 200, proxy.nginx.error_log()
    assert response.content == data


def test_share_media_through_nginx_while_the_link_lives_and_not_after(proxy):
    alice = make_user("alice")
    name = f"videos/{uuid.uuid4().hex}.mp4"
    put(name)
    gen = make_gen(user=alice, video_file=name)
    link = ShareLink.objects.create(created_by=alice, generation=gen)
    viewer = requests.Session()
    url = f"{proxy.url}/s/{link.token}/{gen.pk}/video.mp4"
    shown = get(viewer, url)
    assert shown.status_code == 200, proxy.nginx.error_log()
    assert shown.content == VIDEO
    assert shown.headers["Cache-Control"] == "private, no-cache"
    assert shown.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert shown.headers["Referrer-Policy"] == "no-referrer"
    assert get(viewer, url, **{"If-None-Match": shown.headers["ETag"]}).status_code == 304
    assert get(viewer, url, Range="bytes=10-19").content == VIDEO[10:20]

    link.revoked_at = link.created_at
    link.save(update_fields=["revoked_at"])
    gone = get(viewer, url, **{"If-None-Match": shown.headers["ETag"]})
    assert gone.status_code == 404 and VIDEO[:1000] not in gone.content


def test_a_chains_join_through_nginx_keeps_lumawebs_etag(proxy):
    alice = make_user("alice")
    *_, leaf = a_chain(alice, 0.5, 0.5)
    browser = session_of(alice)
    url = f"{proxy.url}/generations/{leaf.pk}/chain.mp4"
    first = get(browser, url)
    assert first.status_code == 200, proxy.nginx.error_log()
    assert first.headers["Content-Disposition"].startswith("attachment; filename=")
    joined = sorted((Path(django_settings.MEDIA_ROOT) / "chains").glob(f"{leaf.pk.hex}-*.mp4"))
    assert len(joined) == 1 and first.content == joined[0].read_bytes()
    assert first.headers["ETag"] == f'"{joined[0].stem}"'  # not nginx's mtime-and-size
    again = get(browser, url)  # the join was touched: its mtime moved, its ETag did not
    assert again.headers["ETag"] == first.headers["ETag"] and again.content == first.content
    cached = get(browser, url, **{"If-None-Match": first.headers["ETag"]})
    assert cached.status_code == 304 and cached.content == b""
