"""Envelope <-> bytes on Kafka, in Avro, against the published schemas in schemas/avro.

Two wire formats behind one `Serde` protocol (see docs/decisions/0001):

* `SingleObjectSerde` (default, no infrastructure): Avro single-object encoding,
  ``C3 01 | CRC-64-AVRO fingerprint of the writer schema (8 bytes, little-endian) | body``.
  The decoder knows every writer schema we ever published (current + history) by fingerprint
  and resolves it to the current (reader) schema.
* `SchemaRegistrySerde` (when SCHEMA_REGISTRY_URL is set): Confluent wire format,
  ``00 | schema id (4 bytes, big-endian) | body``, subjects named by TopicRecordNameStrategy
  (``<topic>-checkout.v1.<Name>``) because one topic carries several record types.

Decoding untrusted bytes raises `DecodeError` and nothing else, so a processor can send the
message to its DLQ. A registry that cannot be reached is not a property of the message: that
raises `RegistryUnavailableError`, so the processor retries instead of dead-lettering good data.

Nothing is loaded at import time; schemas are parsed, fingerprinted and their converters built
on first use, once per class (or writer schema), then every call is two dict lookups plus
fastavro's C reader/writer.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import io
import json
import threading
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, get_args, get_origin, get_type_hints

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from events import avro
from events.envelope import Envelope

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

MARKER = b"\xc3\x01"
_SINGLE_OBJECT_HEADER = len(MARKER) + 8
_CONFLUENT_MAGIC = 0
_CONFLUENT_HEADER = 5


class DecodeError(ValueError):
    """The bytes are not a message we can read; the message says what was wrong."""


class EncodeError(ValueError):
    """The envelope cannot be written (a bug in the producer, or an unpublished message type)."""


class SchemaDriftError(EncodeError):
    """A dataclass no longer matches its published .avsc: run `python -m events.avro --write`."""


class RegistryUnavailableError(RuntimeError):
    """The schema registry did not answer; retry, the message itself may well be fine."""


class Serde(Protocol):
    def encode(self, envelope: Envelope[Any], topic: str) -> bytes: ...

    def decode(self, data: bytes, topic: str) -> Envelope[Any]: ...


def crc64_fingerprint(schema: avro.Schema) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, 8 bytes little-endian (as on the wire)."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _fingerprint_text(fp: bytes) -> str:
    # The 64-bit value as Java's SchemaNormalization.parsingFingerprint64 reports it.
    return f"0x{int.from_bytes(fp, 'little'):016x}"


# --- converters between dataclasses and fastavro's dicts --------------------------------------

_Conv = Callable[[Any], Any] | None
"""None means "use the value as it is" and lets the hot path skip a call per field."""

_SCALARS = (str, int, bool, float, bytes)


def _to_avro(tp: Any) -> _Conv:
    if tp in _SCALARS or (isinstance(tp, type) and issubclass(tp, enum.StrEnum)):
        return None  # StrEnum is a str: fastavro finds the symbol by equality
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = _to_avro(next(a for a in get_args(tp) if a is not type(None)))
        if inner is None:
            return None
        convert_inner = inner
        return lambda v: None if v is None else convert_inner(v)
    if origin is tuple:
        item = _to_avro(get_args(tp)[0])
        if item is None:
            return None  # fastavro writes any sequence as an array
        convert_item = item
        return lambda v: [convert_item(x) for x in v]
    if dataclasses.is_dataclass(tp):
        return _record_to_avro(tp)
    raise avro.UnsupportedTypeError(f"no Avro mapping for {tp!r}")


def _record_to_avro(cls: Any) -> Callable[[Any], dict[str, Any]]:
    hints = get_type_hints(cls)
    names = tuple(f.name for f in dataclasses.fields(cls))
    convs = tuple((n, _to_avro(hints[n])) for n in names)
    if all(c is None for _, c in convs):
        return lambda o: {n: getattr(o, n) for n in names}
    return lambda o: {n: getattr(o, n) if c is None else c(getattr(o, n)) for n, c in convs}


def _from_avro(tp: Any) -> _Conv:
    if tp in _SCALARS:
        return None
    if isinstance(tp, type) and issubclass(tp, enum.StrEnum):
        return {member.value: member for member in tp}.__getitem__
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = _from_avro(next(a for a in get_args(tp) if a is not type(None)))
        if inner is None:
            return None
        convert_inner = inner
        return lambda v: None if v is None else convert_inner(v)
    if origin is tuple:
        item = _from_avro(get_args(tp)[0])
        if item is None:
            return tuple  # fastavro reads arrays as lists; our dataclasses hold tuples
        convert_item = item
        return lambda v: tuple(map(convert_item, v))
    if dataclasses.is_dataclass(tp):
        return _record_from_avro(tp)
    raise avro.UnsupportedTypeError(f"no Avro mapping for {tp!r}")


def _field_converters(cls: Any) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    hints = get_type_hints(cls)
    pairs = ((f.name, _from_avro(hints[f.name])) for f in dataclasses.fields(cls))
    return tuple((n, c) for n, c in pairs if c is not None)


def _record_from_avro(cls: Any) -> Callable[[dict[str, Any]], Any]:
    convs = _field_converters(cls)

    def build(d: dict[str, Any]) -> Any:
        for name, conv in convs:
            d[name] = conv(d[name])
        return cls(**d)  # the reader schema has exactly the dataclass's fields

    return build


def _strip_logical_types(schema: Any) -> Any:
    """A copy without logicalType: fastavro would turn `occurred_at` into a datetime (slow, and
    it raises for out-of-range values) while our model keeps epoch ms. Parsing canonical form
    ignores logicalType, so fingerprints are unaffected."""
    if isinstance(schema, dict):
        return {k: _strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical_types(v) for v in schema]
    return schema


# --- compiled contracts -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Codec:
    """Everything needed to write, and to build the dataclass of, one message class."""

    name: str
    cls: type
    schema: dict[str, Any]  # the published .avsc, as JSON
    schema_text: str
    fingerprint: bytes
    parsed: Any  # fastavro-parsed, logical types stripped
    message_to_avro: Callable[[Any], dict[str, Any]]
    message_from_avro: Callable[[dict[str, Any]], Any]

    def to_record(self, envelope: Envelope[Any]) -> dict[str, Any]:
        record = self.message_to_avro(envelope.message)
        record[avro.ENVELOPE_FIELD] = {
            "message_id": envelope.message_id,
            "type": self.name,
            "schema_version": envelope.schema_version,
            "checkout_id": envelope.checkout_id,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id,
            "occurred_at": envelope.occurred_at,
            "producer": envelope.producer,
        }
        return record

    def from_record(self, record: dict[str, Any]) -> Envelope[Any]:
        meta = record.pop(avro.ENVELOPE_FIELD)
        if meta["type"] != self.name:
            raise DecodeError(f"{self.name} record says its type is {meta['type']!r}")
        return Envelope(
            message=self.message_from_avro(record),
            message_id=meta["message_id"],
            correlation_id=meta["correlation_id"],
            causation_id=meta["causation_id"],
            occurred_at=meta["occurred_at"],
            producer=meta["producer"],
            schema_version=meta["schema_version"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class _Reader:
    """How to read data written with one writer schema: into the current class's schema."""

    codec: _Codec
    writer: Any
    reader: Any  # None when writer == current schema: fastavro then skips resolution


