"""Shared fixtures: real components only.

PostgreSQL tests use ``TRADERCOIN_TEST_PG_URL`` (default: the local server with trust auth).
Where PostgreSQL or Chromium is missing they skip with a reason; under ``CI=true`` a missing
one is a failure instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import settings
from sqlalchemy.engine import make_url

# Hypothesis budgets: "ci" (the default) runs a fixed, derandomized set of examples that keeps
# the model-based test (tests/model/test_model.py) within a minute or two of CPU;
# TRADERCOIN_HYPOTHESIS_PROFILE=long runs 5,000 fresh ones. Tests with their own
# ``@settings(max_examples=...)`` keep it under both.
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("long", max_examples=5000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("TRADERCOIN_HYPOTHESIS_PROFILE", "ci"))

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
