"""Frames of a finished video as still images: the scrubber's preview and a new video's keyframe.

A frame is taken from the video's **local copy** with PyAV (no ffmpeg binary), never from the
upstream's CDN: the copy is ours, it does not expire, and reading it costs no request.

*Which frame.* A time ``t`` (seconds) names the frame nearest to it: ``round(t * fps)``, so the
scrubber's ``frame / fps`` (written with a few decimals) comes back to the very frame it showed.
``t`` past the end is the last frame; no ``t`` is the last frame too (the default: "continue from
where it ended"). The last frame is decoded to the end of the stream, not computed from the
container's frame count, which some muxers get wrong by one. Negative, NaN, infinite or
non-numeric ``t`` is refused with a message (``FrameError``), never a 500.

*Exact, not the nearest keyframe.* Seeking lands on the keyframe at or before the target; the
decoder then runs forward to the wanted frame (at most one GOP: 250 frames for x264's default,
~10 s of a 24 fps clip). The tests compare the result with a full sequential decode.

*When.* A frame is extracted when it is shown (the preview, ``frame_jpeg``) and again when a
create form that names it is submitted (``FrameRef.keyframe``): the form carries a *reference*
(``<video id>@<t>``), not a file, so a form sent back with an error keeps it for free, and there
is no temporary file to leak, clean up, or point another person's form at. The same function
makes both images, so the keyframe is byte for byte the preview the person chose (and a
re-posted form's idempotency digest is the same).
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import uuid
from dataclasses import dataclass
from fractions import Fraction

import av
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generations import mediastore
from generations.models import Generation, Status

JPEG_QUALITY = 92
# Bumped when the way a frame becomes a JPEG changes: cached previews (ETag) are then stale.
ENCODING_VERSION = "1"
LAST = None  # a frame index of None: the last frame


class FrameError(ValueError):
    """Why a frame cannot be had, in words for the person who asked."""


@dataclass(frozen=True)
class VideoInfo:
    """What the scrubber needs to know of a video: its frame rate and how many frames."""

    fps: Fraction
    frames: int
    width: int
    height: int

    @property
    def last_index(self) -> int:
        return max(self.frames - 1, 0)

    @property
    def duration(self) -> float:
        return float(self.frames / self.fps)

    def index_at(self, t: float | None) -> int | None:
        """The frame nearest to ``t`` seconds; None (the last frame) for no ``t`` or past the
        end."""
        if t is None:
            return LAST
        position = t * float(self.fps)  # inf for a huge t: the last frame, not an overflow
        return self.index_of(round(position)) if position < self.last_index else LAST

    def index_of(self, number: int) -> int | None:
        """Frame ``number`` (0-based) as asked for by the scrubber: None (the last) from the
        last one on."""
        return LAST if number >= self.last_index else number

    def seconds(self, index: int | None) -> float:
        """When frame ``index`` is shown (the last one for None)."""
        return float((self.last_index if index is None else index) / self.fps)


def parse_t(raw: str | None) -> float | None:
    """A time from a query string or a form: None when absent or empty; ``FrameError`` for
    anything but a finite, non-negative number of seconds."""
    if raw is None or str(raw).strip() == "" or str(raw).strip() == "last":
        return None
    try:
        t = float(str(raw).strip()[:32])
    except ValueError:
        raise FrameError("The time must be a number of seconds, such as 2.5.") from None
    if math.isnan(t) or math.isinf(t):
        raise FrameError("The time must be a number of seconds, such as 2.5.")
    if t < 0:
        raise FrameError("The time cannot be negative: 0 is the first frame.")
    return t


def video_path(gen: Generation) -> str:
    """The local copy's path of a video frames may be taken from, or ``FrameError`` saying why
    not (not finished, no local copy yet, the file gone)."""
    if gen.status != Status.COMPLETED:
        raise FrameError("Frames can only be taken from a finished video.")
    if not gen.video_file:
        raise FrameError(
            "This video has no local copy yet, so its frames cannot be read: try again in a "
            "moment, or use “Copy again” on its page."
        )
    if mediastore.remote():  # MEDIA_STORAGE=s3: a copy on this machine, streamed once
        cached = mediastore.local_path(gen.video_file.name)
        if cached is None:
            raise FrameError("This video's local copy is missing: use “Copy again” on its page.")
        return cached
    try:
        path = gen.video_file.path
    except (NotImplementedError, ValueError):  # a storage without files on this machine
        raise FrameError("This video's file cannot be read here.") from None
    if not os.path.isfile(path):
        raise FrameError("This video's local copy is missing: use “Copy again” on its page.")
    return path


def probe(path: str) -> VideoInfo:
    """Frame rate, frame count and size of the video at ``path`` (cached per file version)."""
    stat = os.stat(path)
    return _probe(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _probe(path: str, mtime_ns: int, size: int) -> VideoInfo:
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise FrameError("This file has no video picture to take a frame from.")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or Fraction(24)
            frames = stream.frames
            if not frames and stream.duration and stream.time_base:
                frames = round(stream.duration * stream.time_base * fps)
            if not frames and container.duration:
                frames = round(container.duration / av.time_base * fps)
            return VideoInfo(Fraction(fps), max(int(frames or 1), 1), stream.width, stream.height)
    except FrameError:
        raise
    except Exception:  # a damaged or unreadable file: said, never a 500
        raise FrameError("This video's file could not be read.") from None


def extract(path: str, index: int | None) -> Image.Image:
    """Frame ``index`` of the video at ``path`` (None: the last one), decoded exactly: seek to
    the keyframe at or before it, then decode forward to it."""
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            # Frame and slice threads: the same frames, decoded on every core.
            stream.thread_type = "AUTO"
            image = _decode_to(container, stream, index)
            if image is None:  # a seek that landed past the target (a broken index): read it all
                container.seek(0)
                image = _decode_to(container, stream, index, seek=False)
    except Exception:
        raise FrameError("This video's file could not be read.") from None
    if image is None:
        raise FrameError("This video has no frame to take.")
    return image


def _decode_to(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    index: int | None,
    *,
    seek: bool = True,
) -> Image.Image | None:
    """The last decoded frame whose time is not past frame ``index``'s (half a frame of slack
    for rounded timestamps), in presentation order; None if the first frame decoded is already
    past it. For ``index`` None, every frame to the end: the last one."""
    time_base = stream.time_base or Fraction(1, 90000)
    fps = stream.average_rate or stream.guessed_rate or Fraction(24)
    start = stream.start_time or 0
    if index is None:
        target = None
        seek_to = start + int((stream.duration or 0) * 0.9) if stream.duration else start
    else:
        target = start + (Fraction(index) / fps) / time_base + (Fraction(1, 2) / fps) / time_base
        seek_to = start + int((Fraction(index) / fps) / time_base)
    if seek:
        container.seek(max(int(seek_to), 0), stream=stream, backward=True, any_frame=False)
    chosen = None
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        if target is not None and frame.pts > target:
            break
        chosen = frame
    return chosen.to_image() if chosen is not None else None


def frame_jpeg(path: str, index: int | None) -> bytes:
    """Frame ``index`` as a JPEG: the preview and the keyframe are these same bytes."""
    stat = os.stat(path)
    return _frame_jpeg(path, stat.st_mtime_ns, stat.st_size, index)


@functools.lru_cache(maxsize=32)
def _frame_jpeg(path: str, mtime_ns: int, size: int, index: int | None) -> bytes:
    image = extract(path, index).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def etag(path: str, index: int | None) -> str:
    """A validator for one frame's JPEG: the file's version, the frame and how it is encoded."""
    stat = os.stat(path)
    which = "last" if index is None else str(index)
    raw = f"{path}|{stat.st_mtime_ns}|{stat.st_size}|{which}|{ENCODING_VERSION}|{JPEG_QUALITY}"
    return '"' + hashlib.sha256(raw.encode()).hexdigest()[:32] + '"'


# --- a frame named by a create form -------------------------------------------------------------
@dataclass(frozen=True)
class FrameRef:
    """A frame of a finished video, as a form or the API names it: ``<video id>`` (the last
    frame) or ``<video id>@<seconds>``."""

    generation_id: uuid.UUID
    t: float | None = None

    @classmethod
    def parse(cls, value: str) -> FrameRef:
        raw_id, _, raw_t = str(value).strip().partition("@")
        try:
            pk = uuid.UUID(raw_id)
        except ValueError:
            raise FrameError(
                "This frame reference is not valid: pick the frame again on the video's page."
            ) from None
        return cls(pk, parse_t(raw_t) if raw_t else None)

    def __str__(self) -> str:
        if self.t is None:
            return str(self.generation_id)
        return f"{self.generation_id}@{format(self.t, '.6f').rstrip('0').rstrip('.')}"

    def resolve(self) -> Resolved:
        """The video, its file and the frame index, or ``FrameError`` saying why not."""
        gen = Generation.objects.filter(pk=self.generation_id).first()
        if gen is None:
            raise FrameError("The video this frame comes from was not found (deleted?).")
        path = video_path(gen)
        info = probe(path)
        return Resolved(gen, path, info, info.index_at(self.t))


@dataclass(frozen=True)
class Resolved:
    """A frame found: where it comes from and which one it is."""

    generation: Generation
    path: str
    info: VideoInfo
    index: int | None

    @property
    def seconds(self) -> float:
        return self.info.seconds(self.index)

    @property
    def number(self) -> int:
        """The frame's number as people count (1 is the first)."""
        return (self.info.last_index if self.index is None else self.index) + 1

    @property
    def is_last(self) -> bool:
        return self.index is None

    @property
    def reference(self) -> str:
        """How a form names this frame again (``<id>`` for the last, else ``<id>@<seconds>``)."""
        seconds = None if self.index is None else self.seconds
        return str(FrameRef(self.generation.pk, seconds))

    def jpeg(self) -> bytes:
        return frame_jpeg(self.path, self.index)

    def keyframe(self) -> SimpleUploadedFile:
        """The frame as an upload, stored like any uploaded keyframe (``keyframes/<random>.jpg``,
        served publicly for the upstream)."""
        return SimpleUploadedFile("keyframe.jpg", self.jpeg(), content_type="image/jpeg")