class Contracts:
    """The message classes and their published schemas (current + history), compiled lazily.

    `classes` defaults to the `Message` union and `schema_dir` to schemas/avro; tests pass
    their own to simulate other versions of the code.
    """

    def __init__(
        self, classes: Iterable[type] | None = None, schema_dir: Path | None = None
    ) -> None:
        self._classes = tuple(classes) if classes is not None else None
        self._schema_dir = schema_dir or avro.SCHEMA_DIR
        self._lock = threading.Lock()
        self._loaded = False
        self._by_name: dict[str, type] = {}
        self._current: dict[str, tuple[dict[str, Any], str]] = {}
        self._writers: dict[bytes, tuple[str, dict[str, Any]]] = {}
        self._codecs: dict[type, _Codec] = {}
        self._readers: dict[bytes, _Reader] = {}

    @property
    def schema_dir(self) -> Path:
        return self._schema_dir

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            classes = self._classes if self._classes is not None else avro.message_classes()
            by_name = {cls.__name__: cls for cls in classes}
            current: dict[str, tuple[dict[str, Any], str]] = {}
            writers: dict[bytes, tuple[str, dict[str, Any]]] = {}
            for name, path in avro.published(self._schema_dir).items():
                text = path.read_text(encoding="utf-8")
                current[name] = (json.loads(text), text)
                writers[crc64_fingerprint(current[name][0])] = (name, current[name][0])
            for name, _version, path in avro.history(self._schema_dir):
                schema = avro.load_schema(path)
                writers.setdefault(crc64_fingerprint(schema), (name, schema))
            self._by_name, self._current, self._writers = by_name, current, writers
            self._loaded = True

    def codec(self, cls: type) -> _Codec:
        found = self._codecs.get(cls)
        if found is not None:
            return found
        self._load()
        name = cls.__name__
        if self._by_name.get(name) is not cls:
            raise EncodeError(f"{name} is not a message type (not in the Message union)")
        if name not in self._current:
            raise SchemaDriftError(
                f"no published schema {name}.avsc in {self._schema_dir}; "
                "run: python -m events.avro --write"
            )
        schema, text = self._current[name]
        # The converters follow the dataclass, the bytes follow the file: if the two differed,
        # fields would be silently dropped or misread, so refuse instead.
        if avro.derive_schema(cls) != schema:
            raise SchemaDriftError(
                f"{name} differs from {name}.avsc; run: python -m events.avro --write"
            )
        codec = _Codec(
            name=name,
            cls=cls,
            schema=schema,
            schema_text=text,
            fingerprint=crc64_fingerprint(schema),
            parsed=parse_schema(_strip_logical_types(schema)),
            message_to_avro=_record_to_avro(cls),
            message_from_avro=_record_from_avro(cls),
        )
        with self._lock:
            return self._codecs.setdefault(cls, codec)

    def codec_by_name(self, name: str) -> _Codec | None:
        self._load()
        cls = self._by_name.get(name)
        return None if cls is None else self.codec(cls)

    def reader_for_fingerprint(self, fp: bytes) -> _Reader | None:
        found = self._readers.get(fp)
        if found is not None:
            return found
        self._load()
        known = self._writers.get(fp)
        if known is None:
            return None
        name, schema = known
        codec = self.codec_by_name(name)
        if codec is None:
            return None  # a published schema whose class was removed: we cannot build it
        reader = self.reader_for_schema(schema, codec)
        with self._lock:
            return self._readers.setdefault(fp, reader)

    def reader_for_schema(self, writer: dict[str, Any], codec: _Codec) -> _Reader:
        if crc64_fingerprint(writer) == codec.fingerprint:
            return _Reader(codec, codec.parsed, None)
        return _Reader(
            codec, parse_schema(_strip_logical_types(copy.deepcopy(writer))), codec.parsed
        )


