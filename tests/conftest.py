"""Shared fixtures: the real parts the tests run against.

* ``simulator``: the upstream simulator as a subprocess, real HTTP (session-wide).
* ``redis_url``: the machine's Redis (REDIS_URL). Missing Redis is a failure, never a skip.
* ``pipeline``: a real Celery worker + beat (``devtools.processes``) on that Redis,
  reading the test database, talking to the simulator. Tests that use it need committed data
  (``transactional_db``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from devtools.processes import CeleryProcesses, database_url
from devtools.simulator_process import SimulatorProcess

ROOT = Path(__file__).resolve().parent.parent
POLL_INTERVAL = "0.5"


def wait_for(check: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = settings.CELERY_BROKER_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is needed at REDIS_URL={url!r} and does not answer: {exc}")
    return url


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Before the test database is dropped, end connections that live servers' threads and
    killed workers left open (PostgreSQL refuses to drop a database in use)."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(scope="session")
def media_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="lumaweb-media-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(duration=2, video_seconds=1, seed=7)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(simulator: SimulatorProcess, settings) -> SimulatorProcess:
    """The simulator, reset to its start-up config, and this process pointed at it."""
    simulator.reset(restore_config=True)
    settings.LUMA_API_BASE_URL = simulator.api_url
    return simulator


@pytest.fixture(autouse=True)
def _media(settings, media_root: Path) -> None:
    settings.MEDIA_ROOT = media_root


@pytest.fixture(scope="session")
def pipeline_env(django_db_setup, django_db_blocker, redis_url, simulator, media_root):
    with django_db_blocker.unblock():
        db_url = database_url()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        LUMA_API_BASE_URL=simulator.api_url,
        LUMA_API_KEY="",
        MEDIA_ROOT=str(media_root),
        LUMA_POLL_INTERVAL=POLL_INTERVAL,
        LUMA_SWEEP_INTERVAL="1",
        LUMA_SUBMIT_STALE_AFTER="5",
        LUMA_READ_TIMEOUT="3",
        LUMA_REQUEUE_AFTER="2",
        LUMA_POLL_LEASE="3",
        LUMA_ASSET_LEASE="5",
        DEBUG="True",
    )
    return env


@pytest.fixture(scope="session")
def pipeline_session(pipeline_env) -> Iterator[CeleryProcesses]:
    log_dir = Path(tempfile.mkdtemp(prefix="lumaweb-pipeline-"))
    pipe = CeleryProcesses(pipeline_env, log_dir)
    pipe.start("worker1")
    pipe.start("beat")
    yield pipe
    pipe.stop_all()
    shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture
def pipeline(pipeline_session: CeleryProcesses, sim, settings, transactional_db, redis_url):
    """Worker + beat running; this process uses the same settings they do."""
    settings.LUMA_POLL_INTERVAL = float(POLL_INTERVAL)
    settings.LUMA_READ_TIMEOUT = 3.0
    for name in ("worker1", "beat"):
        if not pipeline_session.running(name):
            pipeline_session.procs.pop(name, None)
            pipeline_session.start(name)
    return pipeline_session
