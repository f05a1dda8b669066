#!/usr/bin/env python
"""How many lines `./scripts/run` prints while a few videos are made and a browser watches.

    .venv/bin/python scripts/terminal_lines.py [--seconds 120] [--jobs 4] [--port 8150]

Starts `./scripts/run` (demo mode, the worktree's SQLite database, REDIS_URL as set), waits for
/healthz, makes an API token, creates ``--jobs`` generations through the API, and for the rest
of ``--seconds`` acts like one open browser tab: the running badge's poll every 5 s, the jobs
page's poll every 2 s, a video fetched from the simulator's CDN and dropped half-read (what a
browser's <video> does when the page changes). Then Ctrl-C, and it prints the line counts by
process and by kind (request lines, tracebacks, pipeline lines). Figures: docs/PERFORMANCE.md.
Extra environment (e.g. ``LUMAWEB_VERBOSE=1``) passes through to the stack.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
REQUEST = re.compile(r'"(GET|POST|HEAD|PUT|DELETE) [^"]*" \d{3}')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--port", type=int, default=8150)
    parser.add_argument("--keep", help="write the whole captured terminal to this file")
    args = parser.parse_args()
    port, sim_port = args.port, args.port + 1
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PORT=str(port), SIMULATOR_PORT=str(sim_port))
    env.pop("LUMA_API_KEY", None)
    lines: list[str] = []
    started = time.monotonic()
    proc = subprocess.Popen(
        ["./scripts/run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def pump() -> None:
        assert proc.stdout is not None
        lines.extend(line.rstrip("\n") for line in proc.stdout)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        _wait_for(f"{base}/healthz", 120)
        begin = len(lines)  # from here on: the stack's own output, not the install's
        token = subprocess.run(
            [sys.executable, "manage.py", "createapitoken", "admin", "--name", "measure"],
            cwd=ROOT,
            env={
                **env,
                "SECRET_KEY": (ROOT / ".run" / "secret-key").read_text().strip(),
                "ALLOWED_HOSTS": "127.0.0.1",
            },
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        ids = []
        for n in range(args.jobs):
            answer = api.post(
                f"{base}/api/v1/generations", json={"user_prompt": f"terminal test {n}"}
            )
            answer.raise_for_status()
            ids.append(answer.json()["id"])
        browser = _log_in(base)
        tick = 0
        while time.monotonic() - started < args.seconds:
            time.sleep(1)
            tick += 1
            headers = {"HX-Request": "true"}
            if tick % 5 == 0:
                browser.get(f"{base}/jobs/count/?v=0", headers=headers)
            if tick % 2 == 0:
                browser.get(f"{base}/jobs/", headers={**headers, "HX-Target": "jobs"})
            if tick % 30 == 0:
                for gen_id in ids:
                    remote = api.get(f"{base}/api/v1/generations/{gen_id}").json()["remote_id"]
                    if remote:
                        _hang_up(sim_port, f"/cdn/{remote}.mp4")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        reader.join(timeout=5)
    run = lines[begin:] if "begin" in locals() else lines
    if args.keep:
        Path(args.keep).write_text("\n".join(lines) + "\n")
    by_process = Counter(line.split("|", 1)[0].strip() for line in run if "|" in line)
    print(f"{len(run)} lines in {args.seconds:.0f} s with {args.jobs} generations")
    print("  by process: " + ", ".join(f"{k} {v}" for k, v in sorted(by_process.items())))
    print(f"  request lines: {sum(1 for line in run if REQUEST.search(line))}")
    print(f"  traceback lines: {sum(1 for line in run if 'Traceback' in line)}")
    print(f"  pipeline lines: {sum(1 for line in run if 'generations.pipeline' in line)}")
    print(f"  start-up lines (before /healthz answered): {len(lines) - len(run)}")


def _wait_for(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _log_in(base: str) -> requests.Session:
    """A browser's session for the admin (the password ./scripts/run made, in .run/)."""
    browser = requests.Session()
    browser.get(f"{base}/accounts/login/")
    answer = browser.post(
        f"{base}/accounts/login/",
        data={
            "username": "admin",
            "password": (ROOT / ".run" / "admin-password").read_text().strip(),
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"Referer": f"{base}/accounts/login/"},
    )
    answer.raise_for_status()
    return browser


def _hang_up(port: int, path: str) -> None:
    """Ask for a video over keep-alive, read a little and close: a browser leaving a page."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        sock.recv(512)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


if __name__ == "__main__":
    main()
