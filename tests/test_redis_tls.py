"""A Redis behind a password and TLS (`rediss://`): the broker verifies the server's certificate
(Celery's own default for a bare rediss:// URL is not to), the cache does too, and a private
CA given in the URL reaches both. Checked on the settings' own objects, without connecting;
docs/SCALING.md says how to set it up.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys

from celery import Celery
from django.core.cache.backends.redis import RedisCache
from redis.connection import SSLConnection

from lumaweb.redis_tls import broker_ssl_options

URL = "rediss://:s3cret@redis.internal:6380/2"


def celery_connection(url: str) -> dict:
    app = Celery(broker=url)
    app.conf.broker_use_ssl = broker_ssl_options(url)
    with app.connection_for_write() as connection:
        return {"ssl": connection.ssl, "password": connection.password}


def test_a_rediss_url_makes_the_broker_verify_the_certificate() -> None:
    assert celery_connection(URL) == {
        "ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED},
        "password": "s3cret",
    }


def test_a_plain_redis_url_has_no_tls_options() -> None:
    assert broker_ssl_options("redis://127.0.0.1:6379/0") is None
    assert broker_ssl_options("filesystem://") is None


def test_the_urls_own_tls_options_reach_the_broker() -> None:
    url = f"{URL}?ssl_ca_certs=/etc/ssl/private-ca.pem&ssl_cert_reqs=required"
    assert broker_ssl_options(url) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": "/etc/ssl/private-ca.pem",
    }
    assert celery_connection(url)["ssl"] == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": "/etc/ssl/private-ca.pem",
    }


def test_only_an_explicit_none_turns_verification_off() -> None:
    assert broker_ssl_options(f"{URL}?ssl_cert_reqs=none") == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_the_cache_on_a_rediss_url_uses_tls_with_the_password_and_verifies() -> None:
    url = f"{URL}?ssl_ca_certs=/etc/ssl/private-ca.pem"
    cache = RedisCache(url, {"OPTIONS": {"socket_connect_timeout": 2}})
    pool = cache._cache._get_connection_pool(write=True)
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ssl/private-ca.pem"
    # redis-py's SSLConnection verifies by default (cert_reqs "required")
    assert pool.connection_kwargs.get("ssl_cert_reqs", "required") == "required"


def test_the_settings_pass_the_options_for_a_rediss_redis_url() -> None:
    """The settings module itself, loaded with a rediss:// REDIS_URL (in a fresh process)."""
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.CELERY_BROKER_URL, s.CELERY_BROKER_USE_SSL, "
        "s.CACHES['default']['LOCATION']], default=int))"
    )
    env = {**os.environ, "REDIS_URL": URL, "DJANGO_SETTINGS_MODULE": "lumaweb.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    broker, use_ssl, cache = json.loads(result.stdout.strip().splitlines()[-1])
    assert broker == cache == URL
    assert use_ssl == {"ssl_cert_reqs": int(ssl.CERT_REQUIRED)}
