"""Debian's nginx as a subprocess running lumaweb's own ``deploy/nginx.conf``, for the proxy
test (tests/test_media_proxy.py) and the media benchmark (scripts/bench_media.py).

    with NginxProcess(upstream="127.0.0.1:8601", port=8602, media_root=root) as proxy:
        requests.get(proxy.url + "/media/videos/x.mp4")

The site file is the one compose mounts; only its three deployment addresses are replaced
(gunicorn's ``web:8000``, the ``listen`` port, the media volume's ``/data/media/``), and it is
wrapped in a minimal main config whose pid, logs and temporary files live in a directory of
its own, so nothing of the machine's nginx (if any) is read or touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SITE = PROJECT_ROOT / "deploy" / "nginx.conf"
START_TIMEOUT = 10.0

MAIN = """\
{user}worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
{site}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


def port_in(first: int, last: int, host: str = "127.0.0.1") -> int:
    """A port of ``first..last`` that is free now (a helper's own range)."""
    for port in range(first, last + 1):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{last}")


def site_config(upstream: str, port: int, media_root: Path) -> str:
    site = SITE.read_text()
    for old, new in (
        ("server web:8000;", f"server {upstream};"),
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        ("/data/media/", f"{str(media_root).rstrip('/')}/"),
    ):
        if old not in site:
            raise RuntimeError(f"{SITE} no longer says {old!r}: update devtools/nginx_process.py")
        site = site.replace(old, new)
    return site


class NginxProcess:
    def __init__(self, *, upstream: str, port: int, media_root: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.run_dir = Path(tempfile.mkdtemp(prefix="lumaweb-nginx-"))
        # Started as root, the workers run as `nobody`, as the official image's run as `nginx`:
        # a user other than the files' owner, so a file only its owner may read (0600) is a
        # 403 here as it would be in compose. The media folder must be readable by others.
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        self.config = self.run_dir / "nginx.conf"
        self.config.write_text(
            MAIN.format(
                user=user,
                run=self.run_dir,
                site=site_config(upstream, port, media_root),
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NginxProcess:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed: apt-get install -y nginx-light")
        log = self.run_dir / "error.log"
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.run_dir), "-c", str(self.config), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.run_dir / "stderr.log", "wb"),  # noqa: SIM115 (the child keeps it)
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        errors = [p.read_text() for p in (log, self.run_dir / "stderr.log") if p.exists()]
        raise RuntimeError("nginx did not start:\n" + "\n".join(errors))

    def error_log(self) -> str:
        path = self.run_dir / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> NginxProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
