"""The chaos run, short form (60 generations): 0 lost, 0 unrequested second POSTs, every local
copy byte-identical, while workers are SIGKILLed, Redis is restarted empty, beat restarted and
PostgreSQL (a server of the run's own) stopped and started twice, once with a POST out;
under a capacity cap (the simulator's ledger never sees more running at once, nor more POSTs in
any 60 s) and through an out-of-credits window (the account holds, no job fails for it, the hold
lifts by itself). The full-size run is ``manage.py chaos`` (figures in docs/RELIABILITY.md)."""

from __future__ import annotations

import os

import pytest

from devtools import pgcluster
from devtools.chaos import ChaosRun

pytestmark = pytest.mark.chaos


def test_chaos_run_loses_nothing_and_never_pays_twice(transactional_db):
    # The suite's own worker and beat would poll and sweep these rows against another
    # simulator: like for every test that does not ask for ``pipeline``, they are stopped
    # (tests/conftest.py) and start again when a pipeline test needs them.
    report = ChaosRun(
        int(os.environ.get("CHAOS_N", "60")),
        seed=3,
        timeout=600,
        max_in_flight=10,
        submits_per_minute=90,
        credits_window=8,
        postgres_restarts=2 if pgcluster.available() else 0,
    ).run()
    print(report.table())
    assert report.submitted >= 60
    assert report.worker_kills >= 5 and report.redis_restarts >= 2 and report.beat_restarts >= 1
    if pgcluster.available():
        assert report.postgres_restarts == 2 and report.posts_out_at_restart >= 1
        assert report.journal_left == 0
    assert report.lost == 0
    assert report.unrequested_second_posts == 0
    assert report.completed > report.submitted // 2
    assert report.copies_verified == report.completed
    assert 0 < report.max_running <= 10
    assert report.max_posts_in_60s <= 90
    assert report.hold_began_at is not None and report.hold_lifted_at is not None
    assert report.credits_back_at is not None and report.hold_lifted_at >= report.credits_back_at
    assert report.held_refusals >= 1
    assert report.failed_for_credits == 0 and not report.still_on_hold
