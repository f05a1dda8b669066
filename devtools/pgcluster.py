"""A PostgreSQL server of a test's own, to stop and start: the database-outage tests and the
chaos run's PostgreSQL restarts.

The shared server (``DATABASE_URL``) serves every other test and every xdist worker, so a test
that takes the database away runs its own: ``initdb`` into a temporary folder, ``pg_ctl`` on a
free loopback port, trust auth. PostgreSQL refuses to run as root, so as root the folder is
given to the ``postgres`` user and the commands run as that user (``runuser``).

    with PrivatePostgres() as pg:
        url = pg.url("lumaweb")     # postgres://postgres@127.0.0.1:PORT/lumaweb (created)
        pg.stop()                   # connections now fail: the outage
        pg.start()                  # same data, same port
        pg.restart()

``using_database(url)`` points this process's Django connections at it for a while (migrated),
so that the in-process parts (a test's pipeline steps, the chaos run's checks) and the workers
it starts share the server that goes away.

``available()`` says whether this machine has the server's binaries (Debian's
``postgresql-NN``, found under ``/usr/lib/postgresql/*/bin``, or on ``PATH``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import dj_database_url

from devtools.simulator_process import free_port

__all__ = ["PrivatePostgres", "available", "bin_dir", "using_database"]


def bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: the newest Debian server, else ``PATH``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def available() -> bool:
    return bin_dir() is not None


class PrivatePostgres:
    """One PostgreSQL server in a temporary folder, on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        found = bin_dir()
        if found is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
        self.bin = found
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="lumaweb-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0

    # -- running commands (as the postgres user when we are root) --------------------------

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> PrivatePostgres:
        if self._as_root:
            shutil.chown(self.root, user="postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        settings = (
            f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.root}'\nfsync = off\n"
            "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (what a restart does); ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def createdb(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def url(self, name: str = "lumaweb", *, create: bool = True) -> str:
        if create:
            self.createdb(name)
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def cleanup(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.init()
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


@contextlib.contextmanager
def using_database(url: str, *, migrate: bool = True) -> Iterator[None]:
    """Point Django's default connection (every thread's: they share its settings) at ``url``
    until the block ends, migrated first; then back to the database it used before.
    Connections are closed on the way in and out, so none survives the switch."""
    from django.core.management import call_command
    from django.db import connections

    wrapper = connections["default"]  # the test runner keeps it, to drop the test database
    settings_dict = wrapper.settings_dict
    before = dict(settings_dict)
    target = dj_database_url.parse(url)
    connections.close_all()
    settings_dict.update(
        {key: target[key] for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")},
        OPTIONS={},
    )
    if target["ENGINE"] != before["ENGINE"]:
        del connections["default"]  # made again at the next query, of the new engine
    try:
        if migrate:
            call_command("migrate", verbosity=0, interactive=False)
        yield
    finally:
        connections.close_all()
        settings_dict.clear()
        settings_dict.update(before)
        connections["default"] = wrapper
