"""A Redis behind a password and TLS (`rediss://`): the broker verifies the server's certificate
(Celery's own default for a bare rediss:// URL is not to), the cache does too, and a private
CA given in the URL reaches both. Checked on the settings' own objects, then against a real
redis-server with TLS and a password that the test starts on loopback (its own CA, made with
openssl); docs/SCALING.md says how to set it up.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.core.cache.backends.redis import RedisCache
from redis.connection import SSLConnection

from devtools.simulator_process import free_port
from lumaweb.redis_tls import broker_ssl_options
from tests.conftest import wait_for

URL = "rediss://:s3cret@redis.internal:6380/2"


def celery_connection(url: str) -> dict:
    app = Celery(broker=url, set_as_current=False)
    app.conf.broker_use_ssl = broker_ssl_options(url)
    with app.connection_for_write() as connection:
        return {"ssl": connection.ssl, "password": connection.password}


def test_these_celery_apps_leave_lumawebs_the_current_one() -> None:
    """Celery makes every new app the process's current one, the one ``shared_task`` tasks
    publish through: the tests after these would send their tasks to this file's servers."""
    from celery import current_app

    from lumaweb.celery import app as lumaweb_app

    celery_connection(URL)
    assert current_app._get_current_object() is lumaweb_app


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


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "redis-server exited (built without TLS?)"
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """redis-server on loopback with TLS only and a password; its certificate signed by a CA
    of the test's own. Yields (port, the CA's file)."""
    if not shutil.which("redis-server") or not shutil.which("openssl"):
        pytest.skip("needs redis-server (with TLS) and openssl")
    folder = tmp_path_factory.mktemp("tls-redis")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=lw-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "ext", "-out", "server.pem",
            cwd=folder)  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.pem", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no",
         "--requirepass", "s3cret", "--save", "", "--appendonly", "no"],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"rediss://:s3cret@127.0.0.1:{port}/0?ssl_ca_certs={folder / 'ca.pem'}"
        wait_for(lambda: answers(url, process), timeout=30, what="the TLS redis-server")
        yield port, folder / "ca.pem"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_broker_and_the_cache_work_over_tls_with_a_password(tls_redis) -> None:
    port, ca = tls_redis
    url = f"rediss://:s3cret@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    app = Celery(broker=url, set_as_current=False)
    app.conf.broker_use_ssl = broker_ssl_options(url)
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue("lw-tls-test")
        queue.put({"hello": "tls"})
        assert queue.get(timeout=10).payload == {"hello": "tls"}
        queue.close()
    cache = RedisCache(url, {"OPTIONS": {"socket_connect_timeout": 5, "socket_timeout": 5}})
    cache.set("lw-tls-test", "yes", 30)
    assert cache.get("lw-tls-test") == "yes"


def test_the_broker_refuses_a_server_whose_certificate_it_cannot_verify(tls_redis) -> None:
    """Without the private CA the certificate is unknown: lumaweb's broker options refuse the
    connection, where Celery's default for a bare rediss:// URL would have gone ahead."""
    port, _ca = tls_redis
    url = f"rediss://:s3cret@127.0.0.1:{port}/0"
    app = Celery(broker=url, set_as_current=False)
    app.conf.broker_use_ssl = broker_ssl_options(url)
    with app.connection_for_write() as connection, pytest.raises(Exception, match=r"(?i)certif"):
        connection.ensure_connection(max_retries=1)
    # Celery's own default: encrypted, unverified
    insecure = Celery(broker=url, set_as_current=False)
    with insecure.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
