"""The luma dialect: Luma's own Dream Machine API shape (``--dialect luma``).

Same machinery as the UmamiAI dialect (faults, auth, ledger, credits, the state file, the CDN,
the renderer); only the routes, the bodies and the error shape (``{"detail": ...}``) differ:

* ``POST /v1/generations`` (and ``/v1/generations/video``): create; ``model`` required;
  ``keyframes.frame0``/``frame1`` each ``{"type": "image", "url"}`` or ``{"type": "generation",
  "id"}``: frame0 a generation extends it, frame1 a generation is a *reverse* extension (the
  clip ends on the source's first frame), both is an interpolation (source A's last frame to
  source B's first);
* ``GET /v1/generations/{id}``, ``GET /v1/generations?limit=&offset=`` (newest first),
  ``DELETE /v1/generations/{id}`` (204), ``GET /v1/credits`` (US cents),
  ``GET /v1/generations/concepts/list``.

Each create is charged a price in US cents (``PRICES``) from ``--credits`` (the balance, in
cents, in this dialect); a failed generation is refunded once it has failed. ``callback_url``:
the generation object is POSTed there when it starts dreaming, completes or fails (up to 3
tries until a 200), best effort, and only to the origins keyframes may be fetched from
(``keyframes``: allowed or public).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from . import keyframes, media
from .replies import ApiError, Reply, is_http_url, json_reply

if TYPE_CHECKING:
    from .server import Generation, Simulator

MODELS = ("ray-1-6", "ray-2", "ray-flash-2")
ASPECT_RATIOS = tuple(media.SIZES)
RESOLUTIONS = tuple(media.RESOLUTION_SCALES)
DURATIONS = {"5s": 1.0, "9s": 1.8}  # times --video-seconds: the clips stay short
DEFAULT_RESOLUTION = "720p"
DEFAULT_DURATION = "5s"
CONCEPTS = (
    "dolly_zoom",
    "orbit_left",
    "orbit_right",
    "pan_left",
    "pan_right",
    "push_in",
    "pull_out",
    "crane_up",
    "crane_down",
    "tilt_up",
    "tilt_down",
    "handheld",
)
# US cents for a 5 s clip; 9 s costs 9/5 of it (rounded). Made up, in the neighbourhood of
# Luma's published per-clip prices: what matters is that they differ by model and size.
PRICES = {
    "ray-2": {"540p": 40, "720p": 71, "1080p": 160, "4k": 640},
    "ray-flash-2": {"540p": 14, "720p": 24, "1080p": 54, "4k": 216},
    "ray-1-6": {"540p": 32, "720p": 32, "1080p": 32, "4k": 32},
}
UNLIMITED_BALANCE = 1_000_000.0  # what /credits says when the simulator has no --credits
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_PROMPT_CHARS = 5000
GENERATION_ID = re.compile(r"^/generations/(?P<id>[^/]+)$")
# Luma's documented delivery: up to 3 tries, 100 ms apart, 5 s each, until a 200
CALLBACK_TRIES = 3
CALLBACK_RETRY_DELAY = 0.1
CALLBACK_TIMEOUT = 5.0
CALLBACK_TICK = 0.1


def is_poll(method: str, path: str) -> bool:
    """A GET of one generation by id (what a poller sends)."""
    return method == "GET" and bool(GENERATION_ID.match(path.rstrip("/")))


def price(model: str, resolution: str, duration: str) -> int:
    """The price of one create, in US cents."""
    five = PRICES[model][resolution]
    return five if duration == "5s" else round(five * 9 / 5)


class LumaApi:
    """The luma dialect's routes, over a `Simulator`'s state (its lock guards everything)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._ticker: threading.Thread | None = None

    # -- routing ----------------------------------------------------------------------------

    def route(self, method: str, path: str, query: str, body: bytes, host: str) -> Reply:
        path = path.rstrip("/") or "/"
        with self.sim.lock:
            self.refund_failed()
        if method == "POST" and path in ("/generations", "/generations/video"):
            return self.create(body, host)
        if method in ("GET", "HEAD") and path == "/generations/concepts/list":
            return json_reply(200, list(CONCEPTS))
        if method in ("GET", "HEAD") and path == "/generations":
            return self.list(query, host)
        if method in ("GET", "HEAD") and path == "/credits":
            with self.sim.lock:
                return json_reply(200, {"credit_balance": self.balance()})
        if match := GENERATION_ID.match(path):
            if method in ("GET", "HEAD"):
                with self.sim.lock:
                    generation = self._own(match["id"], 404)
                    return json_reply(200, self.render(generation, host))
            if method == "DELETE":
                with self.sim.lock:
                    self._own(match["id"], 404)
                    del self.sim.generations[match["id"]]
                    self.sim._changed()
                return Reply(204, content_type="application/json")
        raise ApiError(404, f"Cannot {method} /v1{path}")

    def _own(self, generation_id: str, status: int) -> Generation:
        """A luma generation by id, or ApiError(status) (lock held)."""
        generation = self.sim.generations.get(generation_id)
        if generation is None or generation.model is None:
            raise ApiError(status, f"Generation {generation_id} not found")
        return generation

    # -- credits ----------------------------------------------------------------------------

    def balance(self) -> float:
        credits = self.sim.config.credits
        return UNLIMITED_BALANCE if credits is None else float(credits)

    def refund_failed(self) -> None:
        """Give back the price of every generation that has failed since (lock held)."""

        now, refund = time.monotonic(), 0
        for generation in self.sim.generations.values():
            if generation.price and not generation.refunded and generation.failed(now):
                generation.refunded = True
                refund += generation.price
        if refund:
            credits = self.sim.config.credits
            if credits is not None:
                self.sim.config = replace(self.sim.config, credits=credits + refund)
            self.sim._changed()

    # -- create -----------------------------------------------------------------------------

    def create(self, body: bytes, host: str) -> Reply:
        request = parse_body(body)
        with self.sim.lock:
            sources = self._sources(request)
            generation = self.sim._new_generation(request, kind=_kind(sources), sources=sources)
            generation.host = host
            if generation.callback_url:
                self._start_ticker()
            reply = json_reply(201, self.render(generation, host))
            self.sim._maybe_fail_after_create()
            return reply

    def _sources(self, request: dict[str, Any]) -> dict[str, Generation | None]:
        """The generations frame0 and frame1 name (None for images or nothing); ApiError(400)
        for an unknown or unfinished one (lock held)."""
        found: dict[str, Generation | None] = {"frame0": None, "frame1": None}
        for name, frame in (request.get("keyframes") or {}).items():
            if frame.get("type") != "generation":
                continue
            generation = self.sim.generations.get(frame["id"])
            if generation is None or generation.model is None:
                raise ApiError(400, f"keyframes.{name}: generation {frame['id']} not found")
            if not generation.has_url(time.monotonic()):
                raise ApiError(400, f"keyframes.{name}: generation {frame['id']} is not completed")
            found[name] = generation
        return found

    # -- the generation object --------------------------------------------------------------

    def render(self, generation: Generation, host: str, now: float | None = None) -> dict[str, Any]:
        """Luma's generation object as of ``now`` (lock held)."""
        now = time.monotonic() if now is None else now
        state = generation.state(now)
        base = f"http://{host}/cdn/{generation.id}"
        assets: dict[str, str | None] | None = None
        if state in ("dreaming", "completed"):
            self.sim._prerender(generation.id, progress=True)
            assets = {"video": None, "image": None, "progress_video": f"{base}.progress.mp4"}
            if generation.has_url(now):
                self.sim._prerender(generation.id)
                assets["video"] = f"{base}.mp4{self.sim._link_query(generation)}"
                assets["image"] = f"{base}.jpg"
        return {
            "id": generation.id,
            "generation_type": "video",
            "state": state,
            "failure_reason": generation.failure_reason if state == "failed" else None,
            "created_at": generation.created_at,
            "assets": assets,
            "model": generation.model,
            "request": generation.request,
        }

    def list(self, query: str, host: str) -> Reply:
        params = dict(parse_qsl(query))
        limit = _int_param(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _int_param(params, "offset", 0, 0, None)
        with self.sim.lock:
            mine = [g for g in self.sim.generations.values() if g.model is not None]
            mine.sort(key=lambda g: g.created, reverse=True)
            page = mine[offset : offset + limit]
            return json_reply(
                200,
                {
                    "generations": [self.render(g, host) for g in page],
                    "count": len(page),
                    "has_more": offset + len(page) < len(mine),
                    "limit": limit,
                    "offset": offset,
                },
            )

    # -- the picture ------------------------------------------------------------------------

    def scene(self, generation: Generation) -> media.Scene:
        """Describe a luma generation's clip. frame0 a generation: an extension, which goes on
        from the source's last frame (its chain's time and palette, as the UmamiAI dialect's
        extensions); frame1 a generation: the clip ends exactly on that source's first frame
        (a reverse extension runs into the source, in its palette); both: from A's last frame
        to B's first. Image keyframes are fetched as the UmamiAI dialect fetches them."""
        with self.sim.lock:
            generations = self.sim.generations
            start = generations.get(generation.parent_id or "")
            end = generations.get(generation.end_parent_id or "")
            chain, end_chain = _chain(generations, generation), _chain(generations, end)
            allowed = self.sim.config.allow_fetch_from
            whole = self.sim.config.extension_contains_parent and start is not None
        before = sum(g.video_seconds for g in chain[1:])  # the chain's length before this part
        palette, part, offset = chain[-1].prompt, len(chain), before
        if start is None and end is not None:  # runs into the source: the source's world
            palette, part = end_chain[-1].prompt, 1
            offset = sum(g.video_seconds for g in end_chain[1:]) - generation.video_seconds
        start_image = media.fetch_keyframe(generation.image_url, allowed)
        end_image = media.fetch_keyframe(generation.image_end_url, allowed)
        if start is not None and not whole:
            start_image = media.edge_frames(self.sim.ensure_media(start.id)[0])[1]
        if end is not None:
            end_image = media.edge_frames(self.sim.ensure_media(end.id)[0])[0]
        return media.Scene(
            prompt=generation.prompt or "(keyframes only)",
            aspect_ratio=generation.aspect_ratio,
            palette_key=palette,
            part=part,
            time_offset=0.0 if whole else offset,
            seconds=generation.video_seconds + (before if whole else 0.0),
            fps=generation.fps,
            start_image=start_image,
            end_image=end_image,
            resolution=generation.resolution,
            loop=generation.loop,
            keyframes_over_caption=True,
        )

    # -- callbacks --------------------------------------------------------------------------

    def _start_ticker(self) -> None:
        """One thread that posts the callbacks as generations move on (lock held)."""
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_forever, daemon=True)
            self._ticker.start()

    def _tick_forever(self) -> None:
        while True:
            try:
                self.tick()
            except Exception as exc:  # never kill the thread; say it once a tick at most
                print(f"simulator: callback tick failed: {exc!r}", file=sys.stderr)
            time.sleep(CALLBACK_TICK)

    def tick(self) -> None:
        """Post every callback that is due (dreaming, completed, failed), each once."""
        due: list[tuple[Generation, str, bytes]] = []
        with self.sim.lock:
            self.refund_failed()
            now = time.monotonic()
            for generation in self.sim.generations.values():
                if not generation.callback_url:
                    continue
                for event, moment in events(generation, now):
                    if event in generation.callbacks_sent:
                        continue
                    generation.callbacks_sent.append(event)
                    payload = self.render(generation, generation.host, now=moment)
                    due.append((generation, event, json.dumps(payload).encode()))
            if due:
                self.sim._changed()
            allowed = self.sim.config.allow_fetch_from
        for generation, event, body in due:
            url = generation.callback_url or ""
            record: dict[str, Any] = {"id": generation.id, "state": event, "url": _no_query(url)}
            record.update(deliver(url, body, allowed))
            with self.sim.lock:
                self.sim.callbacks.append(record)
                self.sim._changed()


