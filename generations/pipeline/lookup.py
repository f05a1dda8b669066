"""A POST of unknown outcome (a timeout, a 502 after the job may have started), decided by
looking at the provider's list of generations instead of by a person, where it has one
(``capabilities.list_lookup``: Luma's ``GET /generations``).

The policy, kept simple:

1. ``submit`` looks once at once (``provider.find_created`` for the POST's time window).
   *Found*: the row starts with that generation, as if the POST had answered (nothing is sent
   again, nothing is paid twice). *Nothing made* (the list decided): the POST is un-counted and
   the row is queued again. *Cannot tell*: the row goes to ``needs_attention`` as before, with
   ``next_attempt_at`` set ``LUMA_LIST_LOOKUP_AGAIN_AFTER`` seconds on (a list may lag).
2. The sweeper looks once more at such a row when that time comes (``look_again``), and
   decides the same way; if the list still cannot tell, the row is left to a person.

Every decision is one ``StatusEvent`` whose note starts with ``FOUND_NOTE`` or
``NOTHING_NOTE`` (``resolved_by_list`` counts them: the chaos run reports it). Each write is
conditional on the submit attempt's claim token, so a person's Retry or Mark failed while a
look is out wins, and a generation found after all is kept as a row of its own (``accept``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from generations import callback_tokens, providers
from generations.client import RemoteGeneration, UpstreamError
from generations.inputs import GenerationRequest
from generations.models import Generation, Kind, Status, StatusEvent
from generations.pipeline import journal
from generations.pipeline import transitions as t
from generations.pipeline.poll import next_poll_delay

FOUND_NOTE = "outcome unknown; found by the list"
NOTHING_PREFIX = "outcome unknown; the list shows nothing was created"
NOTHING_NOTE = NOTHING_PREFIX + ": sent again"
LOOKING_AGAIN_NOTE = "outcome unknown; the list cannot tell yet: looked at again"
LEFT_NOTE = "outcome unknown; the list still cannot tell: left to a person"
MAX_LOOKS_A_SWEEP = 20


def submission_of(gen: Generation) -> providers.Submission | None:
    """The POST ``gen`` stands for; None when a video it starts from has no upstream id. The
    sources' upstream ids were copied when the row was made, so it is sent even if a source's
    owner deleted that video meanwhile. With a public address and a provider that calls back,
    it carries the row's callback address (``callback_tokens``)."""
    start = end = ""
    if gen.kind in (Kind.EXTEND, Kind.INTERPOLATE):
        start = gen.parent_remote_id
        if not start:
            return None
    if gen.kind == Kind.REVERSE:
        end = gen.parent_remote_id
        if not end:
            return None
    if gen.kind == Kind.INTERPOLATE:
        end = gen.end_parent_remote_id
        if not end:
            return None
    calls_back = providers.current().capabilities.callbacks
    return providers.Submission(
        request=GenerationRequest.from_row(gen),
        start_generation=start,
        end_generation=end,
        callback_url=callback_tokens.callback_url(gen.pk) if calls_back else "",
        public_base_url=settings.PUBLIC_BASE_URL,
    )


def look(
    provider: providers.Provider,
    submission: providers.Submission,
    since: datetime,
    until: datetime | None = None,
) -> providers.Lookup:
    """What the provider's list says of a POST sent in [``since``, ``until``] (until now by
    default: the POST just ended); undecided when the provider has no list or the list did
    not answer (nothing is decided on an error)."""
    if not provider.capabilities.list_lookup:
        return providers.Lookup.undecided()
    try:
        found = provider.find_created(submission, since=since, until=until or timezone.now())
    except UpstreamError as exc:
        t.log.warning("list lookup failed (%s): %s", exc.status_code, exc.message)
        return providers.Lookup.undecided()
    if found.found is not None and _held_by_a_row(found.found.id):
        # A row holds it already (the same request made by another row, the list unable to
        # tell them apart): never adopted (one generation, two rows), nor taken as proof that
        # nothing was made; a person decides.
        t.log.warning("list lookup: %s is another row's already; undecided", found.found.id)
        return providers.Lookup.undecided()
    return found


def _held_by_a_row(remote_id: str) -> bool:
    """Whether a row holds ``remote_id``, asked again while the database is away. If it stays
    away, not known: the found answer goes on to be kept (journalled) rather than lost with the
    list asked again; recording it is conditional, and a remote id is on one row at most."""
    try:
        return journal.retrying(Generation.objects.filter(remote_id=remote_id).exists)
    except journal.DATABASE_AWAY:
        return False


