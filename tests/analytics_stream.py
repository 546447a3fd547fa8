"""A recorded checkout.events stream with known timestamps, and the window rows it must yield.

The expected rows are worked out by hand from the events (see the comments), not computed by
the code under test. Four checkouts over three minutes from T0 (a 15-minute boundary):
c1 completes (USD 12.00, tax 1.5 s), c2 fails at payment (stripe declines), c3 is cancelled
after a flat-rate shipping quote (2 s), c4 starts in minute 1 and completes in minute 2 (EUR
9.00, tax from the fallback rate table after 30 s).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from events import messages as m
from events.envelope import Envelope

T0 = 1_796_292_000_000  # 2026-12-03T10:00:00Z, a multiple of 15 minutes
MIN = 60_000
Q = 300_000  # the hopping windows' step

ADDRESS = m.Address("1 Main St", "Springfield", "IL", "62701", "US")
ITEMS = (m.LineItem("SKU-1", 1, 1000),)


def _started(cid: str) -> m.CheckoutStarted:
    return m.CheckoutStarted(
        cid, "t1", "cust", "a@example.com", "USD", ITEMS, ADDRESS, "stripe", "pm_card_visa", 1000, 0
    )


def recorded_stream(run: str) -> list[Envelope[Any]]:
    """The stream, with checkout ids unique to `run` and message ids derived from them (so a
    replay of the same run is the same records)."""
    c1, c2, c3, c4 = (f"{run}-c{i}" for i in range(1, 5))
    tax, pay, ship = m.Step.CALCULATE_TAX, m.Step.AUTHORIZE_PAYMENT, m.Step.QUOTE_SHIPPING
    timeline: list[tuple[int, Any]] = [
        (1_000, _started(c1)),
        (2_000, m.StepStarted(c1, tax, 1, T0 + 60_000)),
        (3_000, m.TaxCalculated(c1, 1, 80, "USD", "taxjar")),
        (3_500, m.StepSucceeded(c1, tax, 1, amount=80)),
        (5_000, _started(c2)),
        (6_000, m.StepStarted(c2, pay, 1, T0 + 60_000)),
        (8_000, m.PaymentDeclined(c2, 1, "stripe", "card_declined", "generic_decline", False)),
        (8_000, m.StepAttemptFailed(c2, pay, 1, "card_declined", False)),
        (9_000, m.CheckoutFailed(c2, pay, "card_declined")),
        (50_000, m.CheckoutCompleted(c1, f"o-{c1}", 1000, 80, 120, 1200, "USD", T0 + 50_000)),
        (61_000, _started(c3)),
        (62_000, m.StepStarted(c3, ship, 1, T0 + 120_000)),
        (64_000, m.ShippingQuoted(c3, 1, 500, "USD", "flat_rate", "standard")),
        (64_000, m.StepSucceeded(c3, ship, 1, amount=500)),
        (70_000, m.CheckoutCancelled(c3, "customer")),
        (100_000, _started(c4)),
        (100_000, m.StepStarted(c4, tax, 1, T0 + 200_000)),
        (130_000, m.TaxCalculated(c4, 1, 70, "EUR", "rate_table_fallback")),
        (130_000, m.StepSucceeded(c4, tax, 1, amount=70)),
        (170_000, m.CheckoutCompleted(c4, f"o-{c4}", 700, 70, 130, 900, "EUR", T0 + 170_000)),
    ]
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"analytics-test/{run}")
    return [
        Envelope.new(
            msg,
            occurred_at=T0 + offset,
            producer="recorded",
            message_id=str(uuid.uuid5(namespace, str(i))),
        )
        for i, (offset, msg) in enumerate(timeline)
    ]


D = Decimal
ONE, ZERO = D("1.0000"), D("0.0000")

MINUTE_0 = {
    ("checkouts_started", "all"): 2,  # c1, c2
    ("checkouts_completed", "all"): 1,  # c1
    ("checkouts_failed", "all"): 1,  # c2
    ("checkouts_cancelled", "all"): 0,
    ("conversion_rate", "all"): D("0.5000"),
    ("checkouts_failed_by_step", "authorize_payment"): 1,
    ("step_failures", "authorize_payment"): 1,
    ("integration_success_rate", "calculate_tax"): ONE,
    ("integration_success_rate", "authorize_payment"): ZERO,
    ("revenue", "USD"): 1200,
    ("step_latency_p50_ms", "calculate_tax"): 1500,
    ("step_latency_p95_ms", "calculate_tax"): 1500,
    ("step_latency_p99_ms", "calculate_tax"): 1500,
    ("payment_success_rate", "stripe"): ZERO,
    ("payment_failures_by_provider", "stripe"): 1,
    ("tax_fallback_rate", "all"): ZERO,
}
MINUTE_1 = {
    ("checkouts_started", "all"): 2,  # c3, c4
    ("checkouts_completed", "all"): 0,
    ("checkouts_failed", "all"): 0,
    ("checkouts_cancelled", "all"): 1,  # c3
    ("conversion_rate", "all"): ZERO,
    ("integration_success_rate", "quote_shipping"): ONE,
    ("step_latency_p50_ms", "quote_shipping"): 2000,
    ("step_latency_p95_ms", "quote_shipping"): 2000,
    ("step_latency_p99_ms", "quote_shipping"): 2000,
    ("shipping_fallback_rate", "all"): ONE,  # the only quote was the flat rate
}
MINUTE_2 = {
    ("checkouts_started", "all"): 0,
    ("checkouts_completed", "all"): 1,  # c4 (started in minute 1: no conversion rate here)
    ("checkouts_failed", "all"): 0,
    ("checkouts_cancelled", "all"): 0,
    ("integration_success_rate", "calculate_tax"): ONE,
    ("revenue", "EUR"): 900,
    ("step_latency_p50_ms", "calculate_tax"): 30_000,
    ("step_latency_p95_ms", "calculate_tax"): 30_000,
    ("step_latency_p99_ms", "calculate_tax"): 30_000,
    ("tax_fallback_rate", "all"): ONE,
}
# Every event falls in the three 15-minute windows starting at T0-10min, T0-5min and T0.
QUARTER = {
    ("checkouts_started", "all"): 4,
    ("checkouts_completed", "all"): 2,
    ("checkouts_failed", "all"): 1,
    ("checkouts_cancelled", "all"): 1,
    ("conversion_rate", "all"): D("0.5000"),
    ("checkouts_failed_by_step", "authorize_payment"): 1,
    ("step_failures", "authorize_payment"): 1,
    ("integration_success_rate", "calculate_tax"): ONE,
    ("integration_success_rate", "authorize_payment"): ZERO,
    ("integration_success_rate", "quote_shipping"): ONE,
    ("revenue", "USD"): 1200,
    ("revenue", "EUR"): 900,
    # nearest rank of [1500, 30000]: p50 -> 1st, p95 and p99 -> 2nd
    ("step_latency_p50_ms", "calculate_tax"): 1500,
    ("step_latency_p95_ms", "calculate_tax"): 30_000,
    ("step_latency_p99_ms", "calculate_tax"): 30_000,
    ("step_latency_p50_ms", "quote_shipping"): 2000,
    ("step_latency_p95_ms", "quote_shipping"): 2000,
    ("step_latency_p99_ms", "quote_shipping"): 2000,
    ("payment_success_rate", "stripe"): ZERO,
    ("payment_failures_by_provider", "stripe"): 1,
    ("tax_fallback_rate", "all"): D("0.5000"),
    ("shipping_fallback_rate", "all"): ONE,
}

EXPECTED: dict[tuple[str, int], dict[tuple[str, str], int | Decimal]] = {
    ("checkout_metrics_minutely", T0): MINUTE_0,
    ("checkout_metrics_minutely", T0 + MIN): MINUTE_1,
    ("checkout_metrics_minutely", T0 + 2 * MIN): MINUTE_2,
    ("checkout_metrics_quarter_hourly", T0 - 2 * Q): QUARTER,
    ("checkout_metrics_quarter_hourly", T0 - Q): QUARTER,
    ("checkout_metrics_quarter_hourly", T0): QUARTER,
}
