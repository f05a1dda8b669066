"""A database outage while a paid POST is out: the worker keeps the service's answer and it is
recorded once the database is back (``generations/pipeline/journal.py``), so no paid generation
is orphaned.

Real parts: a PostgreSQL server of the test's own (``devtools.pgcluster``), stopped and started;
the simulator over real HTTP, reached through a TCP relay that holds the simulator's answer to
a POST until the test has stopped the database. The relay makes the order certain (the
generation is made upstream, then the database goes, then the answer arrives) without timing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from devtools.pgcluster import PrivatePostgres, available, using_database
from generations import pipeline, providers
from generations.client import RemoteGeneration
from generations.models import Generation, Status
from generations.pipeline import journal, lookup
from generations.pipeline import transitions as t
from tests.factories import make_user
from tests.test_unknown_outcome_lookup import Listing

pytestmark = pytest.mark.skipif(not available(), reason="no PostgreSQL server binaries")


class HeldAnswers:
    """A TCP relay to the simulator that holds each answer to a POST until ``release``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.answer_held = threading.Event()  # the simulator answered a POST; not passed on yet
        self.released = threading.Event()
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            posting = threading.Event()
            threading.Thread(target=self._up, args=(client, upstream, posting), daemon=True).start()
            threading.Thread(
                target=self._down, args=(upstream, client, posting), daemon=True
            ).start()

    def _up(self, client: socket.socket, upstream: socket.socket, posting: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if data.startswith(b"POST "):
                    posting.set()
                upstream.sendall(data)

    def _down(self, upstream: socket.socket, client: socket.socket, posting: threading.Event):
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if posting.is_set():
                    self.answer_held.set()
                    self.released.wait(60)
                client.sendall(data)


@pytest.fixture
def private_db(django_db_blocker) -> Iterator[PrivatePostgres]:
    """The test's own PostgreSQL, migrated, with this process's connections pointed at it."""
    with (
        PrivatePostgres() as pg,
        django_db_blocker.unblock(),
        using_database(pg.url("lumaweb")),
    ):
        yield pg


@pytest.fixture
def held(sim, settings, tmp_path: Path) -> Iterator[HeldAnswers]:
    relay = HeldAnswers(int(sim.api_url.split(":")[2].split("/")[0]))
    settings.LUMA_API_BASE_URL = f"http://127.0.0.1:{relay.port}/v1"
    settings.LUMA_JOURNAL_DIR = tmp_path / "journal"
    yield relay
    relay.close()


def queued_row(prompt: str) -> Generation:
    now = timezone.now()
    return Generation.objects.create(
        created_by=make_user(),
        user_prompt=prompt,
        aspect_ratio="16:9",
        status=Status.QUEUED,
        enqueued_at=now,
    )


def submit_in_a_thread(gen_id: object) -> tuple[threading.Thread, dict]:
    """``pipeline.submit`` as a worker runs it: its own thread, its own connection."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = pipeline.submit(gen_id).result
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def journal_lines(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_an_answer_that_arrives_while_the_database_is_down_is_journalled_and_recorded_later(
    private_db, held, sim, settings
):
    settings.LUMA_DB_RETRY_SECONDS = 0.5
    gen = queued_row("a lighthouse while the database restarts")
    thread, outcome = submit_in_a_thread(gen.pk)
    assert held.answer_held.wait(60), "the POST never reached the simulator"
    private_db.stop()  # the generation is made upstream; its answer is on its way
    held.release()
    thread.join(60)
    assert outcome["result"] == pipeline.Submitted.JOURNALLED

    posts = [p for p in sim.ledger()["posts"] if p["user_prompt"] == gen.user_prompt]
    assert len(posts) == 1
    [entry] = journal_lines(settings.LUMA_JOURNAL_DIR)
    assert entry["generation"] == str(gen.pk) and entry["remote_id"] == posts[0]["id"]
    assert "Bearer" not in json.dumps(entry) and "api_key" not in entry

    private_db.start()
    connection.close()
    stats = pipeline.sweep()  # the sweeper records what the journal holds
    assert stats.journalled == 1
    gen.refresh_from_db()
    assert gen.status == Status.IN_PROGRESS
    assert gen.remote_id == posts[0]["id"]
    assert gen.posts_sent == 1
    assert gen.events.filter(note__contains=lookup.JOURNAL_NOTE).count() == 1
    assert journal_lines(settings.LUMA_JOURNAL_DIR) == []
    assert len([p for p in sim.ledger()["posts"] if p["user_prompt"] == gen.user_prompt]) == 1
    assert Generation.objects.filter(remote_id=posts[0]["id"]).count() == 1  # nothing orphaned


def test_a_database_back_within_the_retry_time_records_the_answer_at_once(
    private_db, held, sim, settings
):
    settings.LUMA_DB_RETRY_SECONDS = 120
    gen = queued_row("a fox while the database restarts")
    thread, outcome = submit_in_a_thread(gen.pk)
    assert held.answer_held.wait(60), "the POST never reached the simulator"
    private_db.stop()
    held.release()
    private_db.start()  # the worker is trying again meanwhile, reconnecting each time
    thread.join(150)
    connection.close()  # this thread's, from before the restart
    assert outcome["result"] == pipeline.Submitted.ACCEPTED
    gen.refresh_from_db()
    assert gen.status == Status.IN_PROGRESS and gen.remote_id
    assert journal_lines(settings.LUMA_JOURNAL_DIR) == []


def test_a_refusal_that_arrives_while_the_database_restarts_queues_the_job_again(
    private_db, held, sim, settings
):
    settings.LUMA_DB_RETRY_SECONDS = 120
    sim.configure(rate_limit_rate=1.0, retry_after=1)
    gen = queued_row("refused while the database restarts")
    thread, outcome = submit_in_a_thread(gen.pk)
    assert held.answer_held.wait(60), "the POST never reached the simulator"
    private_db.stop()
    held.release()
    private_db.start()
    thread.join(150)
    connection.close()
    assert outcome["result"] == pipeline.Submitted.RETRY
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED
    assert gen.posts_sent == 0 and gen.post_started_at is None  # the 429 started nothing


def journalled(sim, gen: Generation) -> journal.Answer:
    """The answer a worker would have journalled for ``gen``'s attempt: a real POST."""
    from generations import providers

    remote = providers.current().submit(lookup.submission_of(gen))
    gen.refresh_from_db()
    answer = journal.Answer(str(gen.pk), gen.claim, remote)
    journal.append(answer)
    return answer


def claimed_and_sent(prompt: str) -> Generation:
    gen = queued_row(prompt)
    assert t.claim_for_submit(gen.pk, "attempt-1", timezone.now()) is t.Claim.CLAIMED
    Generation.objects.filter(pk=gen.pk).update(post_started_at=timezone.now(), posts_sent=1)
    gen.refresh_from_db()
    return gen


def test_a_journalled_answer_starts_a_row_the_sweeper_flagged_meanwhile(
    db, sim, settings, tmp_path
):
    settings.LUMA_JOURNAL_DIR = tmp_path
    gen = claimed_and_sent("flagged while its answer waited")
    answer = journalled(sim, gen)
    assert t.flag_for_a_person(gen.pk, note="worker stopped while sending", error="may have")
    assert lookup.replay_journal() == 1
    gen.refresh_from_db()
    assert gen.status == Status.IN_PROGRESS and gen.remote_id == answer.remote.id
    assert gen.error == ""
    assert lookup.replay_journal() == 0  # taken out of the journal


def test_a_journalled_answer_for_a_row_a_person_retried_is_kept_as_a_row_of_its_own(
    db, sim, settings, tmp_path
):
    settings.LUMA_JOURNAL_DIR = tmp_path
    gen = claimed_and_sent("retried while its answer waited")
    answer = journalled(sim, gen)
    assert t.flag_for_a_person(gen.pk, note="worker stopped while sending", error="may have")
    assert t.authorise_another_post(gen.pk, Status.NEEDS_ATTENTION, note="retried by a person")
    assert lookup.replay_journal() == 1
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED and gen.remote_id is None
    assert gen.posts_adopted == 1
    kept = Generation.objects.get(remote_id=answer.remote.id)
    assert kept.pk != gen.pk and kept.status == Status.IN_PROGRESS


def test_an_answer_replayed_twice_is_recorded_once(db, sim, settings, tmp_path):
    settings.LUMA_JOURNAL_DIR = tmp_path
    gen = claimed_and_sent("journalled twice")
    answer = journalled(sim, gen)
    journal.append(answer)  # two replayers, or a replay that died before removing its file
    assert lookup.replay_journal() == 2
    gen.refresh_from_db()
    assert gen.status == Status.IN_PROGRESS and gen.remote_id == answer.remote.id
    assert Generation.objects.filter(remote_id=answer.remote.id).count() == 1
    assert gen.events.filter(status=Status.IN_PROGRESS).count() == 1


def remote_named(remote_id: str) -> RemoteGeneration:
    return RemoteGeneration(
        id=remote_id,
        state="queued",
        prompt="a journalled prompt",
        estimate_wait_seconds=None,
        video_url="",
        thumbnail_url="",
        width=0,
        height=0,
        created_at=None,
        failure_reason="",
    )


def old_journal_file(folder: Path, remote_ids: list[str]) -> None:
    """A journal file left since an outage of ten minutes (its mtime ten minutes ago)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"host-1{journal.SUFFIX}"
    path.write_text(
        "".join(
            journal.Answer(f"gen-{rid}", "attempt-1", remote_named(rid)).to_line() + "\n"
            for rid in remote_ids
        )
    )
    then = time.time() - 600
    os.utime(path, (then, then))


def replay_racing_another(settings, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Replayer A claims the file; at its first entry a second replayer B sweeps the journal
    (its own thread: a file B claims waits for A's lock)."""
    settings.LUMA_JOURNAL_DIR = tmp_path / "journal"
    old_journal_file(settings.LUMA_JOURNAL_DIR, ["r-1", "r-2", "r-3"])
    by_a: list[str] = []
    by_b: list[str] = []
    b = threading.Thread(target=journal.replay, args=(lambda other: by_b.append(other.remote.id),))

    def record_a(answer: journal.Answer) -> None:
        if not by_a:
            b.start()
            b.join(5)  # B is done, or waits for A's lock on a file it took
        by_a.append(answer.remote.id)

    try:
        journal.replay(record_a)
    finally:
        b.join(30)
    return by_a, by_b


def test_a_file_just_claimed_after_a_long_outage_is_not_taken_by_another_replayer(
    settings, tmp_path
):
    by_a, by_b = replay_racing_another(settings, tmp_path)
    assert by_a == ["r-1", "r-2", "r-3"] and by_b == []
    assert journal_lines(settings.LUMA_JOURNAL_DIR) == []


def test_a_replayer_whose_claim_is_taken_all_the_same_goes_on(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "CLAIM_STALE_SECONDS", -1.0)  # every claim looks abandoned
    by_a, by_b = replay_racing_another(settings, tmp_path)
    assert set(by_a) | set(by_b) == {"r-1", "r-2", "r-3"}  # each recorded at least once
    assert list(settings.LUMA_JOURNAL_DIR.iterdir()) == []


def test_a_journalled_answer_for_a_deleted_row_is_kept_aside_for_a_person(
    db, sim, settings, tmp_path, caplog
):
    settings.LUMA_JOURNAL_DIR = tmp_path
    gen = claimed_and_sent("deleted while its answer waited")
    answer = journalled(sim, gen)
    Generation.objects.filter(pk=gen.pk).delete()
    with caplog.at_level(logging.ERROR):
        assert lookup.replay_journal() == 0
    assert journal_lines(tmp_path) == []
    [kept] = [json.loads(line) for line in (tmp_path / journal.UNRECORDED).read_text().splitlines()]
    assert kept["generation"] == str(gen.pk) and kept["remote_id"] == answer.remote.id
    assert any(
        r.levelno == logging.ERROR
        and str(gen.pk) in r.getMessage()
        and answer.remote.id in r.getMessage()
        for r in caplog.records
    )


class ListingThenDatabaseGone(Listing):
    """A provider with a list; the database goes away just after its first look."""

    def __init__(self, sim, pg: PrivatePostgres) -> None:
        super().__init__(sim)
        self.pg = pg

    def find_created(self, submission, since, until):
        found = super().find_created(submission, since, until)
        if self.looks == 1:
            self.pg.stop()
        return found


def test_an_answer_the_list_found_as_the_database_went_is_journalled(
    private_db, sim, settings, tmp_path, monkeypatch
):
    settings.LUMA_DB_RETRY_SECONDS = 0.5
    settings.LUMA_JOURNAL_DIR = tmp_path / "journal"
    sim.configure(error_after_create_rate=1.0)  # a 502 after the job started: outcome unknown
    provider = ListingThenDatabaseGone(sim, private_db)
    monkeypatch.setattr(providers, "current", lambda: provider)
    gen = queued_row("found by the list as the database goes")
    assert pipeline.submit(gen.pk).result == pipeline.Submitted.JOURNALLED
    assert provider.looks == 1
    [made] = [p for p in sim.ledger()["posts"] if p["user_prompt"] == gen.user_prompt]
    [entry] = journal_lines(settings.LUMA_JOURNAL_DIR)
    assert entry["generation"] == str(gen.pk) and entry["remote_id"] == made["id"]

    private_db.start()
    connection.close()
    assert pipeline.sweep().journalled == 1
    gen.refresh_from_db()
    assert gen.status == Status.IN_PROGRESS and gen.remote_id == made["id"]
