"""UmamiAI's Luma endpoints (the legacy Dream Machine shape): ``generations.client``."""

from __future__ import annotations

from django.conf import settings

from generations.client import PermanentError, RemoteGeneration, get_client
from generations.inputs import GenerationRequest
from generations.providers import Capabilities, Provider, Submission


class UmamiAI(Provider):
    name = "umamiai"
    label = "UmamiAI (Luma Dream Machine)"
    default_base_url = "https://api.umamiai.xyz/v1"
    capabilities = Capabilities(poll_batch=50, cost_unit="tokens")

    def submit(self, submission: Submission) -> RemoteGeneration:
        if submission.end_generation:
            raise PermanentError("UmamiAI cannot make a video that leads into another one.")
        body = submission.request.upstream_body(submission.public_base_url)
        client = get_client()
        if submission.start_generation:
            return client.extend(submission.start_generation, body)
        return client.create(body)

    def poll(self, remote_ids: list[str]) -> list[RemoteGeneration]:
        return get_client().get_many(remote_ids)

    def unit_cost(self, request: GenerationRequest) -> int:
        return int(settings.LUMA_TOKENS_PER_GENERATION)
