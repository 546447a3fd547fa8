"""Payment commands in, reply messages out: what the payment adapter processor calls.

Never raises for an outcome the saga must decide on: declines, provider errors, an open circuit
breaker and timeouts all become failure replies with `retryable` set; the saga owns retries across
attempts (each with a new idempotency key, reconciled by the gateway). Only programming errors
propagate, so the processor dead-letters the command instead of replying nonsense.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import TypeVar

import pybreaker

from adapters.payments.port import (
    ActionRequired,
    AttemptLogUnavailable,
    AuthorizationRequest,
    Authorized,
    CaptureRequest,
    PaymentError,
    PaymentGateway,
    PermanentPaymentError,
    RefundRequest,
    UnknownOutcomeError,
    VoidRequest,
)
from adapters.payments.registry import ProviderRouter
from adapters.resilience import make_breaker
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
    PaymentVoidFailed,
    RefundPayment,
    VoidPayment,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

PaymentCommand = AuthorizePayment | CapturePayment | VoidPayment | RefundPayment
PaymentReply = (
    PaymentAuthorized
    | PaymentActionRequired
    | PaymentDeclined
    | PaymentCaptured
    | PaymentCaptureFailed
    | PaymentVoided
    | PaymentVoidFailed
    | PaymentRefunded
    | PaymentRefundFailed
)


class _Failure(Exception):
    """Internal: a call that did not produce a result, with whether retrying can help."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class PaymentService:
    def __init__(
        self,
        gateways: Mapping[str, PaymentGateway],
        *,
        call_timeout_s: float = 20.0,
        breaker_fail_max: int = 5,
        breaker_reset_s: float = 30.0,
        max_workers: int = 128,  # as many as the adapter's lanes: no call waits for a thread
        router: ProviderRouter | None = None,
    ) -> None:
        self._gateways = dict(gateways)
        self._router = router
        self._timeout = call_timeout_s
        # One breaker per provider: a Stripe outage must not stop another provider's traffic.
        # Business outcomes (PermanentPaymentError: invalid request, over-refund...) and our own
        # attempt log being away (AttemptLogUnavailable) say nothing about the provider's
        # health and do not count.
        self._breakers = {
            name: make_breaker(
                name,
                fail_max=breaker_fail_max,
                reset_timeout_s=breaker_reset_s,
                exclude=[PermanentPaymentError, AttemptLogUnavailable],
            )
            for name in self._gateways
        }
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="payment-call")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def breaker(self, provider: str) -> pybreaker.CircuitBreaker:
        return self._breakers[provider]

    def handle(self, command: PaymentCommand) -> PaymentReply:
        if isinstance(command, AuthorizePayment):
            return self._authorize(command)
        if isinstance(command, CapturePayment):
            return self._capture(command)
        if isinstance(command, VoidPayment):
            return self._void(command)
        return self._refund(command)

    # --- per command ---------------------------------------------------------------------

    def available(self, provider: str) -> bool:
        """False while the provider's breaker is open and its reset timeout has not passed
        (after it, pybreaker still reports "open" until a trial call: let one through)."""
        breaker = self._breakers.get(provider)
        if breaker is None:
            return False
        if breaker.current_state != pybreaker.STATE_OPEN:
            return True
        opened_at = getattr(breaker._state_storage, "opened_at", None)
        if opened_at is None:
            return False
        elapsed = (datetime.now(UTC) - opened_at.replace(tzinfo=UTC)).total_seconds()
        return elapsed >= breaker.reset_timeout

    def route(self, c: AuthorizePayment) -> str:
        """Where a new authorization goes. Only authorizations route: capture, void and refund
        name the provider that holds the payment (the saga keeps it from this reply)."""
        if self._router is None:
            return c.provider
        # Fail over only when the earlier attempts are known not to have authorized at the
        # primary. Attempt 1 has no earlier attempt, and an open breaker means it never reaches
        # the primary: it may go to a fallback. A later attempt follows one that may have
        # authorized at the primary (a timeout, a 5xx after the write): only the primary's own
        # records can tell, so it goes there, reconciles first, and waits out the primary's
        # outage (retryable) instead of charging the customer a second time elsewhere.
        available = self.available if c.attempt <= 1 else _nowhere_else
        # Commands written before the routing fields existed decode with "" for both: only
        # rules of tenant "*" without a country list can match them, which is the old behaviour.
        return self._router.route(
            tenant_id=c.tenant_id,
            currency=c.currency,
            country=c.country,
            requested=c.provider,
            available=available,
        )

    def _authorize(self, c: AuthorizePayment) -> PaymentReply:
        provider = self.route(c)
        request = AuthorizationRequest(
            c.checkout_id,
            c.attempt,
            c.idempotency_key,
            c.payment_method,
            c.customer_id,
            c.amount,
            c.currency,
        )
        try:
            result = self._call(
                provider, "authorize", c.checkout_id, lambda g: g.authorize(request)
            )
        except _Failure as f:
            return PaymentDeclined(c.checkout_id, c.attempt, provider, f.reason, None, f.retryable)
        if isinstance(result, Authorized):
            return PaymentAuthorized(
                c.checkout_id, c.attempt, provider, result.payment_id, result.amount, c.currency
            )
        if isinstance(result, ActionRequired):
            return PaymentActionRequired(
                c.checkout_id,
                c.attempt,
                provider,
                result.payment_id,
                result.action_url,
                kind=result.kind,
                client_secret=result.client_secret,
            )
        return PaymentDeclined(
            c.checkout_id,
            c.attempt,
            provider,
            result.reason,
            result.decline_code,
            result.retryable,
        )

    def _capture(self, c: CapturePayment) -> PaymentReply:
        request = CaptureRequest(
            c.checkout_id, c.attempt, c.idempotency_key, c.payment_id, c.amount, c.currency
        )
        try:
            captured = self._call(
                c.provider, "capture", c.checkout_id, lambda g: g.capture(request)
            )
        except _Failure as f:
            return PaymentCaptureFailed(c.checkout_id, c.attempt, f.reason, f.retryable)
        return PaymentCaptured(
            c.checkout_id, c.attempt, c.provider, captured.payment_id, captured.amount, c.currency
        )

    def _void(self, c: VoidPayment) -> PaymentReply:
        request = VoidRequest(c.checkout_id, c.attempt, c.idempotency_key, c.payment_id)
        try:
            voided = self._call(c.provider, "void", c.checkout_id, lambda g: g.void(request))
        except _Failure as f:
            return PaymentVoidFailed(c.checkout_id, c.attempt, f.reason, f.retryable)
        return PaymentVoided(c.checkout_id, c.attempt, voided.payment_id)

    def _refund(self, c: RefundPayment) -> PaymentReply:
        request = RefundRequest(
            c.checkout_id, c.attempt, c.idempotency_key, c.payment_id, c.amount, c.currency
        )
        try:
            refunded = self._call(c.provider, "refund", c.checkout_id, lambda g: g.refund(request))
        except _Failure as f:
            return PaymentRefundFailed(c.checkout_id, c.attempt, f.reason, f.retryable)
        return PaymentRefunded(
            c.checkout_id,
            c.attempt,
            refunded.payment_id,
            refunded.refund_id,
            refunded.amount,
            c.currency,
        )

    # --- the guarded call ----------------------------------------------------------------

    def _call(
        self, provider: str, operation: str, checkout_id: str, fn: Callable[[PaymentGateway], T]
    ) -> T:
        gateway = self._gateways.get(provider)
        if gateway is None:
            raise _Failure(f"unknown payment provider {provider!r}", retryable=False)
        breaker = self._breakers[provider]
        try:
            result: T = breaker.call(self._with_timeout, fn, gateway)
            return result
        except pybreaker.CircuitBreakerError as e:
            # Never sent: the provider is known down. Retryable; the breaker lets a trial call
            # through once its reset timeout has passed (half-open) and closes on its success.
            _log_failure(provider, operation, checkout_id, e, retryable=True)
            raise _Failure(f"{provider} circuit breaker open", retryable=True) from e
        except PermanentPaymentError as e:
            _log_failure(provider, operation, checkout_id, e, retryable=False)
            raise _Failure(str(e), retryable=False) from e
        except PaymentError as e:
            # Retryable and UnknownOutcome alike: the next attempt reconciles before acting.
            _log_failure(provider, operation, checkout_id, e, retryable=True)
            raise _Failure(str(e), retryable=True) from e

    def _with_timeout(self, fn: Callable[[PaymentGateway], T], gateway: PaymentGateway) -> T:
        future = self._pool.submit(fn, gateway)
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout as e:
            # A call still queued behind hung ones (every worker busy) must not start later,
            # racing the saga's next attempt for the same checkout: cancel it. One already
            # running may still complete at the provider: an unknown outcome, reconciled by the
            # next attempt. (Its thread finishes on its own; the HTTP client has a timeout.)
            future.cancel()
            raise UnknownOutcomeError(
                f"payment call exceeded {self._timeout}s", code="timeout"
            ) from e


