"""The inspect timeline and step summary, from a recorded history (pure)."""

from __future__ import annotations

from events import messages as m
from events.envelope import Envelope
from infra.inspect import status_of, step_summaries, timeline


def env(msg: object, at: int) -> Envelope[object]:
    return Envelope.new(msg, occurred_at=at, producer="test")  # type: ignore[type-var]


def test_timeline_and_steps_show_attempts_outcomes_and_durations() -> None:
    c = "co-1"
    history = [
        env(m.StepStarted(c, m.Step.CALCULATE_TAX, 1, 5_000), 1_000),
        env(m.TaxCalculationFailed(c, 1, "taxjar 503", retryable=True), 1_200),
        env(m.StepRetryScheduled(c, m.Step.CALCULATE_TAX, 2, 1_700, "taxjar 503"), 1_200),
        env(m.StepStarted(c, m.Step.CALCULATE_TAX, 2, 6_000), 1_700),
        env(m.TaxCalculated(c, 2, 840, "USD", "rate_table_fallback"), 1_950),
        env(m.StepStarted(c, m.Step.QUOTE_SHIPPING, 1, 5_000), 1_000),
    ]
    rows = timeline(history)
    assert [r.at_ms for r in rows] == [0, 200, 200, 700, 950, 0]
    assert rows[1].step == "calculate_tax" and rows[1].attempt == 1
    assert "reason=taxjar 503" in rows[1].detail
    summary = {s.step: s for s in step_summaries(history)}
    tax = summary["calculate_tax"]
    assert (tax.outcome, tax.attempts, tax.duration_ms) == ("succeeded", 2, 950)
    assert summary["quote_shipping"].outcome == "in flight"
    assert summary["quote_shipping"].duration_ms is None


def test_status_comes_from_folding_the_history() -> None:
    assert status_of([]) == "UNKNOWN"


def test_a_rejected_command_shows_what_was_refused_and_why() -> None:
    c = "co-1"
    started = m.CheckoutStarted(
        c, "t", "cu", "a@b.co", "EUR", (), m.Address("l", "c", "", "", "DE"), "stripe", "pm", 0, 0
    )
    reason = "checkout already started with another body (differs in items)"
    history = [env(started, 0), env(m.CommandRejected(c, "StartCheckout", reason), 50)]
    row = timeline(history)[1]
    assert (row.event, row.at_ms) == ("CommandRejected", 50)
    assert row.detail == f"command=StartCheckout, reason={reason}"
    assert status_of(history) == "PENDING"  # a refusal changes nothing


def test_the_timeline_never_shows_a_client_secret() -> None:
    reply = m.PaymentActionRequired(
        "co-1", 1, "stripe", "pi_1", None, kind="use_stripe_sdk", client_secret="pi_1_secret_zz"
    )
    [row] = timeline([env(reply, 1_000)])
    assert "kind=use_stripe_sdk" in row.detail
    assert "secret" not in row.detail
