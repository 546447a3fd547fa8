"""In-memory InventoryProvider for unit tests of the saga wiring; passes the same contract suite.

One lock around everything: correctness over speed, it is a fake.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from adapters.inventory.port import (
    ACTIVE_STATUSES,
    Rejection,
    RejectionReason,
    Reservation,
    ReservationStatus,
    StockLine,
    normalise_lines,
)
from adapters.inventory.seed import StockChange


@dataclass
class _Level:
    on_hand: int
    reserved: int


class FakeInventory:
    def __init__(self, stock: Mapping[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self._stock: dict[str, _Level] = {}
        self._reservations: dict[str, Reservation] = {}
        self._attempts: dict[tuple[str, str], Reservation | Rejection] = {}
        if stock:
            self.set_stock(stock)

    # --- admin (not part of the port) ---------------------------------------------------

    def set_stock(self, levels: Mapping[str, int], change: StockChange | None = None) -> None:
        """`change` is accepted for the StockWriter shape; the fake keeps no audit trail."""
        with self._lock:
            for sku, on_hand in levels.items():
                level = self._stock.setdefault(sku, _Level(0, 0))
                if on_hand < level.reserved:
                    raise ValueError(f"{sku}: on_hand {on_hand} below reserved {level.reserved}")
                level.on_hand = on_hand

    def stock_level(self, sku: str) -> tuple[int, int]:
        """(on_hand, reserved)."""
        with self._lock:
            level = self._stock[sku]
            return level.on_hand, level.reserved

    # --- port ---------------------------------------------------------------------------

    def reserve(
        self, checkout_id: str, attempt_key: str, items: Sequence[StockLine], expires_at: int
    ) -> Reservation | Rejection:
        with self._lock:
            key = (checkout_id, attempt_key)
            if key in self._attempts:
                return self._current(self._attempts[key])
            outcome = self._reserve(checkout_id, items, expires_at)
            self._attempts[key] = outcome
            return outcome

    def _reserve(
        self, checkout_id: str, items: Sequence[StockLine], expires_at: int
    ) -> Reservation | Rejection:
        lines = normalise_lines(items)
        if isinstance(lines, Rejection):
            return lines
        for existing in self._reservations.values():
            if existing.checkout_id == checkout_id and existing.status in ACTIVE_STATUSES:
                extended = replace(existing, expires_at=max(existing.expires_at, expires_at))
                self._reservations[existing.id] = extended
                return extended
        for line in lines:
            level = self._stock.get(line.sku)
            if level is None:
                return Rejection(RejectionReason.UNKNOWN_SKU, line.sku)
            if level.on_hand - level.reserved < line.quantity:
                return Rejection(RejectionReason.OUT_OF_STOCK, line.sku)
        for line in lines:
            self._stock[line.sku].reserved += line.quantity
        reservation = Reservation(
            uuid.uuid4().hex, checkout_id, ReservationStatus.RESERVED, expires_at, lines
        )
        self._reservations[reservation.id] = reservation
        return reservation

    def _current(self, outcome: Reservation | Rejection) -> Reservation | Rejection:
        # A replayed key answers with the reservation as it is now (it may have been committed).
        if isinstance(outcome, Reservation):
            return self._reservations[outcome.id]
        return outcome

    def commit(self, reservation_id: str) -> Reservation | Rejection:
        with self._lock:
            reservation = self._reservations.get(reservation_id)
            if reservation is None:
                return Rejection(RejectionReason.NOT_FOUND)
            if reservation.status == ReservationStatus.COMMITTED:
                return reservation
            if reservation.status != ReservationStatus.RESERVED:
                return Rejection(RejectionReason.NOT_COMMITTABLE)
            for line in reservation.lines:
                level = self._stock[line.sku]
                level.on_hand -= line.quantity
                level.reserved -= line.quantity
            return self._set_status(reservation, ReservationStatus.COMMITTED)

    def release(self, reservation_id: str) -> Reservation | Rejection:
        with self._lock:
            reservation = self._reservations.get(reservation_id)
            if reservation is None:
                return Rejection(RejectionReason.NOT_FOUND)
            return self._release(reservation, ReservationStatus.RELEASED)

    def _release(self, reservation: Reservation, to: ReservationStatus) -> Reservation:
        if reservation.status not in ACTIVE_STATUSES:
            return reservation
        for line in reservation.lines:
            level = self._stock[line.sku]
            if reservation.status == ReservationStatus.RESERVED:
                level.reserved -= line.quantity
            else:  # committed: the units were sold; put them back on the shelf
                level.on_hand += line.quantity
        return self._set_status(reservation, to)

    def expire(self, now: int) -> list[str]:
        with self._lock:
            due = sorted(
                r.id
                for r in self._reservations.values()
                if r.status == ReservationStatus.RESERVED and r.expires_at <= now
            )
            for reservation_id in due:
                self._release(self._reservations[reservation_id], ReservationStatus.EXPIRED)
            return due

    def _set_status(self, reservation: Reservation, status: ReservationStatus) -> Reservation:
        updated = replace(reservation, status=status)
        self._reservations[reservation.id] = updated
        return updated
