"""The envelope every message travels in, and the registry of message types by name."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Generic, TypeVar, get_args

from events import messages
from events.messages import Message

M = TypeVar("M", bound=Message)

SCHEMA_VERSION = 2
"""The envelope format written today. On checkout.events it is also the history's format:
version 1 recorded adapter replies and deadlines as bare facts that evolve judged; version 2
records decide's verdicts as events (saga/upcast.py reads both)."""

MESSAGE_TYPES: dict[str, type] = {cls.__name__: cls for cls in get_args(messages.Message)}


def key_of(message: Message) -> str:
    """Kafka key: orders.events are keyed by order_id, ticks by nothing, alerts by their name,
    the rest by checkout."""
    if isinstance(
        message, messages.OrderPlaced | messages.OrderRefunded | messages.ShipmentCreated
    ):
        return message.order_id
    if isinstance(message, messages.Tick):
        return ""
    if isinstance(message, messages.OpsAlert):
        return message.alert
    return message.checkout_id


@dataclass(frozen=True, slots=True)
class Envelope(Generic[M]):
    """Message metadata. `correlation_id` is the checkout the message belongs to; `causation_id`
    is the message_id of the message that caused it (None for messages from outside)."""

    message: M
    message_id: str
    correlation_id: str
    causation_id: str | None
    occurred_at: int  # epoch ms
    producer: str
    schema_version: int = SCHEMA_VERSION

    @property
    def type(self) -> str:
        return type(self.message).__name__

    @property
    def checkout_id(self) -> str:
        return self.correlation_id

    @property
    def key(self) -> str:
        return key_of(self.message)

    @staticmethod
    def new(
        message: M,
        *,
        occurred_at: int,
        producer: str,
        causation_id: str | None = None,
        message_id: str | None = None,
    ) -> Envelope[M]:
        correlation = (
            "" if isinstance(message, messages.Tick) else getattr(message, "checkout_id", "")
        )
        return Envelope(
            message=message,
            message_id=message_id or str(uuid.uuid4()),
            correlation_id=correlation,
            causation_id=causation_id,
            occurred_at=occurred_at,
            producer=producer,
        )

    def caused(
        self, message: M, index: int, *, producer: str, occurred_at: int, scope: str = ""
    ) -> Envelope[M]:
        """An output of this message. Its id is derived from ours (and `scope`, when one input
        yields outputs for many checkouts, as a tick does), so re-processing the same input
        after a crash yields the same ids and consumers can deduplicate by message_id."""
        return Envelope.new(
            message,
            occurred_at=occurred_at,
            producer=producer,
            causation_id=self.message_id,
            message_id=derived_id(self.message_id, f"{scope}/{index}"),
        )


def derived_id(parent: str, name: str) -> str:
    """`str(uuid.uuid5(uuid.UUID(parent), name))`, without the two UUID objects: the
    orchestrator derives an id per output, and building them was 9 % of its CPU under load
    (ADR 0023). Ids that are not in canonical form take the uuid module's way."""
    if len(parent) != 36:
        return str(uuid.uuid5(uuid.UUID(parent), name))
    try:
        namespace = bytes.fromhex(parent.replace("-", ""))
    except ValueError:
        namespace = b""
    if len(namespace) != 16:  # not 32 hex digits (fromhex skips spaces): as uuid says
        return str(uuid.uuid5(uuid.UUID(parent), name))
    digest = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
