"""The engine: submit, poll, copy, sweep, deliver (webhooks), and the transitions they are made of.

Each step claims its rows with conditional updates, does one short piece of work and
*returns* what should happen next (a typed outcome: a delay before the next submit, ids whose
copy is due, ids to wake). It never enqueues: ``generations.tasks`` reads the outcome and sends
the wake-ups, so the engine does not import the task layer and can be driven from a test, a
management command or a benchmark without a broker.
"""

from generations.pipeline.copy import CopyResult, copy_assets
from generations.pipeline.deliver import Delivered, DeliverOutcome, deliver
from generations.pipeline.lookup import replay_journal
from generations.pipeline.pace import fill_due
from generations.pipeline.poll import PollStats, apply_remote, next_poll_delay, poll_in_flight
from generations.pipeline.submit import SubmitOutcome, Submitted, submit
from generations.pipeline.sweep import (
    SweepStats,
    fill_free_slots,
    sweep,
    wake_deliveries,
    wake_resumed_webhook,
)

__all__ = [
    "CopyResult",
    "DeliverOutcome",
    "Delivered",
    "PollStats",
    "SubmitOutcome",
    "Submitted",
    "SweepStats",
    "apply_remote",
    "copy_assets",
    "deliver",
    "fill_due",
    "fill_free_slots",
    "next_poll_delay",
    "poll_in_flight",
    "replay_journal",
    "submit",
    "sweep",
    "wake_deliveries",
    "wake_resumed_webhook",
]
