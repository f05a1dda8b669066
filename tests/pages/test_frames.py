"""Frames of a finished video as keyframes (issue 10 #7): the frame is taken from the local copy
with PyAV, exactly (not the nearest keyframe), previewed as the server extracts it, and a create
form naming it stores it like an uploaded keyframe, served publicly under /media/keyframes/.

The videos are the simulator's own MP4s (simulator/media.py draws each frame, x264 encodes
them): the extracted frames are compared with a full sequential decode of the same file, and
with the simulator's drawing of that instant.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
import uuid
from pathlib import Path

import av
import pytest
from django.test import Client
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageStat

from generations import frames
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from simulator.media import Scene, _Painter, render
from tests.factories import make_user
from tests.pages.conftest import make_gen

FPS = 24
SECONDS = 2.0
FRAMES = 48
SCENE = Scene(prompt="a paper boat at dusk", seconds=SECONDS, fps=FPS)


@pytest.fixture(scope="module")
def sim_video(tmp_path_factory) -> Path:
    """A real simulator-made MP4: 2 s at 24 fps, 48 frames, 640 x 360."""
    folder = tmp_path_factory.mktemp("frames")
    path = folder / "clip.mp4"
    render(SCENE, path, folder / "clip.jpg")
    return path


@pytest.fixture(scope="module")
def decoded(sim_video) -> list[Image.Image]:
    """Every frame of the clip, decoded from the start in order: the reference."""
    with av.open(str(sim_video)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def finished_video(sim_video: Path, media_root: Path, user=None, **fields) -> Generation:
    """A completed row whose local copy is the simulator's clip."""
    name = f"videos/{uuid.uuid4().hex}.mp4"
    (media_root / "videos").mkdir(exist_ok=True)
    shutil.copy(sim_video, media_root / name)
    return make_gen(Status.COMPLETED, user=user, video_file=name, **fields)


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two images' pixels (0 = identical)."""
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


# --- extraction ----------------------------------------------------------------------------------
def test_the_clip_has_the_frames_the_simulator_drew(sim_video, decoded):
    info = frames.probe(str(sim_video))
    assert (info.fps, info.frames, info.width, info.height) == (FPS, FRAMES, 640, 360)
    assert len(decoded) == FRAMES


@pytest.mark.parametrize("index", [0, 1, 11, 24, 30, 46, 47])
def test_a_frame_is_exactly_the_one_a_full_decode_gives(sim_video, decoded, index):
    image = frames.extract(str(sim_video), index)
    assert image.tobytes() == decoded[index].tobytes()


def test_the_frame_at_t_is_the_one_the_simulator_drew_at_t(sim_video):
    """Not off by one: the frame taken at t looks most like the simulator's drawing of t (the
    orb and the sparks move between frames), more than like the frames either side."""
    painter = _Painter(SCENE)
    info = frames.probe(str(sim_video))
    for t in (0.5, 1.0, 1.5):
        index = info.index_at(t)
        assert index == round(t * FPS)
        taken = frames.extract(str(sim_video), index)
        near = {n: difference(taken, painter.frame(n / FPS)) for n in (index - 1, index, index + 1)}
        assert min(near, key=near.get) == index, near


def test_the_last_frame_is_the_last_one_decoded(sim_video, decoded):
    info = frames.probe(str(sim_video))
    for t in (None, SECONDS, 1.99, 60.0, 1e12):
        index = info.index_at(t)
        assert index is frames.LAST, t
        assert frames.extract(str(sim_video), index).tobytes() == decoded[-1].tobytes()


@pytest.mark.parametrize(
    "raw,words",
    [
        ("-1", "cannot be negative"),
        ("-0.001", "cannot be negative"),
        ("abc", "number of seconds"),
        ("nan", "number of seconds"),
        ("inf", "number of seconds"),
        ("1e999", "number of seconds"),
        ("0x10", "number of seconds"),
    ],
)
def test_a_bad_time_is_refused_in_words(raw, words):
    with pytest.raises(frames.FrameError, match=words):
        frames.parse_t(raw)


