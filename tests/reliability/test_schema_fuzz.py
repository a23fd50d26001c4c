"""Bad HTTP input against a real ``tradercoin serve``: schemathesis over every operation of
/openapi.json, authenticated once as a user and once as an operator (about 2,200 cases):
zero 5xx, and every answer within the documented statuses, content types, headers and body
schemas (tradercoin/http/responses.py). Also: keep-alive connections survive requests whose
body no handler reads (a Hypercorn race schemathesis found)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing
from tests.procs import serve_env, start_serve
from tests.reliability.live import PASSWORD

pytestmark = pytest.mark.slow

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)
EXAMPLES = 30  # per operation and phase: ~1,100 cases per role
TOKENS: dict[str, str] = {}  # role -> token, made by the ``served`` fixture


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``tradercoin serve`` (built-in simulator) for the module, with an operator."""
    where: Path = tmp_path_factory.mktemp("fuzz")
    env = serve_env(f"sqlite:///{where}/fuzz.db")
    add = [sys.executable, "-m", "tradercoin.cli", "users", "add", "root", "--operator"]
    subprocess.run([*add, "--password", PASSWORD], env=env, check=True, cwd=where)
    child = start_serve(where, env)
    try:
        for role in ("operator", "user", "logout"):  # before any fuzzing can throttle logins
            TOKENS[role] = _token(child.url, role)
        yield child.url
    finally:
        assert child.stop() == 0, child.log.read_text()[-2000:]
    assert "Traceback" not in child.log.read_text()


def _token(base: str, role: str) -> str:
    """The operator's token, or a new user's (named after ``role``)."""
    with httpx.Client(base_url=base, timeout=30) as http:
        if role == "operator":
            answer = http.post("/api/auth/login", json={"username": "root", "password": PASSWORD})
        else:
            body = {"username": f"fuzz-{role}", "password": PASSWORD}
            answer = http.post("/api/auth/register", json=body)
    assert answer.status_code in (200, 201), answer.text
    token: str = answer.json()["token"]
    return token


def _schemathesis(base: str, token: str, *scope: str) -> str:
    """``st run`` over the operations in ``scope``; its report when a check fails."""
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        missing("schemathesis is not installed (pip install -e '.[test]')")
    command = [
        str(st), "run", f"{base}/openapi.json",
        "-H", f"Authorization: Bearer {token}",
        "--checks", CHECKS,
        "--max-examples", str(EXAMPLES),
        "--seed", "1",
        "--request-timeout", "30",
        "--no-color",
        *scope,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:]
    assert " passed" in done.stdout and "generated" in done.stdout
    return done.stdout


@pytest.mark.parametrize("role", ["user", "operator"])
def test_every_operation_answers_within_its_schema(served: str, role: str) -> None:
    # logout would revoke the token mid-run: it gets a run of its own, below
    _schemathesis(served, TOKENS[role], "--exclude-path", "/api/auth/logout")


def test_logout_answers_within_its_schema(served: str) -> None:
    _schemathesis(served, TOKENS["logout"], "--include-path", "/api/auth/logout")


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