_default_contracts: Contracts | None = None


def default_contracts() -> Contracts:
    """One shared, lazily compiled set for the process (compiling is per class, once)."""
    global _default_contracts
    if _default_contracts is None:
        _default_contracts = Contracts()
    return _default_contracts


# --- reading and writing the Avro body -----------------------------------------------------------


def _write(codec: _Codec, envelope: Envelope[Any], header: bytes) -> bytes:
    buf = io.BytesIO()
    buf.write(header)
    try:
        schemaless_writer(buf, codec.parsed, codec.to_record(envelope))
    except Exception as exc:  # fastavro raises assorted types for a value that does not fit
        raise EncodeError(f"cannot encode {codec.name}: {type(exc).__name__}: {exc}") from exc
    return buf.getvalue()


def _read(reader: _Reader, data: bytes | bytearray | memoryview, offset: int) -> Envelope[Any]:
    name = reader.codec.name
    buf = io.BytesIO(data)
    buf.seek(offset)
    try:
        record: Any = schemaless_reader(buf, reader.writer, reader.reader)
    except EOFError as exc:
        raise DecodeError(f"truncated record for {name}") from exc
    except Exception as exc:  # untrusted input: whatever fastavro raises, the answer is the same
        raise DecodeError(f"invalid {name} record: {type(exc).__name__}: {exc}") from exc
    trailing = len(data) - buf.tell()
    if trailing:
        raise DecodeError(f"{trailing} unexpected bytes after the {name} record")
    try:
        return reader.codec.from_record(record)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(
            f"{name} record does not fit the class: {type(exc).__name__}: {exc}"
        ) from exc