def test_extraction_is_quick_on_a_simulator_video(sim_video):
    """The figure in docs/ARCHITECTURE.md: the worst case (the last frame, decoded from the one
    keyframe at the start) of a 5 s clip, uncached."""
    path = sim_video.parent / "five-seconds.mp4"
    render(Scene(prompt="a longer clip", seconds=5.0, fps=FPS), path, sim_video.parent / "5.jpg")
    started = time.perf_counter()
    image = frames.extract(str(path), frames.LAST)
    took = time.perf_counter() - started
    assert image.size == (640, 360)
    assert took < 2.0, f"{took:.3f} s"  # ~0.03 s alone; generous for a loaded 2-core machine


# --- the preview --------------------------------------------------------------------------------
def test_the_preview_is_the_frame_as_a_cacheable_jpeg(client, sim_video, media_root, decoded):
    gen = finished_video(sim_video, media_root)
    response = client.get(f"/generations/{gen.pk}/frame.jpg?t=0.5")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, max-age=86400"
    assert response["X-Frame-Index"] == "12"
    preview = Image.open(io.BytesIO(response.content))
    assert difference(preview, decoded[12]) < difference(preview, decoded[13])
    # ?frame=12 is the same frame, so the same validator; a conditional GET decodes nothing.
    by_index = client.get(f"/generations/{gen.pk}/frame.jpg?frame=12")
    assert by_index["ETag"] == response["ETag"] and by_index.content == response.content
    again = client.get(
        f"/generations/{gen.pk}/frame.jpg?t=0.5", HTTP_IF_NONE_MATCH=response["ETag"]
    )
    assert again.status_code == 304 and again.content == b""
    other = client.get(f"/generations/{gen.pk}/frame.jpg?t=1")
    assert other["ETag"] != response["ETag"]


def test_the_preview_defaults_to_the_last_frame_and_clamps_past_the_end(
    client, sim_video, media_root
):
    gen = finished_video(sim_video, media_root)
    last = client.get(f"/generations/{gen.pk}/frame.jpg")
    assert last.status_code == 200 and last["X-Frame-Index"] == str(FRAMES - 1)
    for far in ("999", "1e308", "1.7976931348623157e308"):  # 1e308 x 24 fps overflows a float
        past = client.get(f"/generations/{gen.pk}/frame.jpg?t={far}")
        assert past.status_code == 200 and past.content == last.content


@pytest.mark.parametrize(
    "query,words",
    [
        ("t=-2", "cannot be negative"),
        ("t=soon", "number of seconds"),
        ("t=nan", "number of seconds"),
        ("frame=-1", "whole number"),
        ("frame=1.5", "whole number"),
        ("frame=" + "9" * 40, "whole number"),
    ],
)
def test_a_bad_time_for_the_preview_is_a_400_in_words(client, sim_video, media_root, query, words):
    gen = finished_video(sim_video, media_root)
    response = client.get(f"/generations/{gen.pk}/frame.jpg?{query}")
    assert response.status_code == 400
    assert words in response.content.decode()


def test_no_preview_of_a_video_without_frames_to_take(client, sim_video, media_root):
    queued = make_gen(Status.QUEUED)
    no_copy = make_gen(Status.COMPLETED)  # finished, its copy not made yet
    gone = make_gen(Status.COMPLETED, video_file="videos/never-written.mp4")
    for gen, words in (
        (queued, "finished video"),
        (no_copy, "no local copy"),
        (gone, "missing"),
    ):
        response = client.get(f"/generations/{gen.pk}/frame.jpg")
        assert response.status_code == 404
        assert words in response.content.decode()
    assert client.get(f"/generations/{uuid.uuid4()}/frame.jpg").status_code == 404


def test_the_preview_needs_a_login(db, sim_video, media_root):
    gen = finished_video(sim_video, media_root)
    response = Client().get(f"/generations/{gen.pk}/frame.jpg")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- the detail page's picker and the create page ------------------------------------------------
