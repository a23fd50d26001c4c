"""The soak benchmark's short mode (bench/soak.py --short) as a CI test: a real serve and sim,
200 users x 5 resting orders, 500 sessions, a minute of fills; every target must hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_soak_short_meets_every_target(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.soak", "--short", "--dir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "notifications lost: 0 gaps/resyncs, 0 behind the store" in done.stdout
