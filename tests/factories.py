"""Small helpers to make rows and upstream generations for tests."""

from __future__ import annotations

from datetime import timedelta

import requests
from django.contrib.auth import get_user_model
from django.utils import timezone

from generations.models import Generation, Status


def make_user(username: str = "alice", password: str = "s3cret-pass!", **extra):
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(username=username, password=password, **extra)
    return user


def remote_create(sim, prompt: str = "a test", **body) -> dict:
    """POST straight to the simulator (as the upstream), returning its generation object."""
    response = requests.post(
        f"{sim.api_url}/luma-ai/generations",
        json={"user_prompt": prompt, "aspect_ratio": "16:9", **body},
        headers={"Authorization": "Bearer test"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def in_progress_row(remote_id: str, prompt: str = "a test", **fields) -> Generation:
    """A row as it is after a successful submit: in progress, due for a poll."""
    now = timezone.now()
    return Generation.objects.create(
        user_prompt=prompt,
        status=Status.IN_PROGRESS,
        remote_id=remote_id,
        posts_sent=1,
        submitted_at=now,
        last_progress_at=now,
        next_poll_at=now - timedelta(seconds=1),
        **fields,
    )


def heartbeat(kind: str, seconds_ago: float = 0, pid: int = 1, hostname: str = "test-host"):
    """A worker's or beat's heartbeat as the process writes it, ``seconds_ago`` old (fresh by
    default: "a worker is running" for a test that needs one)."""
    from generations.models import Heartbeat

    Heartbeat.record(kind, hostname, pid, now=timezone.now() - timedelta(seconds=seconds_ago))


def offer_concepts(keys: list[str], seconds: int = 60) -> str:
    """The current provider's concept list (Luma: its GET /generations/concepts/list), put where
    the provider keeps it, so a page or the API offers ``keys`` without asking a service.
    Returns the cache key, for the test to delete."""
    from django.core.cache import cache

    from generations import providers

    key = providers.current().concepts_cache_key()  # type: ignore[attr-defined]
    cache.set(key, keys, seconds)
    return key
