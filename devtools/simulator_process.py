"""Run the simulator as a real subprocess, for tests and the chaos tool.

    with SimulatorProcess(duration=1, error_rate=0.1) as sim:
        requests.post(f"{sim.api_url}/luma-ai/generations", ...)

Output goes to a temporary file rather than a pipe, so a chatty server can never block on a
full pipe buffer; it is shown in the error when the server does not come up.

Each process gets a fresh control token (passed in the environment, so `ps` does not show it)
and every control call sends it; `SimulatorProcess(control_token=None)` starts one whose control
endpoints are off.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from simulator.server import CONTROL_TOKEN_ENV, CONTROL_TOKEN_HEADER

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 15.0
CONTROL_TIMEOUT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def to_cli_args(flags: dict[str, Any]) -> list[str]:
    """`duration=2, error_rate=0.1` -> `--duration 2 --error-rate 0.1` (None is left out)."""
    args: list[str] = []
    for name, value in flags.items():
        if value is None or value is False:
            continue
        args.append("--" + name.replace("_", "-"))
        if value is not True:
            args.append(str(value))
    return args


class SimulatorProcess:
    """A simulator subprocess on a free port; use as a context manager or start()/stop()."""

    def __init__(self, **flags: Any) -> None:
        self.host: str = flags.pop("host", "127.0.0.1")
        token = flags.pop("control_token", secrets.token_urlsafe(32))
        self.control_token: str = token or ""
        self.flags = flags
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def start(self) -> SimulatorProcess:
        """Start the server and wait until /_sim/health answers (else raise with its output)."""
        self.port = free_port(self.host)
        command = [
            sys.executable,
            "-m",
            "simulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *to_cli_args(self.flags),
        ]
        env = {**os.environ, CONTROL_TOKEN_ENV: self.control_token}
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self.process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.base_url}/_sim/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        output = self.output()
        self.stop()
        raise RuntimeError(f"simulator did not start ({' '.join(command)}):\n{output}")

    def stop(self) -> None:
        """Terminate, wait, and kill if it will not go."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        """Everything the process has printed so far."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    @property
    def control_headers(self) -> dict[str, str]:
        """What a control request must carry (for tests that call /_sim/* themselves)."""
        return {CONTROL_TOKEN_HEADER: self.control_token}

    def ledger(self) -> dict[str, Any]:
        return self._control("GET", "/_sim/ledger")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings at runtime (same names as the flags); returns the full config."""
        return self._control("POST", "/_sim/config", settings)

    def reset(self, restore_config: bool = False) -> None:
        """Forget generations, ledger and counters (and restore the start-up config if asked)."""
        self._control("POST", "/_sim/reset", {"config": restore_config})

    def force_complete(self, remote_id: str) -> None:
        self._control("POST", f"/_sim/generations/{remote_id}/complete")

    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        response = requests.request(
            method,
            self.base_url + path,
            json=payload,
            headers=self.control_headers,
            timeout=CONTROL_TIMEOUT,
        )
        response.raise_for_status()
        return response.json()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
