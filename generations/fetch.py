"""Safe downloads of finished videos and thumbnails into Django storage.

Only ``http(s)``. Outside demo mode, an address that is not public is refused (loopback,
private, link-local, and the IPv6 forms that carry such an IPv4 address: see
``address_is_public``), except on the configured upstream's own origin (scheme, host *and*
port of ``LUMA_API_BASE_URL``). Each connection resolves its host once, checks every address
and connects only to those it checked (``_connect_pinned``), on every redirect hop: a name that
answers differently the second time (DNS rebinding) never gets a byte sent to the new address.
The body is streamed and counted (``Content-Length`` may lie), its type checked, and the file
lands in storage only when complete: it is written to a temporary file first and moved into
place (``MEDIA_STORAGE=s3``: streamed from that file into the bucket, whose size is checked).

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
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

MAX_REDIRECTS = 5
CHUNK = 256 * 1024


# What a CDN answers for a link that has expired (or was signed for a while only): the file
# may well still be there under a fresh link, which the service hands out when asked again.
EXPIRED_LINK_STATUSES = (403, 404, 410)


class FetchError(Exception):
    """A download failed. ``permanent`` says that trying again cannot help; ``status_code`` is
    the HTTP status the download was answered with, if that was the failure."""

    def __init__(
        self, message: str, *, permanent: bool = False, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code

    @property
    def expired_link(self) -> bool:
        """The address itself is dead (403, 404, 410): the same URL will not work again, a
        fresh one from the service may."""
        return self.status_code in EXPIRED_LINK_STATUSES


class RefusedURL(FetchError):
    """The address itself is refused (its scheme, credentials, or where it leads): nothing was
    sent to it. Always permanent; and what lumaweb will not fetch it must not hand to a
    viewer's browser either (the copy step clears such a URL)."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message, permanent=True)
        self.reason = reason or message  # said without the host name: fit for any viewer


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


# --- which addresses are public ---------------------------------------------------------------
# IPv6 forms that carry an IPv4 address in their low 32 bits and that Python's table (3.11)
# calls global: connecting to one may reach that IPv4 address through a translator or tunnel.
_LOW32_CARRIERS = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated): ::127.0.0.1
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # SIIT IPv4-translated: ::ffff:0:a.b.c.d
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, the well-known prefix (RFC 6052)
)
# Refused whole. Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the
# operator's prefix length, so it cannot be read safely, and it only ever leads to a local
# translator. Teredo (2001::/32): reached through relays anyone may run, and its client address
# (obfuscated in the low bits) could be any IPv4 address; Python's table already calls it
# private, said here so that it never depends on the table.
_REFUSED_V6 = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("2001::/32"))


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address leads to, or None if it is not one."""
    if addr.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return addr.ipv4_mapped
    if addr.sixtofour is not None:  # 6to4, 2002::/16
        return addr.sixtofour
    if any(addr in net for net in _LOW32_CARRIERS):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def address_is_public(ip: str) -> bool:
    """Globally reachable unicast. An IPv6 transition address (IPv4-mapped, IPv4-compatible,
    SIIT, NAT64, 6to4) is judged by the IPv4 address it carries, which must be public:
    ``64:ff9b::7f00:1`` is 127.0.0.1 wherever a NAT64 gateway is, though Python's table calls
    it global. Local-use NAT64 and Teredo are never public (``_REFUSED_V6``)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        if any(addr in net for net in _REFUSED_V6):
            return False
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            return embedded.is_global and not embedded.is_multicast
    return addr.is_global and not addr.is_multicast


# --- resolving, and whose addresses may be private --------------------------------------------
def system_resolve(host: str, port: int) -> list[str]:
    """The machine's resolver: every address of ``host``, in its order, each once."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# Every look-up of a check or a download goes through this name. It is a seam for tests: DNS
# rebinding (a name answering differently from one look-up to the next) cannot be had from the
# system resolver on one machine.
resolve: Callable[[str, int], list[str]] = system_resolve


def _addresses(host: str, port: int) -> list[str]:
    """``host``'s addresses: an address literal is its own (no look-up), a name is resolved."""
    literal = host.strip("[]")
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(literal.split("%", 1)[0])
        return [literal]
    try:
        found = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise FetchError(f"Cannot resolve {host}") from exc
    if not found:
        raise FetchError(f"Cannot resolve {host}")
    return found


