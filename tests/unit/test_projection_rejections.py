"""The read model takes a recorded refusal as the last event of the checkout, nothing more."""

from __future__ import annotations

from saga_harness import CID, T0, checkout_started

from events import messages as m
from events.envelope import Envelope
from projections.model import advance


def test_a_command_rejection_changes_no_status_and_no_step() -> None:
    first = advance(None, Envelope.new(checkout_started(), occurred_at=T0, producer="test"))
    rejected = m.CommandRejected(CID, "StartCheckout", "checkout already started with another body")
    after = advance(first, Envelope.new(rejected, occurred_at=T0 + 10, producer="test"))
    assert after.state == first.state
    assert after.steps == first.steps
    assert (after.last_event_type, after.last_event_at, after.events_applied) == (
        "CommandRejected",
        T0 + 10,
        2,
    )
