"""Celery worker and beat processes started by lumaweb's own tools: the chaos run and the tests.

Each process runs in its own process group, so a SIGKILL takes the worker's pool children with
it, as an out-of-memory kill or a lost machine would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

from devtools.simulator_process import free_port  # one helper for every process we start

__all__ = ["CeleryProcesses", "database_url", "free_port"]

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The URL of the database this process uses, for the processes it starts."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class CeleryProcesses:
    """Named worker and beat processes with the given environment; logs go to ``log_dir``."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.serial = 0

    def start(self, name: str) -> subprocess.Popen:
        """Start ``beat`` or a worker called ``name`` (any name starting with "worker")."""
        if name.startswith("worker"):
            args = [
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                # Every queue, poll rounds' own included (settings.CELERY_TASK_QUEUES).
                "--queues",
                ",".join(queue.name for queue in settings.CELERY_TASK_QUEUES),
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
            ]
        elif name == "beat":
            args = ["beat", "--loglevel", "INFO", "--schedule", str(self.log_dir / "beat-schedule")]
        else:
            raise ValueError(f"unknown process {name!r}")
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "lumaweb", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self.procs[name]

    def start_worker(self) -> str:
        """Start a worker with a fresh name; returns the name."""
        self.serial += 1
        while f"worker{self.serial}" in self.procs:
            self.serial += 1
        name = f"worker{self.serial}"
        self.start(name)
        return name

    def workers(self) -> list[str]:
        return [name for name in self.procs if name.startswith("worker")]

    def running(self, name: str) -> bool:
        return name in self.procs and self.procs[name].poll() is None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group and wait (SIGKILL if it will not go)."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )
