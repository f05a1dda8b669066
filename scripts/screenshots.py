#!/usr/bin/env python
"""Screenshots of the studio pages, made from the simulator's real videos.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--keep]

Starts everything it needs in a temporary folder: a fresh SQLite database, the simulator, and
``manage.py runserver``. The pipeline runs in this process by calling the pipeline directly
(submit, poll, copy), so no Redis or Celery worker is needed. Writes login.png, gallery.png,
jobs.png, new.png, detail.png, team.png, webhooks.png, gallery-dark.png, team-dark.png, and
boards.png, board.png (its Share panel open on a link), share.png (that link as a stranger sees
it), viewer.png, chain.png (a branched chain) and frame.png ("Use a frame"); and checks that a
<video> really plays in Chromium.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VIEWPORT = {"width": 1280, "height": 860}
USERNAME, PASSWORD = "maya", "studio-demo-pass"

FINISHED = [
    ("A paper boat drifting down a rain-soaked street at dusk, neon reflections", "16:9", "maya"),
    ("Slow aerial shot over a turquoise glacier lagoon, icebergs cracking", "21:9", "jonas"),
    ("Portrait of a fox in falling snow, shallow depth of field", "9:16", "maya"),
    ("A tiny robot watering a bonsai tree on a sunlit windowsill", "1:1", "ines"),
    ("Vintage tram climbing a hill in Lisbon, golden hour", "4:3", "jonas"),
    ("Jellyfish glowing in a dark aquarium, slow drift", "3:4", "ines"),
]
EXTENSION = "The boat reaches a canal and drifts under a lit bridge"
BRANCH = "The boat capsizes in a gust and a cat fishes it out of the water"  # the boat's 2nd
FURTHER = "Past the bridge, the canal opens onto a harbour at night"  # the extension's own
BOARDS = [  # name, owner, shared with the team, videos (FINISHED's indexes)
    ("Client picks", "maya", True, [0, 2, 4]),
    ("Water and ice", "maya", False, [1, 5, 0]),
    ("Small machines", "ines", True, [3]),
]


def configure_env(tmp: Path, api_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="lumaweb.settings",
        DEBUG="True",
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        MEDIA_ROOT=str(tmp / "media"),
        LUMA_API_KEY="",
        LUMA_API_BASE_URL=api_url,
        REDIS_URL="memory://",  # wake-ups go nowhere: this script runs the pipeline itself
        LUMA_READ_TIMEOUT="2",
        LUMA_POLL_INTERVAL="0.5",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LUMA_HEARTBEAT_STALE_AFTER="3600",  # this script's own "worker" and "beat" (below)
    )
    os.environ.update(env)
    return env


def run_pipeline(sim) -> dict[str, object]:
    """Make the gallery's videos and a dashboard with one job in every state."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from generations import actions, pipeline
    from generations.inputs import GenerationRequest
    from generations.models import Board, Generation, Status

    call_command("migrate", verbosity=0)
    users_model = get_user_model()
    users = {}
    for name in ("maya", "jonas", "ines"):
        users[name] = users_model.objects.create_user(name, password=PASSWORD)
    users["maya"].is_staff = True
    users["maya"].save()
    # The Team page's figures: maya runs the team, ines watches, jonas has a budget.
    actions.set_member(None, users["maya"], role="admin")
    actions.set_member(None, users["jonas"], budget=5_000_000)
    actions.set_team_budget(None, 20_000_000)

    def finish(gens: list[Generation], timeout: float = 90) -> None:
        for gen in gens:
            pipeline.submit(gen.pk)
        deadline = time.monotonic() + timeout
        pks = [g.pk for g in gens]
        while Generation.objects.filter(pk__in=pks, status=Status.IN_PROGRESS).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not finish in time")
            Generation.objects.filter(pk__in=pks, status=Status.IN_PROGRESS).update(
                next_poll_at=django.utils.timezone.now()
            )
            pipeline.poll_in_flight()
            time.sleep(0.5)
        for pk in pks:
            pipeline.copy_assets(pk)

    finished = []
    for prompt, ratio, who in FINISHED:
        finished.append(
            actions.create_generation(
                users[who],
                GenerationRequest(user_prompt=prompt, aspect_ratio=ratio, expand_prompt=True),
            )
        )
    finish(finished)
    boat = Generation.objects.get(pk=finished[0].pk)
    extension = actions.extend_generation(
        boat, users["maya"], GenerationRequest(user_prompt=EXTENSION, expand_prompt=True)
    )
    finish([extension])
    # A branched chain: a second extension of the boat, and one of the first extension.
    branch = actions.extend_generation(
        boat, users["jonas"], GenerationRequest(user_prompt=BRANCH, expand_prompt=True)
    )
    further = actions.extend_generation(
        Generation.objects.get(pk=extension.pk),
        users["maya"],
        GenerationRequest(user_prompt=FURTHER, expand_prompt=True),
    )
    finish([branch, further])
    make_boards(users, [Generation.objects.get(pk=g.pk) for g in finished])
    for gen, likers in ((finished[0], ["jonas", "ines"]), (finished[2], ["maya"])):
        for name in likers:
            actions.toggle_like(gen, users[name])

    # The dashboard: one running, one queued, one failed upstream, one needing attention.
    sim.configure(duration=900)
    running = actions.create_generation(
        users["jonas"],
        GenerationRequest(
            user_prompt="Time-lapse of clouds rolling over a mountain ridge", aspect_ratio="21:9"
        ),
    )
    pipeline.submit(running.pk)
    sim.configure(duration=2, fail_rate=1.0)
    failed = actions.create_generation(
        users["ines"],
        GenerationRequest(user_prompt="Macro shot of ink blooming in water", aspect_ratio="1:1"),
    )
    finish([failed])
    sim.configure(fail_rate=0.0, slow_rate=1.0, slow_seconds=4)
    unsure = actions.create_generation(
        users["maya"],
        GenerationRequest(
            user_prompt="Drone flight through a lantern festival", aspect_ratio="16:9"
        ),
    )
    pipeline.submit(unsure.pk)
    sim.configure(slow_rate=0.0)
    actions.create_generation(
        users["maya"],
        GenerationRequest(
            user_prompt="A cat astronaut floating past the moon", aspect_ratio="9:16"
        ),
    )
    actions.set_member(None, users["ines"], role="viewer")  # (after her videos)
    make_webhook(users["maya"], finished)
    # This process stood in for the worker and beat: the pages should not say none is running.
    from generations.models import Heartbeat

    for kind in ("worker", "beat"):
        Heartbeat.record(kind, "screenshots", os.getpid())
    statuses = dict(Generation.objects.values_list("user_prompt", "status"))
    print("rows:", statuses)
    return {
        "detail": extension.pk,
        "chain": further.pk,
        "board": Board.objects.get(name=BOARDS[0][0]).pk,
        "frame": finished[0].pk,
    }


