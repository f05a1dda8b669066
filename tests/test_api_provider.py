"""GET /api/v1/provider (issue 11 #2): the provider's name, label, capabilities, concept keys
and cost unit for everyone signed in; the account's credit balance for admins only (null for
everyone else, and where the provider has none); a balance the service cannot give is null with
a reason, never a 500 and never the key."""

from django.core.cache import cache
from django.test import Client

from devtools.simulator_process import SimulatorProcess
from generations import actions
from generations.models import Role
from generations.providers.luma import Luma
from generations.providers.umamiai import UmamiAI
from tests.factories import make_user, offer_concepts


def _client(name, role=None):
    person = make_user(name)
    if role:
        actions.set_member(None, person, role=role)
    client = Client()
    client.force_login(person)
    return client


def test_anonymous_gets_401(db):
    assert Client().get("/api/v1/provider").status_code == 401


def test_umamiai_answers_its_capabilities_and_no_balance(db):
    body = _client("boss", Role.ADMIN).get("/api/v1/provider").json()
    assert body["name"] == "umamiai" and body["label"] == UmamiAI.label
    assert body["capabilities"] == UmamiAI.capabilities.as_json()
    assert body["capabilities"]["reverse_extend"] is False
    assert (body["concepts"], body["credit_balance"], body["cost_unit"]) == ([], None, "tokens")


def test_luma_answers_its_capabilities_and_concepts(db, settings):
    settings.LUMA_PROVIDER = "luma"
    key = offer_concepts(["dolly_zoom"])
    body = _client("alice").get("/api/v1/provider").json()
    cache.delete(key)
    assert body["name"] == "luma" and body["capabilities"] == Luma.capabilities.as_json()
    assert body["capabilities"]["interpolate"] is True
    assert body["concepts"] == ["dolly_zoom"] and body["cost_unit"] == "credits"
    assert body["credit_balance"] is None  # not an admin: never the balance
    assert "credit_balance_error" not in body


def test_an_admin_is_told_when_the_balance_cannot_be_fetched(db, settings):
    settings.LUMA_PROVIDER = "luma"
    settings.LUMA_API_BASE_URL = "http://127.0.0.1:8452/dream-machine/v1"  # nothing listens
    settings.LUMA_API_KEY = "luma-secret-key"
    response = _client("boss", Role.ADMIN).get("/api/v1/provider")
    assert response.status_code == 200
    body = response.json()
    assert body["credit_balance"] is None and "could not be fetched" in body["credit_balance_error"]
    assert "luma-secret-key" not in response.content.decode()


def test_an_admin_reads_the_balance_from_the_service(db, settings):
    sim = SimulatorProcess(dialect="luma", duration=2, video_seconds=1, credits=12_345)
    sim.start()
    try:
        settings.LUMA_API_BASE_URL = sim.api_url
        settings.LUMA_PROVIDER = "luma"
        body = _client("boss", Role.ADMIN).get("/api/v1/provider").json()
    finally:
        sim.stop()
    assert body["credit_balance"] == 12_345