def _public_addresses(host: str, port: int) -> list[str]:
    """``host``'s addresses, all of them public: a name with any other one is refused whole."""
    found = _addresses(host, port)
    if not all(address_is_public(ip) for ip in found):
        raise RefusedURL(f"{host} is a private address", reason="its address is not public")
    return found


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    scheme = scheme.lower()
    return scheme, host.strip("[]").lower().rstrip("."), port or (443 if scheme == "https" else 80)


def _trusted_origin() -> tuple[str, str, int] | None:
    """The upstream's own origin, whose files may be on a private address (a local simulator,
    a service beside lumaweb): its scheme, host *and* port. Another port of the same host is
    another service, and is judged like any other address."""
    parts = urlsplit(settings.LUMA_API_BASE_URL)
    try:
        port = parts.port
    except ValueError:
        return None
    return _origin(parts.scheme, parts.hostname, port) if parts.hostname else None


# Set for the length of one webhook POST: its own rule (``WEBHOOK_ALLOW_PRIVATE``) replaces the
# downloads' (demo mode, the upstream's origin) on every connection it opens.
_private_rule: ContextVar[bool | None] = ContextVar("private_rule", default=None)


def _private_allowed(scheme: str, host: str, port: int | None) -> bool:
    rule = _private_rule.get()
    if rule is not None:
        return rule
    return bool(settings.LUMA_DEMO_MODE) or _origin(scheme, host, port) == _trusted_origin()


def check_url(url: str, *, allow_private: bool | None = None) -> None:
    """Refuse what we must never fetch; resolves the host and checks every address.

    ``allow_private`` None: private addresses only in demo mode or on the upstream's origin.
    A download checks again on each connection, on the very addresses it connects to.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port out of range raises here, not later)
    except ValueError:  # "http://[::1", a bracket left open: not a URL at all
        raise RefusedURL("This is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise RefusedURL(f"Only http(s) URLs can be fetched, not {parts.scheme or 'this'!r}")
    if parts.username or parts.password:
        raise RefusedURL("URLs with credentials are not fetched")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise RefusedURL("The URL's port is not a port") from None
    if allow_private is None:
        allow_private = _private_allowed(scheme, parts.hostname, port)
    if not allow_private:
        _public_addresses(parts.hostname, port)


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


def _connect_pinned(conn: HTTPConnection, scheme: str) -> socket.socket:
    """Open ``conn``'s socket to addresses checked here, never to a look-up of its own.

    urllib3 resolves the host again when it connects, after any check made before: a name can
    answer a public address to the check and 127.0.0.1 to the connection (DNS rebinding), and
    the internal service gets the request. So the connection resolves once, refuses the name
    if any address is not public (unless private ones are allowed for this origin), and
    connects to those addresses only. The host name stays the connection's own, so the Host
    header, the TLS server name and the certificate check are for the name, not the address.

    Never through a proxy (``_session``): the proxy would resolve the name itself, and the
    check here would not be about the address reached. Should one ever be configured, the
    connection is refused rather than made.
    """
    if conn.proxy is not None:
        raise NewConnectionError(conn, "Downloads and webhooks are never sent through a proxy")
    host, port = conn.host, conn.port
    if _private_allowed(scheme, host, port):
        addresses = _addresses(host, port)
    else:
        addresses = _public_addresses(host, port)
    deadline = _current_deadline.get()
    error: Exception | None = None
    for ip in addresses:
        if deadline is not None:
            deadline.check()  # several addresses, each up to the connect time-out
        try:
            return urllib3_connection.create_connection(
                (ip, port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError:
            error = ConnectTimeoutError(
                conn, f"Connection to {host} timed out. (connect timeout={conn.timeout})"
            )
        except OSError as exc:
            error = NewConnectionError(conn, f"Failed to establish a new connection: {exc}")
    assert error is not None  # there was an address, and it did not connect
    raise error


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _watch_new_socket(_connect_pinned(self, "http"))


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _watch_new_socket(_connect_pinned(self, "https"))


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(HTTPAdapter):
    """Opens every connection with the classes above; never a proxy's (see ``_session``)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise requests.exceptions.InvalidProxyURL(
            "Downloads and webhooks are never sent through a proxy"
        )


