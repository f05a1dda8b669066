"""Every page, in the states people meet it in, in light and dark colour schemes, on a desktop
screen and a 390 px phone: axe-core (vendored in tests/vendor/, never served to users) finds no
critical or serious problem, and on the phone no page is wider than the screen.

Each state is audited as it loads; then, if it has closed <details> (keyframes, resolve, delete,
the account menu), once more with them open, laid out in the flow (a panel floating over other
content hides its text's background from axe, which then skips its contrast), and the audit
limited to their contents. Every finding of every state is collected before the test fails, as
one readable list: rule, impact, help, and each element with the states it was seen in.

403 and 500 pages are reached by no link: they are rendered by Django's own handlers and shown
from the live server's address (Playwright answers that one request), so their CSS loads.

Set LUMAWEB_A11Y_SCREENSHOTS=<folder> to keep a PNG of every state (to look at after a change).
"""

from __future__ import annotations

import io
import os
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.utils import timezone
from django.views.defaults import permission_denied, server_error

from generations import money
from generations.models import (
    Board,
    BoardItem,
    DeliveryStatus,
    Generation,
    Heartbeat,
    HoldCause,
    ShareLink,
    Status,
    Webhook,
    WebhookDelivery,
)
from generations.outage import outage_response
from generations.pipeline import hold
from tests.conftest import wait_for
from tests.factories import heartbeat, make_user
from tests.pages.conftest import make_gen

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent.parent / "vendor" / "axe.min.js"
BLOCKING = ("critical", "serious")
TIMEOUT_MS = 30_000
SCREENSHOTS = os.environ.get("LUMAWEB_A11Y_SCREENSHOTS", "")

# Runs in the page: the findings of one axe run, reduced to what a reader of the failure needs.
RUN_AXE = """async (scope) => {
    const context = scope ? document.querySelectorAll(scope) : document;
    if (scope && context.length === 0) return [];
    const results = await axe.run(context, {resultTypes: ['violations']});
    return results.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary})),
    }));
}"""


# Opens every closed <details> (marked, to audit and close them again); says how many besides
# the account menu were opened (those are worth a screenshot of their own).
OPEN_DETAILS = """() => {
    const style = document.createElement('style');
    style.id = 'a11y-flat';
    style.textContent = 'html[data-a11y-flat] details[data-a11y-opened] > :not(summary)'
        + ' { position: static !important; }';
    document.head.append(style);
    const closed = [...document.querySelectorAll('details:not([open])')];
    closed.forEach(d => { d.open = true; d.setAttribute('data-a11y-opened', ''); });
    return closed.filter(d => !d.classList.contains('account')).length;
}"""
# Says which elements reach past the right edge of the screen (to find what makes a page too wide).
WIDEST = """() => {
    const edge = document.documentElement.clientWidth;
    const out = [...document.querySelectorAll('body *')].filter(e => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.right > edge + 0.5;
    });
    const outer = out.filter(e => !out.includes(e.parentElement));
    return outer.slice(0, 5).map(e => {
        const name = e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
            + (e.classList.length ? '.' + [...e.classList].join('.') : '');
        return name + ' ' + Math.round(e.getBoundingClientRect().right) + 'px';
    }).join(', ');
}"""
CLOSE_DETAILS = """() => {
    document.documentElement.removeAttribute('data-a11y-flat');
    document.getElementById('a11y-flat').remove();
    document.querySelectorAll('details[data-a11y-opened]').forEach(d => {
        d.open = false; d.removeAttribute('data-a11y-opened');
    });
}"""


