"""A running worker records what its host journalled, with no new task to wake it.

The journal (generations/pipeline/journal.py) is local to the host whose worker wrote it. The
sweeper reads the journal of the host it runs on, and a submit task replays before it claims;
a worker on another host that gets no more submits once the database is back must not keep a
paid generation's answer until it is restarted (meanwhile the sweeper would flag the row, and a
person could be offered a Retry that pays twice). Its main process replays every
``LUMA_HEARTBEAT_INTERVAL`` seconds while the journal holds something."""

from __future__ import annotations

import pytest

from devtools.processes import CeleryProcesses
from generations.models import Generation, Heartbeat, Status
from tests.conftest import wait_for
from tests.test_database_outage import claimed_and_sent, journalled

pytestmark = pytest.mark.pipeline


def test_a_running_worker_records_its_hosts_journal_without_a_new_task(
    pipeline_env, spare_redis_url, transactional_db, sim, settings, tmp_path
):
    settings.LUMA_JOURNAL_DIR = tmp_path / "journal"
    env = {
        **pipeline_env,
        "REDIS_URL": spare_redis_url,
        "LUMA_JOURNAL_DIR": str(settings.LUMA_JOURNAL_DIR),
        "LUMA_HEARTBEAT_INTERVAL": "1",
    }
    procs = CeleryProcesses(env, tmp_path)
    try:
        worker = procs.start("worker1")
        wait_for(lambda: Heartbeat.objects.filter(pid=worker.pid).exists(), 60, "the worker up")
        # journalled after the worker started (its start-up replay found nothing), as by one
        # of its own pool processes while the database was away
        gen = claimed_and_sent("journalled while the database was away")
        answer = journalled(sim, gen)

        def recorded() -> bool:
            gen.refresh_from_db()
            return gen.remote_id == answer.remote.id

        wait_for(recorded, 30, f"the journalled answer recorded\n{procs.logs()}")
        assert gen.status == Status.IN_PROGRESS
        assert Generation.objects.filter(remote_id=answer.remote.id).count() == 1
        assert not list(settings.LUMA_JOURNAL_DIR.glob("*.jsonl"))
    finally:
        procs.stop_all()