def make_webhook(maya, finished: list) -> None:
    """A webhook and its recent deliveries, one of each outcome. Made as rows: the receiver's
    address is a documentation one (the form would refuse it as not public, rightly), and the
    deliveries are not sent (there is no worker here)."""
    import json
    from datetime import timedelta

    from django.utils import timezone

    from generations.models import DeliveryStatus, Webhook, WebhookDelivery

    hook = Webhook.objects.create(
        url="https://hooks.example.com/lumaweb",
        secret="a-demo-secret-of-enough-length",
        events="completed,failed,needs_attention",
        created_by=maya,
    )
    now = timezone.now()
    retry = now + timedelta(minutes=2)
    outcomes = [
        (DeliveryStatus.DELIVERED, 200, ""),
        (DeliveryStatus.PENDING, 503, "answered 503"),
        (DeliveryStatus.DELIVERED, 200, ""),
    ]
    for n, (gen, (status, code, error)) in enumerate(zip(finished, outcomes, strict=False)):
        WebhookDelivery.objects.create(
            webhook=hook,
            event="generation.completed",
            generation_id=gen.pk,
            payload=json.dumps({"event": "generation.completed", "id": str(gen.pk)}),
            status=status,
            attempts=1,
            last_status_code=code,
            last_error=error,
            next_attempt_at=retry if status == DeliveryStatus.PENDING else None,
            delivered_at=now if status == DeliveryStatus.DELIVERED else None,
            created_at=now - timedelta(minutes=3 * n),
        )