class Audit:
    """Visits states of the studio in one browser page and collects axe's blocking findings."""

    def __init__(self, page, base: str, scheme: str, width: int | None = None) -> None:
        self.page = page
        self.base = base
        self.scheme = scheme
        self.width = width  # a phone's: no state may scroll sideways
        self.too_wide: list[str] = []
        # (rule, impact, help, help URL) -> target -> (axe's summary, the states it was seen in)
        self.findings: dict[tuple[str, ...], dict[str, tuple[str, list[str]]]] = {}
        self.states: list[str] = []

    @property
    def label(self) -> str:
        return self.scheme if self.width is None else f"{self.scheme}-phone"

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def check(self, state: str) -> None:
        """Audit the page as it is now, then its closed <details> opened."""
        page = self.page
        page.wait_for_load_state("load")
        self.states.append(state)
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        self._run(state, None)
        self._screenshot(state)
        if self.width is not None:
            wide = page.evaluate("document.scrollingElement.scrollWidth")
            if wide > self.width:
                self.too_wide.append(f"{state}: {wide}px ({page.evaluate(WIDEST)})")
        panels = page.evaluate(OPEN_DETAILS)
        if panels:
            self._screenshot(f"{state}, opened")
        # The panels float over the page (menus, popovers); over other content, axe cannot tell
        # their text's background and skips its contrast. Laid out in the flow, in their own
        # colours, they are checked like any other part of the page.
        page.evaluate("() => document.documentElement.setAttribute('data-a11y-flat', '')")
        self._run(f"{state}, <details> opened", "details[data-a11y-opened]")
        page.evaluate(CLOSE_DETAILS)

    def _run(self, state: str, scope: str | None) -> None:
        for v in self.page.evaluate(RUN_AXE, scope):
            if v["impact"] not in BLOCKING:
                continue
            rule = self.findings.setdefault((v["id"], v["impact"], v["help"], v["helpUrl"]), {})
            for node in v["nodes"]:
                summary = " ".join((node["summary"] or "").split())
                rule.setdefault(node["target"], (summary, []))[1].append(state)

    def report(self) -> str:
        """The findings, one block per rule, one line per element with where it was seen."""
        blocks = []
        for (rule, impact, help_text, url), targets in self.findings.items():
            lines = [f"{rule} ({impact}): {help_text}  [{url.split('?')[0]}]"]
            for target, (summary, states) in targets.items():
                lines.append(f"  - {target}")
                lines.append(f"      {summary[:400]}")
                lines.append(f"      on: {'; '.join(states)}")
            blocks.append("\n".join(lines))
        count = sum(len(targets) for targets in self.findings.values())
        return (
            f"axe-core found {count} critical or serious problem(s) in the {self.label} "
            f"view:\n\n" + "\n\n".join(blocks)
        )

    def _screenshot(self, state: str) -> None:
        if not SCREENSHOTS:
            return
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^a-z0-9]+", "-", state.lower()).strip("-")
        self.page.screenshot(
            path=folder / f"{self.label}-{len(self.states):02d}-{name}.png", full_page=True
        )

    def error_page(self, path: str, response) -> None:
        """Show an error page that no link reaches as the real handler renders it, from the
        live server's address (so its CSS loads): Playwright answers the request itself."""
        body = response.content

        def answer(route) -> None:
            route.fulfill(status=response.status_code, body=body, content_type="text/html")

        self.page.route(self.base + path, answer)
        self.goto(path)
        self.page.unroute(self.base + path)


