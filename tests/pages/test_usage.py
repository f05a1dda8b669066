"""Issue 8, the Usage page, its CSV and /api/v1/usage: a month's spending per person and for
the team, admins seeing everyone and anyone else their own line and the team's totals."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.test import Client

from generations import actions, money
from generations.models import ApiToken, DeletedSpending, Role, Status
from tests.factories import make_user
from tests.pages.conftest import htmx, make_gen

COST = 500_000


@pytest.fixture(autouse=True)
def _cost(settings) -> None:
    settings.LUMA_TOKENS_PER_GENERATION = COST


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def at(day: int, hour: int = 12):
    return money.month_window()[0] + timedelta(days=day - 1, hours=hour)


def last_month():
    return money.month_window(money.month_window()[0] - timedelta(days=1))[0]


@pytest.fixture
def team(db):
    """An admin, two creators (one with a budget), a viewer, and a month of rows."""
    people = {
        "boss": make_user("boss", is_superuser=True, is_staff=True),
        "carol": make_user("carol"),
        "dave": make_user("dave"),
        "vera": make_user("vera"),
    }
    actions.set_member(None, people["carol"], budget=4 * COST)
    actions.set_member(None, people["vera"], role=Role.VIEWER)
    actions.set_team_budget(None, 10 * COST)
    carol, dave = people["carol"], people["dave"]
    make_gen(Status.COMPLETED, user=carol, billed_at=at(2))
    make_gen(Status.NEEDS_ATTENTION, user=carol, remote_id=None, billed_at=at(3))
    make_gen(Status.QUEUED, user=carol, billed_at=at(3))
    make_gen(Status.FAILED, user=carol, state="failed", billed_at=at(3))
    make_gen(Status.COMPLETED, user=dave, billed_at=at(2))
    make_gen(Status.COMPLETED, user=dave, billed_at=at(5))
    DeletedSpending.objects.create(user=dave, billed_at=at(5), spent=1)
    make_gen(Status.COMPLETED, user=dave, billed_at=last_month() + timedelta(days=9))
    return people


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- the page -------------------------------------------------------------------------------------
def test_a_creator_sees_her_own_line_and_the_teams_totals_and_no_one_elses(team):
    response = login(team["carol"]).get("/usage/")
    assert response.status_code == 200
    page = text(response)
    assert "carol" in page and "dave" not in page and "vera" not in page
    assert "1,000,000" in page  # her spent: one confirmed, one possibly charged
    assert "500,000 possibly charged" in page
    assert "2,500,000" in page  # the team's spent: carol 2, dave 3 (one deleted)
    assert '2,000,000</span><span class="stat-l">left of the team\'s 5,000,000' in page
    assert "an admin sees everyone" in page
    assert 'role="img"' in page and '<title id="usage-chart-title">' in page


def test_an_admin_sees_everyone_with_roles_budgets_and_what_is_left(team):
    page = text(login(team["boss"]).get("/usage/"))
    for name in ("boss", "carol", "dave", "vera"):
        assert f'<th scope="row">{name}' in page
    carol_row = re.search(r'<th scope="row">carol.*?</tr>', page).group(0)
    assert "Creator" in carol_row and "2,000,000" in carol_row  # her budget
    assert '<td class="num">500,000</td> <td class="num">4</td>' in carol_row  # left; generations
    assert "no limit" in re.search(r'<th scope="row">dave.*?</tr>', page).group(0)
    assert "Viewer" in re.search(r'<th scope="row">vera.*?</tr>', page).group(0)


def test_a_past_month_shows_that_month_and_says_budgets_are_todays(team):
    month = f"{last_month():%Y-%m}"
    page = text(login(team["boss"]).get(f"/usage/?month={month}"))
    dave_row = re.search(r'<th scope="row">dave.*?</tr>', page).group(0)
    assert '<td class="num">500,000' in dave_row and '<td class="num">1</td>' in dave_row
    assert f'<option value="{month}" selected>' in page
    assert "Budgets are today's" in page


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-13", "the month is 01 to 12"),
        ("last-month", "write it as YYYY-MM"),
        ("9999-01", "has not begun yet"),
        ("<b>x</b>", "write it as YYYY-MM"),
    ],
)
def test_a_bad_month_says_why_and_shows_this_month(team, value, words):
    response = login(team["carol"]).get("/usage/", {"month": value})
    assert response.status_code == 400
    page = text(response)
    assert words in page and "Showing this month instead." in page
    assert "<b>x</b>" not in page  # what was sent is shown escaped
    assert f'<option value="{money.month_window()[0]:%Y-%m}" selected>' in page


def test_the_month_picker_answers_htmx_with_the_body_alone(team):
    month = f"{last_month():%Y-%m}"
    response = login(team["carol"]).get(f"/usage/?month={month}", **htmx("usage-body"))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="usage-body"') and "<html" not in body
    assert f"{last_month():%B %Y}" in body


def test_the_top_nav_links_to_usage_for_everyone_signed_in(team):
    for name in ("vera", "carol", "boss"):
        page = login(team[name]).get("/").content.decode()
        assert 'href="/usage/"' in page
    assert Client().get("/usage/").status_code == 302  # strangers log in first


def test_a_month_with_nothing_says_so_instead_of_an_empty_chart(db):
    page = text(login(make_user("carol")).get("/usage/"))
    assert "Nothing was spent or reserved in" in page and 'role="img"' not in page


# --- the CSV --------------------------------------------------------------------------------------
def rows_of(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_csv_holds_the_lines_the_reader_may_see_and_the_team(team):
    month = f"{money.month_window()[0]:%Y-%m}"
    response = login(team["carol"]).get("/usage.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (f'attachment; filename="lumaweb-usage-{month}.csv"')
    rows = rows_of(response)
    assert [row["user"] for row in rows] == ["carol", "(team)"]
    carol, team_row = rows
    assert carol == {
        "month": month,
        "user": "carol",
        "role": "creator",
        "budget": "2000000",
        "spent": "1000000",
        "possibly_charged": "500000",
        "reserved": "500000",
        "refunded": "500000",
        "remaining": "500000",
        "generations": "4",
    }
    assert team_row["spent"] == "2500000" and team_row["budget"] == "5000000"

    admin_rows = rows_of(login(team["boss"]).get("/usage.csv"))
    assert [row["user"] for row in admin_rows] == ["boss", "carol", "dave", "vera", "(team)"]
    assert admin_rows[2]["budget"] == "no limit" and admin_rows[2]["remaining"] == "no limit"


def test_the_csv_of_a_past_month_is_named_for_it_and_a_bad_month_is_refused(team):
    month = f"{last_month():%Y-%m}"
    response = login(team["boss"]).get(f"/usage.csv?month={month}")
    assert f'filename="lumaweb-usage-{month}.csv"' in response["Content-Disposition"]
    dave = next(row for row in rows_of(response) if row["user"] == "dave")
    assert dave["spent"] == "500000" and dave["generations"] == "1"
    refused = login(team["boss"]).get("/usage.csv?month=2026-99")
    assert refused.status_code == 400 and "01 to 12" in refused.content.decode()


@pytest.mark.parametrize("name", ["=cmd", "+1+1", "-2", "@SUM(A1)", "\tx"])
def test_a_username_a_spreadsheet_would_run_is_written_as_text(db, name):
    boss = make_user("boss", is_superuser=True, is_staff=True)
    make_gen(Status.COMPLETED, user=make_user(name), billed_at=at(1))
    rows = rows_of(login(boss).get("/usage.csv"))
    cells = [row["user"] for row in rows]
    assert "'" + name in cells and name not in cells


# --- the API --------------------------------------------------------------------------------------
def api(user, query: str = ""):
    return login(user).get("/api/v1/usage" + query)


def test_the_api_gives_an_admin_everyones_usage_and_the_days(team):
    response = api(team["boss"])
    assert response.status_code == 200
    body = response.json()
    assert body["month"] == f"{money.month_window()[0]:%Y-%m}"
    assert body["unit"] == "tokens" and body["cost_per_generation"] == COST
    assert body["team"] == {
        "spent": 5 * COST,
        "possibly": COST,
        "reserved": COST,
        "refunded": COST,
        "generations": 7,
        "budget": 10 * COST,
        "remaining": 4 * COST,
    }
    people = {person["user"]: person for person in body["people"]}
    assert set(people) == {"boss", "carol", "dave", "vera"}
    assert people["carol"] == {
        "user": "carol",
        "role": "creator",
        "spent": 2 * COST,
        "possibly": COST,
        "reserved": COST,
        "refunded": COST,
        "generations": 4,
        "budget": 4 * COST,
        "remaining": COST,
    }
    assert people["vera"]["role"] == "viewer" and people["boss"]["role"] == "admin"
    days = {day["date"]: day for day in body["days"]}
    assert len(days) == (money.month_window()[1] - money.month_window()[0]).days
    fifth = days[at(5).date().isoformat()]
    assert fifth["team"]["spent"] == 2 * COST
    assert fifth["people"] == [
        {
            "user": "dave",
            "spent": 2 * COST,
            "possibly": 0,
            "reserved": 0,
            "refunded": 0,
            "generations": 2,
        }
    ]
    assert body["months"] == [f"{money.month_window()[0]:%Y-%m}", f"{last_month():%Y-%m}"]


def test_the_api_gives_a_creator_her_own_line_and_the_teams_totals(team):
    body = api(team["carol"]).json()
    assert [person["user"] for person in body["people"]] == ["carol"]
    assert body["team"]["spent"] == 5 * COST
    second = next(day for day in body["days"] if day["date"] == at(2).date().isoformat())
    assert [p["user"] for p in second["people"]] == ["carol"]  # dave's part: in the team's only
    assert second["team"]["spent"] == 2 * COST


def test_the_api_gives_a_viewer_her_own_empty_line_and_the_teams_totals(team):
    body = api(team["vera"]).json()
    assert body["people"] == [
        {
            "user": "vera",
            "role": "viewer",
            "spent": 0,
            "possibly": 0,
            "reserved": 0,
            "refunded": 0,
            "generations": 0,
            "budget": None,
            "remaining": None,
        }
    ]
    assert body["team"]["generations"] == 7
    assert all(day["people"] == [] for day in body["days"])


def test_the_api_answers_a_past_month_and_refuses_a_bad_one_in_json(team):
    month = f"{last_month():%Y-%m}"
    body = api(team["dave"], f"?month={month}").json()
    assert body["month"] == month and body["people"][0]["spent"] == COST
    bad = api(team["dave"], "?month=2026-1")
    assert bad.status_code == 400
    assert "YYYY-MM" in bad.json()["error"] and "month" in bad.json()["fields"]
    assert api(team["dave"], "?month=").json()["month"] == f"{money.month_window()[0]:%Y-%m}"


def test_the_api_needs_a_login_or_a_token_and_refuses_other_methods(team):
    stranger = Client().get("/api/v1/usage")
    assert stranger.status_code == 401 and "error" in stranger.json()
    _, key = ApiToken.issue(team["carol"], "script")
    scripted = Client().get("/api/v1/usage", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert scripted.status_code == 200 and scripted.json()["people"][0]["user"] == "carol"
    posted = login(team["carol"]).post("/api/v1/usage", "{}", content_type="application/json")
    assert posted.status_code == 405


def test_the_openapi_schema_describes_usage(client):
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    operation = schema["paths"]["/usage"]["get"]
    assert operation["parameters"][0]["name"] == "month"
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(ok["required"]) >= {"month", "unit", "cost_per_generation", "team", "people", "days"}
