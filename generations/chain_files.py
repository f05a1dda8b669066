"""Joined chain files, kept under ``MEDIA_ROOT/chains/``, and their removal.

A join is named ``chains/<leaf id>-<digest>.mp4``: the video whose sequence it is (not always
the last clip: a reverse extension's sequence ends with its parent, an interpolation's with the
video it runs into), then a digest of the clips' ids, kinds and file names in playback order (a
video copied again gets a new file name, so a stale join is never sent; another order is
another file). The leaf's id in the name is what makes a join findable without reading any
file: the joins that contain a video's clip are the joins of that video, of its descendants
and of the interpolations that end at it and theirs (``chains.below``), so a delete removes
those in one directory scan (``remove_joins``). Three more rules bound the rest:

- one join per video: writing a new join of a video removes its others (``remove_others``), so
  a "Copy again" that changed a clip's file leaves no old join behind once the path is read;
- a join is touched whenever it is sent, and the periodic sweep removes every file here not
  touched for ``LUMA_CHAIN_CACHE_DAYS`` (``sweep``), in one scan at most every ``SWEEP_EVERY``
  seconds (a marker file's age says when the last scan was, for every process alike);
- files named the old way (``chains/<digest>.mp4``, no leaf) cannot be attributed: any delete
  removes them all; they are only a cache, joined again on the next download.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from generations import mediastore
from generations.models import Generation

log = logging.getLogger(__name__)

DIR = "chains"
MARKER = ".swept"  # its mtime: when the last sweep scanned this directory
SWEEP_EVERY = 300.0  # seconds between two scans, however often the sweep itself runs
_NAMED = re.compile(r"^(?P<leaf>[0-9a-f]{32})-[0-9a-f]{32}\.mp4$")


def cache_name(clips: Sequence[Generation], leaf: Generation | None = None) -> str:
    """Where the join of ``clips`` (a sequence, in playback order) for ``leaf`` (the video whose
    sequence it is; by default the last clip, as for a chain of extensions) is kept. The digest
    covers each clip's id, kind and file in order: another order or kind is another file."""
    key = "|".join(f"{clip.pk}:{clip.kind}:{clip.video_file.name}" for clip in clips)
    digest = hashlib.blake2s(key.encode(), digest_size=16).hexdigest()
    owner = clips[-1] if leaf is None else leaf
    return f"{DIR}/{uuid.UUID(str(owner.pk)).hex}-{digest}.mp4"


def path(name: str) -> Path:
    # MEDIA_STORAGE=s3: joins stay on this machine's disk (MEDIA_ROOT/chains/), a cache made
    # again from the bucket's clips whenever it is missing.
    if mediastore.remote():
        return Path(settings.MEDIA_ROOT) / name
    return Path(default_storage.path(name))


def _directory() -> Path:
    return path(DIR)


def _entries() -> list[os.DirEntry[str]]:
    try:
        with os.scandir(_directory()) as entries:
            return [e for e in entries if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _remove(entry: os.DirEntry[str]) -> bool:
    try:
        os.unlink(entry.path)
    except FileNotFoundError:
        return False  # another process removed it first
    return True


def remove_joins(leaves: Iterable[object]) -> int:
    """Remove every join whose path ends at one of ``leaves`` (ids), and every join named the
    old way; one directory scan. Returns how many files went."""
    wanted = {uuid.UUID(str(pk)).hex for pk in leaves}
    removed = 0
    for entry in _entries():
        if entry.name.startswith("."):
            continue  # the marker, or a join being written (it checks its clips when done)
        named = _NAMED.match(entry.name)
        if named is None or named["leaf"] in wanted:
            removed += _remove(entry)
    return removed


def remove_others(name: str) -> int:
    """Remove the joins of ``name``'s leaf other than ``name`` (its path's clips changed)."""
    keep = Path(name).name
    named = _NAMED.match(keep)
    if named is None:
        return 0
    removed = 0
    for entry in _entries():
        if entry.name != keep and entry.name.startswith(named["leaf"] + "-"):
            removed += _remove(entry)
    return removed


def touch(full: Path) -> None:
    """A join just sent is kept another ``LUMA_CHAIN_CACHE_DAYS``."""
    with contextlib.suppress(OSError):  # removed meanwhile: the next download joins it again
        os.utime(full)


def sweep(now: float | None = None) -> int:
    """Remove the files not touched for ``LUMA_CHAIN_CACHE_DAYS`` (joins, and temporary files a
    killed join left), scanning at most every ``SWEEP_EVERY`` seconds. Returns how many went."""
    now = time.time() if now is None else now
    marker = _directory() / MARKER
    oldest = now - settings.LUMA_CHAIN_CACHE_DAYS * 86400
    removed = 0
    try:
        if marker.stat().st_mtime > now - SWEEP_EVERY:
            return 0
    except FileNotFoundError:
        if not _directory().is_dir():
            return 0  # nothing joined yet
    try:
        marker.touch()
        for entry in _entries():
            if entry.name != MARKER and entry.stat(follow_symlinks=False).st_mtime < oldest:
                removed += _remove(entry)
    except OSError:  # a cache's cleanup never stops the sweep's real work; the next scan retries
        log.warning("chain joins not swept", exc_info=True)
    if removed:
        days = settings.LUMA_CHAIN_CACHE_DAYS
        log.info("chain joins not read for %s days removed: %d", days, removed)
    return removed
