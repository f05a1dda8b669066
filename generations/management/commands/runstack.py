"""Run web, worker, beat and (in demo mode) the simulator together, like a small Procfile.

Used by scripts/run. Output of each process is prefixed with its name; Ctrl-C stops all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


def simulator_command(
    py: str, port: int, run_dir: Path, env: dict[str, str], dialect: str = "umamiai"
) -> list[str]:
    """The demo mode's simulator, speaking ``dialect`` (settings.LUMA_PROVIDER: the API the
    provider layer talks). It listens on 127.0.0.1 and refuses private keyframe URLs,
    except from lumaweb's own address: uploaded keyframes are served there, on this machine.
    Its control endpoints stay off unless SIMULATOR_CONTROL_TOKEN is set (it inherits env).
    Its generations and rendered videos live in ``.run/``, so a restart of the stack does not
    make it forget the jobs in flight (which would then time out)."""
    return [
        py,
        "-m",
        "simulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dialect",
        dialect,
        "--duration",
        os.environ.get("SIMULATOR_DURATION", "20"),
        "--media-dir",
        str(run_dir / "simulator"),
        "--state",
        str(run_dir / "simulator-state.json"),
        f"--allow-fetch-from={env['PUBLIC_BASE_URL']}",
    ]


def celery_commands(py: str, run_dir: Path, quiet: list[str]) -> dict[str, list[str]]:
    """The worker (every queue), the poller (poll rounds only, so copies never delay them) and
    beat, as ./scripts/run starts them."""

    celery = [py, "-m", "celery", "-A", "lumaweb", *quiet]

    def worker(*options: str) -> list[str]:
        return [*celery, "worker", "--loglevel", "INFO", *options]

    return {
        "worker": worker("--concurrency", os.environ.get("WORKER_CONCURRENCY", "4")),
        # Poll rounds on their own worker, so a busy worker (copies) never delays them.
        "poller": worker(
            "--queues",
            settings.LUMA_POLL_QUEUE,
            "--concurrency",
            str(settings.LUMA_POLL_PARALLEL),
            "--hostname",
            "poller@%h",
        ),
        "beat": [
            *celery,
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(run_dir / "celerybeat-schedule"),
        ],
    }


class Command(BaseCommand):
    help = "Run the whole app for development: web, worker, beat and the simulator in demo mode."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--simulator-port", type=int, default=8001)

    def handle(self, *args: Any, port: int, simulator_port: int, **options: Any) -> None:
        py = sys.executable
        run_dir = Path(settings.BASE_DIR) / ".run"
        run_dir.mkdir(exist_ok=True)
        env = dict(os.environ)
        procs: dict[str, list[str]] = {}
        # Quiet unless LUMAWEB_VERBOSE: no line per request or poll, no Celery banners; the
        # pipeline's lines and every warning still show (settings.LOGGING).
        quiet = [] if settings.LUMAWEB_VERBOSE else ["--quiet"]
        if settings.LUMA_DEMO_MODE:
            env.setdefault("LUMA_API_BASE_URL", f"http://127.0.0.1:{simulator_port}/v1")
            env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
            procs["simulator"] = [
                *simulator_command(py, simulator_port, run_dir, env, settings.LUMA_PROVIDER),
                *quiet,
            ]
        procs.update(celery_commands(py, run_dir, quiet))
        procs["web"] = [py, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]

        running: dict[str, subprocess.Popen[str]] = {}
        for name, cmd in procs.items():
            running[name] = subprocess.Popen(
                cmd,
                env=env,
                cwd=settings.BASE_DIR,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
            threading.Thread(target=self._pump, args=(name, running[name]), daemon=True).start()

        mode = (
            "DEMO mode (built-in simulator, nothing is paid)"
            if settings.LUMA_DEMO_MODE
            else f"LIVE mode against {settings.LUMA_API_BASE_URL}"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  lumaweb is starting in {mode}\n"
                f"  open  http://127.0.0.1:{port}/\n"
                f"  log in as {os.environ.get('DJANGO_SUPERUSER_USERNAME', 'admin')} "
                "(password: cat .run/admin-password; more people in /admin/)\n"
                f"  broker {settings.CELERY_BROKER_URL}   Ctrl-C stops everything\n"
            )
        )
        if settings.LUMAWEB_VERBOSE:
            self.stdout.write("  verbose: every request and poll is shown (LUMAWEB_VERBOSE)\n")
        else:
            self.stdout.write(
                "  showing the pipeline's lines and warnings; every request and poll too: "
                "LUMAWEB_VERBOSE=1 ./scripts/run\n"
            )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.is_set():
                for name, proc in running.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping all")
                        stop.set()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for proc in running.values():
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in running.values():
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)

    def _pump(self, name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.stdout.write(f"{name:>9} | {line.rstrip()}")
