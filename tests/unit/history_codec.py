"""Recorded saga histories for the upcaster tests: messages in and out through the project's
own Avro serde, and a canonical digest of a SagaState that does not depend on set order."""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from events.envelope import Envelope
from events.serde import SingleObjectSerde

_SERDE = SingleObjectSerde()
_TOPIC = "checkout.events"


def encode(message: Any, version: int = 1) -> str:
    envelope = Envelope.new(message, occurred_at=0, producer="recorder")
    envelope = dataclasses.replace(envelope, schema_version=version)
    return base64.b64encode(_SERDE.encode(envelope, _TOPIC)).decode()


def decode(text: str) -> Envelope[Any]:
    return _SERDE.decode(base64.b64decode(text), _TOPIC)


def canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        items = [[canonical(k), canonical(v)] for k, v in value.items()]
        return sorted(items, key=lambda kv: json.dumps(kv, sort_keys=True))
    if isinstance(value, set | frozenset):
        return sorted((canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, tuple | list):
        return [canonical(v) for v in value]
    return value


def digest(state: Any) -> str:
    text = json.dumps(canonical(state), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
