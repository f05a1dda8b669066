"""TLS options for a Redis reached by ``rediss://`` (docs/SCALING.md).

Celery's Redis transport (kombu), given a bare ``rediss://`` URL, encrypts but does not check
the server's certificate (``ssl_cert_reqs=CERT_NONE``, with a warning in the log). lumaweb
passes it explicit options instead: the certificate is verified unless the URL says
``ssl_cert_reqs=none``, and the URL's ``ssl_ca_certs``, ``ssl_certfile`` and ``ssl_keyfile``
(a private CA, a client certificate) are used. Django's Redis cache and the health check read
the same URL with redis-py, which verifies by default and understands the same parameters.
"""

from __future__ import annotations

import ssl
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import ImproperlyConfigured

CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def broker_ssl_options(url: str) -> dict[str, object] | None:
    """``CELERY_BROKER_USE_SSL`` for this broker URL: None unless it is ``rediss://``."""
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return None
    query = dict(parse_qsl(parts.query))
    reqs = query.get("ssl_cert_reqs", "required").strip().lower().removeprefix("cert_")
    if reqs not in CERT_REQS:
        raise ImproperlyConfigured(
            f"REDIS_URL: ssl_cert_reqs must be none, optional or required, not {reqs!r}"
        )
    options: dict[str, object] = {"ssl_cert_reqs": CERT_REQS[reqs]}
    options.update({name: query[name] for name in FILES if query.get(name)})
    return options
