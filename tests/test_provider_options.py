"""Request options only some providers can do (issue 11 #2): the create form and the JSON API
offer them with the official Luma API (``LUMA_PROVIDER=luma``) and refuse them, with a reason
that names the field and the provider, with UmamiAI (the default). Also what the API's
``start_generation_id`` / ``end_generation_id`` make, and ``GET /api/v1/provider``."""

import json

import pytest
from django.core.cache import cache
from django.test import Client

from generations import actions
from generations.forms import CreateForm, ExtendForm
from generations.inputs import GenerationRequest
from generations.models import Generation, Kind, Role, Status
from generations.providers.luma import Luma
from tests.factories import make_user, offer_concepts

OPTIONS = ("model", "resolution", "duration", "loop", "concepts")
# Luma's concept list, as its GET /generations/concepts/list answers it, put where lumaweb
# keeps it (tests.factories.offer_concepts): no service is asked.
CONCEPTS = ["dolly_zoom", "orbit_left", "crane_up"]


@pytest.fixture
def luma(settings):
    settings.LUMA_PROVIDER = "luma"
    key = offer_concepts(CONCEPTS)
    yield settings
    cache.delete(key)


@pytest.fixture
def api(db):
    client = Client()
    client.force_login(make_user())
    return client


def post(client, body, path="/api/v1/generations"):
    return client.post(path, json.dumps(body), content_type="application/json")


def finished(prompt="done", remote_id="r-1", ratio="16:9"):
    return Generation.objects.create(
        user_prompt=prompt, status=Status.COMPLETED, remote_id=remote_id, aspect_ratio=ratio
    )


# --- the form -------------------------------------------------------------------------------------
def test_with_umamiai_the_form_has_no_option_fields(db):
    form = CreateForm()
    assert not set(OPTIONS) & set(form.fields)
    assert not set(OPTIONS) & set(ExtendForm().fields)


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", "ray-2"), ("resolution", "720p"), ("duration", "5s"), ("loop", "on")],
)
def test_with_umamiai_a_form_that_sets_an_option_is_refused_by_name(db, field, value):
    form = CreateForm({"user_prompt": "a cat", "aspect_ratio": "16:9", field: value})
    assert not form.is_valid()
    assert any(
        error.startswith(f"{field}: UmamiAI") and "cannot" in error
        for error in form.non_field_errors()
    )


def test_with_umamiai_an_option_left_at_its_default_is_no_refusal(db):
    form = CreateForm({"user_prompt": "a cat", "aspect_ratio": "16:9", "loop": "false"})
    assert form.is_valid(), form.errors


def test_with_luma_the_form_offers_the_providers_lists_and_defaults(db, luma):
    form = CreateForm()
    assert [value for value, _ in form.fields["model"].choices] == list(Luma.capabilities.models)
    assert form.fields["model"].initial == "ray-2"
    assert form.fields["resolution"].initial == "720p"
    assert form.fields["duration"].initial == "5s"
    assert [key for key, _ in form.fields["concepts"].choices] == CONCEPTS
    assert not any(form.fields[name].required for name in OPTIONS)


def test_with_luma_the_chosen_options_reach_the_request(db, luma):
    data = {"user_prompt": "a cat", "aspect_ratio": "16:9", "model": "ray-flash-2"}
    data |= {"resolution": "1080p", "duration": "9s", "loop": "on"}
    form = CreateForm({**data, "concepts": ["orbit_left", "dolly_zoom"]})
    assert form.is_valid(), form.errors
    request = form.to_request()
    assert (request.model, request.resolution, request.duration, request.loop) == (
        "ray-flash-2",
        "1080p",
        "9s",
        True,
    )
    assert request.concepts == "orbit_left,dolly_zoom"


def test_with_luma_an_unknown_value_is_refused_with_the_allowed_ones(db, luma):
    form = CreateForm(
        {"user_prompt": "a", "aspect_ratio": "16:9", "model": "ray-9", "concepts": ["spin"]}
    )
    assert not form.is_valid()
    assert "ray-2, ray-flash-2, ray-1-6" in form.errors["model"][0]
    assert "dolly_zoom" in form.errors["concepts"][0] and "spin" in form.errors["concepts"][0]


def test_the_create_page_draws_the_option_fields_only_with_luma(db, luma):
    client = Client()
    client.force_login(make_user())
    luma.LUMA_PROVIDER = "umamiai"
    plain = client.get("/generations/new/").content.decode()
    assert 'name="model"' not in plain and 'name="concepts"' not in plain
    luma.LUMA_PROVIDER = "luma"
    page = client.get("/generations/new/").content.decode()
    for name in OPTIONS:
        assert f'name="{name}"' in page
    assert 'value="dolly_zoom"' in page


