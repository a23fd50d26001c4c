"""A scripted HTTP peer for bodies the simulator cannot produce.

A real ASGI application reached through ``httpx.ASGITransport``: it records every request as
sent (raw query bytes, headers) and answers with the next scripted reply. ``GET /fapi/v1/time``
is answered from ``server_time`` unless a reply is scripted for it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Seen:
    method: str
    path: str
    query: bytes
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query.decode(), keep_blank_values=True))

    def signature_valid(self, secret: str) -> bool:
        """The simulator's rule: HMAC over query + body minus the trailing signature."""
        payload, _, signature = (self.query + self.body).decode().rpartition("&signature=")
        digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(digest, signature.lower())


@dataclass
class ScriptedPeer:
    server_time: int = 0
    replies: deque[Reply] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)

    def then(
        self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None
    ) -> ScriptedPeer:
        """Script the next reply; ``body`` bytes/str are sent as is, anything else as JSON."""
        if isinstance(body, str):
            raw = body.encode()
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = json.dumps({} if body is None else body).encode()
        self.replies.append(Reply(status, raw, tuple((headers or {}).items())))
        return self

    def _next(self, path: str) -> Reply:
        if path == "/fapi/v1/time" and not self.replies:
            return Reply(200, json.dumps({"serverTime": self.server_time}).encode())
        return self.replies.popleft()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append(Seen(scope["method"], scope["path"], scope["query_string"], headers, body))
        reply = self._next(scope["path"])
        raw_headers = [(k.encode(), v.encode()) for k, v in reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": reply.body})
