"""Keeping local copies: byte-identical, never half-written, and only from allowed places.

The misbehaving servers here are tiny real HTTP servers in the test: the simulator serves
honest files, and a lying Content-Length or a body cut short cannot be had from it.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from generations import fetch, pipeline
from generations.models import Generation, Status
from tests.conftest import wait_for
from tests.factories import in_progress_row, remote_create

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8


class _Handler(http.server.BaseHTTPRequestHandler):
    """One misbehaving upstream; each test sets the misbehaviour on the fixture's own subclass."""

    body = MP4_HEAD + b"x" * 5000
    declared: int | None = None
    ctype = "video/mp4"
    cut_after: int | None = None
    drip: float = 0.0  # seconds between 100-byte pieces of the body
    header_drip: float = 0.0  # seconds between the bytes of a header that never ends
    stall = False  # the headers, then not another byte
    pause: float = 0.0  # seconds before answering each request
    midway: Callable[[], None] | None = None  # called once half the body is sent
    gives_up_after = 10.0  # a slow sender stops by then, so a test of broken code ends too
    # Set per server by the fixture:
    stopping: threading.Event  # the test is over
    hung_up: threading.Event  # the client closed the connection while we were still sending

    def do_GET(self):
        self.started = time.monotonic()
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            self.hung_up.set()

    def _answer(self) -> None:
        if self.pause and not self._wait(self.pause):
            return
        if self.path.startswith("/hop/") and int(self.path[5:]) > 0:  # /hop/N: N redirects
            self.send_response(302)
            self.send_header("Location", f"/hop/{int(self.path[5:]) - 1}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.header_drip:
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp4\r\nX-Pad: ")
            while self._wait(self.header_drip):
                self.wfile.write(b"a")
                self.wfile.flush()
            return
        self.send_response(200)
        self.send_header("Content-Type", self.ctype)
        if self.declared != -1:  # -1: no Content-Length at all, the body ends at close
            self.send_header("Content-Length", str(self.declared or len(self.body)))
        else:
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()
        if self.stall:
            while self._wait(0.1):
                pass
            return
        data = self.body if self.cut_after is None else self.body[: self.cut_after]
        if self.drip:
            for start in range(0, len(data), 100):
                self.wfile.write(data[start : start + 100])
                self.wfile.flush()
                if not self._wait(self.drip):
                    return
            return
        if self.midway:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.midway()
            data = data[len(data) // 2 :]
        self.wfile.write(data)
        self.wfile.flush()
        if self.cut_after is not None:
            self.connection.close()

    def _wait(self, seconds: float) -> bool:
        """Pause; False once the client has hung up, the test is over or we give up."""
        if self.stopping.is_set() or time.monotonic() - self.started > self.gives_up_after:
            return False
        # The client sends nothing after its request: readable means it closed the connection.
        if select.select([self.connection], [], [], seconds)[0]:
            self.hung_up.set()
            return False
        return True

    def log_message(self, *args):
        pass


@pytest.fixture
def odd_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"stopping": threading.Event(), "hung_up": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v.mp4", handler
    handler.stopping.set()
    server.shutdown()
    server.server_close()


def _threads_and_sockets() -> tuple[set[threading.Thread], int]:
    """This process's threads and its number of open sockets (Linux's /proc)."""
    sockets = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            sockets += os.readlink(fd).startswith("socket:")
    return set(threading.enumerate()), sockets


def assert_nothing_left_behind(before: tuple[set[threading.Thread], int]) -> None:
    """No thread but the test server's, and no more sockets than before (once it is done)."""
    threads_before, sockets_before = before

    def tidy() -> bool:
        threads, sockets = _threads_and_sockets()
        new = [t for t in threads - threads_before if "process_request" not in t.name]
        return not new and sockets <= sockets_before

    wait_for(tidy, timeout=3, what="the download's threads and sockets to be gone")


def partial_files(media_root: Path) -> list[Path]:
    return list((media_root / ".partial").glob("*")) if (media_root / ".partial").exists() else []


def test_copy_is_byte_identical_to_the_upstream_file(db, sim, media_root):
    import requests

    remote = remote_create(sim, "copy me")
    sim.force_complete(remote["id"])
    row = in_progress_row(remote["id"])
    pipeline.poll_in_flight()
    assert pipeline.copy_assets(row.pk) == "copied"
    row.refresh_from_db()
    with row.video_file.open("rb") as fh:
        assert fh.read() == requests.get(row.video_url, timeout=10).content
    with row.thumbnail_file.open("rb") as fh:
        assert fh.read() == requests.get(row.thumbnail_url, timeout=10).content
    assert row.video_bytes == row.video_file.size
    assert pipeline.copy_assets(row.pk) == "not-claimed"  # idempotent


def test_body_cut_short_leaves_no_file(db, odd_server, media_root, settings):
    url, handler = odd_server
    handler.cut_after = 1000
    with pytest.raises(fetch.FetchError):
        fetch.download_to_storage(url, "videos/cut.mp4", fetch.video_kind())
    assert not default_storage.exists("videos/cut.mp4")
    assert partial_files(media_root) == []


def test_size_cap_holds_without_a_content_length(db, odd_server, media_root, settings):
    url, handler = odd_server
    settings.LUMA_MAX_VIDEO_BYTES = 2000
    handler.declared = -1  # no length announced; 5 KB sent
    handler.body = MP4_HEAD + b"x" * 5000
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to_storage(url, "videos/big.mp4", fetch.video_kind())
    assert err.value.permanent
    assert not default_storage.exists("videos/big.mp4")
    assert partial_files(media_root) == []


def test_wrong_content_type_is_refused(db, odd_server):
    url, handler = odd_server
    handler.ctype = "text/html"
    with pytest.raises(fetch.FetchError, match="content type"):
        fetch.download_to_storage(url, "videos/html.mp4", fetch.video_kind())


def test_body_that_is_not_a_video_is_refused(db, odd_server):
    url, handler = odd_server
    handler.body = b"<html>not a video</html>" * 10
    with pytest.raises(fetch.FetchError, match="expected kind"):
        fetch.download_to_storage(url, "videos/fake.mp4", fetch.video_kind())
    assert not default_storage.exists("videos/fake.mp4")


def test_declared_size_over_the_cap_is_refused_before_reading(db, odd_server, settings):
    url, _handler = odd_server
    settings.LUMA_MAX_VIDEO_BYTES = 2000
    with pytest.raises(fetch.FetchError, match="larger than allowed"):
        fetch.download_to_storage(url, "videos/big2.mp4", fetch.video_kind())


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/v.mp4",
        "http://user:pw@example.com/v.mp4",
        "http://127.0.0.1:1/v.mp4",
        "http://10.0.0.5/v.mp4",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/v.mp4",
        "http://localhost/v.mp4",
    ],
)
def test_downloads_refuse_private_and_odd_urls_outside_demo_mode(settings, url):
    settings.LUMA_DEMO_MODE = False
    settings.LUMA_API_BASE_URL = "https://api.umamiai.xyz/v1"
    with pytest.raises(fetch.FetchError) as err:
        fetch.check_url(url)
    assert err.value.permanent


