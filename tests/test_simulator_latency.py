"""The simulator answers without the Nagle delay: each answer leaves in one write, on a socket
with TCP_NODELAY.

Written headers first and body second, a small answer's second write waits for the client's
ACK of the first (Nagle), which the client delays (~40 ms, delayed ACK) because it is waiting
for the rest: every benchmark against the simulator measured that delay. No time is asserted
here; `scripts/bench_simulator.py` prints the figures. The server runs in this process (to
count its writes), over real HTTP, in both dialects.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.server import Config, SimulatorServer, make_server

TOKEN = "test-control-token"
AUTH = {
    "Authorization": "Bearer k",
    "Content-Type": "application/json",
    "X-Simulator-Token": TOKEN,
}


class CountingWriter:
    """The handler's wfile, counting the writes of each answer."""

    def __init__(self, inner: Any, writes: list[int]) -> None:
        self.inner, self.writes = inner, writes

    def write(self, data: bytes) -> int:
        self.writes.append(len(data))
        return self.inner.write(data)

    def flush(self) -> None:
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Recorder:
    def __init__(self) -> None:
        self.writes: list[int] = []
        self.nodelay: list[int] = []


def serve(dialect: str) -> tuple[SimulatorServer, Recorder]:
    server, _simulator = make_server(
        Config(
            port=0,
            dialect=dialect,
            api_key="k",
            quiet=True,
            duration=60,
            video_seconds=0.5,
            control_token=TOKEN,
        )
    )
    recorder = Recorder()
    base = server.RequestHandlerClass

    def setup(self: Any) -> None:
        base.setup(self)
        recorder.nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        self.wfile = CountingWriter(self.wfile, recorder.writes)

    server.RequestHandlerClass = type("Counting", (base,), {"setup": setup})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, recorder


@pytest.fixture(params=["umamiai", "luma"])
def running(request: pytest.FixtureRequest) -> Iterator[tuple[str, SimulatorServer, Recorder]]:
    server, recorder = serve(request.param)
    yield request.param, server, recorder
    server.shutdown()
    server.server_close()


def ask(
    connection: http.client.HTTPConnection, recorder: Recorder, method: str, path: str, body=None
) -> tuple[int, bytes, list[int]]:
    """One request on a kept-alive connection; the writes its answer took."""
    recorder.writes.clear()
    data = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=data, headers=AUTH)
    response = connection.getresponse()
    payload = response.read()
    return response.status, payload, list(recorder.writes)


def test_every_answer_leaves_in_one_write_on_a_nodelay_socket(running) -> None:
    dialect, server, recorder = running
    host, port = server.host_and_port
    connection = http.client.HTTPConnection(host, port, timeout=30)
    if dialect == "luma":
        create = ("POST", "/v1/generations", {"prompt": "a cat", "model": "ray-2"})
        read = "/v1/generations/{id}"
        others = [("GET", "/v1/credits"), ("GET", "/v1/generations/nope")]
    else:
        create = ("POST", "/v1/luma-ai/generations", {"user_prompt": "a cat"})
        read = "/v1/luma-ai/generation?ids={id}"
        others = [("GET", "/v1/luma-ai/nope")]
    status, payload, writes = ask(connection, recorder, *create)
    assert status in (200, 201), payload
    assert len(writes) == 1, f"the create's answer took {len(writes)} writes: {writes}"
    created = json.loads(payload)
    generation_id = created["id"] if "id" in created else created["generation"]["id"]
    status, _, writes = ask(connection, recorder, "GET", read.format(id=generation_id))
    assert status == 200
    assert len(writes) == 1, writes
    for method, path in [*others, ("GET", "/_sim/health"), ("GET", "/nowhere")]:
        status, _, writes = ask(connection, recorder, method, path)
        assert len(writes) == 1, f"{method} {path} ({status}) took {len(writes)} writes: {writes}"
    connection.close()
    assert recorder.nodelay and all(recorder.nodelay), recorder.nodelay


def test_a_rendered_file_leaves_in_one_write_and_ranges_still_work() -> None:
    server, recorder = serve("umamiai")  # the CDN is the same code in both dialects
    host, port = server.host_and_port
    connection = http.client.HTTPConnection(host, port, timeout=60)
    status, payload, _ = ask(
        connection, recorder, "POST", "/v1/luma-ai/generations", {"user_prompt": "a dog"}
    )
    generation_id = json.loads(payload)["id"]
    status, _, _ = ask(connection, recorder, "POST", f"/_sim/generations/{generation_id}/complete")
    assert status == 200
    path = f"/cdn/{generation_id}.jpg"
    status, whole, writes = ask(connection, recorder, "GET", path)
    assert status == 200, whole
    assert len(writes) == 1, writes
    recorder.writes.clear()
    connection.request("GET", path, headers={"Range": "bytes=0-9"})
    response = connection.getresponse()
    assert response.status == 206
    assert response.read() == whole[:10]
    assert len(recorder.writes) == 1, recorder.writes
    connection.close()
    server.shutdown()
    server.server_close()