def deliver(url: str, body: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    """POST one callback: up to CALLBACK_TRIES until a 200 (a refused URL is not retried).
    What happened, for the ledger: the last status or error and the tries made."""
    outcome: dict[str, Any] = {}
    for attempt in range(1, CALLBACK_TRIES + 1):
        outcome = {"tries": attempt}
        try:
            outcome["status"] = keyframes.post_json(url, body, allowed, CALLBACK_TIMEOUT)
        except keyframes.Refused as exc:
            return {**outcome, "error": f"refused: {exc}"}
        except Exception as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        if outcome.get("status") == 200:
            break
        if attempt < CALLBACK_TRIES:
            time.sleep(CALLBACK_RETRY_DELAY)
    return outcome


def events(generation: Generation, now: float) -> list[tuple[str, float]]:
    """The callback events a generation has reached by ``now``, each with a moment at which the
    generation object shows that state."""
    dreaming_at = generation.dreaming_at + 1e-3
    found: list[tuple[str, float]] = []
    if now >= dreaming_at and generation.state(dreaming_at) == "dreaming":
        found.append(("dreaming", dreaming_at))
    state = generation.state(now)
    if state == "failed":
        found.append(("failed", now))
    elif state == "completed" and generation.has_url(now):
        found.append(("completed", now))
    return found


def _chain(generations: dict[str, Generation], generation: Generation | None) -> list[Generation]:
    """``generation`` and its frame0 ancestors, nearest first (empty for None)."""
    if generation is None:
        return []
    chain = [generation]
    while chain[-1].parent_id and chain[-1].parent_id in generations:
        chain.append(generations[chain[-1].parent_id])
    return chain


def _kind(sources: dict[str, Generation | None]) -> str:
    start, end = sources["frame0"], sources["frame1"]
    if start and end:
        return "interpolate"
    if end:
        return "reverse"
    return "extend" if start else "create"


def _no_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    if name not in params:
        return default
    try:
        value = int(params[name])
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"{name} must be {bound}")
    return value


