"""The simulator's own attack surface (issue 9, finding 10): its control endpoints, its key, the
keyframes it fetches and who can reach it.

Demo mode runs the simulator beside the app, so anything that can talk to it could change its
faults and credits, read its key, or use its keyframe fetch to reach services that only listen
inside the machine. Real processes and real HTTP servers throughout.
"""

from __future__ import annotations

import http.server
import io
import ipaddress
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from PIL import Image

from devtools.simulator_process import PROJECT_ROOT, SimulatorProcess, free_port

AUTH = {"Authorization": "Bearer test-key"}
TOKEN_HEADER = "X-Simulator-Token"
SECRET_KEY = "sk-simulator-secret-7f3a9c1e5b"


class KeyframeServer:
    """A real HTTP server on 127.0.0.1 standing in for an internal service: it serves a tiny
    PNG and records every request it receives."""

    def __init__(self) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
        png = buffer.getvalue()
        self.requests: list[str] = []
        self.hosts: list[str | None] = []
        seen, hosts = self.requests, self.hosts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                hosts.append(self.headers.get("Host"))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal_service() -> Iterator[KeyframeServer]:
    server = KeyframeServer()
    yield server
    server.close()


def render_with_keyframe(sim: SimulatorProcess, image_url: str) -> None:
    """Create a generation with ``image_url``, finish it and fetch its video: rendering the
    clip is when the simulator fetches the keyframe, so it has been tried when this returns."""
    created = requests.post(
        f"{sim.api_url}/luma-ai/generations",
        json={"user_prompt": "a keyframe test", "image_url": image_url},
        headers=AUTH,
        timeout=10,
    )
    assert created.status_code == 200, created.text
    generation_id = created.json()["id"]
    sim.force_complete(generation_id)
    video = requests.get(f"{sim.base_url}/cdn/{generation_id}.mp4", timeout=30)
    assert video.status_code == 200, video.text


# --- control endpoints ----------------------------------------------------------------------

CONTROL_CALLS = [
    ("GET", "/_sim/config", None),
    ("POST", "/_sim/config", {"credits": 999_999_999, "error_rate": 1.0}),
    ("GET", "/_sim/ledger", None),
    ("POST", "/_sim/reset", {"config": True}),
    ("POST", "/_sim/generations/00000000-0000-0000-0000-000000000000/complete", None),
]


@pytest.mark.parametrize(("method", "path", "payload"), CONTROL_CALLS)
def test_simulator_control_endpoints_refuse_callers_without_the_right_token(
    sim: SimulatorProcess, method: str, path: str, payload: Any
) -> None:
    for headers in ({}, {TOKEN_HEADER: "guess"}, {TOKEN_HEADER: ""}, AUTH):
        response = requests.request(
            method, sim.base_url + path, json=payload, headers=headers, timeout=10
        )
        assert response.status_code == 401, (headers, response.text)
    # and nothing was changed by the refused calls
    config = sim.configure()
    assert config["error_rate"] == 0.0 and config["credits"] is None


def test_simulator_control_endpoints_work_with_the_token_the_harness_sends(
    sim: SimulatorProcess,
) -> None:
    headers = {TOKEN_HEADER: sim.control_token}
    response = requests.post(
        f"{sim.base_url}/_sim/config", json={"error_rate": 0.5}, headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json()["error_rate"] == 0.5
    ledger = requests.get(f"{sim.base_url}/_sim/ledger", headers=headers, timeout=10)
    assert ledger.status_code == 200 and "posts" in ledger.json()
    assert sim.reset(restore_config=True) is None and sim.configure()["error_rate"] == 0.0
    # the health check stays open: it says nothing and changes nothing
    assert requests.get(f"{sim.base_url}/_sim/health", timeout=10).json() == {"ok": True}


def test_simulator_control_endpoints_are_off_when_no_token_is_configured() -> None:
    with SimulatorProcess(control_token=None, duration=1) as sim:
        for method, path, payload in CONTROL_CALLS:
            for headers in ({}, {TOKEN_HEADER: "anything"}, {TOKEN_HEADER: ""}):
                response = requests.request(
                    method, sim.base_url + path, json=payload, headers=headers, timeout=10
                )
                assert response.status_code == 403, (path, headers, response.text)
        assert requests.get(f"{sim.base_url}/_sim/health", timeout=10).status_code == 200
        # the upstream API itself still works
        created = requests.post(
            f"{sim.api_url}/luma-ai/generations",
            json={"user_prompt": "x"},
            headers=AUTH,
            timeout=10,
        )
        assert created.status_code == 200


def test_simulator_config_never_shows_the_api_key_or_the_control_token() -> None:
    with SimulatorProcess(api_key=SECRET_KEY, duration=1) as sim:
        shown = requests.get(
            f"{sim.base_url}/_sim/config", headers={TOKEN_HEADER: sim.control_token}, timeout=10
        )
        assert shown.status_code == 200
        assert SECRET_KEY not in shown.text and sim.control_token not in shown.text
        assert shown.json()["api_key"] == "********"  # says a key is set, not which

        changed = sim.configure(api_key="sk-another-secret-0042")
        assert "sk-another-secret-0042" not in str(changed)
        assert sim.control_token not in str(changed)
        # the key did change: the old one is now refused, the new one accepted
        body = {"user_prompt": "x"}
        url = f"{sim.api_url}/luma-ai/generations"
        old = requests.post(
            url, json=body, headers={"Authorization": f"Bearer {SECRET_KEY}"}, timeout=10
        )
        new = requests.post(
            url, json=body, headers={"Authorization": "Bearer sk-another-secret-0042"}, timeout=10
        )
        assert (old.status_code, new.status_code) == (401, 200)


def test_simulator_control_token_can_come_from_the_environment_and_not_the_command_line() -> None:
    """So `ps` does not show it: the harness passes it in SIMULATOR_CONTROL_TOKEN."""
    with SimulatorProcess(duration=1) as sim:
        assert sim.process is not None
        command_line = Path(f"/proc/{sim.process.pid}/cmdline").read_bytes()
        assert sim.control_token.encode() not in command_line
        assert sim.ledger()["requests"] == 0  # and the token works


# --- keyframe fetching ----------------------------------------------------------------------


def test_simulator_refuses_to_fetch_a_keyframe_from_an_internal_address(
    sim: SimulatorProcess, internal_service: KeyframeServer
) -> None:
    port = internal_service.port
    for url in (
        f"http://127.0.0.1:{port}/loopback.png",
        f"http://localhost:{port}/by-name.png",  # a name that resolves to loopback
        f"http://127.1:{port}/short-form.png",
        f"http://2130706433:{port}/decimal.png",
        f"http://[::ffff:127.0.0.1]:{port}/mapped.png",
    ):
        render_with_keyframe(sim, url)
    assert internal_service.requests == []


def test_simulator_fetches_a_keyframe_from_an_allowed_origin_only(
    internal_service: KeyframeServer,
) -> None:
    other = KeyframeServer()  # same host, another port: not allowed
    try:
        with SimulatorProcess(duration=1, allow_fetch_from=internal_service.origin) as sim:
            render_with_keyframe(sim, f"{internal_service.origin}/media/keyframes/allowed.png")
            render_with_keyframe(sim, f"{other.origin}/other-port.png")
            render_with_keyframe(sim, f"http://localhost:{internal_service.port}/by-name.png")
        assert internal_service.requests == ["/media/keyframes/allowed.png"]
        assert other.requests == []
    finally:
        other.close()


def test_simulator_does_not_follow_a_redirect_from_an_allowed_origin_to_an_internal_one(
    internal_service: KeyframeServer,
) -> None:
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"{internal_service.origin}/secret.png")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    redirector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{redirector.server_address[1]}"
    try:
        with SimulatorProcess(duration=1, allow_fetch_from=origin) as sim:
            render_with_keyframe(sim, f"{origin}/start.png")
        assert internal_service.requests == []
    finally:
        redirector.shutdown()
        redirector.server_close()


