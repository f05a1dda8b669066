"""``expand_prompt`` (UmamiAI's prompt enhancer) is not in Luma's official API: with
``LUMA_PROVIDER=luma`` the switch is not drawn (it would do nothing) and the API refuses it
by name, like any other field the provider cannot do; with UmamiAI nothing changes."""

import json

import pytest
from django.test import Client

from generations.models import Generation, Status
from tests.factories import make_user


@pytest.fixture
def api(db):
    client = Client()
    client.force_login(make_user())
    return client


def post(client, body, path="/api/v1/generations"):
    return client.post(path, json.dumps(body), content_type="application/json")


def test_with_luma_the_create_page_has_no_enhance_switch(api, settings):
    settings.LUMA_PROVIDER = "luma"
    page = api.get("/generations/new/").content.decode()
    assert 'name="user_prompt"' in page and 'name="expand_prompt"' not in page


def test_with_umamiai_the_create_page_keeps_the_enhance_switch(api):
    assert 'name="expand_prompt"' in api.get("/generations/new/").content.decode()


def test_with_luma_the_api_refuses_expand_prompt_by_name(api, settings):
    settings.LUMA_PROVIDER = "luma"
    response = post(api, {"user_prompt": "x", "expand_prompt": True})
    assert response.status_code == 400
    reason = response.json()["fields"]["expand_prompt"][0]
    assert reason.startswith("expand_prompt: Luma") and "cannot" in reason
    assert not Generation.objects.exists()
    assert post(api, {"user_prompt": "x", "expand_prompt": False}).status_code == 201


def test_with_luma_an_extend_form_has_no_enhance_switch(api, settings):
    settings.LUMA_PROVIDER = "luma"
    gen = Generation.objects.create(user_prompt="p", status=Status.COMPLETED, remote_id="r-1")
    page = api.get(f"/generations/{gen.pk}/").content.decode()
    assert "Extend" in page and 'name="expand_prompt"' not in page