def _check_bytes(data: object) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__} (a tombstone?)")


class SingleObjectSerde:
    """Avro single-object encoding; needs no infrastructure. Ignores `topic`.

    Its limit: a reader can only decode writer schemas it ships with. Data written by a newer
    producer with a changed schema fails with "unknown writer schema fingerprint" until the
    consumer is upgraded (deploy consumers first, or use the registry; see ADR 0001).
    """

    def __init__(self, contracts: Contracts | None = None) -> None:
        self._contracts = contracts or default_contracts()
        self._headers: dict[type, tuple[_Codec, bytes]] = {}

    def encode(self, envelope: Envelope[Any], topic: str) -> bytes:
        cls = type(envelope.message)
        found = self._headers.get(cls)
        if found is None:
            codec = self._contracts.codec(cls)
            found = self._headers.setdefault(cls, (codec, MARKER + codec.fingerprint))
        return _write(found[0], envelope, found[1])

    def decode(self, data: bytes, topic: str) -> Envelope[Any]:
        _check_bytes(data)
        if not data or bytes(data[:2]) != MARKER[: len(data)]:
            raise DecodeError(
                f"not Avro single-object encoding (bad marker 0x{bytes(data[:2]).hex()}"
                f", expected 0x{MARKER.hex()})"
            )
        if len(data) < _SINGLE_OBJECT_HEADER:
            raise DecodeError(f"truncated single-object header ({len(data)} bytes)")
        fp = bytes(data[2:_SINGLE_OBJECT_HEADER])
        reader = self._contracts.reader_for_fingerprint(fp)
        if reader is None:
            raise DecodeError(
                f"unknown writer schema fingerprint {_fingerprint_text(fp)}: written "
                "by a schema this reader does not ship (newer producer?)"
            )
        return _read(reader, data, _SINGLE_OBJECT_HEADER)


