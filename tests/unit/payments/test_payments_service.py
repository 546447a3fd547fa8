"""PaymentService over the fake gateway: replies, retryability, breaker, timeout."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pybreaker
import pytest

from adapters.payments.attempt_log import PostgresAttemptLog
from adapters.payments.fake import FakeGateway, Fault, Op
from adapters.payments.port import AttemptLogUnavailable, AuthorizationRequest, AuthorizationResult
from adapters.payments.service import PaymentService
from events.messages import (
    AuthorizePayment,
    CapturePayment,
    PaymentActionRequired,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentCaptureFailed,
    PaymentDeclined,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentVoided,
    RefundPayment,
    VoidPayment,
)


@pytest.fixture
def fake() -> FakeGateway:
    return FakeGateway("fake")


@pytest.fixture
def service(fake: FakeGateway) -> Iterator[PaymentService]:
    svc = PaymentService({"fake": fake}, call_timeout_s=5, breaker_fail_max=3)
    yield svc
    svc.close()


@pytest.fixture
def checkout_id() -> str:
    return f"co_{uuid.uuid4().hex[:12]}"


def authorize(
    checkout_id: str, pm: str = "pm_card_visa", attempt: int = 1, provider: str = "fake"
) -> AuthorizePayment:
    return AuthorizePayment(
        checkout_id,
        attempt,
        f"{checkout_id}:authorize_payment:{attempt}",
        provider,
        pm,
        "cust",
        1000,
        "EUR",
    )


def test_authorize_capture_refund_void_replies(service: PaymentService, checkout_id: str) -> None:
    reply = service.handle(authorize(checkout_id))
    assert isinstance(reply, PaymentAuthorized)
    assert (reply.amount, reply.currency, reply.attempt) == (1000, "EUR", 1)
    pid = reply.payment_id
    captured = service.handle(CapturePayment(checkout_id, 1, "k-cap", "fake", pid, 1000, "EUR"))
    assert captured == PaymentCaptured(checkout_id, 1, "fake", pid, 1000, "EUR")
    refunded = service.handle(RefundPayment(checkout_id, 1, "k-ref", "fake", pid, 400, "EUR"))
    assert isinstance(refunded, PaymentRefunded) and refunded.amount == 400
    over = service.handle(RefundPayment(checkout_id, 1, "k-ref2", "fake", pid, 601, "EUR"))
    assert isinstance(over, PaymentRefundFailed) and over.retryable is False

    other = f"{checkout_id}b"
    second = service.handle(authorize(other))
    assert isinstance(second, PaymentAuthorized)
    voided = service.handle(VoidPayment(other, 1, "k-void", "fake", second.payment_id))
    assert voided == PaymentVoided(other, 1, second.payment_id)


def test_decline_and_action_required(service: PaymentService, checkout_id: str) -> None:
    declined = service.handle(authorize(checkout_id, "4000000000000341"))
    assert declined == PaymentDeclined(
        checkout_id, 1, "fake", "Your card was declined.", "card_declined", False
    )
    action = service.handle(authorize(f"{checkout_id}x", "4000002500003155"))
    assert isinstance(action, PaymentActionRequired) and action.action_url is None
    # What the storefront's Stripe.js needs travels in the reply, and never in its repr (logs).
    assert action.kind == "use_stripe_sdk"
    assert action.client_secret == f"{action.payment_id}_secret_fake"
    assert "secret" not in repr(action)


def test_provider_errors_become_retryable_replies(
    service: PaymentService, fake: FakeGateway, checkout_id: str
) -> None:
    fake.inject(Op.FIND, 1, Fault.RETRYABLE_BEFORE)
    reply = service.handle(authorize(checkout_id))
    assert isinstance(reply, PaymentDeclined) and reply.retryable is True
    assert reply.decline_code is None
    # Unknown outcome, and the reconciliation read fails too: still a reply, retryable.
    fake.inject(Op.AUTHORIZE, 1, Fault.UNKNOWN_AFTER)
    fake.inject(Op.FIND, 2, Fault.RETRYABLE_BEFORE)
    reply = service.handle(authorize(checkout_id, attempt=2))
    assert isinstance(reply, PaymentDeclined) and reply.retryable is True
    # The saga's next attempt finds the payment the lost call made: no second one.
    reply = service.handle(authorize(checkout_id, attempt=3))
    assert isinstance(reply, PaymentAuthorized)
    assert fake.payment_count(checkout_id) == 1


def test_open_breaker_is_retryable_and_spares_the_provider(
    service: PaymentService, fake: FakeGateway, checkout_id: str
) -> None:
    for n in range(1, 4):
        fake.inject(Op.FIND, 1, Fault.RETRYABLE_BEFORE)
        reply = service.handle(authorize(checkout_id, attempt=n))
        assert isinstance(reply, PaymentDeclined) and reply.retryable
    assert service.breaker("fake").current_state == pybreaker.STATE_OPEN
    calls = fake.calls(Op.FIND)
    reply = service.handle(authorize(checkout_id, attempt=4))
    assert isinstance(reply, PaymentDeclined) and reply.retryable
    assert "circuit breaker open" in reply.reason
    assert fake.calls(Op.FIND) == calls


def test_business_failures_do_not_trip_the_breaker(
    service: PaymentService, checkout_id: str
) -> None:
    for n in range(5):
        reply = service.handle(
            CapturePayment(checkout_id, n + 1, f"k{n}", "fake", "fakepi_missing", 100, "EUR")
        )
        assert isinstance(reply, PaymentCaptureFailed) and reply.retryable is False
    assert service.breaker("fake").current_state == pybreaker.STATE_CLOSED


def test_unknown_provider_is_a_permanent_failure(service: PaymentService, checkout_id: str) -> None:
    reply = service.handle(authorize(checkout_id, provider="nope"))
    assert isinstance(reply, PaymentDeclined) and reply.retryable is False


class BlockingGateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__("slow")
        self.release = threading.Event()

    def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        self.release.wait(timeout=30)
        return super().authorize(request)


def test_call_timeout_becomes_retryable(checkout_id: str) -> None:
    slow = BlockingGateway()
    service = PaymentService({"slow": slow}, call_timeout_s=0.2)
    try:
        reply = service.handle(authorize(checkout_id, provider="slow"))
        assert isinstance(reply, PaymentDeclined) and reply.retryable
        assert "exceeded" in reply.reason
    finally:
        slow.release.set()
        service.close()


def test_a_call_that_timed_out_in_the_queue_never_starts(checkout_id: str) -> None:
    """Every worker busy with a hung call: a later call times out waiting and must not run
    afterwards, racing the saga's next attempt (a new key) into a second authorization."""
    slow = BlockingGateway()
    entered: list[str] = []
    original = slow.authorize

    def counting(request: AuthorizationRequest) -> AuthorizationResult:
        entered.append(request.checkout_id)
        return original(request)

    slow.authorize = counting  # type: ignore[method-assign]
    service = PaymentService({"slow": slow}, call_timeout_s=0.2, max_workers=1)
    try:
        first = service.handle(authorize(checkout_id, provider="slow"))
        queued = service.handle(authorize(f"{checkout_id}q", provider="slow"))
        assert isinstance(first, PaymentDeclined) and first.retryable
        assert isinstance(queued, PaymentDeclined) and queued.retryable
        slow.release.set()
        service._pool.submit(lambda: None).result(timeout=5)  # the hung call has finished
        assert entered == [checkout_id]
        assert slow.find_by_checkout(f"{checkout_id}q") == []
    finally:
        slow.release.set()
        service.close()


