"""The simulator's luma dialect (``--dialect luma``: Luma's own Dream Machine API shape), as a
real subprocess over real HTTP: routes, validation, paging, credits, faults, callbacks, and
the pictures (progress video, resolution, duration, loop, extend, reverse extend,
interpolation), decoded with PyAV."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import pytest
import requests
from PIL import Image, ImageChops, ImageStat

from devtools.simulator_process import SimulatorProcess

AUTH = {"Authorization": "Bearer test-key"}
VIDEO_SECONDS = 2  # a 5s clip; 9s is 1.8 times as long
FPS = 8
GENERATION_KEYS = {
    "id",
    "generation_type",
    "state",
    "failure_reason",
    "created_at",
    "assets",
    "model",
    "request",
}


class Origin:
    """A real HTTP server on 127.0.0.1: serves a keyframe image and records callbacks."""

    def __init__(self) -> None:
        self.callbacks: list[dict[str, Any]] = []
        self.answers: list[int] = []  # statuses to answer callbacks with, in turn; then 200
        origin = self
        images = {}
        for name, color in (("red", (250, 20, 20)), ("blue", (20, 20, 250))):
            png = io.BytesIO()
            Image.new("RGB", (64, 36), color).save(png, "PNG")
            images[f"/{name}.png"] = png.getvalue()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                image = images.get(self.path)
                if image is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(image)))
                self.end_headers()
                self.wfile.write(image)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = origin.answers.pop(0) if origin.answers else 200
                origin.callbacks.append(
                    {"path": self.path, "body": json.loads(body), "answered": status}
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


@pytest.fixture(scope="module")
def own_simulator(
    tmp_path_factory: pytest.TempPathFactory, origin: Origin
) -> Iterator[SimulatorProcess]:
    """A luma-dialect simulator: fast generations, short clips, fixed seed; the test's origin
    is allowed (keyframes and callbacks)."""
    media_dir = tmp_path_factory.mktemp("sim-luma-media")
    with SimulatorProcess(
        dialect="luma",
        duration=1,
        seed=7,
        video_seconds=VIDEO_SECONDS,
        fps=FPS,
        media_dir=media_dir,
        allow_fetch_from=origin.url,
    ) as process:
        yield process


@pytest.fixture
def sim(own_simulator: SimulatorProcess, origin: Origin) -> SimulatorProcess:
    own_simulator.reset(restore_config=True)
    origin.callbacks.clear()
    origin.answers.clear()
    return own_simulator


def create(
    sim: SimulatorProcess,
    headers: dict[str, str] | None = None,
    path: str = "/generations",
    **body: Any,
) -> requests.Response:
    body.setdefault("prompt", "A lighthouse in a storm")
    body.setdefault("model", "ray-2")
    body.setdefault("resolution", "540p")
    return requests.post(
        f"{sim.api_url}{path}", json=body, headers=AUTH if headers is None else headers, timeout=10
    )


def get(sim: SimulatorProcess, generation_id: str) -> requests.Response:
    return requests.get(f"{sim.api_url}/generations/{generation_id}", headers=AUTH, timeout=10)


def wait_for(check: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.03)
    raise AssertionError("condition not met in time")


def completed(sim: SimulatorProcess, **body: Any) -> dict[str, Any]:
    response = create(sim, **body)
    assert response.status_code == 201, response.text
    generation_id = response.json()["id"]
    sim.force_complete(generation_id)
    return wait_for(lambda: (g := get(sim, generation_id).json())["assets"]["video"] and g)


def frames(url: str) -> list[Image.Image]:
    response = requests.get(url, timeout=60)
    assert response.status_code == 200, response.text
    with av.open(io.BytesIO(response.content)) as container:
        return [frame.to_image() for frame in container.decode(container.streams.video[0])]


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0-255."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB").resize(a.size))
    return sum(ImageStat.Stat(diff).mean) / 3


def assert_detail(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"detail"} and isinstance(payload["detail"], str), payload
    return payload["detail"]


# -- routes ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/generations", "/generations/video"])
def test_create_answers_the_generation_object_queued(sim: SimulatorProcess, path: str) -> None:
    body = {
        "aspect_ratio": "9:16",
        "duration": "9s",
        "loop": True,
        "concepts": [{"key": "orbit_left"}],
    }
    response = create(sim, path=path, **body)

    assert response.status_code == 201, response.text
    generation = response.json()
    assert set(generation) == GENERATION_KEYS
    assert generation["state"] == "queued"
    assert generation["generation_type"] == "video"
    assert generation["model"] == "ray-2"
    assert generation["assets"] is None and generation["failure_reason"] is None
    assert generation["created_at"].endswith("Z")
    assert generation["request"] == {
        "prompt": "A lighthouse in a storm",
        "model": "ray-2",
        "resolution": "540p",
        **body,
    }
    assert get(sim, generation["id"]).json()["id"] == generation["id"]


def test_lifecycle_progress_video_while_dreaming_then_video_and_image(
    sim: SimulatorProcess,
) -> None:
    sim.configure(duration=6)
    generation_id = create(sim).json()["id"]

    dreaming = wait_for(lambda: (g := get(sim, generation_id).json())["state"] == "dreaming" and g)
    assets = dreaming["assets"]
    assert assets["video"] is None and assets["image"] is None and assets["progress_video"]
    progress = frames(assets["progress_video"])
    sim.force_complete(generation_id)
    done = wait_for(lambda: (g := get(sim, generation_id).json())["assets"]["video"] and g)
    assert done["state"] == "completed"
    video = frames(done["assets"]["video"])
    assert done["assets"]["progress_video"] != done["assets"]["video"]
    # a different file: smaller picture, fewer frames (a client copying it is caught)
    assert progress[0].size == (320, 180) and video[0].size == (640, 360)
    assert len(progress) < len(video) == VIDEO_SECONDS * FPS
    image = requests.get(done["assets"]["image"], timeout=10)
    assert image.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size == (640, 360)


def test_unknown_generation_is_404_and_delete_removes_it(sim: SimulatorProcess) -> None:
    assert "not found" in assert_detail(get(sim, "no-such-id"), 404)
    generation_id = create(sim).json()["id"]

    deleted = requests.delete(
        f"{sim.api_url}/generations/{generation_id}", headers=AUTH, timeout=10
    )

    assert deleted.status_code == 204 and deleted.content == b""
    assert_detail(get(sim, generation_id), 404)
    again = requests.delete(f"{sim.api_url}/generations/{generation_id}", headers=AUTH, timeout=10)
    assert_detail(again, 404)


def test_list_is_newest_first_and_pages(sim: SimulatorProcess) -> None:
    ids = [create(sim, prompt=f"clip {n}").json()["id"] for n in range(3)]

    def page(query: str) -> dict[str, Any]:
        response = requests.get(f"{sim.api_url}/generations?{query}", headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    first = page("limit=2&offset=0")
    assert [g["id"] for g in first["generations"]] == [ids[2], ids[1]]
    assert (first["count"], first["has_more"], first["limit"], first["offset"]) == (2, True, 2, 0)
    second = page("limit=2&offset=2")
    assert [g["id"] for g in second["generations"]] == [ids[0]]
    assert (second["count"], second["has_more"]) == (1, False)
    assert len(page("")["generations"]) == 3
    for bad in ("limit=0", "limit=101", "limit=x", "offset=-1"):
        response = requests.get(f"{sim.api_url}/generations?{bad}", headers=AUTH, timeout=10)
        assert_detail(response, 400)


def test_concepts_list(sim: SimulatorProcess) -> None:
    response = requests.get(f"{sim.api_url}/generations/concepts/list", headers=AUTH, timeout=10)

    assert response.status_code == 200
    concepts = response.json()
    assert {"dolly_zoom", "orbit_left", "push_in", "pull_out", "crane_up"} <= set(concepts)
    assert all(isinstance(c, str) for c in concepts)


def test_the_umamiai_routes_are_not_spoken(sim: SimulatorProcess) -> None:
    response = requests.post(
        f"{sim.api_url}/luma-ai/generations", json={"user_prompt": "x"}, headers=AUTH, timeout=10
    )
    assert_detail(response, 404)


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": None}, "model is required"),
        ({"model": "ray-9"}, "model must be one of"),
        ({"aspect_ratio": "2:1"}, "aspect_ratio"),
        ({"resolution": "8k"}, "resolution"),
        ({"duration": "7s"}, "duration"),
        ({"loop": "yes"}, "loop"),
        ({"concepts": [{"key": "moonwalk"}]}, "concept"),
        ({"concepts": "orbit_left"}, "concepts"),
        ({"callback_url": "ftp://x/y"}, "callback_url"),
        ({"keyframes": {"frame2": {"type": "image", "url": "http://a/b.png"}}}, "keyframes"),
        ({"keyframes": {"frame0": {"type": "video", "url": "http://a/b.mp4"}}}, "type"),
        ({"keyframes": {"frame0": {"type": "image", "url": "file:///etc/passwd"}}}, "url"),
        ({"keyframes": {"frame1": {"type": "generation", "id": "nope"}}}, "not found"),
        ({"prompt": ""}, "prompt"),
    ],
)
def test_bad_bodies_are_400_with_detail(
    sim: SimulatorProcess, body: dict[str, Any], words: str
) -> None:
    payload = {"prompt": "x", "model": "ray-2", **body}
    payload = {key: value for key, value in payload.items() if value is not None}
    response = requests.post(f"{sim.api_url}/generations", json=payload, headers=AUTH, timeout=10)

    assert words in assert_detail(response, 400)
    assert sim.ledger()["posts"] == []


def test_a_body_that_is_not_json_is_400(sim: SimulatorProcess) -> None:
    response = requests.post(
        f"{sim.api_url}/generations",
        data=b"{",
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=10,
    )
    assert_detail(response, 400)


def test_a_generation_keyframe_must_be_completed(sim: SimulatorProcess) -> None:
    running = create(sim).json()["id"]
    response = create(sim, keyframes={"frame0": {"type": "generation", "id": running}})

    assert "not completed" in assert_detail(response, 400)


def test_bearer_token_is_required_and_checked(sim: SimulatorProcess) -> None:
    assert_detail(create(sim, headers={}), 401)
    sim.configure(api_key="right")
    assert_detail(create(sim, headers={"Authorization": "Bearer wrong"}), 401)
    assert create(sim, headers={"Authorization": "Bearer right"}).status_code == 201


# -- credits -----------------------------------------------------------------------------


def balance(sim: SimulatorProcess) -> float:
    response = requests.get(f"{sim.api_url}/credits", headers=AUTH, timeout=10)
    assert response.status_code == 200
    value = response.json()["credit_balance"]
    assert isinstance(value, float)
    return value


def test_creates_are_charged_by_model_resolution_and_duration(sim: SimulatorProcess) -> None:
    sim.configure(credits=1000)
    assert balance(sim) == 1000.0

    create(sim, model="ray-2", resolution="540p", duration="5s")
    assert balance(sim) == 960.0
    create(sim, model="ray-2", resolution="540p", duration="9s")
    assert balance(sim) == 960.0 - 72
    create(sim, model="ray-flash-2", resolution="1080p")
    assert balance(sim) == 960.0 - 72 - 54
    assert [p["price"] for p in sim.ledger()["posts"]] == [40, 72, 54]
    assert sim.ledger()["credit_balance"] == 960.0 - 72 - 54


def test_insufficient_credits_is_400_and_charges_nothing(sim: SimulatorProcess) -> None:
    sim.configure(credits=50)
    assert create(sim).status_code == 201  # 40

    assert assert_detail(create(sim), 400) == "Insufficient credits"
    assert balance(sim) == 10.0
    assert len(sim.ledger()["posts"]) == 1


def test_a_failed_generation_is_refunded(sim: SimulatorProcess) -> None:
    sim.configure(credits=100, fail_rate=1.0)
    generation_id = create(sim).json()["id"]
    assert balance(sim) == 60.0

    failed = wait_for(lambda: (g := get(sim, generation_id).json())["state"] == "failed" and g)

    assert failed["failure_reason"] and failed["assets"] is None
    assert balance(sim) == 100.0
    assert balance(sim) == 100.0  # once


# -- faults ------------------------------------------------------------------------------


def test_injected_errors_answer_5xx_with_detail(sim: SimulatorProcess) -> None:
    sim.configure(error_rate=1.0, error_status=503)

    assert_detail(create(sim), 503)
    assert_detail(get(sim, "x"), 503)
    assert sim.ledger()["faults"]["error"] == 2


def test_rate_limit_answers_429_with_retry_after(sim: SimulatorProcess) -> None:
    sim.configure(rate_limit_rate=1.0, retry_after=7)
    response = create(sim)

    assert_detail(response, 429)
    assert response.headers["Retry-After"] == "7"
    assert sim.ledger()["posts"] == [] and len(sim.ledger()["post_times"]) == 1


def test_an_error_after_create_still_made_and_charged_the_generation(sim: SimulatorProcess) -> None:
    sim.configure(error_after_create_rate=1.0, credits=100)
    assert_detail(create(sim), 502)

    (post,) = sim.ledger()["posts"]
    listed = requests.get(f"{sim.api_url}/generations", headers=AUTH, timeout=10).json()
    assert [g["id"] for g in listed["generations"]] == [post["id"]]
    assert balance(sim) == 60.0


def test_a_slow_reply_is_slow(sim: SimulatorProcess) -> None:
    sim.configure(slow_rate=1.0, slow_seconds=5)
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{sim.api_url}/credits", headers=AUTH, timeout=0.5)
    assert sim.ledger()["faults"]["slow"] == 1


def test_a_late_url_is_completed_without_assets_for_a_while(sim: SimulatorProcess) -> None:
    sim.configure(late_url_rate=1.0, late_url_seconds=60)
    generation_id = create(sim).json()["id"]
    sim.force_complete(generation_id)

    generation = get(sim, generation_id).json()
    assert generation["state"] == "completed"
    assert generation["assets"]["video"] is None and generation["assets"]["image"] is None


def test_an_expired_video_link_answers_404_and_the_next_get_has_a_fresh_one(
    sim: SimulatorProcess,
) -> None:
    sim.configure(expire_link_rate=1.0)
    generation = completed(sim)
    first = generation["assets"]["video"]

    assert requests.get(first, timeout=30).status_code == 404
    fresh = get(sim, generation["id"]).json()["assets"]["video"]
    assert fresh != first and len(frames(fresh)) == VIDEO_SECONDS * FPS
    assert sim.ledger()["faults"]["expired_link"] == 1


def test_the_ledger_records_each_create(sim: SimulatorProcess) -> None:
    source = completed(sim)
    create(
        sim, model="ray-flash-2", keyframes={"frame0": {"type": "generation", "id": source["id"]}}
    )

    posts = sim.ledger()["posts"]
    assert [(p["kind"], p["model"], p["parent_id"]) for p in posts] == [
        ("create", "ray-2", None),
        ("extend", "ray-flash-2", source["id"]),
    ]


# -- callbacks ---------------------------------------------------------------------------


def test_callbacks_post_the_generation_when_it_dreams_and_completes(
    sim: SimulatorProcess, origin: Origin
) -> None:
    sim.configure(duration=1.5)
    generation_id = create(sim, callback_url=f"{origin.url}/hook?token=abc").json()["id"]

    wait_for(lambda: len(origin.callbacks) >= 2)

    states = [c["body"]["state"] for c in origin.callbacks]
    assert states == ["dreaming", "completed"]
    assert all(
        c["body"]["id"] == generation_id and c["path"] == "/hook?token=abc"
        for c in origin.callbacks
    )
    assert origin.callbacks[1]["body"]["assets"]["video"]
    recorded = sim.ledger()["callbacks"]
    assert [(r["state"], r["status"]) for r in recorded] == [("dreaming", 200), ("completed", 200)]
    assert all(r["url"] == f"{origin.url}/hook" for r in recorded)  # no query in the ledger


def test_a_callback_not_answered_200_is_tried_three_times(
    sim: SimulatorProcess, origin: Origin
) -> None:
    """As Luma documents: up to 3 tries, 100 ms apart, until a 200."""
    sim.configure(duration=60)  # dreaming only: one event
    origin.answers[:] = [500, 503, 500, 404]
    create(sim, callback_url=f"{origin.url}/hook")

    (record,) = wait_for(lambda: sim.ledger()["callbacks"])
    assert (record["state"], record["tries"], record["status"]) == ("dreaming", 3, 500)
    assert [c["answered"] for c in origin.callbacks] == [500, 503, 500]
    assert origin.answers == [404]  # a fourth try was never made


def test_a_failed_generation_calls_back_failed(sim: SimulatorProcess, origin: Origin) -> None:
    sim.configure(fail_rate=1.0)
    create(sim, callback_url=f"{origin.url}/hook")

    wait_for(lambda: any(c["body"]["state"] == "failed" for c in origin.callbacks))


def test_callbacks_to_a_private_origin_not_allowed_are_refused(sim: SimulatorProcess) -> None:
    create(sim, callback_url="http://127.0.0.1:9/hook")  # allowed is the test's origin only

    recorded = wait_for(lambda: sim.ledger()["callbacks"])
    assert "refused" in recorded[0]["error"]


# -- pictures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "size"),
    [("540p", (640, 360)), ("720p", (854, 480)), ("1080p", (1280, 720)), ("4k", (1280, 720))],
)
def test_resolution_decides_the_size(
    sim: SimulatorProcess, resolution: str, size: tuple[int, int]
) -> None:
    generation = completed(sim, resolution=resolution)
    assert frames(generation["assets"]["video"])[0].size == size


def test_nine_seconds_is_longer_than_five(sim: SimulatorProcess) -> None:
    five = frames(completed(sim, duration="5s")["assets"]["video"])
    nine = frames(completed(sim, duration="9s")["assets"]["video"])

    assert len(five) == VIDEO_SECONDS * FPS
    assert len(nine) == round(VIDEO_SECONDS * 1.8 * FPS)


def test_a_loop_ends_on_its_first_frame(sim: SimulatorProcess) -> None:
    looped = frames(completed(sim, loop=True)["assets"]["video"])
    plain = frames(completed(sim, loop=False)["assets"]["video"])

    assert difference(looped[0], looped[-1]) < 3
    assert difference(plain[0], plain[-1]) > 3 * difference(looped[0], looped[-1])


def image(origin: Origin, name: str) -> dict[str, str]:
    return {"type": "image", "url": f"{origin.url}/{name}.png"}


def is_red(frame: Image.Image) -> bool:
    red, green, blue = ImageStat.Stat(frame.convert("RGB")).mean
    return red > 200 and green < 60 and blue < 60


# Sources whose ends are plain colours (image keyframes): the clip's world continues the
# source's anyway (time and palette), so only a colour shows that the keyframe is its frame.


def test_an_extension_starts_on_the_sources_last_frame(
    sim: SimulatorProcess, origin: Origin
) -> None:
    source = completed(sim, prompt="A red kite", keyframes={"frame1": image(origin, "red")})
    extension = completed(
        sim, prompt="It climbs", keyframes={"frame0": {"type": "generation", "id": source["id"]}}
    )

    before, after = frames(source["assets"]["video"]), frames(extension["assets"]["video"])
    assert is_red(before[-1])
    assert difference(after[0], before[-1]) < 3
    assert not is_red(after[-1])


def test_a_reverse_extension_ends_on_the_sources_first_frame(
    sim: SimulatorProcess, origin: Origin
) -> None:
    source = completed(
        sim, prompt="A red kite", aspect_ratio="1:1", keyframes={"frame0": image(origin, "red")}
    )
    reverse = completed(
        sim, prompt="Before", keyframes={"frame1": {"type": "generation", "id": source["id"]}}
    )

    before, clip = frames(source["assets"]["video"]), frames(reverse["assets"]["video"])
    assert clip[0].size == (480, 480)  # the source's aspect ratio
    assert is_red(before[0])
    assert difference(clip[-1], before[0]) < 3
    assert difference(clip[0], before[0]) > 3 * difference(clip[-1], before[0])
    assert sim.ledger()["posts"][-1]["kind"] == "reverse"


def test_an_interpolation_runs_from_a_last_to_b_first(
    sim: SimulatorProcess, origin: Origin
) -> None:
    a = completed(sim, prompt="Dawn over dunes", keyframes={"frame1": image(origin, "red")})
    b = completed(sim, prompt="Night in a city", keyframes={"frame0": image(origin, "blue")})
    between = completed(
        sim,
        prompt="Travel",
        keyframes={
            "frame0": {"type": "generation", "id": a["id"]},
            "frame1": {"type": "generation", "id": b["id"]},
        },
    )

    a_frames, b_frames = frames(a["assets"]["video"]), frames(b["assets"]["video"])
    clip = frames(between["assets"]["video"])
    assert difference(clip[0], a_frames[-1]) < 3
    assert difference(clip[-1], b_frames[0]) < 3
    assert difference(a_frames[-1], b_frames[0]) > 10  # the two ends are far apart
    assert sim.ledger()["posts"][-1]["kind"] == "interpolate"


def test_an_image_keyframe_is_fetched_from_an_allowed_origin(
    sim: SimulatorProcess, origin: Origin
) -> None:
    generation = completed(sim, keyframes={"frame0": image(origin, "red")})

    clip = frames(generation["assets"]["video"])
    assert is_red(clip[0]) and not is_red(clip[-1])


# -- state -------------------------------------------------------------------------------


def test_a_restarted_simulator_keeps_generations_and_balance(tmp_path) -> None:
    state = tmp_path / "state.json"
    flags = {"dialect": "luma", "duration": 3, "seed": 3, "video_seconds": 1, "state": state}
    with SimulatorProcess(media_dir=tmp_path / "m1", credits=100, **flags) as first:
        generation_id = create(first).json()["id"]
        first.configure(fail_rate=1.0)
        failing_id = create(first).json()["id"]  # fails after the restart, 1.8 s on
        assert balance(first) == 20.0

    with SimulatorProcess(media_dir=tmp_path / "m2", credits=100, **flags) as second:
        assert get(second, generation_id).json()["model"] == "ray-2"
        assert [p["id"] for p in second.ledger()["posts"]] == [generation_id, failing_id]
        assert balance(second) in (20.0, 60.0)  # 60 once the second has failed
        wait_for(lambda: get(second, failing_id).json()["state"] == "failed")
        assert balance(second) == 60.0

    with SimulatorProcess(media_dir=tmp_path / "m3", credits=100, **flags) as third:
        assert balance(third) == 60.0  # refunded once, and the refund was kept


def test_a_state_file_of_the_other_dialect_is_set_aside(tmp_path) -> None:
    from simulator.server import Config, Simulator

    state = tmp_path / "state.json"
    Simulator(Config(state=str(state), media_dir=str(tmp_path / "m")))._changed()
    simulator = Simulator(Config(dialect="luma", state=str(state), media_dir=str(tmp_path / "m")))

    assert simulator.generations == {}
    assert (tmp_path / "state.json.unreadable").exists()


def test_the_dialect_flag(tmp_path) -> None:
    from simulator.__main__ import build_parser
    from simulator.server import Config

    assert build_parser().parse_args([]).dialect == "umamiai"
    assert (
        Config.from_options(vars(build_parser().parse_args(["--dialect", "luma"]))).dialect
        == "luma"
    )
    with pytest.raises(ValueError, match="dialect"):
        Config(dialect="klingon").validate()
    with pytest.raises(ValueError, match="runtime"):
        Config().updated({"dialect": "luma"})


def test_runstack_and_compose_start_the_simulator_in_the_providers_dialect(tmp_path) -> None:
    import shlex
    import sys
    from pathlib import Path

    import yaml

    from generations.management.commands.runstack import simulator_command
    from simulator.__main__ import build_parser
    from simulator.server import Config

    def dialect(words: list[str]) -> str:
        assert words[1:3] == ["-m", "simulator"]
        return Config.from_options(vars(build_parser().parse_args(words[3:]))).dialect

    env = {"PUBLIC_BASE_URL": "http://127.0.0.1:8000"}
    assert dialect(simulator_command(sys.executable, 8001, tmp_path, env, "luma")) == "luma"
    assert dialect(simulator_command(sys.executable, 8001, tmp_path, env)) == "umamiai"
    compose = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text())
    command = compose["services"]["simulator"]["command"]
    assert "--dialect ${LUMA_PROVIDER:-umamiai}" in command
    for provider, expected in (("luma", "luma"), (" Luma ", "luma"), ("", "umamiai")):
        # what compose does with ${LUMA_PROVIDER:-umamiai}: the variable, or the default if empty
        filled = command.replace("${LUMA_PROVIDER:-umamiai}", provider.strip() or "umamiai")
        filled = filled.replace("${PUBLIC_BASE_URL:-}", "")
        assert dialect(shlex.split(filled)) == expected
