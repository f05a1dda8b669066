"""Luma's official Dream Machine API (https://api.lumalabs.ai/dream-machine/v1).

The shapes are those of Luma's SDK (lumalabs/lumaai-python): ``POST /generations`` with
``{prompt, model, aspect_ratio, resolution, duration, loop, concepts, callback_url, keyframes}``,
``GET /generations/{id}``, ``GET /generations?limit=&offset=`` (newest first), ``GET /credits``
(US cents) and ``GET /generations/concepts/list``; errors are ``{"detail": ...}``.

HTTP goes through ``generations.client`` (``make_session``, ``request_json``): the same three
error kinds, the key redacted from everything the service says, and no retry inside the call.
A create is sent exactly once: a read time-out after sending is an ``OutcomeUnknownError``, which
``find_created`` may later resolve by reading the list of generations.

What the official API has no word for:

* ``expand_prompt`` (UmamiAI's prompt enhancer): not sent, and not refused either; a request
  that asks for it is made with the prompt as written.
* A video's width and height: the generation object does not carry them (0, "unknown").
* ``progress_video`` (a preview while dreaming) is never taken for the result: only
  ``assets.video`` is, so a partial video cannot be copied as a finished one.

Prices (``unit_cost``) are ESTIMATES in US cents, the unit ``GET /credits`` answers in, from
Luma's published per-pixel rates as we understood them (``PRICES``); check them against Luma's
pricing page and correct them with ``LUMA_PRICE_TABLE``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from generations import redact
from generations.client import (
    MAX_ERROR_TEXT,
    MAX_ID,
    MAX_STATE,
    OutcomeUnknownError,
    PermanentError,
    RemoteGeneration,
    RetryableError,
    UpstreamError,
    _datetime,
    _said,
    _url,
    make_session,
    request_json,
)
from generations.inputs import GenerationRequest
from generations.providers import Capabilities, Lookup, Provider, Submission

log = logging.getLogger(__name__)

MODELS = ("ray-2", "ray-flash-2", "ray-1-6")
RESOLUTIONS = ("540p", "720p", "1080p", "4k")
DURATIONS = ("5s", "9s")

# One generation's price in US cents, by "model:resolution:duration". ESTIMATES: Luma bills
# its API by pixels generated; these are 16:9 frames at 24 fps times a rate of $0.0064 per
# million pixels for Ray 2 (and, for want of a published figure we trust, Ray 1.6 too) and
# $0.0022 for Ray Flash 2, rounded up to the cent. 4k is priced as four 1080p frames. Check
# them against Luma's pricing page; LUMA_PRICE_TABLE overrides any of them.
PRICES: dict[str, int] = {
    "ray-2:540p:5s": 40,
    "ray-2:540p:9s": 72,
    "ray-2:720p:5s": 71,
    "ray-2:720p:9s": 128,
    "ray-2:1080p:5s": 160,
    "ray-2:1080p:9s": 287,
    "ray-2:4k:5s": 638,
    "ray-2:4k:9s": 1147,
    "ray-flash-2:540p:5s": 14,
    "ray-flash-2:540p:9s": 25,
    "ray-flash-2:720p:5s": 25,
    "ray-flash-2:720p:9s": 44,
    "ray-flash-2:1080p:5s": 55,
    "ray-flash-2:1080p:9s": 99,
    "ray-flash-2:4k:5s": 219,
    "ray-flash-2:4k:9s": 395,
    "ray-1-6:540p:5s": 40,
    "ray-1-6:540p:9s": 72,
    "ray-1-6:720p:5s": 71,
    "ray-1-6:720p:9s": 128,
    "ray-1-6:1080p:5s": 160,
    "ray-1-6:1080p:9s": 287,
    "ray-1-6:4k:5s": 638,
    "ray-1-6:4k:9s": 1147,
}

# find_created: how far the two clocks (ours, the service's) may disagree; how many pages of
# the list to read at most (PAGE_SIZE each); how long after a POST the list is taken to show
# everything that POST made, when nothing newer proves it already does.
CLOCK_SKEW = timedelta(seconds=120)
PAGE_SIZE = 50
MAX_PAGES = 10
LIST_SETTLE = timedelta(seconds=30)

CONCEPTS_CACHE_SECONDS = 600
CONCEPTS_RETRY_SECONDS = 60  # after the list could not be read, when to ask again
# Request fields compared, as strings, between what we would send and what the list echoes.
COMPARED = ("prompt", "model", "aspect_ratio", "resolution", "duration")


def from_luma_json(data: Any) -> RemoteGeneration:
    """A generation object of the official API, parsed as defensively as the UmamiAI one
    (``RemoteGeneration.from_json``): only ``assets.video`` is the video, never
    ``assets.progress_video``."""
    if not isinstance(data, dict) or not data.get("id"):
        raise OutcomeUnknownError("The service answered with something that is not a generation")
    remote_id = str(data["id"])
    if len(remote_id) > MAX_ID or redact.redact(remote_id) != remote_id:
        raise OutcomeUnknownError("The service answered with an id lumaweb cannot keep")
    raw_assets = data.get("assets")
    assets: dict[str, Any] = raw_assets if isinstance(raw_assets, dict) else {}
    raw_request = data.get("request")
    request: dict[str, Any] = raw_request if isinstance(raw_request, dict) else {}
    return RemoteGeneration(
        id=remote_id,
        state=_said(data.get("state")).lower()[:MAX_STATE],
        prompt=_said(request.get("prompt")),
        estimate_wait_seconds=None,
        video_url=_url(assets.get("video")),
        thumbnail_url=_url(assets.get("image")),
        width=0,
        height=0,
        created_at=_datetime(data.get("created_at")),
        failure_reason=_said(data.get("failure_reason"))[:MAX_ERROR_TEXT],
    )


def price_table() -> dict[str, int]:
    """The defaults, with ``LUMA_PRICE_TABLE``'s entries over them."""
    return {**PRICES, **getattr(settings, "LUMA_PRICE_TABLE", {})}


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
        expand_prompt=False,
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

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self.base_url = (base_url or settings.LUMA_API_BASE_URL).rstrip("/")
        self.timeout = (
            connect_timeout if connect_timeout is not None else settings.LUMA_CONNECT_TIMEOUT,
            read_timeout if read_timeout is not None else settings.LUMA_READ_TIMEOUT,
        )
        self.session = make_session(api_key or settings.LUMA_API_KEY or "demo")

    def __repr__(self) -> str:  # never shows the key
        return f"<Luma {self.base_url}>"

    # --- the request ----------------------------------------------------------------------------
    def body(self, submission: Submission) -> dict[str, Any]:
        """The JSON body ``submit`` sends for ``submission``."""
        request = submission.request
        caps = self.capabilities
        body: dict[str, Any] = {
            "model": request.model or caps.default_model,
            "aspect_ratio": request.aspect_ratio,
            "resolution": request.resolution or caps.default_resolution,
            "duration": request.duration or caps.default_duration,
        }
        if request.user_prompt:
            body["prompt"] = request.user_prompt
        if request.loop:
            body["loop"] = True
        concepts = request.concept_keys()
        if concepts:
            body["concepts"] = [{"key": key} for key in concepts]
        if submission.callback_url:
            body["callback_url"] = submission.callback_url
        start_url, end_url = request.keyframe_urls(submission.public_base_url)
        keyframes = {}
        frame0 = _keyframe(submission.start_generation, start_url)
        if frame0:
            keyframes["frame0"] = frame0
        frame1 = _keyframe(submission.end_generation, end_url)
        if frame1:
            keyframes["frame1"] = frame1
        if keyframes:
            body["keyframes"] = keyframes
        return body

    # --- the interface --------------------------------------------------------------------------
    def submit(self, submission: Submission) -> RemoteGeneration:
        """One POST, never repeated here (see the module docstring)."""
        data = self._call("POST", "/generations", json=self.body(submission))
        return from_luma_json(data)

    def poll(self, remote_ids: list[str]) -> list[RemoteGeneration]:
        """One GET per id; an id the service answers 404 for is left out of the answer."""
        out = []
        for remote_id in remote_ids:
            try:
                data = self._call("GET", f"/generations/{quote(remote_id, safe='')}")
            except PermanentError as exc:
                if exc.status_code == 404:
                    continue
                raise
            try:
                out.append(from_luma_json(data))
            except UpstreamError as exc:
                raise RetryableError("The service answered a poll with no generation") from exc
        return out

    def find_created(self, submission: Submission, since: datetime, until: datetime) -> Lookup:
        """Read the list of generations (newest first) back to ``since`` for the one a POST of
        unknown outcome, sent in [since, until], made: the one whose echoed request is the body
        we sent, created in that window widened by ``CLOCK_SKEW``.

        Decided: found (exactly one match), or nothing (no match and no request with our prompt
        in the window: a near match may be ours, echoed normalised; the window read to its end,
        and the list shown to be current: an item newer than the window, or ``LIST_SETTLE``
        passed since ``until``, so a generation still missing from it was not made). Undecided
        (a person must choose, or the caller asks again later): two or more matches (two
        identical requests in the window: which is ours?), an item we cannot place or read, any
        error, more than ``MAX_PAGES`` pages, or a list not yet shown current.
        """
        sent = self.body(submission)
        low, high = _aware(since) - CLOCK_SKEW, _aware(until) + CLOCK_SKEW
        matches: list[dict[str, Any]] = []
        near = 0
        newest: datetime | None = None
        previous: datetime | None = None
        offset = 0
        for _page in range(MAX_PAGES):
            try:
                data = self._call(
                    "GET", "/generations", params={"limit": PAGE_SIZE, "offset": offset}
                )
            except UpstreamError as exc:
                log.warning(
                    "luma lookup: the list could not be read (%s, status %s); undecided",
                    type(exc).__name__,
                    exc.status_code,
                )
                return Lookup.undecided()
            items = data.get("generations") if isinstance(data, dict) else None
            if not isinstance(items, list):
                log.warning("luma lookup: the list answer has no generations; undecided")
                return Lookup.undecided()
            reached_window_start = False
            for item in items:
                created = _datetime(item.get("created_at")) if isinstance(item, dict) else None
                if created is None:
                    log.warning("luma lookup: an item without a creation time; undecided")
                    return Lookup.undecided()
                created = _aware(created)
                if previous is not None and created > previous + timedelta(seconds=1):
                    log.warning("luma lookup: the list is not newest first; undecided")
                    return Lookup.undecided()
                previous = created
                if newest is None:
                    newest = created
                if created < low:
                    reached_window_start = True
                    break
                if created > high:
                    continue
                same = _same_request(sent, item.get("request"))
                if same is None:
                    log.warning("luma lookup: an item in the window without its request; undecided")
                    return Lookup.undecided()
                if same:
                    matches.append(item)
                elif _maybe_ours(sent, item["request"]):
                    near += 1  # our prompt, another option or keyframe: perhaps ours, rewritten
            if reached_window_start or not items or not _has_more(data, len(items)):
                break
            offset += len(items)
        else:
            log.warning("luma lookup: more than %d pages in the window; undecided", MAX_PAGES)
            return Lookup.undecided()
        if len(matches) > 1:
            log.warning("luma lookup: %d identical requests in the window; undecided", len(matches))
            return Lookup.undecided()
        if not matches and near:
            # The service may normalise what it echoes (an extension's aspect ratio becomes its
            # source's, a default filled in): "nothing made" would send a paid POST again.
            log.warning(
                "luma lookup: %d request(s) with our prompt differ in options; undecided", near
            )
            return Lookup.undecided()
        if matches:
            try:
                return Lookup(decided=True, found=from_luma_json(matches[0]))
            except UpstreamError:
                log.warning("luma lookup: the matching item is unreadable; undecided")
                return Lookup.undecided()
        current = (newest is not None and newest > high) or (
            timezone.now() - _aware(until) >= LIST_SETTLE
        )
        if not current:
            log.info("luma lookup: no match yet, but the list may lag; undecided for now")
            return Lookup.undecided()
        return Lookup(decided=True, found=None)

    def credit_balance(self) -> float | None:
        """The account's balance in US cents (``GET /credits``); None, with a warning in the
        log (the error's kind and status, never the key), when it cannot be read."""
        try:
            data = self._call("GET", "/credits")
        except UpstreamError as exc:
            log.warning(
                "luma credits: the balance could not be read (%s, status %s)",
                type(exc).__name__,
                exc.status_code,
            )
            return None
        value = data.get("credit_balance") if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            log.warning("luma credits: the answer holds no balance")
            return None
        return float(value)

    def concepts(self) -> list[str]:
        """The concept keys Luma offers, kept in Django's cache for
        ``CONCEPTS_CACHE_SECONDS``; none (logged, and kept for ``CONCEPTS_RETRY_SECONDS``) when
        the list cannot be had."""
        key = self.concepts_cache_key()
        try:
            cached = cache.get(key)
        except Exception as exc:  # a cache that is down costs a request, nothing more
            log.warning("luma concepts: the cache is unavailable (%s)", type(exc).__name__)
            cached = None
        if isinstance(cached, list):
            return cached
        try:
            data = self._call("GET", "/generations/concepts/list")
        except UpstreamError as exc:
            log.warning(
                "luma concepts: the list could not be read (%s, status %s); offering none",
                type(exc).__name__,
                exc.status_code,
            )
            return self._keep_concepts(key, [], CONCEPTS_RETRY_SECONDS)
        if not isinstance(data, list):
            log.warning("luma concepts: the answer is not a list; offering none")
            return self._keep_concepts(key, [], CONCEPTS_RETRY_SECONDS)
        keys = []
        for item in data:
            raw = item.get("key") if isinstance(item, dict) else item
            text = _said(raw).strip()[:100]
            if text:
                keys.append(text)
        return self._keep_concepts(key, keys, CONCEPTS_CACHE_SECONDS)

    @staticmethod
    def _keep_concepts(key: str, keys: list[str], seconds: int) -> list[str]:
        """Cache the list (an empty one after a failure, for less long: every page that draws
        the picker would otherwise ask a service that is down, and wait for it)."""
        try:
            cache.set(key, keys, seconds)
        except Exception as exc:
            log.warning("luma concepts: the cache is unavailable (%s)", type(exc).__name__)
        return keys

    def concepts_cache_key(self) -> str:
        """Where ``concepts`` keeps its list: one per service address (not per key: the list
        is the same for every account)."""
        return "luma-concepts:" + hashlib.sha256(self.base_url.encode()).hexdigest()[:16]

    def unit_cost(self, request: GenerationRequest) -> int:
        """One generation's price in US cents (``price_table``: estimates, see ``PRICES``).
        A combination the table lacks costs the dearest price the table has for the model
        (or at all): a budget may over-count, never count it free."""
        caps = self.capabilities
        model = request.model or caps.default_model
        resolution = request.resolution or caps.default_resolution
        duration = request.duration or caps.default_duration
        table = price_table()
        price = table.get(f"{model}:{resolution}:{duration}")
        if price is not None:
            return price
        same_model = [cents for key, cents in table.items() if key.startswith(f"{model}:")]
        log.warning(
            "luma price: no price for %s:%s:%s; counting the dearest known",
            model,
            resolution,
            duration,
        )
        return max(same_model or table.values() or [0])

    # --- plumbing -------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return request_json(
            self.session,
            method,
            self.base_url + path,
            timeout=self.timeout,
            sent_is_unknown=method == "POST",
            **kwargs,
        )


