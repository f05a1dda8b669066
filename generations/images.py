"""Uploaded keyframes, re-encoded: only the pixels survive.

Keyframes are served to anyone (the upstream fetches them), so what is stored must be exactly an
image of the type its name says, with nothing of the photo's origin in it. The client's file name
and bytes are not trusted: a PNG called ``report.pdf`` was served as ``application/pdf``, and a
phone photo carried its GPS position and camera model to every viewer. Re-encoding from decoded
pixels drops every metadata block at once (EXIF, GPS, XMP, ICC profiles, PNG text chunks, JPEG
comments) instead of chasing each one, and the stored name takes the extension of the format
written, never the one uploaded.
"""

from __future__ import annotations

import io

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from PIL import Image, ImageOps

# Decoders we let near uploads: the common formats, not every plugin Pillow ships. ("JPEG"
# also opens MPO, a camera JPEG carrying extra pictures.)
READABLE = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# What is written: the same format for the web's three, PNG (lossless) for the rest.
WRITTEN = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WEBP"}
EXTENSION = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
CONTENT_TYPE = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
UNREADABLE = (
    "This image could not be read (damaged, or a format we do not take): upload a PNG, JPEG or "
    "WebP image."
)


def reencode_keyframe(upload: UploadedFile) -> SimpleUploadedFile:
    """A new file holding only ``upload``'s pixels, upright, named ``keyframe.<real type>``.

    Raises ``ValidationError`` with a reason a person can act on when the image cannot be used.
    The caller has already capped bytes and pixels (Pillow decodes the whole image here).
    """
    source = upload.file
    if source is None:  # a closed upload
        raise ValidationError(UNREADABLE)
    source.seek(0)
    try:
        with Image.open(source, formats=READABLE) as opened:
            # An MPO is a camera JPEG with extra pictures (depth maps, previews): the first is
            # the photo. Other formats with frames are animations, which a still cannot be.
            if getattr(opened, "is_animated", False) and opened.format != "MPO":
                raise ValidationError(
                    "Animated images cannot be keyframes: upload a still image (PNG, JPEG or WebP)."
                )
            fmt = WRITTEN.get(opened.format or "", "PNG")
            upright = ImageOps.exif_transpose(opened)  # the camera's rotation, into pixels
            pixels = _web_mode(upright, fmt)
    except ValidationError:
        raise
    except Exception:  # anything a decoder throws means "not usable", never a 500
        raise ValidationError(UNREADABLE) from None
    # A fresh image from the pixels alone: no ``info`` (text, XMP, ICC, comment), no EXIF.
    clean = Image.new(pixels.mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    if fmt == "JPEG":
        clean.save(out, "JPEG", quality=95, optimize=True)
    elif fmt == "WEBP":
        clean.save(out, "WEBP", quality=95, method=4)
    else:
        clean.save(out, "PNG", optimize=True)
    return SimpleUploadedFile(
        f"keyframe.{EXTENSION[fmt]}", out.getvalue(), content_type=CONTENT_TYPE[fmt]
    )


def _web_mode(image: Image.Image, fmt: str) -> Image.Image:
    """``image`` in a mode ``fmt`` writes and every browser shows: 8-bit L, RGB or RGBA (no
    CMYK, no 16-bit, no palette, whose transparency lives in ``info``, which is not kept)."""
    if fmt == "JPEG":
        return image if image.mode in ("L", "RGB") else image.convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit greyscale, to 8 bits
        return image.convert("I").point(lambda v: v / 256).convert("L")
    alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if image.mode == "RGBA" or (image.mode in ("L", "RGB") and not alpha):
        return image
    return image.convert("RGBA" if alpha else "RGB")
