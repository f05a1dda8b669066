"""Fetching keyframes without becoming a way into the machine's network.

Whoever can create a generation chooses the URL the simulator fetches, so a plain
``urlopen(image_url)`` would let them reach anything the simulator's host can: a database's HTTP
port, a cloud metadata service, lumaweb's own internals. The simulator therefore fetches only:

* URLs whose origin (scheme, host and port, exactly) is one of ``allowed_origins``: the operator
  names lumaweb's own address there (``--allow-fetch-from http://127.0.0.1:8000`` in
  ``runstack``'s demo mode), because lumaweb serves uploaded keyframes from it and that address
  is private on one machine;
* any other http(s) URL only when every address its host resolves to is public, and then it
  connects to the address it checked (no second DNS lookup a rebinding server could answer
  differently).

Redirects are followed (a few hops), each hop checked the same way. Pure standard library: the
simulator stays Django-free.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 3
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECTS = (301, 302, 303, 307, 308)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Origin = tuple[str, str, int]

# IPv6 ranges that carry an IPv4 address, and where to find it (bits from the right).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local use: never public
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")


class Refused(Exception):
    """The URL may not be fetched; the message says why (for the simulator's log)."""


def origin_of(url: str) -> Origin:
    """``(scheme, host, port)`` of an http(s) URL, the port made explicit; ValueError if not."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or DEFAULT_PORTS[scheme]  # parts.port raises ValueError when malformed
    return scheme, parts.hostname.lower().rstrip("."), port


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 transition address stands for, if it is one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client; the server part is public by definition
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    for network in (_NAT64, _IPV4_COMPATIBLE, _SIIT):
        if address in network:
            return low32
    return None


def is_public_address(address: IPAddress) -> bool:
    """True only for a globally routable unicast address, whose embedded IPv4 (NAT64, 6to4,
    Teredo, mapped, compatible, SIIT) is globally routable too."""
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
    return True


def _public_addresses(host: str, port: int) -> list[tuple[int, str]]:
    """Every address ``host`` resolves to, as (family, address); Refused if any is not public
    (a name with one private address among public ones is refused whole)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host!r}: {exc}") from None
    found: list[tuple[int, str]] = []
    for family, _, _, _, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        if not is_public_address(address):
            raise Refused(f"{host!r} resolves to {address}, which is not a public address")
        found.append((family, text))
    if not found:
        raise Refused(f"{host!r} resolves to nothing")
    return found


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to ``address`` (already checked) while speaking to ``host``."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``address``, with the certificate checked against ``host`` (SNI included)."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _connection(url: str, allowed: set[Origin], timeout: float) -> http.client.HTTPConnection:
    """A connection for ``url``, or Refused: an allowed origin by name, else a checked and
    pinned public address."""
    scheme, host, port = origin = origin_of(url)
    if origin in allowed:
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout)
        return http.client.HTTPConnection(host, port, timeout=timeout)
    _, address = _public_addresses(host, port)[0]
    if scheme == "https":
        return _PinnedHTTPSConnection(host, port, address, timeout)
    return _PinnedHTTPConnection(host, port, address, timeout)


def fetch(url: str, allowed_origins: Iterable[str], timeout: float, max_bytes: int) -> bytes:
    """The body of ``url`` (at most ``max_bytes``; more is Refused), following redirects that
    pass the same checks. Raises Refused, ``OSError`` or ``http.client.HTTPException``."""
    allowed = {origin_of(value) for value in allowed_origins}
    for _ in range(MAX_REDIRECTS + 1):
        try:
            connection = _connection(url, allowed, timeout)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", target, headers={"User-Agent": "LumaSimulator/1.0"})
            response = connection.getresponse()
            if response.status in REDIRECTS and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location", ""))
                continue
            if response.status != 200:
                raise Refused(f"{url} answered {response.status}")
            data = response.read(max_bytes + 1)
        finally:
            connection.close()
        if len(data) > max_bytes:
            raise Refused(f"{url} is larger than {max_bytes} bytes")
        return data
    raise Refused(f"more than {MAX_REDIRECTS} redirects")


def post_json(url: str, body: bytes, allowed_origins: Iterable[str], timeout: float) -> int:
    """POST ``body`` (JSON) to ``url`` under the same rule as ``fetch`` (an allowed origin, or
    a public address, pinned) and return the answer's status. Redirects are not followed (a
    callback is delivered once, where it was asked to go). Raises Refused, ``OSError`` or
    ``http.client.HTTPException``."""
    allowed = {origin_of(value) for value in allowed_origins}
    try:
        connection = _connection(url, allowed, timeout)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", "User-Agent": "LumaSimulator/1.0"}
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        connection.close()