def parse_body(body: bytes) -> dict[str, Any]:
    """Validate a create body as Luma would; ApiError(400) when it is wrong. Returns the body
    as sent (it is echoed as the generation's ``request``)."""
    try:
        request = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise ApiError(400, "Request body must be a JSON object")
    model = request.get("model")
    if model is None:
        raise ApiError(400, "model is required")
    if model not in MODELS:
        raise ApiError(400, f"model must be one of {', '.join(MODELS)}")
    prompt = request.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError(400, f"prompt must be at most {MAX_PROMPT_CHARS} characters")
    if not (prompt or "").strip() and not request.get("keyframes"):
        raise ApiError(400, "prompt is required unless keyframes are given")
    choices = (
        ("aspect_ratio", ASPECT_RATIOS),
        ("resolution", RESOLUTIONS),
        ("duration", tuple(DURATIONS)),
    )
    for key, allowed in choices:
        if request.get(key) is not None and request[key] not in allowed:
            raise ApiError(400, f"{key} must be one of {', '.join(allowed)}")
    if request.get("loop") is not None and not isinstance(request["loop"], bool):
        raise ApiError(400, "loop must be a boolean")
    concepts = request.get("concepts")
    if concepts is not None:
        if not isinstance(concepts, list):
            raise ApiError(400, "concepts must be a list of {key} objects")
        for concept in concepts:
            if not isinstance(concept, dict) or concept.get("key") not in CONCEPTS:
                raise ApiError(400, f"concepts: unknown concept {concept!r}")
    callback = request.get("callback_url")
    if callback is not None and not is_http_url(callback):
        raise ApiError(400, "callback_url must be an http(s) URL")
    frames = request.get("keyframes")
    if frames is not None:
        if not isinstance(frames, dict) or not set(frames) <= {"frame0", "frame1"}:
            raise ApiError(400, "keyframes must be an object with frame0 and/or frame1")
        for name, frame in frames.items():
            _check_frame(name, frame)
    return request


