"""decide's answer to inputs it cannot apply: nothing vanishes without a trace (issue 12).

Given no history, every input about a checkout is refused with `UnknownCheckout` (the
orchestrator dead-letters it with the reason); given a started checkout, a second StartCheckout
with another body is recorded as `CommandRejected`. Ticks and true duplicates stay silent."""

from __future__ import annotations

import dataclasses

import pytest
from saga_harness import (
    CID,
    T0,
    cancel,
    checkout_started,
    given,
    h_completed,
    h_started,
    refund_request,
    reserved,
    signal,
    start,
    taxed,
    tick,
)

from events import messages as m
from events.messages import PaymentSignal
from saga.checkout import UnknownCheckout, decide


def _refused(message: m.Message) -> str:
    with pytest.raises(UnknownCheckout) as refused:
        decide(None, message, T0)
    return str(refused.value)


def test_a_cancel_for_an_unknown_checkout_is_refused_naming_it() -> None:
    assert _refused(cancel()) == f"CancelCheckout for unknown checkout {CID}"


def test_a_refund_for_an_unknown_checkout_is_refused_naming_the_request() -> None:
    reason = _refused(refund_request(700, rid="rr-9"))
    assert reason == f"RequestRefund rr-9 of 700 USD for unknown checkout {CID}"


def test_a_late_reply_for_an_unknown_checkout_is_refused_naming_its_attempt() -> None:
    assert (
        _refused(reserved(attempt=2)) == f"InventoryReserved (attempt 2) for unknown checkout {CID}"
    )
    assert "TaxCalculated (attempt 1)" in _refused(taxed())


def test_a_payment_signal_for_an_unknown_checkout_is_refused_naming_the_provider_event() -> None:
    reason = _refused(signal(PaymentSignal.SUCCEEDED, event_id="evt-7"))
    assert "evt-7" in reason and CID in reason


def test_a_tick_is_about_no_checkout_and_changes_nothing() -> None:
    given().when(tick(T0)).then_nothing()


def test_a_start_for_an_unknown_checkout_starts_it() -> None:
    decision = decide(None, start(), T0)
    assert isinstance(decision.events[0], m.CheckoutStarted)


def test_the_same_start_again_is_a_duplicate_and_changes_nothing() -> None:
    given(*h_started()).when(start()).then_nothing()
    given(*h_completed()).when(start()).then_nothing()


def test_a_start_with_another_body_for_a_started_checkout_is_rejected() -> None:
    other = dataclasses.replace(start(), currency="EUR", customer_email="b@example.com")
    given(*h_started()).when(other).then(
        m.CommandRejected(
            CID,
            "StartCheckout",
            "checkout already started with another body (differs in customer_email, currency)",
        )
    )


def test_a_rejected_start_leaves_the_saga_as_it_was() -> None:
    other = dataclasses.replace(start(), items=(m.LineItem("sku-9", 1, 1),))
    outcome = given(*h_started()).when(other)
    assert outcome.decision.state is not None
    before = given(*h_started()).state
    assert outcome.decision.state == before
    assert outcome.decision.commands == () and outcome.decision.public == ()


def test_a_rejected_start_is_recognised_against_the_started_event_not_the_clock() -> None:
    # The comparison is of what the customer asked for; when it started is not part of it.
    given(checkout_started(at=T0 + 5)).when(start()).then_nothing()
