"""Notional and leverage brackets (``GET /fapi/v1/leverageBracket``).

Two tables modeled on Binance's published tiers: BTCUSDT and ETHUSDT get the majors' table
(125x up to 50,000 USDT of notional, then 100x, 50x, ...), every other symbol the altcoins'
table (75x up to 5,000 USDT, ...). The maintenance amount (``cum``) of each bracket follows
Binance's rule: ``cum[n] = cum[n-1] + floor[n] * (mmr[n] - mmr[n-1])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Bracket", "bracket_for", "brackets_of"]


@dataclass(frozen=True, slots=True)
class Bracket:
    bracket: int
    initial_leverage: int
    floor: Decimal
    cap: Decimal
    mmr: Decimal
    cum: Decimal


def _table(rows: list[tuple[int, str, str, str]]) -> tuple[Bracket, ...]:
    """``(initial leverage, floor, cap, maintenance margin rate)`` rows -> brackets."""
    brackets: list[Bracket] = []
    cum, previous_mmr = Decimal(0), Decimal(0)
    for number, (leverage, floor, cap, mmr) in enumerate(rows, start=1):
        cum += Decimal(floor) * (Decimal(mmr) - previous_mmr)
        previous_mmr = Decimal(mmr)
        brackets.append(Bracket(number, leverage, Decimal(floor), Decimal(cap), Decimal(mmr), cum))
    return tuple(brackets)


MAJORS = _table([
    (125, "0", "50000", "0.004"),
    (100, "50000", "250000", "0.005"),
    (50, "250000", "3000000", "0.01"),
    (20, "3000000", "20000000", "0.025"),
    (10, "20000000", "40000000", "0.05"),
    (5, "40000000", "100000000", "0.1"),
    (4, "100000000", "120000000", "0.125"),
    (3, "120000000", "200000000", "0.15"),
    (2, "200000000", "300000000", "0.25"),
    (1, "300000000", "500000000", "0.5"),
])  # fmt: skip
ALTS = _table([
    (75, "0", "5000", "0.01"),
    (50, "5000", "25000", "0.015"),
    (25, "25000", "100000", "0.02"),
    (20, "100000", "250000", "0.025"),
    (10, "250000", "1000000", "0.05"),
    (5, "1000000", "5000000", "0.1"),
    (4, "5000000", "10000000", "0.125"),
    (2, "10000000", "20000000", "0.25"),
    (1, "20000000", "50000000", "0.5"),
])  # fmt: skip
_MAJOR_SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})


def brackets_of(symbol: str) -> tuple[Bracket, ...]:
    return MAJORS if symbol in _MAJOR_SYMBOLS else ALTS


def bracket_for(symbol: str, notional: Decimal) -> Bracket:
    """The bracket holding an absolute position ``notional`` (the last one beyond it)."""
    table = brackets_of(symbol)
    return next((b for b in table if notional < b.cap), table[-1])