def test_the_detail_page_offers_the_last_frame_and_a_scrubber(client, sim_video, media_root):
    gen = finished_video(sim_video, media_root)
    html = client.get(f"/generations/{gen.pk}/").content.decode()
    assert 'id="frames"' in html
    assert f'max="{FRAMES - 1}"' in html and f'value="{FRAMES - 1}"' in html
    assert '<label for="frame-scrub">Frame</label>' in html
    assert "Frame 48 of 48 · 1.96 s (the last)" in html
    assert f'src="/generations/{gen.pk}/frame.jpg"' in html
    assert "Start a new video from this frame" in html and "End a new video on this frame" in html
    # Not on a video whose frames cannot be read.
    without_copy = make_gen(Status.COMPLETED)
    assert 'id="frames"' not in client.get(f"/generations/{without_copy.pk}/").content.decode()


def test_a_viewer_is_not_offered_the_picker(db, sim_video, media_root):
    viewer = make_user("vera")
    from generations import actions

    actions.set_member(None, viewer, role="viewer")
    gen = finished_video(sim_video, media_root)
    client = Client()
    client.force_login(viewer)
    assert 'id="frames"' not in client.get(f"/generations/{gen.pk}/").content.decode()


def test_use_a_frame_opens_the_create_page_with_its_preview(client, sim_video, media_root):
    gen = finished_video(sim_video, media_root)
    html = client.get(f"/generations/new/?frame_of={gen.pk}&frame=12&use=start").content.decode()
    assert f'name="image_frame" id="id_image_frame" value="{gen.pk}@0.5" checked' in html
    assert f'src="/generations/{gen.pk}/frame.jpg?frame=12"' in html
    assert "Frame 13 of 48 (0.50 s)" in html
    end = client.get(f"/generations/new/?frame_of={gen.pk}&use=end").content.decode()
    assert f'name="image_end_frame" id="id_image_end_frame" value="{gen.pk}" checked' in end
    assert "Frame 48 of 48 (1.96 s, the last)" in end
    assert 'name="image_frame" id="id_image_frame" value=' not in end


def test_a_frame_that_cannot_be_used_opens_a_blank_form_with_a_warning(client):
    queued = make_gen(Status.QUEUED)
    response = client.get(f"/generations/new/?frame_of={queued.pk}&use=start", follow=True)
    html = response.content.decode()
    assert "That frame cannot be used: Frames can only be taken from a finished video." in html
    assert 'name="image_frame" id="id_image_frame"' not in html


# --- the create flow ------------------------------------------------------------------------------
def _create(client, **fields):
    data = {"user_prompt": "the boat sails on", "aspect_ratio": "16:9", **fields}
    return client.post("/generations/new/", data)


def test_a_frame_keyframe_is_stored_and_served_like_an_upload(
    client, sim_video, media_root, settings
):
    settings.LUMA_DEMO_MODE = True
    gen = finished_video(sim_video, media_root)
    response = _create(client, image_frame=f"{gen.pk}@1", image_end_frame=str(gen.pk))
    assert response.status_code == 302, re.findall(
        r'class="error"[^>]*>([^<]*)', response.content.decode()
    )
    made = Generation.objects.exclude(pk=gen.pk).get()
    assert made.image_file.name.startswith("keyframes/") and made.image_file.name.endswith(".jpg")
    assert made.image_end_file.name.startswith("keyframes/")
    stored = made.image_file.read()
    assert stored == frames.frame_jpeg(gen.video_file.path, 24)  # the preview's very bytes
    served = Client().get("/media/" + made.image_file.name)  # no login: the upstream fetches it
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    assert b"".join(served.streaming_content) == stored
    last = Client().get("/media/" + made.image_end_file.name)
    assert b"".join(last.streaming_content) == frames.frame_jpeg(gen.video_file.path, None)
    # The pipeline sends it as it sends any uploaded keyframe: its public URL.
    body = GenerationRequest.from_row(made).upstream_body("https://studio.example")
    assert body["image_url"] == "https://studio.example/media/" + made.image_file.name
    assert body["image_end_url"] == "https://studio.example/media/" + made.image_end_file.name


