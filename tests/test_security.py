"""Security hardening, one behaviour per test; each fails without the protection it names."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import RegexPattern
from django.views.debug import ExceptionReporter
from PIL import Image

from generations import actions, pipeline
from generations.inputs import GenerationRequest
from generations.models import ApiToken, Generation, Status
from tests.factories import make_user

ROOT = os.path.dirname(os.path.dirname(__file__))
PUBLIC = {"/accounts/login/", "/healthz", "/admin/login/"}
# Share links' pages and media need no login, only a live token (tests/pages/test_shares.py);
# the walk's token ("x") is none, so they must answer "not found".
SHARE_PREFIX = "/s/"


def _routes(patterns=None, prefix="") -> Iterator[str]:
    """The full route of every URL pattern the project serves, as the resolver holds them."""
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        text = str(pattern.pattern)
        if isinstance(pattern.pattern, RegexPattern):
            # "^(?P<app_label>auth|axes)/$" -> "<re:app_label:auth|axes>/", as a route spells it
            text = re.sub(r"\(\?P<(\w+)>([^)]*)\)", r"<re:\1:\2>", text)
            text = text.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + text)
        else:
            yield prefix + text


SLOT = re.compile(r"<(?:(\w+):)?(\w+)(?::([^>]*))?>")
ID_SLOT = re.compile(r"<(?:uuid:\w+|(?:\w+:)?(?:pk|id|object_id))>")


def _fill(route: str, ids: dict[str, list[str]]) -> list[str]:
    """Concrete paths for a route: one per real row when it takes an id, else one.

    ``ids`` maps a converter ("uuid", "int", "str") to the primary keys of rows that exist, so
    an id view finds its row and answers for what it is, not with a 404 for a made-up id.
    """
    slot = SLOT.search(route)
    if slot is None:
        return ["/" + route]
    converter, regex = slot.group(1) or "str", slot.group(3) or ""
    if ID_SLOT.fullmatch(slot.group(0)):
        values = ids.get(converter, ids["str"])
    elif converter == "int":
        values = ["1"]
    elif converter == "re" and re.fullmatch(r"\w+(\|\w+)*", regex):
        values = [regex.split("|")[0]]  # one of the names it accepts
    elif converter in ("path", "re"):
        values = ["videos/x.mp4"]
    else:
        values = ["x"]
    return [
        path
        for value in values
        for path in _fill(route[: slot.start()] + value + route[slot.end() :], ids)
    ]


def _everything() -> dict:
    """What an anonymous request could change: every row the walk's ids point at, and more."""
    from django.contrib.auth.models import User

    from generations.models import StatusEvent

    return {
        "generations": list(Generation.objects.order_by("pk").values()),
        "events": StatusEvent.objects.count(),
        "likes": Generation.liked_by.through.objects.count(),
        "tokens": list(ApiToken.objects.order_by("pk").values()),
        "users": list(User.objects.order_by("pk").values()),
    }


def test_every_url_needs_login_except_login_and_healthz(db):
    """Walks the URL resolver with ids of rows that exist (a generation in every status, a
    user, a token): a view without its login requirement then acts on a real row or shows it,
    where a made-up id would have answered 404 with or without the requirement."""
    alice = make_user("alice")
    gens = [
        Generation.objects.create(
            user_prompt=f"a {status} job",
            status=status,
            created_by=alice,
            remote_id=f"remote-{status}" if status != Status.QUEUED else "",
            posts_sent=0 if status == Status.QUEUED else 1,
        )
        for status in Status.values
    ]
    _, _key = ApiToken.issue(alice, "script")
    token = ApiToken.objects.get()
    some = [str(gens[0].pk), str(alice.pk), str(token.pk)]  # one of each kind for admin pages
    ids = {
        "uuid": [str(gen.pk) for gen in gens],
        "int": [value for value in some if value.isdigit()],
        "str": some,
    }
    before = _everything()
    anonymous = Client()
    routes = list(_routes())
    assert len(routes) > 30  # the walk found the app's and the admin's URLs
    with_ids = 0
    for route in routes:
        takes_id = bool(ID_SLOT.search(route))
        for path in _fill(route, ids):
            with_ids += takes_id
            for method in ("get", "post", "delete"):
                response = getattr(anonymous, method)(path)
                where = (method.upper(), path, response.status_code)
                assert response.status_code != 500, where
                if path.startswith(SHARE_PREFIX):
                    assert response.status_code in (404, 405), where
                elif response.status_code == 200:
                    assert path in PUBLIC, f"{where} answered 200 to a stranger"
                elif response.status_code in (301, 302):
                    assert "login" in response["Location"], (*where, response["Location"])
                elif takes_id:
                    # the row exists: "not found" would mean the view looked it up for a stranger
                    assert response.status_code in (401, 403, 405), where
                else:
                    assert response.status_code in (401, 403, 404, 405), where
    assert with_ids > len(Status.values) * 8  # every page and API id view, once per status
    assert _everything() == before, "an anonymous request changed something"


