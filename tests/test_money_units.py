"""Issue 11, point 3: money in the provider's unit. Every row that can send a POST records what
one POST of it costs (``unit_cost``, priced by the provider when the row is made); the month's
sums price each row's POSTs at its own cost; a row older than per-row pricing (``unit_cost`` 0)
counts at ``LUMA_TOKENS_PER_GENERATION`` where the installation counts in tokens, and at nothing
where it counts in credits (tokens are no credits: never mixed in).

Luma's own prices are being written elsewhere (``generations/providers/luma.py`` is a skeleton
whose ``unit_cost`` raises); ``priced_luma`` stands in a Luma provider priced from a small table,
so that the credits side can be tested before it lands. Nothing else is faked."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import close_old_connections
from django.utils import timezone

from generations import actions, money, pipeline, providers
from generations.inputs import GenerationRequest
from generations.models import DeletedSpending, Generation, Member, Status, Team
from generations.providers.luma import Luma
from tests.conftest import wait_for
from tests.factories import make_user
from tests.pages.conftest import make_gen

COST = 500_000

# Credits (US cents) by model, resolution and duration: made-up prices, for the tests only.
PRICES = {
    ("ray-2", "720p", "5s"): 320,
    ("ray-2", "1080p", "5s"): 700,
    ("ray-flash-2", "720p", "5s"): 110,
}


class PricedLuma(Luma):
    """Luma's capabilities (credits; models, resolutions, durations), priced from ``PRICES``:
    any other choice costs 1,000 credits."""

    def unit_cost(self, request: GenerationRequest) -> int:
        key = (request.model or "ray-2", request.resolution or "720p", request.duration or "5s")
        return PRICES.get(key, 1_000)


@pytest.fixture(autouse=True)
def _cost(settings) -> None:
    settings.LUMA_TOKENS_PER_GENERATION = COST


def use_priced_luma(settings, monkeypatch) -> providers.Provider:
    """Make ``PricedLuma`` the installation's provider for one test."""
    monkeypatch.setitem(providers.PROVIDERS, "luma", f"{__name__}.PricedLuma")
    monkeypatch.setattr(providers, "_local", type(providers._local)())  # no provider kept
    settings.LUMA_PROVIDER = "luma"
    assert isinstance(providers.current(), PricedLuma)
    return providers.current()


@pytest.fixture
def priced_luma(settings, monkeypatch):
    return use_priced_luma(settings, monkeypatch)


def ask(prompt: str = "a cat", **options) -> GenerationRequest:
    return GenerationRequest(user_prompt=prompt, **options)


# --- the sums -------------------------------------------------------------------------------------
def test_each_row_counts_its_posts_at_its_own_unit_cost(db):
    carol = make_user("carol")
    make_gen(Status.COMPLETED, user=carol, unit_cost=100)  # spent
    # Spent twice, the second POST never confirmed (one upstream id): possibly charged.
    make_gen(Status.COMPLETED, user=carol, unit_cost=250, posts_sent=2)
    make_gen(Status.NEEDS_ATTENTION, user=carol, remote_id=None, unit_cost=30)  # possibly
    make_gen(Status.QUEUED, user=carol, unit_cost=40, posts_authorized=1)  # reserved
    make_gen(Status.FAILED, user=carol, state="failed", unit_cost=7)  # refunded
    make_gen(Status.COMPLETED, user=carol)  # older than per-row prices: the configured tokens
    DeletedSpending.objects.create(
        user=carol, billed_at=money.month_window()[0] + timedelta(hours=1), spent=2, unit_cost=9
    )
    usage = money.month_usage().of(carol.pk)
    assert usage == money.Usage(
        spent=100 + 2 * 250 + 30 + COST + 2 * 9,
        possibly=250 + 30,
        reserved=40,
        refunded=7,
        generations=7,
    )
    # The day-by-day sums and the report read the same expressions.
    assert money.month_days().month.of(carol.pk) == usage
    assert money.usage_report(carol).people[0].usage == usage


def test_a_deleted_row_keeps_its_price_with_its_posts(db):
    carol = make_user("carol")
    gen = make_gen(Status.COMPLETED, user=carol, unit_cost=1_234)
    before = money.month_usage().of(carol.pk)
    actions.delete_generation(gen, carol)
    kept = DeletedSpending.objects.get()
    assert (kept.spent, kept.unit_cost) == (1, 1_234)
    assert money.month_usage().of(carol.pk) == before == money.Usage(spent=1_234, generations=1)


def test_with_credits_a_row_older_than_per_row_prices_counts_no_tokens_as_credits(db, priced_luma):
    carol = make_user("carol")
    make_gen(Status.COMPLETED, user=carol)  # an UmamiAI job: 500,000 tokens are no credits
    make_gen(Status.COMPLETED, user=carol, unit_cost=320)
    # Counted as a generation, at no price, and said so (``unpriced``): never mixed in silently.
    assert money.month_usage().of(carol.pk) == money.Usage(spent=320, generations=2, unpriced=1)


def test_with_tokens_a_row_older_than_per_row_prices_is_priced_not_unpriced(db):
    carol = make_user("carol")
    make_gen(Status.COMPLETED, user=carol)
    assert money.month_usage().of(carol.pk) == money.Usage(spent=COST, generations=1)


# --- rows record their price ----------------------------------------------------------------------
def test_a_create_records_the_providers_price_in_tokens(db):
    gen = actions.create_generation(make_user(), ask())
    assert gen.unit_cost == COST
    assert money.unit() == "tokens"


def test_a_batch_prices_each_row_by_its_own_options(db, priced_luma):
    made = actions.create_generations(
        make_user(),
        [ask("one"), ask("two", resolution="1080p"), ask("three", model="ray-flash-2")],
    )
    assert [gen.unit_cost for gen in made] == [320, 700, 110]
    assert money.month_usage().team.reserved == 320 + 700 + 110