def test_a_page_post_with_an_option_umamiai_cannot_do_is_400_and_queues_nothing(db):
    client = Client()
    client.force_login(make_user())
    response = client.post(
        "/generations/new/", {"user_prompt": "x", "aspect_ratio": "16:9", "model": "ray-2"}
    )
    assert response.status_code == 400
    assert "model: UmamiAI" in response.content.decode()
    assert not Generation.objects.exists()


# --- actions: one rule with extend --------------------------------------------------------------
def test_actions_refuse_an_option_the_provider_cannot_do(db):
    with pytest.raises(actions.ServiceError, match="cannot choose the model"):
        actions.create_generation(None, GenerationRequest(user_prompt="x", model="ray-2"))


def test_umamiai_cannot_make_what_came_before_or_interpolate(db):
    a, b = finished("a", "r-a"), finished("b", "r-b")
    request = GenerationRequest(user_prompt="x")
    with pytest.raises(actions.ServiceError, match="cannot make what came before"):
        actions.reverse_extend_generation(a, None, request)
    with pytest.raises(actions.ServiceError, match="cannot make an interpolation"):
        actions.interpolate_generations(a, b, None, request)
    assert Generation.objects.count() == 2


def test_reverse_and_interpolate_copy_the_sources_upstream_ids(db, luma):
    a, b = finished("a", "r-a"), finished("b", "r-b")
    request = GenerationRequest(user_prompt="x")
    before = actions.reverse_extend_generation(a, None, request)
    assert (before.kind, before.parent_id, before.parent_remote_id) == (Kind.REVERSE, a.pk, "r-a")
    between = actions.interpolate_generations(a, b, None, request)
    assert (between.kind, between.parent_id, between.end_parent_id) == (
        Kind.INTERPOLATE,
        a.pk,
        b.pk,
    )
    assert (between.parent_remote_id, between.end_parent_remote_id) == ("r-a", "r-b")
    assert between.events.first().note == f"interpolation from {a.pk} to {b.pk}"


def test_reverse_and_interpolate_refuse_an_unfinished_source(db, luma):
    a = finished("a", "r-a")
    running = Generation.objects.create(user_prompt="r", status=Status.IN_PROGRESS)
    no_id = Generation.objects.create(user_prompt="n", status=Status.COMPLETED)
    request = GenerationRequest(user_prompt="x")
    with pytest.raises(actions.ServiceError, match="Only a finished video"):
        actions.reverse_extend_generation(running, None, request)
    with pytest.raises(actions.ServiceError, match="two finished videos"):
        actions.interpolate_generations(a, no_id, None, request)
    with pytest.raises(actions.ServiceError, match="two different videos"):
        actions.interpolate_generations(a, a, None, request)


def test_a_viewer_cannot_make_what_came_before(db, luma):
    viewer = make_user("vic")
    actions.set_member(None, viewer, role=Role.VIEWER)
    with pytest.raises(actions.NotAllowed):
        actions.reverse_extend_generation(finished(), viewer, GenerationRequest(user_prompt="x"))


def test_the_idempotency_key_tells_kinds_and_end_videos_apart(db, luma):
    alice = make_user()
    a, b, c = finished("a", "r-a"), finished("b", "r-b"), finished("c", "r-c")
    request = GenerationRequest(user_prompt="x")
    first = actions.interpolate_generations(a, b, alice, request, idempotency_key="k1")
    with pytest.raises(actions.AlreadySubmitted) as replay:
        actions.interpolate_generations(a, b, alice, request, idempotency_key="k1")
    assert replay.value.generation == first
    with pytest.raises(actions.KeyReused):
        actions.interpolate_generations(a, c, alice, request, idempotency_key="k1")
    with pytest.raises(actions.KeyReused):
        actions.reverse_extend_generation(a, alice, request, idempotency_key="k1")
    with pytest.raises(actions.KeyReused):
        actions.extend_generation(a, alice, request, idempotency_key="k1")


# --- the JSON API ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "ray-2"),
        ("resolution", "4k"),
        ("duration", "9s"),
        ("loop", True),
        ("concepts", ["dolly_zoom"]),
        ("concepts", "dolly_zoom"),
    ],
)
def test_api_with_umamiai_refuses_an_option_naming_field_and_provider(api, field, value):
    response = post(api, {"user_prompt": "x", field: value})
    assert response.status_code == 400
    reason = response.json()["fields"][field][0]
    assert reason.startswith(f"{field}: UmamiAI") and "cannot" in reason
    assert not Generation.objects.exists()


