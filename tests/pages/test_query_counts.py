"""The gallery and the dashboard cost the same number of SQL queries with 10 rows as with 200:
authors are joined, likes and extension counts are subqueries, nothing is fetched per card."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations.models import Status
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