def test_simulator_connects_to_the_address_it_checked_not_to_a_second_lookup(
    internal_service: KeyframeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that answers a harmless address for the check and an internal one
    for the connection. Here the first answer (taken as public) is where the server is, and
    any later lookup answers a TEST-NET address where nothing listens: only a connection
    pinned to the checked address reaches the server."""
    from simulator import keyframes

    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding_dns(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.invalid":
            address = next(answers, "192.0.2.123")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    monkeypatch.setattr(keyframes, "is_public_address", lambda address: True)

    url = f"http://rebind.invalid:{internal_service.port}/k.png"
    data = keyframes.fetch(url, (), timeout=2, max_bytes=1_000_000)

    assert data.startswith(b"\x89PNG")
    assert internal_service.requests == ["/k.png"]
    assert internal_service.hosts == [f"rebind.invalid:{internal_service.port}"]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space (carrier NAT)
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:0:10.0.0.1",  # SIIT
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    ],
)
def test_simulator_address_check_refuses_private_and_transition_addresses(address: str) -> None:
    from simulator import keyframes

    assert not keyframes.is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_simulator_address_check_accepts_public_addresses(address: str) -> None:
    from simulator import keyframes

    assert keyframes.is_public_address(ipaddress.ip_address(address))


# --- who can reach it -----------------------------------------------------------------------


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


def test_simulator_binds_to_loopback_unless_told_otherwise() -> None:
    from simulator.__main__ import build_parser

    assert build_parser().parse_args([]).host == "127.0.0.1"

    port = free_port()
    env = {**os.environ, "SIMULATOR_CONTROL_TOKEN": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/_sim/health", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                assert time.monotonic() < deadline and process.poll() is None, "did not start"
                time.sleep(0.05)
        outward = _outward_address()
        if outward is not None:  # the same port on the machine's own network address
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://{outward}:{port}/_sim/health", timeout=2)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _networks(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks", ["default"])
    return set(networks)


def test_compose_lets_only_the_worker_reach_the_simulator() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    simulator = services["simulator"]
    assert "ports" not in simulator  # nothing published on the host
    sim_networks = _networks(simulator)
    assert "default" not in sim_networks
    sharing = {
        name
        for name, service in services.items()
        if name != "simulator" and _networks(service) & sim_networks
    }
    assert sharing == {"worker", "poller"}  # the poller asks it about jobs in flight
    # the worker finds it under its service name, on the network they share
    assert "http://simulator:8001/" in services["worker"]["environment"]["LUMA_SIMULATOR_URL"]
    assert "http://simulator:8001/" in services["poller"]["environment"]["LUMA_SIMULATOR_URL"]
    # no control token is configured: the control endpoints are off in production demo mode
    command = simulator["command"]
    assert "control-token" not in str(command)
    assert "SIMULATOR_CONTROL_TOKEN" not in str(simulator.get("environment", ""))


def test_the_compose_simulator_command_is_one_the_simulator_accepts() -> None:
    """Every flag compose gives the simulator exists (the state file, quiet): a renamed flag
    would stop the demo stack at start-up, where no test would see it."""
    import argparse
    import shlex

    from simulator.server import add_arguments

    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    words = shlex.split(
        compose["services"]["simulator"]["command"].replace("${", "$").replace(":-}", "")
    )
    assert words[:3] == ["python", "-m", "simulator"]
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    options = parser.parse_args(words[3:])
    assert options.state and options.quiet