def test_api_with_umamiai_takes_options_left_at_their_defaults(api):
    response = post(api, {"user_prompt": "x", "loop": False, "model": "", "concepts": []})
    assert response.status_code == 201, response.json()


def test_api_with_luma_stores_the_options(api, luma):
    body = {"user_prompt": "x", "model": "ray-1-6", "resolution": "540p", "duration": "9s"}
    response = post(api, {**body, "loop": True, "concepts": ["crane_up", "orbit_left"]})
    assert response.status_code == 201, response.json()
    gen = Generation.objects.get()
    assert (gen.model, gen.resolution, gen.duration, gen.loop) == ("ray-1-6", "540p", "9s", True)
    assert gen.concepts == "crane_up,orbit_left"
    post(api, {"user_prompt": "y", "concepts": "dolly_zoom, crane_up"})
    assert Generation.objects.get(user_prompt="y").concepts == "dolly_zoom,crane_up"


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("model", "ray-9", "ray-2, ray-flash-2, ray-1-6"),
        ("resolution", "8k", "540p, 720p, 1080p, 4k"),
        ("duration", "7s", "5s, 9s"),
        ("concepts", ["spin"], "dolly_zoom, orbit_left, crane_up"),
    ],
)
def test_api_with_luma_refuses_unknown_values_listing_the_allowed(api, luma, field, value, allowed):
    response = post(api, {"user_prompt": "x", field: value})
    assert response.status_code == 400
    assert allowed in response.json()["fields"][field][0]


def test_api_start_end_and_both_make_the_three_kinds(api, luma):
    a, b = finished("a", "r-a", "9:16"), finished("b", "r-b")
    start = post(api, {"user_prompt": "after", "start_generation_id": str(a.pk)})
    end = post(api, {"user_prompt": "before", "end_generation_id": str(a.pk)})
    both = post(
        api,
        {
            "user_prompt": "between",
            "start_generation_id": str(a.pk),
            "end_generation_id": str(b.pk),
        },
    )
    assert [r.status_code for r in (start, end, both)] == [201, 201, 201]
    rows = {g.user_prompt: g for g in Generation.objects.exclude(pk__in=[a.pk, b.pk])}
    assert rows["after"].kind == Kind.EXTEND and rows["after"].parent_remote_id == "r-a"
    assert rows["before"].kind == Kind.REVERSE and rows["before"].parent_id == a.pk
    assert rows["before"].aspect_ratio == "9:16"  # the shape follows the source
    assert rows["between"].kind == Kind.INTERPOLATE
    assert rows["between"].end_parent_remote_id == "r-b"


def test_api_with_umamiai_refuses_end_generation_id_naming_the_provider(api):
    a, b = finished("a", "r-a"), finished("b", "r-b")
    alone = post(api, {"user_prompt": "x", "end_generation_id": str(a.pk)})
    both = post(
        api, {"user_prompt": "x", "start_generation_id": str(a.pk), "end_generation_id": str(b.pk)}
    )
    for response in (alone, both):
        assert response.status_code == 400
        reason = response.json()["fields"]["end_generation_id"][0]
        assert "UmamiAI" in reason and "cannot" in reason
    # start only is an extension, which every provider can make
    assert post(api, {"user_prompt": "x", "start_generation_id": str(a.pk)}).status_code == 201


def test_api_sources_that_are_wrong_answer_400_or_409(api, luma):
    running = Generation.objects.create(user_prompt="r", status=Status.IN_PROGRESS)
    assert post(api, {"user_prompt": "x", "end_generation_id": "nope"}).status_code == 400
    gone = post(api, {"user_prompt": "x", "end_generation_id": "0" * 32})
    assert gone.status_code == 400 and "no such" in gone.json()["fields"]["end_generation_id"][0]
    assert post(api, {"user_prompt": "x", "end_generation_id": str(running.pk)}).status_code == 409
    batch = post(api, {"user_prompts": ["a", "b"], "end_generation_id": str(finished().pk)})
    assert batch.status_code == 400 and "user_prompts" in batch.json()["error"]


def test_api_extend_with_umamiai_refuses_an_option_by_name(api):
    parent = finished()
    response = post(
        api, {"user_prompt": "x", "duration": "9s"}, f"/api/v1/generations/{parent.pk}/extend"
    )
    assert response.status_code == 400
    assert response.json()["fields"]["duration"][0].startswith("duration: UmamiAI")
