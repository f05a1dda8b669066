"""Sweep: repair what lost messages and dead workers leave behind. Safe to run twice at once.

1. queued rows whose wake-up was lost (flushed Redis, a crash between commit and publish);
   while the account is on hold, instead, this interval's one probe (``hold.due_probe``);
   with a capacity limit on, instead, the rows whose turn it is for the slots free now (a row
   refused a slot waits for this wake-up; one whose message was lost is woken in its turn);
2. rows a dead worker left in ``submitting``: back to queued if the POST had not started,
   to a person if it had;
3. finished videos whose copy is due and whose wake-up was lost;
4. webhook deliveries due with no wake-up on its way (a retry too far off for a countdown, a
   lost message, a sender that died: its lease ran out), each stamped ``enqueued_at`` so it is
   woken once, not at every sweep; the delivery's own claim decides who sends it;
5. joined chain files not read for ``LUMA_CHAIN_CACHE_DAYS`` (``chain_files.sweep``);
6. POSTs of unknown outcome the provider's list could not tell at first: looked at once more
   (``lookup.look_again``), then left to a person;
7. answers a worker journalled while the database was away (``journal``), recorded first.

Each row is claimed by stamping its wake-up column in a conditional UPDATE; the ids claimed are
returned for ``generations.tasks`` to wake.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from generations import chain_files, providers
from generations.models import (
    GRANT_MEMORY,
    DeliveryStatus,
    Generation,
    Status,
    SubmitGrant,
    WebhookDelivery,
    capacity_limited,
    slots,
    turns,
)
from generations.pipeline import hold, lookup, pace
from generations.pipeline import transitions as t

MAX_REQUEUE = 1000
MAX_COPIES = 500
MAX_DELIVERIES = 500


@dataclass
class SweepStats:
    requeued: int = 0
    unstuck: int = 0
    needs_attention: int = 0
    copies: int = 0
    joins_removed: int = 0  # joined chain files not read for LUMA_CHAIN_CACHE_DAYS
    found_by_list: int = 0  # POSTs of unknown outcome the list's second look found
    sent_again: int = 0  # ... or showed made nothing: queued again
    journalled: int = 0  # answers recorded from this host's journal
    on_hold: bool = False
    probe: uuid.UUID | None = None  # the job tried this interval while the account is on hold
    to_submit: list[uuid.UUID] = field(default_factory=list)
    to_copy: list[uuid.UUID] = field(default_factory=list)
    to_deliver: list[int] = field(default_factory=list)  # webhook deliveries due

    def counts(self) -> dict[str, int]:
        return {
            "requeued": self.requeued,
            "unstuck": self.unstuck,
            "needs_attention": self.needs_attention,
            "copies": self.copies,
            **({"joins_removed": self.joins_removed} if self.joins_removed else {}),
            **({"found_by_list": self.found_by_list} if self.found_by_list else {}),
            **({"sent_again": self.sent_again} if self.sent_again else {}),
            **({"journalled": self.journalled} if self.journalled else {}),
            **({"deliveries": len(self.to_deliver)} if self.to_deliver else {}),
            **({"on_hold": 1, "probes": int(self.probe is not None)} if self.on_hold else {}),
        }


def sweep() -> SweepStats:
    stats = SweepStats()
    # before the stale rows below: a row the journal starts is not flagged for a person
    stats.journalled = lookup.replay_journal()
    now = timezone.now()
    rows = Generation.objects
    if hold.current() is not None:
        # Waking every queued row would only have each find the hold: wake the one probe.
        stats.on_hold = True
        probe = hold.due_probe(now)
        if probe is not None:
            stats.probe = probe.gen_id
            stats.to_submit.append(probe.gen_id)
    elif capacity_limited(pace.limits()):
        _wake_for_free_slots(now, stats)
    else:
        for pk in rows.waiting_for_a_worker(now).values_list("pk", flat=True)[:MAX_REQUEUE]:
            if rows.waiting_for_a_worker(now).filter(pk=pk).update(enqueued_at=now):
                stats.to_submit.append(pk)
                stats.requeued += 1
    lists = providers.current().capabilities.list_lookup
    for gen in rows.stale_submitting(now):
        still_stale = Q(status_changed_at=gen.status_changed_at)  # not moved since we looked
        if gen.post_started_at is None:
            if t.requeue(
                gen.pk,
                [Status.SUBMITTING],
                only_if=still_stale & Q(post_started_at__isnull=True),
                note="worker stopped before sending; queued again",
            ):
                stats.to_submit.append(gen.pk)
                stats.unstuck += 1
        elif t.flag_for_a_person(
            gen.pk,
            only_if=still_stale,
            note="worker stopped while sending",
            # with a list to look at, the second look (``lookup.look_again``) is due at once
            next_attempt_at=now if lists else None,
            error="A worker stopped while sending this request, so it may or may not have "
            "reached the service. Retry (may pay twice) or mark it failed.",
        ):
            stats.needs_attention += 1
    for pk in rows.copy_due(now).values_list("pk", flat=True)[:MAX_COPIES]:
        if rows.copy_due(now).filter(pk=pk).update(assets_enqueued_at=now):
            stats.to_copy.append(pk)
            stats.copies += 1
    looked = lookup.look_again(now)
    stats.found_by_list, stats.sent_again = looked.found, len(looked.to_submit)
    stats.to_submit.extend(looked.to_submit)
    stats.to_deliver = wake_deliveries(now)
    SubmitGrant.objects.filter(at__lt=now - GRANT_MEMORY).delete()
    stats.joins_removed = chain_files.sweep()  # one directory scan every few minutes at most
    if (
        stats.requeued
        or stats.unstuck
        or stats.needs_attention
        or stats.probe
        or stats.journalled
        or looked.any
    ):
        t.log.info("sweep %s", stats.counts())
    return stats


def wake_deliveries(now: datetime, **only: object) -> list[int]:
    """Stamp the deliveries due with no wake-up on its way (``only``: a filter, one webhook's)
    as woken, each in a conditional UPDATE (two sweepers wake each once), and return them."""
    waiting = WebhookDelivery.objects.waiting_for_a_worker(now).filter(**only)
    woken = []
    for pk in waiting.order_by("next_attempt_at").values_list("pk", flat=True)[:MAX_DELIVERIES]:
        if waiting.filter(pk=pk).update(enqueued_at=now):
            woken.append(pk)
    return woken


def wake_resumed_webhook(webhook_id: int, now: datetime) -> list[int]:
    """A webhook was just resumed (call it in that transaction): its due deliveries, woken now.
    A wake-up that arrived while it was paused found nothing due and left its stamp, which
    would keep the delivery waiting for the sweeper up to ``LUMA_REQUEUE_AFTER``: the stamps
    are cleared first (at worst a message still on its way finds the delivery taken)."""
    WebhookDelivery.objects.filter(
        webhook_id=webhook_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(enqueued_at=None)
    return wake_deliveries(now, webhook_id=webhook_id)


def fill_free_slots() -> list[uuid.UUID]:
    """The jobs to wake at once because a slot was just given back (a poll finished a job, a
    submit was refused and left its slot): without this they would wait for the next sweep,
    up to ``LUMA_SWEEP_INTERVAL``. Nothing while the account is on hold (the probe decides)
    or without a capacity limit (every job was woken when it was queued)."""
    if not capacity_limited(pace.limits()) or hold.current() is not None:
        return []
    stats = SweepStats()
    _wake_for_free_slots(timezone.now(), stats, at_once=True)
    return stats.to_submit


def _wake_for_free_slots(now: datetime, stats: SweepStats, *, at_once: bool = False) -> None:
    """Wake the next jobs in fair-share order, one per free slot, each person's oldest first.

    In a sweep, a row woken (or refused a slot) within the last half sweep interval is not
    woken again (its message is on its way); ``at_once`` (a slot was just given back) wakes
    it all the same. The claim decides for good, under the capacity lock, so a wake-up too
    many costs a refused claim and nothing else."""
    state = slots(now, pace.limits())
    if not state.room:
        return
    fresh = now - timedelta(seconds=0 if at_once else settings.LUMA_SWEEP_INTERVAL / 2)
    waiting = Generation.objects.waiting_for_a_slot(now)
    taken: dict[int | None, int] = {}
    for user_id in turns(state.line, state.room):
        nth = taken.get(user_id, 0)
        taken[user_id] = nth + 1
        pk = (
            waiting.filter(created_by_id=user_id)
            .order_by("status_changed_at", "created_at", "pk")
            .values_list("pk", flat=True)[nth : nth + 1]
            .first()
        )
        not_fresh = Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=fresh)
        if pk is not None and waiting.filter(not_fresh, pk=pk).update(enqueued_at=now):
            stats.to_submit.append(pk)
            stats.requeued += 1
