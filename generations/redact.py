"""Credentials out of every text lumaweb keeps or logs.

The service's own words (an error message, a gateway's error page, a failed job's reason, even
the prompt it sends back) are stored and shown to every user: the detail page, /jobs/, the API,
the admin. A service that echoes what it was sent would show the API key to all of them, so
``generations.client`` passes everything the service says through ``redact`` before anything
else sees it, and the log filter and formatters (``lumaweb.logs``) pass every line and
traceback through it too.

Two kinds of secret are removed:

* the exact key this process sends (``settings.LUMA_API_KEY`` and every key a ``LumaClient``
  was built with, via ``remember``), and the object storage's secret key
  (``AWS_SECRET_ACCESS_KEY``, ``MEDIA_STORAGE=s3``), whatever their shape, also
  percent-encoded, in any letter case (a URL's host name or a content type arrives lowercased);
* anything *shaped* like a credential, whoever's it is: ``Bearer <token>``, ``sk-...`` /
  ``sk_live_...`` keys, lumaweb's own ``lw_...`` personal tokens, and a long opaque token
  (letters and digits, 16 characters or more) right after a word such as key, token, secret,
  password or authorization;
* a share link's token in its path (``/s/<token>``): the token is the only key to a public
  page, and a request line or a "Not Found: /s/..." warning would otherwise carry it.

Ordinary messages ("Insufficient credits", "The token has expired", a request id) are kept as
they are: a person needs the service's words to know what went wrong.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

REDACTED = "[redacted]"
MIN_SECRET = 6  # shorter values ("demo") are not secrets, and would blank ordinary words

_remembered: set[str] = set()
_lock = threading.Lock()

_VALUE = r"[A-Za-z0-9][A-Za-z0-9\-._~+/_]*=*"  # base64(url), JWTs, hex, dashed keys
_BEARER = re.compile(r"(?i)\b(bearer\s+)(" + _VALUE + ")")
_PREFIXED = re.compile(r"(?<![A-Za-z0-9])(?:sk[-_][A-Za-z0-9\-_]{12,}|lw_[A-Za-z0-9\-_]{16,})")
# A share link's path, /s/<token> (and the API's /shares/<token>): 43 URL-safe characters;
# 20 or more are taken as one.
_SHARE_PATH = re.compile(r"(/(?:s|shares)/)[A-Za-z0-9_-]{20,}")
_NEAR_A_WORD = re.compile(
    r"(?i)(?<![A-Za-z0-9])((?:x-)?(?:api[-_ ]?)?(?:keys?|tokens?|secrets?|passwords?|credentials?)"
    r"|apikey|authorization|auth)(?![A-Za-z0-9])"
    # Between the word and the value: quotes, colons, equals signs, spaces and a few filler words
    # ("Incorrect API key provided: ...", '"api_key": "..."', "Authorization: Basic ...").
    # One character or word per step, at most twelve: no runaway backtracking on hostile text.
    r"((?:[\s\"':=]|\b(?:basic|bearer|provided|is|was|used|of)\b){0,12})"
    r"(" + _VALUE + ")"
)


def remember(secret: str) -> None:
    """Redact this value everywhere from now on (the client calls it with the key it sends, so
    a key passed to ``LumaClient`` directly, or one rotated out of the settings, stays hidden)."""
    if secret and len(secret) >= MIN_SECRET:
        with _lock:
            _remembered.add(secret)


def _secrets() -> list[str]:
    """Every exact value to hide, longest first (so a key that contains another goes whole)."""
    found = set()
    try:
        configured = getattr(settings, "LUMA_API_KEY", "") or ""
        # MEDIA_STORAGE=s3's secret key (docs/MEDIA.md): a boto3 error or a traceback may carry it
        storage_secret = getattr(settings, "AWS_SECRET_ACCESS_KEY", "") or ""
    except ImproperlyConfigured:  # logging before Django's settings: only what was remembered
        configured = storage_secret = ""
    for secret in (configured, storage_secret):
        if len(secret) >= MIN_SECRET:
            found.add(secret)
    with _lock:
        found |= _remembered
    variants = found | {quote(secret, safe="") for secret in found}
    return sorted(variants, key=len, reverse=True)


def _exact() -> re.Pattern[str] | None:
    """One pattern for them all, any case (``re`` caches it while the secrets stay the same)."""
    secrets = _secrets()
    if not secrets:
        return None
    return re.compile("|".join(re.escape(secret) for secret in secrets), re.IGNORECASE)


def contains_secret(text: str) -> bool:
    """True when the text holds one of the exact secrets (for values that must be kept whole or
    not at all, such as a URL: a signed URL's ``token=`` is not ours and must stay)."""
    exact = _exact() if text else None
    return exact is not None and exact.search(text) is not None


def _opaque(token: str) -> bool:
    """Letters and digits together: a credential, not a word ("expired", "provided")."""
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


def _hide_after_word(match: re.Match[str]) -> str:
    word, gap, token = match.groups()
    if len(token) >= 16 and _opaque(token):
        return word + gap + REDACTED
    return match.group(0)


def _hide_bearer(match: re.Match[str]) -> str:
    scheme, token = match.groups()
    if len(token) >= 8 and _opaque(token):
        return scheme + REDACTED
    return match.group(0)


def redact(text: str) -> str:
    """The text with every secret and credential-shaped value replaced by ``[redacted]``.

    Cut a text to its column's length *after* redacting it: a key cut in half is no longer the
    key, and only its shape would give it away.
    """
    if not text:
        return text
    exact = _exact()
    if exact is not None:
        text = exact.sub(REDACTED, text)
    text = _BEARER.sub(_hide_bearer, text)
    text = _PREFIXED.sub(REDACTED, text)
    text = _SHARE_PATH.sub(r"\1" + REDACTED, text)
    return _NEAR_A_WORD.sub(_hide_after_word, text)