def _keyframe(generation_id: str, image_url: str) -> dict[str, str] | None:
    """A keyframe: a generation (extend, reverse extend, interpolate) wins over an image."""
    if generation_id:
        return {"type": "generation", "id": generation_id}
    if image_url:
        return {"type": "image", "url": image_url}
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _has_more(data: dict[str, Any], count: int) -> bool:
    more = data.get("has_more")
    if isinstance(more, bool):
        return more
    return count >= PAGE_SIZE


def _same_request(sent: dict[str, Any], echoed: Any) -> bool | None:
    """Whether a listed generation's echoed ``request`` is the body we sent; None when it has
    none. A field the echo leaves out counts as agreeing (the service may drop defaults): the
    lookup then errs towards a match, and two matches leave it undecided, never towards
    "nothing made", which would send a paid POST again."""
    if not isinstance(echoed, dict):
        return None
    for name in COMPARED:
        if echoed.get(name) is not None and _norm(echoed[name]) != _norm(sent.get(name)):
            return False
    if echoed.get("loop") is not None and bool(echoed["loop"]) != bool(sent.get("loop")):
        return False
    if _another_rows(sent, echoed):
        return False
    if echoed.get("concepts") is not None and _concepts(echoed["concepts"]) != _concepts(
        sent.get("concepts")
    ):
        return False
    return "keyframes" not in echoed or _frames(echoed["keyframes"]) == _frames(
        sent.get("keyframes")
    )


