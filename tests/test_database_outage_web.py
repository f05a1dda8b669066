"""A PostgreSQL outage as people see it: every page a friendly 503 that retries, htmx polls a 503
the page shows as a toast, the API a JSON 503, /healthz a 503 naming the database; and the same
pages again as soon as the server is back.

Real parts: a PostgreSQL server of the test's own (``devtools.pgcluster``), stopped and started; the
app as a real server (gunicorn, one sync worker, so its connection is kept between requests as in
production), with DEBUG off and on (demo mode must not show Django's technical page either);
real HTTP.
"""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.pgcluster import PrivatePostgres, available
from devtools.processes import free_port

pytestmark = [
    # Slow tier: a server of its own, migrations, two app servers (tens of seconds).
    pytest.mark.pipeline,
    pytest.mark.skipif(not available(), reason="no PostgreSQL server binaries"),
]

ROOT = Path(__file__).resolve().parent.parent
FRIENDLY = "lumaweb can't reach its database right now"
PASSWORD = "s3cret-pass!"
SEED = """
import django; django.setup()
from django.contrib.auth import get_user_model
from generations.models import Generation
get_user_model().objects.create_user(username="dana", password={password!r})
print(Generation.objects.create(user_prompt="a lighthouse at dusk").pk)
"""


def _env(database_url: str, debug: bool, static_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="lumaweb.settings",
        DATABASE_URL=database_url,
        DATABASE_CONN_MAX_AGE="600",  # kept between requests: it must survive a restart
        DEBUG=str(debug),
        SECRET_KEY="outage-test-key-not-secret",
        ALLOWED_HOSTS="127.0.0.1",
        SESSION_COOKIE_SECURE="False",
        CSRF_COOKIE_SECURE="False",
        SECURE_SSL_REDIRECT="False",
        STATIC_ROOT=str(static_root),
        REDIS_URL=os.environ.get("OUTAGE_REDIS_URL", "redis://127.0.0.1:6379/7"),
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app server exited: {log.read_text()[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"the app server did not listen on {port}")


class App:
    """The app served by gunicorn on a free port, logged in as dana."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"gunicorn-{self.port}.log"
        bind = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "lumaweb.wsgi", "-b", bind, "-w", "1", "-t", "60"],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_for_port(self.port, self.proc, self.log)
        self.session = requests.Session()

    def log_in(self) -> None:
        self.get("/accounts/login/")
        token = self.session.cookies["csrftoken"]
        answer = self.session.post(
            f"{self.base}/accounts/login/",
            data={"username": "dana", "password": PASSWORD, "csrfmiddlewaretoken": token},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 302, answer.text[:2000]

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.session.get(
            f"{self.base}{path}", headers=headers, allow_redirects=False, timeout=30
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[PrivatePostgres, str, str, Path]]:
    """A migrated database on a server of our own, with dana and one generation of hers, and
    the collected static files (DEBUG off serves them through whitenoise's manifest)."""
    with PrivatePostgres() as pg:
        url = pg.url("lumaweb")
        static_root = Path(tempfile.mkdtemp(prefix="lumaweb-outage-static-"))
        env = _env(url, False, static_root)
        _manage(env, "migrate", "--noinput")
        _manage(env, "collectstatic", "--noinput")
        seeded = subprocess.run(
            [sys.executable, "-c", SEED.format(password=PASSWORD)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        yield pg, url, seeded.stdout.strip().splitlines()[-1], static_root


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def app(request, cluster, tmp_path) -> Iterator[App]:
    pg, url, _, static_root = cluster
    served = App(_env(url, request.param, static_root), tmp_path)
    try:
        served.log_in()
        yield served
    finally:
        served.stop()
        if not pg.running():
            pg.start()


def pages(generation_id: str) -> dict[str, tuple[str, dict[str, str]]]:
    return {
        "gallery": ("/", {}),
        "jobs dashboard": ("/jobs/", {}),
        "detail page": (f"/generations/{generation_id}/", {}),
        "login page": ("/accounts/login/", {}),
    }


def assert_friendly_page(answer: requests.Response, name: str) -> None:
    assert answer.status_code == 503, (name, answer.status_code, answer.text[:3000])
    shown = html.unescape(answer.text)
    assert FRIENDLY in shown, (name, answer.text[:3000])
    assert "Nothing is lost" in shown
    assert "retries by itself" in shown
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.headers["Content-Type"].startswith("text/html")
    for leak in ("Traceback", "OperationalError", "psycopg", "127.0.0.1", "SECRET_KEY"):
        assert leak not in answer.text, (name, leak)
    # The page is the studio's, served under its usual policy: no inline script, no inline style.
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", answer.text)
    assert "style=" not in answer.text


def test_pages_answer_a_friendly_503_while_the_database_is_down_and_work_again_after(
    cluster, app
) -> None:
    pg, _, generation_id, _ = cluster
    for name, (path, headers) in pages(generation_id).items():
        assert app.get(path, **headers).status_code in (200, 302), name

    pg.stop()
    try:
        for name, (path, headers) in pages(generation_id).items():
            assert_friendly_page(app.get(path, **headers), name)

        # A live poll (the Jobs badge in every page's header): a 503 that htmx does not swap in;
        # the page's script shows its text as a toast and the poll keeps going.
        poll = app.get("/jobs/count/?v=0", **{"HX-Request": "true", "HX-Target": "running-badge"})
        assert poll.status_code == 503
        assert poll.headers["Lumaweb-Outage"] == "database"
        assert FRIENDLY in poll.text
        assert "<html" not in poll.text
        assert int(poll.headers["Retry-After"]) > 0

        api = app.get("/api/v1/generations")
        assert api.status_code == 503
        assert FRIENDLY in api.json()["error"]
        assert int(api.headers["Retry-After"]) > 0

        health = app.get("/healthz")
        assert health.status_code == 503, health.text[:3000]
        assert health.headers["Content-Type"] == "application/json", health.text[:3000]
        assert health.json()["database"].startswith("error:")
        assert health.json()["status"] == "unavailable"

        # A visitor who is not logged in: the login form cannot be checked either.
        stranger = requests.Session()
        stranger.get(f"{app.base}/accounts/login/", timeout=30)
        tried = stranger.post(
            f"{app.base}/accounts/login/",
            data={
                "username": "dana",
                "password": PASSWORD,
                "csrfmiddlewaretoken": stranger.cookies.get("csrftoken", ""),
            },
            allow_redirects=False,
            timeout=30,
        )
        assert_friendly_page(tried, "login form")
    finally:
        pg.start()

    for name, (path, headers) in pages(generation_id).items():
        assert app.get(path, **headers).status_code in (200, 302), name
    assert app.get("/api/v1/generations").status_code == 200
    # The log says what happened, one line a request, with no traceback to wade through.
    log = app.log.read_text()
    assert "Service Unavailable: /jobs/" in log
    assert "Traceback" not in log
    assert app.get("/healthz").json()["database"] == "ok"


def test_a_restart_while_nobody_asks_costs_no_request(cluster, app) -> None:
    """The kept connection died with the old server: it is checked before use and replaced
    (CONN_HEALTH_CHECKS), so the first page after the restart is a page, not a 503."""
    pg, _, generation_id, _ = cluster
    assert app.get("/").status_code == 200
    pg.restart()
    assert app.get("/").status_code == 200
    assert app.get(f"/generations/{generation_id}/").status_code == 200


def test_a_server_that_never_answers_does_not_hang_the_pages(tmp_path) -> None:
    """A server that takes the connection and says nothing (a hung machine, a black-holed
    address): the connect timeout bounds the wait, and the answers are the same 503s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        env = _env(f"postgres://postgres@127.0.0.1:{port}/lumaweb", False, tmp_path)
        env.update(DEBUG="True", DATABASE_CONNECT_TIMEOUT="2")
        served = App(env, tmp_path)
        try:
            health = served.get("/healthz")
            assert health.status_code == 503
            assert health.json()["database"].startswith("error:")
            served.get("/accounts/login/")
            tried = served.session.post(
                f"{served.base}/accounts/login/",
                data={
                    "username": "dana",
                    "password": PASSWORD,
                    "csrfmiddlewaretoken": served.session.cookies.get("csrftoken", ""),
                },
                allow_redirects=False,
                timeout=30,
            )
            assert_friendly_page(tried, "login form")
        finally:
            served.stop()


@pytest.mark.browser
def test_in_a_browser_a_poll_shows_a_toast_and_the_page_comes_back_by_itself(
    cluster, tmp_path
) -> None:
    """The scripts' side: the Jobs badge's poll meets the 503 and the page stays as it was, with
    one toast saying why (gone at the first answer after); a page loaded meanwhile is the outage
    page, which reloads itself once /healthz says the database is back."""
    from playwright.sync_api import sync_playwright

    from tests.chromium import launch

    pg, url, _, static_root = cluster
    served = App(_env(url, False, static_root), tmp_path)
    notes = Path("/work/notes")
    try:
        served.log_in()
        with sync_playwright() as pw:
            browser = launch(pw)
            context = browser.new_context(viewport={"width": 1100, "height": 720})
            context.add_cookies(
                [
                    {"name": c.name, "value": c.value or "", "url": served.base}
                    for c in served.session.cookies
                ]
            )
            studio = context.new_page()
            studio.goto(f"{served.base}/jobs/")
            studio.wait_for_selector("#running-badge")
            pg.stop()
            try:
                toast = studio.wait_for_selector(".toast[data-outage]", timeout=30_000)
                assert FRIENDLY in (toast.text_content() or "")
                assert studio.locator("#running-badge").count() == 1  # nothing swapped in
                assert studio.locator(".toast[data-outage]").count() == 1

                outage = context.new_page()
                answer = outage.goto(f"{served.base}/")
                assert answer is not None and answer.status == 503
                assert outage.title() == "Back in a moment · lumaweb"
                if notes.is_dir():
                    outage.screenshot(path=str(notes / "dbweb-503.png"))
                    studio.screenshot(path=str(notes / "dbweb-toast.png"))
            finally:
                pg.start()
            studio.wait_for_selector(".toast[data-outage]", state="detached", timeout=30_000)
            outage.wait_for_selector("#running-badge", timeout=30_000)  # the gallery, logged in
            assert outage.title() != "Back in a moment · lumaweb"
            browser.close()
    finally:
        served.stop()
