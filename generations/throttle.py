"""A fixed-window request counter per client address, in Django's cache (Redis in production).

Used by the public share pages (``generations.share_views``), the one part of lumaweb that a
stranger can ask for again and again with a valid key. One ``INCR`` per request: the first
request of a minute creates the counter (``add``, with a time-out a little past the minute),
the others count on it; past the limit the answer is 429 with ``Retry-After`` (the seconds left
in the window). A fixed window lets a client send up to twice the rate across a window's edge,
which is fine for its purpose (keeping one client from hogging the web process), and costs one
round trip, where a sliding window would cost a sorted set per client.

A cache that does not answer lets the request through: a share link must not break because
Redis restarted, and the web process's own limits (threads, time-outs) still hold.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest

from lumaweb.client_address import client_ip

log = logging.getLogger(__name__)
WINDOW = 60  # seconds


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


def client_bucket(request: HttpRequest) -> str:
    """The client's address, an IPv6 one as its /64 (one home or phone has a whole /64, and
    could otherwise take a fresh address for every request)."""
    raw = client_ip(request) or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is 192.0.2.1
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def hit(request: HttpRequest, scope: str, limit: int) -> Verdict:
    """Count this request against ``limit`` per minute for the client in ``scope``."""
    now = time.time()
    window = int(now // WINDOW)
    key = f"throttle:{scope}:{client_bucket(request)}:{window}"
    try:
        cache.add(key, 0, timeout=WINDOW + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between the two calls: this request starts it again
            cache.set(key, 1, timeout=WINDOW + 5)
            count = 1
    except Exception:  # the cache is down: let it through (see the module docstring)
        log.warning("rate limit not checked: the cache did not answer", exc_info=True)
        return Verdict(True)
    if count <= limit:
        return Verdict(True)
    return Verdict(False, max(1, math.ceil((window + 1) * WINDOW - now)))
