"""Bad HTTP input against a real ``tradercoin serve``: keep-alive connections survive requests
whose body no handler reads (a Hypercorn race schemathesis found)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.procs import serve_env, start_serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``tradercoin serve`` (built-in simulator) for the module."""
    where: Path = tmp_path_factory.mktemp("fuzz")
    child = start_serve(where, serve_env(f"sqlite:///{where}/fuzz.db"))
    try:
        yield child.url
    finally:
        assert child.stop() == 0, child.log.read_text()[-2000:]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("GET", "/api/symbols"), ("DELETE", "/api/orders/1"), ("TRACE", "/")],
)
def test_a_body_nobody_reads_leaves_the_connection_usable(
    served: str, method: str, path: str
) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:  # one keep-alive connection
        for _ in range(20):
            response = client.request(method, path, content=b'{"unread": "body"}')
            assert response.status_code < 500
