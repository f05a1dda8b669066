"""The gallery, the dashboard and the usage page cost the same number of SQL queries with 10 rows
as with 200: authors are joined, likes and extension counts are subqueries, nothing is fetched
per card; usage is summed in the database, per day and person."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations import actions, audit, money
from generations.models import AuditAction, Heartbeat, Role, Status
from tests.factories import heartbeat, make_user
from tests.pages.conftest import htmx, make_gen

pytestmark = pytest.mark.usefixtures("team_row")

STATUSES = [
    Status.COMPLETED,
    Status.QUEUED,
    Status.IN_PROGRESS,
    Status.SUBMITTING,
    Status.FAILED,
    Status.NEEDS_ATTENTION,
    Status.CANCELLED,
]


def add_rows(n: int, user, other) -> None:
    for i in range(n):
        owner = user if i % 2 else other
        gen = make_gen(STATUSES[i % len(STATUSES)], user=owner)
        if gen.status == Status.COMPLETED:
            gen.liked_by.add(user)
            if i % 3 == 0:
                make_gen(Status.COMPLETED, user=owner, parent=gen)


def queries_for(client, url: str, **headers) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **headers)
    assert response.status_code in (200, 286), (url, response.status_code)
    return len(ctx.captured_queries)


OLDER = (
    f"{int((timezone.now().timestamp() + 3600) * 1_000_000)}.ffffffff-0000-0000-0000-000000000000"
)
PAGES = [
    ("/", {}),
    ("/?liked=1&who=mine", {}),
    ("/?ar=16:9&q=prompt", {}),
    ("/", htmx("gallery-results")),
    ("/?sort=likes", {}),
    ("/?sort=oldest&q=test+prompt", htmx("gallery-results")),
    ("/jobs/", {}),
    ("/jobs/", htmx("jobs")),
    ("/usage/", {}),
    ("/usage/", htmx("usage-body")),
    ("/usage.csv", {}),
    ("/api/v1/usage", {}),
    # The Failed and Recently finished lists paged back to a moment (an "Older" link).
    (f"/jobs/?failed={OLDER}&finished={OLDER}", {}),
    (f"/jobs/?failed={OLDER}", htmx("jobs")),
]


def test_gallery_and_dashboard_queries_do_not_grow_with_rows(client, user, other):
    add_rows(10, user, other)
    small = {url + str(h): queries_for(client, url, **h) for url, h in PAGES}
    add_rows(190, user, other)
    large = {url + str(h): queries_for(client, url, **h) for url, h in PAGES}
    assert small == large
    # A ceiling, beside the constancy above: session, user, the member row (role), the hold
    # banner, the no-worker banner, the running badge (and its notification cursor), the
    # sections (each paged list with its cursor), the capacity line...; since issue 12 the
    # sections' counts, and Running as two index ranges (submitting, in progress): 17.
    assert max(large.values()) <= 17, {k: v for k, v in large.items() if v > 12}


def test_gallery_next_page_query_count_is_constant(client, user, other):
    for i in range(80):
        make_gen(user=user if i % 2 else other).liked_by.add(user)
    html = client.get("/").content.decode()

    url = re.search(r'id="more"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    first = queries_for(client, url, **htmx("more"))
    html2 = client.get(url, **htmx("more")).content.decode()
    url2 = re.search(r'id="more"[^>]*hx-get="([^"]+)"', html2).group(1).replace("&amp;", "&")
    assert queries_for(client, url2, **htmx("more")) == first


def test_the_grid_watch_costs_the_same_for_5_cards_as_for_50(client, user, other):
    def watch_url(n: int) -> str:
        gens = [
            make_gen(Status.COMPLETED, user=user if i % 2 else other, assets_next_at=timezone.now())
            for i in range(n)
        ]
        return "/generations/cards/?" + "&".join(f"watch={gen.pk}.stale" for gen in gens)

    few, many = watch_url(5), watch_url(50)
    assert queries_for(client, few, **htmx("grid-watch")) == queries_for(
        client, many, **htmx("grid-watch")
    )
    answer = client.get(many, **htmx("grid-watch")).content.decode()
    assert answer.count('<article class="card') == 50  # every stale card was rendered


def test_the_gallerys_poll_costs_the_same_with_3_videos_as_with_30(client, user, other):
    """The live gallery's one poll: "nothing new" (204) and an answer with new videos and a
    changing card cost the same whatever the number of videos."""
    from urllib.parse import urlencode

    def poll(url: str, state: list[tuple[str, str]], watch: list[str]) -> tuple[int, int]:
        query = urlencode([*state, *(("watch", value) for value in watch)])
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"{url}&{query}", **htmx("grid-watch"))
        return response.status_code, len(ctx.captured_queries)

    def costs() -> list[tuple[int, int]]:
        html = client.get("/?who=mine").content.decode()
        block = re.search(r'<div id="grid-live"[^>]*>(.*?)</div>', html, re.S).group(1)
        state = re.findall(r'name="([^"]+)" value="([^"]*)"', block)
        watch = re.findall(r'name="watch" value="([^"]+)"', html)
        url = re.search(r'id="grid-watch"[^>]*hx-get="([^"]+)"', html).group(1)
        assert url == "/generations/cards/?fast=1"  # a card is changing: the 2 s pace
        quiet = poll(url, state, watch)
        for owner in (user, other, user):
            make_gen(user=owner, completed_at=timezone.now(), assets_next_at=timezone.now())
        return [quiet, poll(url, state, watch)]

    add_rows(3, user, other)
    make_gen(user=user, assets_next_at=timezone.now())  # a card the page watches
    few = costs()
    add_rows(27, user, other)
    assert costs() == few
    (quiet, quiet_queries), (news, news_queries) = few
    assert quiet == 204 and news == 200
    # Session, user, the newest finished video, the watched cards; then the new ones, and
    # what a card asks (may this person spend?).
    assert quiet_queries <= 4 and news_queries <= 6, few


def test_an_admins_usage_page_csv_and_api_cost_the_same_with_3_people_as_with_30(db):
    boss = make_user("boss", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(boss)
    start = money.month_window()[0]
    last = money.month_window(start - timedelta(days=1))[0]
    urls = ["/usage/", f"/usage/?month={last:%Y-%m}", "/usage.csv", "/api/v1/usage"]

    def add(people: int, rows: int) -> None:
        users = [make_user(f"person{people}-{i}") for i in range(people)]
        for i in range(rows):
            when = (start if i % 3 else last) + timedelta(days=i % 27, hours=i % 24)
            make_gen(STATUSES[i % len(STATUSES)], user=users[i % people], billed_at=when)

    add(3, 10)
    small = {url: queries_for(client, url) for url in urls}
    add(27, 300)
    large = {url: queries_for(client, url) for url in urls}
    assert small == large
    # Session, user, the member row, the team's budget, the month by day (2), the months with
    # usage (2), the badge and its notification cursor, the hold banner and the no-worker
    # banner: 12 for the page.
    assert max(large.values()) <= 12, large


def test_the_no_worker_banner_costs_one_query_shown_or_not(client, user, other):
    """The banner's check (which worker and beat were seen in the last minute) is one query on
    every page, whether it finds them or not."""
    add_rows(10, user, other)
    plain = [url for url, headers in PAGES if not headers]
    without = {url: queries_for(client, url) for url in plain}  # no heartbeat: banner shown
    assert 'id="process-banner"' in client.get("/").content.decode()
    heartbeat("worker")
    heartbeat("beat")
    assert 'id="process-banner"' not in client.get("/").content.decode()
    assert {url: queries_for(client, url) for url in plain} == without
    with CaptureQueriesContext(connection) as ctx:
        client.get("/jobs/")
    table = Heartbeat._meta.db_table
    assert sum(table in q["sql"] for q in ctx.captured_queries) == 1


def _add_hooks(n: int) -> None:
    from generations.models import DeliveryStatus, Webhook, WebhookDelivery

    for i in range(n):
        hook = Webhook.objects.create(url=f"https://hooks.example.com/{i}", secret="s" * 20)
        for status in DeliveryStatus.values:
            WebhookDelivery.objects.create(
                webhook=hook,
                event="generation.completed",
                generation_id=make_gen().pk,
                payload="{}",
                status=status,
            )


def test_the_webhooks_page_costs_the_same_for_2_webhooks_as_for_20(client, user, settings):
    user.is_superuser = True
    user.save()
    _add_hooks(2)
    few = queries_for(client, "/team/webhooks/")
    _add_hooks(18)
    assert queries_for(client, "/team/webhooks/") == few
    assert queries_for(client, "/team/webhooks/", **htmx("webhooks")) <= few


def test_the_team_page_costs_the_same_with_3_people_as_with_30(db, settings):
    """Members with their roles (joined), this month's usage (two aggregates), the team row,
    one page of the audit log."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # 30 people
    boss = make_user("boss")
    actions.set_member(None, boss, role=Role.ADMIN)
    client = Client()
    client.force_login(boss)

    def add_people(start: int, n: int) -> None:
        for i in range(start, start + n):
            person = make_user(f"person{i:02d}", is_active=bool(i % 4))
            actions.set_member(boss, person, budget=1_000_000 * i if i % 2 else None)
            make_gen(STATUSES[i % len(STATUSES)], user=person)
            audit.record(boss, AuditAction.TEAM_BUDGET, f"entry {i}")

    add_people(0, 3)
    small = [queries_for(client, "/team/"), queries_for(client, "/team/", **htmx("audit-log"))]
    add_people(3, 27)
    large = [queries_for(client, "/team/"), queries_for(client, "/team/", **htmx("audit-log"))]
    assert small == large
    # The page's own (people with their member rows, the month (2), the team, the audit page)
    # beside what every page costs (session, user, role, hold, no-worker banner, badge cursor).
    assert max(large) <= 12, large