def accept(gen: Generation, token: str, remote: RemoteGeneration, *, note: str = "") -> bool:
    """The POST made ``remote``: the row starts with it (``in_progress``), for the attempt that
    holds ``token``. If the row moved on meanwhile (a person retried it or marked it failed),
    the generation is paid for all the same, so it gets a row of its own and is kept.
    Returns whether ``gen`` itself started."""
    now = timezone.now()
    fields = {
        "remote_id": remote.id,
        "state": remote.state,
        "prompt": remote.prompt,
        "estimate_wait_seconds": remote.estimate_wait_seconds,
        "remote_created_at": remote.created_at,
        "submitted_at": now,
        "last_progress_at": now,
        "next_poll_at": t.in_seconds(next_poll_delay(remote.estimate_wait_seconds), now),
    }
    said = f"{note}: accepted as {remote.id}" if note else f"accepted as {remote.id}"
    if t.start(gen.pk, token=token, note=said, next_attempt_at=None, **fields):
        return True
    holder = Generation.objects.filter(remote_id=remote.id).values_list("pk", flat=True).first()
    if holder is not None:
        # Kept already: on this row (the slow answer and the list's look both came), or on a
        # row of its own (the sweeper's look kept it after a person retried this one).
        return holder == gen.pk
    with transaction.atomic():
        adopted = Generation.objects.create(
            created_by=gen.created_by,
            kind=gen.kind,
            **_lineage(gen),
            **GenerationRequest.from_row(gen).row_fields(),
            status=Status.IN_PROGRESS,
            posts_sent=1,
            posts_authorized=1,
            attempts=1,
            unit_cost=gen.unit_cost,  # the POST it counts was priced when its row was made
            **fields,
        )
        StatusEvent.objects.create(
            generation=adopted,
            status=Status.IN_PROGRESS,
            state=remote.state,
            note=f"{note + '; ' if note else ''}late answer for {gen.pk}: accepted as {remote.id}",
        )
        # That POST is the new row's now: the money counts it there, not on this row as well.
        Generation.objects.filter(pk=gen.pk).update(posts_adopted=F("posts_adopted") + 1)
    t.plog(
        gen.pk, "late answer %s kept as generation %s", remote.id, adopted.pk, level=logging.WARNING
    )
    return False


def keep_answer(
    gen: Generation, token: str, remote: RemoteGeneration, *, note: str = ""
) -> bool | None:
    """``accept``, surviving a database outage: tried again while the database is away, then
    journalled for the sweeper to record once it is back (``journal``). Returns ``accept``'s
    answer, or None when the answer went to the journal."""
    answer = journal.Answer(str(gen.pk), token, remote, note)
    return journal.keep(answer, lambda: accept(gen, token, remote, note=note))


JOURNAL_NOTE = "recorded from the journal (the database was away)"


def record_answer(answer: journal.Answer) -> None:
    """A journalled answer, recorded as it would have been at once: the row starts with it
    (even if the sweeper flagged it meanwhile: its POST's outcome is known now), or it is the
    row's already (nothing to do), or the row moved on (a person's Retry or Mark failed): the
    generation gets a row of its own. A row deleted meanwhile leaves the paid answer to a
    person (``journal.Unrecordable``)."""
    gen = Generation.objects.filter(pk=answer.generation_id).first()
    if gen is None:
        raise journal.Unrecordable(
            f"generation {answer.generation_id} is gone; its paid answer {answer.remote.id} "
            "is not recorded"
        )
    note = f"{answer.note}; {JOURNAL_NOTE}" if answer.note else JOURNAL_NOTE
    try:
        accept(gen, answer.claim, answer.remote, note=note)
    except IntegrityError:
        # Another replayer of the same answer kept it as a row of its own first.
        t.plog(gen.pk, "journal: %s is kept already", answer.remote.id)


def replay_journal() -> int:
    """Record what this host's journal holds (the sweeper, and each worker before a submit)."""
    return journal.replay(record_answer) if journal.waiting() else 0


def _lineage(gen: Generation) -> dict[str, Any]:
    """An extension's parent columns for its late answer's row, as they stand now: the parent
    may have been deleted by its owner while the POST was out. Called inside the transaction
    that creates the row; the ancestors still there are locked, so a delete of one waits and
    then treats the new row like any other extension."""
    if gen.kind != Kind.EXTEND:
        return {}
    names = ("parent_id", "parent_removed_at", "kept_ancestor_id")
    cols = Generation.objects.filter(pk=gen.pk).values(*names).first() or {
        name: getattr(gen, name) for name in names
    }
    wanted = [pk for pk in (cols["parent_id"], cols["kept_ancestor_id"]) if pk]
    there = set(
        Generation.objects.select_for_update().filter(pk__in=wanted).values_list("pk", flat=True)
    )
    if cols["parent_id"] and cols["parent_id"] not in there:
        cols.update(parent_id=None, parent_removed_at=cols["parent_removed_at"] or timezone.now())
    if cols["kept_ancestor_id"] not in there:
        cols["kept_ancestor_id"] = None
    return {**cols, "parent_remote_id": gen.parent_remote_id}


