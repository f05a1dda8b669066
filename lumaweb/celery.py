"""The Celery app: configuration from Django settings (CELERY_*), tasks from each app."""

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumaweb.settings")

app = Celery("lumaweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(**kwargs: Any) -> None:
    """Workers log exactly as the web process does (settings.LOGGING), not Celery's way."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_ready.connect
def _worker_heartbeat(**kwargs: Any) -> None:
    """The worker says it is alive every LUMA_HEARTBEAT_INTERVAL (the pages' banner reads it),
    and records what this host journalled while the database was away: now (a worker killed
    since) and then as often, from a thread of the main process (a worker on another host than
    the sweeper's, with no more submits to run, would otherwise keep it until restarted)."""
    import threading

    from generations import heartbeat

    heartbeat.start("worker")
    _replay_journal()  # before the pool's children fork: none may share its connection
    threading.Thread(target=_replay_journal_forever, name="lumaweb-journal", daemon=True).start()


def _replay_journal() -> None:
    from django.db import connection

    from generations import pipeline

    try:
        pipeline.replay_journal()
    except Exception:
        logging.getLogger("generations.pipeline").warning(
            "the journal was not replayed now; it is tried again shortly", exc_info=True
        )
    finally:
        connection.close()


def _replay_journal_forever() -> None:
    import time

    from django.conf import settings

    from generations.pipeline import journal

    while True:
        time.sleep(settings.LUMA_HEARTBEAT_INTERVAL)
        if journal.waiting():  # a directory listing: nothing else while the journal is empty
            _replay_journal()


@worker_shutdown.connect
def _worker_heartbeat_stop(**kwargs: Any) -> None:
    """A worker stopping cleanly takes its heartbeat with it: the banner shows at once."""
    from generations import heartbeat

    heartbeat.stop("worker")


@beat_init.connect
def _beat_heartbeat(**kwargs: Any) -> None:
    """Beat says it is alive too: without it nothing is polled or swept. Beat has no shutdown
    signal: its row goes when the process exits cleanly (SIGTERM, Ctrl-C)."""
    from generations import heartbeat

    heartbeat.start("beat", stop_at_exit=True)