def test_a_board_page_costs_the_same_with_2_videos_as_with_20(client, user, other):
    """The board with its count and cover (one query), its cards with authors, likes and counts
    (one query), whether the person may manage it; the boards list and the API alike."""
    from generations import boards

    board = boards.create_board(user, "Picks", shared=True)
    boards.create_board(other, "Theirs", shared=True)

    def fill(n: int) -> None:
        for i in range(n):
            gen = make_gen(STATUSES[i % len(STATUSES)], user=user if i % 2 else other)
            gen.liked_by.add(user)
            boards.add(board, gen, other)

    urls = [
        f"/boards/{board.pk}/",
        "/boards/",
        "/api/v1/boards",
        f"/api/v1/boards/{board.pk}",
    ]
    fill(2)
    few = {url: queries_for(client, url) for url in urls}
    fill(18)
    many = {url: queries_for(client, url) for url in urls}
    assert few == many
    # Session, user, the board (count and cover), its cards, the member row (may spend), the
    # hold banner, the no-worker banner, the running badge and its cursor, the capacity line a
    # queued card reads (3), and the Share panel's live links (1): 13, and no query per card.
    assert many[f"/boards/{board.pk}/"] <= 13, many
    assert many["/boards/"] <= 8 and many[f"/api/v1/boards/{board.pk}"] <= 4, many


