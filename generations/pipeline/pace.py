"""The pacer: how fast the account's submits go after the service said "slow down".

A 429, a 503 or a refused connection proves the POST started nothing (``client.RetryableError``
with one of those causes). Such a refusal is about the account's pace, not the job: it never
counts toward ``LUMA_SUBMIT_MAX_ATTEMPTS``. Instead

- a ``Retry-After`` (or, without one, a short backoff that grows with consecutive refusals)
  **pauses every submit of the account**, in every worker process: the pause is kept in
  Django's cache (Redis), and the submit claim reads it as ``Limits.closed``;
- a 429 **halves the allowed rate** (the rate in force, else the cap, else what was sent in the
  last rate window), and each accepted submit **adds a little back** (``1 / rate`` a submit: one
  more per window's worth of submits), AIMD as TCP does it. The rate is enforced as a spacing
  between two grants (``Limits.spacing``: ``LUMA_SUBMIT_RATE_WINDOW / rate`` seconds), checked
  under the capacity lock with the other limits, so bursts are gone too;
- a 429 also caps the generations in flight at what lumaweb had in flight when it came (a
  service that limits how many run at once, as Luma does, refuses the one over it; lumaweb's
  count is never below the service's, since it learns of a finish only at the next poll). The
  cap grows back slowly (one more every ``1 / WINDOW_GROWTH`` windows' worth of submits);
- **time heals too**: every full rate window without a 429 (counted from the end of the last
  one's pause) multiplies the rate and the in-flight cap by ``RECOVERY``. The increase per
  submit alone is slowest when the rate is lowest, so random 429s (a few percent of requests)
  held the rate near one a minute for good; now one quiet window undoes one halving. Time
  brings them back no further than the highest a 429 cut them from (``*_peak``): past that
  the service has refused them, and only the increase per submit probes further. The highest,
  not the last: a random 429 that cut an already low rate must not lower the level time
  restores (random ones would ratchet it down again); a service that really lowered its limit
  costs one refusal and one pause per climb back.

The caps of the settings (``LUMA_MAX_IN_FLIGHT``, ``LUMA_MAX_SUBMITS_PER_MINUTE``) stay the
ceiling of both.

One cache entry holds the state; read-modify-write races between workers lose at most one
step of the gentle increase, and a second 429 of the same burst is not a second halving (one
cut per pause). The time recovery is computed when read (``limits``) and folded into the entry
when written. A cache that does not answer leaves the caps of the settings in force.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

from generations.client import UpstreamError
from generations.models import Limits, configured_limits

log = logging.getLogger("generations.pipeline")

KEY = "lumaweb:submit-pace"
MEMORY = 3600  # seconds a pace is kept after its last change (then the caps alone again)
MIN_RATE = 1.0  # submits per rate window, the slowest the pacer goes
WINDOW_GROWTH = 0.2  # the in-flight cap grows by this / cap per accepted submit
RECOVERY = 2.0  # the rate and the in-flight cap grow by this factor per quiet rate window
MAX_PAUSE = 300.0
FIRST_PAUSE = 1.0  # a refusal without Retry-After: 1 s, doubling with each in a row
FILL_KEY = "lumaweb:submit-pace-fill:"
WAIT_REASON = {429: "upstream rate limit", 503: "upstream unavailable"}


def enabled() -> bool:
    return bool(settings.LUMA_SUBMIT_PACING)


def paces(exc: UpstreamError) -> bool:
    """Whether this refusal of a POST is one the pacer answers: it started nothing, and it is
    about the account's pace or the service's availability (429, 503, a refused connection)."""
    return enabled() and (exc.status_code in (429, 503) or exc.never_connected)


def reason(exc: UpstreamError) -> str:
    return WAIT_REASON.get(exc.status_code or 0, "upstream not reachable")


def _state() -> dict[str, Any]:
    try:
        value = cache.get(KEY)
    except Exception:  # no cache: the caps of the settings alone
        log.warning("cache unavailable: submits are not paced", exc_info=True)
        return {}
    return value if isinstance(value, dict) else {}


def _save(state: dict[str, Any]) -> None:
    try:
        cache.set(KEY, state, MEMORY)
    except Exception:
        log.warning("cache unavailable: the submit pace is not kept", exc_info=True)


def forget() -> None:
    """Back to the caps alone (tests; an operator)."""
    try:
        cache.delete(KEY)
    except Exception:
        log.warning("cache unavailable", exc_info=True)


def _recovered(state: dict[str, Any], now: float) -> dict[str, Any]:
    """The state with the quiet rate windows since ``since`` folded in: the rate and the
    in-flight cap multiplied by ``RECOVERY`` for each, up to the cap of the settings and to
    the highest a 429 cut them from; ``since`` moved on by the windows counted."""
    rate_window = settings.LUMA_SUBMIT_RATE_WINDOW
    quiet = int(min(max(0.0, now - float(state.get("since", now))) // rate_window, 64))
    if not quiet:
        return state
    state = {**state, "since": float(state["since"]) + quiet * rate_window}
    for key, cap in (
        ("rate", settings.LUMA_MAX_SUBMITS_PER_MINUTE),
        ("window", settings.LUMA_MAX_IN_FLIGHT),
    ):
        if state.get(key):
            value = float(state[key])
            ceiling = max(value, float(state.get(f"{key}_peak") or value))
            if cap:
                ceiling = min(ceiling, float(cap))
            state[key] = max(value, min(value * RECOVERY**quiet, ceiling))
    return state


def limits(now: float | None = None) -> Limits:
    """The limits the submit claim and the sweeper apply now: the caps, paced."""
    caps = configured_limits()
    if not enabled():
        return caps
    now = time.time() if now is None else now
    state = _recovered(_state(), now)
    closed = float(state.get("paused_until", 0.0)) > now
    rate = state.get("rate")
    spacing = settings.LUMA_SUBMIT_RATE_WINDOW / float(rate) if rate else 0.0
    in_flight = caps.in_flight
    if state.get("window"):
        learned = max(1, int(float(state["window"])))
        in_flight = min(in_flight, learned) if in_flight else learned
    return Limits(in_flight, caps.per_window, spacing=spacing, closed=closed)


def paused_for(now: float | None = None) -> float:
    """Seconds left of the account's pause (0: not paused)."""
    if not enabled():
        return 0.0
    now = time.time() if now is None else now
    return max(0.0, float(_state().get("paused_until", 0.0)) - now)


