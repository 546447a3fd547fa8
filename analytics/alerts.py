"""Threshold alerts of the integration plans, judged per breach window.

A breach window is a tumbling 5-minute window of event time; its facts are the union of its
five minutely windows. An alert is identified by (rule, dimension, window start): the runtime
sends each identity to ops.alerts once (it records what it sent), with a message id derived
from that identity, so even a resend after a crash is recognisable as the same alert.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from analytics.facts import State
from analytics.metrics import ALL, fallback_usage, rate, step_outcomes
from events.messages import Step

BREACH_WINDOW_MS = 5 * 60_000
_ALERT_NAMESPACE = uuid.UUID("6f1f8f52-6a8e-4d4b-9a37-0d1c7a3e5a17")


@dataclass(frozen=True, slots=True)
class Thresholds:
    payment_failure_rate: Decimal = Decimal("0.05")  # alert above
    integration_success_rate: Decimal = Decimal("0.95")  # alert below
    fallback_rate: Decimal = Decimal("0.10")  # alert above
    # A rate over fewer answers than this is noise (one decline of one checkout is 100 %).
    min_samples: int = 20


@dataclass(frozen=True, slots=True)
class Breach:
    name: str
    dimension: str
    window_start: int  # epoch ms
    window_end: int
    value: Decimal
    threshold: Decimal
    samples: int

    @property
    def alert_id(self) -> str:
        return str(
            uuid.uuid5(_ALERT_NAMESPACE, f"{self.name}/{self.dimension}/{self.window_start}")
        )


def breach_window(start_ms: int) -> int:
    """The start of the breach window a minutely window starting at `start_ms` belongs to."""
    return start_ms - start_ms % BREACH_WINDOW_MS


def breaches(state: State, window_start: int, limits: Thresholds) -> list[Breach]:
    """Every rule `state` (one breach window's facts) breaks."""
    end = window_start + BREACH_WINDOW_MS
    found: list[Breach] = []

    def check(name: str, dim: str, hits: int, total: int, limit: Decimal, above: bool) -> None:
        if total < limits.min_samples:
            return
        value = rate(hits, total)
        if (value > limit) if above else (value < limit):
            found.append(Breach(name, dim, window_start, end, value, limit, total))

    outcomes = step_outcomes(state)
    if Step.AUTHORIZE_PAYMENT.value in outcomes:
        ok, total = outcomes[Step.AUTHORIZE_PAYMENT.value]
        check(
            "payment_failure_rate_high", ALL, total - ok, total, limits.payment_failure_rate, True
        )
    for step, (ok, total) in sorted(outcomes.items()):
        # Payment has its own, stricter rule above: one decline burst is one alert, not two.
        if step != Step.AUTHORIZE_PAYMENT.value:
            check(
                "integration_success_low", step, ok, total, limits.integration_success_rate, False
            )
    for kind, (fallback, total) in sorted(fallback_usage(state).items()):
        check("fallback_usage_high", kind, fallback, total, limits.fallback_rate, True)
    return found