def test_the_detail_page_of_a_chain_costs_the_same_20_deep_with_branches_as_3_deep(client, user):
    """The chain is read as one tree in one query (a recursive CTE), not a query per level."""

    def chain(depth: int):
        link = root = make_gen(user=user)
        middle = None
        for i in range(depth):
            link = make_gen(user=user, parent=link, video_file=f"videos/{i}.mp4")
            if i % 3 == 0:
                make_gen(user=user, parent=link)  # a branch off the main line
            if i == depth // 2:
                middle = link
        return root, middle, link

    shallow, deep = chain(3), chain(20)
    for small, large in zip(shallow, deep, strict=True):
        few = queries_for(client, f"/generations/{small.pk}/")
        many = queries_for(client, f"/generations/{large.pk}/")
        assert few == many, (small.user_prompt, few, many)
    page = client.get(f"/generations/{deep[2].pk}/").content.decode()
    assert page.count('class="chain-card"') == 21 + 7  # the main line and its 7 branches
    assert many <= 14, many


# --- issue 12, point 2: live pages at 100,000 rows ------------------------------------------------
def _chain(depth: int, user) -> str:
    """A finished video extended ``depth`` times; the detail page of its last extension."""
    parent = make_gen(Status.COMPLETED, user=user)
    for _ in range(depth):
        parent = make_gen(Status.COMPLETED, user=user, parent=parent, kind="extend")
    return f"/generations/{parent.pk}/"


def test_a_chains_detail_page_costs_the_same_at_depth_2_as_at_20(client, user):
    shallow, deep = _chain(2, user), _chain(20, user)
    assert queries_for(client, shallow) == queries_for(client, deep)
    assert queries_for(client, shallow, **htmx("live")) == queries_for(client, deep, **htmx("live"))


def test_a_deep_gallery_page_is_an_index_range(client, user, other):
    """The "Load more" keyset carries a redundant ``completed_at`` bound beside its exact OR:
    the range an index scan starts at, so a page far down costs what the first one does."""
    for i in range(30):
        make_gen(Status.COMPLETED, user=user if i % 2 else other)
    html = client.get("/").content.decode()
    url = re.search(r'id="more"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    for sort in ("", "&sort=oldest"):
        with CaptureQueriesContext(connection) as ctx:
            client.get(url + sort, **htmx("more"))
        page = [
            q["sql"]
            for q in ctx.captured_queries
            if 'ORDER BY "generations_generation"' in q["sql"]
        ]
        assert page and re.search(r'"completed_at" [<>]= ', page[-1]), page
