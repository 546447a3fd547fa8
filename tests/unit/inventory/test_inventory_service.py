"""InventoryService: commands to typed replies, over the fake and over failing providers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence

import pytest

from adapters.inventory.fake import FakeInventory
from adapters.inventory.port import (
    InventoryProtocolError,
    InventoryUnavailable,
    Rejection,
    Reservation,
    StockLine,
)
from adapters.inventory.service import InventoryService
from adapters.resilience import make_breaker
from events.messages import (
    CommitInventory,
    InventoryCommitFailed,
    InventoryCommitted,
    InventoryReleased,
    InventoryReleaseFailed,
    InventoryReservationRejected,
    InventoryReserved,
    LineItem,
    ReleaseInventory,
    ReserveInventory,
)

T0 = 1_700_000_000_000


def reserve_cmd(checkout_id: str, *items: tuple[str, int], attempt: int = 1) -> ReserveInventory:
    return ReserveInventory(
        checkout_id=checkout_id,
        attempt=attempt,
        idempotency_key=f"{checkout_id}:reserve_inventory:{attempt}",
        items=tuple(LineItem(sku, qty, 1999) for sku, qty in items),
        expires_at=T0 + 900_000,
    )


@pytest.fixture
def co() -> str:
    return f"co-{uuid.uuid4().hex[:10]}"


def service(provider: object, **kw: object) -> InventoryService:
    return InventoryService(provider, sleep=lambda _: None, **kw)  # type: ignore[arg-type]


def test_reserve_commit_release_happy_path(co: str) -> None:
    fake = FakeInventory({"A": 3})
    svc = service(fake)
    reply = svc.handle(reserve_cmd(co, ("A", 2)))
    assert isinstance(reply, InventoryReserved)
    assert (reply.checkout_id, reply.attempt, reply.expires_at) == (co, 1, T0 + 900_000)
    committed = svc.handle(CommitInventory(co, 1, "k", reply.reservation_id))
    assert committed == InventoryCommitted(co, 1, reply.reservation_id)
    assert fake.stock_level("A") == (1, 0)
    released = svc.handle(ReleaseInventory(co, 1, "k", reply.reservation_id))
    assert released == InventoryReleased(co, 1, reply.reservation_id)
    assert fake.stock_level("A") == (3, 0)


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ((("A", 4),), "out_of_stock:A"),
        ((("A", 1), ("ZZZ", 1)), "unknown_sku:ZZZ"),
        ((("A", 0),), "invalid_quantity:A"),
        ((("A", -1),), "invalid_quantity:A"),
        ((), "no_lines"),
    ],
)
def test_bad_input_and_out_of_stock_are_non_retryable_rejections(
    co: str, items: tuple[tuple[str, int], ...], reason: str
) -> None:
    fake = FakeInventory({"A": 3})
    reply = service(fake).handle(reserve_cmd(co, *items, attempt=2))
    assert reply == InventoryReservationRejected(co, 2, reason, retryable=False)
    assert fake.stock_level("A") == (3, 0)


def test_late_redelivery_of_a_released_attempt_is_rejected_not_reserved(co: str) -> None:
    fake = FakeInventory({"A": 3})
    svc = service(fake)
    first = svc.handle(reserve_cmd(co, ("A", 1)))
    assert isinstance(first, InventoryReserved)
    svc.handle(ReleaseInventory(co, 1, "k", first.reservation_id))
    again = svc.handle(reserve_cmd(co, ("A", 1)))
    assert again == InventoryReservationRejected(co, 1, "reservation_released", False)
    assert fake.stock_level("A") == (3, 0)


def test_commit_and_release_of_unknown_reservation_fail_non_retryable(co: str) -> None:
    svc = service(FakeInventory({"A": 1}))
    assert svc.handle(CommitInventory(co, 1, "k", "nope")) == InventoryCommitFailed(
        co, 1, "reservation_not_found", False
    )
    assert svc.handle(ReleaseInventory(co, 1, "k", "nope")) == InventoryReleaseFailed(
        co, 1, "reservation_not_found", False
    )


class Flaky:
    """Raises `error` for the first `failures` calls, then delegates to a fake."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.fake = FakeInventory({"A": 5})
        self.failures = failures
        self.error = error
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error

    def reserve(
        self, checkout_id: str, attempt_key: str, items: Sequence[StockLine], expires_at: int
    ) -> Reservation | Rejection:
        self._maybe_fail()
        return self.fake.reserve(checkout_id, attempt_key, items, expires_at)

    def commit(self, reservation_id: str) -> Reservation | Rejection:
        self._maybe_fail()
        return self.fake.commit(reservation_id)

    def release(self, reservation_id: str) -> Reservation | Rejection:
        self._maybe_fail()
        return self.fake.release(reservation_id)

    def expire(self, now: int) -> list[str]:
        return self.fake.expire(now)


def test_transient_errors_are_retried_then_succeed(co: str) -> None:
    flaky = Flaky(2, InventoryUnavailable("db restarting"))
    reply = service(flaky, retries=2).handle(reserve_cmd(co, ("A", 1)))
    assert isinstance(reply, InventoryReserved)
    assert flaky.calls == 3


def test_persistent_transient_error_is_a_retryable_reply(co: str) -> None:
    flaky = Flaky(100, InventoryUnavailable("connection refused"))
    reply = service(flaky, retries=2).handle(CommitInventory(co, 3, "k", "r1"))
    assert isinstance(reply, InventoryCommitFailed)
    assert reply.retryable and reply.attempt == 3
    assert "connection refused" in reply.reason
    assert flaky.calls == 3


def test_protocol_error_is_not_retried_and_not_retryable(co: str) -> None:
    flaky = Flaky(100, InventoryProtocolError("HTTP 400"))
    reply = service(flaky, retries=3).handle(ReleaseInventory(co, 1, "k", "r1"))
    assert isinstance(reply, InventoryReleaseFailed)
    assert not reply.retryable
    assert flaky.calls == 1


def test_open_breaker_answers_retryable_without_calling(co: str) -> None:
    flaky = Flaky(100, InventoryUnavailable("down"))
    svc = service(flaky, retries=0, breaker=make_breaker("inv-test", fail_max=2))
    for _ in range(2):
        svc.handle(reserve_cmd(co, ("A", 1)))
    calls = flaky.calls
    reply = svc.handle(reserve_cmd(co, ("A", 1)))
    assert isinstance(reply, InventoryReservationRejected)
    assert reply.retryable and "circuit open" in reply.reason
    assert flaky.calls == calls


def test_hung_provider_times_out_as_retryable(co: str) -> None:
    release = threading.Event()

    class Hung(Flaky):
        def reserve(
            self, checkout_id: str, attempt_key: str, items: Sequence[StockLine], expires_at: int
        ) -> Reservation | Rejection:
            release.wait(5)
            return super().reserve(checkout_id, attempt_key, items, expires_at)

    try:
        reply = service(Hung(0, RuntimeError()), timeout_s=0.05, retries=1).handle(
            reserve_cmd(co, ("A", 1))
        )
        assert isinstance(reply, InventoryReservationRejected)
        assert reply.retryable
    finally:
        release.set()


def test_unknown_command_is_a_bug_not_a_reply() -> None:
    with pytest.raises(TypeError):
        service(FakeInventory()).handle(object())  # type: ignore[arg-type]
