"""What /media/ serves: byte ranges that cannot crash it.

Keyframes are public on purpose (the upstream fetches them), so a stranger reaches all of this.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_user

HUGE = "9" * 5000  # past int()'s 4,300-digit limit for str -> int
HOSTILE_RANGES = [f"bytes={HUGE}-", f"bytes=0-{HUGE}", f"bytes=-{HUGE}"]


@pytest.fixture
def alice(db):
    return make_user("alice")


# --- Range headers ----------------------------------------------------------------------------
@pytest.mark.parametrize("header", HOSTILE_RANGES, ids=["start", "end", "suffix"])
def test_a_range_with_a_number_of_thousands_of_digits_is_refused_not_a_crash(
    db, media_root, header
):
    (media_root / "keyframes").mkdir(exist_ok=True)
    (media_root / "keyframes" / "k.png").write_bytes(bytes(range(256)))
    stranger = Client(raise_request_exception=False)
    response = stranger.get("/media/keyframes/k.png", HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */256"


@pytest.mark.parametrize("header", HOSTILE_RANGES, ids=["start", "end", "suffix"])
def test_a_logged_in_viewer_gets_416_for_an_absurd_range_on_a_video(alice, media_root, header):
    (media_root / "videos").mkdir(exist_ok=True)
    (media_root / "videos" / "r.mp4").write_bytes(b"\x00" * 1024)
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.get("/media/videos/r.mp4", HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */1024"


def test_ordinary_ranges_on_a_public_keyframe_are_still_served_to_strangers(db, media_root):
    (media_root / "keyframes").mkdir(exist_ok=True)
    (media_root / "keyframes" / "k.png").write_bytes(bytes(range(256)))
    stranger = Client()
    part = stranger.get("/media/keyframes/k.png", HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206 and part["Content-Range"] == "bytes 10-19/256"
    assert b"".join(part.streaming_content) == bytes(range(10, 20))
    # an end past the file is cut to the file; a suffix longer than the file is all of it
    past = stranger.get("/media/keyframes/k.png", HTTP_RANGE="bytes=250-9999999999999999999")
    assert past.status_code == 206 and past["Content-Range"] == "bytes 250-255/256"
    suffix = stranger.get("/media/keyframes/k.png", HTTP_RANGE="bytes=-99999999999")
    assert suffix.status_code == 206 and suffix["Content-Range"] == "bytes 0-255/256"
    assert stranger.get("/media/keyframes/k.png", HTTP_RANGE="bytes=256-").status_code == 416