def _nowhere_else(_: str) -> bool:
    """`available` for the router that lets it pick no fallback: it then answers the primary."""
    return False


def _log_failure(
    provider: str, operation: str, checkout_id: str, error: BaseException, *, retryable: bool
) -> None:
    """The one line a failed payment call leaves: which provider, what we asked, what it
    answered (HTTP status, its error code) and for which checkout, in the text for people and
    as fields for log pipelines. Only these and our error's class: never the vendor's message,
    request, headers or card data (our errors' messages may quote the provider's text)."""
    status, code = _answer(error)
    fields = {
        "provider": provider,
        "operation": operation,
        "http_status": status,
        "error_code": code,
        "checkout_id": checkout_id,
        "error": type(error).__name__,
        "retryable": retryable,
    }
    log.warning(
        "payment call failed: " + " ".join(f"{k}={v}" for k, v in fields.items()),
        extra=fields,
    )


def _answer(error: BaseException) -> tuple[int | None, str | None]:
    """The provider's HTTP status and error code from `error` or what it was raised from (a
    reconciliation failure wraps the lookup's error; the call that trips the breaker raises
    CircuitBreakerError while handling the provider's answer)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, PaymentError) and (seen.http_status or seen.code):
            return seen.http_status, seen.code
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, pybreaker.CircuitBreakerError):
        return None, "circuit_open"  # never sent: the provider is known down
    return None, None
