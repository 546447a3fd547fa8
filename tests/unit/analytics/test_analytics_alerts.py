"""Threshold rules over a breach window's facts."""

from __future__ import annotations

from decimal import Decimal

from analytics.alerts import BREACH_WINDOW_MS, Breach, Thresholds, breach_window, breaches
from analytics.facts import Fact, Kind, State, add

T0 = 1_796_292_000_000
PAY, TAX = "authorize_payment", "calculate_tax"


def outcomes(step: str, ok: int, failed: int) -> tuple[Fact, ...]:
    return tuple(Fact(Kind.STEP_OK, f"ok{i}/{step}/1", (step,)) for i in range(ok)) + tuple(
        Fact(Kind.STEP_FAILED, f"bad{i}/{step}/1", (step,)) for i in range(failed)
    )


DEFAULTS = Thresholds()


def names(state: State, limits: Thresholds = DEFAULTS) -> list[tuple[str, str]]:
    return [(b.name, b.dimension) for b in breaches(state, T0, limits)]


def test_payment_failure_rate_above_five_percent_is_one_alert() -> None:
    state = add(None, outcomes(PAY, 18, 2))  # 10 % failed, 90 % succeeded
    # Not also integration_success_low for the payment step: one burst, one page.
    assert names(state) == [("payment_failure_rate_high", "all")]
    found = breaches(state, T0, Thresholds())[0]
    assert (found.value, found.threshold, found.samples) == (Decimal("0.1000"), Decimal("0.05"), 20)
    assert (found.window_start, found.window_end) == (T0, T0 + BREACH_WINDOW_MS)


def test_exactly_at_the_threshold_is_not_a_breach() -> None:
    # 1 in 20 failed = 5 %: "> 5 %" does not hold; 95 % success: "< 95 %" does not hold.
    assert names(add(None, outcomes(PAY, 19, 1))) == []


def test_too_few_samples_are_not_judged() -> None:
    assert names(add(None, outcomes(PAY, 0, 19))) == []
    assert names(add(None, outcomes(PAY, 0, 3)), Thresholds(min_samples=3)) != []


def test_fallback_usage_above_ten_percent() -> None:
    quotes = tuple(
        Fact(Kind.TAX, f"c{i}/1", ("rate_table_fallback" if i < 3 else "taxjar",))
        for i in range(20)
    )
    assert names(add(None, quotes)) == [("fallback_usage_high", "tax")]
    flat = tuple(
        Fact(Kind.SHIPPING, f"c{i}/1", ("flat_rate" if i < 2 else "ups",)) for i in range(20)
    )
    assert names(add(None, flat)) == []  # exactly 10 %


def test_integration_success_is_judged_per_step() -> None:
    state = add(None, outcomes(TAX, 20, 0) + outcomes("quote_shipping", 17, 3))
    assert names(state) == [("integration_success_low", "quote_shipping")]


def test_the_alert_id_is_the_same_for_the_same_breach_window() -> None:
    one = Breach("r", "all", T0, T0 + 1, Decimal("0.5"), Decimal("0.05"), 20)
    again = Breach("r", "all", T0, T0 + 1, Decimal("0.7"), Decimal("0.05"), 40)
    later = Breach("r", "all", T0 + BREACH_WINDOW_MS, T0 + 1, Decimal("0.5"), Decimal("0.05"), 20)
    assert one.alert_id == again.alert_id != later.alert_id


def test_minutes_belong_to_their_five_minute_breach_window() -> None:
    assert [breach_window(T0 + i * 60_000) for i in range(6)] == [T0] * 5 + [T0 + BREACH_WINDOW_MS]
