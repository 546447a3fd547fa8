"""The inventory port: what the saga needs from any stock system, ours or a shop's.

Business outcomes (out of stock, unknown SKU, bad quantity, unknown or finished reservation) are
returned as a `Rejection` value, never raised: they are answers, and the saga fails the checkout
cleanly on them. Only "could not get an answer" is raised, as `InventoryUnavailable`, which is
worth retrying.

Semantics every implementation honours (the contract suite checks them all):
- `reserve` is all-or-nothing per checkout; lines sharing a SKU are summed.
- `reserve` is idempotent per (checkout_id, attempt_key): the same key returns the same outcome.
- At most one active (RESERVED or COMMITTED) reservation per checkout: a later attempt while one
  is active returns that one (its expiry pushed out to the later `expires_at`), never a second.
- `commit` turns reserved units into sold ones; `release` gives back reserved *or* committed
  units (the saga releases committed stock when capture fails afterwards). Both idempotent.
- `expire(now)` releases RESERVED reservations whose `expires_at <= now`. No clock inside:
  time is passed in, like everywhere in the saga.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


ACTIVE_STATUSES = frozenset({ReservationStatus.RESERVED, ReservationStatus.COMMITTED})


class RejectionReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN_SKU = "unknown_sku"
    INVALID_QUANTITY = "invalid_quantity"
    NO_LINES = "no_lines"
    NOT_FOUND = "reservation_not_found"
    # commit of a reservation that was already released or expired: the units are gone.
    NOT_COMMITTABLE = "reservation_not_committable"


class StockLine(Protocol):
    """Anything with a SKU and a quantity; `events.messages.LineItem` fits."""

    @property
    def sku(self) -> str: ...

    @property
    def quantity(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    checkout_id: str
    status: ReservationStatus
    expires_at: int  # epoch ms
    lines: tuple[Line, ...]  # one per SKU, sorted by SKU


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectionReason
    sku: str | None = None  # the offending SKU, when there is one

    def describe(self) -> str:
        return f"{self.reason}:{self.sku}" if self.sku else str(self.reason)


class InventoryUnavailable(Exception):
    """No answer (connection lost, timeout, 5xx, lock wait exceeded): retrying may help."""


class InventoryProtocolError(Exception):
    """The provider answered something outside the contract (a 400, an unknown reason code).
    Retrying the same request will not help; it is a bug on one side."""


class InventoryRefused(Exception):
    """The store itself refused the change with a reason of its own (a warehouse rule, a
    freeze during a stock take): asking again will get the same answer until someone acts."""


class InventoryProvider(Protocol):
    def reserve(
        self,
        checkout_id: str,
        attempt_key: str,
        items: Sequence[StockLine],
        expires_at: int,
    ) -> Reservation | Rejection: ...

    def commit(self, reservation_id: str) -> Reservation | Rejection: ...

    def release(self, reservation_id: str) -> Reservation | Rejection: ...

    def expire(self, now: int) -> list[str]:
        """Release every RESERVED reservation with expires_at <= now; return their ids."""
        ...


def normalise_lines(items: Iterable[StockLine]) -> tuple[Line, ...] | Rejection:
    """Validate and sum lines per SKU, sorted by SKU.

    Sorting is what lets every implementation lock stock rows in one global order (no
    deadlocks); summing is what stops two lines of one SKU from each passing the stock check.
    """
    totals: dict[str, int] = {}
    for item in items:
        sku, quantity = item.sku, item.quantity
        if not isinstance(sku, str) or not sku.strip():
            return Rejection(RejectionReason.UNKNOWN_SKU, str(sku))
        # bool is an int subclass; True is not a quantity.
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            return Rejection(RejectionReason.INVALID_QUANTITY, sku)
        totals[sku] = totals.get(sku, 0) + quantity
    if not totals:
        return Rejection(RejectionReason.NO_LINES)
    return tuple(Line(sku, totals[sku]) for sku in sorted(totals))
