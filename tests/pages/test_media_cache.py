"""Stored files as the web process answers them: validators and long-lived caching for the files
that never change, 304 for a browser whose copy is current, byte ranges as before (and only of
the browser's copy, ``If-Range``), and ``MEDIA_SERVE=accel``: the same checks, then an empty
answer naming the file for nginx (``X-Accel-Redirect``), never a path outside MEDIA_ROOT.

nginx itself runs in tests/test_media_proxy.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.http import Http404
from django.test import Client
from django.utils.http import http_date

from generations import fileserve
from generations.models import ShareLink
from tests.pages.conftest import make_gen
from tests.pages.test_chains import a_chain

VIDEO = bytes(range(256)) * 64  # 16 KiB
IMMUTABLE = "private, max-age=31536000, immutable"


def put(relative: str, data: bytes = VIDEO) -> Path:
    path = Path(django_settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def stranger() -> Client:
    return Client(REMOTE_ADDR=f"2001:db8:{uuid.uuid4().hex[:4]}::1")


@pytest.fixture
def accel(settings):
    settings.MEDIA_SERVE = "accel"


# --- validators and caching, Django sending the bytes ------------------------------------------
def test_a_video_and_a_thumbnail_are_cached_a_year_with_validators(client):
    name = uuid.uuid4().hex
    path = put(f"videos/{name}.mp4")
    put(f"thumbnails/{name}.jpg", b"\xff\xd8\xff" + VIDEO)
    stat = path.stat()
    response = client.get(f"/media/videos/{name}.mp4")
    assert response.status_code == 200
    assert body(response) == VIDEO
    assert response["Cache-Control"] == IMMUTABLE
    assert response["ETag"] == f'"{int(stat.st_mtime):x}-{stat.st_size:x}"'  # nginx's format
    assert response["Last-Modified"] == http_date(int(stat.st_mtime))
    thumb = client.get(f"/media/thumbnails/{name}.jpg")
    assert thumb.status_code == 200 and thumb["Cache-Control"] == IMMUTABLE
    assert thumb["ETag"] and thumb["ETag"] != response["ETag"]


def test_a_browser_with_the_current_copy_gets_a_304_and_no_bytes(client):
    name = uuid.uuid4().hex
    put(f"videos/{name}.mp4")
    first = client.get(f"/media/videos/{name}.mp4")
    etag, modified = first["ETag"], first["Last-Modified"]

    by_etag = client.get(f"/media/videos/{name}.mp4", HTTP_IF_NONE_MATCH=etag)
    assert by_etag.status_code == 304 and body(by_etag) == b""
    assert by_etag["ETag"] == etag and by_etag["Cache-Control"] == IMMUTABLE
    by_date = client.get(f"/media/videos/{name}.mp4", HTTP_IF_MODIFIED_SINCE=modified)
    assert by_date.status_code == 304 and body(by_date) == b""

    stale = client.get(f"/media/videos/{name}.mp4", HTTP_IF_NONE_MATCH='"0-0"')
    assert stale.status_code == 200 and body(stale) == VIDEO


def test_a_stranger_gets_no_304_and_no_validator_of_a_private_file(db):
    name = uuid.uuid4().hex
    path = put(f"videos/{name}.mp4")
    stat = path.stat()
    etag = f'"{int(stat.st_mtime):x}-{stat.st_size:x}"'
    response = stranger().get(f"/media/videos/{name}.mp4", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 404
    assert not response.has_header("ETag")


def test_ranges_still_work_and_if_range_asks_for_the_browsers_copy_only(client):
    name = uuid.uuid4().hex
    put(f"videos/{name}.mp4")
    etag = client.get(f"/media/videos/{name}.mp4")["ETag"]
    part = client.get(f"/media/videos/{name}.mp4", HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and body(part) == VIDEO[100:200]
    assert part["ETag"] == etag
    same = client.get(f"/media/videos/{name}.mp4", HTTP_RANGE="bytes=100-199", HTTP_IF_RANGE=etag)
    assert same.status_code == 206 and body(same) == VIDEO[100:200]
    # the browser's copy is another file: the whole file, not a slice to splice into it
    other = client.get(
        f"/media/videos/{name}.mp4", HTTP_RANGE="bytes=100-199", HTTP_IF_RANGE='"1-1"'
    )
    assert other.status_code == 200 and body(other) == VIDEO


def test_keyframes_keep_their_hour_and_gain_validators(db):
    name = f"keyframes/{uuid.uuid4().hex}.png"
    put(name, b"\x89PNG" + VIDEO)
    response = stranger().get(f"/media/{name}")
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=3600"
    again = stranger().get(f"/media/{name}", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


def test_share_media_is_revalidated_each_time_and_a_revoked_link_gets_no_304(user):
    name = uuid.uuid4().hex
    put(f"videos/{name}.mp4")
    gen = make_gen(user=user, video_file=f"videos/{name}.mp4")
    link = ShareLink.objects.create(created_by=user, generation=gen)
    url = f"/s/{link.token}/{gen.pk}/video.mp4"
    first = stranger().get(url)
    assert first.status_code == 200 and body(first) == VIDEO
    assert first["Cache-Control"] == "private, no-cache"
    assert first["X-Robots-Tag"] == "noindex, nofollow"
    again = stranger().get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and body(again) == b""
    assert again["Cache-Control"] == "private, no-cache"
    link.revoked_at = link.created_at
    link.save(update_fields=["revoked_at"])
    gone = stranger().get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert gone.status_code == 404


def test_a_chains_join_keeps_its_etag_across_downloads_and_answers_304(client, user):
    *_, leaf = a_chain(user, 0.5, 0.5)
    first = client.get(f"/generations/{leaf.pk}/chain.mp4")
    assert first.status_code == 200
    data = body(first)
    assert first["Cache-Control"] == "private, no-cache"  # the address outlives the path's files
    assert first["Content-Disposition"].startswith("attachment; filename=")
    second = client.get(f"/generations/{leaf.pk}/chain.mp4")  # the join touched in between
    assert body(second) == data and second["ETag"] == first["ETag"]
    cached = client.get(f"/generations/{leaf.pk}/chain.mp4", HTTP_IF_NONE_MATCH=first["ETag"])
    assert cached.status_code == 304 and body(cached) == b""
    part = client.get(f"/generations/{leaf.pk}/chain.mp4", HTTP_RANGE="bytes=0-99")
    assert part.status_code == 206 and body(part) == data[:100]


# --- MEDIA_SERVE=accel: nginx sends the bytes --------------------------------------------------
def test_accel_answers_an_empty_body_naming_the_file_for_nginx(client, accel):
    name = uuid.uuid4().hex
    put(f"videos/{name}.mp4")
    response = client.get(f"/media/videos/{name}.mp4", HTTP_RANGE="bytes=0-9")
    assert response.status_code == 200  # nginx answers the range, from the file
    assert response["X-Accel-Redirect"] == f"/protected-media/videos/{name}.mp4"
    assert response["Content-Type"] == "video/mp4"
    assert body(response) == b""
    assert response.get("Content-Length") in (None, "0")
    assert response["Cache-Control"] == IMMUTABLE
    assert response["ETag"]
    assert (
        client.get(f"/media/videos/{name}.mp4", HTTP_IF_NONE_MATCH=response["ETag"]).status_code
        == 304
    )


def test_accel_names_nothing_for_a_stranger(db, accel):
    name = uuid.uuid4().hex
    put(f"videos/{name}.mp4")
    for path in (f"videos/{name}.mp4", f"keyframes/../videos/{name}.mp4", "chains/x.mp4"):
        response = stranger().get(f"/media/{path}")
        assert response.status_code == 404, path
        assert not response.has_header("X-Accel-Redirect"), path


def test_accel_paths_are_normalised_encoded_and_never_outside_media_root(client, accel):
    name = uuid.uuid4().hex
    put(f"videos/{name}.mp4")
    put("keyframes/odd name?%.png", b"\x89PNG")
    # a dotted path reaches the file it names, and nginx is told the normalised path
    dotted = client.get(f"/media/keyframes/../videos/./{name}.mp4")
    assert dotted["X-Accel-Redirect"] == f"/protected-media/videos/{name}.mp4"
    encoded = client.get(f"/media/keyframes/%2e%2e/videos/{name}.mp4")
    assert encoded["X-Accel-Redirect"] == f"/protected-media/videos/{name}.mp4"
    odd = client.get("/media/keyframes/odd%20name%3F%25.png")
    assert odd["X-Accel-Redirect"] == "/protected-media/keyframes/odd%20name%3F%25.png"
    for path in ("../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "videos/../../etc/passwd"):
        response = client.get(f"/media/{path}")
        assert response.status_code == 404 and not response.has_header("X-Accel-Redirect")
    root = Path(django_settings.MEDIA_ROOT)
    for outside in ("/etc/passwd", str(root / ".." / "x.mp4"), str(root)):
        with pytest.raises(Http404):
            fileserve.accel_path(outside)


def test_accel_serves_share_media_only_while_the_link_lives(user, accel):
    name = uuid.uuid4().hex
    put(f"videos/{name}.mp4")
    gen = make_gen(user=user, video_file=f"videos/{name}.mp4")
    link = ShareLink.objects.create(created_by=user, generation=gen)
    url = f"/s/{link.token}/{gen.pk}/video.mp4"
    response = stranger().get(url)
    assert response["X-Accel-Redirect"] == f"/protected-media/videos/{name}.mp4"
    assert body(response) == b""
    link.revoked_at = link.created_at
    link.save(update_fields=["revoked_at"])
    gone = stranger().get(url)
    assert gone.status_code == 404 and not gone.has_header("X-Accel-Redirect")


def test_accel_sends_a_chains_join_as_an_attachment(client, user, accel):
    *_, leaf = a_chain(user, 0.5, 0.5)
    response = client.get(f"/generations/{leaf.pk}/chain.mp4")
    assert response["X-Accel-Redirect"].startswith(f"/protected-media/chains/{leaf.pk.hex}-")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response["ETag"] == '"{}"'.format(response["X-Accel-Redirect"].rsplit("/")[-1][:-4])


def test_media_serve_refuses_an_unknown_value_at_start_up():
    env = {**os.environ, "DEBUG": "True", "MEDIA_SERVE": "nginx"}
    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**env, "DJANGO_SETTINGS_MODULE": "lumaweb.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "MEDIA_SERVE must be django or accel" in run.stderr
