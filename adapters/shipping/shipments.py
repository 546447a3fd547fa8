"""At most one shipping label per checkout: a Postgres tracking row around the purchase.

EasyPost takes no idempotency key, and a purchase whose answer is lost (timeout, crash) has an
unknown outcome. So, per checkout (`shipments` table, keyed by checkout_id):
1. `claim` the row (inserted as `pending` with the reference we give the provider) and commit;
2. before buying, record *which* provider shipment/rate we are about to buy (`quote_ref`), commit;
3. buy; record the purchase.
A retry reads the row first: purchased -> the stored label, no call; a recorded `quote_ref` ->
ask the provider what became of that shipment (bought -> adopt it; not -> buy that one); nothing
recorded but an earlier attempt ran -> look the shipment up by our reference (the window between
creating it and recording it). Only when all that finds nothing is a new shipment created.

Every step is its own short transaction: no row lock is held across a network call. Two workers
buying for one checkout at the same instant could still both create shipments; partitioning by
checkout_id confines that to a rebalance, and buying one recorded shipment twice is refused by
EasyPost itself ("postage already exists"), which `buy` turns into the existing label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from adapters.shipping.port import FoundShipment, Rate, Shipment, ShippingRequest, match_rate

Connection = psycopg.Connection[Any]


class LabelProvider(Protocol):
    """What an at-most-once purchase needs from a provider (EasyPostClient has it)."""

    @property
    def name(self) -> str: ...

    def open_shipment(self, request: ShippingRequest, rate: Rate, reference: str) -> Rate: ...

    def buy(self, rate: Rate) -> Shipment: ...

    def find(self, id_or_reference: str, currency: str) -> FoundShipment | None: ...


@dataclass(frozen=True, slots=True)
class Tracked:
    reference: str
    attempts: int  # including this one
    quote_ref: str | None
    shipment: Shipment | None


class ShipmentLedger:
    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect

    def claim(self, checkout_id: str, provider: str, reference: str) -> Tracked:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO shipments (checkout_id, provider, reference, status)"
                " VALUES (%s, %s, %s, 'pending') ON CONFLICT DO NOTHING",
                (checkout_id, provider, reference),
            )
            row = conn.execute(
                "UPDATE shipments SET attempts = attempts + 1 WHERE checkout_id = %s"
                " RETURNING reference, attempts, quote_ref, status, shipment_id, carrier,"
                " service_level, amount, currency, tracking_code, label_url",
                (checkout_id,),
            ).fetchone()
        assert row is not None  # inserted or already there
        reference, attempts, quote_ref, status, *label = row
        shipment = Shipment(*label) if status == "purchased" else None
        return Tracked(str(reference), int(attempts), quote_ref, shipment)

    def record_quote(self, checkout_id: str, quote_ref: str) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "UPDATE shipments SET quote_ref = %s WHERE checkout_id = %s",
                (quote_ref, checkout_id),
            )

    def record_purchase(self, checkout_id: str, s: Shipment) -> Shipment:
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "UPDATE shipments SET status = 'purchased', shipment_id = %s, carrier = %s,"
                " service_level = %s, amount = %s, currency = %s, tracking_code = %s,"
                " label_url = %s, purchased_at = now() WHERE checkout_id = %s",
                (
                    s.shipment_id,
                    s.carrier,
                    s.service_level,
                    s.amount,
                    s.currency,
                    s.tracking_code,
                    s.label_url,
                    checkout_id,
                ),
            )
        return s

    def purchased_at_ms(self, checkout_id: str) -> int | None:
        """When the label was recorded (epoch ms): fixed once, so a redelivered order reports
        the same creation time."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT (extract(epoch FROM purchased_at) * 1000)::bigint FROM shipments"
                " WHERE checkout_id = %s AND status = 'purchased'",
                (checkout_id,),
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])


class TrackedShipments:
    def __init__(self, provider: LabelProvider, ledger: ShipmentLedger) -> None:
        self._provider = provider
        self._ledger = ledger

    @property
    def provider_name(self) -> str:
        return self._provider.name

    def purchased_at_ms(self, checkout_id: str) -> int | None:
        return self._ledger.purchased_at_ms(checkout_id)

    def create_shipment(self, checkout_id: str, request: ShippingRequest, rate: Rate) -> Shipment:
        """Buy `rate` for `checkout_id`, at most once however often this is retried."""
        row = self._ledger.claim(checkout_id, self._provider.name, f"{checkout_id}:label")
        if row.shipment is not None:
            return row.shipment
        to_buy = self._reconcile(row, request, rate)
        if isinstance(to_buy, Shipment):  # an earlier attempt bought it; we never heard
            return self._ledger.record_purchase(checkout_id, to_buy)
        if to_buy is None:
            to_buy = self._provider.open_shipment(request, rate, row.reference)
        if to_buy.quote_ref != row.quote_ref:
            assert to_buy.quote_ref is not None
            # Written before buying: if the buy's answer is lost, the retry asks about this one.
            self._ledger.record_quote(checkout_id, to_buy.quote_ref)
        return self._ledger.record_purchase(checkout_id, self._provider.buy(to_buy))

    def _reconcile(
        self, row: Tracked, request: ShippingRequest, rate: Rate
    ) -> Shipment | Rate | None:
        """What earlier attempts left: their label, a rate of their shipment to buy, or None."""
        if row.quote_ref is not None:
            found = self._provider.find(row.quote_ref.split("/", 1)[0], request.currency)
            if found is not None and found.purchased is not None:
                return found.purchased
            if found is not None:
                return dataclasses.replace(rate, quote_ref=row.quote_ref)
            return None
        if row.attempts > 1:  # it may have created a shipment and died before recording it
            found = self._provider.find(row.reference, request.currency)
            if found is not None and found.purchased is not None:
                return found.purchased
            if found is not None:
                return match_rate(found.rates, rate)
        return None
