"""Workers and beat say they are alive: a thread in the process writes its ``Heartbeat`` row
every ``LUMA_HEARTBEAT_INTERVAL`` seconds (started from Celery's ``worker_ready`` and
``beat_init`` signals in ``lumaweb/celery.py``).

A thread of the process itself, not a periodic task: a task would run in whichever worker took
it, so it could not tell beat's health from the workers', and with no worker at all beat's
heartbeat would never be written. In a worker it is the main process's thread: a pool child
stuck in a long download does not stop it, a killed worker does.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection

from generations.models import Heartbeat

log = logging.getLogger(__name__)

_started: dict[str, threading.Thread] = {}


def beat_once(kind: str) -> None:
    """Write this process's heartbeat now (and prune long-gone rows)."""
    Heartbeat.record(kind, socket.gethostname(), os.getpid())


def start(kind: str) -> None:
    """Start this process's heartbeat thread (once per kind and process)."""
    thread = _started.get(kind)
    if thread is not None and thread.is_alive():
        return
    thread = threading.Thread(
        target=_run, args=(kind,), name=f"lumaweb-heartbeat-{kind}", daemon=True
    )
    _started[kind] = thread
    thread.start()


def _run(kind: str) -> None:
    """Until the process ends (a daemon thread: it does not keep a stopping process up)."""
    while True:
        try:
            close_old_connections()
            beat_once(kind)
        except Exception as exc:  # a database blip: said again at the next beat, never fatal
            log.warning("could not write the %s heartbeat (%r); trying again", kind, exc)
        finally:
            connection.close()  # this thread's own connection; not held between beats
        time.sleep(settings.LUMA_HEARTBEAT_INTERVAL)