def jpeg(name: str, colour: tuple[int, int, int], size: tuple[int, int] = (640, 360)) -> str:
    """A thumbnail in MEDIA_ROOT (the media view serves it), so cards look as they do in use."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.3, h * 0.2, w * 0.7, h * 0.9), fill=tuple(min(255, c + 70) for c in colour))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    relative = f"thumbnails/{name}.jpg"
    target = Path(django_settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
    return relative


def studio_rows(dana, bob) -> dict[str, Generation]:
    """One row in every state a page shows differently."""
    now = timezone.now()
    video = Path(django_settings.MEDIA_ROOT) / "videos" / "a11y.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")  # never played: preload=none
    lantern = make_gen(
        user=dana,
        user_prompt="A paper lantern rising over a still lake at dusk, reflections rippling",
        prompt="A glowing paper lantern drifts upward over a mirror-still lake at dusk.",
        expand_prompt=True,
        thumbnail_file=jpeg("lantern", (40, 60, 120)),
        video_file="videos/a11y.mp4",
        video_bytes=1_234_567,
        image_url="https://example.com/start.jpg",
    )
    lantern.liked_by.add(dana, bob)
    clouds = make_gen(
        user=dana,
        parent=lantern,
        user_prompt="The lantern drifts into the clouds",
        thumbnail_file=jpeg("clouds", (90, 90, 110)),
        video_file="videos/a11y.mp4",
    )
    # A chain as a tree: the lantern's two extensions are branches, and the moon's line goes
    # eight deep (its indentation capped on a phone), one of its links removed by its owner.
    link = make_gen(
        user=dana,
        parent=clouds,
        user_prompt="Above the clouds, the lantern meets the moon",
        thumbnail_file=jpeg("moon", (20, 20, 50)),
        video_file="videos/a11y.mp4",
    )
    make_gen(user=bob, parent=lantern, user_prompt="The lantern sinks slowly into the lake")
    for n in range(8):
        link = make_gen(
            user=dana,
            parent=None if n == 4 else link,
            parent_removed_at=now if n == 4 else None,
            kept_ancestor=link if n == 4 else None,
            user_prompt=f"Step {n + 4}: the lantern keeps climbing past the stars and beyond",
            video_file="videos/a11y.mp4",
        )
    deep = link
    return {
        "lantern": lantern,
        "clouds": clouds,
        "deep": deep,
        "fox": make_gen(
            user=bob,
            aspect_ratio="9:16",
            user_prompt="Portrait of a fox in falling snow, shallow depth of field",
            thumbnail_file=jpeg("fox", (150, 80, 30), (360, 640)),
            assets_next_at=now,
        ),  # no local copy yet: the card says "Copying the video…"
        "given_up": make_gen(
            user=dana,
            user_prompt="A kite over the dunes, its copy given up on",
            asset_error="The video's link expired and the service no longer hands out a new one.",
        ),  # "Copy again"
        "robot": make_gen(
            user=dana,
            aspect_ratio="1:1",
            user_prompt="A tiny robot watering a bonsai tree on a sunlit windowsill",
            thumbnail_file=jpeg("robot", (30, 110, 70), (480, 480)),
            video_file="videos/a11y.mp4",
        ),
        "running": make_gen(
            Status.IN_PROGRESS,
            user=dana,
            user_prompt="Time-lapse of clouds rolling over a mountain ridge",
            aspect_ratio="21:9",
            submitted_at=now - timedelta(seconds=10),
        ),
        "submitting": make_gen(
            Status.SUBMITTING, user=bob, user_prompt="Jellyfish glowing in a dark aquarium"
        ),
        "queued": make_gen(
            Status.QUEUED, user=dana, user_prompt="A cat astronaut floating past the moon"
        ),
        "waiting": make_gen(
            Status.QUEUED,
            user=bob,
            user_prompt="Vintage tram climbing a hill in Lisbon",
            next_attempt_at=now + timedelta(minutes=1),
        ),
        "failed": make_gen(
            Status.FAILED, user=dana, user_prompt="Macro shot of ink blooming in water"
        ),
        "failed_other": make_gen(
            Status.FAILED, user=bob, user_prompt="Neon koi circling a midnight pond"
        ),
        "attention": make_gen(
            Status.NEEDS_ATTENTION,
            user=dana,
            user_prompt="Drone flight through a lantern festival",
            error="No answer from the service after sending the request.",
            error_code=None,
        ),
        "timed_out": make_gen(
            Status.FAILED,
            user=dana,
            user_prompt="A heron taking off from a misty marsh",
            state="dreaming",
            error="Timed out: no progress for 10 minutes (last state 'dreaming').",
            error_code=None,
        ),  # "Check again"
        "cancelled": make_gen(
            Status.CANCELLED, user=dana, user_prompt="A sailboat in a bottle, storm inside"
        ),
    }


PHONE = {"width": 390, "height": 844}


@pytest.mark.parametrize(
    ("scheme", "phone"),
    [("light", False), ("dark", False), ("light", True), ("dark", True)],
    ids=["light", "dark", "light-phone", "dark-phone"],
)
def test_axe_finds_no_critical_or_serious_problem_on_any_page(
    browser, live_server, transactional_db, settings, tmp_path, monkeypatch, scheme, phone
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(tmp_path / "media")  # this test's thumbnails, no one else's
    started = time.monotonic()
    dana = make_user("dana", password="dana-pass-123", is_staff=True, is_superuser=True)
    bob = make_user("bob")
    # bypass_csp: axe is injected as an inline script, which the pages' own policy (rightly)
    # refuses; the pages themselves are rendered exactly as users get them.
    if phone:  # a phone's layout: its viewport meta tag applies, touch, no hover
        context = browser.new_context(
            viewport=PHONE, is_mobile=True, has_touch=True, bypass_csp=True
        )
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") == (scheme == "dark")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    audit = Audit(page, live_server.url, scheme, PHONE["width"] if phone else None)

    # --- logged out ----------------------------------------------------------------------------
    audit.goto("/accounts/login/")
    audit.check("login")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "not her password")
    page.click("button[type=submit]")
    page.locator(".alert-error").wait_for()
    audit.check("login, wrong password")
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        page.fill("input[name=username]", "mallory")
        page.fill("input[name=password]", "guess")
        page.click("button[type=submit]")
        page.wait_for_load_state("load")
        if "Too many failed log-ins" in page.content():
            break
    assert "Too many failed log-ins" in page.content()
    audit.check("locked out")

    audit.goto("/accounts/login/")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "dana-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")

    # A worker and beat "running" for the whole audit (heartbeats kept fresh for a day), so the
    # pages are audited as people see them; the no-worker banner has states of its own below.
    settings.LUMA_HEARTBEAT_STALE_AFTER = 24 * 3600
    heartbeat("worker")
    heartbeat("beat")
    audit.goto("/")

    # --- a studio with nothing in it -----------------------------------------------------------
    audit.check("gallery, empty")
    audit.goto("/jobs/")
    audit.check("jobs, empty")
    audit.goto("/usage/")
    audit.check("usage, empty")

    # --- a studio in use -----------------------------------------------------------------------
    rows = studio_rows(dana, bob)
    audit.goto("/")
    page.locator(f"#card-{rows['lantern'].pk}").wait_for()
    audit.check("gallery, cards")
    # The viewer (static/js/viewer.js): a card's detail partial in a modal dialog over the grid.
    page.locator(f"#card-{rows['lantern'].pk} .card-prompt a").click()
    page.locator("dialog.viewer[open] h1.detail-prompt").wait_for()
    audit.check("gallery, the viewer open on a video with a chain")
    # Its Boards menu opens in it (its ids are its own, not the card's behind it).
    page.locator("dialog.viewer[open] .board-btn").click()
    page.locator("dialog.viewer[open] .board-menu").wait_for()
    audit.check("gallery, the viewer's Boards menu open")
    page.locator("dialog.viewer[open] .board-btn").click()  # closed again
    page.locator("dialog.viewer[open] .board-menu").wait_for(state="detached")
    page.keyboard.press("Escape")
    page.locator("dialog.viewer[open]").wait_for(state="detached")
    page.wait_for_url(live_server.url + "/")
    # Extend a card inline: its form opens in the card, the new card works next to it.
    card = page.locator(f"#card-{rows['robot'].pk}")
    card.locator(".extend-btn").click()
    slot = page.locator(f"#extend-slot-{rows['robot'].pk}")
    slot.locator("textarea[name=user_prompt]").wait_for()
    audit.check("gallery, inline extend form")
    slot.locator("textarea[name=user_prompt]").fill("The robot waters a second tree")
    slot.locator("button[type=submit]").click()
    child = wait_for(
        lambda: Generation.objects.filter(parent=rows["robot"]).first(), 10, "the extension"
    )
    page.locator(f"#card-{child.pk} .card-pending").wait_for()
    audit.check("gallery, a working extension card and a toast")
    audit.goto("/?who=mine&liked=1&ar=16%3A9&q=lantern")
    page.locator(f"#card-{rows['lantern'].pk}").wait_for()
    audit.check("gallery, filtered")
    # The order control, and the notice a sorted gallery shows when a video finishes (it
    # polls every 2 s here, every 10 s in use).
    monkeypatch.setattr("generations.views.LIVE_EVERY", 2)
    audit.goto("/?sort=likes")
    page.locator(f"#card-{rows['lantern'].pk}").wait_for()
    audit.check("gallery, most liked first")
    make_gen(user=bob, user_prompt="A kite over the dunes at noon", completed_at=timezone.now())
    page.locator("#gallery-news .news-bar").wait_for()
    audit.check("gallery, most liked, with the new-videos notice")
    audit.goto("/?q=nothing+matches+this")
    page.locator("#gallery-results .empty").wait_for()
    audit.check("gallery, no results")

    audit.goto("/generations/new/")
    audit.check("create, blank")
    page.click("button:has-text('Generate')")
    page.locator(".has-error").first.wait_for()
    audit.check("create, errors after an empty submit")
    # Batch mode: one video per line, more aspect ratios, the live count and cost; then the
    # server's refusal of a batch over 20 (the count line in its warning colour).
    audit.goto("/generations/new/")
    page.check("input[name=batch]")
    page.fill("textarea[name=user_prompt]", "A lantern at dusk\nA fox in snow")
    page.check("input[name=more_aspect_ratios][value='9:16']")
    page.locator("#cost-count", has_text="4 videos").wait_for()
    audit.check("create, batch mode with its live cost line")
    page.fill("textarea[name=user_prompt]", "\n".join(f"shot {i}" for i in range(11)))
    page.click("button:has-text('Generate')")
    page.locator(".alert-error").wait_for()
    audit.check("create, a batch over 20 refused")
    audit.goto(f"/generations/new/?from={rows['lantern'].pk}")
    audit.check("create, generate again")
    audit.goto(f"/generations/new/?from={uuid.uuid4()}")
    audit.check("create, generate again from a row that is gone")

    for name, state in (
        ("lantern", "detail, completed with a chain and the extend form"),
        ("clouds", "detail, completed extension, deletable"),
        ("deep", "detail, the leaf of a deep chain with branches and a removed link"),
        ("fox", "detail, completed, copying, someone else's"),
        ("running", "detail, in progress"),
        ("queued", "detail, queued"),
        ("failed", "detail, failed"),
        ("given_up", "detail, completed, copy given up (Copy again)"),
        ("timed_out", "detail, timed out (Check again)"),
        ("attention", "detail, needs attention"),
    ):
        audit.goto(f"/generations/{rows[name].pk}/")
        audit.check(state)
    audit.goto(f"/generations/{rows['deep'].pk}/")
    page.click("#chain .chain-head [data-chain-play]")
    page.locator("#chain [data-chain-player]:not([hidden])").wait_for()
    audit.check("detail, a chain playing from the start")

    audit.goto("/jobs/")
    page.locator(f"#job-{rows['attention'].pk}").wait_for()
    audit.check("jobs, a row in every section")
    later = f"{int((timezone.now().timestamp() + 60) * 1_000_000)}.{uuid.UUID(int=0)}"
    audit.goto(f"/jobs/?failed={later}&finished={later}")  # paged back: the "Newest" links
    page.locator("#failed-jobs .pager").wait_for()
    audit.check("jobs, failed and finished lists paged back")

    # No worker and no beat seen: the banner on every page, then with beat alone missing.
    Heartbeat.objects.all().delete()
    audit.goto("/jobs/")
    page.locator("#process-banner").wait_for()
    audit.check("jobs, no worker and no beat running")
    heartbeat("worker")
    audit.goto("/")
    page.locator("#process-banner").wait_for()
    audit.check("gallery, no beat running")
    heartbeat("beat")

    # The account on hold: the banner on every page; an admin's buttons, the cancel panel open.
    hold.put_on_hold(HoldCause.CREDITS, "You've run out of credits", 403)
    audit.goto("/jobs/")
    page.locator("#account-hold").wait_for()
    audit.check("jobs, the account on hold (an admin's banner)")
    page.locator("#account-hold summary").click()
    page.locator("#account-hold .resolve-panel").wait_for()
    audit.check("jobs, the account on hold, cancel waiting jobs open")
    hold.lift("the accessibility test goes on")

    # Usage: a month with a chart (rows on several days), a past month, a month that is not one.
    start = money.month_window()[0]
    for day, status in ((1, Status.COMPLETED), (4, Status.COMPLETED), (4, Status.QUEUED)):
        make_gen(status, user=bob, billed_at=start + timedelta(days=day, hours=3))
    last = money.month_window(start - timedelta(days=1))[0]
    make_gen(Status.COMPLETED, user=bob, billed_at=last + timedelta(days=8))
    audit.goto("/usage/")
    page.locator("svg.chart").wait_for()
    audit.check("usage, this month with a chart (an admin sees everyone)")
    audit.goto(f"/usage/?month={last:%Y-%m}")
    audit.check("usage, a past month")
    audit.goto("/usage/?month=2026-13")
    page.locator("#usage-body .alert-error").wait_for()
    audit.check("usage, a month that is not one")
    # The account menu open: the "Notify me" toggle (shown by app.js where notifications exist).
    audit.goto("/jobs/")
    page.locator("details.account summary").click()
    page.locator("[data-notify-toggle]").wait_for()
    audit.check("account menu open, notify toggle")
    page.locator("details.account summary").click()

    # Webhooks (admins): empty, an add refused, a drawn secret shown once, the log, remove open.
    audit.goto("/team/webhooks/")
    audit.check("webhooks, none")
    page.fill("input[name=url]", "http://127.0.0.1:9/hook")
    page.click("main button:has-text('Add webhook')")
    page.locator("#hook-error").wait_for()
    audit.check("webhooks, an address refused")
    page.fill("input[name=url]", "https://93.184.215.14/lumaweb")  # public, no DNS look-up
    page.click("main button:has-text('Add webhook')")
    page.locator(".secret-once").wait_for()
    audit.check("webhooks, a drawn secret shown once")
    hook = Webhook.objects.get()
    for status, code, error in (
        (DeliveryStatus.DELIVERED, 200, ""),
        (DeliveryStatus.PENDING, 500, "answered 500"),
        (DeliveryStatus.FAILED, None, "refused: its address is not public"),
    ):
        WebhookDelivery.objects.create(
            webhook=hook,
            event="generation.completed",
            generation_id=rows["lantern"].pk,
            payload="{}",
            status=status,
            attempts=1,
            last_status_code=code,
            last_error=error,
            next_attempt_at=timezone.now() if status == DeliveryStatus.PENDING else None,
        )
    audit.goto("/team/webhooks/")
    audit.check("webhooks, a webhook and its deliveries")
    page.locator(".hook-row summary").click()
    page.locator(".hook-row .resolve-panel").wait_for()
    audit.check("webhooks, remove open")
    # The Team page (dana is an admin): members, their change panels (opened by the audit),
    # the audit log; then the add form refused with errors.
    bob.is_active = False  # a deactivated member, shown as such
    bob.save(update_fields=["is_active"])
    audit.goto("/team/")
    page.locator("#audit-log").wait_for()
    audit.check("team")
    page.fill("#add-username", "erin")
    page.fill("#add-password", "short")
    page.fill("#add-budget", "lots")
    page.click("button:has-text('Add member')")
    page.locator("#team-main .has-error").first.wait_for()
    audit.check("team, add member refused with errors")

    # Share links: the Share panel with live links (opened by the audit), the Shared links page
    # with a live, an expired and a revoked link, and the public pages a stranger sees.
    lantern = rows["lantern"]
    board = Board.objects.create(name="Lanterns for the client", created_by=dana)
    for gen in (lantern, rows["robot"]):
        BoardItem.objects.create(board=board, generation=gen)
    video_link = ShareLink.objects.create(generation=lantern, created_by=dana, show_prompts=True)
    board_link = ShareLink.objects.create(
        board=board, created_by=bob, expires_at=timezone.now() + timedelta(days=7)
    )
    ShareLink.objects.create(
        generation=lantern, created_by=dana, expires_at=timezone.now() - timedelta(days=1)
    )
    ShareLink.objects.create(generation=rows["robot"], created_by=dana, revoked_at=timezone.now())
    # a live link to bob's private board: the admin's row names neither, keeps Revoke
    hidden_board = Board.objects.create(name="Bob's private board", created_by=bob)
    ShareLink.objects.create(board=hidden_board, created_by=bob)
    audit.goto(f"/generations/{lantern.pk}/")
    audit.check("detail, the Share panel with live links")
    audit.goto("/shares/")
    page.locator(".share-row.is-revoked").wait_for()
    assert page.locator(".share-row", has_text="a private board of bob").count() == 1
    audit.check("shared links (an admin's: everyone's, one to a private board hidden)")
    audit.goto(f"/s/{video_link.token}/")
    audit.check("share link, a video with its prompt (public)")
    audit.goto(f"/s/{board_link.token}/")
    audit.check("share link, a board (public)")
    audit.goto("/s/" + "x" * 43 + "/")
    audit.check("share link, not available (public)")

    audit.goto("/accounts/password_change/")
    audit.check("password change")
    page.fill("input[name=old_password]", "not her password")
    page.fill("input[name=new_password1]", "short")
    page.fill("input[name=new_password2]", "different")
    page.click("main button[type=submit]")
    page.locator(".has-error").first.wait_for()
    audit.check("password change, errors")
    page.fill("input[name=old_password]", "dana-pass-123")
    page.fill("input[name=new_password1]", "a-new-pass-for-dana-42")
    page.fill("input[name=new_password2]", "a-new-pass-for-dana-42")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/password_change/done/$"))
    audit.check("password changed")

    audit.goto(f"/generations/{uuid.uuid4()}/")
    assert "Not found" in page.title()
    audit.check("404")
    # No view of the studio refuses with 403 and no test can make a 500 on purpose: these
    # pages are shown as Django's handlers render them, for someone logged in.
    request = RequestFactory().get("/")
    request.user = dana
    audit.error_page("/a11y-403/", permission_denied(request, PermissionDenied()))
    audit.check("403")
    audit.error_page("/a11y-500/", server_error(RequestFactory().get("/")))
    audit.check("500")
    audit.error_page("/a11y-503/", outage_response(RequestFactory().get("/")))
    audit.check("503 (the database out of reach)")

    context.close()
    seconds = time.monotonic() - started
    print(f"[{audit.label}] {len(audit.states)} states audited in {seconds:.1f}s")
    assert errors == [], errors
    problems = [audit.report()] if audit.findings else []
    if audit.too_wide:
        problems.append(
            f"wider than a {PHONE['width']} px phone (it scrolls sideways):\n  - "
            + "\n  - ".join(audit.too_wide)
        )
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.mark.parametrize(
    ("scheme", "phone"),
    [("light", False), ("dark", False), ("light", True), ("dark", True)],
    ids=["light", "dark", "light-phone", "dark-phone"],
)
def test_axe_finds_no_critical_or_serious_problem_in_the_frame_keyframe_states(
    browser, live_server, transactional_db, settings, tmp_path, scheme, phone
):
    """Issue 10 #7: the detail page's "Use a frame" picker (as loaded, then scrubbed) and the
    create page with keyframe previews (a frame, a dropped file, a URL; then a form error that
    keeps the frame). Its own test, so the frame states need a real video (the simulator's)."""
    from simulator.media import Scene, render

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.LUMA_DEMO_MODE = True
    settings.LUMA_HEARTBEAT_STALE_AFTER = 24 * 3600
    heartbeat("worker")
    heartbeat("beat")
    videos = Path(settings.MEDIA_ROOT) / "videos"
    videos.mkdir(parents=True)
    render(
        Scene(prompt="a lantern over a lake", seconds=1.0), videos / "clip.mp4", tmp_path / "t.jpg"
    )
    make_user("dana", password="dana-pass-123")
    gen = make_gen(
        user_prompt="A paper lantern rising over a still lake", video_file="videos/clip.mp4"
    )
    viewport = PHONE if phone else {"width": 1280, "height": 860}
    context = browser.new_context(
        viewport=viewport, is_mobile=phone, has_touch=phone, bypass_csp=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    audit = Audit(page, live_server.url, scheme, PHONE["width"] if phone else None)
    audit.goto("/accounts/login/")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "dana-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")

    audit.goto(f"/generations/{gen.pk}/")
    page.locator("#frames [data-frame-image]").wait_for()
    audit.check("detail, use a frame (the last)")
    page.locator("#frame-scrub").focus()
    page.keyboard.press("Home")
    page.locator("#frame-time", has_text="Frame 1 of 24").wait_for()
    audit.check("detail, use a frame, scrubbed to the first")
    page.click("button:has-text('End a new video on this frame')")
    page.locator("[data-keyframe=end] [data-keyframe-preview]:not([hidden])").wait_for()
    page.evaluate(
        """() => {
            const transfer = new DataTransfer();
            const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMB'
                + 'AQDJ/pLvAAAAAElFTkSuQmCC';
            const bytes = Uint8Array.from(atob(png), c => c.charCodeAt(0));
            transfer.items.add(new File([bytes], 'start.png', {type: 'image/png'}));
            document.querySelector('[data-keyframe=start]').dispatchEvent(
                new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }"""
    )
    page.locator("[data-keyframe=start] [data-keyframe-preview]:not([hidden])").wait_for()
    audit.check("create, a frame and a dropped file previewed")
    page.click("button:has-text('Clear the start keyframe')")
    page.fill("#id_image_url", f"{live_server.url}/generations/{gen.pk}/frame.jpg")
    page.locator("[data-keyframe=start] [data-keyframe-preview]:not([hidden])").wait_for()
    audit.check("create, a URL previewed")
    page.fill("#id_image_url", "")
    page.click("button:has-text('Generate')")  # no prompt: refused, the frame kept
    page.locator(".has-error").first.wait_for()
    audit.check("create, an error keeps the frame")
    assert page.locator("#id_image_end_frame").is_checked()
    context.close()
    assert errors == [], errors
    problems = [audit.report()] if audit.findings else []
    if audit.too_wide:
        problems.append("wider than a phone:\n  - " + "\n  - ".join(audit.too_wide))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.mark.parametrize(
    ("scheme", "phone"),
    [("light", False), ("dark", False), ("light", True), ("dark", True)],
    ids=["light", "dark", "light-phone", "dark-phone"],
)
def test_axe_finds_no_critical_or_serious_problem_on_the_boards_pages(
    browser, live_server, transactional_db, settings, tmp_path, scheme, phone
):
    """/boards/ (none yet, then mine and the team's), a board empty and filled (its owner's
    tools, rename open), a card's board menu open, the no-JavaScript menu page and a board
    someone else shared (no tools)."""
    from generations import boards

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.LUMA_HEARTBEAT_STALE_AFTER = 24 * 3600
    dana = make_user("dana", password="dana-pass-123")
    bob = make_user("bob")
    heartbeat("worker")
    heartbeat("beat")
    if phone:
        context = browser.new_context(
            viewport=PHONE, is_mobile=True, has_touch=True, bypass_csp=True
        )
    else:
        context = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    audit = Audit(page, live_server.url, scheme, PHONE["width"] if phone else None)
    audit.goto("/accounts/login/")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "dana-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")

    audit.goto("/boards/")
    audit.check("boards, none yet")
    page.click("button:has-text('Make board')")
    page.locator("#board-name-error").wait_for()
    audit.check("boards, a name refused")
    page.fill("#board-name", "A board with a rather long name for a small phone screen")
    page.click("button:has-text('Make board')")
    page.locator("h1", has_text="rather long name").wait_for()
    audit.check("board, empty (owner)")
    board = boards.visible(dana).get()

    rows = studio_rows(dana, bob)
    for name in ("lantern", "fox", "robot", "running"):
        boards.add(board, rows[name], dana)
    theirs = boards.create_board(bob, "Bob's shared picks", shared=True)
    boards.add(theirs, rows["fox"], bob)
    audit.goto(f"/boards/{board.pk}/")
    page.locator(f"#card-{rows['lantern'].pk}").wait_for()
    audit.check("board, filled (owner: tools, rename and delete)")
    audit.goto("/boards/")
    audit.check("boards, mine and the team's")
    audit.goto(f"/boards/{theirs.pk}/")
    audit.check("board, someone else's shared board")

    audit.goto("/")
    card = page.locator(f"#card-{rows['robot'].pk}")
    card.locator(".board-btn").click()
    page.locator(f"#board-toggle-{rows['robot'].pk}-{board.pk}").click()
    page.locator(f"#board-toggle-{rows['robot'].pk}-{theirs.pk}").wait_for()
    audit.check("gallery, a card's board menu open")
    audit.goto(f"/generations/{rows['lantern'].pk}/")
    page.locator(f"#board-btn-{rows['lantern'].pk}").click()
    page.locator(f"#board-toggle-{rows['lantern'].pk}-{board.pk}").wait_for()
    audit.check("detail, the board menu open")
    audit.goto(f"/generations/{rows['lantern'].pk}/boards/?next=/")
    audit.check("a video's boards, without JavaScript")

    context.close()
    assert errors == [], errors
    problems = [audit.report()] if audit.findings else []
    if audit.too_wide:
        problems.append("wider than a phone:\n  - " + "\n  - ".join(audit.too_wide))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