def test_the_configured_upstream_origin_may_be_private(settings, odd_server, db):
    """Its scheme, host and port: another port of the same host is refused (see
    tests/test_security_ssrf.py)."""
    url, _ = odd_server
    settings.LUMA_DEMO_MODE = False
    settings.LUMA_API_BASE_URL = url.replace("/v.mp4", "/v1")
    name, size = fetch.download_to_storage(url, "videos/ok.mp4", fetch.video_kind())
    assert size == len(_Handler.body)
    assert default_storage.exists(name)


def test_failed_copy_is_retried_later_and_the_video_stays_viewable(db, settings, odd_server):
    url, handler = odd_server
    handler.cut_after = 100
    gen = Generation.objects.create(
        user_prompt="x",
        status=Status.COMPLETED,
        video_url=url,
        remote_id="r-1",
        assets_next_at="2000-01-01T00:00:00Z",
    )
    assert pipeline.copy_assets(gen.pk) == "retry"
    gen.refresh_from_db()
    assert gen.assets_next_at is not None and gen.asset_error
    assert gen.display_video_url == url  # the gallery falls back to the upstream's URL


def test_a_download_that_drips_is_cut_off_at_the_time_cap(db, odd_server, media_root, settings):
    url, handler = odd_server
    handler.drip = 0.05  # ~5 s for the whole body, each read well within its time-out
    settings.LUMA_DOWNLOAD_TIMEOUT = 1
    started = time.monotonic()
    with pytest.raises(fetch.FetchError, match="took longer"):
        fetch.download_to_storage(url, "videos/slow.mp4", fetch.video_kind())
    assert time.monotonic() - started < 3
    assert not default_storage.exists("videos/slow.mp4")
    assert partial_files(media_root) == []


