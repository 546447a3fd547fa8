"""An adapter reply's id: the same answer to the same request gets the same id (a redelivery is
a duplicate readers drop), a different answer gets another (a fact of its own)."""

from __future__ import annotations

from events import messages as m
from events.envelope import Envelope
from infra.processor import Incoming
from infra.workers.adapter import AdapterHandler

REFUND = m.RefundPayment("co-1", 3, "co-1:refund_payment:rr-1:3", "stripe", "pi_1", 915, "USD")
REQUEST = Incoming(
    "adapter.payment.requests", 0, 7, 1, Envelope.new(REFUND, occurred_at=1, producer="test"), 10
)


def reply_id(answer: object) -> str:
    (output,) = AdapterHandler("payment", lambda _cmd: answer).handle(REQUEST)
    return output.envelope.message_id


def test_the_same_answer_asked_again_gets_the_same_id() -> None:
    failed = m.PaymentRefundFailed("co-1", 3, "stripe retrieve: APIError (500)", True)
    again = m.PaymentRefundFailed("co-1", 3, "stripe retrieve: APIError (500)", True)
    assert reply_id(failed) == reply_id(again)


def test_a_different_answer_to_the_same_request_gets_another_id() -> None:
    """docs/chaos.md finding 9: a refund that failed and then, asked again after a worker died,
    went through. Under one id the event tail and the orchestrator's own rebuild dropped the
    refund as a copy of the failure."""
    failed = m.PaymentRefundFailed("co-1", 3, "stripe retrieve: APIError (500)", True)
    refunded = m.PaymentRefunded("co-1", 3, "pi_1", "re_1", 915, "USD")
    assert reply_id(failed) != reply_id(refunded)