def test_no_password_reset_by_email_is_exposed(db):
    assert Client().get("/accounts/password_reset/").status_code in (302, 404)


@pytest.fixture
def alice(db):
    return make_user("alice")


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_every_post_needs_the_csrf_token_htmx_included(alice):
    gen = Generation.objects.create(user_prompt="x", status=Status.FAILED, created_by=alice)
    client = csrf_client(alice)
    posts = [
        "/generations/new/",
        f"/generations/{gen.pk}/extend/",
        f"/generations/{gen.pk}/like/",
        f"/generations/{gen.pk}/retry/",
        f"/generations/{gen.pk}/cancel/",
        f"/generations/{gen.pk}/mark-failed/",
        f"/generations/{gen.pk}/delete/",
        "/accounts/logout/",
        "/accounts/password_change/",
        "/api/v1/generations",
        f"/api/v1/generations/{gen.pk}/extend",
        f"/generations/{gen.pk}/share/",
        f"/api/v1/generations/{gen.pk}/share",
        "/shares/1/revoke/",
    ]
    for path in posts:
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.post(path, {"user_prompt": "hi"}, **headers)
            assert response.status_code == 403, path
    gen.refresh_from_db()
    assert gen.status == Status.FAILED


def test_csrf_token_from_the_page_is_accepted_by_htmx_posts(alice):
    client = csrf_client(alice)
    page = client.get("/jobs/").content.decode()
    token = re.search(r'"x-csrftoken": "([^"]+)"', page).group(1)
    gen = Generation.objects.create(user_prompt="x", status=Status.QUEUED, created_by=alice)
    response = client.post(
        f"/generations/{gen.pk}/cancel/", HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code in (200, 302)
    gen.refresh_from_db()
    assert gen.status == Status.CANCELLED


def test_api_token_requests_need_no_csrf_token(alice):
    _, key = ApiToken.issue(alice, "script")
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/generations",
        {"user_prompt": "from a script"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 201
    bad = client.post(
        "/api/v1/generations",
        {"user_prompt": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer lw_wrong",
    )
    assert bad.status_code == 401


def test_production_settings_pass_check_deploy(tmp_path):
    # (a developer's shell may allow async-unsafe calls; production does not)
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(
        DEBUG="False",
        SECRET_KEY="x" * 20 + "-Production-Secret-Key-For-Checks-1234567",
        ALLOWED_HOSTS="lumaweb.example.com",
        SECURE_HSTS_PRELOAD="True",
        STATIC_ROOT=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_headers_clickjacking_hsts_and_secure_cookies(settings, alice):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SESSION_COOKIE_SECURE = True
    client = Client()
    response = client.get("/accounts/login/", secure=True)
    assert response["X-Frame-Options"] == "DENY"
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    login = client.post(
        "/accounts/login/", {"username": "alice", "password": "s3cret-pass!"}, secure=True
    )
    assert login.cookies["sessionid"]["secure"]


# --- ownership -----------------------------------------------------------------------------
def test_people_may_change_only_their_own_jobs_admins_any(db):
    alice, bob = make_user("alice"), make_user("bob")
    boss = make_user("boss", is_staff=True)
    gen = Generation.objects.create(user_prompt="alice's", status=Status.FAILED, created_by=alice)
    for action in (
        actions.retry_generation,
        actions.cancel_generation,
        actions.mark_failed,
        actions.delete_generation,
    ):
        with pytest.raises(actions.NotAllowed):
            action(gen, bob)
    bob_client = Client()
    bob_client.force_login(bob)
    assert bob_client.delete(f"/api/v1/generations/{gen.pk}").status_code == 403
    page = bob_client.post(f"/generations/{gen.pk}/retry/", follow=True)
    assert "Only the person who made this job" in page.content.decode()
    gen.refresh_from_db()
    assert gen.status == Status.FAILED
    actions.delete_generation(gen, boss)
    assert not Generation.objects.filter(pk=gen.pk).exists()


def test_owner_may_delete_a_finished_job_but_not_one_in_flight(alice):
    client = Client()
    client.force_login(alice)
    running = Generation.objects.create(
        user_prompt="r", status=Status.IN_PROGRESS, created_by=alice
    )
    assert client.delete(f"/api/v1/generations/{running.pk}").status_code == 409
    done = Generation.objects.create(user_prompt="d", status=Status.COMPLETED, created_by=alice)
    assert client.delete(f"/api/v1/generations/{done.pk}").status_code == 204
    assert not Generation.objects.filter(pk=done.pk).exists()


# --- keyframe URLs and uploads ---------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://example.com/a.jpg",
        "http://user:pass@example.com/a.jpg",
        "https://example.com/" + "a" * 3000,
        "http://127.0.0.1/a.jpg",
        "http://10.1.2.3/a.jpg",
        "http://[::1]/a.jpg",
        "http://169.254.169.254/latest",
        "data:image/png;base64,AAAA",
    ],
)
def test_hostile_keyframe_urls_are_refused_in_live_mode(alice, settings, url):
    settings.LUMA_DEMO_MODE = False
    client = Client()
    client.force_login(alice)
    response = client.post(
        "/api/v1/generations",
        {"user_prompt": "x", "image_url": url},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "image_url" in response.json()["fields"]
    assert not Generation.objects.exists()


def _png(size=(64, 36)) -> io.BytesIO:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 80, 20)).save(buf, "PNG")
    buf.seek(0)
    buf.name = "../../evil name.png"
    return buf


def _upload(client, name, data):
    data.name = name
    return client.post(
        "/generations/new/",
        {"user_prompt": "with a keyframe", "aspect_ratio": "16:9", "image_file": data},
    )


@pytest.mark.parametrize(
    "body,name",
    [
        (b"<?php system($_GET['c']); ?>", "shell.png"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg"),
        (b"GIF89a" + b"\x00" * 20, "broken.gif"),
    ],
)
def test_uploads_must_be_real_images(alice, body, name):
    client = Client()
    client.force_login(alice)
    response = _upload(client, name, io.BytesIO(body))
    assert response.status_code == 400  # the form again, with the reason
    assert b"valid image" in response.content
    assert not Generation.objects.exists()


def test_uploads_have_size_and_pixel_caps(alice, settings):
    client = Client()
    client.force_login(alice)
    buf = io.BytesIO()
    Image.new("L", (8000, 6000)).save(buf, "PNG")  # 48 megapixels, small file
    buf.seek(0)
    response = _upload(client, "huge.png", buf)
    assert response.status_code == 400 and b"too many pixels" in response.content
    big = io.BytesIO(_png().read() + b"\x00" * (11 * 1024 * 1024))
    response = _upload(client, "big.png", big)
    assert response.status_code == 400 and b"up to 10 MB" in response.content
    assert not Generation.objects.exists()


def test_uploaded_keyframe_gets_a_random_name_and_is_served_inert(alice, settings):
    settings.LUMA_DEMO_MODE = True
    client = Client()
    client.force_login(alice)
    response = _upload(client, "../../evil name.png", _png())
    assert response.status_code == 302
    gen = Generation.objects.get()
    name = gen.image_file.name
    assert name.startswith("keyframes/") and "evil" not in name and ".." not in name
    assert len(name.split("/")[1].split(".")[0]) >= 30  # unguessable
    served = Client().get("/media/" + name)  # public on purpose: the upstream fetches it
    assert served.status_code == 200
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]
    assert served["Content-Type"] == "image/png"
    assert Client().get("/media/keyframes/").status_code == 404  # no listing


def test_videos_are_not_served_to_strangers(alice, settings, media_root):
    (media_root / "videos").mkdir(exist_ok=True)
    (media_root / "videos" / "v.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    for path in (
        "/media/videos/v.mp4",
        "/media/../settings.py",
        "/media/keyframes/../videos/v.mp4",
        "/media/keyframes/%2e%2e/videos/v.mp4",
        "/media/keyframes/..%2fvideos/v.mp4",
        "/media/keyframes/%252e%252e/videos/v.mp4",
        "/media/keyframes/../../lumaweb/settings.py",
    ):
        assert Client().get(path).status_code == 404, path
    client = Client()
    client.force_login(alice)
    assert client.get("/media/videos/v.mp4").status_code == 200


# --- the API key ----------------------------------------------------------------------------
SECRET = "sk-umami-TEST-7f3a9c1e5b2d4f60"


def test_api_key_appears_in_no_page_log_error_or_report(alice, sim, settings, caplog):
    settings.LUMA_API_KEY = SECRET
    settings.LUMA_DEMO_MODE = False
    sim.configure(api_key=SECRET)
    caplog.set_level(logging.DEBUG)
    boss = make_user("boss", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    # a full run: create, submit, poll, copy, extend
    gen = actions.create_generation(
        boss, GenerationRequest(user_prompt="secret-free", aspect_ratio="1:1")
    )
    pipeline.submit(gen.pk)
    sim.force_complete(Generation.objects.get(pk=gen.pk).remote_id)
    Generation.objects.filter(pk=gen.pk).update(next_poll_at="2000-01-01T00:00:00Z")
    pipeline.poll_in_flight()
    pipeline.copy_assets(gen.pk)
    gen.refresh_from_db()
    assert gen.status == Status.COMPLETED
    # an error the upstream words itself (wrong key) is kept and shown
    settings.LUMA_API_KEY = SECRET + "-wrong"
    bad = actions.create_generation(boss, GenerationRequest(user_prompt="wrong key"))
    pipeline.submit(bad.pk)
    bad.refresh_from_db()
    assert bad.status == Status.QUEUED and bad.error  # held: the banner shows the words too
    assert 'id="account-hold"' in client.get("/").content.decode()
    pages = [
        "/",
        "/jobs/",
        "/generations/new/",
        f"/generations/{gen.pk}/",
        f"/generations/{bad.pk}/",
        "/admin/generations/generation/",
        f"/admin/generations/generation/{gen.pk}/change/",
        f"/admin/generations/generation/{bad.pk}/change/",
        "/api/v1/generations",
        "/api/v1/openapi.json",
        "/usage/",
        "/api/v1/usage",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert SECRET.encode() not in response.content, path
    from generations.client import get_client

    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        from django.test import RequestFactory

        report = ExceptionReporter(RequestFactory().get("/"), type(exc), exc, exc.__traceback__)
        assert SECRET not in report.get_traceback_text()
        assert SECRET not in report.get_traceback_html()
    assert SECRET not in repr(get_client())
    assert SECRET not in caplog.text
    assert SECRET not in bad.error


def test_a_log_line_that_would_carry_the_key_is_redacted(settings):
    from lumaweb.logs import RedactSecretsFilter

    settings.LUMA_API_KEY = SECRET
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "header was %s", (SECRET,), None)
    RedactSecretsFilter().filter(record)
    assert SECRET not in record.getMessage()


# --- login throttling ------------------------------------------------------------------------
def test_login_is_throttled_after_repeated_failures(alice, settings):
    client = Client()
    statuses = [
        client.post("/accounts/login/", {"username": "alice", "password": "nope"}).status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert statuses[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # "wrong password"
    locked = client.post("/accounts/login/", {"username": "alice", "password": "s3cret-pass!"})
    assert locked.status_code == 429
    assert b"Too many failed log-ins" in locked.content
    assert "_auth_user_id" not in client.session
    # another user from the same address is not locked out
    make_user("bob")
    ok = client.post("/accounts/login/", {"username": "bob", "password": "s3cret-pass!"})
    assert ok.status_code == 302


def test_videos_answer_byte_ranges_for_seeking(alice, media_root):
    (media_root / "videos").mkdir(exist_ok=True)
    (media_root / "videos" / "r.mp4").write_bytes(bytes(range(256)) * 4)
    client = Client()
    client.force_login(alice)
    part = client.get("/media/videos/r.mp4", HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206
    assert part["Content-Range"] == "bytes 10-19/1024"
    assert b"".join(part.streaming_content) == bytes(range(10, 20))
    tail = client.get("/media/videos/r.mp4", HTTP_RANGE="bytes=-4")
    assert b"".join(tail.streaming_content) == bytes(range(252, 256))
    assert client.get("/media/videos/r.mp4", HTTP_RANGE="bytes=5000-").status_code == 416
    whole = client.get("/media/videos/r.mp4")
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    assert whole["Content-Type"] == "video/mp4"


def test_admin_shows_jobs_read_only_and_acts_through_actions(db):
    boss = make_user("boss", is_staff=True, is_superuser=True)
    gen = Generation.objects.create(
        user_prompt="x", status=Status.NEEDS_ATTENTION, created_by=boss, posts_sent=1
    )
    client = Client()
    client.force_login(boss)
    page = client.get(f"/admin/generations/generation/{gen.pk}/change/").content.decode()
    assert 'name="status"' not in page and 'name="posts_authorized"' not in page
    client.post(
        "/admin/generations/generation/",
        {"action": "mark_failed", "_selected_action": [str(gen.pk)]},
    )
    gen.refresh_from_db()
    assert gen.status == Status.FAILED


@pytest.mark.parametrize("db", range(16))
def test_a_spare_redis_database_is_never_the_suites_nor_db_0(db):
    from tests.conftest import spare_redis_db

    spare = spare_redis_db(f"redis://127.0.0.1:6379/{db}")
    number = int(spare.rpartition("/")[2])
    assert spare.startswith("redis://127.0.0.1:6379/")
    assert number not in (db, 0) and 0 <= number <= 15


@pytest.mark.pipeline
def test_api_key_is_in_no_worker_or_beat_log_line_during_a_full_run(
    transactional_db, pipeline_env, spare_redis_url, tmp_path
):
    """A real worker and beat with a real key, logging at DEBUG, against a simulator that
    demands that key: the job completes (so the key was used) and no line shows it.

    The suite's own worker is stopped (this test does not ask for ``pipeline``) and these
    processes use a Redis of their own (``spare_redis_url``), so neither takes the other's work.
    """
    from devtools.chaos import publishing_to
    from devtools.processes import CeleryProcesses
    from devtools.simulator_process import SimulatorProcess
    from tests.conftest import wait_for

    broker = spare_redis_url
    with SimulatorProcess(api_key=SECRET, duration=1, video_seconds=1) as sim:
        env = {
            **pipeline_env,
            "LUMA_API_KEY": SECRET,
            "LUMA_API_BASE_URL": sim.api_url,
            "REDIS_URL": broker,
            "LOG_LEVEL": "DEBUG",
        }
        procs = CeleryProcesses(env, tmp_path)
        procs.start("worker-keyed")
        procs.start("beat")
        try:
            with publishing_to(broker):
                gen = actions.create_generation(
                    make_user(), GenerationRequest(user_prompt="keyed run")
                )
            wait_for(
                lambda: Generation.objects.filter(pk=gen.pk).exclude(video_file="").exists(),
                60,
                "the keyed job to complete and be copied",
            )
        finally:
            procs.stop_all()
        assert len(sim.ledger()["posts"]) == 1
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("*.log"))
    assert f"generation={gen.pk}" in logs and "DEBUG" in logs
    assert SECRET not in logs
