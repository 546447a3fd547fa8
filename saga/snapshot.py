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
from collections.abc import Callable, Mapping
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
    return _encoder(tp)(value)


def _decode(value: Any, tp: Any) -> Any:
    return _decoder(tp)(value)


# Each type's encoder and decoder is built once from its hints and cached: walking the hints
# for every value would cost a millisecond per state, paid at every rebuild and transaction.

Coder = Callable[[Any], Any]


@cache
def _encoder(tp: Any) -> Coder:
    options = _union_args(tp)
    if options is not None:
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:
            inner = _encoder(real[0])
            return lambda v: None if v is None else inner(v)
        # Several possible types: tag the value with the one it is.
        tagged = [(get_origin(o) or o, _name(o), _encoder(o)) for o in real]

        def union(v: Any) -> Any:
            if v is None:
                return None
            _, name, enc = next(t for t in tagged if isinstance(v, t[0]))
            return [name, enc(v)]

        return union
    origin = get_origin(tp) or tp
    if _is_dataclass(origin):
        fields = [(n, _encoder(h)) for n, h in _hints(origin)]
        return lambda v: None if v is None else [enc(getattr(v, n)) for n, enc in fields]
    if isinstance(origin, type) and issubclass(origin, Enum):
        return lambda v: None if v is None else v.value
    if origin in (tuple, frozenset, set, list):
        args = get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            encs = [_encoder(a) for a in args]
            return lambda v: [e(x) for e, x in zip(encs, v, strict=True)]
        item = _encoder(args[0] if args else Any)
        if origin in (frozenset, set):
            return lambda v: sorted((item(x) for x in v), key=json.dumps)
        return lambda v: [item(x) for x in v]
    if origin in (Mapping, dict, types.MappingProxyType) or origin is typing.Mapping:
        key_enc, value_enc = (_encoder(a) for a in get_args(tp))
        return lambda v: [[key_enc(k), value_enc(x)] for k, x in v.items()]
    if origin in (str, int, bool, float) or tp is Any:
        return lambda v: v
    raise TypeError(f"cannot snapshot a {tp!r}")


@cache
def _decoder(tp: Any) -> Coder:
    options = _union_args(tp)
    if options is not None:
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:
            inner = _decoder(real[0])
            return lambda v: None if v is None else inner(v)
        by_name = {_name(o): _decoder(o) for o in real}
        return lambda v: None if v is None else by_name[v[0]](v[1])
    origin = get_origin(tp) or tp
    if _is_dataclass(origin):
        fields = [(n, _decoder(h)) for n, h in _hints(origin)]
        cls = origin

        def dataclass_(v: Any) -> Any:
            if v is None:
                return None
            if len(v) != len(fields):
                raise SnapshotMismatch(f"{cls.__name__}: {len(v)} fields, expected {len(fields)}")
            return cls(**{n: dec(x) for (n, dec), x in zip(fields, v, strict=True)})

        return dataclass_
    if isinstance(origin, type) and issubclass(origin, Enum):
        enum = origin
        return lambda v: None if v is None else enum(v)
    if origin in (tuple, frozenset, set, list):
        args = get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            decs = [_decoder(a) for a in args]
            return lambda v: tuple(d(x) for d, x in zip(decs, v, strict=True))
        item = _decoder(args[0] if args else Any)
        collection = origin
        return lambda v: collection(item(x) for x in v)
    if origin in (Mapping, dict, types.MappingProxyType) or origin is typing.Mapping:
        key_dec, value_dec = (_decoder(a) for a in get_args(tp))
        plain = origin is dict

        def mapping(v: Any) -> Any:
            decoded = {key_dec(k): value_dec(x) for k, x in v}
            return decoded if plain else types.MappingProxyType(decoded)

        return mapping
    if tp is Any:
        return lambda v: v
    if origin is bool:
        return _checked(bool)
    if origin in (str, int, float):
        return _checked(origin)
    raise TypeError(f"cannot restore a {tp!r}")


def _checked(kind: type) -> Coder:
    def check(v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, kind) or (kind is not bool and isinstance(v, bool)):
            raise SnapshotMismatch(f"expected {kind.__name__}, got {v!r}")
        return v

    return check


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
