"""What a person asks for is written once (``GenerationRequest``): every path that copies a
request keeps all of it, uploaded keyframes included."""

from __future__ import annotations

import io

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generations import actions
from generations.inputs import GenerationRequest
from generations.models import Generation
from tests.factories import make_user


def _png(name: str) -> SimpleUploadedFile:
    buf = io.BytesIO()
    Image.new("RGB", (16, 9), (30, 120, 200)).save(buf, "PNG")
    return SimpleUploadedFile(name, buf.getvalue(), content_type="image/png")


def _create(client, **fields) -> Generation:
    data = {"user_prompt": "a kite over dunes", "aspect_ratio": "21:9", **fields}
    response = client.post("/generations/new/", data)
    assert response.status_code == 302, response.content.decode()[:500]
    return Generation.objects.latest("created_at")


def test_generate_again_keeps_the_uploaded_keyframes(db, client):
    client.force_login(make_user())
    first = _create(client, image_file=_png("start.png"), image_end_file=_png("end.png"))
    assert first.image_file and first.image_end_file

    page = client.get(f"/generations/new/?from={first.pk}").content.decode()
    assert 'name="keep_image_file"' in page and 'name="keep_image_end_file"' in page
    assert f'value="{first.pk}"' in page  # keyframes_from rides along with the form

    # Posted as the browser would: the prefilled fields, the kept keyframes ticked.
    again = _create(
        client,
        user_prompt="a kite over dunes",
        keyframes_from=str(first.pk),
        keep_image_file="on",
        keep_image_end_file="on",
    )
    assert again.pk != first.pk
    assert GenerationRequest.from_row(again) == GenerationRequest.from_row(first)


def test_generate_again_without_the_kept_keyframe_when_unticked_or_replaced(db, client):
    client.force_login(make_user())
    first = _create(client, image_file=_png("start.png"), image_end_file=_png("end.png"))
    again = _create(
        client,
        keyframes_from=str(first.pk),
        keep_image_end_file="on",
        image_end_url="https://example.com/new-end.jpg",  # replaces the kept end keyframe
    )
    assert not again.image_file  # unticked
    assert not again.image_end_file and again.image_end_url == "https://example.com/new-end.jpg"


def test_a_shared_keyframe_is_deleted_with_the_last_row_that_uses_it(db, client):
    owner = make_user()
    client.force_login(owner)
    first = _create(client, image_file=_png("start.png"))
    name = first.image_file.name
    again = actions.create_generation(owner, GenerationRequest.from_row(first))
    assert again.image_file.name == name
    Generation.objects.filter(pk__in=[first.pk, again.pk]).update(status="failed")
    actions.delete_generation(Generation.objects.get(pk=first.pk), owner)
    assert default_storage.exists(name)  # the other row still uses it
    actions.delete_generation(Generation.objects.get(pk=again.pk), owner)
    assert not default_storage.exists(name)


def test_the_upstream_body_carries_every_request_field(db, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example.com"
    gen = Generation.objects.create(
        user_prompt="p",
        aspect_ratio="1:1",
        expand_prompt=True,
        image_end_url="https://example.com/end.jpg",
        image_file="keyframes/abc.png",
    )
    assert GenerationRequest.from_row(gen).upstream_body(settings.PUBLIC_BASE_URL) == {
        "user_prompt": "p",
        "aspect_ratio": "1:1",
        "expand_prompt": True,
        "image_url": "https://studio.example.com/media/keyframes/abc.png",
        "image_end_url": "https://example.com/end.jpg",
    }
