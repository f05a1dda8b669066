"""Every kind of generation Luma's official API makes, end to end through a real worker and
beat with ``LUMA_PROVIDER=luma`` against the simulator's luma dialect: a new video with a model,
resolution, duration and loop; an extension, a reverse extension (what came before) and an
interpolation of it. Each completes with a local copy byte-identical to the simulator's CDN
file, each POST's body (the simulator's ledger) carries the row's options and the right
keyframes, the GETs of no poll interval exceed ``LUMA_POLL_MAX_REQUESTS``, and the chain
shows both directions: the reverse extension plays before its parent, the interpolation between
its two sources.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from devtools.chaos import body_mismatch, most_in_interval, publishing_to, queue_from_sources
from devtools.processes import CeleryProcesses
from devtools.simulator_process import SimulatorProcess
from generations import actions, chains
from generations.inputs import GenerationRequest
from generations.models import Generation, Kind, Status
from tests.conftest import POLL_INTERVAL, wait_for
from tests.factories import make_user

pytestmark = pytest.mark.pipeline

BUDGET = 2


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def finished(*rows: Generation) -> list[Generation]:
    """The rows once each is completed and copied (a failure ends the wait at once)."""

    def check() -> list[Generation] | None:
        fresh = [Generation.objects.get(pk=row.pk) for row in rows]
        for gen in fresh:
            assert gen.status not in (Status.FAILED, Status.NEEDS_ATTENTION), (gen, gen.error)
        done = all(gen.status == Status.COMPLETED and gen.video_file for gen in fresh)
        return fresh if done else None

    return wait_for(check, 90, "the jobs to complete and be copied")


def test_create_extend_reverse_and_interpolate_complete_with_identical_copies(
    transactional_db, pipeline_env, spare_redis_url, tmp_path, settings, media_root: Path
):
    with SimulatorProcess(dialect="luma", duration=2, video_seconds=1, seed=11) as sim:
        env = {
            **pipeline_env,
            "LUMA_PROVIDER": "luma",
            "LUMA_API_BASE_URL": sim.api_url,
            "LUMA_POLL_MAX_REQUESTS": str(BUDGET),
            "REDIS_URL": spare_redis_url,
        }
        settings.LUMA_PROVIDER = "luma"
        settings.LUMA_API_BASE_URL = sim.api_url
        procs = CeleryProcesses(env, tmp_path)
        procs.start("worker-luma")
        procs.start("beat")
        try:
            user = make_user()
            with publishing_to(spare_redis_url):
                first = actions.create_generation(
                    user,
                    GenerationRequest(
                        user_prompt="a lighthouse at dusk",
                        aspect_ratio="9:16",
                        model="ray-flash-2",
                        resolution="1080p",
                        duration="9s",
                        loop=True,
                    ),
                )
                second = actions.create_generation(
                    user,
                    GenerationRequest(
                        user_prompt="a harbour at dawn", aspect_ratio="9:16", model="ray-1-6"
                    ),
                )
                first, second = finished(first, second)
                extension = actions.extend_generation(
                    first,
                    user,
                    GenerationRequest(
                        user_prompt="the light turns", aspect_ratio="9:16", resolution="540p"
                    ),
                )
                before = queue_from_sources(
                    user,
                    GenerationRequest(user_prompt="the boat comes in", aspect_ratio="9:16"),
                    Kind.REVERSE,
                    first,
                    None,
                )
                between = queue_from_sources(
                    user,
                    GenerationRequest(
                        user_prompt="night becomes morning", aspect_ratio="9:16", duration="9s"
                    ),
                    Kind.INTERPOLATE,
                    first,
                    second,
                )
                extension, before, between = finished(extension, before, between)
            ledger = sim.ledger()
        finally:
            procs.stop_all()
        rows = [first, second, extension, before, between]
        # Byte for byte what the simulator's CDN serves.
        for gen in rows:
            local = (media_root / gen.video_file.name).read_bytes()
            assert sha256(local) == sha256(requests.get(gen.video_url, timeout=30).content), gen
    # One POST each, its body carrying the row's options and keyframes.
    posts = {post["user_prompt"]: post for post in ledger["posts"]}
    assert len(ledger["posts"]) == len(rows)
    for gen in rows:
        assert body_mismatch(gen, posts[gen.user_prompt]) == "", gen.kind
    assert posts["a lighthouse at dusk"]["model"] == "ray-flash-2"
    assert posts["a lighthouse at dusk"]["loop"] is True
    assert posts["the light turns"]["keyframes"] == {
        "frame0": {"type": "generation", "id": first.remote_id}
    }
    assert posts["the boat comes in"]["keyframes"] == {
        "frame1": {"type": "generation", "id": first.remote_id}
    }
    assert posts["night becomes morning"]["keyframes"] == {
        "frame0": {"type": "generation", "id": first.remote_id},
        "frame1": {"type": "generation", "id": second.remote_id},
    }
    # Polling: one GET per id, never more in a poll interval than the budget.
    assert ledger["poll_times"]
    assert most_in_interval(ledger["poll_times"], float(POLL_INTERVAL)) <= BUDGET
    # The chain, both ways.
    assert chains.tree(before).current.direction == chains.BEFORE
    assert chains.tree(before).current.clips() == [before, first]
    assert chains.tree(extension).current.clips() == [first, extension]
    assert chains.tree(between).current.direction == chains.BETWEEN
    assert chains.tree(between).current.clips() == [first, between, second]
