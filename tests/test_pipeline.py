"""The whole pipeline through a real Celery worker and beat on a real Redis, against the
simulator over real HTTP: what a user of the JSON API sees."""

from __future__ import annotations

import signal
import time

import av
import pytest
import redis
import requests
from django.conf import settings
from django.test import Client

from generations import chains
from generations.models import Generation, Status
from tests.conftest import POLL_INTERVAL, wait_for
from tests.factories import in_progress_row, make_user, remote_create

pytestmark = pytest.mark.pipeline


@pytest.fixture
def api(pipeline) -> Client:
    client = Client()
    client.force_login(make_user())
    return client


def create(api: Client, **body) -> dict:
    response = api.post(
        "/api/v1/generations",
        {"user_prompt": "a fox running through snow", "aspect_ratio": "16:9", **body},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def wait_status(pk, status: str, timeout: float = 40, pipeline=None) -> Generation:
    def check():
        gen = Generation.objects.get(pk=pk)
        return gen if gen.status == status else None

    try:
        return wait_for(check, timeout, f"generation {pk} to reach {status}")
    except BaseException:
        if pipeline is not None:
            print(pipeline.logs())
        raise


def wait_local_copy(pk, timeout: float = 30) -> Generation:
    return wait_for(
        lambda: (
            Generation.objects.filter(pk=pk)
            .exclude(video_file="")
            .exclude(thumbnail_file="")
            .first()
        ),
        timeout,
        f"the local copy of {pk}",
    )


def posts_for(sim, prompt: str) -> list[dict]:
    return [p for p in sim.ledger()["posts"] if p["user_prompt"] == prompt]


def test_generation_goes_from_queued_to_completed_with_a_playable_local_copy(api, sim, pipeline):
    created = create(api, aspect_ratio="9:16")
    assert created["status"] == "queued"
    wait_status(created["id"], Status.COMPLETED, pipeline=pipeline)
    gen = wait_local_copy(created["id"])
    assert [e.status for e in gen.events.all()] == [
        "queued",
        "submitting",
        "in_progress",
        "completed",
    ]
    # The local copy is byte-identical to what the upstream served.
    upstream = requests.get(gen.video_url, timeout=10).content
    with gen.video_file.open("rb") as fh:
        assert fh.read() == upstream
    with av.open(gen.video_file.path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (360, 640)
        assert sum(1 for _ in container.decode(stream)) > 10
    # The API now points at the local copy.
    body = api.get(f"/api/v1/generations/{gen.pk}").json()
    assert body["status"] == "completed"
    assert body["video"]["local"] is True
    assert body["video"]["url"].startswith("http://testserver/media/videos/")
    assert api.get(body["video"]["url"].removeprefix("http://testserver")).status_code == 200
    assert len(posts_for(sim, "a fox running through snow")) == 1


def test_extension_completes_and_names_its_parent(api, sim, pipeline):
    parent = create(api, user_prompt="a paper boat on a river")
    wait_status(parent["id"], Status.COMPLETED, pipeline=pipeline)
    response = api.post(
        f"/api/v1/generations/{parent['id']}/extend",
        {"user_prompt": "the boat reaches the sea"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    child = response.json()
    assert child["parent_id"] == parent["id"]
    assert child["aspect_ratio"] == "16:9"
    wait_status(child["id"], Status.COMPLETED, pipeline=pipeline)
    wait_local_copy(child["id"])
    ext = posts_for(sim, "the boat reaches the sea")
    assert len(ext) == 1 and ext[0]["kind"] == "extend"
    assert ext[0]["parent_id"] == Generation.objects.get(pk=parent["id"]).remote_id
    tree = chains.tree(Generation.objects.get(pk=child["id"]))
    assert [str(node.gen.pk) for node in tree.nodes if node.gen] == [parent["id"], child["id"]]


def test_read_timeout_lands_in_needs_attention_with_no_second_post(api, sim, pipeline):
    sim.configure(slow_rate=1.0, slow_seconds=5)  # the worker's read time-out is 3 s
    created = create(api, user_prompt="slow one")
    gen = wait_status(created["id"], Status.NEEDS_ATTENTION, pipeline=pipeline)
    assert gen.posts_sent == 1
    sim.configure(slow_rate=0.0)
    # Give the sweeper and beat several rounds: nothing may send it again.
    wait_for(lambda: sim.ledger()["requests"] > 0, 5)
    import time

    time.sleep(4)
    assert len(posts_for(sim, "slow one")) == 1
    assert Generation.objects.get(pk=gen.pk).status == Status.NEEDS_ATTENTION


def test_rate_limits_and_server_errors_are_retried_until_accepted(api, sim, pipeline):
    sim.configure(rate_limit_rate=1.0, retry_after=1)
    created = create(api, user_prompt="patient one")
    wait_for(
        lambda: (
            Generation.objects.get(pk=created["id"])
            .events.filter(note__startswith="waiting: upstream rate limit (429)")
            .count()
            >= 2
        ),
        30,
        "two 429 refusals",
    )
    sim.configure(rate_limit_rate=0.0, error_rate=1.0, error_status=503)
    wait_for(
        lambda: (
            Generation.objects.get(pk=created["id"])
            .events.filter(note__startswith="waiting: upstream unavailable (503)")
            .exists()
        ),
        30,
        "a 503 refusal",
    )
    sim.configure(error_rate=0.0)
    gen = wait_status(created["id"], Status.COMPLETED, timeout=60, pipeline=pipeline)
    assert gen.posts_sent == 1
    assert len(posts_for(sim, "patient one")) == 1


def test_killed_worker_job_is_finished_by_another(api, sim, pipeline):
    created = create(api, user_prompt="survivor")
    wait_status(created["id"], Status.IN_PROGRESS, pipeline=pipeline)
    sim.configure(slow_rate=1.0, slow_seconds=2)  # polls now take 2 s: time to kill mid-poll
    wait_for(
        lambda: (
            Generation.objects.filter(pk=created["id"], last_polled_at__isnull=True)
            .exclude(poll_lease="")
            .exists()
        ),
        20,
        "a poll in flight",
    )
    pipeline.kill("worker1", signal.SIGKILL)
    sim.configure(slow_rate=0.0)
    pipeline.start("worker2")
    try:
        wait_status(created["id"], Status.COMPLETED, timeout=60, pipeline=pipeline)
        wait_local_copy(created["id"])
    finally:
        pipeline.kill("worker2", signal.SIGTERM)
        pipeline.start("worker1")
    assert len(posts_for(sim, "survivor")) == 1


def test_flushed_redis_loses_no_job(api, sim, pipeline, redis_url):
    pipeline.kill("worker1", signal.SIGTERM)
    created = create(api, user_prompt="lost message")  # its wake-up sits in Redis...
    broker = redis.Redis.from_url(redis_url)
    assert broker.llen("celery") >= 1
    broker.flushdb()  # ...and is gone
    pipeline.start("worker1")
    gen = wait_status(created["id"], Status.COMPLETED, timeout=60, pipeline=pipeline)
    assert gen.posts_sent == 1
    assert len(posts_for(sim, "lost message")) == 1


def test_a_test_that_does_not_ask_for_the_worker_has_none_polling_its_rows(
    transactional_db, sim, pipeline_session, redis_url
):
    """The suite's own guard: the shared worker and beat (started here if no test has yet) are
    stopped and their messages gone before a test that did not ask for ``pipeline`` runs, so
    they cannot poll the rows it commits or take the tasks it enqueues."""
    assert not pipeline_session.procs
    broker = redis.Redis.from_url(redis_url)
    # Django's cache shares the broker's Redis (its own key prefix): the Jobs page's change
    # stamps and the rate counts live there on purpose. Messages are what must be gone.
    cache_prefix = settings.CACHES["default"]["KEY_PREFIX"].encode() + b":"
    left = [
        key for key in broker.scan_iter() if not key.startswith((b"_kombu.binding", cache_prefix))
    ]
    assert left == []
    for i in range(3):
        in_progress_row(remote_create(sim, f"nobody polls me {i}")["id"])
    time.sleep(float(POLL_INTERVAL) * 4)  # four beats of a running pipeline
    assert not Generation.objects.filter(last_polled_at__isnull=False).exists()


def test_a_video_whose_cdn_link_expired_is_copied_from_a_fresh_link(api, sim, pipeline):
    """The CDN answers 404 to the video's first link; the worker asks the service again, gets
    a fresh link and copies from it: the video ends playable, with one POST."""
    sim.configure(expire_link_rate=1.0)
    created = create(api, user_prompt="a kite over the dunes")
    wait_status(created["id"], Status.COMPLETED, pipeline=pipeline)
    try:
        gen = wait_local_copy(created["id"], timeout=40)
    except BaseException:
        print(pipeline.logs())
        raise
    assert sim.ledger()["faults"]["expired_link"] == 1
    assert gen.asset_attempts == 2 and gen.asset_error == ""
    assert "link=1" in gen.video_url  # the fresh link, not the expired one
    with gen.video_file.open("rb") as fh:
        assert fh.read() == requests.get(gen.video_url, timeout=10).content
    assert len(posts_for(sim, "a kite over the dunes")) == 1


def test_a_timed_out_job_checked_again_completes_and_copies_without_a_second_post(
    api, sim, pipeline
):
    """lumaweb gave up on a job the service went on to finish: "Check again" has the worker
    poll it once more; it completes and its video is copied, with no new POST."""
    remote = remote_create(sim, "a heron taking off")
    gen = in_progress_row(remote["id"], prompt="a heron taking off", created_by=make_user())
    Generation.objects.filter(pk=gen.pk).update(
        status=Status.FAILED,
        state="dreaming",
        next_poll_at=None,
        error="Timed out: no progress for 10 minutes (last state 'dreaming').",
    )
    sim.force_complete(remote["id"])
    response = api.post(f"/generations/{gen.pk}/check-again/")
    assert response.status_code == 302
    wait_status(gen.pk, Status.COMPLETED, pipeline=pipeline)
    copied = wait_local_copy(gen.pk)
    assert copied.posts_sent == 1
    assert len(posts_for(sim, "a heron taking off")) == 1
