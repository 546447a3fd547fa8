"""Authorization at a constant cost: the provider's Idempotency-Key contract plus our attempt log.

For a provider that honours idempotency keys the way Stripe documents it (same key and same
parameters give the same result for at least 24 h; other parameters give `idempotency_error`),
`authorize` never lists the provider's account. Instead (ADR 0003, decision 17):

1. Read this checkout's attempt rows from our own log (O(attempts), adapters/payments/attempt_log).
2. A row with a payment id: read that payment back (one retrieve per earlier attempt) and apply
   the shared reconciliation rules (`ReconcilingGateway._decide_from`): a live payment is
   reused, a decline recorded for this very key is replayed, another amount is refused.
3. A row without a payment id is ambiguous (sent, answer lost). Younger than
   `REPLAY_WINDOW_S` (23 h: an hour inside Stripe's 24 h key lifetime, for clock skew and the
   request that was in flight) it is re-sent with its own key and identical parameters: the
   provider replays the original answer, or executes the create once if the original never
   arrived. One call settles it. Older, or when the re-send cannot answer either (Stripe saved
   a 500 for it), the provider is listed, bounded to payments created while the key was being
   sent (`created` in [started_at - LOOKUP_BEFORE_S, last_sent_at + LOOKUP_AFTER_S]). Finding
   nothing proves "never created" only once no send can still be executing (the last one is
   older than LOOKUP_AFTER_S); before that the attempt stays in doubt (UnknownOutcomeError)
   and no new attempt is made.
4. Only when nothing is live: record the new attempt (committed) and send the create under the
   saga's key (checkout:step:attempt, saga/ids.py); the answer's payment id goes into the row.

So the normal path costs one provider request, and a retry after a lost answer costs one re-send
per unresolved attempt, whatever the account's history.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import replace

from adapters.payments.attempt_log import AttemptLog, AttemptRecord, InMemoryAttemptLog, Outcome
from adapters.payments.port import (
    ActionRequired,
    AuthorizationRequest,
    AuthorizationResult,
    Authorized,
    Declined,
    PaymentSnapshot,
    PaymentStatus,
    PermanentPaymentError,
    ReplayedFailureError,
    UnknownOutcomeError,
)
from adapters.payments.reconciling import ReconcilingGateway

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 23 * 3600.0
LOOKUP_BEFORE_S = 300  # the provider's clock may run behind ours
LOOKUP_AFTER_S = 900  # the request was in flight (timeouts, queues) and clocks may differ

IDEMPOTENCY_MISMATCH = "idempotency_error"


class KeyedReconcilingGateway(ReconcilingGateway):
    def __init__(
        self, attempts: AttemptLog | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        # Standalone (tests, tools) the log lives with the process; the composition root hands
        # in the PostgreSQL one so a restarted worker still knows what it sent.
        self._attempts: AttemptLog = attempts if attempts is not None else InMemoryAttemptLog()
        self._clock = clock

    @abstractmethod
    def _find_created_between(
        self, checkout_id: str, start: int, end: int
    ) -> list[PaymentSnapshot]:
        """The checkout's payments created in [start, end] (provider's epoch seconds)."""

    def _peek(self, payment_id: str) -> PaymentSnapshot:
        """A payment's status and amount, for deciding; providers may skip refunds etc."""
        return self.retrieve(payment_id)

    def _decline_retryable(self, decline_code: str | None) -> bool:
        return False

    # --- authorize ------------------------------------------------------------------------

    def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        rows = self._attempts.attempts(self.provider, request.checkout_id)
        own = next((r for r in rows if r.idempotency_key == request.idempotency_key), None)
        if own is not None and not own.same_request(request):
            # The provider would refuse it (idempotency_error); so do we, without asking.
            raise PermanentPaymentError(
                f"idempotency key {request.idempotency_key} was used with other parameters",
                code=IDEMPOTENCY_MISMATCH,
            )
        payments: list[PaymentSnapshot] = []
        for row in rows:
            settled, found = self._settle(row)
            payments += found
            if settled.idempotency_key == request.idempotency_key:
                own = settled
        existing = self._decide_from(request, payments)
        if existing is not None:
            return existing
        if own is not None and own.outcome == Outcome.DECLINED:
            # Declined without a payment object to read back: replay the recorded answer.
            return Declined(
                reason="declined",
                decline_code=own.decline_code,
                payment_id=own.payment_id,
                retryable=self._decline_retryable(own.decline_code),
            )
        if own is not None and own.payment_id is not None:
            # Its payment exists but is neither live nor declined (canceled): the key would
            # replay a stale answer, and a new payment needs a new attempt.
            raise PermanentPaymentError(
                f"attempt {request.idempotency_key} already made payment {own.payment_id}, "
                "which is no longer live"
            )
        stored = self._attempts.begin(AttemptRecord.of(self.provider, request, self._clock()))
        if not stored.same_request(request):  # another worker recorded this key just now
            raise PermanentPaymentError(
                f"idempotency key {request.idempotency_key} was used with other parameters",
                code=IDEMPOTENCY_MISMATCH,
            )
        try:
            result = self._send(request)
        except UnknownOutcomeError:
            # The create may have happened: the same key, re-sent at once, replays its answer.
            self._attempts.resent(self.provider, request.idempotency_key, self._clock())
            try:
                result = self._send(request)
            except UnknownOutcomeError as e:
                raise UnknownOutcomeError(
                    f"authorize for checkout {request.checkout_id}: outcome unknown twice",
                    http_status=e.http_status,
                    code=e.code,
                ) from e
            log.info(
                "authorize answer recovered by re-sending its key",
                extra={"checkout_id": request.checkout_id},
            )
        return result

    def _send(self, request: AuthorizationRequest) -> AuthorizationResult:
        """One create under the request's own key; its answer is recorded before returning."""
        try:
            result = self._create_authorization(request)
        except PermanentPaymentError as e:
            if e.code != IDEMPOTENCY_MISMATCH:  # a definite refusal: no payment was made
                self._attempts.resolve(self.provider, request.idempotency_key, Outcome.FAILED, None)
            raise
        self._record(request.idempotency_key, result)
        return result

    def _record(self, key: str, result: AuthorizationResult) -> None:
        if isinstance(result, Authorized):
            self._attempts.resolve(self.provider, key, Outcome.AUTHORIZED, result.payment_id)
        elif isinstance(result, ActionRequired):
            self._attempts.resolve(self.provider, key, Outcome.ACTION_REQUIRED, result.payment_id)
        else:
            self._attempts.resolve(
                self.provider, key, Outcome.DECLINED, result.payment_id, result.decline_code
            )

    def _settle(self, row: AttemptRecord) -> tuple[AttemptRecord, list[PaymentSnapshot]]:
        """What the provider holds for one recorded attempt, settling an ambiguous one; and the
        row as it stands afterwards."""
        if row.payment_id is not None:
            return row, [self._peek(row.payment_id)]
        if row.outcome != Outcome.PENDING:
            return row, []  # failed, or declined without a payment object
        now = self._clock()
        if now - row.started_at < REPLAY_WINDOW_S:
            self._attempts.resent(self.provider, row.idempotency_key, now)
            row = replace(row, last_sent_at=now)
            try:
                result = self._send(row.request())
            except ReplayedFailureError:
                # The provider saved a 500 for this key: whatever it did has finished, so a
                # bounded listing settles it now.
                return self._lookup(row, settled=True)
            except UnknownOutcomeError:
                pass  # no answer again: look it up, bounded, below
            else:
                settled = _settled(row, result)
                if result.payment_id is None:
                    return settled, []
                return settled, [self._peek(result.payment_id)]
        return self._lookup(row)

    def _lookup(
        self, row: AttemptRecord, *, settled: bool = False
    ) -> tuple[AttemptRecord, list[PaymentSnapshot]]:
        """`settled`: the provider said every send of this key has finished executing."""
        # Any send of this key (the first or a re-send) executes within its window, so the
        # payment, if there is one, was created between the first send and the last one.
        start = int(row.started_at) - LOOKUP_BEFORE_S
        end = int(row.sent_until) + LOOKUP_AFTER_S
        found = [
            p
            for p in self._find_created_between(row.checkout_id, start, end)
            if p.idempotency_key == row.idempotency_key
        ]
        log.info(
            "ambiguous authorize attempt looked up",
            extra={"checkout_id": row.checkout_id, "found": len(found)},
        )
        if not found:
            if not settled and self._clock() - row.sent_until <= LOOKUP_AFTER_S:
                # A send may still be executing at the provider: not finding it proves nothing
                # yet, and creating another attempt now could charge twice.
                raise UnknownOutcomeError(
                    f"authorize attempt {row.idempotency_key}: no answer and no payment yet",
                    code="attempt_in_doubt",
                )
            # The provider's list is consistent: a create that took effect would be in it.
            self._attempts.resolve(self.provider, row.idempotency_key, Outcome.FAILED, None)
            return replace(row, outcome=Outcome.FAILED), []
        payment = found[0]
        outcome = {
            PaymentStatus.REQUIRES_PAYMENT_METHOD: Outcome.DECLINED,
            PaymentStatus.REQUIRES_ACTION: Outcome.ACTION_REQUIRED,
        }.get(payment.status, Outcome.AUTHORIZED)
        self._attempts.resolve(
            self.provider, row.idempotency_key, outcome, payment.payment_id, payment.decline_code
        )
        return replace(
            row, outcome=outcome, payment_id=payment.payment_id, decline_code=payment.decline_code
        ), found


def _settled(row: AttemptRecord, result: AuthorizationResult) -> AttemptRecord:
    if isinstance(result, Authorized):
        return replace(row, outcome=Outcome.AUTHORIZED, payment_id=result.payment_id)
    if isinstance(result, ActionRequired):
        return replace(row, outcome=Outcome.ACTION_REQUIRED, payment_id=result.payment_id)
    return replace(
        row,
        outcome=Outcome.DECLINED,
        payment_id=result.payment_id,
        decline_code=result.decline_code,
    )
