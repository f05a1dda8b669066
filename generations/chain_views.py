"""A chain's path, from its root to one video, downloaded as one MP4 (``chain.mp4``).

The clips are the local copies (``chains.path_clips``: the video's sequence in playback order, a
reverse extension before its parent, an interpolation between its two sources; the last one
alone when the service's extensions already contain their parent). They are joined by
``generations.joining`` in the request: copying the packets of a few short clips takes
milliseconds (docs/ARCHITECTURE.md, "Chains", has the figures), and the result is kept under
``MEDIA_ROOT/chains/``, named by its leaf and a digest of the path's ids and files
(``chain_files``, which also removes them: on a delete, when unread for days, when replaced), so
the next download of the same path is a plain file send. ``chains/`` is not served by
``/media/``: only this view, behind the login, sends it (``fileserve.serve_file``: ranges, so a
broken download resumes; nginx sends the bytes with ``MEDIA_SERVE=accel``). The address stays
while the path's files change, so a browser asks again each time (``no-cache``); a join's ETag
is its name (the path's digest: the mtime moves whenever the join is sent), and the answer to a
browser that has it already is a 304.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_safe

from generations import chain_files, chains, joining, mediastore, naming
from generations.fileserve import serve_file
from generations.models import Generation, Status

log = logging.getLogger(__name__)

# Copying packets runs at about 250 MB/s here: a hundred 5-second clips stay within a few seconds.
MAX_CLIPS = 100
GONE = "This chain's file is missing from lumaweb's storage. Try Copy again on its videos' pages."

CHANGED = "This chain changed while it was being joined (a video was deleted). Try again."

NOT_COPIED = (
    "This chain cannot be downloaded as one file yet: {count} of its videos {verb} not been "
    "copied to lumaweb. Each video can still be downloaded or played on its own page."
)


def _back(request: HttpRequest, gen: Generation, words: str) -> HttpResponse:
    messages.error(request, words)
    return redirect(reverse("generation-detail", args=[gen.pk]) + "#chain")


@require_safe
def chain_mp4(request: HttpRequest, pk: uuid.UUID) -> HttpResponseBase:
    gen = get_object_or_404(Generation, pk=pk)
    if gen.status != Status.COMPLETED:
        return _back(request, gen, "This video is not finished: its chain cannot be joined yet.")
    clips = chains.path_clips(gen)
    missing = [clip for clip in clips if not clip.video_file]
    if missing:
        verb = "has" if len(missing) == 1 else "have"
        return _back(request, gen, NOT_COPIED.format(count=len(missing), verb=verb))
    if len(clips) > MAX_CLIPS:
        return _back(
            request,
            gen,
            f"This chain is {len(clips)} videos long: more than the {MAX_CLIPS} lumaweb joins "
            "into one file. Download its videos one by one.",
        )
    filename = naming.download_name(gen, "-chain")
    if len(clips) == 1:  # the leaf holds the whole chain (or the chain is one video)
        if mediastore.remote():  # MEDIA_STORAGE=s3: the bucket sends it, as an attachment
            return mediastore.presigned_redirect(clips[0].video_file.name, download_name=filename)
        return _send(request, clips[0].video_file.path, filename) or _back(request, gen, GONE)
    name = chain_files.cache_name(clips, gen)  # named by this video, whatever plays last
    full = chain_files.path(name)
    if full.is_file():
        chain_files.touch(full)  # read: kept another LUMA_CHAIN_CACHE_DAYS
    else:
        full.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            joined = joining.join([_clip_path(clip) for clip in clips], full)
        except (joining.JoinError, OSError) as exc:
            log.warning("chain %s not joined: %s", gen.pk, exc)
            return _back(
                request,
                gen,
                "This chain could not be joined: one of its copied videos is "
                "unreadable. Try Copy again on that video's page.",
            )
        log.info(
            "chain %s joined: %d clips, %d frames, %s, in %.0f ms",
            gen.pk,
            len(clips),
            joined.frames,
            "packets copied" if joined.remuxed else "encoded again",
            (time.monotonic() - started) * 1000,
        )
        # A clip deleted while this join was written: its delete may have scanned chains/
        # before the join was there, so the join goes now (either way, it is not kept).
        if Generation.objects.filter(pk__in=[clip.pk for clip in clips]).count() != len(clips):
            full.unlink(missing_ok=True)
            return _back(request, gen, CHANGED)
        chain_files.remove_others(name)  # a clip copied again: the old join of this path
    _readable(full)
    etag = f'"{full.stem}"'  # the join's name: the mtime moves whenever it is sent (touch)
    return _send(request, str(full), filename, etag) or _back(request, gen, GONE)


def _clip_path(clip: Generation) -> str:
    """A clip's file on this machine (``MEDIA_STORAGE=s3``: streamed once from the bucket)."""
    if not mediastore.remote():
        return str(clip.video_file.path)
    path = mediastore.local_path(clip.video_file.name)
    if path is None:
        raise FileNotFoundError(clip.video_file.name)
    return path


def _readable(full: Path) -> None:
    """A join is written to a ``mkstemp`` file (0600): given the mode of every other stored file
    (``FILE_UPLOAD_PERMISSIONS``, 0644), so that nginx, another user, can send it
    (``MEDIA_SERVE=accel``). Joins kept from before are fixed when next sent."""
    mode = settings.FILE_UPLOAD_PERMISSIONS
    with contextlib.suppress(OSError):  # removed meanwhile: the send says it is gone
        if mode is not None and full.stat().st_mode & 0o777 != mode:
            full.chmod(mode)


def _send(
    request: HttpRequest, path: str, filename: str, etag: str | None = None
) -> HttpResponseBase | None:
    try:
        return serve_file(request, path, "private, no-cache", etag=etag, download_name=filename)
    except FileNotFoundError:
        return None