def _maybe_ours(sent: dict[str, Any], echoed: dict[str, Any]) -> bool:
    """Not the same request, but perhaps ours echoed normalised: our prompt, and no callback
    address naming another row (that one is certainly not ours)."""
    return _norm(echoed.get("prompt")) == _norm(sent.get("prompt")) and not _another_rows(
        sent, echoed
    )


def _another_rows(sent: dict[str, Any], echoed: dict[str, Any]) -> bool:
    """Whether the echoed callback address names another row than ours. It names the row the
    POST was for (``callback_tokens``: its id is the token's first part): another row's, or
    another lumaweb's on the same account, with the same prompt is not ours. Only the row's id
    is compared (a changed PUBLIC_BASE_URL or SECRET_KEY since the POST must not make ours
    look like nothing was made)."""
    sent_row = _callback_row(sent.get("callback_url"))
    echoed_row = _callback_row(echoed.get("callback_url"))
    return bool(sent_row and echoed_row and sent_row != echoed_row)


def _callback_row(url: Any) -> str:
    """The row id a callback address names (its last path segment, up to the dash); "" for
    none."""
    if not isinstance(url, str) or not url.strip():
        return ""
    return urlsplit(url.strip()).path.rstrip("/").rsplit("/", 1)[-1].partition("-")[0]


def _concepts(value: Any) -> list[str]:
    """Concept keys, sorted, from ``[{"key": ...}]``; empty for none."""
    if not isinstance(value, list):
        return []
    return sorted(_norm(item.get("key") if isinstance(item, dict) else item) for item in value)


def _norm(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _frames(value: Any) -> tuple[tuple[str, str, str], ...]:
    """Keyframes as comparable (frame, type, id or url) tuples; empty for none."""
    if not isinstance(value, dict):
        return ()
    out = []
    for name in ("frame0", "frame1"):
        frame = value.get(name)
        if isinstance(frame, dict) and frame.get("type"):
            kind = _norm(frame.get("type"))
            ref = frame.get("id") if kind == "generation" else frame.get("url")
            out.append((name, kind, _norm(ref)))
    return tuple(out)
