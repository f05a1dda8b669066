"""Join video clips into one MP4 with PyAV (no ffmpeg binary).

When every clip's video stream has the same codec, size, pixel format and codec set-up
(``extradata``: H.264's SPS/PPS), the packets are copied as they are, one clip after another,
their timestamps shifted so that each clip starts where the one before it ended: no re-encode,
no quality lost, a few milliseconds per clip. Otherwise (clips made by different services or
settings) every frame is decoded, scaled to the first clip's size and encoded again as H.264.

Audio is left out: the service's clips have none.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video.stream


class JoinError(Exception):
    """A clip could not be read (not a video, or no video stream)."""


@dataclass(frozen=True)
class Joined:
    path: Path
    remuxed: bool  # packets copied (True) or every frame encoded again (False)
    frames: int


def _signature(stream: av.video.stream.VideoStream) -> tuple[object, ...]:
    ctx = stream.codec_context
    return (ctx.name, ctx.width, ctx.height, ctx.pix_fmt, bytes(ctx.extradata or b""))


def _open(path: str | os.PathLike[str]) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise JoinError(f"{Path(path).name} is not a readable video") from exc
    if not container.streams.video:
        container.close()
        raise JoinError(f"{Path(path).name} has no video stream")
    return container


def join(clips: Sequence[str | os.PathLike[str]], out: Path) -> Joined:
    """Write ``clips`` joined into ``out`` (atomically: a temporary file beside it, renamed)."""
    if not clips:
        raise JoinError("nothing to join")
    inputs = [_open(path) for path in clips]
    try:
        signatures = {_signature(c.streams.video[0]) for c in inputs}
        fd, name = tempfile.mkstemp(prefix=".join-", suffix=".mp4", dir=out.parent)
        os.close(fd)  # PyAV opens the file by its name; the descriptor would leak otherwise
        tmp = Path(name)
        try:
            frames = _remux(inputs, tmp) if len(signatures) == 1 else _reencode(inputs, tmp)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        for container in inputs:
            container.close()
    return Joined(path=out, remuxed=len(signatures) == 1, frames=frames)


def _remux(inputs: list[av.container.InputContainer], tmp: Path) -> int:
    """Copy every packet, shifting each clip by the length of those before it."""
    frames = 0
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        template = inputs[0].streams.video[0]
        stream = out.add_stream_from_template(template)
        offset = Fraction(0)  # seconds already written
        last_dts: Fraction | None = None  # seconds: clips may count time in other units
        for container in inputs:
            source = container.streams.video[0]
            base = source.time_base or Fraction(1, 90_000)
            start = source.start_time or 0
            shift = round(offset / base) - start
            end = start
            for packet in container.demux(source):
                if packet.dts is None or packet.pts is None:  # the demuxer's flush packet
                    continue
                end = max(end, packet.pts + (packet.duration or 0))
                packet.pts += shift
                packet.dts += shift
                if last_dts is not None and packet.dts * base <= last_dts:
                    packet.dts = math.floor(last_dts / base) + 1  # decode order must rise
                    packet.pts = max(packet.pts, packet.dts)
                last_dts = packet.dts * base
                packet.stream = stream
                out.mux(packet)
                frames += 1
            offset += (end - start) * base
    return frames


def _reencode(inputs: list[av.container.InputContainer], tmp: Path) -> int:
    """Decode every frame and encode it again at the first clip's size and frame rate."""
    first = inputs[0].streams.video[0]
    rate = first.average_rate or first.guessed_rate or Fraction(24)
    width, height = first.codec_context.width, first.codec_context.height
    frames = 0
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for container in inputs:
            for frame in container.decode(container.streams.video[0]):
                image = frame.reformat(width=width, height=height, format="yuv420p")
                image.pts = frames  # one frame after another, at the first clip's rate
                image.time_base = Fraction(1) / rate
                for packet in stream.encode(image):
                    out.mux(packet)
                frames += 1
        for packet in stream.encode():
            out.mux(packet)
    return frames