@pytest.mark.parametrize(
    "forged,words",
    [
        ("../videos/secret.mp4", "not valid"),
        ("videos/abc.mp4", "not valid"),
        ("keyframes/someone-elses.jpg", "not valid"),
        ("/etc/passwd", "not valid"),
        (f"{uuid.UUID(int=7)}", "not found"),
        ("{queued}", "finished video"),
        ("{no_copy}", "no local copy"),
        ("{video}@-3", "cannot be negative"),
        ("{video}@soon", "number of seconds"),
    ],
)
def test_a_forged_frame_reference_is_refused_in_words(
    client, sim_video, media_root, settings, forged, words
):
    settings.LUMA_DEMO_MODE = True
    rows = {
        "video": finished_video(sim_video, media_root).pk,
        "queued": make_gen(Status.QUEUED).pk,
        "no_copy": make_gen(Status.COMPLETED).pk,
    }
    before = Generation.objects.count()
    response = _create(client, image_frame=forged.format(**rows))
    assert response.status_code == 400
    html = response.content.decode()
    assert words in html
    assert Generation.objects.count() == before
    assert 'name="image_frame" id="id_image_frame" value=' not in html  # not offered again


def test_a_form_error_keeps_the_chosen_frame(client, sim_video, media_root, settings):
    settings.LUMA_DEMO_MODE = True
    gen = finished_video(sim_video, media_root)
    response = _create(client, user_prompt="   ", image_frame=f"{gen.pk}@0.5")
    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required." in html
    assert f'name="image_frame" id="id_image_frame" value="{gen.pk}@0.5" checked' in html
    assert f'src="/generations/{gen.pk}/frame.jpg?frame=12"' in html
    # Sent again with the prompt: queued, with that frame.
    again = _create(client, image_frame=f"{gen.pk}@0.5")
    assert again.status_code == 302
    made = Generation.objects.exclude(pk=gen.pk).get()
    assert made.image_file.read() == frames.frame_jpeg(gen.video_file.path, 12)


def test_a_frame_and_a_url_for_the_same_keyframe_are_refused(
    client, sim_video, media_root, settings
):
    settings.LUMA_DEMO_MODE = True
    gen = finished_video(sim_video, media_root)
    response = _create(client, image_frame=str(gen.pk), image_url="https://example.com/a.jpg")
    assert response.status_code == 400
    assert "a URL, an upload or a frame, not two" in response.content.decode()
    assert Generation.objects.count() == 1


def test_frames_need_a_public_address_outside_demo_mode(client, sim_video, media_root, settings):
    settings.LUMA_DEMO_MODE = False
    settings.PUBLIC_BASE_URL = ""
    gen = finished_video(sim_video, media_root)
    response = _create(client, image_frame=str(gen.pk))
    assert response.status_code == 400
    assert "PUBLIC_BASE_URL" in response.content.decode()


# --- the API -------------------------------------------------------------------------------------
def _api_create(client, body):
    return client.post("/api/v1/generations", json.dumps(body), content_type="application/json")


def test_the_api_takes_a_frame_as_the_start_or_end_keyframe(
    client, sim_video, media_root, settings
):
    settings.LUMA_DEMO_MODE = True
    gen = finished_video(sim_video, media_root)
    response = _api_create(
        client,
        {
            "user_prompt": "the boat sails on",
            "start_frame": {"generation_id": str(gen.pk), "t": 0.5},
            "end_frame": {"generation_id": str(gen.pk)},
        },
    )
    assert response.status_code == 201, response.json()
    made = Generation.objects.get(pk=response.json()["id"])
    assert made.image_file.read() == frames.frame_jpeg(gen.video_file.path, 12)
    assert made.image_end_file.read() == frames.frame_jpeg(gen.video_file.path, None)
    # A batch: every video of it starts on the frame (one file, shared).
    batch = _api_create(
        client,
        {"user_prompts": ["one", "two"], "start_frame": {"generation_id": str(gen.pk), "t": 1}},
    )
    assert batch.status_code == 201, batch.json()
    rows = Generation.objects.filter(pk__in=[g["id"] for g in batch.json()["generations"]])
    assert {row.image_file.name for row in rows} != {""} and len(
        {r.image_file.name for r in rows}
    ) == 1


