"""Logging set-up: human text or one JSON object per line (``--log-format json``).

A JSON line holds ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``message``, ``user_id`` and ``request_id`` when known, ``error`` (the traceback) when one was
logged, and every field a caller passed with ``extra={...}`` (e.g. ``event``, ``address``).

The request id and the user id of the request (or WebSocket session) being handled live in
context variables set by the HTTP layer, so any log line written while handling it carries
them, whichever module writes it. A caller's own ``extra={"user_id": ...}`` wins.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "request_id_var",
    "user_id_var",
]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tradercoin_request_id", default=None
)
user_id_var: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "tradercoin_user_id", default=None
)

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """``user_id``/``request_id`` from the context (unless the record has its own) and the
    record's ``extra`` fields."""
    fields: dict[str, Any] = {}
    request_id = request_id_var.get()
    user_id = user_id_var.get()
    if user_id is not None:
        fields["user_id"] = user_id
    if request_id is not None:
        fields["request_id"] = request_id
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _context_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The usual text line, with ``key=value`` for the ids and extra fields at the end."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _context_fields(record)
        if not fields:
            return text
        tail = " ".join(f"{key}={value}" for key, value in fields.items())
        head, newline, rest = text.partition("\n")  # keep a traceback below the line
        return f"{head} [{tail}]{newline}{rest}"


def configure_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Route the root logger to ``stream`` (stderr) in ``fmt`` ("text" or "json"), replacing
    any handler set before; httpx's per-request lines (signed URLs) stay below INFO."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
