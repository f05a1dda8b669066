"""Sweep: repair what lost messages and dead workers leave behind. Safe to run twice at once.

1. queued rows whose wake-up was lost (flushed Redis, a crash between commit and publish);
   while the account is on hold, instead, this interval's one probe (``hold.due_probe``);
2. rows a dead worker left in ``submitting``: back to queued if the POST had not started,
   to a person if it had;
3. finished videos whose copy is due and whose wake-up was lost.

Each row is claimed by stamping its wake-up column in a conditional UPDATE; the ids claimed are
returned for ``generations.tasks`` to wake.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from generations.models import Generation, Status
from generations.pipeline import hold
from generations.pipeline import transitions as t

MAX_REQUEUE = 1000
MAX_COPIES = 500


@dataclass
class SweepStats:
    requeued: int = 0
    unstuck: int = 0
    needs_attention: int = 0
    copies: int = 0
    on_hold: bool = False
    probe: uuid.UUID | None = None  # the job tried this interval while the account is on hold
    to_submit: list[uuid.UUID] = field(default_factory=list)
    to_copy: list[uuid.UUID] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "requeued": self.requeued,
            "unstuck": self.unstuck,
            "needs_attention": self.needs_attention,
            "copies": self.copies,
            **({"on_hold": 1, "probes": int(self.probe is not None)} if self.on_hold else {}),
        }


def sweep() -> SweepStats:
    stats = SweepStats()
    now = timezone.now()
    rows = Generation.objects
    if hold.current() is not None:
        # Waking every queued row would only have each find the hold: wake the one probe.
        stats.on_hold = True
        probe = hold.due_probe(now)
        if probe is not None:
            stats.probe = probe.gen_id
            stats.to_submit.append(probe.gen_id)
    else:
        for pk in rows.waiting_for_a_worker(now).values_list("pk", flat=True)[:MAX_REQUEUE]:
            if rows.waiting_for_a_worker(now).filter(pk=pk).update(enqueued_at=now):
                stats.to_submit.append(pk)
                stats.requeued += 1
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
            error="A worker stopped while sending this request, so it may or may not have "
            "reached the service. Retry (may pay twice) or mark it failed.",
        ):
            stats.needs_attention += 1
    for pk in rows.copy_due(now).values_list("pk", flat=True)[:MAX_COPIES]:
        if rows.copy_due(now).filter(pk=pk).update(assets_enqueued_at=now):
            stats.to_copy.append(pk)
            stats.copies += 1
    if stats.requeued or stats.unstuck or stats.needs_attention or stats.probe:
        t.log.info("sweep %s", stats.counts())
    return stats
