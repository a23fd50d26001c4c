"""Shared fixtures: real components only.

PostgreSQL tests use ``TRADERCOIN_TEST_PG_URL`` (default: the local server with trust auth).
Where PostgreSQL or Chromium is missing they skip with a reason; under ``CI=true`` a missing
one is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

# Every command and child process of the tests finds its data here, never in the developer's
# data directory (TRADERCOIN_HOME; tradercoin/home.py). Removed when the session ends.
TEST_HOME = tempfile.mkdtemp(prefix="tradercoin-test-home-")
os.environ["TRADERCOIN_HOME"] = TEST_HOME
os.environ.pop("TRADERCOIN_TOKEN", None)


def pytest_sessionfinish() -> None:
    shutil.rmtree(TEST_HOME, ignore_errors=True)


# Whole modules whose tests take tens of seconds to minutes (real processes, fuzzing, soak,
# browsers); `pytest -m "not slow"` is the quick loop (README). Single tests carry their own
# @pytest.mark.slow.
SLOW_MODULES = {
    "tests/reliability/test_crash.py",
    "tests/reliability/test_soak_short.py",
    "tests/reliability/test_schema_fuzz.py",
    "tests/reliability/test_ws_fuzz.py",
    "tests/reliability/test_fault_matrix.py",
    "tests/reliability/test_exchange_garbage.py",
    "tests/reliability/test_db_faults.py",
    "tests/http/test_browser.py",
    "tests/http/test_fuzz.py",
    "tests/actors/test_monitor_bench.py",
    "tests/sim/test_fuzz.py",
    "tests/exchange/test_client_fuzz.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("::")[0] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get(
    "TRADERCOIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def missing(reason: str) -> None:
    """Skip on a laptop; fail under CI, where everything must be present."""
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def pg_conninfo() -> str:
    """PG_URL as a libpq connection string (for psycopg without SQLAlchemy)."""
    return make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards, on a
    new connection, so a test may restart the server in between)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(pg_conninfo(), autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as error:
        missing(f"PostgreSQL unreachable at {PG_URL}: {str(error).splitlines()[0]}")
    try:
        yield (
            make_url(PG_URL)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(pg_conninfo(), autocommit=True, connect_timeout=10) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
