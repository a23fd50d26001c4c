"""Random input for the bad-input suites (HTTP bodies, WebSocket frames), seeded."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["random_json"]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: odd numbers and strings, order words, nested up to 3 deep."""
    kind = rng.randrange(9 if depth < 2 else 7)
    simple = [
        None,
        rng.random() < 0.5,
        rng.randint(-(2**70), 2**70),
        rng.uniform(-1e9, 1e9),
        "".join(rng.choice("0123456789.-eE+aBUYSELLMARKET ") for _ in range(rng.randrange(12))),
        rng.choice(["BUY", "SELL", "MARKET", "LIMIT", "GTC", "BTCUSDT", "0.01", "1e-9", ""]),
        "x" * rng.randrange(300),
    ]
    if kind < len(simple):
        return simple[kind]
    if kind == 7:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {str(rng.randrange(5)): random_json(rng, depth + 1) for _ in range(rng.randrange(3))}