def make_boards(users: dict, finished: list) -> None:
    from generations import boards

    for name, owner, shared, picks in BOARDS:
        board = boards.create_board(users[owner], name, shared=shared)
        for index in picks:
            boards.add(board, finished[index], users[owner])


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    from devtools.simulator_process import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    import requests

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/accounts/login/", timeout=1).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("runserver did not start")


def capture(base: str, out: Path, pks: dict, mobile: Path | None = None) -> None:
    from playwright.sync_api import sync_playwright

    from tests.chromium import launch

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        try:
            browser = launch(pw)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        for scheme in ("light", "dark"):
            context = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)
            page = context.new_page()
            page.goto(base + "/accounts/login/")
            if scheme == "light":
                page.screenshot(path=str(out / "login.png"))
            page.fill("input[name=username]", USERNAME)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")
            page.wait_for_function(
                "[...document.querySelectorAll('.card img.backdrop')].every(i => i.complete)"
            )
            suffix = "" if scheme == "light" else "-dark"
            page.screenshot(path=str(out / f"gallery{suffix}.png"))
            page.goto(base + "/team/")
            page.screenshot(path=str(out / f"team{suffix}.png"), full_page=True)
            if scheme == "dark":
                context.close()
                continue
            page.goto(base + "/team/webhooks/")
            page.screenshot(path=str(out / "webhooks.png"), full_page=True)
            page.goto(base + "/jobs/")
            page.wait_for_timeout(300)
            page.screenshot(path=str(out / "jobs.png"), full_page=True)
            page.goto(base + "/generations/new/")
            page.fill("textarea[name=user_prompt]", "A lighthouse keeper's cat watching a storm")
            page.click("label.ratio:has(input[value='21:9'])")
            page.click(".keyframes summary")
            page.fill("input[name=image_url]", "https://example.com/keyframes/harbour.jpg")
            page.mouse.move(0, 0)
            page.wait_for_timeout(400)  # let transitions finish
            page.screenshot(path=str(out / "new.png"))
            page.goto(f"{base}/generations/{pks['detail']}/")
            settle(page)
            # Played a moment and paused: a frame of the video, not Chromium's loading ring,
            # which it draws over this page's untouched (preload="none") video.
            check_playback(page)
            page.evaluate("() => document.querySelector('video').pause()")
            settle(page)
            page.screenshot(path=str(out / "detail.png"), full_page=True)
            capture_issue_10(browser, page, base, out, pks)
            context.close()
        if mobile is not None:
            capture_mobile(browser, base, mobile, pks["detail"])
        browser.close()


IMAGES_SHOWN = "[...document.querySelectorAll('main img')].every(i => i.complete)"
# Chromium draws a spinner over a <video> while it loads: wait until none is loading.
# (Untouched, it shows its poster; once asked for, until it has a frame to show.)
VIDEOS_SETTLED = """() => [...document.querySelectorAll('video')].every(
    v => v.readyState === 0 ? v.networkState !== HTMLMediaElement.NETWORK_LOADING
                            : v.readyState >= 2)"""


def settle(page) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_function(IMAGES_SHOWN)
    try:
        page.wait_for_function(VIDEOS_SETTLED, timeout=10_000)
    except PlaywrightTimeout:
        print("note: a video was still loading on", page.url)
    page.mouse.move(0, 0)
    page.wait_for_timeout(300)  # the controls fade in and out


def scroll_to(page, selector: str) -> None:
    """Put the element just under the sticky top bar."""
    page.evaluate(
        """(selector) => {
            const top = document.querySelector(selector).getBoundingClientRect().top;
            window.scrollTo({top: window.scrollY + top - 80, behavior: 'instant'});
        }""",
        selector,
    )


