"""The Team page: admins see the members (role, budget, this month's spending and what is left,
active or not) and manage them there, with htmx or plain forms; everyone else gets the branded
403. The audit log is on it (newest first, filtered, paged) and downloads as CSV, safe to open in
a spreadsheet. Deactivated people can no longer log in or use their API tokens."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from generations import actions, audit
from generations.inputs import GenerationRequest
from generations.models import ApiToken, AuditAction, AuditEntry, Member, Role, Team
from generations.team_views import safe_cell
from tests.factories import make_user
from tests.pages.conftest import htmx, log_in

COST = 500_000
PASSWORD = "a-long-pass-phrase-77"


@pytest.fixture(autouse=True)
def _cost(settings) -> None:
    settings.LUMA_TOKENS_PER_GENERATION = COST
    # Quick hashing for the many accounts made here (the validators still run in full).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def boss(db):
    person = make_user("boss")
    actions.set_member(None, person, role=Role.ADMIN)
    return person


@pytest.fixture
def admin(boss) -> Client:
    client = Client()
    client.force_login(boss)
    return client


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def can_log_in(username: str, password: str) -> bool:
    """Through the log-in page, as a person does (django-axes wants the request)."""
    response = Client().post("/accounts/login/", {"username": username, "password": password})
    return response.status_code == 302


def row_of(html: str, pk: int) -> str:
    return re.search(rf'<tr id="member-{pk}".*?</tr>', html, re.S).group(0)


def member_of(name: str) -> Member:
    return Member.objects.get(user__username=name)


# --- who sees it ----------------------------------------------------------------------------------
def test_an_admin_sees_every_member_with_role_budget_spent_and_left(admin, boss):
    carol = make_user("carol")
    actions.set_member(boss, carol, budget=2_000_000)
    actions.create_generation(carol, GenerationRequest(user_prompt="a lighthouse"))
    make_user("gone", is_active=False)
    page = admin.get("/team/")
    assert page.status_code == 200
    html = text(page)
    row = row_of(html, carol.pk)
    assert "Creator" in row and "2,000,000" in row and "500,000 reserved" in row
    assert "1,500,000" in row  # left
    assert "Deactivated" in re.search(
        r'<tr id="member-\d+" class="is-inactive".*?</tr>', html, re.S
    ).group(0)
    assert "(you)" in html and "no limit" in html


@pytest.mark.parametrize("role", [Role.CREATOR, Role.VIEWER])
def test_creators_and_viewers_get_the_branded_403_and_no_link(db, role):
    person = make_user("pat")
    actions.set_member(None, person, role=role)
    client = login(person)
    for response in (
        client.get("/team/"),
        client.get("/team/audit.csv"),
        client.post("/team/budget/", {"budget": "1"}),
        client.post("/team/members/add/", {"username": "x", "password": PASSWORD}),
        client.post(f"/team/members/{person.pk}/", {"role": "admin"}),
        client.post(f"/team/members/{person.pk}/active/", {"active": "no"}),
    ):
        assert response.status_code == 403
        assert "The Team page is for admins" in text(response)
        assert 'class="topbar"' in text(response)  # the branded page, with the studio around it
    assert Member.role_of(get_user_model().objects.get(pk=person.pk)) == role
    assert Team.current().monthly_budget is None
    assert 'href="/team/"' not in text(client.get("/"))


def test_the_account_menu_offers_team_to_admins_and_the_django_admin_to_staff(admin, db):
    assert 'href="/team/">Team<' in text(admin.get("/"))
    assert "Django admin" not in text(admin.get("/"))
    staff = login(make_user("root", is_staff=True, is_superuser=True))
    html = text(staff.get("/"))
    assert 'href="/team/">Team<' in html and "Django admin" in html
    assert "Admin · team members" not in html


# --- add a member ---------------------------------------------------------------------------------
def test_adding_a_member_with_a_plain_form_makes_an_account_that_can_log_in(admin):
    response = admin.post(
        "/team/members/add/",
        {"username": "dave", "password": PASSWORD, "role": "viewer", "budget": "1,000,000"},
    )
    assert response.status_code == 302 and response["Location"] == "/team/"
    assert member_of("dave").role == Role.VIEWER and member_of("dave").monthly_budget == 1_000_000
    assert can_log_in("dave", PASSWORD)
    assert "Added dave as viewer." in text(admin.get("/team/"))


def test_adding_a_member_with_htmx_answers_the_page_part_with_a_toast(admin):
    response = admin.post(
        "/team/members/add/",
        {"username": "erin", "password": PASSWORD, "role": "creator", "budget": ""},
        **htmx("team-main"),
    )
    assert response.status_code == 200
    html = text(response)
    assert 'id="team-main"' in html and "<html" not in html
    assert "Added erin as creator." in html  # the toast, out of band
    assert member_of("erin").monthly_budget is None


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"username": "dave", "password": "short"}, "too short"),
        ({"username": "dave", "password": "password123"}, "too common"),
        ({"username": "boss", "password": PASSWORD}, "already someone"),
        ({"username": "bad name!", "password": PASSWORD}, "Enter a valid username"),
        ({"username": "dave", "password": PASSWORD, "budget": "lots"}, "whole number"),
        ({"username": "dave", "password": PASSWORD, "budget": "9" * 30}, "more tokens"),
        ({"username": "dave", "password": PASSWORD, "role": "owner"}, "valid choice"),
        ({"username": "", "password": ""}, "required"),
    ],
)
def test_bad_input_to_add_a_member_is_explained_and_keeps_what_was_typed(admin, fields, error):
    data = {"role": "creator", "budget": "", **fields}
    plain = admin.post("/team/members/add/", data)
    assert plain.status_code == 400
    assert error in text(plain)
    if data["username"] and " " not in data["username"]:
        assert f'value="{data["username"]}"' in text(plain)
    assert "The person was not added" in text(plain)
    with_htmx = admin.post("/team/members/add/", data, **htmx("team-main"))
    assert with_htmx.status_code == 200 and error in text(with_htmx)
    assert not get_user_model().objects.filter(username="dave").exists()
    assert not AuditEntry.objects.filter(action=AuditAction.MEMBER_ADDED).exists()


# --- change a role or a budget --------------------------------------------------------------------
def test_changing_a_role_and_a_budget(admin):
    carol = make_user("carol")
    response = admin.post(f"/team/members/{carol.pk}/", {"role": "viewer", "budget": "750_000"})
    assert response.status_code == 302
    assert (member_of("carol").role, member_of("carol").monthly_budget) == (Role.VIEWER, 750_000)
    response = admin.post(
        f"/team/members/{carol.pk}/", {"role": "creator", "budget": "none"}, **htmx("team-main")
    )
    assert response.status_code == 200 and "Saved carol" in text(response)
    assert (member_of("carol").role, member_of("carol").monthly_budget) == (Role.CREATOR, None)


def test_a_bad_budget_or_role_changes_nothing_and_opens_that_row_with_the_error(admin):
    carol = make_user("carol")
    response = admin.post(f"/team/members/{carol.pk}/", {"role": "creator", "budget": "-5"})
    assert response.status_code == 400
    html = text(response)
    row = row_of(html, carol.pk)
    assert '<details class="resolve member-edit" open>' in row and "whole number" in row
    assert admin.post(f"/team/members/{carol.pk}/", {"role": "boss"}).status_code == 400
    assert not Member.objects.filter(user=carol).exists()
    assert admin.post("/team/members/999999/", {"role": "creator"}).status_code == 404


def test_the_last_admin_cannot_be_demoted_or_deactivated_from_the_page(admin, boss):
    demote = admin.post(f"/team/members/{boss.pk}/", {"role": "creator", "budget": ""})
    assert demote.status_code == 400 and "last active admin" in text(demote)
    assert member_of("boss").role == Role.ADMIN
    html = text(admin.get("/team/"))
    assert f'action="/team/members/{boss.pk}/active/"' not in html
    assert "You cannot deactivate yourself" in html


# --- deactivate and reactivate --------------------------------------------------------------------
def test_a_deactivated_person_cannot_log_in_nor_use_an_api_token_until_reactivated(admin, boss):
    carol = make_user("carol", password=PASSWORD)
    _, key = ApiToken.issue(carol, "script")
    session = login(carol)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert Client().get("/api/v1/generations", **bearer).status_code == 200

    response = admin.post(f"/team/members/{carol.pk}/active/", {"active": "no"})
    assert response.status_code == 302
    assert not get_user_model().objects.get(pk=carol.pk).is_active
    assert not can_log_in("carol", PASSWORD)
    assert Client().get("/api/v1/generations", **bearer).status_code == 401
    assert session.get("/").status_code == 302  # her open session ends too

    response = admin.post(
        f"/team/members/{carol.pk}/active/", {"active": "yes"}, **htmx("team-main")
    )
    assert response.status_code == 200 and "Reactivated carol" in text(response)
    assert can_log_in("carol", PASSWORD)
    assert Client().get("/api/v1/generations", **bearer).status_code == 200


def test_an_admin_cannot_deactivate_herself_even_with_a_hand_made_post(admin, boss):
    make_user("root", is_superuser=True)  # not the last admin: only "yourself" refuses
    response = admin.post(f"/team/members/{boss.pk}/active/", {"active": "no"}, follow=True)
    assert "You cannot deactivate yourself" in text(response)
    assert get_user_model().objects.get(pk=boss.pk).is_active


# --- the team budget ------------------------------------------------------------------------------
def test_setting_the_team_budget_and_bad_input(admin):
    assert admin.post("/team/budget/", {"budget": "3,000,000"}).status_code == 302
    assert Team.current().monthly_budget == 3_000_000
    bad = admin.post("/team/budget/", {"budget": "three"})
    assert bad.status_code == 400 and "whole number" in text(bad) and 'value="three"' in text(bad)
    assert Team.current().monthly_budget == 3_000_000
    cleared = admin.post("/team/budget/", {"budget": ""}, **htmx("team-main"))
    assert "Team budget: no limit." in text(cleared)
    assert Team.current().monthly_budget is None


def test_the_forms_work_without_javascript_every_hx_post_has_an_action(admin):
    make_user("carol")
    html = text(admin.get("/team/"))
    html = html[html.index('id="team-main"') :]  # the page's own part (the header polls)
    for tag in re.findall(r"<form[^>]*>", html):
        if "hx-post" in tag:
            post = re.search(r'hx-post="([^"]+)"', tag).group(1)
            assert f'action="{post}"' in tag and 'method="post"' in tag, tag
    for tag in re.findall(r"<[a-z]+[^>]*hx-get[^>]*>", html):
        assert "href=" in tag or "action=" in tag, tag


# --- the audit log on the page, and its CSV -------------------------------------------------------
def test_the_audit_log_is_shown_newest_first_filtered_and_paged(admin, boss):
    for i in range(60):
        audit.record(boss, AuditAction.TEAM_BUDGET, f"budget entry {i:02d}")
    audit.record(boss, AuditAction.ROLE, "the role entry")
    html = text(admin.get("/team/"))
    assert html.index("the role entry") < html.index("budget entry 59") < html.index("entry 12")
    assert "budget entry 10" not in html  # 50 a page: 60..11 are on the first
    older = re.search(r'href="(/team/\?before=\d+)[^"]*"', html).group(1)
    second = text(admin.get(older, **htmx("audit-log")))
    assert 'id="audit-log"' in second and "<html" not in second
    assert "budget entry 10" in second and "budget entry 00" in second
    assert "budget entry 11" not in second

    filtered = text(admin.get("/team/?action=role"))
    assert "the role entry" in filtered and "budget entry" not in filtered
    odd = admin.get("/team/?action=nonsense&before=not-a-number")
    assert odd.status_code == 200
    superscript = admin.get("/team/?before=%C2%B2")  # "²": isdigit() says yes, int() says no
    assert superscript.status_code == 200


def test_the_csv_export_holds_every_entry_and_no_cell_a_spreadsheet_would_run(admin, boss):
    sly = make_user("@SUM(A1)")  # usernames may start with "@", "+", "-"
    actions.set_member(boss, sly, budget=5)
    audit.record(boss, AuditAction.TEAM_BUDGET, '=HYPERLINK("http://evil")')
    response = admin.get("/team/audit.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(text(response))))
    assert rows[0][:3] == ["at (UTC)", "who", "action"]
    body = rows[1:]
    assert len(body) == AuditEntry.objects.count() == 3  # boss made an admin, then these two
    for row in body:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), row
    assert body[0][5] == '\'=HYPERLINK("http://evil")'
    assert body[1][3] == "'@SUM(A1)" and json.loads(body[1][6]) == {"old": None, "new": 5}
    only_roles = list(csv.reader(io.StringIO(text(admin.get("/team/audit.csv?action=role")))))
    assert [row[2] for row in only_roles[1:]] == ["role"]  # boss made an admin


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("a=b", "a=b"),
    ],
)
def test_a_cell_that_starts_like_a_formula_is_quoted(value, cell):
    assert safe_cell(value) == cell


# --- in Chromium: htmx swaps the page's part, toasts say what happened ----------------------------
@pytest.mark.browser
def test_in_chromium_an_admin_adds_changes_and_deactivates_without_a_reload(
    browser, live_server, transactional_db, settings
):
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    boss = make_user("boss", password=PASSWORD)
    actions.set_member(None, boss, role=Role.ADMIN)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, live_server.url, "boss", PASSWORD)
    page.click(".account summary")
    page.click(".account-menu >> text=Team")
    page.wait_for_url(live_server.url + "/team/")
    page.evaluate("window.__noReload = true")  # gone if the page reloads

    page.fill("#add-username", "dave")
    page.fill("#add-password", PASSWORD)
    page.select_option("#add-role", "viewer")
    page.click("button:has-text('Add member')")
    page.locator("#toasts >> text=Added dave as viewer.").wait_for()
    dave = get_user_model().objects.get(username="dave")
    row = page.locator(f"#member-{dave.pk}")
    assert "Viewer" in row.text_content()

    row.locator("summary").click()
    row.locator("select[name=role]").select_option("creator")
    row.locator("input[name=budget]").fill("1,500,000")
    row.locator("button:has-text('Save')").click()
    page.locator(f"#member-{dave.pk}:has-text('1,500,000')").wait_for()
    assert (member_of("dave").role, member_of("dave").monthly_budget) == (Role.CREATOR, 1_500_000)

    page.locator(f"#member-{dave.pk} summary").click()
    page.click(f"#member-{dave.pk} button:has-text('Deactivate dave')")
    page.locator(f"#member-{dave.pk}.is-inactive").wait_for()
    assert not get_user_model().objects.get(pk=dave.pk).is_active
    assert page.locator("#audit-log").text_content().count("dave") >= 3
    assert page.evaluate("window.__noReload") is True
    context.close()
    assert errors == [], errors


@pytest.mark.parametrize("url", ["/team/budget/", "/team/members/add/"])
def test_a_budget_in_digits_int_cannot_read_is_refused_in_words(admin, url):
    """ "²" passes str.isdigit() but not int(): a clear refusal, never a 500 (outside review)."""
    fields = {
        "budget": "\u00b2",
        "username": "newbie",
        "password": "a-long-Passw0rd!",
        "role": "creator",
    }
    response = admin.post(url, fields)
    assert response.status_code in (200, 400)
    assert "whole number of tokens" in text(response)
    assert not Member.objects.filter(user__username="newbie").exists()


def test_the_add_member_password_is_hidden_from_error_reports(admin):
    response = admin.post("/team/members/add/", {"username": "x", "password": "S3cret-pass!"})
    assert tuple(response.wsgi_request.sensitive_post_parameters) == ("password",)


@pytest.mark.parametrize("value", ["", "maybe", "YES "])
def test_a_deactivation_needs_an_explicit_no(admin, db, value):
    """Only "yes" or "no": a missing or garbled field changes nobody (outside review)."""
    person = make_user("kept")
    response = admin.post(f"/team/members/{person.pk}/active/", {"active": value} if value else {})
    assert response.status_code == 400
    person.refresh_from_db()
    assert person.is_active