@pytest.mark.parametrize(
    "frame,words",
    [
        ("{video}", "Must be an object"),
        ({}, "generation_id"),
        ({"generation_id": 7}, "generation_id"),
        ({"generation_id": "videos/x.mp4"}, "not valid"),
        ({"generation_id": str(uuid.UUID(int=7))}, "not found"),
        ({"generation_id": "{queued}"}, "finished video"),
        ({"generation_id": "{video}", "t": -1}, "cannot be negative"),
        ({"generation_id": "{video}", "t": "soon"}, "number of seconds"),
        ({"generation_id": "{video}", "t": True}, "number of seconds"),
        ({"generation_id": "{video}", "nope": 1}, "generation_id and t"),
    ],
)
def test_the_api_refuses_a_bad_frame_in_words(
    client, sim_video, media_root, settings, frame, words
):
    settings.LUMA_DEMO_MODE = True
    rows = {
        "video": str(finished_video(sim_video, media_root).pk),
        "queued": str(make_gen(Status.QUEUED).pk),
    }

    def fill(value):
        if isinstance(value, str):
            return value.format(**rows)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    before = Generation.objects.count()
    response = _api_create(client, {"user_prompt": "x", "start_frame": fill(frame)})
    assert response.status_code == 400
    assert words in " ".join(response.json()["fields"]["start_frame"])
    assert Generation.objects.count() == before


def test_the_api_refuses_a_frame_and_a_url_for_one_keyframe(
    client, sim_video, media_root, settings
):
    settings.LUMA_DEMO_MODE = True
    gen = finished_video(sim_video, media_root)
    response = _api_create(
        client,
        {
            "user_prompt": "x",
            "image_end_url": "https://example.com/a.jpg",
            "end_frame": {"generation_id": str(gen.pk)},
        },
    )
    assert response.status_code == 400
    assert "not two" in " ".join(response.json()["fields"]["end_frame"])


# --- no input is a 500 ---------------------------------------------------------------------------
@given(raw=st.one_of(st.text(max_size=60), st.floats(allow_nan=True).map(repr)))
@example(raw="1e308")  # times the frame rate, infinity: was a 500 (OverflowError)
@hsettings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_time_and_no_reference_makes_a_500(client, sim_video, media_root, settings, raw):
    settings.LUMA_DEMO_MODE = True
    gen = Generation.objects.filter(video_file__startswith="videos/").first() or finished_video(
        sim_video, media_root
    )
    for query in ({"t": raw}, {"frame": raw}):
        assert client.get(f"/generations/{gen.pk}/frame.jpg", query).status_code in (200, 400)
    picked = client.get("/generations/new/", {"frame_of": str(gen.pk), "t": raw, "use": raw})
    assert picked.status_code == 200
    for reference in (raw, f"{gen.pk}@{raw}"):
        sent = _create(client, user_prompt="", image_frame=reference)
        assert sent.status_code == 400  # the empty prompt, and whatever the reference is


def test_a_frame_keyframe_outlives_the_video_it_came_from(
    client, user, sim_video, media_root, settings
):
    settings.LUMA_DEMO_MODE = True
    source = finished_video(sim_video, media_root, user=user)
    assert _create(client, image_frame=str(source.pk)).status_code == 302
    made = Generation.objects.exclude(pk=source.pk).get()
    assert client.post(f"/generations/{source.pk}/delete/").status_code == 302
    assert not Generation.objects.filter(pk=source.pk).exists()
    served = Client().get("/media/" + made.image_file.name)
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
