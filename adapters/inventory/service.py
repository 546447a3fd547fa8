"""Inventory commands in, typed replies out: the adapter processor's only call.

`handle` never raises for a business outcome (out of stock, unknown SKU, bad quantity, unknown
reservation): those become non-retryable failure replies and the saga fails the checkout
cleanly. "Could not get an answer" (database down, timeout, open breaker) becomes a *retryable*
failure reply; the saga owns the retry policy beyond the few quick retries done here. Only a
bug (an exception we do not know) escapes, for the processor to send to the DLQ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pybreaker

from adapters.inventory.port import (
    InventoryProtocolError,
    InventoryProvider,
    InventoryRefused,
    InventoryUnavailable,
    Rejection,
    ReservationStatus,
)
from adapters.resilience import CircuitBreakerError, call_with_resilience, make_breaker
from events.messages import (
    CommitInventory,
    InventoryCommitFailed,
    InventoryCommitted,
    InventoryReleased,
    InventoryReleaseFailed,
    InventoryReservationRejected,
    InventoryReserved,
    ReleaseInventory,
    ReserveInventory,
)

T = TypeVar("T")

InventoryCommand = ReserveInventory | CommitInventory | ReleaseInventory
InventoryReply = (
    InventoryReserved
    | InventoryReservationRejected
    | InventoryCommitted
    | InventoryCommitFailed
    | InventoryReleased
    | InventoryReleaseFailed
)

# Worth retrying: no answer was obtained (InventoryUnavailable, CallTimeout). An open breaker
# is not retried here but is still reported to the saga as retryable.
_TRANSIENT: tuple[type[BaseException], ...] = (InventoryUnavailable, TimeoutError)


class _Failed(Exception):
    """Internal: the call failed; `reason` and `retryable` go into the failure reply."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class InventoryService:
    def __init__(
        self,
        provider: InventoryProvider,
        *,
        breaker: pybreaker.CircuitBreaker | None = None,
        timeout_s: float | None = 10.0,
        retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # timeout_s is a backstop over the provider's own (Postgres statement/lock timeouts,
        # httpx timeout). If it fires after the provider did reserve, no stock leaks: the
        # saga's next attempt gets the checkout's existing active reservation back.
        self._provider = provider
        # The store is our own PostgreSQL: a trial costs one connection attempt, and while the
        # breaker stays open after it is back every reservation waits. A 30 s reset kept it
        # open for over a minute after restarts of half a second (docs/chaos.md finding 9).
        self._breaker = breaker or make_breaker(
            "inventory",
            reset_timeout_s=5.0,
            exclude=[InventoryProtocolError, InventoryRefused],
        )
        self._timeout_s = timeout_s
        self._retries = retries
        self._sleep = sleep

    def handle(self, command: InventoryCommand) -> InventoryReply:
        if isinstance(command, ReserveInventory):
            return self._reserve(command)
        if isinstance(command, CommitInventory):
            return self._commit(command)
        if isinstance(command, ReleaseInventory):
            return self._release(command)
        raise TypeError(f"not an inventory command: {type(command).__name__}")

    def _reserve(self, cmd: ReserveInventory) -> InventoryReply:
        def rejected(reason: str, retryable: bool) -> InventoryReservationRejected:
            return InventoryReservationRejected(cmd.checkout_id, cmd.attempt, reason, retryable)

        try:
            result = self._call(
                lambda: self._provider.reserve(
                    cmd.checkout_id, cmd.idempotency_key, cmd.items, cmd.expires_at
                )
            )
        except _Failed as f:
            return rejected(f.reason, f.retryable)
        if isinstance(result, Rejection):
            return rejected(result.describe(), False)
        if result.status not in (ReservationStatus.RESERVED, ReservationStatus.COMMITTED):
            # A late redelivery of an attempt whose reservation has since ended.
            return rejected(f"reservation_{result.status}", False)
        return InventoryReserved(cmd.checkout_id, cmd.attempt, result.id, result.expires_at)

    def _commit(self, cmd: CommitInventory) -> InventoryReply:
        try:
            result = self._call(lambda: self._provider.commit(cmd.reservation_id))
        except _Failed as f:
            return InventoryCommitFailed(cmd.checkout_id, cmd.attempt, f.reason, f.retryable)
        if isinstance(result, Rejection):
            return InventoryCommitFailed(cmd.checkout_id, cmd.attempt, result.describe(), False)
        return InventoryCommitted(cmd.checkout_id, cmd.attempt, result.id)

    def _release(self, cmd: ReleaseInventory) -> InventoryReply:
        try:
            result = self._call(lambda: self._provider.release(cmd.reservation_id))
        except _Failed as f:
            return InventoryReleaseFailed(cmd.checkout_id, cmd.attempt, f.reason, f.retryable)
        if isinstance(result, Rejection):
            # Not found is not "nothing to do": the id came from our own reply, so an unknown
            # one is a bug or lost data. Failing (non-retryable) parks it for an operator.
            return InventoryReleaseFailed(cmd.checkout_id, cmd.attempt, result.describe(), False)
        return InventoryReleased(cmd.checkout_id, cmd.attempt, result.id)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return call_with_resilience(
                fn,
                breaker=self._breaker,
                timeout_s=self._timeout_s,
                retries=self._retries,
                retry_on=_TRANSIENT,
                sleep=self._sleep,
            )
        except CircuitBreakerError as e:
            raise _Failed(f"inventory_unavailable: circuit open ({e})", True) from e
        except _TRANSIENT as e:
            raise _Failed(f"inventory_unavailable: {e}", True) from e
        except InventoryProtocolError as e:
            raise _Failed(f"inventory_protocol_error: {e}", False) from e
        except InventoryRefused as e:
            raise _Failed(f"inventory_refused: {e}", False) from e
