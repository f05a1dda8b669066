"""Webhooks through the whole pipeline: a real worker and beat complete a job against the
simulator, and a real receiver on 127.0.0.1 gets ``generation.completed`` (once the local copy
is made), signed, after it first answered 500 (the worker tries again with the same delivery id)."""

from __future__ import annotations

import pytest
from django.test import Client

from generations import actions
from generations.models import DeliveryStatus, WebhookDelivery
from tests.conftest import wait_for
from tests.factories import make_user
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.pipeline

SECRET = "whsec_pipeline-secret-8c1e55"


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    received = Receiver(SECRET)
    yield received
    received.close()


def test_a_finished_job_reaches_the_receiver_signed_after_a_first_500(pipeline, receiver):
    receiver.answers = [500]
    actions.add_webhook(None, receiver.url, SECRET, "completed")
    api = Client()
    api.force_login(make_user())
    response = api.post(
        "/api/v1/generations",
        {"user_prompt": "a paper boat at dusk", "aspect_ratio": "16:9"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    gen_id = response.json()["id"]

    try:
        wait_for(lambda: len(receiver.received) >= 2, 60, "a retried webhook delivery")
    except BaseException:
        print(pipeline.logs())
        raise
    first, second = receiver.received[:2]
    assert (first.answered, second.answered) == (500, 200)
    assert first.signature_ok and second.signature_ok
    assert first.headers["x-lumaweb-delivery"] == second.headers["x-lumaweb-delivery"]
    assert second.headers["x-lumaweb-event"] == "generation.completed"
    assert second.json["event"] == "generation.completed"
    assert second.json["generation"]["id"] == gen_id
    assert second.json["generation"]["status"] == "completed"
    # Sent once the local copy was made: the body points at lumaweb's own file (the CDN's
    # link, which expires, only beside it).
    video = second.json["generation"]["video"]
    assert video["local"] is True and f"/media/videos/{gen_id}" in video["url"]
    assert video["upstream_url"] and "/media/" not in video["upstream_url"]
    delivery = wait_for(
        lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).first(),
        10,
        "the delivery marked delivered",
    )
    assert (
        delivery.attempts == 2 and str(delivery.delivery_id) == second.headers["x-lumaweb-delivery"]
    )
    assert len(receiver.received) == 2, "delivered once more after it was answered 200"
