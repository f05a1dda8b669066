"""The admins' webhooks page (/team/webhooks/): list, add, pause, remove and the delivery log,
plain and through htmx; 403 for anyone else; the secret never in a page after it was set."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from generations import actions, pipeline
from generations.models import Member, Role, Status, Webhook, WebhookDelivery
from generations.pipeline import transitions as t
from tests.factories import make_user
from tests.pages.conftest import htmx, make_gen
from tests.webhook_receiver import Receiver

SECRET = "whsec_page-secret-0b7e4c2d9a"


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(make_user("root", is_superuser=True, is_staff=True))
    return client


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    received = Receiver(SECRET, answers=[500])
    yield received
    received.close()


def test_the_page_is_for_admins_only(db):
    creator = Client()
    creator.force_login(make_user("carol"))
    assert creator.get(reverse("team-webhooks")).status_code == 403
    assert creator.post(reverse("team-webhooks"), {"url": "https://x.example/"}).status_code == 403
    viewer_user = make_user("vera")
    Member.objects.create(user=viewer_user, role=Role.VIEWER)
    viewer = Client()
    viewer.force_login(viewer_user)
    assert viewer.get(reverse("team-webhooks")).status_code == 403
    assert not Webhook.objects.exists()
    anonymous = Client().get(reverse("team-webhooks"))
    assert anonymous.status_code == 302 and "/login" in anonymous["Location"]


def test_an_admin_role_may_manage_webhooks(db):
    person = make_user("ada")
    Member.objects.create(user=person, role=Role.ADMIN)
    client = Client()
    client.force_login(person)
    assert client.get(reverse("team-webhooks")).status_code == 200


def test_an_admin_adds_a_webhook_with_a_typed_secret_which_no_page_shows(admin_client, receiver):
    response = admin_client.post(
        reverse("team-webhooks"),
        {"url": receiver.url, "secret": SECRET, "events": ["completed", "failed"]},
        follow=True,
    )
    assert response.status_code == 200
    hook = Webhook.objects.get()
    assert hook.secret == SECRET and hook.event_list == ["completed", "failed"]
    assert hook.created_by is not None and hook.created_by.username == "root"
    page = response.content.decode()
    assert receiver.url in page and "Webhook added" in page
    assert SECRET not in page
    # A delivery that failed once shows in the log, with its answer, and still no secret.
    gen = make_gen(Status.IN_PROGRESS)
    assert t.fail(gen.pk, [Status.IN_PROGRESS], note="x", error="broke")
    pipeline.deliver(WebhookDelivery.objects.get().pk)
    page = admin_client.get(reverse("team-webhooks")).content.decode()
    assert "generation.failed" in page and "answered 500" in page and "Pending" in page
    assert SECRET not in page
    fragment = admin_client.get(reverse("team-webhooks"), **htmx("webhooks")).content.decode()
    assert fragment.lstrip().startswith('<div id="webhooks"') and SECRET not in fragment


def test_a_secret_left_blank_is_drawn_and_shown_once(admin_client, receiver):
    response = admin_client.post(
        reverse("team-webhooks"), {"url": receiver.url, "events": ["completed"]}
    )
    hook = Webhook.objects.get()
    assert len(hook.secret) >= 32
    assert hook.secret in response.content.decode(), "the drawn secret is shown in its answer"
    assert "no-store" in response["Cache-Control"]
    # An error report (Django's mail to the admins, a debug page) would show it as stars.
    assert response.wsgi_request.sensitive_post_parameters == ("secret",)
    assert hook.secret not in admin_client.get(reverse("team-webhooks")).content.decode()


def test_a_private_address_is_refused_with_a_message_and_the_url_kept(admin_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = admin_client.post(
        reverse("team-webhooks"),
        {"url": "http://127.0.0.1:9000/hook", "secret": SECRET, "events": ["failed"]},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "WEBHOOK_ALLOW_PRIVATE" in page and 'value="http://127.0.0.1:9000/hook"' in page
    assert SECRET not in page and "Type the secret again" in page
    assert not Webhook.objects.exists()
    fragment = admin_client.post(
        reverse("team-webhooks"), {"url": "nope", "secret": SECRET}, **htmx("webhooks")
    )
    assert fragment.status_code == 200 and b"<html" not in fragment.content  # htmx swaps 2xx
    assert b"must start with http" in fragment.content


def test_pause_resume_and_remove_plain_and_htmx(admin_client, receiver):
    hook = actions.add_webhook(None, receiver.url, SECRET)
    paused = admin_client.post(
        reverse("team-webhook-active", args=[hook.pk]), {"active": "no"}, **htmx("webhooks")
    )
    assert paused.status_code == 200 and b"Resume" in paused.content
    assert not Webhook.objects.get().active
    resumed = admin_client.post(reverse("team-webhook-active", args=[hook.pk]), {"active": "yes"})
    assert resumed.status_code == 302 and Webhook.objects.get().active
    removed = admin_client.post(reverse("team-webhook-remove", args=[hook.pk]), follow=True)
    assert b"Webhook %d removed" % hook.pk in removed.content
    assert not Webhook.objects.exists()
    missing = admin_client.post(reverse("team-webhook-remove", args=[hook.pk]), follow=True)
    assert b"There is no webhook" in missing.content


def test_the_account_menu_links_the_page_for_admins_only(admin_client, db):
    assert reverse("team-webhooks").encode() in admin_client.get(reverse("jobs")).content
    creator = Client()
    creator.force_login(make_user("carol"))
    assert reverse("team-webhooks").encode() not in creator.get(reverse("jobs")).content
