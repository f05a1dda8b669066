"""HTTP-level hardening from the outside review (issue 9: findings 1, 9 and 11), one behaviour per
test. Each fails on the code before the protection it names.

- 1: login throttling sees the real client behind the recommended proxy, so one client cannot
  lock another (an admin included) out;
- 9: an oversized or length-less body is refused before it is read, against a real gunicorn;
- 11: the API answers JSON where it answered HTML, no over-long input is echoed back, a password
  change revokes API tokens, a strict Content-Security-Policy (checked in Chromium), and the
  admin's date drill-down never answers 500.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import make_password
from django.test import Client, RequestFactory

from devtools.processes import database_url
from generations import forms
from generations.models import ASPECT_RATIOS, ApiToken, Generation, Status
from tests.factories import make_user
from tests.pages.conftest import make_gen

ROOT = Path(__file__).resolve().parent.parent
PROXY = "10.0.0.2"  # the reverse proxy: every request reaches Django from this address
ATTACKER = "203.0.113.9"
OWNER = "198.51.100.7"
CSRF_COOKIE = "csrftoken=" + "a" * 32  # any well-formed cookie: Django reads the form to compare


# --- 1: lockout behind a proxy -------------------------------------------------------------------
def _login(client: Client, path: str, password: str, address: str):
    return client.post(
        path,
        {"username": "root", "password": password, "next": "/"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=address,
    )


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_wrong_passwords_from_one_client_behind_the_proxy_do_not_lock_out_another(
    db, settings, path
):
    """Both clients come through the same proxy (one REMOTE_ADDR); the proxy names each in
    X-Forwarded-For. Before, every client looked like the proxy, so five wrong passwords for
    root from anyone locked root out for everyone, the admin login included."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.AXES_IPWARE_PROXY_COUNT = 1  # what the README told operators to set before
    make_user("root", password="root-pass-123!", is_staff=True, is_superuser=True)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(Client(), path, "wrong", ATTACKER)
    # the attacker's address is locked out, even with the right password
    assert _login(Client(), path, "root-pass-123!", ATTACKER).status_code == 429
    # the owner, from another address behind the same proxy, logs in
    owner = Client()
    response = _login(owner, path, "root-pass-123!", OWNER)
    assert response.status_code == 302, response.status_code
    assert owner.session.get("_auth_user_id")


