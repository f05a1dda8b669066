"""The journal: a paid generation's answer kept on local disk while the database is away.

A worker that holds the service's answer proving a generation started (submit's accepted
answer, or the one the provider's list found) must record it, or the generation is paid for
and no row knows it. When recording raises a connection error (the database restarting,
failing over, out of reach), ``keep`` tries again for ``LUMA_DB_RETRY_SECONDS``, reconnecting
each time, then appends the answer to a file of the worker's own process in
``LUMA_JOURNAL_DIR`` (one JSON line, written, flushed and fsynced; the answer's ids, state and
prompt, never the key) and lets the worker go on.

``replay`` hands what the journal holds to a recorder once the database answers (the sweeper,
each worker at start-up and before a submit: a journal is local to its host). A file is
claimed by renaming it, so two replayers never read the same entries, and its writer's lock
is taken first, so a line being written is read whole. An entry the database refuses again is
journalled again. The recorder (``lookup.record_answer``) is the same conditional update as a
live answer's, so a replay that comes late, or twice, changes nothing twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from generations.client import RemoteGeneration
from generations.pipeline.transitions import log, plog

T = TypeVar("T")
DATABASE_AWAY = (OperationalError, InterfaceError)
SUFFIX = ".jsonl"
CLAIMED = ".replaying-"
# A file claimed by a replayer that died before it finished is claimed again after this long.
CLAIM_STALE_SECONDS = 300.0
UNREADABLE = "unreadable.txt"
UNRECORDED = "unrecorded.txt"  # not SUFFIX: never replayed


class Unrecordable(Exception):
    """A recorder's word that no row can take an answer (its row was deleted): the entry is kept
    aside in ``UNRECORDED`` (one journal line each) for a person, never replayed."""


@dataclass(frozen=True)
class Answer:
    """The service's answer for a row's submit attempt (``claim``), as the journal keeps it."""

    generation_id: str
    claim: str
    remote: RemoteGeneration
    note: str = ""

    def to_line(self) -> str:
        created = self.remote.created_at
        return json.dumps(
            {
                "generation": self.generation_id,
                "claim": self.claim,
                "note": self.note,
                "remote_id": self.remote.id,
                "state": self.remote.state,
                "prompt": self.remote.prompt,
                "estimate_wait_seconds": self.remote.estimate_wait_seconds,
                "created_at": created.isoformat() if created else None,
                "journalled_at": datetime.now().astimezone().isoformat(),
            }
        )

    @classmethod
    def from_line(cls, line: str) -> Answer:
        data = json.loads(line)
        created = data.get("created_at")
        remote = RemoteGeneration(
            id=data["remote_id"],
            state=data.get("state", ""),
            prompt=data.get("prompt", ""),
            estimate_wait_seconds=data.get("estimate_wait_seconds"),
            video_url="",
            thumbnail_url="",
            width=0,
            height=0,
            created_at=datetime.fromisoformat(created) if created else None,
            failure_reason="",
        )
        return cls(data["generation"], data["claim"], remote, data.get("note", ""))


def folder() -> Path:
    return Path(settings.LUMA_JOURNAL_DIR)


def keep(answer: Answer, record: Callable[[], T]) -> T | None:
    """``record()``, tried again while the database is away (``retrying``); then the answer
    goes to the journal and None is returned."""
    try:
        return retrying(record)
    except DATABASE_AWAY as exc:
        plog(
            answer.generation_id,
            "database away (%s); answer %s journalled, recorded when it is back",
            type(exc).__name__,
            answer.remote.id,
        )
    append(answer)
    return None


def retrying(record: Callable[[], T]) -> T:
    """``record()``, tried again while the database is away, reconnecting each time, for up
    to ``LUMA_DB_RETRY_SECONDS``; then its error is raised. For what a worker learnt from the
    service that is not a paid generation (a refusal: if it is lost, the sweeper finds the row
    stale and a person decides, nothing is paid twice)."""
    deadline = time.monotonic() + settings.LUMA_DB_RETRY_SECONDS
    pause = 0.25
    while True:
        try:
            return record()
        except DATABASE_AWAY:
            reconnect()
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            time.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)


def reconnect() -> None:
    """Drop this thread's broken connection: Django opens a fresh one at the next query."""
    with contextlib.suppress(DatabaseError):
        connection.close()


def append(answer: Answer) -> None:
    """One line in this process's journal file, on disk before returning."""
    where = folder()
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{socket.gethostname()}-{os.getpid()}{SUFFIX}"
    line = (answer.to_line() + "\n").encode()
    while True:
        with path.open("ab") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            # a replayer may have claimed (renamed) the file between open and lock
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(file.fileno()).st_ino == os.stat(path).st_ino:
                    file.write(line)
                    file.flush()
                    os.fsync(file.fileno())
                    return


def waiting() -> bool:
    """Whether the journal holds anything (a directory listing: cheap enough before a task)."""
    try:
        return any(entry.name.endswith(SUFFIX) or CLAIMED in entry.name for entry in _files())
    except OSError:
        return False


def replay(record: Callable[[Answer], object]) -> int:
    """Hand every journalled answer to ``record``; returns how many it took. Stops at the
    first sign the database is still away (that entry and the rest are journalled again)."""
    done = 0
    for path in _claimable():
        claimed = path.with_name(f"{path.name.split(CLAIMED)[0]}{CLAIMED}{secrets.token_hex(6)}")
        try:
            os.rename(path, claimed)
            os.utime(claimed)  # a claim is stale by its own age: a rename keeps the file's
            file = claimed.open("rb")
        except FileNotFoundError:
            continue  # another replayer took it
        with file:
            fcntl.flock(file, fcntl.LOCK_EX)  # a writer that opened it before the rename ends
            lines = [line for line in file.read().decode().splitlines() if line.strip()]
            away = False
            for line in lines:
                try:
                    answer = Answer.from_line(line)
                except (ValueError, KeyError, TypeError):
                    log.error("journal %s: an entry that cannot be read, kept aside", path.name)
                    _set_aside(path, line, UNREADABLE)
                    continue
                if not away:
                    try:
                        record(answer)
                        done += 1
                        continue
                    except DATABASE_AWAY:
                        reconnect()
                        away = True
                    except Unrecordable as exc:
                        log.error("journal %s: %s; kept aside in %s", path.name, exc, UNRECORDED)
                        _set_aside(path, line, UNRECORDED)
                        continue
                    except Exception:
                        log.exception("journal %s: an entry not recorded, kept aside", path.name)
                        _set_aside(path, line, UNREADABLE)
                        continue
                append(answer)
            with contextlib.suppress(FileNotFoundError):  # taken as stale meanwhile: read twice
                claimed.unlink()
        if away:
            break
    if done:
        log.info("journal: %s answer(s) recorded", done)
    return done


def _files() -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder()) as entries:
        yield from entries


def _claimable() -> list[Path]:
    """Journal files, and files a replayer claimed and left (it died) long ago."""
    try:
        entries = list(_files())
    except FileNotFoundError:
        return []
    now = time.time()
    found = []
    for entry in entries:
        if entry.name.endswith(SUFFIX):
            found.append(Path(entry.path))
        elif CLAIMED in entry.name:
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat().st_mtime > CLAIM_STALE_SECONDS:
                    found.append(Path(entry.path))
    return sorted(found)


def _set_aside(path: Path, line: str, name: str) -> None:
    """A line no replay can record goes to a file of its own for a person, never replayed."""
    with (path.parent / name).open("a") as file:
        file.write(line + "\n")
