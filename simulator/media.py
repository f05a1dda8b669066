"""Render the simulator's videos: real, playable H.264 MP4s and JPEG thumbnails.

Every clip is a small animated landscape drawn with Pillow and encoded with PyAV: a sky whose
colours come from a hash of the prompt, an orb moving along a smooth path, drifting clouds and
rising sparks, and the prompt as a caption. Animation is a function of *absolute* time, so an
extension (which starts where its parent ended, with the root's palette) visibly continues it.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import os
import random
import sys
import tempfile
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from . import keyframes

SIZES: dict[str, tuple[int, int]] = {
    "16:9": (640, 360),
    "9:16": (360, 640),
    "1:1": (480, 480),
    "4:3": (640, 480),
    "3:4": (480, 640),
    "21:9": (672, 288),
    "9:21": (288, 672),
}
# The luma dialect's resolutions: 540p is SIZES, the others scale it. 4k is capped at 1080p's
# size (1280 x 720 for 16:9): a real 4k frame would make every render slow, and no test or demo
# needs the pixels, only a bigger file than 720p's.
RESOLUTION_SCALES: dict[str, float] = {"540p": 1.0, "720p": 4 / 3, "1080p": 2.0, "4k": 2.0}
PROGRESS_SCALE = 0.5  # the progress video: half the size,
PROGRESS_FRACTION = 0.4  # and the first 40 % of the frames
KEYFRAME_MAX_BYTES = 10 * 1024 * 1024
KEYFRAME_TIMEOUT = 3.0
FADE_SECONDS = 1.0
JPEG_QUALITY = 85

RGB = tuple[int, int, int]


@dataclass
class Scene:
    """Everything that decides a clip's pixels."""

    prompt: str
    aspect_ratio: str = "16:9"
    palette_key: str = ""  # the chain root's prompt: extensions keep their parent's colours
    part: int = 1  # 1 for a new generation, n for the (n-1)th extension
    time_offset: float = 0.0  # absolute animation time of the first frame
    seconds: float = 3.0
    fps: int = 24
    start_image: Image.Image | None = None
    end_image: Image.Image | None = None
    resolution: str = "540p"
    size_factor: float = 1.0  # on top of the resolution's (the progress video's half size)
    loop: bool = False  # the last frame is the first one again
    # True: a keyframe covers the caption too, so a frame that is all keyframe is exactly it
    # (the luma dialect's reverse extensions and interpolations end on the source's frame).
    keyframes_over_caption: bool = False

    @property
    def size(self) -> tuple[int, int]:
        width, height = SIZES.get(self.aspect_ratio, SIZES["16:9"])
        scale = RESOLUTION_SCALES.get(self.resolution, 1.0) * self.size_factor
        if scale == 1.0:
            return width, height
        return _even(width * scale), _even(height * scale)

    @property
    def caption(self) -> str:
        return self.prompt if self.part <= 1 else f"Part {self.part} · {self.prompt}"


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def render(
    scene: Scene, mp4_path: Path, jpg_path: Path | None, fraction: float = 1.0, crf: int = 23
) -> None:
    """Write the clip and its first-frame thumbnail; each file appears atomically.
    ``fraction``: only the first part of the clip's frames (the progress video's)."""
    painter = _Painter(scene)
    frame_count = max(1, round(scene.seconds * scene.fps))
    if fraction < 1.0:
        frame_count = max(1, round(frame_count * fraction))
    width, height = scene.size
    mp4_tmp = _temp_beside(mp4_path, ".mp4")
    try:
        with av.open(str(mp4_tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream("libx264", rate=scene.fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "veryfast", "crf": str(crf)}
            for index in range(frame_count):
                image = painter.frame(index / scene.fps)
                if index == 0 and jpg_path is not None:
                    _save_jpeg(image, jpg_path)
                for packet in stream.encode(av.VideoFrame.from_image(image)):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        os.replace(mp4_tmp, mp4_path)
    finally:
        mp4_tmp.unlink(missing_ok=True)


def render_progress(scene: Scene, mp4_path: Path) -> None:
    """The luma dialect's ``progress_video``: a different, smaller file than the video (half
    the size, the first 40 % of the frames, coarser), so a client that copies it instead of
    ``assets.video`` is caught."""
    small = replace(scene, size_factor=scene.size_factor * PROGRESS_SCALE)
    render(small, mp4_path, None, fraction=PROGRESS_FRACTION, crf=32)


def edge_frames(mp4_path: Path) -> tuple[Image.Image, Image.Image]:
    """The first and the last frame of a rendered clip, as decoded (what a client sees)."""
    first = last = None
    with av.open(str(mp4_path)) as container:
        for frame in container.decode(container.streams.video[0]):
            image = frame.to_image()
            if first is None:
                first = image
            last = image
    if first is None or last is None:
        raise ValueError(f"{mp4_path} has no frames")
    return first, last


def fetch_keyframe(url: str | None, allowed_origins: Iterable[str] = ()) -> Image.Image | None:
    """Fetch an http(s) keyframe (3 s, 10 MB cap) through ``keyframes.fetch``, which refuses
    private addresses outside ``allowed_origins``; None on any failure: keyframes are a bonus,
    the clip is drawn without it (a refusal is said on stderr, for the operator)."""
    if not url:
        return None
    try:
        data = keyframes.fetch(url, allowed_origins, KEYFRAME_TIMEOUT, KEYFRAME_MAX_BYTES)
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")
    except keyframes.Refused as exc:
        print(f"simulator: keyframe not fetched: {exc}", file=sys.stderr)
        return None
    except Exception:
        return None


def _save_jpeg(image: Image.Image, path: Path) -> None:
    tmp = _temp_beside(path, ".jpg")
    try:
        image.save(tmp, "JPEG", quality=JPEG_QUALITY)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _temp_beside(path: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _soft_disc(radius: int, color: RGB, alpha: int, blur: float) -> Image.Image:
    """An RGBA sprite: a disc with blurred edges, for glows and clouds."""
    pad = math.ceil(blur * 3)
    side = 2 * (radius + pad)
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((pad, pad, side - pad, side - pad), fill=alpha)
    if blur:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    sprite = Image.new("RGBA", (side, side), (*color, 0))
    sprite.putalpha(mask)
    return sprite


class _Painter:
    """Pre-computes a scene's static layers once, then draws frames cheaply."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.width, self.height = scene.size
        digest = hashlib.sha256((scene.palette_key or scene.prompt).encode()).digest()
        self.rng = random.Random(digest)
        hue = digest[0] / 255
        accent = hue + 0.08 + digest[1] / 255 * 0.25
        self.zenith = _hsv(hue + 0.55, 0.75, 0.28)
        self.horizon = _hsv(accent, 0.55, 0.95)
        self.orb_color = _hsv(accent + 0.05, 0.35, 1.0)
        self.hill_color = _hsv(hue + 0.6, 0.6, 0.18)
        self.phase = digest[2] / 255 * math.tau
        self.sky = self._sky()
        self.hills = self._hills()
        self.caption = self._caption()
        unit = min(self.width, self.height)
        self.orb = _soft_disc(round(unit * 0.07), self.orb_color, 255, 1.5)
        self.glow = _soft_disc(round(unit * 0.14), self.orb_color, 110, unit * 0.05)
        self.clouds = [self._cloud(unit) for _ in range(4)]
        self.sparks = [
            (self.rng.random(), self.rng.random(), 0.03 + self.rng.random() * 0.06)
            for _ in range(14)
        ]
        self.start = self._fit(scene.start_image)
        self.end = self._fit(scene.end_image)
        if scene.loop:  # the last frame fades into the first
            self.end = None
            self.end = self.frame(0.0)

    def frame(self, local_t: float) -> Image.Image:
        """The frame at `local_t` seconds into this clip."""
        t = self.scene.time_offset + local_t
        image = self.sky.copy()
        x, y = self.orb_position(t)
        for sprite in (self.glow, self.orb):
            image.paste(sprite, (x - sprite.width // 2, y - sprite.height // 2), sprite)
        for sprite, x0, y0, speed in self.clouds:
            span = self.width + sprite.width
            cx = round((x0 * span + speed * self.width * t) % span) - sprite.width
            image.paste(sprite, (cx, round(y0 * self.height)), sprite)
        draw = ImageDraw.Draw(image)
        for x0, y0, speed in self.sparks:
            sx = x0 * self.width + math.sin(t * 1.7 + x0 * 20) * 6
            sy = (y0 - speed * t) % 1.0 * self.height
            draw.ellipse((sx - 1.5, sy - 1.5, sx + 1.5, sy + 1.5), fill=(255, 255, 235))
        image.paste(self.hills, (0, 0), self.hills)
        if self.scene.keyframes_over_caption:
            image.paste(self.caption, (0, self.height - self.caption.height), self.caption)
            return self._keyframe_fade(image, local_t)
        image = self._keyframe_fade(image, local_t)
        image.paste(self.caption, (0, self.height - self.caption.height), self.caption)
        return image

    def orb_position(self, t: float) -> tuple[int, int]:
        """A slow Lissajous path in absolute time, so parts join without a jump."""
        x = 0.5 + 0.36 * math.sin(0.45 * t + self.phase)
        y = 0.36 + 0.14 * math.cos(0.7 * t + self.phase * 1.3)
        return round(x * self.width), round(y * self.height)

    def _keyframe_fade(self, image: Image.Image, local_t: float) -> Image.Image:
        if self.start is not None and local_t < FADE_SECONDS:
            image = Image.blend(image, self.start, 1.0 - local_t / FADE_SECONDS)
        remaining = self.scene.seconds - local_t - 1 / self.scene.fps
        if self.end is not None and remaining < FADE_SECONDS:
            image = Image.blend(image, self.end, 1.0 - max(0.0, remaining) / FADE_SECONDS)
        return image

    def _fit(self, keyframe: Image.Image | None) -> Image.Image | None:
        if keyframe is None:
            return None
        return ImageOps.fit(keyframe.convert("RGB"), (self.width, self.height))

    def _sky(self) -> Image.Image:
        column = Image.new("RGB", (1, self.height))
        for row in range(self.height):
            t = row / max(1, self.height - 1)
            column.putpixel((0, row), _mix(self.zenith, self.horizon, t**1.4))
        return column.resize((self.width, self.height))

    def _hills(self) -> Image.Image:
        layer = Image.new("RGBA", (self.width, self.height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        for depth, (base, alpha) in enumerate(((0.72, 150), (0.8, 235))):
            color = _mix(self.hill_color, self.horizon, 0.35 - depth * 0.3)
            freq, shift = 1.5 + self.rng.random() * 2, self.rng.random() * math.tau
            points = [(0, self.height)]
            for step in range(0, self.width + 16, 16):
                wave = math.sin(step / self.width * math.tau * freq + shift)
                points.append((step, round(self.height * (base + 0.05 * wave))))
            points.append((self.width, self.height))
            draw.polygon(points, fill=(*color, alpha))
        return layer

    def _cloud(self, unit: int) -> tuple[Image.Image, float, float, float]:
        rand = self.rng.random
        sprite = _soft_disc(round(unit * (0.08 + rand() * 0.08)), (255, 255, 255), 70, 6)
        sprite = sprite.resize((round(sprite.width * 2.2), sprite.height))
        return sprite, rand(), 0.05 + rand() * 0.5, 0.02 + rand() * 0.05

    def _caption(self) -> Image.Image:
        size = max(12, round(min(self.width, self.height) * 0.045))
        font = _font(size)
        chars = max(12, int(self.width / (size * 0.55)))
        lines = textwrap.wrap(self.scene.caption, chars, max_lines=3, placeholder=" …")
        line_height = round(size * 1.3)
        band = Image.new("RGBA", (self.width, line_height * len(lines) + size), (0, 0, 0, 150))
        draw = ImageDraw.Draw(band)
        for index, line in enumerate(lines):
            draw.text(
                (size // 2, size // 2 + index * line_height),
                line,
                font=font,
                fill=(255, 255, 255, 255),
            )
        return band