def send_again(gen_id: Any, from_status: str, token: str, attempts: int) -> bool:
    """The list shows the POST made nothing: un-count it and queue the row again at once
    (stamped as enqueued: the caller sends the wake-up), or fail it if its attempts are spent."""
    common: dict[str, Any] = {
        "only_if": Q(claim=token, remote_id__isnull=True),
        "posts_sent": F("posts_sent") - 1,
        "post_started_at": None,
    }
    if attempts >= settings.LUMA_SUBMIT_MAX_ATTEMPTS:
        t.fail(
            gen_id,
            [from_status],
            note=f"{NOTHING_PREFIX}: gave up after {attempts} attempts",
            error="The service did not answer, and its list shows nothing was made; "
            f"gave up after {attempts} attempts.",
            next_attempt_at=None,
            **common,
        )
        return False
    return t.requeue(gen_id, [from_status], note=NOTHING_NOTE, error="", **common)


@dataclass
class LookAgainStats:
    found: int = 0
    to_submit: list[Any] = field(default_factory=list)  # queued again: their wake-ups
    left: int = 0

    @property
    def any(self) -> bool:
        return bool(self.found or self.to_submit or self.left)


def due_again(now: datetime) -> Any:
    """Rows in ``needs_attention`` whose POST's outcome the list could not tell at first, and
    whose second look is due (``next_attempt_at``, set only for them in that status)."""
    return Generation.objects.filter(
        status=Status.NEEDS_ATTENTION,
        next_attempt_at__lte=now,
        remote_id__isnull=True,
        post_started_at__isnull=False,
    )


def look_again(now: datetime) -> LookAgainStats:
    """The sweeper's second look (see the module docstring). Each row is claimed for the look
    by clearing its ``next_attempt_at`` in a conditional UPDATE (two sweepers look once)."""
    stats = LookAgainStats()
    if not providers.current().capabilities.list_lookup:
        return stats
    for gen in due_again(now).order_by("next_attempt_at")[:MAX_LOOKS_A_SWEEP]:
        taken = Generation.objects.filter(
            pk=gen.pk,
            status=Status.NEEDS_ATTENTION,
            claim=gen.claim,
            next_attempt_at=gen.next_attempt_at,
        ).update(next_attempt_at=None)
        if not taken or gen.post_started_at is None:
            continue
        submission = submission_of(gen)
        lookup = None
        if submission is not None:
            sent_at = gen.post_started_at
            lookup = look(providers.current(), submission, sent_at, _ended_by(gen, sent_at))
        if lookup is not None and lookup.found is not None:
            keep_answer(gen, gen.claim, lookup.found, note=FOUND_NOTE)
            stats.found += 1
        elif lookup is not None and lookup.decided:
            if send_again(gen.pk, Status.NEEDS_ATTENTION, gen.claim, gen.attempts):
                stats.to_submit.append(gen.pk)
        else:
            t.move(
                gen.pk,
                [Status.NEEDS_ATTENTION],
                Status.NEEDS_ATTENTION,
                note=LEFT_NOTE,
                only_if=Q(claim=gen.claim, remote_id__isnull=True),
                announce=False,  # the person was told when it first needed attention
            )
            stats.left += 1
    return stats


def _ended_by(gen: Generation, sent_at: datetime) -> datetime:
    """When the POST had ended at the latest: when the row was flagged (just after the POST's
    error, or the sweeper's find of a dead worker), and never later than the POST's time-outs
    allow. A provider's list is current some time after this moment (``find_created``)."""
    longest = settings.LUMA_CONNECT_TIMEOUT + settings.LUMA_READ_TIMEOUT + 5
    return min(gen.status_changed_at or timezone.now(), sent_at + timedelta(seconds=longest))


def resolved_by_list() -> dict[str, int]:
    """How many POSTs of unknown outcome the list decided: found, or nothing made."""
    events = StatusEvent.objects
    return {
        "found": events.filter(note__startswith=FOUND_NOTE).count(),
        "nothing_made": events.filter(note__startswith=NOTHING_PREFIX).count(),
    }