def test_an_extension_records_its_price(db, priced_luma):
    owner = make_user()
    parent = make_gen(Status.COMPLETED, user=owner, unit_cost=320)
    child = actions.extend_generation(parent, owner, ask("more", model="ray-flash-2"))
    assert child.unit_cost == 110


def test_a_retry_prices_the_row_again(db):
    owner = make_user()
    gen = make_gen(Status.FAILED, user=owner, state="failed")  # older than per-row prices
    assert gen.unit_cost == 0
    retried = actions.retry_generation(gen, owner)
    assert retried.unit_cost == COST


def test_a_late_answer_kept_as_its_own_row_keeps_the_price_of_the_post_that_went_out(
    transactional_db, sim, settings
):
    """As in test_submit's late answers: a slow POST the sweeper gave up on, retried meanwhile
    (the row is priced again), then answered: the kept row is priced as that POST was."""
    owner = make_user()
    gen = Generation.objects.create(
        user_prompt="late and priced", created_by=owner, enqueued_at=timezone.now(), unit_cost=4_321
    )
    sim.configure(slow_rate=1.0, slow_seconds=1.5)
    result = []
    worker = threading.Thread(
        target=lambda: (result.append(pipeline.submit(gen.pk).result), close_old_connections())
    )
    worker.start()
    wait_for(
        lambda: Generation.objects.filter(pk=gen.pk, post_started_at__isnull=False).exists(),
        5,
        "the POST to be sent",
    )
    settings.LUMA_SUBMIT_STALE_AFTER = 0.01
    time.sleep(0.05)
    assert pipeline.sweep().needs_attention == 1
    actions.retry_generation(Generation.objects.get(pk=gen.pk), owner, confirm_second_charge=True)
    worker.join(10)
    sim.configure(slow_rate=0.0)
    assert result == ["adopted"]
    kept = Generation.objects.exclude(pk=gen.pk).get(user_prompt="late and priced")
    assert kept.unit_cost == 4_321  # the POST that went out, at the price it went out with
    assert Generation.objects.get(pk=gen.pk).unit_cost == COST  # the retry, priced anew


# --- budgets in the provider's unit ---------------------------------------------------------------
def test_a_budget_in_credits_refuses_what_the_chosen_options_cost(db, priced_luma):
    carol = make_user("carol")
    Member.objects.create(user=carol, monthly_budget=1_000)
    make_gen(Status.COMPLETED, user=carol, unit_cost=320)  # 680 credits left
    actions.create_generation(carol, ask("cheap", model="ray-flash-2"))  # 110: fits, 570 left
    with pytest.raises(actions.OverBudget) as refused:
        actions.create_generation(carol, ask("big", resolution="1080p"))  # 700 > 570
    assert "It costs 700 credits and 570 are left" in str(refused.value)
    assert refused.value.budget["cost"] == 700
    assert refused.value.budget["person"]["left"] == 570
    # A batch is the sum of its rows' prices: 320 + 110 = 430 fits; nothing was queued above.
    made = actions.create_generations(carol, [ask("a"), ask("b", model="ray-flash-2")])
    assert len(made) == 2
    assert money.allowance(carol).person_left == 1_000 - 320 - 110 - 320 - 110


def test_the_teams_budget_in_credits_counts_every_rows_price(db, priced_luma):
    team = Team.current()
    team.monthly_budget = 500
    team.save()
    make_gen(Status.COMPLETED, user=make_user("dave"), unit_cost=320)
    with pytest.raises(actions.OverBudget) as refused:
        actions.create_generation(make_user("carol"), ask("x"))  # 320 > 180 left
    assert refused.value.budget["exceeded"] == "team"
    assert "the team's monthly budget" in str(refused.value)
    assert "320 credits" in str(refused.value)


def test_a_budget_in_tokens_is_refused_in_tokens_as_before(db):
    carol = make_user("carol")
    Member.objects.create(user=carol, monthly_budget=COST)
    actions.create_generation(carol, ask())
    with pytest.raises(actions.OverBudget) as refused:
        actions.create_generation(carol, ask())
    assert f"It costs {COST:,} tokens and 0 are left" in str(refused.value)


# --- what the unit is called ----------------------------------------------------------------------
def test_the_unit_and_prices_follow_the_provider(db, priced_luma):
    assert money.unit() == "credits"
    assert money.unit_note() == "1 credit = 1 US cent"
    assert money.amount(1_500) == "1,500 credits"
    assert money.default_cost() == 320
    table = money.price_table()
    assert table is not None
    assert table["options"] == ["model", "resolution", "duration"]
    assert table["default"] == {"model": "ray-2", "resolution": "720p", "duration": "5s"}
    assert table["prices"]["ray-flash-2|720p|5s"] == 110
    assert money.cost_of_options({"model": "ray-flash-2", "resolution": "nonsense"}) == 110


def test_with_tokens_there_is_one_price_and_no_table(db):
    assert money.price_table() is None
    assert money.default_cost() == COST
    assert money.unit_note() == ""


def test_manage_py_team_speaks_credits_with_luma(db, priced_luma, capsys):
    call_command("team", "budget", "5000")
    assert "Team budget: 5,000 credits a month." in capsys.readouterr().out
    call_command("team", "list")
    assert "Credits (1 credit = 1 US cent); 'possibly' is part of spent." in capsys.readouterr().out


def test_manage_py_team_speaks_tokens_with_umamiai(db, capsys):
    call_command("team", "budget", "5000")
    assert "Team budget: 5,000 tokens a month." in capsys.readouterr().out
