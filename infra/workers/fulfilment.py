"""Fulfilment: buy the shipping label once an order is placed, and say so on orders.events.

Consumes `orders.events` (and `checkout.events`, for the quoted service level), dispatching on the
message type, not the topic, so tests can feed it from their own topics:
- ShippingQuoted -> remember the checkout's quoted service level (`shipping_quotes`), because
  OrderPlaced carries the shipping amount but not the level the customer chose;
- OrderPlaced    -> `TrackedShipments.create_shipment` (at most one label per checkout, however
  often this runs) at the quoted level (standard when unknown), then a public ShipmentCreated,
  keyed by order_id, produced in the same Kafka transaction as the input offset.
Everything else is committed and ignored.

Duplicates: a redelivered OrderPlaced (a rewound batch, a rebalance, or an aborted copy that
Tansu shows to read_committed consumers, decision 0006) finds the `shipments` row purchased and
never calls the carrier; it yields the same ShipmentCreated with the same message id
(`Envelope.caused`) and the same `created_at` (the stored purchase time), so consumers
deduplicate by message_id. Copies within one batch are produced once.

Failures: a retryable carrier error (timeout, 5xx, 429, open breaker) is raised, so the runtime
retries the batch and finally dead-letters it; one that cannot succeed on retry (address the
carrier rejects, unsupported country, our account refused) raises `PermanentFailure` at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from adapters.shipping.easypost_client import EasyPostClient
from adapters.shipping.port import (
    SERVICE_LEVELS,
    STANDARD,
    Rate,
    ShippingAddress,
    ShippingError,
    ShippingItem,
    ShippingRequest,
)
from adapters.shipping.quoted_levels import PostgresQuotedLevels, QuotedLevels
from adapters.shipping.rate_table_carrier import RateTableCarrier
from adapters.shipping.service import DEFAULT_ITEM_WEIGHT_GRAMS
from adapters.shipping.shipments import LabelProvider, ShipmentLedger, TrackedShipments
from db.migrate import upgrade
from events import messages as m
from events.topics import ORDERS_EVENTS
from infra.processor import BaseHandler, Incoming, Output, PermanentFailure
from infra.settings import Settings

log = logging.getLogger(__name__)

PRODUCER = "fulfilment"


def shipping_request(order: m.OrderPlaced, weight_of: Callable[[str], int]) -> ShippingRequest:
    a = order.shipping_address
    return ShippingRequest(
        currency=order.currency,
        items=tuple(
            ShippingItem(i.sku, i.quantity, i.unit_amount, weight_of(i.sku)) for i in order.items
        ),
        to_address=ShippingAddress(a.line1, a.city, a.state, a.postal_code, a.country),
        reference=order.checkout_id,
    )


class FulfilmentHandler(BaseHandler):
    def __init__(
        self,
        shipments: TrackedShipments,
        quoted: QuotedLevels,
        *,
        carrier: str,
        output_topic: str = ORDERS_EVENTS,
        # OrderPlaced carries no weights; a catalogue lookup plugs in here (as for quoting).
        weight_of: Callable[[str], int] = lambda _sku: DEFAULT_ITEM_WEIGHT_GRAMS,
    ) -> None:
        self._shipments = shipments
        self._quoted = quoted
        self._carrier = carrier  # the carrier asked for the label (EasyPost: "USPS", ...)
        self._output_topic = output_topic
        self._weight_of = weight_of
        self._staged: set[str] = set()  # OrderPlaced ids answered in the open transaction

    def handle(self, message: Incoming) -> Sequence[Output]:
        event = message.envelope.message
        if isinstance(event, m.ShippingQuoted):
            self._quoted.remember(
                event.checkout_id, event.attempt, event.carrier, event.service_level
            )
            return []
        if not isinstance(event, m.OrderPlaced):
            return []
        if message.envelope.message_id in self._staged:
            return []  # a copy in the same batch: its twin's output is already staged
        created = self._ship(event)
        self._staged.add(message.envelope.message_id)
        out = message.envelope.caused(created, 0, producer=PRODUCER, occurred_at=created.created_at)
        return [Output(self._output_topic, out)]

    def on_commit(self) -> None:
        self._staged.clear()

    def on_abort(self) -> None:
        self._staged.clear()

    def _ship(self, order: m.OrderPlaced) -> m.ShipmentCreated:
        level = self._quoted.level_of(order.checkout_id)
        if level is None or level not in SERVICE_LEVELS:
            # Not seen (or a level we do not sell): standard is what the cheapest quote buys.
            log.info("no quoted service level for %s; shipping standard", order.checkout_id)
            level = STANDARD
        # The amount is what the customer paid; the provider buys its own current price.
        wanted = Rate(self._carrier, level, order.shipping, order.currency, None)
        try:
            shipment = self._shipments.create_shipment(
                order.checkout_id, shipping_request(order, self._weight_of), wanted
            )
        except ShippingError as e:
            if not e.retryable:
                raise PermanentFailure(f"shipment for order {order.order_id}: {e.reason}") from e
            raise  # transient: the runtime retries the batch, then dead-letters
        created_at = self._shipments.purchased_at_ms(order.checkout_id)
        if created_at is None:  # just recorded; a row that vanished is a bug, not a retry
            raise RuntimeError(f"shipment of {order.checkout_id} not found after purchase")
        log.info("shipment %s created for order %s", shipment.shipment_id, order.order_id)
        return m.ShipmentCreated(
            order_id=order.order_id,
            checkout_id=order.checkout_id,
            carrier=shipment.carrier,
            service_level=shipment.service_level,
            tracking_code=shipment.tracking_code,
            label_url=shipment.label_url,
            amount=shipment.amount,
            currency=shipment.currency,
            created_at=created_at,
        )


# --- wiring ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelCarrier:
    """What buys labels: the built-in rate table (default) or EasyPost when EASYPOST_API_KEY is
    set (with the SHIP_FROM_* address, all from Settings)."""

    easypost_api_key: str | None = None
    easypost_api_base: str = "https://api.easypost.com"
    easypost_carrier: str = "USPS"
    ship_from: ShippingAddress | None = None

    @staticmethod
    def from_settings(settings: Settings) -> LabelCarrier:
        key = settings.easypost_api_key
        if key is None:
            return LabelCarrier()
        parts = [getattr(settings, f"ship_from_{p.lower()}") for p in _SHIP_FROM]
        if not all(parts):
            missing = [f"SHIP_FROM_{p}" for p, v in zip(_SHIP_FROM, parts, strict=True) if not v]
            raise ValueError(f"EASYPOST_API_KEY is set but {', '.join(missing)} is not")
        return LabelCarrier(
            easypost_api_key=key,
            easypost_api_base=settings.easypost_api_base,
            easypost_carrier=settings.easypost_carrier,
            ship_from=ShippingAddress(*parts),
        )

    def build(self) -> tuple[LabelProvider, str]:
        """The provider and the carrier name to ask it for."""
        if self.easypost_api_key is None:
            table = RateTableCarrier()
            return table, table.name
        assert self.ship_from is not None
        client = EasyPostClient(
            self.easypost_api_key, from_address=self.ship_from, base_url=self.easypost_api_base
        )
        return client, self.easypost_carrier


_SHIP_FROM = ("LINE1", "CITY", "STATE", "POSTAL_CODE", "COUNTRY")


def fulfilment_handler(
    settings: Settings,
    carrier: LabelCarrier | None = None,
    *,
    output_topic: str = ORDERS_EVENTS,
) -> FulfilmentHandler:
    url = settings.database_url
    if not url:
        raise ValueError("DATABASE_URL is not set")

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(url, connect_timeout=5, autocommit=True)

    upgrade(url)
    ledger = ShipmentLedger(connect)
    quoted = PostgresQuotedLevels(connect)
    provider, carrier_name = (carrier or LabelCarrier.from_settings(settings)).build()
    return FulfilmentHandler(
        TrackedShipments(provider, ledger), quoted, carrier=carrier_name, output_topic=output_topic
    )
