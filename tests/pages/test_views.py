"""The studio pages through Django's test client: login, hostile input, htmx polling contracts
(204 when unchanged, 286 when done) and actions that move a job's status through actions."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from generations.models import Generation, Status
from generations.pipeline import transitions
from tests.pages.conftest import htmx, make_gen

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def page_urls(gen: Generation) -> list[str]:
    return [
        reverse("gallery"),
        reverse("jobs"),
        reverse("jobs-count"),
        reverse("generation-new"),
        reverse("generation-detail", args=[gen.pk]),
        reverse("generation-extend", args=[gen.pk]),
        reverse("generation-cards") + f"?watch={gen.pk}.x",
        reverse("password_change"),
    ]


# --- login ---------------------------------------------------------------------------------------
def test_every_page_redirects_anonymous_visitors_to_login(db):
    gen = make_gen()
    anonymous = Client()
    for url in page_urls(gen):
        response = anonymous.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url


def test_actions_need_login_and_change_nothing_for_anonymous(db):
    gen = make_gen(Status.QUEUED)
    anonymous = Client()
    for name in ("generation-cancel", "generation-like", "generation-retry", "generation-extend"):
        response = anonymous.post(reverse(name, args=[gen.pk]), {"user_prompt": "x"})
        assert response.status_code == 302
    gen.refresh_from_db()
    assert gen.status == Status.QUEUED
    assert Generation.objects.count() == 1


def test_login_page_renders_for_anonymous_and_logs_in(db, user):
    anonymous = Client()
    response = anonymous.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content
    response = anonymous.post(reverse("login"), {"username": "alice", "password": "s3cret-pass!"})
    assert response.status_code == 302
    assert anonymous.get("/").status_code == 200


def test_shell_shows_user_logout_form_password_link_and_demo_badge(client, settings):
    settings.LUMA_DEMO_MODE = True
    html = client.get("/").content.decode()
    assert "alice" in html
    assert re.search(r'<form method="post" action="/accounts/logout/">', html)
    assert reverse("password_change") in html
    assert "Demo mode" in html
    assert 'hx-headers=\'{"x-csrftoken": "' in html
    assert "js/htmx.min.js" in html and "unpkg" not in html and "cdn" not in html.lower()
    settings.LUMA_DEMO_MODE = False
    assert "Demo mode" not in client.get("/").content.decode()


def test_password_change_page_renders(client):
    response = client.get(reverse("password_change"))
    assert response.status_code == 200
    assert b"new_password1" in response.content


# --- hostile input -------------------------------------------------------------------------------
UNKNOWN_ID = uuid.UUID("6a3fa678-83f9-4524-8987-2ec019b1cf2b")  # no row has it


@pytest.mark.parametrize(
    "url",
    [
        "/generations/not-a-uuid/",
        "/generations/12345/extend/",
        # fixed, not uuid4(): parallel workers must collect the same test ids
        f"/generations/{UNKNOWN_ID}/",
        f"/generations/{UNKNOWN_ID}/extend/",
        "/generations/%00/",
        "/generations/" + "a" * 5000 + "/",
    ],
)
def test_bad_or_unknown_ids_answer_404(client, url):
    assert client.get(url, **htmx("x")).status_code == 404
    assert client.get(url).status_code in (302, 404)


@pytest.mark.parametrize(
    "name",
    [
        "generation-like",
        "generation-retry",
        "generation-cancel",
        "generation-mark-failed",
        "generation-extend",
    ],
)
def test_actions_on_unknown_ids_answer_404(client, name):
    assert client.post(reverse(name, args=[uuid.uuid4()]), {"user_prompt": "x"}).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "?ar=lol&who=nobody&liked=maybe&after=garbage",
        "?q=%00%01%02&ar=%00",
        "?q=" + "x" * 50_000,
        "?after=99999999999999999999999.not-a-uuid",
        f"?after=-1.{UNKNOWN_ID}",
        "?q=%ff%fe&who[]=1&ar=16%3A9&ar=1%3A1",
        "?q=%27%3B+DROP+TABLE+generations_generation%3B--",
    ],
)
def test_gallery_survives_odd_query_strings(client, query):
    make_gen()
    response = client.get("/" + query)
    assert response.status_code == 200
    assert client.get("/" + query, **htmx("gallery-results")).status_code == 200
    assert client.get("/" + query, **htmx("more")).status_code == 200


def test_gallery_says_which_filters_it_ignored(client):
    html = client.get("/?ar=7:3&who=nobody").content.decode()
    assert "Ignored a filter" in html and "aspect ratio" in html and "who" in html


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(["q", "ar", "who", "liked", "after", "from", "v", "watch"]),
        st.text(max_size=300),
        max_size=6,
    )
)
def test_no_page_answers_500_to_any_query_string(client, params):
    for url in ("/", "/jobs/", "/generations/new/", "/jobs/count/", "/generations/cards/"):
        assert client.get(url, params).status_code < 500
        assert client.get(url, params, **htmx("jobs")).status_code < 500


def test_html_in_a_prompt_shows_as_text_everywhere(client, user):
    gen = make_gen(user=user, user_prompt=HOSTILE, prompt=HOSTILE + " expanded")
    make_gen(Status.FAILED, user=user, user_prompt=HOSTILE, error=HOSTILE)
    for url in ("/", "/jobs/", f"/generations/{gen.pk}/", f"/generations/new/?from={gen.pk}"):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html, url


def test_create_form_errors_keep_values_and_escape_them(client):
    response = client.post(
        "/generations/new/",
        {"user_prompt": "   ", "aspect_ratio": "9:16", "image_url": "javascript:alert(1)"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required" in html
    assert re.search(r'value="9:16"[^>]* checked', html)
    response = client.post("/generations/new/", {"user_prompt": HOSTILE, "aspect_ratio": "nope"})
    assert response.status_code == 400
    assert "&lt;script&gt;" in response.content.decode()
    assert Generation.objects.count() == 0


# --- create ----------------------------------------------------------------------------------
def test_create_page_shows_all_ratios_enhance_keyframes_and_cost(client, settings):
    settings.LUMA_TOKENS_PER_GENERATION = 500_000
    html = client.get("/generations/new/").content.decode()
    for ratio in ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21"):
        assert f'value="{ratio}"' in html
        assert f'data-shape="{ratio}"' in html  # its shape: a rule in app.css, no style=""
    assert "500,000 tokens" in html
    for name in ("expand_prompt", "image_url", "image_end_url", "image_file", "image_end_file"):
        assert f'name="{name}"' in html


def test_create_queues_a_job_and_redirects_to_it_with_a_toast(client, user):
    response = client.post(
        "/generations/new/",
        {"user_prompt": "a lighthouse in a storm", "aspect_ratio": "21:9", "expand_prompt": "on"},
        follow=True,
    )
    gen = Generation.objects.get()
    assert response.redirect_chain[-1][0] == f"/generations/{gen.pk}/"
    assert (gen.status, gen.aspect_ratio, gen.expand_prompt, gen.created_by) == (
        Status.QUEUED,
        "21:9",
        True,
        user,
    )
    html = response.content.decode()
    assert "Queued" in html and "toast" in html
    assert 'hx-trigger="every 2s"' in html  # the status block updates itself


def test_upload_refused_with_a_reason_without_public_base_url(client, settings):
    settings.LUMA_DEMO_MODE = False
    settings.PUBLIC_BASE_URL = ""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    upload = SimpleUploadedFile("k.png", buffer.getvalue(), content_type="image/png")
    response = client.post(
        "/generations/new/", {"user_prompt": "x", "aspect_ratio": "16:9", "image_file": upload}
    )
    assert response.status_code == 400
    assert "PUBLIC_BASE_URL" in response.content.decode()
    assert Generation.objects.count() == 0


def test_generate_again_prefills_the_form(client):
    gen = make_gen(
        user_prompt="a red kite over dunes",
        aspect_ratio="9:21",
        image_url="https://example.com/a.jpg",
    )
    html = client.get(f"/generations/new/?from={gen.pk}").content.decode()
    assert "a red kite over dunes</textarea>" in html
    assert re.search(r'value="9:21"[^>]* checked', html)
    assert 'value="https://example.com/a.jpg"' in html
    html = client.get("/generations/new/?from=nope", follow=True).content.decode()
    assert "not found" in html


# --- gallery -----------------------------------------------------------------------------------
def test_gallery_lists_finished_videos_newest_first_with_actions(client, user):
    older = make_gen(user=user, user_prompt="older one")
    newer = make_gen(user=user, user_prompt="newer one")
    newer.completed_at = older.completed_at.replace(year=older.completed_at.year + 1)
    newer.save()
    make_gen(Status.IN_PROGRESS, user_prompt="still running")
    html = client.get("/").content.decode()
    assert html.index("newer one") < html.index("older one")
    assert "still running" not in html
    assert 'preload="none"' in html and "muted loop playsinline" in html
    assert f'hx-get="/generations/{older.pk}/extend/"' in html
    assert f'href="/generations/{older.pk}/#extend"' in html


def test_gallery_filters_mine_liked_ratio_and_search(client, user, other):
    mine = make_gen(user=user, user_prompt="my cat on a piano", aspect_ratio="1:1")
    theirs = make_gen(user=other, user_prompt="their dog surfing", aspect_ratio="9:16")
    theirs.liked_by.add(user)

    def shown(query):
        html = client.get("/" + query, **htmx("gallery-results")).content.decode()
        return {g for g in (mine, theirs) if f"card-{g.pk}" in html}

    assert shown("") == {mine, theirs}
    assert shown("?who=mine") == {mine}
    assert shown("?liked=1") == {theirs}
    assert shown("?ar=9:16") == {theirs}
    assert shown("?q=PIANO") == {mine}
    assert shown("?q=nothing-like-this") == set()


def test_gallery_pages_by_cursor_without_repeats(client):
    gens = [make_gen() for _ in range(30)]
    first = client.get("/").content.decode()
    found = re.findall(r'id="card-([0-9a-f-]+)"', first)
    assert len(found) == 24
    next_url = re.search(r'id="more"[^>]*hx-get="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(next_url, **htmx("more")).content.decode()
    assert "<html" not in second
    rest = re.findall(r'id="card-([0-9a-f-]+)"', second)
    assert len(rest) == 6 and 'id="more"' not in second
    assert set(found) | set(rest) == {str(g.pk) for g in gens}


def test_like_toggles_per_user(client, user, other):
    gen = make_gen(user=other)
    url = reverse("generation-like", args=[gen.pk])
    response = client.post(url, **htmx("x"))
    assert response.status_code == 200 and b"is-liked" in response.content
    assert list(gen.liked_by.all()) == [user]
    response = client.post(url, **htmx("x"))
    assert b"is-liked" not in response.content
    assert gen.liked_by.count() == 0
    response = client.post(url, {"next": "/?liked=1"})
    assert response.status_code == 302 and response["Location"] == "/?liked=1"
    response = client.post(url, {"next": "https://evil.example/"})
    assert response["Location"] == f"/generations/{gen.pk}/"
    assert client.get(url).status_code == 405


# --- extend ------------------------------------------------------------------------------------
def test_extend_inline_form_and_htmx_post_show_a_self_updating_card(client, user):
    parent = make_gen(user=user)
    form = client.get(
        reverse("generation-extend", args=[parent.pk]), **htmx(f"extend-slot-{parent.pk}")
    )
    assert form.status_code == 200
    assert b'hx-post="/generations/' in form.content and b"<html" not in form.content
    response = client.post(
        reverse("generation-extend", args=[parent.pk]),
        {"user_prompt": "then it rains"},
        **htmx(f"card-{parent.pk}"),
    )
    assert response.status_code == 200
    child = Generation.objects.get(parent=parent)
    assert child.status == Status.QUEUED and child.aspect_ratio == parent.aspect_ratio
    html = response.content.decode()
    assert f'id="card-{child.pk}"' in html
    assert 'hx-trigger="every 2s"' in html
    assert f'id="extend-slot-{parent.pk}" class="extend-slot" hx-swap-oob="true"' in html
    assert 'hx-swap-oob="beforeend:#toasts"' in html and "Extending" in html


def test_extend_without_javascript_redirects_to_the_new_job(client):
    parent = make_gen()
    response = client.post(
        reverse("generation-extend", args=[parent.pk]), {"user_prompt": "and then"}
    )
    child = Generation.objects.get(parent=parent)
    assert response.status_code == 302 and response["Location"] == f"/generations/{child.pk}/"
    assert client.get(reverse("generation-extend", args=[parent.pk])).status_code == 302


def test_extend_refusals_show_the_form_with_reasons(client):
    running = make_gen(Status.IN_PROGRESS)
    response = client.post(reverse("generation-extend", args=[running.pk]), {"user_prompt": "x"})
    assert response.status_code == 400
    assert b"Only a finished video can be extended" in response.content
    done = make_gen()
    response = client.post(
        reverse("generation-extend", args=[done.pk]), {"user_prompt": ""}, **htmx(f"card-{done.pk}")
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == f"#extend-slot-{done.pk}"
    assert Generation.objects.filter(parent__isnull=False).count() == 0


# --- detail -----------------------------------------------------------------------------------
def test_detail_shows_fields_history_chain_and_extend_form(client, user):
    root = make_gen(user=user, user_prompt="root shot", prompt="root shot, cinematic, 35mm")
    child = make_gen(user=user, parent=root, user_prompt="second shot")
    html = client.get(f"/generations/{child.pk}/").content.decode()
    assert "root shot, cinematic" not in html  # the child's own expanded prompt only
    html = client.get(f"/generations/{root.pk}/").content.decode()
    assert "root shot, cinematic, 35mm" in html
    assert "made by a test" in html  # status history
    assert f'href="/generations/{child.pk}/"' in html  # chain
    assert f'action="/generations/{root.pk}/extend/"' in html
    assert f"/generations/new/?from={root.pk}" in html
    assert "controls" in html
    root.liked_by.add(user)
    html = client.get(f"/generations/{root.pk}/").content.decode()
    assert 'aria-pressed="true"' in html


def test_detail_live_block_answers_204_unchanged_and_286_when_settled(client):
    gen = make_gen(Status.IN_PROGRESS)
    html = client.get(f"/generations/{gen.pk}/").content.decode()
    poll = re.search(r'id="live"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert client.get(poll, **htmx("live")).status_code == 204
    Generation.objects.filter(pk=gen.pk).update(status=Status.FAILED, error="boom")
    response = client.get(poll, **htmx("live"))
    assert response.status_code == 286 and b"boom" in response.content


# --- jobs dashboard ----------------------------------------------------------------------------
def test_dashboard_sections_show_who_status_eta_and_upstream_error(client, user):
    make_gen(Status.QUEUED, user=user, user_prompt="waiting one")
    make_gen(Status.IN_PROGRESS, user=user, user_prompt="running one")
    make_gen(Status.NEEDS_ATTENTION, user=user, user_prompt="unsure one")
    make_gen(
        Status.FAILED,
        user=user,
        user_prompt="failed one",
        error="Insufficient tokens",
        error_request_id="req-42",
    )
    make_gen(Status.COMPLETED, user=user, user_prompt="done one")
    html = client.get("/jobs/").content.decode()
    for text in (
        "Needs attention",
        "Running",
        "Queued",
        "Failed",
        "Recently finished",
        "waiting one",
        "running one",
        "unsure one",
        "failed one",
        "done one",
        "Insufficient tokens",
        "req-42",
        "may charge a second time",
        "data-since",
    ):
        assert text in html, text
    assert "progress-eta" in html and "data-eta-secs=" in html
    assert 'hx-trigger="every 2s"' in html


def test_dashboard_stops_polling_when_nothing_is_in_flight(client):
    make_gen(Status.COMPLETED)
    make_gen(Status.FAILED)
    html = client.get("/jobs/").content.decode()
    assert "every 2s" not in html and "jobs-changed from:body" in html
    response = client.get("/jobs/", **htmx("jobs"))
    assert response.status_code == 286


def test_dashboard_answers_204_when_unchanged_and_renders_on_change(client):
    gen = make_gen(Status.QUEUED)
    html = client.get("/jobs/").content.decode()
    poll = re.search(r'id="jobs-live"[^>]*hx-get="([^"]+)"', html, re.S).group(1)
    poll = poll.replace("&amp;", "&")
    unchanged = client.get(poll, **htmx("jobs-live"))
    assert unchanged.status_code == 204 and unchanged.content == b""
    other = make_gen(Status.IN_PROGRESS)
    changed = client.get(poll, **htmx("jobs-live"))
    assert changed.status_code == 200 and str(other.pk) in changed.content.decode()
    assert "<html" not in changed.content.decode()
    # The last in-flight jobs finish (status moves bump the page's stamp): the answer's poller
    # no longer polls every 2 s, it waits for the next "jobs-changed".
    for pk, status in ((gen.pk, Status.QUEUED), (other.pk, Status.IN_PROGRESS)):
        assert transitions.move(pk, [status], Status.COMPLETED, note="test")
    done = client.get(poll, **htmx("jobs-live")).content.decode()
    assert "every 2s" not in done and "jobs-changed from:body" in done


def test_running_badge_answers_204_while_the_count_is_right(client):
    make_gen(Status.QUEUED)
    assert client.get("/jobs/count/?v=1", **htmx("running-badge")).status_code == 204
    response = client.get("/jobs/count/?v=0", **htmx("running-badge"))
    assert response.status_code == 200
    assert "jobs-changed" in json.loads(response["HX-Trigger"])
    assert b'?v=1&amp;since=0"' in response.content


@pytest.mark.parametrize("use_htmx", [False, True])
def test_job_actions_move_the_status(client, user, use_htmx):
    headers = htmx("jobs") if use_htmx else {}
    failed = make_gen(Status.FAILED, user=user)
    queued = make_gen(Status.QUEUED, user=user)
    unsure = make_gen(Status.NEEDS_ATTENTION, user=user)
    unsure2 = make_gen(Status.NEEDS_ATTENTION, user=user)

    response = client.post(reverse("generation-retry", args=[failed.pk]), **headers)
    assert response.status_code == (200 if use_htmx else 302)
    if use_htmx:
        assert b'id="jobs"' in response.content and b"Queued again" in response.content
    else:
        assert response["Location"] == "/jobs/"
    client.post(reverse("generation-cancel", args=[queued.pk]), **headers)
    client.post(reverse("generation-mark-failed", args=[unsure.pk]), **headers)
    # The resolve panel's "Retry (may pay twice)" carries the say-so (components.html#resolve).
    client.post(
        reverse("generation-retry", args=[unsure2.pk]), {"confirm_second_charge": "yes"}, **headers
    )
    for gen, status in (
        (failed, Status.QUEUED),
        (queued, Status.CANCELLED),
        (unsure, Status.FAILED),
        (unsure2, Status.QUEUED),
    ):
        gen.refresh_from_db()
        assert gen.status == status
        assert "alice" in gen.events.last().note  # the service recorded who did it
    assert unsure2.posts_authorized == 2


def test_refused_actions_say_why_and_change_nothing(client, user):
    done = make_gen(Status.COMPLETED, user=user)
    response = client.post(reverse("generation-cancel", args=[done.pk]), follow=True)
    assert "Only a queued job can be cancelled" in response.content.decode()
    response = client.post(reverse("generation-mark-failed", args=[done.pk]), **htmx("jobs"))
    assert b"Only a job that needs attention" in response.content
    done.refresh_from_db()
    assert done.status == Status.COMPLETED
    assert client.get(reverse("generation-retry", args=[done.pk])).status_code == 405


def test_only_the_owner_or_an_admin_sees_and_uses_job_actions(client, user, other):
    theirs = make_gen(Status.FAILED, user=other, user_prompt="bob's failed job")
    mine = make_gen(Status.FAILED, user=user, user_prompt="alice's failed job")
    html = client.get("/jobs/").content.decode()
    assert f'action="/generations/{mine.pk}/retry/"' in html
    assert f'action="/generations/{theirs.pk}/retry/"' not in html
    response = client.post(reverse("generation-retry", args=[theirs.pk]), follow=True)
    assert "Only the person who made this job" in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.status == Status.FAILED
    other.is_staff = True
    other.save()
    admin = Client()
    admin.force_login(other)
    assert f'action="/generations/{mine.pk}/retry/"' in admin.get("/jobs/").content.decode()


def test_delete_from_the_detail_page(client, user, other):
    mine = make_gen(user=user)
    theirs = make_gen(user=other)
    assert b"/delete/" in client.get(f"/generations/{mine.pk}/").content
    assert b"/delete/" not in client.get(f"/generations/{theirs.pk}/").content
    response = client.post(reverse("generation-delete", args=[theirs.pk]))
    assert response.status_code == 302 and Generation.objects.filter(pk=theirs.pk).exists()
    response = client.post(reverse("generation-delete", args=[mine.pk]), follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert "Deleted" in response.content.decode()
    assert not Generation.objects.filter(pk=mine.pk).exists()
    assert client.post(reverse("generation-delete", args=[mine.pk])).status_code == 404


# --- technical details are folded away ------------------------------------------------------------
def test_service_ids_and_requests_sent_are_folded_into_technical_details(client, user):
    failed = make_gen(Status.FAILED, user=user, posts_sent=2)
    for path, row in (
        (reverse("generation-detail", args=[failed.pk]), None),
        (reverse("jobs"), f'id="job-{failed.pk}"'),
    ):
        html = client.get(path).content.decode()
        if row:
            html = html[html.index(row) : html.index("</li>", html.index(row))]
        tech = re.search(r'<details class="tech[^"]*">(.*?)</details>', html, re.S)
        assert tech, path
        assert "<summary>Technical details</summary>" in tech.group(1)
        outside = html.replace(tech.group(0), "")
        for shown in (failed.remote_id, "req-123", "Requests sent"):
            assert shown in tech.group(1), (path, shown)
            assert shown not in outside, (path, shown)


def test_a_refused_extension_s_toast_names_the_field_in_error(client, user):
    done = make_gen(user=user)
    response = client.post(
        reverse("generation-extend", args=[done.pk]),
        {"user_prompt": "and then", "image_end_url": "ftp://example.com/end.jpg"},
    )
    assert response.status_code == 400
    toast = re.search(r'<span class="toast-text">(.*?)</span>', response.content.decode(), re.S)
    assert "End keyframe URL:" in toast.group(1)
    assert "see the form" not in toast.group(1)


def test_a_prompt_too_long_comes_back_whole_or_with_a_word_that_it_was_cut(client):
    from generations.forms import ECHO_OVERRUN, MAX_PROMPT

    a_bit_over = "p" * (MAX_PROMPT + 300)
    html = client.post(
        reverse("generation-new"), {"user_prompt": a_bit_over, "aspect_ratio": "16:9"}
    ).content.decode()
    assert f"\n{a_bit_over}</textarea>" in html
    assert f"at most {MAX_PROMPT} characters (it has {MAX_PROMPT + 300})" in html
    far_over = "q" * (MAX_PROMPT * 3)
    html = client.post(
        reverse("generation-new"), {"user_prompt": far_over, "aspect_ratio": "16:9"}
    ).content.decode()
    assert f"\n{'q' * (MAX_PROMPT + ECHO_OVERRUN)}</textarea>" in html
    assert f"Only its first {MAX_PROMPT + ECHO_OVERRUN:,} characters are shown here" in html
