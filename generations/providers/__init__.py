"""The provider layer: the one place that knows which upstream dialect lumaweb speaks.

``LUMA_PROVIDER`` picks one provider per installation (``umamiai``, the default, or ``luma``,
Luma's official Dream Machine API). A provider turns lumaweb's request (``Submission``) into its
own request, its answers into ``RemoteGeneration``, its errors into the client's three kinds
(``RetryableError``: nothing started; ``OutcomeUnknownError``: a POST may have started a paid
job; ``PermanentError``: refused), and declares what it can do (``Capabilities``). The pipeline,
the pages and the API ask ``current()``, never a dialect.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from generations.client import RemoteGeneration
from generations.inputs import GenerationRequest

PROVIDERS = {
    "umamiai": "generations.providers.umamiai.UmamiAI",
    "luma": "generations.providers.luma.Luma",
}


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do; the pages show, and the API accepts, only these."""

    models: tuple[str, ...] = ()  # empty: no choice of model
    default_model: str = ""
    resolutions: tuple[str, ...] = ()
    default_resolution: str = ""
    durations: tuple[str, ...] = ()
    default_duration: str = ""
    loop: bool = False
    expand_prompt: bool = True  # the service may rewrite the prompt (UmamiAI's enhancer)
    concepts: bool = False  # camera-motion concepts, from ``Provider.concepts()``
    image_keyframes: bool = True  # start and end images (image_url, image_end_url)
    extend: bool = True
    reverse_extend: bool = False
    interpolate: bool = False
    # > 1: one GET asks about many ids (``LUMA_POLL_BATCH_SIZE`` of them); 1: one GET per id.
    poll_batch: int = 50
    list_lookup: bool = False  # ``find_created`` can tell what a POST of unknown outcome did
    credits: bool = False  # ``credit_balance()`` answers
    callbacks: bool = False  # takes a ``callback_url`` (a wake-up only, never trusted)
    cost_unit: str = "tokens"  # what ``unit_cost`` counts in
    options: tuple[str, ...] = field(default=())  # request options it accepts (filled below)

    def as_json(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "default_model": self.default_model or None,
            "resolutions": list(self.resolutions),
            "default_resolution": self.default_resolution or None,
            "durations": list(self.durations),
            "default_duration": self.default_duration or None,
            "loop": self.loop,
            "expand_prompt": self.expand_prompt,
            "concepts": self.concepts,
            "image_keyframes": self.image_keyframes,
            "extend": self.extend,
            "reverse_extend": self.reverse_extend,
            "interpolate": self.interpolate,
            "batched_polling": self.poll_batch > 1,
            "resolves_unknown_outcomes": self.list_lookup,
            "credit_balance": self.credits,
            "callbacks": self.callbacks,
            "cost_unit": self.cost_unit,
        }

    def accepts(self, option: str) -> bool:
        """Whether a request option (``GenerationRequest.options()``) can be sent."""
        return {
            "model": bool(self.models),
            "resolution": bool(self.resolutions),
            "duration": bool(self.durations),
            "loop": self.loop,
            "concepts": self.concepts,
            "expand_prompt": self.expand_prompt,
        }.get(option, False)


@dataclass(frozen=True)
class Submission:
    """One paid POST to make: the request, and the upstream ids of the videos it starts from
    (``start_generation``: an extension's frame 0) or leads into (``end_generation``: a reverse
    extension's frame 1); both for an interpolation."""

    request: GenerationRequest
    start_generation: str = ""
    end_generation: str = ""
    callback_url: str = ""
    public_base_url: str = ""


@dataclass(frozen=True)
class Lookup:
    """What looking at the provider's list said about a POST of unknown outcome: ``found`` the
    generation it made; nothing made (``decided`` and no ``found``: safe to send again); or the
    list could not decide (not ``decided``: a person must)."""

    decided: bool
    found: RemoteGeneration | None = None

    @classmethod
    def undecided(cls) -> Lookup:
        return cls(decided=False)


class Provider:
    """The interface every provider module implements (see the module docstring)."""

    name = ""
    label = ""
    default_base_url = ""
    capabilities = Capabilities()

    def submit(self, submission: Submission) -> RemoteGeneration:
        raise NotImplementedError

    def poll(self, remote_ids: list[str]) -> list[RemoteGeneration]:
        """What the service says of these ids (at most ``capabilities.poll_batch``); ids it
        does not know are absent from the answer."""
        raise NotImplementedError

    def find_created(self, submission: Submission, since: datetime, until: datetime) -> Lookup:
        """Look for the generation a POST of unknown outcome, sent in [since, until], made."""
        return Lookup.undecided()

    def credit_balance(self) -> float | None:
        """The account's balance in ``capabilities.cost_unit``, where the provider has one."""
        return None

    def concepts(self) -> list[str]:
        """The concept keys the provider offers (empty when it has none)."""
        return []

    def unit_cost(self, request: GenerationRequest) -> int:
        """What one POST of ``request`` costs, in ``capabilities.cost_unit``."""
        raise NotImplementedError


_local = threading.local()


def current() -> Provider:
    """The configured provider, one per thread (each holds its own HTTP connection pool)."""
    key = (
        settings.LUMA_PROVIDER,
        settings.LUMA_API_BASE_URL,
        settings.LUMA_API_KEY,
        settings.LUMA_CONNECT_TIMEOUT,
        settings.LUMA_READ_TIMEOUT,
    )
    provider = getattr(_local, "provider", None)
    if provider is None or getattr(_local, "key", None) != key:
        provider = import_string(PROVIDERS[settings.LUMA_PROVIDER])()
        _local.provider, _local.key = provider, key
    return provider
