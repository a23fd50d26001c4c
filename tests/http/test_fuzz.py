"""Schemathesis fuzzes every documented operation of a real ``tradercoin serve`` (as an
operator, so admin routes are reached too) and checks that nothing answers a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing

pytestmark = pytest.mark.slow


def test_no_documented_operation_answers_a_server_error(server: str, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        missing("schemathesis is not installed (pip install -e '.[test]')")
    env = {**os.environ, "TRADERCOIN_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}
    add = [sys.executable, "-m", "tradercoin.cli", "users", "add", "root", "--operator"]
    subprocess.run([*add, "--password", "fuzz password"], env=env, check=True, cwd=tmp_path)
    login = httpx.post(
        f"{server}/api/auth/login", json={"username": "root", "password": "fuzz password"}
    )
    token = login.json()["token"]
    command = [
        str(st), "run", f"{server}/openapi.json",
        "-H", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error",
        "--phases", "examples,fuzzing",
        "--exclude-path", "/api/auth/logout",  # it would revoke the token mid-run
        "--max-examples", "25",
        "--seed", "1",
        "--request-timeout", "30",
        "--no-color",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
