"""Logging helpers: JSON lines for log collectors, and a last-line guard for the API key."""

from __future__ import annotations

import json
import logging


class JsonFormatter(logging.Formatter):
    """One JSON object per line; pipeline lines carry ``generation_id`` as a field."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        generation_id = getattr(record, "generation_id", None)
        if generation_id:
            data["generation_id"] = generation_id
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class RedactSecretsFilter(logging.Filter):
    """Replace the upstream API key wherever it would appear in a log line (defence in depth:
    no code logs it, but a library's debug output or an exception text might)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django.conf import settings

        key = getattr(settings, "LUMA_API_KEY", "")
        if key and len(key) >= 6:
            message = record.getMessage()
            if key in message:
                record.msg = message.replace(key, "[redacted]")
                record.args = None
        return True
