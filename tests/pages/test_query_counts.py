"""The gallery and the dashboard cost the same number of SQL queries with 10 rows as with 200:
authors are joined, likes and extension counts are subqueries, nothing is fetched per card."""

from __future__ import annotations

import re

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations import actions, audit
from generations.models import AuditAction, Role, Status
from tests.factories import make_user
from tests.pages.conftest import htmx, make_gen

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


PAGES = [
    ("/", {}),
    ("/?liked=1&who=mine", {}),
    ("/?ar=16:9&q=prompt", {}),
    ("/", htmx("gallery-results")),
    ("/jobs/", {}),
    ("/jobs/", htmx("jobs")),
]


def test_gallery_and_dashboard_queries_do_not_grow_with_rows(client, user, other):
    add_rows(10, user, other)
    small = {url + str(h): queries_for(client, url, **h) for url, h in PAGES}
    add_rows(190, user, other)
    large = {url + str(h): queries_for(client, url, **h) for url, h in PAGES}
    assert small == large
    # A ceiling, beside the constancy above: session, user, the member row (role), the hold
    # banner, the running badge, the sections, the capacity line for "N ahead"...
    assert max(large.values()) <= 14, large


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
    assert max(large) <= 10, large
