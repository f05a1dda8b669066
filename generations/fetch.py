"""Safe downloads of finished videos and thumbnails into Django storage.

Only ``http(s)``; private, loopback and link-local addresses are refused (except the configured
upstream's own host, and anything in demo mode), checked before connecting *and* on the address
actually connected to, on every redirect hop (DNS rebinding). The body is streamed and counted
(``Content-Length`` may lie), its type checked, and the file lands in storage only when complete:
it is written to a temporary file first and moved into place.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

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
        return self.file.name


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
        if not address_is_public(info[4][0]):
            raise FetchError(f"{parts.hostname} is a private address", permanent=True)


def _private_allowed(host: str, allow_private: bool | None) -> bool:
    if allow_private is not None:
        return allow_private
    return settings.LUMA_DEMO_MODE or host.lower() in _trusted_hosts()


def _peer_ip(response: requests.Response) -> str | None:
    """The address the response actually came from (needs stream=True)."""
    try:
        sock = response.raw.connection.sock  # urllib3 2.x
        return sock.getpeername()[0]
    except AttributeError:
        return None
    except OSError:
        return None


def _open(url: str, kind: Kind, timeout: float) -> requests.Response:
    session = requests.Session()
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url)
        try:
            response = session.get(
                url, stream=True, timeout=(5, min(timeout, 60)), allow_redirects=False
            )
        except requests.RequestException as exc:
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
    """Stream ``url`` into storage as ``name``; returns (stored name, size in bytes)."""
    timeout = settings.LUMA_DOWNLOAD_TIMEOUT
    deadline = time.monotonic() + timeout  # the whole download, not just each read
    response = _open(url, kind, timeout)
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
                    if time.monotonic() > deadline:
                        raise FetchError(f"The download took longer than {timeout:.0f} s")
                    if len(head) < 16:
                        head += chunk[:16]
                    out.write(chunk)
            except requests.RequestException as exc:
                raise FetchError(f"Download broke off: {type(exc).__name__}") from exc
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
