"""Checks at the edge of the HTTP app, before any route runs, and headers after it.

- Numbers in paths and query strings are ASCII digits only (``"²".isdigit()`` is true and
  ``int("١")`` is 1), and ids fit a signed 64-bit integer: anything else matches no route
  (404) or is a 400, and never reaches an actor or SQL.
- ``Host`` must name this service (its own loopback names on the port it listens on, or
  ``TRADERCOIN_ALLOWED_HOSTS``) whenever a browser is involved (an ``Origin`` or a cookie):
  a DNS-rebinding page cannot pass for the service.
- ``Origin`` is compared exactly: scheme, host and port.
- Every answer gets ``X-Content-Type-Options``, ``Referrer-Policy`` and ``X-Frame-Options``;
  API answers ``Cache-Control: no-store``; the page a Content-Security-Policy without inline
  script (:data:`PAGE_CSP`).
- With ``--metrics-address`` that port serves ``/metrics`` (and ``/healthz``) and nothing else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from werkzeug.routing import BaseConverter, ValidationError

from tradercoin.config import Settings
from tradercoin.orders import MAX_ID

__all__ = [
    "MAX_ID",
    "PAGE_CSP",
    "AsciiIntConverter",
    "MetricsPort",
    "ascii_int",
    "host_allowed",
    "ids_out_of_range",
    "origin_allowed",
    "security_headers",
]

LOCAL_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (names to recognise, not binds)
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' {ws}; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def ascii_int(raw: str, *, max_digits: int = 19) -> int | None:
    """``raw`` as an int if it is 1-``max_digits`` ASCII digits, else ``None``."""
    if not raw or len(raw) > max_digits or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)


class AsciiIntConverter(BaseConverter):
    """The app's ``<int:...>``: ASCII digits, 0 to 2**63 - 1; anything else matches nothing."""

    regex = r"[0-9]{1,19}"
    part_isolating = True

    def to_python(self, value: str) -> int:
        number = ascii_int(value)
        if number is None:
            raise ValidationError()
        return number  # above MAX_ID: refused by check_ids (a 404, not werkzeug's 405)

    def to_url(self, value: Any) -> str:
        return str(int(value))


def ids_out_of_range(view_args: dict[str, Any] | None) -> bool:
    """Whether a path id is beyond a signed 64-bit integer (no such row can exist)."""
    return any(type(v) is int and v > MAX_ID for v in (view_args or {}).values())


def _split_host(host: str) -> tuple[str, int | None]:
    """``"example.com:8080"`` -> ``("example.com", 8080)``; IPv6 in brackets; no port: None."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    return name, ascii_int(port, max_digits=5) if port else None


def _origin_names(settings: Settings) -> set[str]:
    return {(urlsplit(o).hostname or "").lower() for o in settings.allowed_origins}


def host_allowed(host: str, server_port: int | None, settings: Settings) -> bool:
    """Whether a ``Host`` header names this service.

    Allowed: a host listed in ``allowed_hosts`` (with or without port); the loopback names,
    the bind address and the hosts of ``allowed_origins``, on the port the request came in on
    (``server_port``); when bound to every interface, an IP literal on that port.
    """
    wanted = host.strip().lower()
    if not wanted:
        return False
    name, port = _split_host(wanted)
    configured = {h.lower() for h in settings.allowed_hosts}
    if wanted in configured or name in configured:
        return True
    if port is not None and server_port is not None and port != server_port:
        return False
    names = LOCAL_NAMES | {settings.host.lower()} | _origin_names(settings)
    if name in names:
        return True
    return settings.host in WILDCARDS and _is_ip(name)


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return parts.scheme, parts.hostname.lower(), port or _default_port(parts.scheme)


def origin_allowed(origin: str, host: str, scheme: str, allowed: tuple[str, ...]) -> bool:
    """The request's own origin (same scheme, host and port) or one of the configured ones."""
    got = _origin_tuple(origin)
    if got is None:
        return False
    own_scheme = "https" if scheme in ("https", "wss") else "http"
    name, port = _split_host(host)
    if got == (own_scheme, name, port or _default_port(own_scheme)):
        return True
    return any(got == _origin_tuple(a) for a in allowed)


def security_headers(headers: Any, path: str, ws_host: str) -> None:
    """Set the headers every answer gets, and the page's or the API's own."""
    for name, value in _COMMON_HEADERS.items():
        headers.setdefault(name, value)
    if path in ("/", "/docs") or path.startswith("/static"):
        headers["Content-Security-Policy"] = PAGE_CSP.format(ws=f"ws://{ws_host} wss://{ws_host}")
    elif path.startswith("/api/"):
        headers["Cache-Control"] = "no-store"


class MetricsPort:
    """ASGI middleware: requests that came in on the metrics port reach only ``/metrics`` and
    ``/healthz`` (404 for the rest); elsewhere nothing changes."""

    ALLOWED = frozenset({"/metrics", "/healthz"})

    def __init__(self, app: Any, port: Any) -> None:
        self.app = app
        self.port = port  # a callable: the metrics port once bound, or None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        refused = scope["type"] == "websocket" or scope.get("path") not in self.ALLOWED
        if scope["type"] in ("http", "websocket") and refused and self.on_metrics_port(scope):
            await _not_found(scope, send)
            return
        await self.app(scope, receive, send)

    def on_metrics_port(self, scope: Any) -> bool:
        port = self.port()
        server = scope.get("server")
        return port is not None and server is not None and server[1] == port


async def _not_found(scope: Any, send: Any) -> None:
    body = b'{"status":"error","error":{"code":"not_found","message":"no such resource"}}'
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 404, "headers": headers})
    await send({"type": "http.response.body", "body": body})
