"""Logging helpers: JSON lines for log collectors, and a last-line guard for the API key.

Both formats pass what they write through ``generations.redact`` (the function that also
cleans what the service says before it is stored), the message *and* the exception's text and
traceback: an exception can quote the key (a library's error naming a header, a service's answer
in an exception message) and ``exc_info`` is formatted after any filter has run on the message.
"""

from __future__ import annotations

import json
import logging

from generations.redact import redact

_traceback_formatter = logging.Formatter()


class PlainFormatter(logging.Formatter):
    """The usual one-line format (``%(asctime)s %(levelname)s ...``), redacted as a whole."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; pipeline lines carry ``generation_id`` as a field."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        generation_id = getattr(record, "generation_id", None)
        if generation_id:
            data["generation_id"] = generation_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = redact(record.exc_text)
        if record.stack_info:
            data["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(data, ensure_ascii=False)


class RedactSecretsFilter(logging.Filter):
    """Replace the upstream API key, and anything shaped like a credential, wherever it would
    appear in a log record: the message, the exception's text and traceback, the stack (defence
    in depth: no code logs the key, but a library's debug output or an exception text might).

    The record itself is cleaned, so every handler after this filter (whatever its formatter)
    sees the redacted text: the traceback is formatted here once and kept in ``exc_text``, which
    ``logging.Formatter`` uses instead of formatting ``exc_info`` again."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit: the formatter reports it, not the caller
            message = None
        if message is not None:
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