def test_a_client_cannot_choose_its_address_by_sending_its_own_forwarded_header(db, settings):
    """The proxy appends what it saw to whatever the client sent: only the entry the proxy
    added counts. (Taking the left-most entry would let an attacker rotate addresses.)"""
    settings.TRUSTED_PROXY_COUNT = 1
    make_user("root", password="root-pass-123!")
    for n in range(settings.AXES_FAILURE_LIMIT):
        forged = f"192.0.2.{n}, {ATTACKER}"  # "192.0.2.n" from the client, ATTACKER by the proxy
        _login(Client(), "/accounts/login/", "wrong", forged)
    forged = f"{OWNER}, {ATTACKER}"
    assert _login(Client(), "/accounts/login/", "root-pass-123!", forged).status_code == 429


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.2"),  # no proxy: the header is the client's own words
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "192.0.2.1, 203.0.113.9", "203.0.113.9"),
        (2, "192.0.2.1, 203.0.113.9, 10.0.0.1", "203.0.113.9"),  # the outer proxy saw the client
        (2, "203.0.113.9", "10.0.0.2"),  # fewer entries than proxies: not through them all
        (1, "not-an-address", "10.0.0.2"),
        (1, "", "10.0.0.2"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_address_is_the_one_the_outermost_trusted_proxy_saw(
    settings, proxies, forwarded, expected
):
    from lumaweb.client_address import client_ip  # (here: the module is new)

    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


# --- 9: oversized bodies, against a real gunicorn -------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """gunicorn as compose runs it (gthread), with its temporary files in a folder of its own."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.spool = workdir / "tmp"
        self.spool.mkdir()
        (workdir / "heartbeat").mkdir()
        self.port = _free_port()
        self.log = workdir / "gunicorn.log"
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "lumaweb.wsgi"),
                *("--bind", f"127.0.0.1:{self.port}", "--workers", "1"),
                *("--worker-class", "gthread", "--threads", "4", "--timeout", "60"),
                *("--worker-tmp-dir", str(workdir / "heartbeat")),
            ],
            cwd=ROOT,
            env={**env, "TMPDIR": str(self.spool)},  # where Django spools uploads
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    if sock.recv(16).startswith(b"HTTP/"):
                        return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"gunicorn did not start:\n{self.log.read_text()}")

    def spooled(self) -> list[str]:
        return sorted(p.name for p in self.spool.rglob("*") if p.is_file())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def gunicorn(
    django_db_setup, django_db_blocker, tmp_path_factory, media_root
) -> Iterator[Gunicorn]:
    with django_db_blocker.unblock():
        db_url = database_url()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(DEBUG="True", DATABASE_URL=db_url, MEDIA_ROOT=str(media_root), LUMA_API_KEY="")
    server = Gunicorn(tmp_path_factory.mktemp("gunicorn"), env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _send_head(port: int, path: str, headers: dict[str, str], first: bytes = b"") -> socket.socket:
    """A request's head (and the first bytes of its body) on a raw socket: the rest of the body
    is never sent, so an answer can only come from a server that did not wait for it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    return sock


def _answer(sock: socket.socket, timeout: float = 10) -> tuple[int | None, bytes]:
    """(status, what came) within ``timeout``; status None when the server said nothing."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        return None, data
    finally:
        sock.close()
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
    return (int(match.group(1)) if match else None), data


BOUNDARY = "lumaweb-test-boundary"
FILE_PART = (
    (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="image_file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    + b"\x89PNG"
    + b"\0" * (256 * 1024)
)


def test_a_strangers_huge_upload_is_answered_413_before_its_body_is_sent_and_nothing_spooled(
    gunicorn,
):
    """Before, Django read (and spooled to temporary files) the whole body while checking the
    CSRF token, before the login check: the server waited for all 200 MB."""
    sock = _send_head(
        gunicorn.port,
        "/accounts/login/",
        {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(200 * 1024 * 1024),
            "Cookie": CSRF_COOKIE,
        },
        first=FILE_PART,
    )
    time.sleep(0.5)  # time for a server that reads the body to start spooling it
    spooled = gunicorn.spooled()
    status, data = _answer(sock)
    assert status == 413, (status, data[:200], "spooled:", spooled)
    assert spooled == [] and gunicorn.spooled() == []


def test_a_strangers_chunked_body_without_a_length_is_refused_at_once(gunicorn):
    """A body with no Content-Length cannot be checked before it is read (Django would not read
    it at all and see an empty form): it is refused, 411, whoever sends it."""
    sock = _send_head(
        gunicorn.port,
        "/accounts/login/",
        {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Transfer-Encoding": "chunked",
            "Cookie": CSRF_COOKIE,
        },
        first=b"%x\r\n" % len(FILE_PART) + FILE_PART + b"\r\n",
    )
    status, data = _answer(sock)
    assert status == 411, (status, data[:200])
    assert gunicorn.spooled() == []


def test_a_logged_in_persons_body_over_the_upload_limit_is_refused_before_it_is_read(
    gunicorn, transactional_db
):
    client = Client()
    client.force_login(make_user("alice"))
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    sock = _send_head(
        gunicorn.port,
        "/generations/new/",
        {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(django_settings.MAX_BODY_BYTES + 1),
            "Cookie": f"{CSRF_COOKIE}; {django_settings.SESSION_COOKIE_NAME}={session}",
        },
        first=FILE_PART,
    )
    status, data = _answer(sock)
    assert status == 413, (status, data[:200])
    assert gunicorn.spooled() == []


def test_bodies_within_the_limits_get_through(db):
    """A person's body over a stranger's limit but within the upload limit reaches the form."""
    client = Client()
    client.force_login(make_user("alice"))
    body = {"user_prompt": "x" * (django_settings.MAX_ANONYMOUS_BODY_BYTES + 1)}
    response = client.post("/generations/new/", body)
    assert response.status_code == 400  # the form's answer (prompt too long), not a 413
    assert b"at most 2000 characters" in response.content
    stranger = Client().post("/accounts/login/", {"username": "x", "password": "y" * 1000})
    assert stranger.status_code == 200


def test_the_upload_limit_leaves_room_for_two_keyframes_at_the_forms_cap():
    assert django_settings.MAX_BODY_BYTES >= 2 * forms.MAX_UPLOAD_BYTES + 64 * 1024


# --- 11: JSON from the API where it answered HTML ------------------------------------------------
def test_the_api_answers_json_when_the_csrf_check_fails(db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("alice"))
    response = client.post(
        "/api/v1/generations", {"user_prompt": "x"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "CSRF" in response.json()["error"]
    page = client.post("/generations/new/", {"user_prompt": "x"})  # pages keep their HTML
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


def test_the_api_answers_json_413_to_a_body_over_its_size_limit(db):
    _, key = ApiToken.issue(make_user("alice"), "script")
    body = json.dumps({"user_prompt": "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    for headers in ({"HTTP_AUTHORIZATION": f"Bearer {key}"}, {}):
        response = Client().post(
            "/api/v1/generations", body, content_type="application/json", **headers
        )
        assert response.status_code == 413, headers
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]
    assert not Generation.objects.exists()


def test_the_api_answers_json_for_what_it_does_not_have(db):
    _, key = ApiToken.issue(make_user("alice"), "script")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    for path in (
        "/api/v1/generations/00000000-0000-0000-0000-000000000000",
        "/api/v1/no-such-thing",
    ):
        response = Client().get(path, **auth)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json", path
        assert response.json()["error"]


# --- 11: no over-long input echoed back ----------------------------------------------------------
BIG = 4 * 1024 * 1024  # under DATA_UPLOAD_MAX_MEMORY_SIZE, so the form sees it


@pytest.mark.parametrize(
    "field", ["user_prompt", "image_url", "aspect_ratio", "keyframes_from", "image_end_url"]
)
def test_an_invalid_form_does_not_echo_over_long_input_back(db, field):
    """Before, a 400 carried a 5 MB prompt back to the sender inside the form (and a wrong
    choice inside its error message)."""
    alice = make_user("alice")
    parent = Generation.objects.create(
        user_prompt="parent", status=Status.COMPLETED, created_by=alice
    )
    client = Client()
    client.force_login(alice)
    data = {"user_prompt": "a boat", "aspect_ratio": "16:9", field: "y" * BIG}
    for path in ("/generations/new/", f"/generations/{parent.pk}/extend/"):
        response = client.post(path, data)
        assert response.status_code == 400, (path, response.status_code)
        assert len(response.content) < 200_000, (path, len(response.content))
        assert b"y" * 3000 not in response.content
    api = client.post("/api/v1/generations", data, content_type="application/json")
    assert api.status_code == 400
    assert len(api.content) < 20_000 and "y" * 3000 not in api.content.decode()


def test_a_long_but_valid_prompt_is_kept_when_another_field_is_wrong(db):
    client = Client()
    client.force_login(make_user("alice"))
    prompt = "z" * forms.MAX_PROMPT
    response = client.post(
        "/generations/new/", {"user_prompt": prompt, "aspect_ratio": "16:9", "image_url": "ftp://x"}
    )
    assert response.status_code == 400
    assert prompt.encode() in response.content  # nothing lost that the person may send


# --- 11: a password change revokes API tokens ----------------------------------------------------
def _log_in(client: Client, username: str, password: str) -> bool:
    """Through the login form (axes refuses ``Client.login``, which has no request)."""
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return response.status_code == 302


def _token_works(key: str) -> bool:
    response = Client().get("/api/v1/generations", HTTP_AUTHORIZATION=f"Bearer {key}")
    return response.status_code == 200


def test_a_password_change_revokes_the_persons_api_tokens(db):
    alice, bob = make_user("alice"), make_user("bob")
    _, alice_key = ApiToken.issue(alice, "laptop")
    _, bob_key = ApiToken.issue(bob, "script")
    client = Client()
    assert _log_in(client, "alice", "s3cret-pass!")  # a log-in keeps them
    assert _token_works(alice_key)
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": "s3cret-pass!",
            "new_password1": "a-new-long-pass-42",
            "new_password2": "a-new-long-pass-42",
        },
    )
    assert response.status_code == 302
    assert not _token_works(alice_key)
    assert not ApiToken.objects.filter(user=alice).exists()
    assert _token_works(bob_key)  # someone else's are kept
    # an admin setting the password (set_password + save, as the admin and changepassword do)
    bob.set_password("another-pass-77")
    bob.save()
    assert not _token_works(bob_key)


def test_a_new_password_hash_of_the_same_password_keeps_the_tokens(db, settings):
    """Django re-hashes a password on log-in when its hasher's settings change: the password is
    the same, so the tokens stay."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    alice = make_user("alice")
    alice.password = make_password("s3cret-pass!", hasher="pbkdf2_sha256")  # not the preferred
    alice.save()
    _, key = ApiToken.issue(alice, "laptop")
    before = alice.password
    assert _log_in(Client(), "alice", "s3cret-pass!")
    alice.refresh_from_db()
    assert alice.password != before  # re-hashed with the preferred hasher
    assert _token_works(key)


# --- 11: Content-Security-Policy ------------------------------------------------------------------
def _directives(header: str) -> dict[str, list[str]]:
    parts = (part.strip().split() for part in header.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


def test_pages_send_a_strict_content_security_policy(db):
    client = Client()
    login = client.get("/accounts/login/")
    client.force_login(make_user("alice"))
    for response in (login, client.get("/"), client.get("/generations/new/")):
        policy = _directives(response["Content-Security-Policy"])
        assert policy["default-src"] == ["'none'"]
        assert policy["script-src"] == ["'self'"]  # no inline script, no eval
        assert policy["style-src"] == ["'self'"]  # no inline style, not even attributes
        assert policy["connect-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["base-uri"] == ["'none'"] and policy["object-src"] == ["'none'"]
        assert policy["form-action"] == ["'self'"]


def test_the_pages_carry_no_inline_script_or_style(db, settings):
    """What the policy forbids is not in the markup: no <style>, no style="", no inline
    <script>, over every page and a card in every status (the ETA bar included)."""
    alice = make_user("alice", is_staff=True, is_superuser=True)
    gens = [make_gen(status, user=alice) for status in Status.values]
    client = Client()
    pages = ["/accounts/login/"]
    client.force_login(alice)
    pages += ["/", "/jobs/", "/generations/new/", "/accounts/password_change/", "/usage/"]
    pages += [f"/generations/{gen.pk}/" for gen in gens]
    pages += ["/admin/", "/admin/generations/generation/", "/nowhere/"]
    from django.views.defaults import server_error

    server_error_page = server_error(RequestFactory().get("/")).content.decode()
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(alice)
    csrf_page = csrf_client.post("/generations/new/", {"user_prompt": "x"})
    assert csrf_page.status_code == 403
    special = {"500": server_error_page, "403 csrf": csrf_page.content.decode()}
    for path in [*pages, *special]:
        html = special[path] if path in special else client.get(path).content.decode()
        assert not re.search(r"\sstyle\s*=", html), path
        assert "<style" not in html, path
        for script in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in script, (path, script)
        assert not re.search(r"\son[a-z]+\s*=", html), path  # no onclick= and the like


def test_every_aspect_ratio_has_its_shape_in_the_stylesheet():
    """The shapes moved from style="aspect-ratio: …" to rules keyed by data-shape."""
    css = (ROOT / "static" / "css" / "app.css").read_text()
    for ratio in ASPECT_RATIOS:
        width, height = ratio.split(":")
        rule = (
            rf'\[data-shape="{ratio}"\]\s*\{{\s*aspect-ratio:\s*{width}\s*/\s*{height}\s*;?\s*\}}'
        )
        assert re.search(rule, css), ratio


@pytest.fixture
def chromium():
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    from tests.chromium import launch

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as pw:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs here
        browser = launch(pw)
        yield browser
        browser.close()


RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(
    e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || '')));
"""


@pytest.mark.browser
def test_the_studio_runs_in_chromium_under_its_policy_without_a_violation(
    chromium, live_server, settings
):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    dana = make_user("dana", password="dana-pass-123", is_staff=True, is_superuser=True)
    # Files not yet copied are shown from the upstream's origin, which the policy allows.
    upstream = "{0.scheme}://{0.netloc}".format(urlsplit(django_settings.LUMA_API_BASE_URL))
    gens = {
        status: make_gen(
            status, user=dana, video_url=f"{upstream}/f/v.mp4", thumbnail_url=f"{upstream}/f/t.jpg"
        )
        for status in Status.values
    }
    context = chromium.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: "Content Security Policy" in m.text and errors.append(m.text))
    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "dana-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    seen = []
    paths = ["/", "/jobs/", "/generations/new/", "/usage/", "/admin/"]
    paths += ["/admin/generations/generation/"]
    paths += [f"/generations/{gen.pk}/" for gen in gens.values()]
    for path in paths:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        seen += page.evaluate("window.__violations")
    # the ETA bar takes its start and speed from data attributes, set by app.js
    page.goto(f"{base}/generations/{gens[Status.IN_PROGRESS].pk}/")
    bar = page.locator(".progress-eta").first
    bar.wait_for()
    assert bar.evaluate("el => el.style.getPropertyValue('--secs')").endswith("s")
    assert bar.evaluate("el => el.style.getPropertyValue('--from')").endswith("%")
    # the ratio shapes keep their shape without style attributes
    page.goto(base + "/generations/new/")
    shape = page.locator(".ratio-shape[data-shape='9:16']")
    box = shape.bounding_box()
    assert box and box["height"] > box["width"] * 1.5, box
    # an htmx swap (the gallery's filter) runs without eval and without injected styles
    page.goto(base + "/")
    page.fill("input[name=q]", "prompt")
    page.wait_for_load_state("networkidle")
    seen += page.evaluate("window.__violations")
    assert page.evaluate("document.querySelectorAll('head style').length") == 0
    assert seen == [] and errors == [], (seen, errors)
    # and the policy is in force: an injected inline script does not run
    page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.__injected = 1'; document.body.append(s); }"""
    )
    assert page.evaluate("window.__injected") is None
    assert any(v.startswith("script-src") for v in page.evaluate("window.__violations"))
    context.close()


# --- 11: the admin's date drill-down --------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "{f}__year=99999999999999999999",
        "{f}__year=2024&{f}__month=99999999999999999999",
        "{f}__year=2024&{f}__month=1&{f}__day=99999999999999999999",
        "{f}__year=-99999999999999999999",
    ],
)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/admin/generations/generation/", "created_at"),
        ("/admin/axes/accessattempt/", "attempt_time"),  # django-axes' logs drill down too
        ("/admin/axes/accesslog/", "attempt_time"),
        ("/admin/axes/accessfailurelog/", "attempt_time"),
    ],
)
def test_the_admins_date_drill_down_refuses_an_impossible_date_without_a_500(
    db, path, field, query
):
    client = Client(raise_request_exception=False)
    client.force_login(make_user("boss", is_staff=True, is_superuser=True))
    response = client.get(f"{path}?{query.format(f=field)}")
    assert response.status_code in (302, 400, 404), response.status_code
    if response.status_code == 302:  # the admin's own "invalid filter" page
        assert client.get(response["Location"]).status_code == 200
