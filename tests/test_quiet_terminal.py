"""A quiet, useful terminal: by default `./scripts/run` shows the pipeline's lines and warnings,
not a line per request or poll (LUMAWEB_VERBOSE=1 brings those back), and a client that hangs
up on the simulator is no traceback. Figures before and after: docs/PERFORMANCE.md."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.simulator_process import SimulatorProcess
from tests.conftest import wait_for
from tests.factories import remote_create

ROOT = Path(__file__).resolve().parent.parent

# A fresh process configured from settings.LOGGING, logging what runserver logs for each
# request (django.server at INFO; 4xx at WARNING) and what the pipeline logs for a job.
EMIT = """
import logging, django
django.setup()
from generations.pipeline.transitions import plog
logging.getLogger("django.server").info('"GET /jobs/count/?v=0 HTTP/1.1" 200 185')
plog("3c88e260", "status=completed video ready")
plog("3c88e260", "copy failed (giving up): 404", level=logging.WARNING)
logging.getLogger("django.server").warning('"GET /nowhere HTTP/1.1" 404 179')
"""


def terminal(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "LUMAWEB_VERBOSE"}
    environ.update(DJANGO_SETTINGS_MODULE="lumaweb.settings", DEBUG="True", **env)
    done = subprocess.run(
        [sys.executable, "-c", EMIT],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout + done.stderr


def test_by_default_the_terminal_keeps_pipeline_lines_and_warnings_and_drops_request_lines():
    out = terminal()
    assert "status=completed video ready" in out
    assert "copy failed (giving up)" in out
    assert '"GET /nowhere HTTP/1.1" 404' in out  # a warning: always shown
    assert "/jobs/count/" not in out


def test_lumaweb_verbose_brings_the_request_lines_back():
    out = terminal(LUMAWEB_VERBOSE="1")
    assert '"GET /jobs/count/?v=0 HTTP/1.1" 200' in out
    assert "status=completed video ready" in out


@pytest.fixture(params=[False, True], ids=["default", "quiet"])
def talkative_sim(request) -> Iterator[SimulatorProcess]:
    with SimulatorProcess(duration=1, video_seconds=0.5, quiet=request.param) as sim:
        yield sim


def hang_up(sim: SimulatorProcess, path: str) -> None:
    """What a browser's <video> does when the page changes: ask for the file over keep-alive,
    read a little, and close with a reset (SO_LINGER 0)."""
    with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {sim.host}:{sim.port}\r\n\r\n".encode())
        sock.recv(256)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_the_simulator_takes_clients_hanging_up_without_a_traceback(talkative_sim):
    sim = talkative_sim
    generation = remote_create(sim)
    sim.force_complete(generation["id"])
    for _ in range(12):
        hang_up(sim, f"/cdn/{generation['id']}.mp4")
    # Still serving, and every hang-up has been handled (its thread has written what it writes).
    assert requests.get(f"{sim.base_url}/_sim/health", timeout=5).ok
    wait_for(lambda: "/_sim/health" in sim.output() or sim.flags.get("quiet"), 10, "the log")
    out = sim.output()
    assert "Traceback" not in out and "Exception occurred" not in out, out
    hung_up = [line for line in out.splitlines() if "hung up" in line]
    if sim.flags.get("quiet"):
        assert hung_up == [] and '"GET /cdn/' not in out, out
    else:
        assert len(hung_up) <= 12  # one quiet line at most per hang-up
        assert '"GET /cdn/' in out  # the request lines, as before
