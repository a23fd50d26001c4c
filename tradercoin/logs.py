"""Logging set-up: human text or one JSON object per line (``--log-format json``).

A JSON line holds ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``message``, ``user_id`` and ``request_id`` when known, ``error`` (the traceback) when one was
logged, and every field a caller passed with ``extra={...}`` (e.g. ``event``, ``address``).

The request id and the user id of the request (or WebSocket session) being handled live in a
:class:`RequestScope` in a context variable set by the HTTP layer, so any log line written
while handling it carries them, whichever module writes it. trio copies the context into
every task spawned meanwhile (an actor started by a request, say): the scope is closed when
the request ends, so such a task's later lines carry no stale ids. A caller's own
``extra={"user_id": ...}`` wins.
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
    "RequestScope",
    "TextFormatter",
    "configure_logging",
    "request_scope",
    "set_log_user",
]


class RequestScope:
    """The ids of one request or WebSocket session, while it is being handled."""

    __slots__ = ("open", "request_id", "user_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.user_id: int | None = None
        self.open = True


request_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "tradercoin_request_scope", default=None
)


def set_log_user(user_id: int) -> None:
    """The current request acts for ``user_id``: its log lines say so from now on."""
    scope = request_scope.get()
    if scope is not None and scope.open:
        scope.user_id = user_id


# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """``user_id``/``request_id`` from the context (unless the record has its own) and the
    record's ``extra`` fields."""
    fields: dict[str, Any] = {}
    scope = request_scope.get()
    if scope is not None and scope.open:
        if scope.user_id is not None:
            fields["user_id"] = scope.user_id
        fields["request_id"] = scope.request_id
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value  # a caller's own user_id wins
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
