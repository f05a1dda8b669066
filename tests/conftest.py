"""Shared fixtures: the real parts the tests run against.

* ``simulator``: the upstream simulator as a subprocess, real HTTP (session-wide).
* ``redis_url``: the machine's Redis (REDIS_URL). Missing Redis is a failure, never a skip.
* ``pipeline``: a real Celery worker + beat (``devtools.processes``) on that Redis,
  reading the test database, talking to the simulator. Tests that use it need committed data
  (``transactional_db``).

The worker and beat poll, sweep and copy whatever committed rows they find, and take whatever
message is in the broker. So they run only during the tests that ask for ``pipeline``: every
other test stops them first (``_no_worker_or_beat_unless_asked``), the tests are ordered so that
all the tests on the shared worker run together (``pytest_collection_modifyitems``: start-up and
shut-down are paid once), and the broker's database is emptied whenever they start or stop, so no
message left by one test can be consumed against another test's rows.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings

from devtools.processes import CeleryProcesses, database_url
from devtools.simulator_process import SimulatorProcess

ROOT = Path(__file__).resolve().parent.parent
POLL_INTERVAL = "0.5"
_SHARED_PIPELINE = pytest.StashKey[CeleryProcesses]()
_ASYNC_UNSAFE_AT_START = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")


PIPELINE_GROUPS = 2  # parallel runs: the shared-worker tests in this many runs of their own
# Files whose tests each take minutes (axe on every page, in four views): in parallel runs each
# of their tests is handed out on its own, so that they spread over the workers.
ONE_TEST_A_GROUP = ("tests/pages/test_accessibility.py",)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Parallel runs (``-n N --dist loadgroup``, ``tests/parallel.py``): which tests run
    together on one xdist worker, in one go.

    * the chaos runs, one after the other (each starts a Redis, workers and a beat of its own
      and wants the machine's cores; two at once would be two loaded machines);
    * the tests on the shared worker and beat, a file at a time, in ``PIPELINE_GROUPS``
      groups: each group starts them once, not once per test that follows another kind;
    * the tests of ``ONE_TEST_A_GROUP``'s files one by one;
    * every other test with the rest of its file (its module's fixtures are set up once).

    Without xdist the marks change nothing.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    file = item.nodeid.split("::", 1)[0]
    if item.get_closest_marker("chaos"):
        group = "chaos"
    elif "pipeline" in getattr(item, "fixturenames", ()):
        group = f"pipeline-{zlib.crc32(file.encode()) % PIPELINE_GROUPS}"
    elif file in ONE_TEST_A_GROUP:
        group = item.nodeid.replace("[", "(").replace("]", ")")  # (xdist reads "]" as an id's end)
    else:
        group = file
    item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need no worker first, then every test on the shared worker and beat, then the
    tests that stop it to run processes of their own (the keyed-log run, chaos).

    The shared worker therefore starts once and stops once, never runs beside a test that does
    not expect it, and a quick test never waits behind a pipeline one. The sort is stable: within
    a group the files' order (and a module's fixtures) are kept.
    """

    def group(item: pytest.Item) -> int:
        if item.get_closest_marker("chaos"):
            return 3
        if "pipeline" in getattr(item, "fixturenames", ()):
            return 1
        if item.get_closest_marker("pipeline"):
            return 2
        return 0

    items.sort(key=group)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        longest_groups_first(items)
        for item in items:
            name_the_group_in_the_nodeid(item)


def name_the_group_in_the_nodeid(item: pytest.Item) -> None:
    """What xdist 3.8 means to do and pytest 9.2 no longer lets it: xdist reads a test's group
    from its id (``<nodeid>@<group>``), and writes it into ``item._nodeid``, which pytest 9.2's
    structured ids ignore, so every test would be handed out on its own, groups or not
    (pytest-dev/pytest-xdist#1386). The same suffix, in the field pytest 9.2 reads."""
    mark = item.get_closest_marker("xdist_group")
    if mark is None or "@" in item.nodeid.rsplit("]", 1)[-1] or not hasattr(item, "_id"):
        return
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{item.nodeid}@{mark.args[0]}")


def xdist_group(item: pytest.Item) -> str:
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0]) if mark else item.nodeid


def longest_groups_first(items: list[pytest.Item]) -> None:
    """Parallel runs: the order xdist hands the groups out in (``--no-loadscope-reorder`` keeps
    the collection's), the longest first, so that no worker starts a long one when the others
    are nearly done. The chaos runs (minutes, one after the other), then the tests handed out one
    by one (a minute or more each), then the rest, most tests first (what xdist does by itself).
    In a group, its browser tests last: their module's chromium (and the async-unsafe allowance
    it needs) lives until the module's last test, which must not be one without a browser.
    Otherwise a group's tests keep their order."""
    sizes: dict[str, int] = {}
    for item in items:
        sizes[xdist_group(item)] = sizes.get(xdist_group(item), 0) + 1

    def rank(item: pytest.Item) -> tuple[int, int, str, bool]:
        group = xdist_group(item)
        browser = item.get_closest_marker("browser") is not None
        if item.get_closest_marker("chaos"):
            return 0, 0, group, browser
        if item.nodeid.split("::", 1)[0] in ONE_TEST_A_GROUP:
            return 1, 0, group, browser
        return 2, -sizes[group], group, browser

    items.sort(key=rank)