SLOW_SENDERS = {
    "a 1 MiB body trickled at 2 KB/s": {"body": MP4_HEAD + b"x" * 2**20, "drip": 0.05},
    "headers trickled a byte at a time": {"header_drip": 0.05},
    "headers and then silence": {"stall": True},
    "five redirects of 0.8 s each": {"pause": 0.8},
}


@pytest.mark.parametrize("sender", SLOW_SENDERS)
def test_the_time_cap_holds_whatever_the_sender_does(db, odd_server, media_root, settings, sender):
    url, handler = odd_server
    for attr, value in SLOW_SENDERS[sender].items():
        setattr(handler, attr, value)
    if handler.pause:
        url = url.replace("/v.mp4", f"/hop/{fetch.MAX_REDIRECTS}")
    settings.LUMA_DOWNLOAD_TIMEOUT = 1
    before = _threads_and_sockets()
    started = time.monotonic()
    with pytest.raises(fetch.FetchError, match="took longer") as err:
        fetch.download_to_storage(url, "videos/capped.mp4", fetch.video_kind())
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"a 1 s cap held only after {elapsed:.1f} s"
    assert not err.value.permanent  # a slow upstream today may be quick tomorrow
    assert not default_storage.exists("videos/capped.mp4")
    assert partial_files(media_root) == []
    assert handler.hung_up.wait(3), "the client did not hang up"
    assert_nothing_left_behind(before)


def test_a_download_leaves_no_thread_or_socket_behind(db, odd_server, settings):
    url, _handler = odd_server
    settings.LUMA_DOWNLOAD_TIMEOUT = 300  # a watchdog left waiting would live for 5 minutes
    before = _threads_and_sockets()
    fetch.download_to_storage(url, "videos/tidy.mp4", fetch.video_kind())
    assert_nothing_left_behind(before)


def test_the_final_name_appears_only_once_the_download_is_complete(db, odd_server, media_root):
    url, handler = odd_server
    name = "videos/in-progress.mp4"
    handler.body = MP4_HEAD + b"x" * (3 * fetch.CHUNK)
    seen_midway: list[bool | None] = []

    def look() -> None:
        """Runs in the server, half-way through the body, once a whole chunk is on disk."""
        final = media_root / name
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for path in [final, *partial_files(media_root)]:
                try:
                    if path.stat().st_size >= fetch.CHUNK:
                        seen_midway.append(final.exists())
                        return
                except FileNotFoundError:
                    pass
            time.sleep(0.02)
        seen_midway.append(None)  # nothing was written: the test cannot tell

    handler.midway = staticmethod(look)
    if default_storage.exists(name):
        default_storage.delete(name)
    stored, size = fetch.download_to_storage(url, name, fetch.video_kind())
    assert seen_midway == [False], "the final name existed while the body was still arriving"
    assert stored == name and size == len(handler.body)
    with default_storage.open(name, "rb") as fh:
        assert fh.read() == handler.body
    assert partial_files(media_root) == []
    default_storage.delete(name)


def test_a_failed_download_leaves_an_earlier_good_copy_untouched(db, odd_server, media_root):
    url, handler = odd_server
    name = "videos/kept.mp4"
    if default_storage.exists(name):
        default_storage.delete(name)
    good = MP4_HEAD + b"the copy an earlier run kept"
    assert default_storage.save(name, ContentFile(good)) == name
    handler.body = MP4_HEAD + b"x" * (3 * fetch.CHUNK)
    handler.cut_after = fetch.CHUNK + 64 * 1024  # one whole chunk arrives, then the line drops
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to_storage(url, name, fetch.video_kind())
    assert not err.value.permanent
    with default_storage.open(name, "rb") as fh:
        assert fh.read() == good
    assert partial_files(media_root) == []
    default_storage.delete(name)
