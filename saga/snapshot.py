"""Saga state <-> JSON-able values, and a fingerprint of the state's code shape.

Snapshots are an optimisation, never the truth (ARCHITECTURE.md §3): a snapshot is trusted only
if it was written by code whose `SagaState` has exactly today's shape. Nothing here is a
hand-kept schema: encoding, decoding and the fingerprint are all derived from the dataclass
tree of `SagaState` (field names, field types, enum members), so adding, renaming or retyping a
field anywhere in the tree changes the fingerprint and old snapshots are ignored (their sagas
are refolded from checkout.events). `SNAPSHOT_VERSION` is for what the shape cannot show: bump
it when the *meaning* of a field changes with the same type (or when `evolve` changes how it
folds the same events), so every stored snapshot is refolded once.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from enum import Enum
from functools import cache
from typing import Any, TypeGuard, get_args, get_origin, get_type_hints

from saga.state import SagaState

SNAPSHOT_VERSION = 1


class SnapshotMismatch(ValueError):
    """The encoded value does not fit today's state shape."""


def encode_state(state: SagaState) -> bytes:
    return json.dumps(_encode(state, SagaState), separators=(",", ":")).encode()


def decode_state(data: bytes) -> SagaState:
    try:
        value = _decode(json.loads(data), SagaState)
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise SnapshotMismatch(str(e)) from e
    assert isinstance(value, SagaState)
    return value


@cache
def fingerprint() -> str:
    """16 hex digits naming SNAPSHOT_VERSION and the shape of the SagaState dataclass tree."""
    shape = f"v{SNAPSHOT_VERSION}|{_shape(SagaState, set())}"
    return hashlib.sha256(shape.encode()).hexdigest()[:16]


# --- the derivation ------------------------------------------------------------------------


@cache
def _hints(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if get_origin(tp) in (typing.Union, types.UnionType):
        return get_args(tp)
    return None


def _encode(value: Any, tp: Any) -> Any:
    if value is None:
        return None
    options = _union_args(tp)
    if options is not None:
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:
            return _encode(value, real[0])
        # Several possible types: tag the value with the one it is.
        chosen = next(o for o in real if isinstance(value, get_origin(o) or o))
        return [_name(chosen), _encode(value, chosen)]
    origin = get_origin(tp) or tp
    if _is_dataclass(origin):
        return [_encode(getattr(value, name), hint) for name, hint in _hints(origin)]
    if isinstance(origin, type) and issubclass(origin, Enum):
        return value.value
    if origin in (tuple, frozenset, set, list):
        args = get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return [_encode(v, a) for v, a in zip(value, args, strict=True)]
        item = args[0] if args else Any
        items = [_encode(v, item) for v in value]
        return sorted(items, key=json.dumps) if origin in (frozenset, set) else items
    if origin in (Mapping, dict, types.MappingProxyType) or origin is typing.Mapping:
        key_tp, value_tp = get_args(tp)
        return [[_encode(k, key_tp), _encode(v, value_tp)] for k, v in value.items()]
    if origin in (str, int, bool, float) or tp is Any:
        return value
    raise TypeError(f"cannot snapshot a {tp!r}")


def _decode(value: Any, tp: Any) -> Any:
    if value is None:
        return None
    options = _union_args(tp)
    if options is not None:
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:
            return _decode(value, real[0])
        name, inner = value
        chosen = next(o for o in real if _name(o) == name)
        return _decode(inner, chosen)
    origin = get_origin(tp) or tp
    if _is_dataclass(origin):
        hints = _hints(origin)
        if len(value) != len(hints):
            raise SnapshotMismatch(f"{origin.__name__}: {len(value)} fields, expected {len(hints)}")
        return origin(**{n: _decode(v, h) for (n, h), v in zip(hints, value, strict=True)})
    if isinstance(origin, type) and issubclass(origin, Enum):
        return origin(value)
    if origin in (tuple, frozenset, set, list):
        args = get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return tuple(_decode(v, a) for v, a in zip(value, args, strict=True))
        item = args[0] if args else Any
        return origin(_decode(v, item) for v in value)
    if origin in (Mapping, dict, types.MappingProxyType) or origin is typing.Mapping:
        key_tp, value_tp = get_args(tp)
        decoded = {_decode(k, key_tp): _decode(v, value_tp) for k, v in value}
        return decoded if origin is dict else types.MappingProxyType(decoded)
    if origin is bool:
        if not isinstance(value, bool):
            raise SnapshotMismatch(f"expected bool, got {value!r}")
        return value
    if origin in (str, int, float):
        if not isinstance(value, origin) or isinstance(value, bool):
            raise SnapshotMismatch(f"expected {origin.__name__}, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"cannot restore a {tp!r}")


def _is_dataclass(tp: Any) -> TypeGuard[type]:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _name(tp: Any) -> str:
    origin = get_origin(tp) or tp
    return f"{origin.__module__}.{origin.__qualname__}"


def _shape(tp: Any, seen: set[Any]) -> str:
    options = _union_args(tp)
    if options is not None:
        return "|".join(sorted(_shape(o, seen) for o in options))
    origin = get_origin(tp) or tp
    args = get_args(tp)
    if args:
        return f"{_name(origin)}[{','.join(_shape(a, seen) for a in args)}]"
    if tp is Ellipsis:
        return "..."
    if tp is type(None):
        return "None"
    if _is_dataclass(origin):
        if origin in seen:
            return _name(origin)
        seen.add(origin)
        fields = ",".join(f"{n}:{_shape(h, seen)}" for n, h in _hints(origin))
        return f"{_name(origin)}{{{fields}}}"
    if isinstance(origin, type) and issubclass(origin, Enum):
        return f"{_name(origin)}<{','.join(f'{e.name}={e.value}' for e in origin)}>"
    return _name(origin)
