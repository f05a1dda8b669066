"""Luma's official Dream Machine API (https://api.lumalabs.ai/dream-machine/v1).

SKELETON: capabilities only; the HTTP client, polling, list lookup, credits and prices are
being written (issue 11).
"""

from __future__ import annotations

from generations.client import RemoteGeneration
from generations.inputs import GenerationRequest
from generations.providers import Capabilities, Provider, Submission

MODELS = ("ray-2", "ray-flash-2", "ray-1-6")
RESOLUTIONS = ("540p", "720p", "1080p", "4k")
DURATIONS = ("5s", "9s")


class Luma(Provider):
    name = "luma"
    label = "Luma Dream Machine API"
    default_base_url = "https://api.lumalabs.ai/dream-machine/v1"
    capabilities = Capabilities(
        models=MODELS,
        default_model="ray-2",
        resolutions=RESOLUTIONS,
        default_resolution="720p",
        durations=DURATIONS,
        default_duration="5s",
        loop=True,
        concepts=True,
        image_keyframes=True,
        extend=True,
        reverse_extend=True,
        interpolate=True,
        poll_batch=1,
        list_lookup=True,
        credits=True,
        callbacks=True,
        cost_unit="credits",
    )

    def submit(self, submission: Submission) -> RemoteGeneration:
        raise NotImplementedError

    def poll(self, remote_ids: list[str]) -> list[RemoteGeneration]:
        raise NotImplementedError

    def unit_cost(self, request: GenerationRequest) -> int:
        raise NotImplementedError
