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
    and records what this host journalled while the database was away."""
    from django.db import connection

    from generations import heartbeat, pipeline

    heartbeat.start("worker")
    try:  # answers this host journalled while the database was away (a worker killed since)
        pipeline.replay_journal()
    except Exception:
        logging.getLogger("generations.pipeline").warning(
            "the journal was not replayed at start-up; the sweeper will", exc_info=True
        )
    finally:
        connection.close()  # pool children forked later must not share this one


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
