"""What /media/ serves: byte ranges that cannot crash it, and uploaded keyframes that are what
their name says and carry nothing of the camera or the place they were taken.

Keyframes are public on purpose (the upstream fetches them), so a stranger reaches all of this.
"""

from __future__ import annotations

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from generations.models import Generation
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


# --- uploaded keyframes -----------------------------------------------------------------------
def _image(fmt: str, mode: str = "RGB", size=(48, 27), **save) -> io.BytesIO:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 80, 20) if mode == "RGB" else None).save(buf, fmt, **save)
    buf.seek(0)
    return buf


def _upload(client: Client, name: str, data: io.BytesIO):
    data.name = name
    return client.post(
        "/generations/new/",
        {"user_prompt": "with a keyframe", "aspect_ratio": "16:9", "image_file": data},
    )


def _stored(client: Client, name: str, data: io.BytesIO) -> tuple[str, bytes, str]:
    """Upload, then fetch the stored keyframe as a stranger: (stored name, body, type)."""
    response = _upload(client, name, data)
    errors = re.findall(r'class="error"[^>]*>([^<]*)', response.content.decode())
    assert response.status_code == 302, errors
    stored = Generation.objects.latest("created_at").image_file.name
    served = Client().get("/media/" + stored)
    assert served.status_code == 200
    return stored, b"".join(served.streaming_content), served["Content-Type"]


@pytest.fixture
def uploader(alice, settings) -> Client:
    settings.LUMA_DEMO_MODE = True
    client = Client()
    client.force_login(alice)
    return client


def test_a_png_uploaded_as_pdf_is_stored_and_served_as_png(uploader):
    stored, body, content_type = _stored(uploader, "report.pdf", _image("PNG"))
    assert stored.startswith("keyframes/") and stored.endswith(".png")
    assert content_type == "image/png"
    assert Image.open(io.BytesIO(body)).format == "PNG"


@pytest.mark.parametrize(
    "fmt,claimed,ext,content_type",
    [
        ("JPEG", "photo.png", ".jpg", "image/jpeg"),
        ("WEBP", "photo.ps", ".webp", "image/webp"),  # served as application/postscript
        ("PNG", "clip.mpg", ".png", "image/png"),  # served as video/mpeg
    ],
)
def test_a_keyframe_is_named_by_what_it_is_not_by_what_the_client_called_it(
    uploader, fmt, claimed, ext, content_type
):
    stored, body, served_as = _stored(uploader, claimed, _image(fmt))
    assert stored.endswith(ext) and served_as == content_type
    assert Image.open(io.BytesIO(body)).format == fmt


def _photo_with_gps() -> io.BytesIO:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Umami Cameras"
    exif[ExifTags.Base.Model] = "Snoop 3000"
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: turn 90 degrees clockwise to show
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
    return _image(
        "JPEG",
        size=(40, 20),
        exif=exif,
        comment=b"taken at home",
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>Snoop 3000</x:xmpmeta>",
    )


def test_the_camera_and_the_place_a_photo_was_taken_are_not_served(uploader):
    original = _photo_with_gps()
    raw = original.getvalue()
    assert b"Snoop 3000" in raw and b"taken at home" in raw  # the metadata is really there
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    _, body, content_type = _stored(uploader, "holiday.jpg", original)
    assert content_type == "image/jpeg"
    served = Image.open(io.BytesIO(body))
    assert not served.getexif()  # no camera, no GPS, no orientation tag left
    assert not served.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert not {"exif", "xmp", "comment", "icc_profile"} & set(served.info)
    assert b"Snoop" not in body and b"Umami" not in body and b"taken at home" not in body
    # the orientation is applied to the pixels: the sideways 40x20 photo is shown upright
    assert served.size == (20, 40)


