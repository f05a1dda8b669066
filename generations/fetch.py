"""Safe downloads of finished videos and thumbnails into Django storage.

Only ``http(s)``; private, loopback and link-local addresses are refused (except the configured
upstream's own host, and anything in demo mode), checked before connecting *and* on the address
actually connected to, on every redirect hop (DNS rebinding). The body is streamed and counted
(``Content-Length`` may lie), its type checked, and the file lands in storage only when complete:
it is written to a temporary file first and moved into place.

``LUMA_DOWNLOAD_TIMEOUT`` caps the whole download, from the first connect to the last byte,
whatever the sender does: see ``_Deadline``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import tempfile
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection

MAX_REDIRECTS = 5
CHUNK = 256 * 1024


class FetchError(Exception):
    """A download failed. ``permanent`` says that trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Kind:
    """What a download must be: allowed content types, magic bytes and a size cap."""

    content_types: tuple[str, ...]
    magics: tuple[tuple[int, bytes], ...]
    max_bytes: int


def video_kind() -> Kind:
    return Kind(
        ("video/mp4", "video/quicktime", "application/octet-stream", "binary/octet-stream"),
        ((4, b"ftyp"),),
        settings.LUMA_MAX_VIDEO_BYTES,
    )


def image_kind() -> Kind:
    return Kind(
        ("image/jpeg", "image/png", "image/webp", "application/octet-stream"),
        ((0, b"\xff\xd8\xff"), (0, b"\x89PNG"), (8, b"WEBP")),
        settings.LUMA_MAX_IMAGE_BYTES,
    )


class _TempFile(File):
    """A finished temporary file: FileSystemStorage moves it into place (atomic rename)."""

    def temporary_file_path(self) -> str:
        assert self.file is not None  # made from an open file
        return str(self.file.name)


def _trusted_hosts() -> set[str]:
    host = urlsplit(settings.LUMA_API_BASE_URL).hostname
    return {host.lower()} if host else set()


def address_is_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def check_url(url: str, *, allow_private: bool | None = None) -> None:
    """Refuse what we must never fetch; resolves the host and checks every address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(
            f"Only http(s) URLs can be fetched, not {parts.scheme or 'this'!r}", permanent=True
        )
    if parts.username or parts.password:
        raise FetchError("URLs with credentials are not fetched", permanent=True)
    if _private_allowed(parts.hostname, allow_private):
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"Cannot resolve {parts.hostname}") from exc
    for info in infos:
        if not address_is_public(str(info[4][0])):
            raise FetchError(f"{parts.hostname} is a private address", permanent=True)


def _private_allowed(host: str, allow_private: bool | None) -> bool:
    if allow_private is not None:
        return allow_private
    return settings.LUMA_DEMO_MODE or host.lower() in _trusted_hosts()


def _peer_ip(response: requests.Response) -> str | None:
    """The address the response actually came from (needs stream=True)."""
    try:
        sock = response.raw.connection.sock  # type: ignore[union-attr]  # None: caught below
        return str(sock.getpeername()[0])
    except AttributeError:
        return None
    except OSError:
        return None


class _Deadline:
    """The end of one download's time budget, enforced by a watchdog.

    A socket time-out bounds each read, not the sum of them: a sender that trickles a byte now
    and then (in the headers or the body, or over a chain of redirects) never trips it, and
    would hold a worker slot that submits and polls share for as long as it likes. So a timer
    thread shuts down every socket of the download when the budget runs out; whatever read is
    blocked then returns at once (end of file or an error) and the download fails with the
    retryable "took longer" error. Each socket is registered as soon as it is connected (see
    ``_WatchedHTTPConnection``), before TLS and before a byte of the request, so slow
    handshakes and slow headers are covered too. What it cannot interrupt: a name lookup
    (bounded by the resolver's own time-out) and a connect (bounded by a connect time-out no
    longer than the time left); the budget is checked again after each.

    The watchdog keeps a duplicate of each socket (``dup()``): TLS wrapping detaches the
    original socket object, and a duplicate shuts down the same connection whatever object
    urllib3 holds by then. The duplicates keep their connections open until the download's
    ``with`` block ends, which also stops the timer: nothing outlives the download.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.name = "download-deadline"
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        self._timer.join()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()

    def remaining(self) -> float:
        """Seconds left; raises the time-cap error when there are none."""
        self.check()
        return self.ends - time.monotonic()

    def check(self) -> None:
        """Raise the retryable time-cap error if the budget is spent."""
        if self.expired or time.monotonic() >= self.ends:
            raise FetchError(f"The download took longer than {self.seconds:.0f} s")

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            watched = sock.dup()
            self._socks.append(watched)
            if self.expired:  # connected after the end: cut it at once
                _shut(watched)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the other side may have closed it already
        sock.shutdown(socket.SHUT_RDWR)


