"""Issue 11, point 3, on the pages: every amount is named in the provider's unit ("tokens" for
UmamiAI, as before; "credits" for Luma's API, with what a credit is worth), the create page's
cost line follows the chosen model, resolution and duration, and the usage page costs as many
queries in credits as in tokens."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from generations.models import Generation, Status
from tests.factories import make_user
from tests.pages.conftest import log_in, make_gen
from tests.test_money_units import COST, use_priced_luma


@pytest.fixture(autouse=True)
def _cost(settings) -> None:
    settings.LUMA_TOKENS_PER_GENERATION = COST


@pytest.fixture
def priced_luma(settings, monkeypatch):
    return use_priced_luma(settings, monkeypatch)


@pytest.fixture
def boss(db):
    return make_user("boss", is_superuser=True, is_staff=True)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def test_the_usage_page_and_api_count_in_credits_with_luma(boss, priced_luma):
    make_gen(Status.COMPLETED, user=boss, unit_cost=320)
    make_gen(Status.COMPLETED, user=boss, unit_cost=110)
    client = login(boss)
    page = text(client.get("/usage/"))
    assert "Credits (1 credit = 1 US cent) per calendar month (UTC)." in page
    assert "One generation with the default model, resolution and duration costs 320 credits." in (
        page
    )
    assert "430 credits spent by the team" in page
    assert "tokens" not in page.replace("API tokens", "")
    usage = client.get("/api/v1/usage").json()
    assert usage["unit"] == "credits"
    assert usage["team"]["spent"] == 430
    assert usage["cost_per_generation"] == 320
    assert usage["unpriced"] == 0
    assert 'id="usage-unpriced"' not in client.get("/usage/").content.decode()


def test_jobs_older_than_per_row_prices_are_named_not_counted_in_credits(boss, priced_luma):
    make_gen(Status.COMPLETED, user=boss)  # an UmamiAI job, priced in tokens
    make_gen(Status.COMPLETED, user=boss)
    make_gen(Status.COMPLETED, user=boss, unit_cost=320)
    client = login(boss)
    page = text(client.get("/usage/"))
    assert (
        "2 of these generations were made before lumaweb priced each job (UmamiAI's tokens): "
        "not counted in credits." in page
    )
    assert "320 credits spent by the team" in page
    usage = client.get("/api/v1/usage").json()
    assert (usage["unpriced"], usage["team"]["spent"], usage["team"]["generations"]) == (2, 320, 3)


def test_the_usage_page_and_api_count_in_tokens_with_umamiai(boss):
    make_gen(Status.COMPLETED, user=boss, unit_cost=1_000)
    make_gen(Status.COMPLETED, user=boss)  # older than per-row prices
    client = login(boss)
    page = text(client.get("/usage/"))
    assert f"Tokens per calendar month (UTC). One generation costs {COST:,} tokens." in page
    assert f"{COST + 1_000:,} tokens spent by the team" in page
    assert client.get("/api/v1/usage").json()["unit"] == "tokens"


def test_the_usage_page_costs_as_many_queries_in_credits_as_in_tokens(
    boss, team_row, settings, monkeypatch
):
    for i in range(6):
        make_gen(Status.COMPLETED, user=boss, unit_cost=100 * i)
    client = login(boss)

    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    urls = ["/usage/", "/usage.csv", "/api/v1/usage"]
    tokens = {url: count(url) for url in urls}
    use_priced_luma(settings, monkeypatch)
    assert "credits spent by the team" in text(client.get("/usage/"))
    assert {url: count(url) for url in urls} == tokens


def test_the_create_page_carries_the_price_table_and_names_credits(db, priced_luma):
    client = login(make_user("carol"))
    body = client.get("/generations/new/").content.decode()
    assert 'data-unit="credits"' in body
    assert 'data-cost="320"' in body
    assert 'id="cost-total">320 credits</strong>' in body
    table = json.loads(
        re.search(r'<script id="price-table" type="application/json">(.*?)</script>', body)[1]
    )
    assert table["prices"]["ray-2|1080p|5s"] == 700
    assert table["default"]["model"] == "ray-2"
    assert "Credits: 1 credit = 1 US cent" in text(client.get("/generations/new/"))


def test_the_create_page_reads_as_before_with_umamiai(db):
    body = login(make_user("carol")).get("/generations/new/").content.decode()
    assert 'id="price-table"' not in body
    assert f'data-cost="{COST}" data-unit="tokens"' in body
    assert f'id="cost-total">{COST:,} tokens</strong>' in body
    assert "US cent" not in body


def test_jobs_extend_and_the_second_charge_warning_name_credits(db, priced_luma):
    carol = make_user("carol")
    client = login(carol)
    jobs = text(client.get("/jobs/"))
    assert (
        "Each job costs credits (1 credit = 1 US cent) by its model, resolution and duration: "
        "320 with the defaults." in jobs
    )
    done = make_gen(Status.COMPLETED, user=carol, unit_cost=320)
    assert "Extend 320 credits" in text(client.get(f"/generations/{done.pk}/"))
    unsure = make_gen(Status.NEEDS_ATTENTION, user=carol, unit_cost=4_321)
    page = text(client.get(f"/generations/{unsure.pk}/"))
    assert "may charge a second time (4,321 credits)" in page


def test_jobs_extend_and_the_second_charge_warning_name_tokens_as_before(db):
    carol = make_user("carol")
    client = login(carol)
    assert f"Each job costs {COST:,} tokens." in text(client.get("/jobs/"))
    unsure = make_gen(Status.NEEDS_ATTENTION, user=carol)  # older than per-row prices
    assert f"may charge a second time ({COST:,} tokens)" in text(
        client.get(f"/generations/{unsure.pk}/")
    )


def test_the_team_pages_budget_form_names_the_unit(boss, priced_luma):
    page = text(login(boss).get("/team/"))
    assert "Team budget (credits a month; empty for no limit)" in page
    assert "Monthly budget (credits)" in page


@pytest.mark.browser
def test_the_cost_line_follows_the_chosen_options_as_you_type(
    browser, live_server, priced_luma, settings
):
    """The create form's options come with the Luma form (another change); a select named like
    them is enough for the cost line, which reads any field of that name."""
    make_user("erin", password="s3cret-pass!")
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, live_server.url, "erin", "s3cret-pass!")
        page.goto(live_server.url + "/generations/new/")
        assert page.locator("#cost-total").inner_text() == "320 credits"
        page.evaluate(
            """() => {
              const select = document.createElement("select");
              select.name = "resolution";
              for (const value of ["720p", "1080p"]) select.add(new Option(value, value));
              document.querySelector("form.create").prepend(select);
            }"""
        )
        page.select_option("select[name=resolution]", "1080p")
        assert page.locator("#cost-total").inner_text() == "700 credits"
        page.check("input[name=batch]")
        page.fill("textarea[name=user_prompt]", "a crane\nits shadow")
        assert page.locator("#cost-count").inner_text().startswith("2 videos · 1,400 credits")
    finally:
        context.close()
    assert Generation.objects.count() == 0