def capture_issue_10(browser, page, base: str, out: Path, pks: dict) -> None:
    """Boards, a board's Share panel and its public page, the viewer, a chain, a frame."""
    page.goto(base + "/boards/")
    page.wait_for_function(IMAGES_SHOWN)
    page.screenshot(path=str(out / "boards.png"), full_page=True)

    page.goto(f"{base}/boards/{pks['board']}/")
    panel = page.locator(f"#share-board-{pks['board']}")
    panel.locator("summary").click()
    panel.locator("select[name=expires]").select_option("30")
    panel.locator("input[name=show_prompts]").check()
    panel.locator("button:has-text('Create link')").click()
    field = panel.locator("[data-share-url]").first
    field.wait_for()
    url = field.input_value()
    page.wait_for_function(IMAGES_SHOWN)
    page.mouse.move(0, 0)
    page.screenshot(path=str(out / "board.png"))

    stranger = browser.new_context(viewport=VIEWPORT)  # no login: as the link's reader sees it
    public = stranger.new_page()
    public.goto(url)
    public.wait_for_load_state("networkidle")
    settle(public)
    public.screenshot(path=str(out / "share.png"), full_page=True)
    stranger.close()

    page.goto(base + "/")
    page.wait_for_function(IMAGES_SHOWN)
    page.locator(".card a[data-viewer]").first.click()
    page.wait_for_function(
        "() => { const v = document.querySelector('dialog.viewer[open] video');"
        " return !!v && v.readyState >= 2; }"
    )
    page.mouse.move(0, 0)
    page.wait_for_timeout(400)  # let the dialog's opening transition finish
    page.screenshot(path=str(out / "viewer.png"))
    page.keyboard.press("Escape")

    page.goto(f"{base}/generations/{pks['chain']}/")
    settle(page)
    scroll_to(page, "#chain")
    page.screenshot(path=str(out / "chain.png"))

    page.goto(f"{base}/generations/{pks['frame']}/")
    settle(page)
    scroll_to(page, "#frames")
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-frame-image]');"
        " return !!i && i.complete && i.naturalWidth > 0; }"
    )
    page.screenshot(path=str(out / "frame.png"))


def capture_mobile(browser, base: str, out: Path, detail_pk) -> None:
    """Phone-sized views, to check the responsive layout (not part of the docs)."""
    out.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(base + "/accounts/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    for name, path in (
        ("gallery", "/"),
        ("jobs", "/jobs/"),
        ("new", "/generations/new/"),
        ("detail", f"/generations/{detail_pk}/"),
        ("team", "/team/"),
    ):
        page.goto(base + path)
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / f"mobile-{name}.png"), full_page=True)
    context.close()


def check_playback(page) -> None:
    """Play the detail page's video and report whether Chromium decodes it."""
    state = page.evaluate(
        """async () => {
            const v = document.querySelector('video');
            try { await v.play(); } catch (e) { return {error: String(e)}; }
            await new Promise(r => setTimeout(r, 1200));
            return {readyState: v.readyState, currentTime: v.currentTime,
                    width: v.videoWidth, error: v.error && v.error.code};
        }"""
    )
    print("video playback:", state)
    if state.get("readyState", 0) < 2 or not state.get("currentTime"):
        print("WARNING: the video did not play in this Chromium (H.264 decoding?)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--mobile", help="also capture phone-sized pages into this folder")
    args = parser.parse_args()

    from devtools.simulator_process import SimulatorProcess

    tmp = Path(tempfile.mkdtemp(prefix="lumaweb-shots-"))
    sim = SimulatorProcess(duration=2, video_seconds=3, seed=11, media_dir=str(tmp / "sim"))
    sim.start()
    server = None
    try:
        env = configure_env(tmp, sim.api_url)
        pks = run_pipeline(sim)
        server, base = start_server(env)
        capture(base, Path(args.out), pks, Path(args.mobile) if args.mobile else None)
        print("screenshots in", args.out)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        sim.stop()
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
