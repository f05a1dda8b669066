"""The address of the client that sent a request, behind ``TRUSTED_PROXY_COUNT`` reverse proxies.

django-axes throttles log-ins per user name *and* address (``AXES_CLIENT_IP_CALLABLE`` points
here). Behind a proxy every request comes from the proxy's address, so without this one client's
wrong passwords lock an account out for everyone. (axes reads ``AXES_IPWARE_*`` only through the
optional django-ipware, which was not installed: that setting did nothing.)

Each proxy appends the address it received the request from to ``X-Forwarded-For``; whatever the
client itself put there comes first. So with N trusted proxies the client is the N-th entry
from the right: the one the outermost proxy wrote. Entries further left are the client's own
words and never used, so an attacker cannot pick an address per attempt. A header with fewer
entries than proxies, or an entry that is not an address, means the request did not come
through them all: the socket's address (``REMOTE_ADDR``) is the only fact then.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the outermost trusted proxy saw it (see the module docstring)."""
    remote = request.META.get("REMOTE_ADDR")
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(hops) < proxies:
        return remote
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote
