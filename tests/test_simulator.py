"""The upstream API simulator, exercised as a real subprocess over real HTTP."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
import pytest
import requests
from PIL import Image

from devtools.simulator_process import SimulatorProcess

AUTH = {"Authorization": "Bearer test-key"}
VIDEO_SECONDS = 2
FPS = 24
GENERATION_KEYS = {
    "id",
    "created_at",
    "estimate_wait_seconds",
    "liked",
    "prompt",
    "state",
    "video",
    "failure_reason",
}


@pytest.fixture(scope="module")
def own_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """A simulator of this module's own: fast generations, short clips, fixed seed."""
    media_dir = tmp_path_factory.mktemp("sim-media")
    with SimulatorProcess(
        duration=1, seed=7, video_seconds=VIDEO_SECONDS, fps=FPS, media_dir=media_dir
    ) as process:
        yield process


@pytest.fixture
def sim(own_simulator: SimulatorProcess) -> SimulatorProcess:
    """Overrides conftest's `sim`: this module's simulator, emptied and on its start-up config."""
    own_simulator.reset(restore_config=True)
    return own_simulator


def create(
    sim: SimulatorProcess, headers: dict[str, str] | None = None, **body: Any
) -> requests.Response:
    body.setdefault("user_prompt", "A beautiful sunset over the ocean")
    return requests.post(
        f"{sim.api_url}/luma-ai/generations",
        json=body,
        headers=AUTH if headers is None else headers,
        timeout=10,
    )


def fetch(sim: SimulatorProcess, query: str) -> list[dict[str, Any]]:
    response = requests.get(f"{sim.api_url}/luma-ai/generation?{query}", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def get_one(sim: SimulatorProcess, generation_id: str) -> dict[str, Any]:
    (generation,) = fetch(sim, f"ids[0]={generation_id}")
    return generation


def states_until_done(
    sim: SimulatorProcess, created: dict[str, Any], timeout: float = 5
) -> list[str]:
    """Poll quickly and return the distinct states seen, in order, starting with `created`'s."""
    generation_id, seen = created["id"], [created["state"]]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = get_one(sim, generation_id)["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in ("completed", "failed"):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"not done after {timeout}s: {seen}")


def wait_for(check: Callable[[], Any], timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def completed(sim: SimulatorProcess, **body: Any) -> dict[str, Any]:
    generation_id = create(sim, **body).json()["id"]
    sim.force_complete(generation_id)
    return get_one(sim, generation_id)


def assert_aggregator_error(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    payload = response.json()
    assert set(payload) == {"message", "path", "requestId", "statusCode", "timestamp"}
    assert payload["statusCode"] == status
    assert payload["requestId"]
    return payload


def test_create_returns_documented_shape(sim: SimulatorProcess) -> None:
    response = create(sim, aspect_ratio="9:16")

    assert response.status_code == 200
    generation = response.json()
    assert set(generation) == GENERATION_KEYS
    assert len(generation["id"]) == 36
    assert generation["created_at"].endswith("Z") and len(generation["created_at"]) == 24
    assert generation["liked"] is None
    assert generation["prompt"] == "A beautiful sunset over the ocean"
    assert generation["state"] in ("pending", "queued")
    assert generation["video"] == {"url": None, "thumbnail": None, "width": 0, "height": 0}
    assert generation["failure_reason"] is None


def test_expand_prompt_returns_a_richer_prompt(sim: SimulatorProcess) -> None:
    first = create(sim, user_prompt="a cat", expand_prompt=True).json()
    second = create(sim, user_prompt="a cat", expand_prompt=True).json()

    assert first["prompt"].startswith("a cat") and len(first["prompt"]) > 20
    assert first["prompt"] == second["prompt"]


def test_generation_completes_with_a_real_h264_video_and_thumbnail(sim: SimulatorProcess) -> None:
    created = create(sim, aspect_ratio="4:3").json()

    assert states_until_done(sim, created)[-1] == "completed"
    generation_id = created["id"]
    generation = get_one(sim, generation_id)
    assert (generation["video"]["width"], generation["video"]["height"]) == (640, 480)
    video = requests.get(generation["video"]["url"], timeout=10)
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/mp4"
    assert int(video.headers["Content-Length"]) == len(video.content)
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (640, 480)
        frames = sum(1 for _ in container.decode(stream))
    assert frames >= FPS * VIDEO_SECONDS - 1
    thumbnail = requests.get(generation["video"]["thumbnail"], timeout=10)
    assert thumbnail.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(thumbnail.content))
    assert image.format == "JPEG" and image.size == (640, 480)


@pytest.mark.parametrize(
    ("vocabulary", "expected"),
    [
        ("classic", ["pending", "processing", "completed"]),
        ("luma", ["queued", "dreaming", "completed"]),
    ],
)
def test_vocabulary_decides_the_state_names(
    sim: SimulatorProcess, vocabulary: str, expected: list[str]
) -> None:
    sim.configure(vocabulary=vocabulary)
    assert states_until_done(sim, create(sim).json()) == expected


def test_mixed_vocabulary_uses_both(sim: SimulatorProcess) -> None:
    states = {create(sim).json()["state"] for _ in range(16)}

    assert states == {"pending", "queued"}


def test_unknown_state_appears_before_normal_progress(sim: SimulatorProcess) -> None:
    sim.configure(unknown_state_rate=1.0, vocabulary="classic", duration=1.5)
    seen = states_until_done(sim, create(sim).json())
    assert seen[0] == "pending" and seen[-2:] == ["processing", "completed"]
    assert len(seen) == 4 and seen[1] not in ("pending", "processing", "completed", "failed")


def test_fail_rate_ends_failed_with_a_reason(sim: SimulatorProcess) -> None:
    sim.configure(fail_rate=1.0)
    created = create(sim).json()

    assert states_until_done(sim, created)[-1] == "failed"
    generation = get_one(sim, created["id"])
    assert generation["failure_reason"]
    assert generation["video"]["url"] is None


def test_estimate_wait_seconds_varies_in_type(sim: SimulatorProcess) -> None:
    sim.configure(duration=60)
    generation_id = create(sim).json()["id"]

    kinds = {type(get_one(sim, generation_id)["estimate_wait_seconds"]) for _ in range(30)}
    assert kinds == {int, str, type(None)}


def test_get_accepts_indexed_repeated_and_comma_separated_ids(sim: SimulatorProcess) -> None:
    first, second = create(sim).json()["id"], create(sim).json()["id"]

    for query in (
        f"ids[0]={first}&ids[1]={second}",
        f"ids={first}&ids={second}",
        f"ids={first},{second}",
    ):
        assert [g["id"] for g in fetch(sim, query)] == [first, second], query
    assert [g["id"] for g in fetch(sim, f"ids={first}")] == [first]


def test_get_omits_unknown_ids(sim: SimulatorProcess) -> None:
    known = create(sim).json()["id"]

    found = fetch(sim, f"ids[0]=00000000-0000-0000-0000-000000000000&ids[1]={known}")
    assert [g["id"] for g in found] == [known]


def test_get_rejects_more_than_100_ids(sim: SimulatorProcess) -> None:
    query = "&".join(f"ids[{i}]=id{i}" for i in range(101))
    response = requests.get(f"{sim.api_url}/luma-ai/generation?{query}", headers=AUTH, timeout=10)

    assert_aggregator_error(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"aspect_ratio": "16:9"}',
        b'{"user_prompt": "   "}',
        b'{"user_prompt": "x", "aspect_ratio": "2:1"}',
        b'{"user_prompt": "x", "expand_prompt": "yes"}',
        b'{"user_prompt": "x", "image_url": "ftp://example.com/a.jpg"}',
        ('{"user_prompt": "' + "x" * 5001 + '"}').encode(),
    ],
)
def test_bad_body_is_400(sim: SimulatorProcess, body: bytes) -> None:
    response = requests.post(
        f"{sim.api_url}/luma-ai/generations",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=10,
    )

    assert_aggregator_error(response, 400)
    assert sim.ledger()["posts"] == []


def test_extend_of_an_incomplete_generation_is_400(sim: SimulatorProcess) -> None:
    generation_id = create(sim).json()["id"]
    response = requests.post(
        f"{sim.api_url}/luma-ai/generations/{generation_id}/extend",
        json={"user_prompt": "more"},
        headers=AUTH,
        timeout=10,
    )

    payload = assert_aggregator_error(response, 400)
    assert payload["message"] == "Only completed generations can be extended"


def test_extend_of_an_unknown_generation_is_404(sim: SimulatorProcess) -> None:
    response = requests.post(
        f"{sim.api_url}/luma-ai/generations/nope/extend",
        json={"user_prompt": "more"},
        headers=AUTH,
        timeout=10,
    )

    assert_aggregator_error(response, 404)


def test_extend_after_completion_creates_a_child_recorded_in_the_ledger(
    sim: SimulatorProcess,
) -> None:
    parent = completed(sim, aspect_ratio="1:1")
    response = requests.post(
        f"{sim.api_url}/luma-ai/generations/{parent['id']}/extend",
        json={"user_prompt": "the sun dives"},
        headers=AUTH,
        timeout=10,
    )

    assert response.status_code == 200
    child = response.json()
    assert child["id"] != parent["id"] and child["state"] in ("pending", "queued")
    posts = sim.ledger()["posts"]
    assert [(p["kind"], p["parent_id"]) for p in posts] == [
        ("create", None),
        ("extend", parent["id"]),
    ]
    assert posts[1]["id"] == child["id"] and posts[1]["user_prompt"] == "the sun dives"
    sim.force_complete(child["id"])
    assert get_one(sim, child["id"])["video"]["width"] == 480  # keeps the parent's frame


def test_bearer_token_is_required(sim: SimulatorProcess) -> None:
    assert_aggregator_error(create(sim, headers={}), 401)
    assert_aggregator_error(create(sim, headers={"Authorization": "Bearer "}), 401)
    assert create(sim, headers={"Authorization": "Bearer anything"}).status_code == 200


def test_api_key_is_enforced(sim: SimulatorProcess) -> None:
    sim.configure(api_key="s3cret")

    assert_aggregator_error(create(sim), 401)
    assert create(sim, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_error_rate_answers_5xx_in_aggregator_json(sim: SimulatorProcess) -> None:
    sim.configure(error_rate=1.0)

    for _ in range(5):
        response = create(sim)
        assert response.status_code in (500, 502, 503)
        assert_aggregator_error(response, response.status_code)
    ledger = sim.ledger()
    assert ledger["posts"] == [] and ledger["faults"]["error"] == 5


def test_rate_limit_answers_429_with_retry_after(sim: SimulatorProcess) -> None:
    sim.configure(rate_limit_rate=1.0, retry_after=7)

    response = create(sim)
    assert_aggregator_error(response, 429)
    assert response.headers["Retry-After"] == "7"
    assert sim.ledger()["faults"]["rate_limited"] == 1


def test_slow_post_records_the_generation_although_the_client_times_out(
    sim: SimulatorProcess,
) -> None:
    sim.configure(slow_rate=1.0, slow_seconds=1.5)

    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{sim.api_url}/luma-ai/generations",
            json={"user_prompt": "slow"},
            headers=AUTH,
            timeout=(2, 0.3),
        )
    ledger = sim.ledger()
    assert [p["user_prompt"] for p in ledger["posts"]] == ["slow"]
    assert ledger["faults"]["slow"] == 1


def test_late_url_is_completed_with_a_null_url_for_a_while(sim: SimulatorProcess) -> None:
    sim.configure(late_url_rate=1.0, late_url_seconds=0.8)
    generation = completed(sim)

    assert generation["state"] == "completed" and generation["video"]["url"] is None
    cdn = requests.get(f"{sim.base_url}/cdn/{generation['id']}.mp4", timeout=10)
    assert cdn.status_code == 404
    later = wait_for(lambda: get_one(sim, generation["id"])["video"]["url"], timeout=3)
    assert later.endswith(f"/cdn/{generation['id']}.mp4")


def test_credits_run_out_with_403(sim: SimulatorProcess) -> None:
    sim.configure(credits=1_000_000)

    assert create(sim).status_code == 200
    assert create(sim).status_code == 200
    payload = assert_aggregator_error(create(sim), 403)
    assert payload["message"] == "You've run out of credits"
    assert len(sim.ledger()["posts"]) == 2


def test_concurrent_video_fetches_get_identical_bytes(sim: SimulatorProcess) -> None:
    generation_id = create(sim).json()["id"]
    sim.force_complete(generation_id)
    url = f"{sim.base_url}/cdn/{generation_id}.mp4"  # no GET yet: nothing pre-rendered

    with ThreadPoolExecutor(max_workers=6) as pool:
        bodies = list(pool.map(lambda _: requests.get(url, timeout=20).content, range(6)))
    assert len(bodies[0]) > 1000
    assert all(body == bodies[0] for body in bodies)


def test_cdn_supports_head_and_byte_ranges(sim: SimulatorProcess) -> None:
    url = completed(sim)["video"]["url"]

    size = int(requests.head(url, timeout=10).headers["Content-Length"])
    part = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["Content-Range"] == f"bytes 0-99/{size}"


def test_unknown_path_is_404_in_aggregator_shape(sim: SimulatorProcess) -> None:
    response = requests.get(f"{sim.api_url}/luma-ai/nothing", headers=AUTH, timeout=10)

    assert_aggregator_error(response, 404)


def test_ledger_counts_get_requests_and_ids(sim: SimulatorProcess) -> None:
    first, second = create(sim).json()["id"], create(sim).json()["id"]
    fetch(sim, f"ids={first},{second}")
    fetch(sim, f"ids={first}")

    ledger = sim.ledger()
    assert (ledger["get_requests"], ledger["get_ids"], ledger["requests"]) == (2, 3, 4)


def test_config_rejects_unknown_or_bad_settings(sim: SimulatorProcess) -> None:
    for settings in ({"bogus": 1}, {"error_rate": 2}, {"port": 1}, {"duration": "fast"}):
        response = requests.post(
            f"{sim.base_url}/_sim/config", json=settings, headers=sim.control_headers, timeout=10
        )
        assert_aggregator_error(response, 400)


def test_an_expired_link_answers_404_and_a_fresh_get_hands_out_one_that_works(
    sim: SimulatorProcess,
) -> None:
    """CDN links expire: ``expire_link_rate`` makes a video's first link answer 404 when it is
    fetched; the generation's next GET hands out a new link, and the old one stays dead."""
    sim.configure(expire_link_rate=1.0)
    generation = completed(sim)
    first = generation["video"]["url"]

    assert requests.get(first, timeout=10).status_code == 404
    fresh = get_one(sim, generation["id"])["video"]["url"]
    assert fresh != first
    assert requests.get(fresh, timeout=20).status_code == 200
    assert requests.get(first, timeout=10).status_code == 404
    assert sim.ledger()["faults"]["expired_link"] == 1


def test_a_restarted_simulator_still_knows_the_generations_in_flight(tmp_path) -> None:
    """``--state``: a simulator killed (no goodbye) and started again on the same state file
    still knows its generations, finishes them on their own timeline and serves their videos;
    its ledger still has the POST."""
    state = tmp_path / "state.json"
    flags = {"duration": 3, "seed": 3, "video_seconds": 1, "state": state}
    first = SimulatorProcess(media_dir=tmp_path / "media-1", **flags).start()
    try:
        created = create(first, user_prompt="a ferry crossing at night").json()
        running = create(first, user_prompt="a second one, finished before the restart").json()
        first.force_complete(running["id"])
        assert first.process is not None
        first.process.kill()  # SIGKILL: nothing written on the way out
        first.process.wait(timeout=5)
    finally:
        first.stop()

    with SimulatorProcess(media_dir=tmp_path / "media-2", **flags) as second:
        generation = get_one(second, created["id"])
        assert generation["prompt"] == "a ferry crossing at night"
        assert generation["state"] != "completed"  # still on its timeline, not restarted
        assert get_one(second, running["id"])["state"] == "completed"
        done = wait_for(
            lambda: (g := get_one(second, created["id"]))["video"]["url"] and g, timeout=10
        )
        video = requests.get(done["video"]["url"], timeout=30)
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
        assert [p["id"] for p in second.ledger()["posts"]] == [created["id"], running["id"]]


def test_an_unreadable_state_file_is_set_aside_and_the_simulator_starts_empty(tmp_path) -> None:
    from simulator.server import Config, Simulator

    state = tmp_path / "state.json"
    state.write_text('{"generations": [')  # cut short
    simulator = Simulator(Config(state=str(state), media_dir=str(tmp_path / "media")))
    assert simulator.generations == {}
    assert (tmp_path / "state.json.unreadable").exists() and not state.exists()


def test_a_restarted_simulator_keeps_the_accounts_credits(tmp_path) -> None:
    """``--state`` keeps the balance too: credits spent before a restart stay spent (the flag
    is the starting balance, not a top-up at every start), and the account still runs out
    where it would have without the restart."""
    state = tmp_path / "state.json"
    flags = {"duration": 3, "seed": 5, "video_seconds": 1, "state": state, "credits": 1_500_000}
    first = SimulatorProcess(media_dir=tmp_path / "media-1", **flags).start()
    try:
        assert create(first).status_code == 200
        assert create(first).status_code == 200
        assert first._control("GET", "/_sim/config")["credits"] == 500_000
        assert first.process is not None
        first.process.kill()  # SIGKILL: nothing written on the way out
        first.process.wait(timeout=5)
    finally:
        first.stop()

    with SimulatorProcess(media_dir=tmp_path / "media-2", **flags) as second:
        assert second._control("GET", "/_sim/config")["credits"] == 500_000
        assert create(second).status_code == 200
        payload = assert_aggregator_error(create(second), 403)
        assert payload["message"] == "You've run out of credits"
        second.configure(credits=2_000_000)  # a top-up through the control endpoint is kept too

    with SimulatorProcess(media_dir=tmp_path / "media-3", **flags) as third:
        assert third._control("GET", "/_sim/config")["credits"] == 2_000_000


def frames_of(url: str) -> int:
    video = requests.get(url, timeout=30)
    assert video.status_code == 200
    with av.open(io.BytesIO(video.content)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


@pytest.mark.parametrize("holds_parent", [False, True])
def test_an_extension_is_its_own_part_unless_told_to_hold_its_parent_too(
    sim: SimulatorProcess, holds_parent: bool
) -> None:
    """Like Luma's (docs/ARCHITECTURE.md, "Chains"), an extension's video is the new part alone
    by default; with `extension_contains_parent` it is the chain so far, parent first."""
    if holds_parent:
        assert sim.configure(extension_contains_parent=True)["extension_contains_parent"] is True
    parent = completed(sim)
    child = requests.post(
        f"{sim.api_url}/luma-ai/generations/{parent['id']}/extend",
        json={"user_prompt": "the sun dives"},
        headers=AUTH,
        timeout=10,
    ).json()
    sim.force_complete(child["id"])
    own = FPS * VIDEO_SECONDS
    assert frames_of(get_one(sim, parent["id"])["video"]["url"]) == own
    assert frames_of(get_one(sim, child["id"])["video"]["url"]) == (
        2 * own if holds_parent else own
    )


def test_the_extension_flag_is_a_boolean(sim: SimulatorProcess) -> None:
    response = requests.post(
        f"{sim.base_url}/_sim/config",
        json={"extension_contains_parent": 1},
        headers=sim.control_headers,
        timeout=10,
    )
    assert response.status_code == 400
    assert "true or false" in response.json()["message"]