def purge_broker(url: str) -> None:
    """Drop every message in this Redis database (queues, unacknowledged, scheduled), keeping
    kombu's exchange bindings (``_kombu.binding*``) so that a publisher can still route before a
    worker declares its queues again. Call it only while no worker or beat uses the database."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    keys = [key for key in client.scan_iter(count=500) if not key.startswith(b"_kombu.binding")]
    if keys:
        client.delete(*keys)


def spare_redis_db(url: str) -> str:
    """The same Redis, another database number: never the suite's own, never db 0 (the default
    database others use), never past 15 (a stock Redis has 16). The one below, as
    ``tests/parallel.py`` leaves it free for each parallel worker."""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    spare = db - 1 if db > 1 else db + 1
    return urlunsplit(parts._replace(path=f"/{spare}"))


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
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "tests.parallel" not in sys.modules:
        pytest.exit("parallel runs need `-p tests.parallel` (./scripts/test passes it)", 2)
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


@pytest.fixture(autouse=True)
def _no_submit_pace() -> None:
    """Every test starts with the account not paced: the pacer keeps its pause and rate in the
    cache (Redis, shared with the workers), where an earlier test's 429 would leave them."""
    from generations.pipeline import pace

    pace.forget()


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
        LUMA_HOLD_RETRY="1",  # an account hold tries one job a second
        LUMA_ASSET_LEASE="5",
        LUMA_HEARTBEAT_INTERVAL="2",  # the heartbeat test sees a second one soon
        WEBHOOK_ALLOW_PRIVATE="True",  # the tests' receivers listen on 127.0.0.1
        WEBHOOK_RETRY_BASE="0.5",
        DEBUG="True",
    )
    return env


@pytest.fixture(scope="session")
def pipeline_session(request, pipeline_env) -> Iterator[CeleryProcesses]:
    """The suite's shared worker and beat. Ask for ``pipeline`` to have them running; a test
    that asks only for this fixture finds them stopped (see ``_no_worker_or_beat_unless_asked``)."""
    log_dir = Path(tempfile.mkdtemp(prefix="lumaweb-pipeline-"))
    pipe = CeleryProcesses(pipeline_env, log_dir)
    purge_broker(pipeline_env["REDIS_URL"])  # nothing from an earlier run or session
    pipe.start("worker1")
    pipe.start("beat")
    request.config.stash[_SHARED_PIPELINE] = pipe
    yield pipe
    del request.config.stash[_SHARED_PIPELINE]
    pipe.stop_all()
    purge_broker(pipeline_env["REDIS_URL"])
    shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_worker_or_beat_unless_asked(request) -> None:
    """A test that does not ask for ``pipeline`` runs with the shared worker and beat stopped
    and their messages gone: otherwise they poll, sweep and copy the rows it commits (a test
    counting its own polls saw 13 of its 60 rows) and consume the tasks it enqueues."""
    if "pipeline" in request.fixturenames:
        return
    pipe = request.config.stash.get(_SHARED_PIPELINE, None)
    if pipe is not None:
        if pipe.procs:
            pipe.stop_all()
        # also what an earlier test without them enqueued: nobody would take it, and the next
        # pipeline test empties the broker anyway
        purge_broker(pipe.env["REDIS_URL"])


@pytest.fixture(autouse=True)
def _async_unsafe_stays_scoped(request) -> None:
    """``DJANGO_ALLOW_ASYNC_UNSAFE`` is for the browser tests only (Playwright's loop runs in
    this thread): if it is still set for any other test, the fixture that set it leaked it, and
    that test would no longer see Django refuse ORM calls from async code."""
    if request.node.get_closest_marker("browser"):
        return
    value = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")  # (not the whole environment in a report)
    assert value == _ASYNC_UNSAFE_AT_START, "DJANGO_ALLOW_ASYNC_UNSAFE leaked from a fixture"


@pytest.fixture
def pipeline(pipeline_session: CeleryProcesses, sim, settings, transactional_db, redis_url):
    """Worker + beat running; this process uses the same settings they do.

    If either is not running (a non-pipeline test stopped them, or a test killed one and failed
    before starting it again), whatever is left is stopped and the broker emptied before both
    start: the test begins with no message from an earlier test's rows.
    """
    settings.LUMA_POLL_INTERVAL = float(POLL_INTERVAL)
    settings.LUMA_READ_TIMEOUT = 3.0
    if not all(pipeline_session.running(name) for name in ("worker1", "beat")):
        pipeline_session.stop_all()
        purge_broker(redis_url)
        pipeline_session.start("worker1")
        pipeline_session.start("beat")
    return pipeline_session


@pytest.fixture
def spare_redis_url(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """A Redis that the suite's worker does not read, for a test's own worker and beat.

    A redis-server of the test's own on a free port when one is on PATH (nobody else can be
    using it); otherwise another database of the suite's Redis (``spare_redis_db``), never db 0,
    emptied of the messages the test's processes left there when it ends.
    """
    if shutil.which("redis-server"):
        from devtools.chaos import RedisServer

        server = RedisServer(tmp_path)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()
    else:
        url = spare_redis_db(redis_url)
        try:
            yield url
        finally:
            purge_broker(url)