class SchemaRegistrySerde:
    """Confluent wire format against a schema registry (`mock://...` URLs work for tests).

    Subjects follow TopicRecordNameStrategy, ``<topic>-<namespace>.<Name>``. With
    `auto_register` off, producers only look schemas up (registration then belongs to CI /
    the deploy pipeline, where the registry's compatibility check can stop a bad change).
    """

    _NEGATIVE_CACHE_LIMIT = 1024

    def __init__(
        self,
        url: str | None = None,
        *,
        client: SchemaRegistryClient | None = None,
        contracts: Contracts | None = None,
        auto_register: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        if url is None and client is None:
            raise ValueError("SchemaRegistrySerde needs a registry url or client")
        self._url = url
        self._config = dict(config or {})
        self._client = client
        self._contracts = contracts or default_contracts()
        self._auto_register = auto_register
        self._lock = threading.Lock()
        self._headers: dict[tuple[str, type], tuple[_Codec, bytes]] = {}
        self._readers: dict[int, _Reader] = {}
        self._unknown_ids: dict[int, str] = {}

    def _registry(self) -> SchemaRegistryClient:
        if self._client is None:
            # Imported on first use: no client (and no connection) unless a registry is used.
            from confluent_kafka.schema_registry import SchemaRegistryClient

            with self._lock:
                if self._client is None:
                    self._client = SchemaRegistryClient.new_client(
                        {"url": self._url, **self._config}
                    )
        assert self._client is not None
        return self._client

    @staticmethod
    def subject(topic: str, codec: _Codec) -> str:
        return f"{topic}-{codec.schema['namespace']}.{codec.name}"

    def encode(self, envelope: Envelope[Any], topic: str) -> bytes:
        key = (topic, type(envelope.message))
        found = self._headers.get(key)
        if found is None:
            found = self._headers.setdefault(key, self._register(topic, key[1]))
        return _write(found[0], envelope, found[1])

    def _register(self, topic: str, cls: type) -> tuple[_Codec, bytes]:
        from confluent_kafka.schema_registry import Schema

        codec = self._contracts.codec(cls)
        subject = self.subject(topic, codec)
        schema = Schema(codec.schema_text, "AVRO")
        schema_id: int | None
        try:
            if self._auto_register:
                schema_id = self._registry().register_schema(subject, schema)
            else:
                schema_id = self._registry().lookup_schema(subject, schema).schema_id
        except Exception as exc:
            if _is_client_error(exc):  # e.g. 409 incompatible, 404 not registered
                raise EncodeError(f"registry refused {codec.name} under {subject}: {exc}") from exc
            raise RegistryUnavailableError(f"schema registry: {exc}") from exc
        if schema_id is None:
            raise RegistryUnavailableError(f"registry returned no id for {subject}")
        return codec, bytes([_CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big")

    def decode(self, data: bytes, topic: str) -> Envelope[Any]:
        _check_bytes(data)
        if not data or data[0] != _CONFLUENT_MAGIC:
            shown = f"0x{data[0]:02x}" if data else "nothing"
            raise DecodeError(f"not Confluent wire format (magic byte {shown}, expected 0x00)")
        if len(data) < _CONFLUENT_HEADER:
            raise DecodeError(f"truncated Confluent header ({len(data)} bytes)")
        schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER], "big")
        reader = self._readers.get(schema_id) or self._fetch(schema_id, topic)
        return _read(reader, data, _CONFLUENT_HEADER)

    def _fetch(self, schema_id: int, topic: str) -> _Reader:
        if schema_id in self._unknown_ids:
            raise DecodeError(self._unknown_ids[schema_id])
        try:
            schema = self._registry().get_schema(schema_id)
        except Exception as exc:
            if _is_client_error(exc):
                return self._unknown(
                    schema_id,
                    f"unknown schema id {schema_id} in the registry (topic {topic}): {exc}",
                )
            raise RegistryUnavailableError(f"schema registry: {exc}") from exc
        if (schema.schema_type or "AVRO") != "AVRO" or schema.schema_str is None:
            return self._unknown(schema_id, f"schema id {schema_id} is not an Avro schema")
        try:
            writer = json.loads(schema.schema_str)
            name = str(writer["name"]).rsplit(".", 1)[-1]
        except (ValueError, KeyError, TypeError) as exc:
            return self._unknown(schema_id, f"schema id {schema_id} is not a record schema: {exc}")
        codec = self._contracts.codec_by_name(name)
        if codec is None:
            return self._unknown(
                schema_id,
                f"schema id {schema_id} is {writer.get('name')}, "
                "not a message type this reader knows",
            )
        try:
            reader = self._contracts.reader_for_schema(writer, codec)
        except Exception as exc:
            return self._unknown(schema_id, f"schema id {schema_id} does not parse: {exc}")
        with self._lock:
            return self._readers.setdefault(schema_id, reader)

    def _unknown(self, schema_id: int, reason: str) -> typing.NoReturn:
        # Remembered, so a stream of bad ids costs one registry call each, not one per message.
        if len(self._unknown_ids) < self._NEGATIVE_CACHE_LIMIT:
            self._unknown_ids[schema_id] = reason
        raise DecodeError(reason)


def _is_client_error(exc: Exception) -> bool:
    """A 4xx from the registry (the request is wrong), as opposed to it being unreachable."""
    status = getattr(exc, "http_status_code", None)
    return isinstance(status, int) and 400 <= status < 500


def make_serde(schema_registry_url: str | None, **registry_options: Any) -> Serde:
    """The registry serde when a registry is configured (SCHEMA_REGISTRY_URL), else
    single-object encoding. `registry_options` go to `SchemaRegistrySerde`."""
    if schema_registry_url:
        return SchemaRegistrySerde(schema_registry_url, **registry_options)
    return SingleObjectSerde()