class _LogAway:
    """A gateway whose own attempt log (PostgreSQL) is restarting."""

    def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        raise AttemptLogUnavailable("payment attempt log: OperationalError: server closed")


def test_our_attempt_log_being_away_is_retryable_and_never_trips_the_providers_breaker(
    checkout_id: str,
) -> None:
    """docs/chaos.md finding 8: a PostgreSQL restart opened the Stripe breaker, and every
    authorization in flight met "stripe circuit breaker open" for as long as it lasted."""
    svc = PaymentService({"fake": _LogAway()}, call_timeout_s=5, breaker_fail_max=3)  # type: ignore[dict-item]
    try:
        for n in range(1, 7):
            reply = svc.handle(authorize(checkout_id, attempt=n))
            assert isinstance(reply, PaymentDeclined) and reply.retryable is True
            assert "attempt log" in reply.reason
        assert svc.breaker("fake").current_state == pybreaker.STATE_CLOSED
    finally:
        svc.close()


def test_the_postgres_attempt_log_translates_its_store_being_away() -> None:
    def refused() -> Any:
        raise psycopg.OperationalError("connection refused")

    log = PostgresAttemptLog(refused)
    with pytest.raises(AttemptLogUnavailable, match="connection refused"):
        log.attempts("stripe", "co_1")