def _session() -> requests.Session:
    """A session for downloads and webhooks: every connection pinned and watched, and never
    through a proxy. A proxy resolves the name itself, so the address checked here would not
    be the one reached: ``HTTP(S)_PROXY`` and ``ALL_PROXY`` are ignored (``trust_env`` off,
    which also keeps ``.netrc`` credentials out of these requests). The CA bundle the
    environment names (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) is still used, as requests
    would use it."""
    session = requests.Session()
    session.trust_env = False
    session.proxies.clear()
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    for scheme in ("http://", "https://"):
        session.mount(scheme, _WatchedAdapter())
    return session


def _open(
    session: requests.Session, url: str, kind: Kind, deadline: _Deadline
) -> requests.Response:
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url)  # a clear refusal early; each connection checks its own addresses
        left = deadline.remaining()  # after the name lookup, which nothing can interrupt
        try:
            response = session.get(
                url, stream=True, timeout=(min(5, left), min(60, left)), allow_redirects=False
            )
        except requests.RequestException as exc:
            deadline.check()  # the watchdog cut it: say so
            raise FetchError(f"Download failed: {type(exc).__name__}") from exc
        if response.is_redirect:
            location = response.headers.get("Location", "")
            response.close()
            url = urljoin(url, location)
            continue
        if response.status_code != 200:
            response.close()
            permanent = 400 <= response.status_code < 500 and response.status_code != 429
            raise FetchError(
                f"Download answered {response.status_code}",
                permanent=permanent,
                status_code=response.status_code,
            )
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
    with _Deadline(settings.LUMA_DOWNLOAD_TIMEOUT) as deadline, _session() as session:
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
            # Local storage moves the file into place; S3 (MEDIA_STORAGE=s3) streams it into
            # the bucket in parts (a multipart upload), never the whole file in memory.
            if settings.MEDIA_STORAGE != "s3":
                return default_storage.save(name, _TempFile(fh, name=tmp_path)), size
            try:
                stored = default_storage.save(name, _TempFile(fh, name=tmp_path))
                kept = default_storage.size(stored)
            except (BotoCoreError, ClientError) as exc:  # the bucket did not take it: later
                raise FetchError(f"Storing the file failed: {type(exc).__name__}") from exc
        if kept != size:
            raise FetchError("The stored file's size differs from the download's")
        return stored, size
    finally:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)


# --- webhooks: one signed POST out -------------------------------------------------------------
def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    timeout: tuple[float, float],
) -> int:
    """POST ``body`` to ``url`` once and return the answer's status code; the answer's body is
    not read. Redirects are not followed (a 3xx is returned like any other code: a webhook's
    address is the one its owner gave). The address is checked before, and again on the very
    addresses the connection opens (``_connect_pinned``), with ``allow_private`` as the only
    rule; the whole exchange is capped by a watchdog at the two time-outs' sum.

    Raises ``RefusedURL`` (nothing was sent) or ``FetchError`` (no answer), whose messages name
    neither the body nor the headers."""
    check_url(url, allow_private=allow_private)
    rule = _private_rule.set(allow_private)
    try:
        with _Deadline(sum(timeout)) as deadline, _session() as session:
            token = _current_deadline.set(deadline)
            try:
                response = session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                )
                response.close()
                return response.status_code
            except requests.RequestException as exc:
                deadline.check()  # the watchdog cut it: say so
                raise FetchError(f"No answer: {type(exc).__name__}") from exc
            finally:
                _current_deadline.reset(token)
    finally:
        _private_rule.reset(rule)
