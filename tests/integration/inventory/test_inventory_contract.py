"""One contract suite for InventoryProvider, run against every implementation:
the in-memory fake, the Postgres provider, and the HTTP client talking to a local peer."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import pytest

from adapters.inventory.fake import FakeInventory
from adapters.inventory.http_provider import HttpInventory
from adapters.inventory.port import (
    InventoryProvider,
    Line,
    Rejection,
    RejectionReason,
    Reservation,
    ReservationStatus,
)
from adapters.inventory.postgres import PostgresInventory
from adapters.inventory.seed import StockChange

T0 = 1_700_000_000_000  # epoch ms; time is always passed in
TTL = 15 * 60 * 1000
OPERATOR = StockChange("tests")


class StockAdmin(Protocol):
    def set_stock(self, levels: Mapping[str, int], change: StockChange) -> None: ...

    def stock_level(self, sku: str) -> tuple[int, int]: ...


@dataclass
class Subject:
    provider: InventoryProvider
    admin: StockAdmin  # seeds and inspects the stock behind `provider`


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def reserved(result: Reservation | Rejection) -> Reservation:
    assert isinstance(result, Reservation), result
    return result


def rejected(result: Reservation | Rejection) -> Rejection:
    assert isinstance(result, Rejection), result
    return result


class InventoryContract:
    @pytest.fixture
    def subject(self) -> Subject:
        raise NotImplementedError

    @pytest.fixture
    def skus(self, subject: Subject) -> tuple[str, str]:
        a, b = uid("sku-a"), uid("sku-b")
        subject.admin.set_stock({a: 10, b: 5}, OPERATOR)
        return a, b

    # --- reserve ------------------------------------------------------------------------

    def test_reserve_holds_units_and_sums_lines_of_one_sku(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, b = skus
        r = reserved(
            subject.provider.reserve(
                uid("co"), "k1", [Line(a, 2), Line(b, 1), Line(a, 3)], T0 + TTL
            )
        )
        assert r.status == ReservationStatus.RESERVED
        assert r.expires_at == T0 + TTL
        assert r.lines == (Line(a, 5), Line(b, 1))
        assert subject.admin.stock_level(a) == (10, 5)
        assert subject.admin.stock_level(b) == (5, 1)

    def test_all_or_nothing_when_one_line_is_short(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, b = skus
        rej = rejected(subject.provider.reserve(uid("co"), "k1", [Line(a, 1), Line(b, 6)], T0))
        assert rej.reason == RejectionReason.OUT_OF_STOCK and rej.sku == b
        assert subject.admin.stock_level(a) == (10, 0)
        assert subject.admin.stock_level(b) == (5, 0)

    def test_two_lines_of_one_sku_are_checked_together(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        _, b = skus  # 5 on hand: 3 fits, 3 fits, 3 + 3 does not
        rej = rejected(subject.provider.reserve(uid("co"), "k1", [Line(b, 3), Line(b, 3)], T0))
        assert rej.reason == RejectionReason.OUT_OF_STOCK
        assert subject.admin.stock_level(b) == (5, 0)

    def test_exactly_the_last_units_can_be_reserved(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        _, b = skus
        reserved(subject.provider.reserve(uid("co"), "k1", [Line(b, 5)], T0))
        rej = rejected(subject.provider.reserve(uid("co"), "k1", [Line(b, 1)], T0))
        assert rej.reason == RejectionReason.OUT_OF_STOCK
        assert subject.admin.stock_level(b) == (5, 5)

    def test_unknown_sku_is_a_typed_rejection(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        missing = uid("nope")
        rej = rejected(
            subject.provider.reserve(uid("co"), "k1", [Line(a, 1), Line(missing, 1)], T0)
        )
        assert rej == Rejection(RejectionReason.UNKNOWN_SKU, missing)
        assert subject.admin.stock_level(a) == (10, 0)

    @pytest.mark.parametrize("quantity", [0, -3])
    def test_non_positive_quantity_is_a_typed_rejection(
        self, subject: Subject, skus: tuple[str, str], quantity: int
    ) -> None:
        a, b = skus
        rej = rejected(
            subject.provider.reserve(uid("co"), "k1", [Line(a, 1), Line(b, quantity)], T0)
        )
        assert rej == Rejection(RejectionReason.INVALID_QUANTITY, b)
        assert subject.admin.stock_level(a) == (10, 0)

    def test_no_lines_is_a_typed_rejection(self, subject: Subject) -> None:
        assert rejected(subject.provider.reserve(uid("co"), "k1", [], T0)).reason == (
            RejectionReason.NO_LINES
        )

    # --- idempotency and one active reservation per checkout --------------------------

    def test_same_attempt_twice_returns_the_same_reservation(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        co = uid("co")
        first = reserved(subject.provider.reserve(co, "k1", [Line(a, 4)], T0))
        again = reserved(subject.provider.reserve(co, "k1", [Line(a, 4)], T0))
        assert again == first
        assert subject.admin.stock_level(a) == (10, 4)

    def test_same_key_of_another_checkout_is_another_reservation(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        one = reserved(subject.provider.reserve(uid("co"), "k1", [Line(a, 1)], T0))
        two = reserved(subject.provider.reserve(uid("co"), "k1", [Line(a, 1)], T0))
        assert one.id != two.id
        assert subject.admin.stock_level(a) == (10, 2)

    def test_later_attempt_keeps_the_active_reservation_and_its_later_deadline(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        co = uid("co")
        first = reserved(subject.provider.reserve(co, "k1", [Line(a, 4)], T0 + TTL))
        second = reserved(subject.provider.reserve(co, "k2", [Line(a, 4)], T0 + 2 * TTL))
        assert second.id == first.id
        assert second.expires_at == T0 + 2 * TTL
        assert subject.admin.stock_level(a) == (10, 4)
        # The first attempt redelivered late does not shorten the deadline either.
        assert reserved(subject.provider.reserve(co, "k1", [Line(a, 4)], T0)).expires_at == (
            T0 + 2 * TTL
        )

    def test_replayed_rejection_stays_rejected_after_restock(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        _, b = skus
        co = uid("co")
        rejected(subject.provider.reserve(co, "k1", [Line(b, 6)], T0))
        subject.admin.set_stock({b: 50}, OPERATOR)
        # The saga already failed this attempt; reserving now would only leak stock.
        assert rejected(subject.provider.reserve(co, "k1", [Line(b, 6)], T0)).reason == (
            RejectionReason.OUT_OF_STOCK
        )
        assert subject.admin.stock_level(b) == (50, 0)

    def test_new_attempt_after_release_reserves_again(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        co = uid("co")
        first = reserved(subject.provider.reserve(co, "k1", [Line(a, 3)], T0))
        reserved(subject.provider.release(first.id))
        second = reserved(subject.provider.reserve(co, "k2", [Line(a, 3)], T0))
        assert second.id != first.id
        assert subject.admin.stock_level(a) == (10, 3)

    # --- commit / release --------------------------------------------------------------

    def test_commit_turns_reserved_into_sold_and_is_idempotent(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, b = skus
        r = reserved(subject.provider.reserve(uid("co"), "k1", [Line(a, 2), Line(b, 5)], T0))
        committed = reserved(subject.provider.commit(r.id))
        assert committed.status == ReservationStatus.COMMITTED
        assert reserved(subject.provider.commit(r.id)).status == ReservationStatus.COMMITTED
        assert subject.admin.stock_level(a) == (8, 0)
        assert subject.admin.stock_level(b) == (0, 0)

    def test_release_of_reserved_returns_units_and_is_idempotent(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        r = reserved(subject.provider.reserve(uid("co"), "k1", [Line(a, 4)], T0))
        assert reserved(subject.provider.release(r.id)).status == ReservationStatus.RELEASED
        assert reserved(subject.provider.release(r.id)).status == ReservationStatus.RELEASED
        assert subject.admin.stock_level(a) == (10, 0)

    def test_release_of_committed_restocks(self, subject: Subject, skus: tuple[str, str]) -> None:
        a, _ = skus
        r = reserved(subject.provider.reserve(uid("co"), "k1", [Line(a, 4)], T0))
        reserved(subject.provider.commit(r.id))
        assert subject.admin.stock_level(a) == (6, 0)
        assert reserved(subject.provider.release(r.id)).status == ReservationStatus.RELEASED
        assert reserved(subject.provider.release(r.id)).status == ReservationStatus.RELEASED
        assert subject.admin.stock_level(a) == (10, 0)

    def test_commit_after_release_is_rejected(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        r = reserved(subject.provider.reserve(uid("co"), "k1", [Line(a, 4)], T0))
        reserved(subject.provider.release(r.id))
        assert rejected(subject.provider.commit(r.id)).reason == RejectionReason.NOT_COMMITTABLE
        assert subject.admin.stock_level(a) == (10, 0)

    def test_unknown_reservation_is_not_found(self, subject: Subject) -> None:
        missing = uuid.uuid4().hex
        assert rejected(subject.provider.commit(missing)).reason == RejectionReason.NOT_FOUND
        assert rejected(subject.provider.release(missing)).reason == RejectionReason.NOT_FOUND

    # --- expiry ------------------------------------------------------------------------

    def test_expiry_sweep_releases_only_due_reserved_reservations(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        due = reserved(subject.provider.reserve(uid("co"), "k", [Line(a, 1)], T0 + 10))
        due_exact = reserved(subject.provider.reserve(uid("co"), "k", [Line(a, 2)], T0 + 20))
        later = reserved(subject.provider.reserve(uid("co"), "k", [Line(a, 3)], T0 + 21))
        sold = reserved(subject.provider.reserve(uid("co"), "k", [Line(a, 4)], T0 + 5))
        reserved(subject.provider.commit(sold.id))
        assert subject.admin.stock_level(a) == (6, 6)

        assert subject.provider.expire(T0 + 20) == sorted([due.id, due_exact.id])
        assert subject.admin.stock_level(a) == (6, 3)
        assert subject.provider.expire(T0 + 20) == []
        # An expired reservation cannot be committed; releasing it is a harmless no-op.
        assert rejected(subject.provider.commit(due.id)).reason == RejectionReason.NOT_COMMITTABLE
        assert reserved(subject.provider.release(due.id)).status == ReservationStatus.EXPIRED
        assert reserved(subject.provider.release(later.id)).status == ReservationStatus.RELEASED
        assert subject.admin.stock_level(a) == (6, 0)

    # --- concurrency -------------------------------------------------------------------

    def test_no_oversell_under_concurrent_reservations(self, subject: Subject) -> None:
        """60 checkouts race for 7 units, each wanting 2 as two lines of the same SKU (plus a
        plentiful second SKU, so multi-row locking is exercised): exactly 3 may win."""
        hot, cold = uid("hot"), uid("cold")
        subject.admin.set_stock({hot: 7, cold: 1000}, OPERATOR)
        contenders = 60
        start = threading.Barrier(contenders)

        def attempt(i: int) -> Reservation | Rejection:
            lines = [Line(hot, 1), Line(cold, 1), Line(hot, 1)]
            if i % 2:  # half list the SKUs in the other order: lock order must not depend on it
                lines.reverse()
            start.wait(timeout=30)
            return subject.provider.reserve(uid("co"), "k1", lines, T0 + TTL)

        with ThreadPoolExecutor(max_workers=contenders) as pool:
            results = list(pool.map(attempt, range(contenders)))

        outcomes = Counter("ok" if isinstance(r, Reservation) else str(r.reason) for r in results)
        assert outcomes == {"ok": 3, "out_of_stock": contenders - 3}, outcomes
        assert subject.admin.stock_level(hot) == (7, 6)
        assert subject.admin.stock_level(cold) == (1000, 3)

    def test_concurrent_duplicates_of_one_command_reserve_once(
        self, subject: Subject, skus: tuple[str, str]
    ) -> None:
        a, _ = skus
        co = uid("co")
        start = threading.Barrier(20)

        def attempt(i: int) -> Reservation | Rejection:
            start.wait(timeout=30)
            # Redeliveries of attempt 1 racing with attempt 2 of the same checkout.
            return subject.provider.reserve(co, f"k{i % 2}", [Line(a, 3)], T0 + TTL)

        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(attempt, range(20)))
        assert {reserved(r).id for r in results} != set()
        assert len({reserved(r).id for r in results}) == 1
        assert subject.admin.stock_level(a) == (10, 3)


class TestFakeInventory(InventoryContract):
    @pytest.fixture
    def subject(self) -> Subject:
        fake = FakeInventory()
        return Subject(fake, fake)


@pytest.mark.integration
class TestPostgresInventory(InventoryContract):
    @pytest.fixture
    def subject(self, pg_inventory: PostgresInventory) -> Subject:
        return Subject(pg_inventory, pg_inventory)


@pytest.mark.integration
class TestHttpInventory(InventoryContract):
    @pytest.fixture
    def subject(self, http_inventory: HttpInventory, pg_inventory: PostgresInventory) -> Subject:
        return Subject(http_inventory, pg_inventory)
