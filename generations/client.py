"""The upstream client: the only module that speaks HTTP to the Luma API (UmamiAI).

Every failure becomes one of three exceptions, decided here and nowhere else:

* ``RetryableError``: the request certainly started nothing (connection refused, connect
  time-out, 429, 500/502/503). Safe to send again, after ``retry_after`` if given.
* ``OutcomeUnknownError``: the request may have reached the service (read time-out, connection
  dropped after sending, 504 from a gateway). A POST that ends like this may have started a paid
  generation and must not be re-sent without a person's say-so.
* ``PermanentError``: the service refused the request (4xx other than 429): bad input, bad key,
  no credits, unknown id. Sending it again unchanged will fail again.

The API key goes into the session's headers and nowhere else: no log line, no exception text.
And because a service may echo what it was sent (a 401 quoting the key, a gateway's error page
listing the request headers, a failure reason), every text the service sends back passes through
``generations.redact`` here, before the pipeline stores it and every user can read it: error
messages and request ids, failure reasons, states and prompts. A URL or an id that holds the key
cannot be redacted without breaking it, so it is refused instead.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from urllib3.exceptions import NewConnectionError

from generations import redact

log = logging.getLogger(__name__)

USER_AGENT = "lumaweb/0.1 (+self-hosted)"
MAX_ERROR_TEXT = 500
MAX_ID = 255
MAX_STATE = 50
MAX_URL = 4096
MAX_ERROR_BODY = 65536  # read this much of an error body: whole, so a key in it is whole too


class UpstreamError(Exception):
    """Base of every upstream failure; carries what the service said."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str = "",
        retry_after: float | None = None,
        never_connected: bool = False,
    ) -> None:
        # Redacted here too, so no message of any failure (ours quote exceptions) can carry it.
        message, request_id = redact.redact(message), redact.redact(request_id)
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        # no connection was made, so not a byte of the request was sent (the pacer waits)
        self.never_connected = never_connected


class RetryableError(UpstreamError):
    """Nothing was started; the same request may be sent again later."""


class OutcomeUnknownError(UpstreamError):
    """The request may have reached the service; a POST must not be re-sent automatically."""


class PermanentError(UpstreamError):
    """The service refused this request; it will not succeed unchanged."""


