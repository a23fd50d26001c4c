"""The ``deployed`` fixture: PostgreSQL, ``tradercoin sim``, three instances and HAProxy as
real processes (tests/cluster/harness.py). Without haproxy or PostgreSQL's binaries the tests
skip with the reason (under CI=true they fail: .ci/run installs both)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Deployment, deployment, missing_parts
from tests.conftest import missing

USERS = 12  # 4 per instance of 3, 3 per instance of 4


@contextlib.contextmanager
def _deployed(root: Path, instances: int) -> Iterator[Deployment]:
    reason = missing_parts()
    if reason is not None:
        missing(reason)
    sim_args = ("--fill-latency", "0.3")
    poll = {"TRADERCOIN_POLL_INTERVAL": "1s"}
    with deployment(root, instances, sim_args=sim_args, accounts=USERS, **poll) as running:
        yield running


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployment]:
    """Three instances."""
    with _deployed(tmp_path, 3) as running:
        yield running


@pytest.fixture
def deployed_one(tmp_path: Path) -> Iterator[Deployment]:
    """One instance behind HAProxy (the harness and the oracle without a cluster)."""
    with _deployed(tmp_path, 1) as running:
        yield running
