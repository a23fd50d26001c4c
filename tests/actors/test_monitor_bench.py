"""bench/monitor.py stays runnable: a tiny run of each strategy under autojump."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

import pytest
import trio

BENCH = pathlib.Path(__file__).parents[2] / "bench" / "monitor.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_monitor", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("strategy", ["per-order", "batched", "stream", "hub"])
async def test_a_small_run_detects_every_fill_once(
    autojump_clock: trio.abc.Clock, strategy: str
) -> None:
    bench = load_bench()
    args = bench.parse_args(["--users", "3", "--duration", "60"])
    result = await bench.run_strategy(args, strategy)
    assert (result["lost"], result["duplicates"], result["rate_limited"]) == (0, 0, 0)
    assert result["strategy"] == strategy and result["users"] == 3
    expected_demand = {"per-order": 60.0, "batched": 12.0, "stream": 1.0, "hub": 1.0}[strategy]
    assert result["demand_weight_per_user_min"] >= expected_demand
    expected_connections = {"per-order": 0, "batched": 0, "stream": 3, "hub": 1}[strategy]
    assert result["ws_connections_open"] == expected_connections