def test_text_chunks_and_colour_profiles_of_a_png_are_not_served(uploader):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Snoop 3000")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>GPS 48.85 2.29</x:xmpmeta>")
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original = _image("PNG", pnginfo=info, icc_profile=profile)
    assert b"Snoop 3000" in original.getvalue()

    _, body, _ = _stored(uploader, "drawing.png", original)
    served = Image.open(io.BytesIO(body))
    served.load()
    assert not {"Author", "XML:com.adobe.xmp", "icc_profile", "exif"} & set(served.info)
    assert b"Snoop" not in body and b"GPS" not in body


def test_odd_but_still_images_are_kept_as_png_or_jpeg(uploader):
    # a palette GIF with transparency, a CMYK JPEG, a 16-bit greyscale PNG, a BMP, and a
    # phone's MPO (a JPEG with a second picture, e.g. a depth map: the first one is the photo)
    gif = io.BytesIO()
    Image.new("P", (16, 9)).save(gif, "GIF", transparency=0)
    gif.seek(0)
    grey16 = io.BytesIO()
    Image.new("I;16", (16, 9), 40000).save(grey16, "PNG")
    grey16.seek(0)
    mpo = io.BytesIO()
    Image.new("RGB", (32, 18), (250, 0, 0)).save(
        mpo, "MPO", save_all=True, append_images=[Image.new("L", (8, 4))]
    )
    mpo.seek(0)
    cases = [
        (gif, "a.gif", ".png", "image/png", "RGBA", (0, 0, 0, 0)),
        (_image("JPEG", mode="CMYK"), "b.jpg", ".jpg", "image/jpeg", "RGB", None),
        (grey16, "c.png", ".png", "image/png", "L", 40000 // 256),
        (_image("BMP"), "d.bmp", ".png", "image/png", "RGB", (200, 80, 20)),
        (mpo, "e.jpg", ".jpg", "image/jpeg", "RGB", None),
    ]
    for data, name, ext, content_type, mode, corner in cases:
        stored, body, served_as = _stored(uploader, name, data)
        assert stored.endswith(ext) and served_as == content_type, name
        served = Image.open(io.BytesIO(body))
        assert served.mode == mode and not getattr(served, "is_animated", False), name
        if corner is not None:
            assert served.getpixel((0, 0)) == corner, name
    assert served.size == (32, 18)  # the MPO's photo, not its second picture


def test_an_animated_image_is_refused_with_a_reason(uploader):
    frames = [Image.new("RGB", (16, 9), c) for c in ((255, 0, 0), (0, 0, 255))]
    for fmt, name in (("GIF", "dance.gif"), ("PNG", "dance.png"), ("WEBP", "dance.webp")):
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100)
        buf.seek(0)
        response = _upload(uploader, name, buf)
        assert response.status_code == 400, name
        assert b"Animated images cannot be keyframes" in response.content
    assert not Generation.objects.exists()


def test_a_damaged_image_is_refused_with_a_reason_not_a_crash(uploader):
    # Django's check only reads the header; the pixels are decoded when re-encoding.
    whole = _image("JPEG", size=(320, 180)).getvalue()
    response = _upload(uploader, "cut.jpg", io.BytesIO(whole[: len(whole) // 2]))
    assert response.status_code == 400
    assert b"This image could not be read" in response.content
    assert not Generation.objects.exists()


def test_a_keyframe_stored_without_the_form_never_keeps_a_dangerous_extension(alice):
    # Only the form re-encodes; anything else storing a keyframe still gets an inert name.
    gen = Generation(
        user_prompt="x",
        created_by=alice,
        image_file=SimpleUploadedFile("page.html", b"<script>alert(1)</script>"),
        image_end_file=SimpleUploadedFile("end.JPG", _image("JPEG").getvalue()),
    )
    gen.save()
    assert gen.image_file.name.endswith(".bin")
    assert gen.image_end_file.name.endswith(".jpg")
    served = Client().get("/media/" + gen.image_file.name)
    assert served["Content-Type"] == "application/octet-stream"
