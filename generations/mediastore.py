"""Where stored media lives, and how a viewer lumaweb said yes to is handed it.

``MEDIA_STORAGE=local`` (the default): files under ``MEDIA_ROOT``, sent by
``generations.fileserve`` (the web process, or nginx with ``MEDIA_SERVE=accel``).

``MEDIA_STORAGE=s3``: files in a bucket of any S3-compatible service (``S3MediaStorage``,
django-storages). A stored file's ``url`` stays lumaweb's own address (``/media/<name>``), so
every page, the API and the upstream's keyframe links keep going through the views that check
who asks; a view that says yes answers with a 302 to a presigned URL that lives
``MEDIA_URL_TTL`` seconds (``presigned_redirect``), and the service sends the bytes, ranges and
all. A stranger gets the view's 404 and never an address of the bucket.

What must read a file's bytes on this machine (a frame of a video, a chain's join, a board's
ZIP) asks ``local_path``: the file itself with local storage; with S3 a copy streamed once into
``MEDIA_ROOT/.s3-cache/`` (a copy's name is never reused for other bytes), removed once not
read for ``LUMA_CHAIN_CACHE_DAYS`` (``prune_cache``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage, storages
from django.http import HttpResponseRedirect
from django.utils.encoding import filepath_to_uri
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage

CACHE_DIR = ".s3-cache"
MARKER = ".pruned"  # its mtime: when prune_cache last scanned
PRUNE_EVERY = 300.0  # seconds between two scans

log = logging.getLogger(__name__)


class S3MediaStorage(S3Storage):
    """django-storages' S3 storage whose ``url`` is lumaweb's checked address, never the
    bucket's; ``presigned_url`` is the bucket's, for a viewer already let in."""

    def url(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        expire: int | None = None,
        http_method: str | None = None,
    ) -> str:
        return settings.MEDIA_URL + filepath_to_uri(name).lstrip("/")

    def presigned_url(self, name: str, *, download_name: str | None = None) -> str:
        parameters = {}
        if download_name:
            parameters["ResponseContentDisposition"] = str(
                content_disposition_header(True, download_name)
            )
        return str(super().url(name, parameters=parameters, expire=settings.MEDIA_URL_TTL))


def remote() -> bool:
    """Whether stored files live in a bucket (``MEDIA_STORAGE=s3``) rather than on this disk."""
    return settings.MEDIA_STORAGE == "s3"


def _bucket() -> S3MediaStorage:
    bucket = storages["default"]
    assert isinstance(bucket, S3MediaStorage), "MEDIA_STORAGE=s3 stores with S3MediaStorage"
    return bucket


def presigned_redirect(name: str, *, download_name: str | None = None) -> HttpResponseRedirect:
    """A 302 to a short-lived presigned URL of ``name``: only for a viewer the caller let in.
    Not cached (the URL expires), and no Referer to the bucket carries the page's address."""
    response = HttpResponseRedirect(_bucket().presigned_url(name, download_name=download_name))
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def exists(name: str) -> bool:
    """Whether ``name`` is stored (a HEAD on the bucket with S3)."""
    return bool(name) and default_storage.exists(name)


def local_path(name: str) -> str | None:
    """A path on this machine holding ``name``'s bytes, or None if it is not stored."""
    if not name:
        return None
    if not remote():
        try:
            path = default_storage.path(name)
        except (NotImplementedError, ValueError):
            return None
        return path if os.path.isfile(path) else None
    cached = Path(settings.MEDIA_ROOT) / CACHE_DIR / name
    if cached.is_file():
        with contextlib.suppress(OSError):  # read: kept another LUMA_CHAIN_CACHE_DAYS
            os.utime(cached)
        return str(cached)
    if not default_storage.exists(name):
        return None
    prune_cache()
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            # download_fileobj: ranged GETs in parts, written as they come (no file in memory)
            bucket = _bucket()
            bucket.bucket.download_fileobj(bucket._normalize_name(name), out)
        if settings.FILE_UPLOAD_PERMISSIONS is not None:
            os.chmod(tmp, settings.FILE_UPLOAD_PERMISSIONS)
        os.replace(tmp, cached)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return str(cached)


def prune_cache(now: float | None = None) -> int:
    """Remove this machine's copies not read for ``LUMA_CHAIN_CACHE_DAYS`` (the joins' rule),
    and scratch files a killed download left; one scan every ``PRUNE_EVERY`` seconds at most
    (a marker's mtime). Runs where the copies are made (the web process, on a miss), since the
    worker's sweep may be on another machine. Returns how many files went."""
    now = time.time() if now is None else now
    root = Path(settings.MEDIA_ROOT) / CACHE_DIR
    marker = root / MARKER
    try:
        if marker.stat().st_mtime > now - PRUNE_EVERY:
            return 0
    except FileNotFoundError:
        if not root.is_dir():
            return 0
    oldest = now - settings.LUMA_CHAIN_CACHE_DAYS * 86400
    removed = 0
    try:
        marker.touch()
        for folder, _dirs, files in os.walk(root):
            for file in files:
                path = Path(folder) / file
                with contextlib.suppress(FileNotFoundError):
                    if path != marker and path.stat().st_mtime < oldest:
                        path.unlink()
                        removed += 1
    except OSError:  # a cache's cleanup never fails the request; the next scan retries
        log.warning("media cache not pruned", exc_info=True)
    return removed


def forget_local(name: str) -> None:
    """Drop this machine's copy of ``name`` (its stored file was deleted)."""
    if remote() and name:
        with contextlib.suppress(FileNotFoundError, OSError):
            (Path(settings.MEDIA_ROOT) / CACHE_DIR / name).unlink()
