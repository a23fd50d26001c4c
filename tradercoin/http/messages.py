"""Validation errors as sentences a person can act on (never a library's text).

pydantic reports ``{"type", "loc", "ctx", "msg"}`` per problem; :func:`human_errors` turns
each into one sentence that names the field by its label on the page ("Quantity must be a
number, e.g. 0.01.") and returns the field that should be highlighted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

__all__ = ["LABELS", "human_errors", "label"]

LABELS = {
    "username": "Username",
    "password": "Password",
    "symbol": "Symbol",
    "side": "Side",
    "type": "Order type",
    "quantity": "Quantity",
    "price": "Price",
    "time_in_force": "Time in force",
    "reduce_only": "Reduce-only",
    "api_key": "API key",
    "api_secret": "API secret",
    "testnet": "Testnet",
    "interval": "Interval",
    "fast_interval": "Fast interval",
    "fast_notional": "Fast notional",
    "reconcile_interval": "Reconcile interval",
    "leverage": "Leverage",
    "client_order_id": "Client order id",
}

_PATTERNS = {
    "username": "may use only letters, digits and . _ @ -",
    "symbol": "must be letters and digits only, e.g. BTCUSDT",
    "api_key": "must be printable characters without spaces",
    "client_order_id": "must be 1 to 36 of the characters A-Z a-z 0-9 . : / _ -",
}


def label(field: str) -> str:
    return LABELS.get(field, field.replace("_", " ").capitalize())


def _choices(ctx: dict[str, Any]) -> str:
    expected = str(ctx.get("expected", "")).replace("'", "")
    return f"must be one of {expected}" if expected else "is not one of the allowed values"


def _value_error(field: str, ctx: dict[str, Any]) -> str:
    text = str(ctx.get("error", ""))
    if "duration" in text or field.endswith("interval"):
        return "must be a duration such as 2s, 500ms or 1m"
    if "finite" in text or "decimal" in text:
        return "must be a number, e.g. 0.01"
    return "is not valid"


_RULES: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "missing": lambda f, c: "is required",
    "extra_forbidden": lambda f, c: "is not a field this request takes",
    "string_pattern_mismatch": lambda f, c: _PATTERNS.get(f, "has characters that are not allowed"),
    "string_too_short": lambda f, c: (
        "is required"
        if c.get("min_length") == 1
        else f"needs at least {c['min_length']} characters"
    ),
    "string_too_long": lambda f, c: f"may have at most {c['max_length']} characters",
    "literal_error": lambda f, c: _choices(c),
    "enum": lambda f, c: _choices(c),
    "value_error": _value_error,
    "string_type": lambda f, c: "must be text",
    "bool_type": lambda f, c: "must be true or false",
    "int_type": lambda f, c: "must be a whole number",
    "int_parsing": lambda f, c: "must be a whole number",
    "greater_than": lambda f, c: f"must be greater than {c['gt']}",
    "greater_than_equal": lambda f, c: f"must be at least {c['ge']}",
    "less_than": lambda f, c: f"must be less than {c['lt']}",
    "less_than_equal": lambda f, c: f"must be at most {c['le']}",
    "model_type": lambda f, c: "must be a JSON object",
}


def _sentence(item: Any) -> tuple[str, str]:
    loc = [str(p) for p in item.get("loc", ()) if not isinstance(p, int)]
    field = loc[0] if loc else ""
    rule = _RULES.get(item.get("type", ""))
    ctx = item.get("ctx") or {}
    what = rule(field, ctx) if rule is not None else "is not valid"
    subject = label(field) if field else "The request"
    return field, f"{subject} {what}."


def human_errors(error: ValidationError) -> tuple[str, str | None]:
    """``(message, field)``: up to three sentences, and the first field to highlight."""
    items = error.errors(include_input=False, include_url=False)
    sentences = [_sentence(item) for item in items[:3]]
    if not sentences:
        return "The request is not valid.", None
    fields = [f for f, _ in sentences if f]
    return " ".join(s for _, s in sentences), (fields[0] if fields else None)