def refused(
    exc: UpstreamError, sent_lately: int, in_flight: int | None = None, now: float | None = None
) -> float:
    """A POST was refused for the account's pace: pause every submit (``Retry-After``, else a
    backoff growing with the refusals in a row) and, on a 429, halve the rate and cap the
    generations in flight at ``in_flight`` (once a pause). ``sent_lately``: what went out in
    the last rate window (the rate to halve when none is set); ``in_flight``: the others sent
    and not known finished when it came. Returns the pause in seconds."""
    now = time.time() if now is None else now
    state = _recovered(_state(), now)
    streak = int(state.get("streak", 0)) + 1
    pause = exc.retry_after
    if pause is None:
        pause = FIRST_PAUSE * 2 ** min(streak - 1, 10)
    pause = min(max(pause, 0.0), MAX_PAUSE)
    already = float(state.get("paused_until", 0.0))
    cut = exc.status_code == 429 and now >= float(state.get("cut_until", 0.0))
    if cut:
        caps = configured_limits()
        current = float(state.get("rate") or caps.per_window or max(sent_lately, 2))
        state["rate"] = max(MIN_RATE, current / 2)
        state["rate_peak"] = max(current, float(state.get("rate_peak") or 0.0))
        if in_flight is not None:
            # at most halved by one 429 (one that came with little in flight, a random one,
            # does not bring the cap down to that little)
            window = float(state.get("window") or caps.in_flight or in_flight)
            state["window"] = float(max(1, min(window, max(in_flight, window / 2))))
            state["window_peak"] = max(window, float(state.get("window_peak") or 0.0))
        # one cut for one burst of refusals: until the pause ends, or one new spacing
        spacing = settings.LUMA_SUBMIT_RATE_WINDOW / state["rate"]
        state["cut_until"] = now + max(pause, spacing)
    state.update(streak=streak, paused_until=max(already, now + pause))
    if exc.status_code == 429:  # the quiet windows start again when its pause ends
        state["since"] = max(float(state.get("since", 0.0)), now + pause)
    _save(state)
    log.warning(
        "upstream refused a submit (%s): every submit paused %.1fs%s",
        exc.status_code or "no connection",
        pause,
        f"; rate now {state['rate']:.2f} per {settings.LUMA_SUBMIT_RATE_WINDOW:g}s" if cut else "",
    )
    return pause


def accepted(now: float | None = None) -> None:
    """A POST was accepted: the refusals in a row end, and the rate grows by ``1 / rate``
    (one more per window's worth of submits) up to the cap; nothing to do when not paced."""
    if not enabled():
        return
    stored = _state()
    if not stored:
        return
    state = _recovered(stored, time.time() if now is None else now)
    rate = state.get("rate")
    changed = bool(state.get("streak")) or state is not stored
    state["streak"] = 0
    if rate:
        ceiling = settings.LUMA_MAX_SUBMITS_PER_MINUTE or None
        grown = float(rate) + 1.0 / float(rate)
        state["rate"] = min(grown, ceiling) if ceiling else grown
        changed = changed or state["rate"] != rate
    window = state.get("window")
    if window:
        ceiling = settings.LUMA_MAX_IN_FLIGHT or None
        grown = float(window) + WINDOW_GROWTH / float(window)
        state["window"] = min(grown, ceiling) if ceiling else grown
        changed = True
    if changed:
        _save(state)


def fill_due(delay: float) -> bool:
    """Whether a slot-filling wake-up ``delay`` seconds from now should be sent: one for each
    tenth of a second, whatever the number of workers and jobs that ask (the others would find
    nothing more to wake)."""
    moment = round(time.time() + delay, 1)
    try:
        return bool(cache.add(f"{FILL_KEY}{moment}", 1, int(delay) + 60))
    except Exception:
        return True
