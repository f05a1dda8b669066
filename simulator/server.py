"""An in-memory stand-in for the UmamiAI Luma API (or, with ``--dialect luma``, Luma's own
Dream Machine API: ``luma.py``), with fault injection and a ledger.

Pure Python (no Django): state lives in one `Simulator` object guarded by a lock, a generation's
state is computed from elapsed time on every read, and faults are drawn from one seeded
`random.Random`. `/v1/...` imitates the upstream API, `/cdn/...` serves rendered files and
`/_sim/...` lets tests and operators look inside and steer it (with the control token only).

It listens on 127.0.0.1 unless told otherwise, and fetches keyframes only from public addresses
or the origins it is told to allow (``keyframes``): whoever can create a generation chooses
those URLs.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import io
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import keyframes, luma, media
from .replies import ApiError, Reply, detail_reply, json_reply
from .replies import is_http_url as _is_http_url

COST_PER_GENERATION = 500_000
MAX_PROMPT_CHARS = 5000
MAX_IDS = 100
ASPECT_RATIOS = tuple(media.SIZES)
VOCABULARIES = {"classic": ("pending", "processing"), "luma": ("queued", "dreaming")}
UNKNOWN_STATES = ("waiting_for_gpu", "in_review", "allocating")
FAILURE_REASONS = (
    "The prompt was flagged by content moderation.",
    "Internal error while rendering frames; please try again.",
    "The GPU worker was lost during generation.",
)
SERVER_ERRORS = (
    (500, "Internal server error"),
    (502, "Bad gateway: the upstream provider did not answer"),
    (503, "Service temporarily unavailable, please try again later"),
)
QUEUE_FRACTION = 0.15  # first part of the timeline: pending / queued
UNKNOWN_FRACTION = 0.25  # then, for some generations, an undocumented state
FAIL_FRACTION = 0.6  # failing generations fail at this point
JITTER = 0.15
GENERATION_PATH = re.compile(r"^/luma-ai/generations/(?P<id>[^/]+)/extend$")
CDN_PATH = re.compile(
    r"^/cdn/(?P<id>[0-9a-fA-F-]{1,64})(?P<progress>\.progress)?\.(?P<ext>mp4|jpg)$"
)
DIALECTS = ("umamiai", "luma")
FORCE_PATH = re.compile(r"^/_sim/generations/(?P<id>[^/]+)/complete$")
CONTROL_TOKEN_ENV = "SIMULATOR_CONTROL_TOKEN"  # noqa: S105 (a name, not a secret)
CONTROL_TOKEN_HEADER = "X-Simulator-Token"  # noqa: S105 (a name, not a secret)
MASK = "********"
EXPAND_LIGHT = ("golden-hour light", "soft volumetric fog", "neon reflections", "moonlit haze")
EXPAND_CAMERA = ("a slow dolly-in", "a sweeping aerial shot", "a gentle handheld pan", "a crane up")
EXPAND_STYLE = ("cinematic 35mm film grain", "dreamy pastel tones", "hyper-detailed realism")


@dataclass
class Config:
    """Every knob; the CLI flags and POST /_sim/config use these names."""

    host: str = "127.0.0.1"
    port: int = 8001
    # Which API it speaks under /v1: "umamiai" (the aggregator's /luma-ai/... routes) or "luma"
    # (Luma's own /generations, /credits, ...: luma.py). One per process.
    dialect: str = "umamiai"
    api_key: str | None = None
    duration: float = 20.0
    vocabulary: str = "mixed"
    error_rate: float = 0.0
    error_status: int | None = None  # one of 500/502/503; None: any of them at random
    error_after_create_rate: float = 0.0  # POSTs that start a generation, then answer 502
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    # The account's limits as Luma enforces them (0: none): creates accepted in any
    # ``limit_window`` seconds (Luma's entry tier: 20 a minute) and generations running at once
    # (10); a create over either is answered 429 with a Retry-After (when room opens).
    limit_creates: int = 0
    limit_window: float = 60.0
    limit_running: int = 0
    slow_rate: float = 0.0
    slow_seconds: float = 15.0
    fail_rate: float = 0.0
    late_url_rate: float = 0.0
    late_url_seconds: float = 3.0
    unknown_state_rate: float = 0.0
    expire_link_rate: float = 0.0  # videos whose first link has expired when it is fetched
    credits: int | None = None
    seed: int | None = None
    media_dir: str | None = None
    video_seconds: float = 3.0
    fps: int = 24
    # Luma's extensions (as far as its documentation and SDK tell, docs/ARCHITECTURE.md
    # "Chains") are the new part alone, and so are the simulator's by default. True: an
    # extension's video holds its whole chain so far (its parent's frames, then its own), the
    # other way a service may behave, so lumaweb's LUMA_EXTENSION_CONTAINS_PARENT can be tested.
    extension_contains_parent: bool = False
    # The /_sim/* control endpoints (health aside) answer only requests that carry this token
    # in X-Simulator-Token; without one they are off (403).
    control_token: str | None = None
    # No line per request (errors still print): what `./scripts/run` uses by default.
    quiet: bool = False
    # Origins (scheme, host, port) keyframes may be fetched from even when private: lumaweb's
    # own address in demo mode on one machine. Any other keyframe URL must be public.
    allow_fetch_from: tuple[str, ...] = ()
    # A JSON file the generations and the ledger are kept in (written on every change, loaded
    # at start), so a restart does not forget the jobs in flight. None: memory only.
    state: str | None = None

    # not changeable at runtime (the token and the origins are the operator's, not the caller's)
    FIXED = (
        "host",
        "port",
        "dialect",
        "media_dir",
        "control_token",
        "allow_fetch_from",
        "quiet",
        "state",
    )
    SECRET = ("api_key", "control_token")  # shown masked by /_sim/config

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Config:
        """Build from parsed CLI options (extra keys, such as Django's, are ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in options.items() if k in names and v is not None}
        # a repeated flag gives a list; an empty value (`--allow-fetch-from=` from an unset
        # variable) means none
        values["allow_fetch_from"] = tuple(
            origin for origin in values.get("allow_fetch_from", ()) if origin.strip()
        )
        if not values.get("control_token"):
            values["control_token"] = None
        # checked by validate(), not by argparse: compose passes ${LUMA_PROVIDER:-umamiai},
        # spelled as the settings spell it (any case, spaces around)
        values["dialect"] = str(values.get("dialect", cls.dialect)).strip().lower()
        config = cls(**values)
        config.validate()
        return config

    def updated(self, changes: Mapping[str, Any]) -> Config:
        """A validated copy with `changes` applied; ValueError names the bad setting."""
        names = {f.name for f in fields(self)}
        for key in changes:
            if key not in names:
                raise ValueError(f"Unknown setting: {key}")
            if key in self.FIXED:
                raise ValueError(f"{key} cannot be changed at runtime")
        clean = {key: _coerce(self, key, value) for key, value in changes.items()}
        config = replace(self, **clean)
        config.validate()
        return config

    def validate(self) -> None:
        for name in (
            "error_rate",
            "error_after_create_rate",
            "rate_limit_rate",
            "slow_rate",
            "fail_rate",
            "late_url_rate",
            "unknown_state_rate",
            "expire_link_rate",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.limit_creates < 0 or self.limit_running < 0:
            raise ValueError("limit_creates and limit_running must not be negative")
        if self.limit_window <= 0:
            raise ValueError("limit_window must be positive")
        for name in ("retry_after", "slow_seconds", "late_url_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0 < self.duration <= 3600:
            raise ValueError("duration must be in (0, 3600]")
        if not 0 < self.video_seconds <= 30:
            raise ValueError("video_seconds must be in (0, 30]")
        if not 1 <= self.fps <= 60:
            raise ValueError("fps must be between 1 and 60")
        if self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
        if self.vocabulary not in ("classic", "luma", "mixed"):
            raise ValueError("vocabulary must be classic, luma or mixed")
        if self.credits is not None and self.credits < 0:
            raise ValueError("credits must not be negative")
        if self.error_status is not None and self.error_status not in dict(SERVER_ERRORS):
            raise ValueError("error_status must be 500, 502 or 503")
        for origin in self.allow_fetch_from:
            try:
                keyframes.origin_of(origin)
            except ValueError:
                raise ValueError(f"allow_fetch_from: {origin!r} is not an http(s) URL") from None

    def public(self) -> dict[str, Any]:
        """The settings as /_sim/config shows them: secrets say whether they are set, never
        what they are (the answer may end up in a test log or a screenshot)."""
        shown = asdict(self)
        for name in self.SECRET:
            shown[name] = MASK if shown[name] else None
        shown["allow_fetch_from"] = list(self.allow_fetch_from)
        return shown


def _coerce(config: Config, key: str, value: Any) -> Any:
    """Check a runtime setting's JSON type against the field's default type."""
    optional = key in ("api_key", "credits", "seed", "error_status")
    if value is None:
        if optional:
            return None
        raise ValueError(f"{key} must not be null")
    if key in ("api_key", "vocabulary"):
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        return value
    if key == "extension_contains_parent":
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if key in ("credits", "seed", "fps", "error_status", "limit_creates", "limit_running"):
        if value != int(value):
            raise ValueError(f"{key} must be an integer")
        return int(value)
    return float(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's flags, shared by `python -m simulator` and `runsimulator`."""
    d = Config()
    add = parser.add_argument
    add("--host", default=d.host, help="address to bind (default %(default)s)")
    add("--port", type=int, default=d.port, help="port to bind (default %(default)s)")
    add(
        "--dialect",
        default=d.dialect,
        metavar="{" + ",".join(DIALECTS) + "}",
        help="the API it speaks under /v1: umamiai (the aggregator's /luma-ai/... routes) or "
        "luma (Luma's own Dream Machine API: /generations, /credits, ...; errors as "
        '{"detail": ...}; --credits is then a balance in US cents) (default %(default)s)',
    )
    add("--api-key", default=None, help="require exactly this bearer token")
    add(
        "--duration",
        type=float,
        default=d.duration,
        help="seconds from creation to completion, ±15%% per generation",
    )
    add(
        "--vocabulary",
        choices=("classic", "luma", "mixed"),
        default=d.vocabulary,
        help="state names: pending/processing, queued/dreaming, or mixed per generation",
    )
    add("--error-rate", type=float, default=0.0, help="fraction of API requests answered 5xx")
    add(
        "--error-status",
        type=int,
        default=None,
        help="answer injected errors with this status (500, 502 or 503; default any)",
    )
    add(
        "--error-after-create-rate",
        type=float,
        default=0.0,
        help="fraction of POSTs that start a generation and then answer 502",
    )
    add("--rate-limit-rate", type=float, default=0.0, help="fraction answered 429")
    add("--retry-after", type=float, default=d.retry_after, help="Retry-After seconds on 429")
    add(
        "--limit-creates",
        type=int,
        default=d.limit_creates,
        help="creates accepted in any --limit-window seconds; more are answered 429 with "
        "Retry-After (0: no limit; Luma's entry tier: 20 a minute)",
    )
    add(
        "--limit-window",
        type=float,
        default=d.limit_window,
        help="the window --limit-creates counts over, in seconds (default %(default)s; "
        "shorter to run a minute's traffic in seconds)",
    )
    add(
        "--limit-running",
        type=int,
        default=d.limit_running,
        help="generations running at once; a create over it is answered 429 with Retry-After "
        "(0: no limit; Luma's entry tier: 10)",
    )
    add("--slow-rate", type=float, default=0.0, help="fraction of replies delayed")
    add("--slow-seconds", type=float, default=d.slow_seconds, help="delay of a slow reply")
    add("--fail-rate", type=float, default=0.0, help="fraction of generations that fail")
    add(
        "--late-url-rate",
        type=float,
        default=0.0,
        help="fraction of generations completed before their video URL appears",
    )
    add(
        "--late-url-seconds",
        type=float,
        default=d.late_url_seconds,
        help="how long such a URL stays null",
    )
    add(
        "--unknown-state-rate",
        type=float,
        default=0.0,
        help="fraction of generations that pass through an undocumented state",
    )
    add(
        "--expire-link-rate",
        type=float,
        default=0.0,
        help="fraction of videos whose first CDN link has expired when fetched (404); the "
        "generation's next GET hands out a fresh one",
    )
    add(
        "--credits",
        type=int,
        default=None,
        help="balance: tokens, each POST costs 500000 (umamiai); US cents, each create costs "
        "its price by model, resolution and duration, failed ones refunded (luma)",
    )
    add("--seed", type=int, default=None, help="seed for reproducible faults")
    add("--media-dir", default=None, help="where rendered videos are cached (default: temp)")
    add(
        "--state",
        default=None,
        metavar="PATH",
        help="keep the generations and the ledger in this JSON file (written on every change, "
        "loaded at start), so a restart does not forget jobs in flight; rendered videos are "
        "rendered again on demand",
    )
    add("--video-seconds", type=float, default=d.video_seconds, help="length of rendered clips")
    add("--fps", type=int, default=d.fps, help="frame rate of rendered clips")
    add(
        "--extension-contains-parent",
        action="store_true",
        default=None,
        help="render an extension's video as its whole chain so far (its parent's frames, then "
        "its own) instead of the new part alone",
    )
    add(
        "--control-token",
        default=os.environ.get(CONTROL_TOKEN_ENV) or None,
        help=f"token the /_sim/* control endpoints require in {CONTROL_TOKEN_HEADER} "
        f"(default: ${CONTROL_TOKEN_ENV}, which keeps it off the command line); "
        "without one they are off",
    )
    add(
        "--quiet",
        action="store_true",
        default=None,
        help="print no line per request (errors still print); a client that hangs up prints "
        "nothing",
    )
    add(
        "--allow-fetch-from",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="fetch keyframes from this origin (scheme://host:port) even if it is private, "
        "e.g. lumaweb's own http://127.0.0.1:8000; repeatable. Other private addresses are "
        "refused",
    )


@dataclass
class Generation:
    """One generation and the draws that decide its future."""

    id: str
    kind: str
    user_prompt: str
    prompt: str
    aspect_ratio: str
    created: float  # time.monotonic()
    created_at: str
    duration: float
    vocabulary: str
    fails: bool
    failure_reason: str | None
    late_url: float
    unknown_state: str | None
    video_seconds: float
    fps: int
    parent_id: str | None = None
    image_url: str | None = None
    image_end_url: str | None = None
    forced_at: float | None = None
    # CDN links expire: an expiring video's first link answers 404 when fetched, after which
    # its next GET hands out link 1, which works (``link`` is in the URL's query).
    expiring: bool = False
    link: int = 0
    # The luma dialect's (model None: an UmamiAI generation). end_parent_id: frame1 named a
    # generation (a reverse extension, or with parent_id an interpolation).
    model: str | None = None
    resolution: str = "540p"
    clip_duration: str = "5s"
    loop: bool = False
    request: dict[str, Any] | None = None
    end_parent_id: str | None = None
    price: int = 0  # US cents charged
    refunded: bool = False
    callback_url: str | None = None
    callbacks_sent: list[str] = field(default_factory=list)
    host: str = ""  # the Host the create came to: the callbacks' asset URLs use it

    @property
    def done_at(self) -> float:
        natural = self.created + self.duration
        return natural if self.forced_at is None else min(natural, self.forced_at)

    @property
    def dreaming_at(self) -> float:
        """When it leaves the queue (and any undocumented state) for its working state."""
        start = QUEUE_FRACTION + (UNKNOWN_FRACTION if self.unknown_state else 0.0)
        return self.created + start * self.duration

    @property
    def fail_at(self) -> float:
        return self.created + FAIL_FRACTION * self.duration

    def failed(self, now: float) -> bool:
        return self.fails and self.forced_at is None and now >= self.fail_at

    @property
    def finished_at(self) -> float:
        """When it stops running (completed or failed): it holds one of the account's
        concurrent slots until then."""
        if self.fails and self.forced_at is None:
            return min(self.fail_at, self.done_at)
        return self.done_at

    def state(self, now: float) -> str:
        if self.failed(now):
            return "failed"
        if now >= self.done_at:
            return "completed"
        elapsed = (now - self.created) / self.duration
        waiting, working = VOCABULARIES[self.vocabulary]
        if elapsed < QUEUE_FRACTION:
            return waiting
        if self.unknown_state and elapsed < QUEUE_FRACTION + UNKNOWN_FRACTION:
            return self.unknown_state
        return working

    def has_url(self, now: float) -> bool:
        return self.state(now) == "completed" and now >= self.done_at + self.late_url


def _iso(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def error_reply(status: int, message: str, path: str, **kwargs: Any) -> Reply:
    payload = {
        "message": message,
        "path": path,
        "requestId": f"req_{uuid.uuid4().hex[:20]}",
        "statusCode": status,
        "timestamp": _iso(),
    }
    return json_reply(status, payload, **kwargs)


def expand(user_prompt: str) -> str:
    """The "expand_prompt" rewrite: the user's words plus a deterministic descriptive suffix."""
    digest = sum(user_prompt.encode()) + len(user_prompt)
    light = EXPAND_LIGHT[digest % len(EXPAND_LIGHT)]
    camera = EXPAND_CAMERA[digest // 7 % len(EXPAND_CAMERA)]
    style = EXPAND_STYLE[digest // 13 % len(EXPAND_STYLE)]
    return f"{user_prompt.rstrip(' .')}. Bathed in {light}, captured with {camera}, {style}."


class Simulator:
    """All state and behaviour, independent of the HTTP plumbing."""

    def __init__(self, config: Config) -> None:
        self.initial = config
        self.config = config
        self.lock = threading.Lock()
        self.rng = random.Random(config.seed)
        self.cosmetic = random.Random(None if config.seed is None else config.seed + 1)
        self.media_dir = Path(config.media_dir or tempfile.mkdtemp(prefix="lumaweb-sim-"))
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.render_locks: dict[str, threading.Lock] = {}
        self.state_path = Path(config.state) if config.state else None
        self.luma = luma.LumaApi(self)
        self.error = detail_reply if config.dialect == "luma" else error_reply
        self._clear()
        if self.state_path is not None and self.state_path.exists():
            self._load(self.state_path)

    def _clear(self) -> None:
        self.epoch = time.monotonic()
        self.generations: dict[str, Generation] = {}
        self.posts: list[dict[str, Any]] = []
        self.post_times: list[float] = []  # every POST that arrived, refused or not
        self.counters = {"get_requests": 0, "get_ids": 0, "requests": 0}
        self.callbacks: list[dict[str, Any]] = []  # the luma dialect's callback deliveries
        # the luma dialect's GET /generations/{id} (one per id polled): wall-clock times, so a
        # poll budget counted per interval of the clock can be checked against them
        self.poll_times: list[float] = []
        self.faults = {
            "error": 0,
            "rate_limited": 0,
            "over_rate": 0,  # creates refused by --limit-creates
            "over_running": 0,  # creates refused by --limit-running
            "slow": 0,
            "error_after_create": 0,
            "expired_link": 0,
        }

    # -- the state file ---------------------------------------------------------------------
    # Times inside the simulator are time.monotonic(), which means nothing to another process:
    # the file holds wall-clock times, turned back into this process's monotonic clock on load.

    def _changed(self) -> None:
        """Write the state file, if there is one (lock held). Atomic: a new file is written
        and renamed over the old, so a kill at any moment leaves one whole state or the other."""
        if self.state_path is None:
            return
        now_mono, now_wall = time.monotonic(), time.time()

        def wall(moment: float) -> float:
            return now_wall - (now_mono - moment)

        generations = []
        for generation in self.generations.values():
            data = asdict(generation)
            data["created"] = wall(generation.created)
            if generation.forced_at is not None:
                data["forced_at"] = wall(generation.forced_at)
            generations.append(data)
        state = {
            "version": 1,
            "dialect": self.config.dialect,
            "epoch": wall(self.epoch),
            "generations": generations,
            "posts": self.posts,
            "counters": self.counters,
            "faults": self.faults,
            "callbacks": self.callbacks,
            "credits": self.config.credits,  # the balance left, not the flag it started from
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".sim-state-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(state, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _load(self, path: Path) -> None:
        """Take up the state a former process left; an unreadable file is reported and left
        aside (renamed), never fatal: the simulator then starts empty."""
        try:
            state = json.loads(path.read_text())
            now_mono, now_wall = time.monotonic(), time.time()
            dialect = state.get("dialect", "umamiai")
            if dialect != self.config.dialect:
                raise ValueError(f"written by the {dialect} dialect, not {self.config.dialect}")

            def mono(moment: float) -> float:
                return now_mono - (now_wall - moment)

            names = {f.name for f in fields(Generation)}
            generations = {}
            for data in state["generations"]:
                data = {key: value for key, value in data.items() if key in names}
                data["created"] = mono(data["created"])
                if data.get("forced_at") is not None:
                    data["forced_at"] = mono(data["forced_at"])
                generations[data["id"]] = Generation(**data)
            epoch = mono(state["epoch"])
            posts = list(state["posts"])
            counters = {**self.counters, **state.get("counters", {})}
            faults = {**self.faults, **state.get("faults", {})}
            callbacks = list(state.get("callbacks", []))
            credits = state.get("credits", self.config.credits)
            if credits is not None and (not isinstance(credits, int) or credits < 0):
                raise ValueError(f"credits {credits!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = path.with_name(path.name + ".unreadable")
            with contextlib.suppress(OSError):
                path.replace(aside)
            print(f"simulator: state file {path} unreadable ({exc}); moved to {aside}", flush=True)
            return
        self.generations, self.epoch, self.posts = generations, epoch, posts
        self.counters, self.faults, self.callbacks = counters, faults, callbacks
        if any(g.callback_url for g in generations.values()):
            self.luma._start_ticker()  # callbacks still due go out after the restart
        # The account's balance is the file's: credits spent before the restart stay spent
        # (``--credits`` is where a fresh state file starts). A file without a balance (an
        # older one, or no limit then) leaves the flag's.
        if credits is not None:
            self.config = replace(self.config, credits=credits)
        print(f"simulator: {len(generations)} generations taken up from {path}", flush=True)

    # -- the upstream API -------------------------------------------------------------------

    def api(
        self, method: str, path: str, query: str, headers: Message, body: bytes, host: str
    ) -> Reply:
        """Answer one `/v1/...` request: faults first, then auth, then the route."""
        full_path = f"/v1{path}"
        with self.lock:
            self.counters["requests"] += 1
            if method == "POST":
                self.post_times.append(round(time.monotonic() - self.epoch, 4))
            elif self.config.dialect == "luma" and luma.is_poll(method, path):
                self.poll_times.append(round(time.time(), 4))  # faulted ones too: all were sent
            fault = self._draw_fault(full_path)
            if isinstance(fault, Reply):
                return fault
        try:
            self._authenticate(headers.get("Authorization", ""))
            reply = self._route(method, path, query, body, host)
        except ApiError as exc:
            reply = self.error(exc.status, exc.message, full_path, headers=exc.headers)
        reply.delay = fault
        return reply

    def _draw_fault(self, path: str) -> Reply | float:
        """Return an error reply, or the delay (0 when not slow) for this request."""
        config = self.config
        if self.rng.random() < config.error_rate:
            self.faults["error"] += 1
            status, message = self.rng.choice(SERVER_ERRORS)
            if config.error_status is not None:
                status, message = config.error_status, dict(SERVER_ERRORS)[config.error_status]
            return self.error(status, message, path)
        if self.rng.random() < config.rate_limit_rate:
            self.faults["rate_limited"] += 1
            retry = str(math.ceil(config.retry_after))
            return self.error(
                429, "Too many requests, please slow down", path, headers={"Retry-After": retry}
            )
        if self.rng.random() < config.slow_rate:
            self.faults["slow"] += 1
            return config.slow_seconds
        return 0.0

    def _authenticate(self, header: str) -> None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "Missing or malformed Authorization header")
        expected = self.config.api_key
        if expected is not None and not hmac.compare_digest(token.encode(), expected.encode()):
            raise ApiError(401, "Invalid API key")

    def _route(self, method: str, path: str, query: str, body: bytes, host: str) -> Reply:
        if self.config.dialect == "luma":
            return self.luma.route(method, path, query, body, host)
        path = path.rstrip("/") or "/"
        if method == "POST" and path == "/luma-ai/generations":
            return self.create(self._parse_body(body), host)
        if method == "POST" and (match := GENERATION_PATH.match(path)):
            return self.extend(match["id"], body, host)
        if method in ("GET", "HEAD") and path == "/luma-ai/generation":
            return self.get_many(parse_ids(query), host)
        raise ApiError(404, f"Cannot {method} /v1{path}")

    def create(self, request: dict[str, Any], host: str) -> Reply:
        with self.lock:
            generation = self._new_generation(request, kind="create")
            self._maybe_fail_after_create()
            return json_reply(200, self._render_json(generation, host))

    def _maybe_fail_after_create(self) -> None:
        """A gateway error after the job started (and was charged): the worst case for a client."""
        if self.rng.random() < self.config.error_after_create_rate:
            self.faults["error_after_create"] += 1
            raise ApiError(502, "Bad gateway: the upstream provider did not answer")

    def extend(self, parent_id: str, body: bytes, host: str) -> Reply:
        with self.lock:
            parent = self.generations.get(parent_id)
            if parent is None:
                raise ApiError(404, f"Generation {parent_id} not found")
        request = self._parse_body(body)
        with self.lock:
            if not parent.has_url(time.monotonic()):
                raise ApiError(400, "Only completed generations can be extended")
            generation = self._new_generation(request, kind="extend", parent=parent)
            self._maybe_fail_after_create()
            return json_reply(200, self._render_json(generation, host))

    def get_many(self, ids: list[str], host: str) -> Reply:
        if not ids:
            raise ApiError(400, "ids must name at least one generation")
        if len(ids) > MAX_IDS:
            raise ApiError(400, f"At most {MAX_IDS} ids per request")
        with self.lock:
            self.counters["get_requests"] += 1
            self.counters["get_ids"] += len(ids)
            found = [self.generations[i] for i in dict.fromkeys(ids) if i in self.generations]
            return json_reply(200, [self._render_json(g, host) for g in found])

    @staticmethod
    def _parse_body(body: bytes) -> dict[str, Any]:
        """Validate a create/extend body as upstream would; ApiError(400) when it is wrong."""
        try:
            request = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "Request body is not valid JSON") from None
        if not isinstance(request, dict):
            raise ApiError(400, "Request body must be a JSON object")
        prompt = request.get("user_prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ApiError(400, "user_prompt must be a non-empty string")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ApiError(400, f"user_prompt must be at most {MAX_PROMPT_CHARS} characters")
        if request.get("aspect_ratio") is None:
            request["aspect_ratio"] = "16:9"
        if request["aspect_ratio"] not in ASPECT_RATIOS:
            raise ApiError(400, f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
        if request.get("expand_prompt") is not None and not isinstance(
            request["expand_prompt"], bool
        ):
            raise ApiError(400, "expand_prompt must be a boolean")
        for key in ("image_url", "image_end_url"):
            value = request.get(key)
            if value is not None and not _is_http_url(value):
                raise ApiError(400, f"{key} must be an http(s) URL")
        return request

    def _check_limits(self, now: float) -> None:
        """The account's limits (lock held): ApiError(429) with a Retry-After when a create
        would go over the creates of the window or the generations running at once."""
        config = self.config
        if config.limit_creates:
            window = [
                g.created
                for g in self.generations.values()
                if g.created > now - config.limit_window
            ]
            if len(window) >= config.limit_creates:
                self.faults["over_rate"] += 1
                wait = min(window) + config.limit_window - now
                raise ApiError(
                    429,
                    f"Too many requests: at most {config.limit_creates} generations may be "
                    f"created in {config.limit_window:g} seconds",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        if config.limit_running:
            running = [g.finished_at for g in self.generations.values() if g.finished_at > now]
            if len(running) >= config.limit_running:
                self.faults["over_running"] += 1
                wait = min(running) - now
                raise ApiError(
                    429,
                    f"Too many requests: at most {config.limit_running} generations may run "
                    "at once",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )

    def _new_generation(
        self,
        request: dict[str, Any],
        kind: str,
        parent: Generation | None = None,
        sources: dict[str, Generation | None] | None = None,
    ) -> Generation:
        """Charge, draw the generation's fate, store it and write the ledger (lock held).
        ``sources``: a luma-dialect create, with the generations its keyframes name."""
        config = self.config
        self._check_limits(time.monotonic())
        extra = {} if sources is None else luma.new_fields(request, sources)
        cost = extra.get("price", COST_PER_GENERATION)
        if config.credits is not None:
            if config.credits < cost:
                if sources is not None:
                    raise ApiError(400, "Insufficient credits")
                raise ApiError(403, "You've run out of credits")
            self.config = replace(config, credits=config.credits - cost)
        rng = self.rng
        vocabulary = "luma" if sources is not None else config.vocabulary
        if vocabulary == "mixed":
            vocabulary = rng.choice(("classic", "luma"))
        fails = rng.random() < config.fail_rate
        late = rng.random() < config.late_url_rate
        unknown = rng.random() < config.unknown_state_rate
        expiring = rng.random() < config.expire_link_rate
        if sources is not None:
            source = sources["frame0"] or sources["frame1"]
            parent = None
            user_prompt = request.get("prompt") or ""
            aspect_ratio = source.aspect_ratio if source else request.get("aspect_ratio", "16:9")
            request = {**request, "aspect_ratio": aspect_ratio or "16:9"}
            video_seconds = config.video_seconds * luma.DURATIONS[extra["clip_duration"]]
        else:
            user_prompt = request["user_prompt"]
            video_seconds = config.video_seconds
        generation = Generation(
            id=str(uuid.uuid4()),
            kind=kind,
            user_prompt=user_prompt,
            prompt=expand(user_prompt) if request.get("expand_prompt") else user_prompt,
            # an extension continues its parent's picture, so it keeps the parent's frame
            aspect_ratio=parent.aspect_ratio if parent else request["aspect_ratio"],
            created=time.monotonic(),
            created_at=_iso(),
            duration=config.duration * rng.uniform(1 - JITTER, 1 + JITTER),
            vocabulary=vocabulary,
            fails=fails,
            failure_reason=rng.choice(FAILURE_REASONS) if fails else None,
            late_url=config.late_url_seconds if late else 0.0,
            unknown_state=rng.choice(UNKNOWN_STATES) if unknown else None,
            video_seconds=video_seconds,
            fps=config.fps,
            expiring=expiring,
            **{
                "parent_id": parent.id if parent else None,
                "image_url": request.get("image_url"),
                "image_end_url": request.get("image_end_url"),
                **extra,  # the luma dialect's: its own parent_id and keyframe URLs
            },
        )
        self.generations[generation.id] = generation
        post = {
            "id": generation.id,
            "kind": kind,
            "parent_id": generation.parent_id,
            "user_prompt": user_prompt,
            "at": generation.created_at,
        }
        if sources is not None:
            post.update(
                end_parent_id=generation.end_parent_id,
                model=generation.model,
                resolution=generation.resolution,
                duration=generation.clip_duration,
                price=generation.price,
                loop=generation.loop,
                keyframes=request.get("keyframes"),
            )
        self.posts.append(post)
        self._changed()
        return generation

    def _render_json(self, generation: Generation, host: str) -> dict[str, Any]:
        """The upstream generation object, as of now (lock held)."""
        now = time.monotonic()
        state = generation.state(now)
        has_url = generation.has_url(now)
        width, height = media.SIZES[generation.aspect_ratio] if state == "completed" else (0, 0)
        base = f"http://{host}/cdn/{generation.id}"
        if has_url:
            self._prerender(generation.id)
        return {
            "id": generation.id,
            "created_at": generation.created_at,
            "estimate_wait_seconds": self._estimate(generation.done_at - now, state),
            "liked": None,
            "prompt": generation.prompt,
            "state": state,
            "video": {
                "url": f"{base}.mp4{self._link_query(generation)}" if has_url else None,
                "thumbnail": f"{base}.jpg" if has_url else None,
                "width": width,
                "height": height,
            },
            "failure_reason": generation.failure_reason if state == "failed" else None,
        }

    def _estimate(self, remaining: float, state: str) -> int | str | None:
        """Remaining seconds, but typed int, numeric string or null at random (as upstream)."""
        if state in ("completed", "failed"):
            return self.cosmetic.choice((0, None))
        seconds = max(0, math.ceil(remaining))
        return self.cosmetic.choice((seconds, str(seconds), None))

    # -- the CDN ----------------------------------------------------------------------------

    @staticmethod
    def _link_query(generation: Generation) -> str:
        """The query that names an expiring video's current link (nothing for the others)."""
        return f"?link={generation.link}" if generation.expiring else ""

    def cdn(self, path: str, query: str = "") -> Reply:
        """Serve a rendered file, rendering it first if need be (no auth: it is a CDN)."""
        match = CDN_PATH.match(path)
        progress = bool(match and match["progress"])
        with self.lock:
            generation = self.generations.get(match["id"]) if match else None
            if progress:  # the luma dialect's partial preview: from dreaming on, mp4 only
                now = time.monotonic()
                ready = (
                    generation is not None
                    and match is not None
                    and match["ext"] == "mp4"
                    and generation.model is not None
                    and generation.state(now) in ("dreaming", "completed")
                )
            else:
                ready = generation is not None and generation.has_url(time.monotonic())
            if match and ready and generation and match["ext"] == "mp4" and not progress:
                expired = self._expired_link(generation, query)
                if expired is not None:
                    return expired
        if not match or not ready:
            return error_reply(404, "Not found", path)
        if progress:
            return Reply(200, content_type="video/mp4", file=self.ensure_progress(match["id"]))
        mp4, jpg = self.ensure_media(match["id"])
        if match["ext"] == "mp4":
            return Reply(200, content_type="video/mp4", file=mp4)
        return Reply(200, content_type="image/jpeg", file=jpg)

    def _expired_link(self, generation: Generation, query: str) -> Reply | None:
        """A 404 for an expiring video's link that is no longer (or never was) its current one;
        the first link expires as it is first fetched (lock held)."""
        if not generation.expiring:
            return None
        asked = dict(parse_qsl(query)).get("link", "")
        if generation.link == 0 and asked == "0":
            generation.link = 1  # the next GET hands out a fresh link
            self.faults["expired_link"] += 1
            self._changed()
        elif asked == str(generation.link):
            return None
        return error_reply(404, "This link has expired", f"/cdn/{generation.id}.mp4")

    def ensure_media(self, generation_id: str) -> tuple[Path, Path]:
        """Render a generation's files once; concurrent callers wait and share the result."""
        mp4 = self.media_dir / f"{generation_id}.mp4"
        jpg = self.media_dir / f"{generation_id}.jpg"
        with self.lock:
            render_lock = self.render_locks.setdefault(generation_id, threading.Lock())
        with render_lock:
            if not (mp4.exists() and jpg.exists()):
                media.render(self._scene(generation_id), mp4, jpg)
        return mp4, jpg

    def ensure_progress(self, generation_id: str) -> Path:
        """Render the luma dialect's progress video once: a smaller, partial clip."""
        mp4 = self.media_dir / f"{generation_id}.progress.mp4"
        key = f"{generation_id}.progress"
        with self.lock:
            render_lock = self.render_locks.setdefault(key, threading.Lock())
        with render_lock:
            if not mp4.exists():
                media.render_progress(self._scene(generation_id), mp4)
        return mp4

    def _prerender(self, generation_id: str, progress: bool = False) -> None:
        """Start rendering in the background the first time a URL is handed out (lock held)."""
        key = f"{generation_id}.progress" if progress else generation_id
        if key in self.render_locks:
            return
        self.render_locks[key] = threading.Lock()
        threading.Thread(
            target=self._quiet_render, args=(generation_id, progress), daemon=True
        ).start()

    def _quiet_render(self, generation_id: str, progress: bool = False) -> None:
        try:
            if progress:
                self.ensure_progress(generation_id)
            else:
                self.ensure_media(generation_id)
        except Exception as exc:  # the CDN request will retry and report it
            print(f"simulator: background render of {generation_id} failed: {exc}", file=sys.stderr)

    def _scene(self, generation_id: str) -> media.Scene:
        """Describe the clip: extensions continue the chain's time and keep the root's palette."""
        with self.lock:
            generation = self.generations[generation_id]
        if generation.model is not None:
            return self.luma.scene(generation)
        with self.lock:
            chain = [generation]
            while chain[-1].parent_id and chain[-1].parent_id in self.generations:
                chain.append(self.generations[chain[-1].parent_id])
            allowed = self.config.allow_fetch_from
            whole = self.config.extension_contains_parent
        before = sum(g.video_seconds for g in chain[1:])  # the chain's length before this part
        return media.Scene(
            prompt=generation.prompt,
            aspect_ratio=generation.aspect_ratio,
            palette_key=chain[-1].prompt,
            part=len(chain),
            # Animation is a function of absolute time: drawing from 0 repeats the parents' frames.
            time_offset=0.0 if whole else before,
            seconds=generation.video_seconds + (before if whole else 0.0),
            fps=generation.fps,
            start_image=media.fetch_keyframe(generation.image_url, allowed),
            end_image=media.fetch_keyframe(generation.image_end_url, allowed),
        )

    # -- control endpoints -----------------------------------------------------------------

    def control(self, method: str, path: str, body: bytes, token: str | None = None) -> Reply:
        """`/_sim/...`: health (open), then ledger, config, reset and force-complete, which need
        the control token: they show the callers' prompts and change faults and credits."""
        if not (method == "GET" and path == "/_sim/health"):
            refused = self._check_control_token(token, path)
            if refused is not None:
                return refused
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return error_reply(400, "Request body is not valid JSON", path)
        if method == "GET" and path == "/_sim/health":
            return json_reply(200, {"ok": True})
        if method == "GET" and path == "/_sim/ledger":
            with self.lock:
                return json_reply(200, self._ledger())
        if method == "GET" and path == "/_sim/config":
            return json_reply(200, self.config.public())
        if method == "POST" and path == "/_sim/config":
            return self._configure(payload, path)
        if method == "POST" and path == "/_sim/reset":
            with self.lock:
                self._clear()
                if isinstance(payload, dict) and payload.get("config"):
                    self.config = self.initial
                    self.rng.seed(self.initial.seed)
                self._changed()
            return json_reply(200, {"ok": True})
        if method == "POST" and (match := FORCE_PATH.match(path)):
            return self._force_complete(match["id"], path)
        return error_reply(404, f"Cannot {method} {path}", path)

    def _ledger(self) -> dict[str, Any]:
        """Every accepted POST, with when it started and when it finished (or will finish)
        running, in seconds since the simulator started; ``max_unfinished`` is the most that
        were running at once; ``post_times`` is when every POST arrived, refused ones
        included (what a rate limit counts) (lock held)."""
        if self.config.dialect == "luma":
            self.luma.refund_failed()  # the balance shown is the one /credits would show
        posts = []
        for post in self.posts:
            generation = self.generations.get(post["id"])
            times = {}
            if generation is not None:
                times = {
                    "started": round(generation.created - self.epoch, 4),
                    "finished": round(generation.finished_at - self.epoch, 4),
                }
            posts.append({**post, **times})
        return {
            "posts": posts,
            "max_unfinished": max_overlap(
                [(p["started"], p["finished"]) for p in posts if "started" in p]
            ),
            "post_times": list(self.post_times),
            **self.counters,
            "faults": dict(self.faults),
            **(
                {
                    "credit_balance": self.luma.balance(),
                    "callbacks": list(self.callbacks),
                    "poll_times": list(self.poll_times),
                }
                if self.config.dialect == "luma"
                else {}
            ),
        }

    def _check_control_token(self, token: str | None, path: str) -> Reply | None:
        """None when ``token`` is the configured one; else 403 (control is off) or 401."""
        expected = self.config.control_token
        if not expected:
            return error_reply(
                403, "Control endpoints are off: start the simulator with a control token", path
            )
        if not token or not hmac.compare_digest(token.encode(), expected.encode()):
            return error_reply(401, f"Missing or wrong {CONTROL_TOKEN_HEADER}", path)
        return None

    def _configure(self, payload: Any, path: str) -> Reply:
        if not isinstance(payload, dict):
            return error_reply(400, "Config must be a JSON object", path)
        with self.lock:
            try:
                self.config = self.config.updated(payload)
            except ValueError as exc:
                return error_reply(400, str(exc), path)
            if "seed" in payload:
                self.rng.seed(self.config.seed)
            self._changed()  # a balance set here (a top-up) survives a restart too
            return json_reply(200, self.config.public())

    def _force_complete(self, generation_id: str, path: str) -> Reply:
        with self.lock:
            generation = self.generations.get(generation_id)
            if generation is None:
                return error_reply(404, f"Generation {generation_id} not found", path)
            now = time.monotonic()
            if generation.failed(now):
                return error_reply(409, "Generation has already failed", path)
            if generation.forced_at is None and now < generation.done_at:
                generation.forced_at = now
                self._changed()
            return json_reply(200, {"ok": True, "state": generation.state(now)})


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most ``[start, end)`` spans that overlap at any moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = running = 0
    for _, step in edges:  # at equal times an end (-1) sorts first: [start, end) spans
        running += step
        most = max(most, running)
    return most


def parse_ids(query: str) -> list[str]:
    """Read ids from `ids[0]=a&ids[1]=b`, `ids=a&ids=b`, `ids[]=a` or `ids=a,b`."""
    ordered: list[tuple[int, int, int, str]] = []
    for position, (key, value) in enumerate(parse_qsl(query, keep_blank_values=True)):
        match = re.fullmatch(r"ids(?:\[(\d*)\])?", key)
        if match:
            order = int(match[1]) if match[1] else position
            parts = (part.strip() for part in value.split(","))
            ordered.extend((order, position, i, part) for i, part in enumerate(parts))
    return [part for *_, part in sorted(ordered) if part]


class Handler(BaseHTTPRequestHandler):
    """Thin HTTP plumbing around `Simulator`."""

    protocol_version = "HTTP/1.1"
    server_version = "LumaSimulator/1.0"
    # Each answer leaves in one write (see _send); False restores the old two writes, which
    # only scripts/bench_simulator.py does, to measure what the fix saved.
    single_write = True
    simulator: Simulator  # set on the subclass made by make_server
    server: SimulatorServer  # the only server this handler is made for (typeshed: BaseServer)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        # always read the body first, so a keep-alive connection stays in step
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        path = parts.path
        try:
            if path.startswith("/v1/"):
                host = self.headers.get("Host") or "{}:{}".format(*self.server.host_and_port)
                reply = self.simulator.api(method, path[3:], parts.query, self.headers, body, host)
            elif path.startswith("/_sim/"):
                token = self.headers.get(CONTROL_TOKEN_HEADER)
                reply = self.simulator.control(method, path.rstrip("/"), body, token)
            elif path.startswith("/cdn/") and method in ("GET", "HEAD"):
                reply = self.simulator.cdn(path, parts.query)
            else:
                reply = error_reply(404, f"Cannot {method} {path}", path)
        except Exception as exc:
            reply = error_reply(500, f"Simulator bug: {exc!r}", path)
        if reply.delay:
            time.sleep(reply.delay)
        # the client may have given up (a read time-out on a slow reply, a browser's <video>
        # leaving the page): nothing to answer, and nothing more to read on this connection
        try:
            self._send(reply, head=method == "HEAD")
        except ConnectionError:
            self.close_connection = True

    def _send(self, reply: Reply, head: bool) -> None:
        if reply.file is None:
            status, body = reply.status, reply.body
        else:
            data = reply.file.read_bytes()
            start, end, status = 0, len(data) - 1, reply.status
            byte_range = _parse_range(self.headers.get("Range"), len(data))
            if byte_range:
                start, end = byte_range
                status = 206
                reply.headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            reply.headers["Accept-Ranges"] = "bytes"
            body = data[start : end + 1]
        if not self.single_write:  # the old way, for scripts/bench_simulator.py's baseline
            self._start(status, reply.content_type, len(body), reply.headers)
            if not head:
                self.wfile.write(body)
            return
        # Headers and body in one write: written apart, a small answer's body waits for the
        # client's ACK of the headers (Nagle), which the client delays (~40 ms) while it waits
        # for the rest. The headers go through the standard methods into a buffer first.
        answer, self.wfile = self.wfile, io.BytesIO()
        try:
            self._start(status, reply.content_type, len(body), reply.headers)
            headers = self.wfile.getvalue()
        finally:
            self.wfile = answer
        self.wfile.write(headers if head else headers + body)

    def _start(
        self, status: int, content_type: str, length: int, headers: Mapping[str, str]
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not self.simulator.config.quiet:
            super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"simulator {self.address_string()} {format % args}\n")


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` range (what video players send); None to send the whole file."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or size == 0 or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1
    return (start, end) if start <= end else None


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    quiet = False
    # TCP_NODELAY on every accepted connection, so no write of ours (BaseHTTPRequestHandler's
    # own error answers write headers and body apart) waits for an ACK. False: the old way,
    # for scripts/bench_simulator.py's baseline only.
    nodelay = True

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.nodelay:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (reset, broken pipe) is no error of ours: one line at most,
        none when quiet, never a traceback. Anything else: the standard report."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            if not self.quiet:
                host = client_address[0] if client_address else "?"
                sys.stderr.write(f"simulator {host} hung up ({type(error).__name__})\n")
            return
        super().handle_error(request, client_address)

    @property
    def host_and_port(self) -> tuple[str, int]:
        """Where it listens: ``server_address`` as the bound socket gave it (an IPv4 server, so
        the host is text, and a port 0 in the config is the one the system picked)."""
        host, port = self.server_address[:2]
        assert isinstance(host, str)
        return host, port


def make_server(config: Config) -> tuple[SimulatorServer, Simulator]:
    """Bind the server; the caller runs `serve_forever()`."""
    simulator = Simulator(config)
    handler = type("BoundHandler", (Handler,), {"simulator": simulator})
    server = SimulatorServer((config.host, config.port), handler)
    server.quiet = config.quiet
    return server, simulator


def serve(config: Config) -> None:
    """Run until interrupted or terminated; a temporary media dir is removed afterwards."""
    server, simulator = make_server(config)
    host, port = server.host_and_port
    print(f"Luma simulator on http://{host}:{port}/v1 (media in {simulator.media_dir})", flush=True)
    control = "on (token required)" if config.control_token else "off (no control token)"
    allowed = ", ".join(config.allow_fetch_from) or "none"
    print(
        f"  /_sim control endpoints: {control}; private keyframe origins allowed: {allowed}",
        flush=True,
    )

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if config.media_dir is None:
            shutil.rmtree(simulator.media_dir, ignore_errors=True)