@dataclass(frozen=True)
class RemoteGeneration:
    """One generation object as the upstream described it, parsed defensively."""

    id: str
    state: str
    prompt: str
    estimate_wait_seconds: int | None
    video_url: str
    thumbnail_url: str
    width: int
    height: int
    created_at: datetime | None
    failure_reason: str

    @classmethod
    def from_json(cls, data: Any) -> RemoteGeneration:
        if not isinstance(data, dict) or not data.get("id"):
            raise OutcomeUnknownError(
                "The service answered with something that is not a generation"
            )
        raw_video = data.get("video")
        video: dict[str, Any] = raw_video if isinstance(raw_video, dict) else {}
        remote_id = str(data["id"])
        if len(remote_id) > MAX_ID or redact.redact(remote_id) != remote_id:
            raise OutcomeUnknownError("The service answered with an id lumaweb cannot keep")
        return cls(
            id=remote_id,
            state=_said(data.get("state")).lower()[:MAX_STATE],
            prompt=_said(data.get("prompt")),
            estimate_wait_seconds=_number(data.get("estimate_wait_seconds")),
            video_url=_url(video.get("url")),
            thumbnail_url=_url(video.get("thumbnail")),
            width=_number(video.get("width")) or 0,
            height=_number(video.get("height")) or 0,
            created_at=_datetime(data.get("created_at")),
            failure_reason=_said(data.get("failure_reason") or data.get("error"))[:MAX_ERROR_TEXT],
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _said(value: Any) -> str:
    """Text the service wrote, without credentials: redacted whole, cut by the caller after."""
    return redact.redact(_text(value))


def _url(value: Any) -> str:
    """An http(s) URL that fits our columns, or "" (then we keep polling until one comes).
    One that holds the key is unusable too: it would be shown in every viewer's page."""
    text = _text(value).strip()
    if len(text) > MAX_URL or not text.lower().startswith(("http://", "https://")):
        return ""
    if redact.contains_secret(text):
        return ""
    return text


def _number(value: Any) -> int | None:
    """Numbers arrive as numbers, numeric strings or null."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number < 0 or number > 10**9:  # NaN or absurd
        return None
    return int(number)


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def error_details(response: requests.Response) -> tuple[str, str]:
    """(message, request id) from any of the error shapes services of this family use,
    redacted before they are cut to length (a key cut in half would no longer be found)."""
    text = response.text[:MAX_ERROR_BODY]
    message, request_id = "", ""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        request_id = _text(body.get("requestId") or body.get("request_id"))
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("detail") or json.dumps(value)
            elif isinstance(value, list):
                value = "; ".join(
                    _text(item.get("msg") if isinstance(item, dict) else item) for item in value
                )
            if value:
                message = _text(value)
                break
    elif text.strip() and not text.lstrip().startswith("<"):
        message = text.strip()
    if not message:
        message = f"The service answered {response.status_code} {response.reason or ''}".strip()
    request_id = request_id or response.headers.get("x-request-id", "")
    return redact.redact(message)[:MAX_ERROR_TEXT], redact.redact(request_id)[:200]


def _raise_for_status(response: requests.Response, *, sent_is_unknown: bool) -> None:
    """429 and 503 say "not now"; other 5xx answers to a POST may come after the service
    started (and charged for) the job, so they are an unknown outcome; 4xx is a refusal."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message, request_id = error_details(response)
    kind: type[UpstreamError]
    if status in (429, 503):
        kind = RetryableError
    elif status >= 500:
        kind = OutcomeUnknownError if sent_is_unknown else RetryableError
    else:
        kind = PermanentError
    raise kind(
        message, status_code=status, request_id=request_id, retry_after=_retry_after(response)
    )


class LumaClient:
    """A thin, typed wrapper over the three upstream endpoints."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.session = make_session(api_key)

    def __repr__(self) -> str:  # never shows the key
        return f"<LumaClient {self.base_url}>"

    # --- endpoints ------------------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> RemoteGeneration:
        return RemoteGeneration.from_json(self._post("/luma-ai/generations", body))

    def extend(self, remote_id: str, body: dict[str, Any]) -> RemoteGeneration:
        path = f"/luma-ai/generations/{quote(remote_id, safe='')}/extend"
        return RemoteGeneration.from_json(self._post(path, body))

    def get_many(self, remote_ids: list[str]) -> list[RemoteGeneration]:
        """One GET for all these ids; unknown ids are simply absent from the answer."""
        if not remote_ids:
            return []
        params = [(f"ids[{i}]", rid) for i, rid in enumerate(remote_ids)]
        data = self._request("GET", "/luma-ai/generation", params=params, sent_is_unknown=False)
        if isinstance(data, dict):  # some services wrap lists
            data = data.get("generations") or data.get("data") or [data]
        if not isinstance(data, list):
            raise RetryableError("The service answered a poll with something that is not a list")
        out = []
        for item in data:
            try:
                out.append(RemoteGeneration.from_json(item))
            except UpstreamError:
                log.warning("skipping an unreadable generation object in a poll answer")
        return out

    # --- plumbing -------------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, json=body, sent_is_unknown=True)

    def _request(self, method: str, path: str, *, sent_is_unknown: bool, **kwargs: Any) -> Any:
        return request_json(
            self.session,
            method,
            self.base_url + path,
            timeout=self.timeout,
            sent_is_unknown=sent_is_unknown,
            **kwargs,
        )


def make_session(api_key: str) -> requests.Session:
    """A session that sends the key as a bearer token. The key is remembered by
    ``generations.redact`` first: whatever the service echoes of it is hidden from then on.
    requests' default adapter retries nothing (urllib3 ``Retry(0, read=False)``): a POST is
    sent once, whatever happens, and the caller decides what a failure means."""
    redact.remember(api_key)
    session = requests.Session()
    session.headers.update(
        {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
    )
    return session


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: tuple[float, float],
    sent_is_unknown: bool,
    **kwargs: Any,
) -> Any:
    """One request, its JSON answer, every failure turned into one of the three kinds.
    ``sent_is_unknown``: a failure after the request may have been received leaves its outcome
    unknown (a POST that starts a paid job), rather than merely retryable (a GET)."""
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
    except requests.ConnectTimeout as exc:
        raise RetryableError(
            "Could not connect to the service (time-out)", never_connected=True
        ) from exc
    except requests.ReadTimeout as exc:
        raise OutcomeUnknownError(
            "The service did not answer in time; the request may have been received"
        ) from exc
    except requests.ConnectionError as exc:
        if _never_connected(exc):
            raise RetryableError("Could not connect to the service", never_connected=True) from exc
        cls = OutcomeUnknownError if sent_is_unknown else RetryableError
        raise cls("The connection to the service broke during the request") from exc
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    ) as exc:
        raise RetryableError(f"The service's address is not usable: {exc}") from exc
    except requests.RequestException as exc:  # e.g. a body cut short after the status line
        cls = OutcomeUnknownError if sent_is_unknown else RetryableError
        raise cls(f"The answer from the service broke off ({type(exc).__name__})") from exc
    _raise_for_status(response, sent_is_unknown=sent_is_unknown)
    try:
        return response.json()
    except ValueError as exc:
        cls = OutcomeUnknownError if sent_is_unknown else RetryableError
        raise cls("The service answered with something that is not JSON") from exc


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the failure happened before any byte of the request could be sent."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(cause, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            cause = reason
            continue
        cause = cause.__cause__ or cause.__context__
        if cause is None and exc.args and isinstance(exc.args[0], BaseException):
            cause = exc.args[0] if id(exc.args[0]) not in seen else None
    return False


_local = threading.local()


def get_client() -> LumaClient:
    """One client (and so one connection pool) per thread, built from settings."""
    key = (
        settings.LUMA_API_BASE_URL,
        settings.LUMA_API_KEY,
        settings.LUMA_CONNECT_TIMEOUT,
        settings.LUMA_READ_TIMEOUT,
    )
    client = getattr(_local, "client", None)
    if client is None or getattr(_local, "key", None) != key:
        client = LumaClient(
            settings.LUMA_API_BASE_URL,
            settings.LUMA_API_KEY or "demo",
            connect_timeout=settings.LUMA_CONNECT_TIMEOUT,
            read_timeout=settings.LUMA_READ_TIMEOUT,
        )
        _local.client, _local.key = client, key
    return client
