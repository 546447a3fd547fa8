"""NotifierHandler: which event sends which email, to whom, at most once; failure typing."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.notifications.port import OutgoingEmail, PermanentSendError, TransientSendError
from adapters.notifications.sent_log import InMemorySentLog
from adapters.notifications.service import (
    InMemorySummaries,
    NotificationFailed,
    NotificationService,
)
from events import messages as m
from events.envelope import Envelope
from infra.processor import Incoming, PermanentFailure
from infra.workers.notifier import InMemoryRecipients, NotifierHandler
from tests.unit.notifications import notifier_events as ev


class Outbox:
    name = "outbox"

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.sent: list[OutgoingEmail] = []

    def send(self, email: OutgoingEmail) -> str | None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(email)
        return None


def handler(outbox: Outbox) -> NotifierHandler:
    service = NotificationService(
        outbox, InMemorySentLog(), InMemorySummaries(), retries=1, sleep=lambda _: None
    )
    return NotifierHandler(service, InMemoryRecipients())


def feed(h: NotifierHandler, *envelopes: Envelope[Any]) -> None:
    for i, env in enumerate(envelopes):
        assert h.handle(Incoming("t", 0, i, 0, env)) == []  # nothing produced, ever


def test_order_placed_sends_one_confirmation_with_lines_and_total() -> None:
    outbox = Outbox()
    co, order = ev.new_ids()
    placed = ev.order_placed(co, order, "a@example.com")
    feed(handler(outbox), placed, placed)  # a duplicate record
    (email,) = outbox.sent
    assert email.to == "a@example.com" and email.kind == "order_confirmation"
    assert order in email.subject
    assert "SKU-MUG-LOGO" in email.body and "66.93 USD" in email.body


def test_failure_and_cancel_go_to_the_address_from_checkout_started() -> None:
    outbox = Outbox()
    failed_co, _ = ev.new_ids()
    cancelled_co, _ = ev.new_ids()
    feed(
        handler(outbox),
        ev.checkout_started(failed_co, "f@example.com"),
        ev.checkout_started(cancelled_co, "c@example.com"),
        ev.checkout_failed(failed_co, "out_of_stock:SKU-MUG-LOGO"),
        ev.checkout_cancelled(cancelled_co),
        ev.checkout_failed(failed_co, "out_of_stock:SKU-MUG-LOGO"),  # redelivered
    )
    assert [(e.to, e.kind) for e in outbox.sent] == [
        ("f@example.com", "checkout_failed"),
        ("c@example.com", "checkout_cancelled"),
    ]
    assert "out of stock (SKU-MUG-LOGO)" in outbox.sent[0].body


def test_each_refund_of_an_order_is_its_own_email() -> None:
    outbox = Outbox()
    co, order = ev.new_ids()
    first, second = ev.order_refunded(co, order, 1000), ev.order_refunded(co, order, 250)
    feed(handler(outbox), ev.order_placed(co, order, "r@example.com"), first, second, first)
    refunds = [e for e in outbox.sent if e.kind == "order_refunded"]
    assert [e.to for e in refunds] == ["r@example.com"] * 2
    assert "10.00 USD" in refunds[0].body and "2.50 USD" in refunds[1].body


def test_other_events_are_ignored() -> None:
    outbox = Outbox()
    co, _ = ev.new_ids()
    timed_out = m.StepTimedOut(co, m.Step.CALCULATE_TAX, 1)
    feed(handler(outbox), Envelope.new(timed_out, occurred_at=0, producer="t"))
    assert outbox.sent == []


def test_unknown_recipient_is_a_permanent_failure() -> None:
    co, _ = ev.new_ids()
    with pytest.raises(PermanentFailure, match=f"no customer email known for checkout {co}"):
        feed(handler(Outbox()), ev.checkout_failed(co, "card_declined"))


def test_a_refused_address_is_permanent_and_a_down_server_transient() -> None:
    co, order = ev.new_ids()
    refused = handler(Outbox(PermanentSendError("smtp: 550 no such user")))
    with pytest.raises(PermanentFailure, match="550 no such user"):
        feed(refused, ev.order_placed(co, order, "x@example.com"))

    down = Outbox(*[TransientSendError("smtp: 451 later")] * 2)
    h = handler(down)
    with pytest.raises(NotificationFailed) as raised:
        feed(h, ev.order_placed(co, order, "x@example.com"))
    assert not raised.value.permanent
    feed(h, ev.order_placed(co, order, "x@example.com"))  # the runtime's retry: now it goes out
    assert len(down.sent) == 1
