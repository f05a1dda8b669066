"""The gallery's orders and search (issue 10, point 1).

Orders: newest first (the default), oldest first, most liked; each pages by a keyset cursor that
holds its own key ((likes,) completed_at, id), so "Load more" never repeats or skips a video even
when many share a like count or a moment; a cursor of another order, or garbage, starts from the
top with a word, never a 500. Search: every word, in any order, whatever the case, in the
person's prompt or the service's rewrite, as a substring; on PostgreSQL on trigram GIN indexes
(issue 12), on SQLite by a scan. (Run this file with DATABASE_URL
naming PostgreSQL too.)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generations import queries
from generations.models import Generation
from tests.factories import make_user
from tests.pages.conftest import htmx, make_gen

CARD = re.compile(r'<article class="card[^"]*" id="card-([0-9a-f-]+)"')
MORE = re.compile(r'id="more"[^>]*hx-get="([^"]+)"')


def shown(client, query: str) -> list[str]:
    """The card ids of every page of the gallery at ``query``, following "Load more"."""
    html = client.get("/" + query).content.decode()
    ids = CARD.findall(html)
    while more := MORE.search(html):
        html = client.get(unescape(more.group(1)), **htmx("more")).content.decode()
        ids += CARD.findall(html)
    return ids


@pytest.fixture
def likers(db):
    return [make_user(f"liker{i}") for i in range(4)]


def videos_with_likes(likers, n: int = 30) -> list[Generation]:
    """``n`` videos, many of them finished at the same moment and many with as many likes as
    another (ties are where a keyset that forgets part of its key repeats or skips rows)."""
    moment = timezone.now() - timedelta(hours=1)
    gens = []
    for i in range(n):
        gen = make_gen(completed_at=moment - timedelta(seconds=i // 3))
        gen.liked_by.add(*likers[: i % 4])
        gens.append(gen)
    return gens


def test_the_three_orders_each_page_through_every_video_once(client, likers):
    gens = videos_with_likes(likers)
    newest = sorted(gens, key=lambda g: (g.completed_at, g.pk), reverse=True)
    by_likes = sorted(gens, key=lambda g: (g.liked_by.count(), g.completed_at, g.pk), reverse=True)
    assert shown(client, "") == [str(g.pk) for g in newest]
    assert shown(client, "?sort=newest") == [str(g.pk) for g in newest]
    assert shown(client, "?sort=oldest") == [str(g.pk) for g in reversed(newest)]
    assert shown(client, "?sort=likes") == [str(g.pk) for g in by_likes]


def test_the_order_is_kept_in_the_control_the_load_more_link_and_the_filters(client, likers):
    videos_with_likes(likers)
    html = client.get("/?sort=likes&ar=16:9").content.decode()
    assert re.search(r'<select name="sort">.*<option value="likes" selected>Most liked', html, re.S)
    more = unescape(MORE.search(html).group(1))
    assert "sort=likes" in more and "ar=16%3A9" in more
    assert re.fullmatch(r"/\?ar=16%3A9&sort=likes&after=[0-9]+\.[0-9]+\.[0-9a-f-]{36}", more)
    newest = client.get("/").content.decode()
    assert re.search(r'<option value="" selected>Newest first', newest)
    assert "sort=" not in unescape(MORE.search(newest).group(1))  # the default is left out


@pytest.mark.parametrize(
    ("query", "ignored"),
    [
        ("?sort=random", "order"),
        ("?sort=likes&after=LIKES_LESS", "page position"),  # a newest-first cursor
        ("?after=3.LIKES_LESS", "page position"),  # a most-liked cursor, newest first
        ("?sort=likes&after=-1.LIKES_LESS", "page position"),
        ("?sort=oldest&after=99999999999999999999.x", "page position"),
    ],
)
def test_an_odd_order_or_a_cursor_of_another_order_starts_from_the_top(client, query, ignored):
    gen = make_gen()
    cursor = queries.encode_moment(gen.completed_at, gen.pk)
    for target in ({}, htmx("gallery-results"), htmx("more")):
        response = client.get("/" + query.replace("LIKES_LESS", cursor), **target)
        assert response.status_code == 200
    html = client.get("/" + query.replace("LIKES_LESS", cursor)).content.decode()
    assert "Ignored a filter" in html and ignored in html
    assert f'id="card-{gen.pk}"' in html  # the first page, as if there were no cursor


def test_a_cursor_is_exact_to_the_microsecond():
    """A cursor one microsecond off repeats or skips a row (a float conversion truncates the
    wrong way before 1970: the last moment here)."""
    start = timezone.now().replace(microsecond=0)
    moments = [start + timedelta(microseconds=n) for n in (0, 1, 123_457, 999_999, 500_001)]
    for moment in [*moments, datetime(1961, 6, 15, 3, 30, 11, 201457, tzinfo=UTC)]:
        gen = Generation(completed_at=moment)
        decoded = queries.decode_cursor(queries.encode_cursor(gen), "")
        assert decoded is not None and decoded.moment == moment and decoded.pk == gen.pk


# --- search ---------------------------------------------------------------------------------------
@pytest.fixture
def prompts(db):
    return {
        "fox": make_gen(user_prompt="A red Fox running through deep snow"),
        "den": make_gen(user_prompt="a fox den in spring"),
        "roof": make_gen(user_prompt="Snow on the roof"),
        "rewritten": make_gen(
            user_prompt="boat at dusk",
            prompt="A paper-boat drifting on a glowing lake at dusk, cinematic",
        ),
        "quote": make_gen(user_prompt="Don't look back: the lantern's light"),
    }


def found(client, q: str, prompts) -> set[str]:
    html = client.get("/", {"q": q}, **htmx("gallery-results")).content.decode()
    return {name for name, gen in prompts.items() if f'id="card-{gen.pk}"' in html}


def test_search_finds_every_word_in_any_order_whatever_the_case(client, prompts):
    assert found(client, "snow fox", prompts) == {"fox"}
    assert found(client, "SNOW  FOX", prompts) == {"fox"}
    assert found(client, "fox", prompts) == {"fox", "den"}
    assert found(client, "deep red fox snow running", prompts) == {"fox"}
    assert found(client, "fox roof", prompts) == set()  # every word, not any


def test_search_reads_the_services_rewritten_prompt_too(client, prompts):
    assert found(client, "glowing", prompts) == {"rewritten"}
    assert found(client, "dusk glowing boat", prompts) == {"rewritten"}  # across both prompts
    assert found(client, "paper-boat", prompts) == {"rewritten"}


def test_search_finds_the_start_of_a_word_as_it_is_typed(client, prompts):
    assert found(client, "lant", prompts) == {"quote"}
    assert found(client, "fo sno", prompts) == {"fox"}


@pytest.mark.parametrize(
    "q",
    [
        "don't",
        "lantern's",
        "'",
        "\\",
        "a\\'b",
        "fox:* | !snow",
        "fox & (snow",
        "<-> <2>",
        "!!!",
        "“fox”,",
        "x" * 200,
        " ".join(["fox"] * 40),
        "%_%",
        "Ünïcode 日本",
    ],
)
def test_search_takes_any_text_without_failing(client, prompts, q):
    response = client.get("/", {"q": q})
    assert response.status_code == 200
    if q in ("don't", "lantern's", "“fox”,"):
        assert found(client, q, prompts) == ({"fox", "den"} if "fox" in q else {"quote"})


def test_a_search_of_punctuation_alone_matches_it_as_text(client, prompts):
    assert found(client, ":", prompts) == {"quote"}
    assert found(client, "!!!", prompts) == set()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's own index")
def test_postgres_searches_on_the_trigram_indexes(client, prompts):
    """Issue 12: trigram GIN indexes on both prompts (migration 0019), the expressions the
    search's ``icontains`` compares, so a rare word reads a few index pages instead of testing
    every finished row in the gallery's order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'gen_%%trgm'"
        )
        definitions = dict(cursor.fetchall())
    assert set(definitions) == {"gen_user_prompt_trgm", "gen_prompt_trgm"}
    assert all("gin_trgm_ops" in d and "upper(" in d for d in definitions.values()), definitions
    # The indexes serve the search's own condition (the expressions match): with sequential
    # scans and the ordered index priced out, the planner has no other way to read it.
    query = queries.search(Generation.objects.all(), "snow fox")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    assert "gen_user_prompt_trgm" in plan and "gen_prompt_trgm" in plan, plan


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite has no such index")
def test_sqlite_migrates_without_the_postgres_index(db):
    with connection.cursor() as cursor:
        names = [
            index
            for index in connection.introspection.get_constraints(cursor, Generation._meta.db_table)
        ]
    assert "gen_status_completed_id" in names and "gen_prompt_search" not in names


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan")
def test_postgres_answers_anything_new_from_the_first_row_of_an_index(db):
    """The live gallery's "nothing new?" is an index scan that stops at its first row: no sort,
    no aggregate over the table."""
    for _ in range(5):
        make_gen()
    with CaptureQueriesContext(connection) as ctx:
        queries.newest_finished()
    (query,) = ctx.captured_queries
    with connection.cursor() as cursor:
        # With a handful of rows the planner may prefer another index and a sort; with sorts
        # and scans priced out, it reads this order from an index only if one serves it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "gen_status_completed_id" in plan and "Sort" not in plan, plan
    assert "Aggregate" not in plan
