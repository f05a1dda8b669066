"""An expired video link with ``LUMA_PROVIDER=luma``: the copy asks the provider for the
generation again (Luma: ``GET /generations/{id}``), not UmamiAI's batch GET, and copies from
the fresh link. Luma's asset links may expire quickly, so this is the common case there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.utils import timezone

from devtools.simulator_process import SimulatorProcess
from generations import actions, pipeline
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from generations.pipeline import hold, poll
from tests.factories import make_user

KEY = "lk-test-copy-fresh-links-0123456789abcdef"


@pytest.fixture(scope="module")
def luma_simulator() -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(dialect="luma", duration=2, video_seconds=1, seed=11)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def lsim(luma_simulator: SimulatorProcess, settings) -> Iterator[SimulatorProcess]:
    luma_simulator.reset(restore_config=True)
    luma_simulator.configure(api_key=KEY, expire_link_rate=1.0)
    settings.LUMA_PROVIDER = "luma"
    settings.LUMA_API_BASE_URL = luma_simulator.api_url
    settings.LUMA_API_KEY = KEY
    settings.LUMA_POLL_INTERVAL = 3600
    cache.delete(poll.budget_key())
    hold.forget_balance()
    yield luma_simulator
    cache.delete(poll.budget_key())
    hold.forget_balance()


def test_an_expired_luma_link_is_asked_for_again_and_the_copy_made_from_the_fresh_one(db, lsim):
    gen = actions.create_generation(
        make_user(), GenerationRequest(user_prompt="a harbour at dawn", aspect_ratio="16:9")
    )
    assert pipeline.submit(gen.pk).result == "accepted"
    gen.refresh_from_db()
    lsim.force_complete(gen.remote_id)
    Generation.objects.filter(pk=gen.pk).update(next_poll_at=timezone.now())
    pipeline.poll_in_flight()
    gen.refresh_from_db()
    assert gen.status == Status.COMPLETED
    old_url = gen.video_url

    assert pipeline.copy_assets(gen.pk) == "retry"  # 404: the provider is asked again
    gen.refresh_from_db()
    assert gen.video_url != old_url and gen.video_url.startswith(lsim.base_url)
    assert "expired" in gen.asset_error

    Generation.objects.filter(pk=gen.pk).update(assets_next_at=timezone.now())
    assert pipeline.copy_assets(gen.pk) == "copied"
    gen.refresh_from_db()
    assert gen.video_file and gen.asset_error == ""
    assert lsim.ledger()["faults"]["expired_link"] == 1
    assert len(lsim.ledger()["posts"]) == 1  # asking again is a GET: nothing paid twice