def _check_frame(name: str, frame: Any) -> None:
    if not isinstance(frame, dict):
        raise ApiError(400, f"keyframes.{name} must be an object")
    kind = frame.get("type")
    if kind == "image":
        if not is_http_url(frame.get("url")):
            raise ApiError(400, f"keyframes.{name}.url must be an http(s) URL")
    elif kind == "generation":
        if not isinstance(frame.get("id"), str) or not frame["id"]:
            raise ApiError(400, f"keyframes.{name}.id must be a generation id")
    else:
        raise ApiError(400, f"keyframes.{name}.type must be image or generation")


def new_fields(request: dict[str, Any], sources: dict[str, Generation | None]) -> dict[str, Any]:
    """The Generation fields a luma create sets (beyond the common ones)."""
    frames = request.get("keyframes") or {}
    model = request["model"]
    resolution = request.get("resolution") or DEFAULT_RESOLUTION
    duration = request.get("duration") or DEFAULT_DURATION
    start, end = sources["frame0"], sources["frame1"]
    image = {name: f.get("url") for name, f in frames.items() if f.get("type") == "image"}
    return {
        "model": model,
        "resolution": resolution,
        "clip_duration": duration,
        "loop": bool(request.get("loop")),
        "request": request,
        "callback_url": request.get("callback_url"),
        "parent_id": start.id if start else None,
        "end_parent_id": end.id if end else None,
        "image_url": image.get("frame0"),
        "image_end_url": image.get("frame1"),
        "price": price(model, resolution, duration),
    }
