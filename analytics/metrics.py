"""A window's metric rows, computed from its facts (absolute values, never increments).

Every row is (metric, dimension) -> value; `dimension` is "all" for shop-wide numbers, else the
step, provider or currency. Counts and money are ints (money in minor units per currency, never
summed across currencies), rates are Decimals in [0, 1] with 4 places, latencies integer ms.
A rate is only reported when it has a denominator, so a quiet window shows no made-up 0 %.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal

from analytics.facts import FLAT_RATE_CARRIER, TAX_FALLBACK_SOURCE, Kind, State

ALL = "all"
PERCENTILES = (50, 95, 99)
_PLACES = Decimal("0.0001")

Value = int | Decimal
Rows = dict[tuple[str, str], Value]


def rate(numerator: int, denominator: int) -> Decimal:
    return (Decimal(numerator) / Decimal(denominator)).quantize(_PLACES, ROUND_HALF_EVEN)


def percentile(values: Iterable[int], p: int) -> int:
    """Nearest-rank percentile: an observed value, never an interpolated one."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _by(state: State, kind: Kind, index: int = 0) -> Counter[str]:
    return Counter(str(payload[index]) for payload in state.get(kind.value, {}).values())


def _count(state: State, kind: Kind) -> int:
    return len(state.get(kind.value, {}))


def step_outcomes(state: State) -> dict[str, tuple[int, int]]:
    """step -> (succeeded attempts, attempts with an outcome)."""
    ok, failed = _by(state, Kind.STEP_OK), _by(state, Kind.STEP_FAILED)
    return {step: (ok[step], ok[step] + failed[step]) for step in ok.keys() | failed.keys()}


def fallback_usage(state: State) -> dict[str, tuple[int, int]]:
    """kind of fallback -> (answers from the fallback, answers)."""
    out: dict[str, tuple[int, int]] = {}
    tax, shipping = _by(state, Kind.TAX), _by(state, Kind.SHIPPING)
    if tax:
        out["tax"] = (tax[TAX_FALLBACK_SOURCE], sum(tax.values()))
    if shipping:
        out["shipping"] = (shipping[FLAT_RATE_CARRIER], sum(shipping.values()))
    return out


def rows(state: State) -> Rows:
    out: Rows = {}
    started = _count(state, Kind.STARTED)
    completed = _count(state, Kind.COMPLETED)
    counts = {
        "checkouts_started": started,
        "checkouts_completed": completed,
        "checkouts_failed": _count(state, Kind.FAILED),
        "checkouts_cancelled": _count(state, Kind.CANCELLED),
    }
    out.update({(name, ALL): n for name, n in counts.items()})
    if started:
        # Completions in the window over starts in it: a checkout started in the previous
        # minute counts in the numerator only; over the 15-minute windows that edge fades.
        out[("conversion_rate", ALL)] = rate(completed, started)
    for step, n in _by(state, Kind.FAILED).items():
        out[("checkouts_failed_by_step", step)] = n
    for step, n in _by(state, Kind.STEP_FAILED).items():
        out[("step_failures", step)] = n
    for step, (ok, total) in step_outcomes(state).items():
        out[("integration_success_rate", step)] = rate(ok, total)
    revenue: Counter[str] = Counter()
    for currency, total in state.get(Kind.COMPLETED.value, {}).values():
        revenue[str(currency)] += int(total)
    for currency, amount in revenue.items():
        out[("revenue", currency)] = amount
    latencies: dict[str, list[int]] = {}
    for step, ms in state.get(Kind.LATENCY.value, {}).values():
        latencies.setdefault(str(step), []).append(int(ms))
    for step, values in latencies.items():
        for p in PERCENTILES:
            out[(f"step_latency_p{p}_ms", step)] = percentile(values, p)
    approved, declined = _by(state, Kind.PAYMENT_OK), _by(state, Kind.PAYMENT_DECLINED)
    for provider in approved.keys() | declined.keys():
        answered = approved[provider] + declined[provider]
        out[("payment_success_rate", provider)] = rate(approved[provider], answered)
        if declined[provider]:
            out[("payment_failures_by_provider", provider)] = declined[provider]
    for kind, (fallback, total) in fallback_usage(state).items():
        out[(f"{kind}_fallback_rate", ALL)] = rate(fallback, total)
    return out
