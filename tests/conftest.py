"""Shared fixtures: real components only.

PostgreSQL tests use ``TRADERCOIN_TEST_PG_URL`` (default: the local server with trust auth).
Where PostgreSQL or Chromium is missing they skip with a reason; under ``CI=true`` a missing
one is a failure instead.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get(
    "TRADERCOIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def missing(reason: str) -> None:
    """Skip on a laptop; fail under CI, where everything must be present."""
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)
