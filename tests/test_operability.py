"""What an operator relies on: /healthz, pipeline log lines that name the job, manage.py jobs."""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from generations import actions, pipeline
from generations.inputs import GenerationRequest
from generations.models import Generation, Status
from lumaweb.logs import JsonFormatter
from tests.factories import make_user


def test_healthz_is_200_json_when_database_and_broker_answer(db, redis_url):
    response = Client().get("/healthz")
    assert response.status_code == 200
    nobody = {"running": 0, "last_seen": None}  # no worker or beat in the fast tests
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "hold": None,
        "processes": {"worker": nobody, "beat": nobody},
    }


def test_healthz_is_503_when_the_broker_is_down(db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["broker"].startswith("error")
    assert body["database"] == "ok"


def test_healthz_is_503_when_the_database_is_down(db):
    from django.db import connection

    real = connection.settings_dict["NAME"]
    engine = connection.vendor
    connection.close()
    connection.settings_dict["NAME"] = (
        "/nonexistent/dir/db.sqlite3" if engine == "sqlite" else "no_such_database_here"
    )
    try:
        response = Client().get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["NAME"] = real
    assert response.status_code == 503
    assert response.json()["database"].startswith("error")


def test_every_pipeline_log_line_names_its_generation(db, sim, caplog):
    caplog.set_level(logging.INFO, logger="generations.pipeline")
    gen = actions.create_generation(make_user(), GenerationRequest(user_prompt="logged"))
    pipeline.submit(gen.pk)
    Generation.objects.filter(pk=gen.pk).update(next_poll_at=timezone.now())
    sim.force_complete(Generation.objects.get(pk=gen.pk).remote_id)
    pipeline.poll_in_flight()
    pipeline.copy_assets(gen.pk)
    records = [r for r in caplog.records if r.name == "generations.pipeline"]
    assert len(records) >= 5
    for record in records:
        assert record.generation_id == str(gen.pk)
        line = json.loads(JsonFormatter().format(record))
        assert line["generation_id"] == str(gen.pk)


def _jobs(*args) -> str:
    out = io.StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def test_jobs_command_lists_what_needs_a_person_and_resolves_it(db):
    user = make_user()
    unsure = Generation.objects.create(
        user_prompt="unsure",
        status=Status.NEEDS_ATTENTION,
        created_by=user,
        posts_sent=1,
        error="may have started",
    )
    stuck = Generation.objects.create(
        user_prompt="stuck",
        status=Status.SUBMITTING,
        created_by=user,
        status_changed_at=timezone.now() - timedelta(hours=1),
    )
    listing = _jobs()
    assert "needs attention (1)" in listing and str(unsure.pk) in listing
    assert "stuck submitting (1)" in listing and str(stuck.pk) in listing
    with pytest.raises(CommandError, match="may pay twice"):
        _jobs("retry", str(unsure.pk))
    _jobs("retry", str(unsure.pk), "--yes")
    unsure.refresh_from_db()
    assert unsure.status == Status.QUEUED and unsure.posts_authorized == 2
    _jobs("sweep")
    stuck.refresh_from_db()
    assert stuck.status == Status.QUEUED  # never sent: safe to queue again
    assert "Nothing needs attention" in _jobs()


def test_jobs_command_refuses_unknown_ids_and_wrong_states(db):
    with pytest.raises(CommandError, match="no generation"):
        _jobs("fail", "not-a-uuid")
    done = Generation.objects.create(user_prompt="done", status=Status.COMPLETED)
    with pytest.raises(CommandError, match="needs attention"):
        _jobs("fail", str(done.pk))


def test_the_demo_stack_keeps_its_simulator_state_under_run_across_restarts(tmp_path):
    """./scripts/run (runstack) starts the simulator with a state file in .run/: the same
    command, killed and started again, still knows the job in flight."""
    import signal
    import subprocess
    import sys

    import requests

    from devtools.simulator_process import free_port
    from generations.management.commands.runstack import simulator_command

    port = free_port()
    command = simulator_command(
        sys.executable, port, tmp_path, {"PUBLIC_BASE_URL": "http://127.0.0.1:8000"}
    )
    assert command[command.index("--state") + 1] == str(tmp_path / "simulator-state.json")
    base = f"http://127.0.0.1:{port}"

    def started() -> subprocess.Popen:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(150):
            try:
                if requests.get(f"{base}/_sim/health", timeout=1).ok:
                    return proc
            except requests.RequestException:
                pass
            time.sleep(0.1)
        proc.kill()
        pytest.fail("the simulator did not start")

    auth = {"Authorization": "Bearer demo"}
    proc = started()
    try:
        made = requests.post(
            f"{base}/v1/luma-ai/generations", json={"user_prompt": "in flight"}, headers=auth
        ).json()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    proc = started()
    try:
        answer = requests.get(
            f"{base}/v1/luma-ai/generation", params={"ids": made["id"]}, headers=auth, timeout=5
        ).json()
        assert [g["id"] for g in answer] == [made["id"]]
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_compose_publishes_the_web_port_on_loopback_unless_told_otherwise():
    """Security review, finding 3: with TRUSTED_PROXY_COUNT=1 lumaweb believes the last
    X-Forwarded-For entry whatever sent it, so a client reaching gunicorn directly (port 8000
    on every interface) could pick its address per request and escape the share-page rate
    limit and login throttling. Compose publishes the port on 127.0.0.1 by default (the proxy on
    the same host); BIND_ADDRESS opens it wider, on purpose, documented where it is set."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parent.parent
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for published in service.get("ports", []):
            assert str(published).startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, published)
    assert compose["services"]["web"]["ports"] == ["${BIND_ADDRESS:-127.0.0.1}:${PORT:-8000}:8000"]
    assert "BIND_ADDRESS" in (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    production = readme[readme.index("TRUSTED_PROXY_COUNT") :]
    assert "BIND_ADDRESS" in production