# The deadline of the download running in this thread (or context): the connection classes
# below cannot be handed it through urllib3's pool keyword arguments.
_current_deadline: ContextVar[_Deadline | None] = ContextVar("download_deadline", default=None)


def _watch_new_socket(sock: socket.socket) -> socket.socket:
    deadline = _current_deadline.get()
    if deadline is not None:
        deadline.watch(sock)
    return sock


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _watch_new_socket(super()._new_conn())


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _watch_new_socket(super()._new_conn())


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(HTTPAdapter):
    """Opens every connection, direct or through an HTTP proxy, with the classes above.

    A SOCKS proxy keeps its own connection classes: there only the per-read time-out and the
    check after each chunk hold the cap.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def _open(
    session: requests.Session, url: str, kind: Kind, deadline: _Deadline
) -> requests.Response:
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url)
        left = deadline.remaining()  # after the name lookup, which nothing can interrupt
        try:
            response = session.get(
                url, stream=True, timeout=(min(5, left), min(60, left)), allow_redirects=False
            )
        except requests.RequestException as exc:
            deadline.check()  # the watchdog cut it: say so
            raise FetchError(f"Download failed: {type(exc).__name__}") from exc
        host = urlsplit(url).hostname or ""
        peer = _peer_ip(response)
        if peer and not _private_allowed(host, None) and not address_is_public(peer):
            response.close()
            raise FetchError(f"{host} connected to a private address", permanent=True)
        if response.is_redirect:
            location = response.headers.get("Location", "")
            response.close()
            url = urljoin(url, location)
            continue
        if response.status_code != 200:
            response.close()
            permanent = 400 <= response.status_code < 500 and response.status_code != 429
            raise FetchError(f"Download answered {response.status_code}", permanent=permanent)
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in kind.content_types:
            response.close()
            raise FetchError(f"Unexpected content type {ctype or 'none'!r}", permanent=True)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > kind.max_bytes:
            response.close()
            raise FetchError("The file is larger than allowed", permanent=True)
        return response
    raise FetchError("Too many redirects", permanent=True)


def download_to_storage(url: str, name: str, kind: Kind) -> tuple[str, int]:
    """Stream ``url`` into storage as ``name``; returns (stored name, size in bytes).

    The whole download, redirects included, takes at most ``LUMA_DOWNLOAD_TIMEOUT`` seconds
    (see ``_Deadline``); past that it fails with a retryable ``FetchError``.
    """
    with _Deadline(settings.LUMA_DOWNLOAD_TIMEOUT) as deadline, requests.Session() as session:
        for scheme in ("http://", "https://"):
            session.mount(scheme, _WatchedAdapter())
        token = _current_deadline.set(deadline)
        try:
            return _download(session, url, name, kind, deadline)
        finally:
            _current_deadline.reset(token)


def _download(
    session: requests.Session, url: str, name: str, kind: Kind, deadline: _Deadline
) -> tuple[str, int]:
    response = _open(session, url, kind, deadline)
    tmp_dir = os.path.join(settings.MEDIA_ROOT, ".partial")
    os.makedirs(tmp_dir, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
    size = 0
    head = b""
    try:
        with response, os.fdopen(fd, "wb") as out:
            try:
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > kind.max_bytes:
                        raise FetchError("The file is larger than allowed", permanent=True)
                    deadline.check()
                    if len(head) < 16:
                        head += chunk[:16]
                    out.write(chunk)
            except (requests.RequestException, OSError) as exc:
                deadline.check()  # the watchdog cut it: say so
                raise FetchError(f"Download broke off: {type(exc).__name__}") from exc
            # A body without a length just ends when the watchdog cuts it: not a whole file.
            deadline.check()
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise FetchError("The download was empty")
        if not any(head[off : off + len(magic)] == magic for off, magic in kind.magics):
            raise FetchError("The file is not of the expected kind", permanent=True)
        if default_storage.exists(name):
            default_storage.delete(name)  # a copy from an earlier, interrupted run
        with open(tmp_path, "rb") as fh:
            stored = default_storage.save(name, _TempFile(fh, name=tmp_path))
        return stored, size
    finally:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
