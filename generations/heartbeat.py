"""Workers and beat say they are alive: a thread in the process writes its ``Heartbeat`` row
every ``LUMA_HEARTBEAT_INTERVAL`` seconds (started from Celery's ``worker_ready`` and
``beat_init`` signals in ``lumaweb/celery.py``).

A thread of the process itself, not a periodic task: a task would run in whichever worker took
it, so it could not tell beat's health from the workers', and with no worker at all beat's
heartbeat would never be written. In a worker it is the main process's thread: a pool child
stuck in a long download does not stop it, a killed worker does.

A process that stops cleanly deletes its own row on the way out (``stop``: Celery's
``worker_shutdown`` signal; beat, which has no such signal, at interpreter exit), so the banner
and ``/healthz`` know at once instead of a minute later. A killed one leaves its row to go
stale, as before.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading

from django.conf import settings
from django.db import close_old_connections, connection

from generations.models import Heartbeat

log = logging.getLogger(__name__)

# kind -> (thread, its stop flag, the pid that started it: a forked child is not that process)
_started: dict[str, tuple[threading.Thread, threading.Event, int]] = {}


def beat_once(kind: str) -> None:
    """Write this process's heartbeat now (and prune long-gone rows)."""
    Heartbeat.record(kind, socket.gethostname(), os.getpid())


def start(kind: str, *, stop_at_exit: bool = False) -> None:
    """Start this process's heartbeat thread (once per kind and process). ``stop_at_exit``:
    delete the row when the interpreter exits cleanly (beat, which has no shutdown signal)."""
    entry = _started.get(kind)
    if entry is not None and entry[0].is_alive() and entry[2] == os.getpid():
        return
    stopping = threading.Event()
    thread = threading.Thread(
        target=_run, args=(kind, stopping), name=f"lumaweb-heartbeat-{kind}", daemon=True
    )
    _started[kind] = (thread, stopping, os.getpid())
    thread.start()
    if stop_at_exit:
        atexit.register(stop, kind)


def stop(kind: str) -> None:
    """A clean shutdown: stop the thread, then delete this process's row, so nobody counts a
    process that is gone. Never raises: a process on its way out has nothing to do about it."""
    entry = _started.pop(kind, None)
    if entry is None or entry[2] != os.getpid():
        return  # never started here (or a forked child of the process that did)
    thread, stopping, pid = entry
    stopping.set()
    thread.join(timeout=10)  # a beat being written finishes first, or it would come back
    try:
        close_old_connections()
        Heartbeat.objects.filter(kind=kind, hostname=socket.gethostname(), pid=pid).delete()
        log.info("%s stopping: heartbeat removed", kind)
    except Exception as exc:
        log.warning("could not remove the %s heartbeat (%r); it goes stale in a minute", kind, exc)
    finally:
        connection.close()


def _run(kind: str, stopping: threading.Event) -> None:
    """Until the process ends or ``stop`` (a daemon thread: it does not keep a stopping
    process up)."""
    while not stopping.is_set():
        try:
            close_old_connections()
            beat_once(kind)
        except Exception as exc:  # a database blip: said again at the next beat, never fatal
            log.warning("could not write the %s heartbeat (%r); trying again", kind, exc)
        finally:
            connection.close()  # this thread's own connection; not held between beats
        stopping.wait(settings.LUMA_HEARTBEAT_INTERVAL)
