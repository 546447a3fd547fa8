"""Avro serde: every message round-trips through both wire formats, bad bytes always raise
DecodeError, and the published .avsc files match the dataclasses (drift)."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import shutil
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import avro
from events import messages as m
from events.envelope import Envelope
from events.serde import (
    MARKER,
    Contracts,
    DecodeError,
    EncodeError,
    SchemaDriftError,
    SchemaRegistrySerde,
    Serde,
    SingleObjectSerde,
    crc64_fingerprint,
    make_serde,
)

TOPIC = "checkout.events"
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
TEXT = st.text(max_size=40)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """Arbitrary values of a message field type, from its type hint. Built here rather than
    with st.from_type so that ints stay inside Avro's long and new types fail loudly."""
    if tp is str:
        return TEXT
    if tp is bool:
        return st.booleans()
    if tp is int:
        return INT64
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = (a for a in get_args(tp) if a is not type(None))
        return st.none() | strategy_for(inner)
    if origin is tuple:
        return st.lists(strategy_for(get_args(tp)[0]), max_size=4).map(tuple)
    if dataclasses.is_dataclass(tp):
        return dataclass_strategy(tp)
    raise TypeError(f"no strategy for {tp!r}: teach strategy_for about it")


def dataclass_strategy(cls: Any) -> st.SearchStrategy[Any]:
    hints = get_type_hints(cls)
    return st.builds(cls, **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)})


def envelopes(message: st.SearchStrategy[Any]) -> st.SearchStrategy[Envelope[Any]]:
    return st.builds(
        Envelope,
        message=message,
        message_id=TEXT,
        correlation_id=TEXT,
        causation_id=st.none() | TEXT,
        occurred_at=INT64,
        producer=TEXT,
        schema_version=INT32,
    )


MESSAGE_CLASSES = avro.message_classes()
ALL_ENVELOPES = envelopes(st.one_of([dataclass_strategy(c) for c in MESSAGE_CLASSES]))


@pytest.fixture(scope="module")
def registry() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": "mock://test-serde"})


@pytest.fixture(scope="module", params=["single-object", "registry"])
def serde(request: pytest.FixtureRequest, registry: SchemaRegistryClient) -> Serde:
    if request.param == "registry":
        return SchemaRegistrySerde(client=registry)
    return SingleObjectSerde()


def sample() -> Envelope[m.PaymentAuthorized]:
    return Envelope.new(
        m.PaymentAuthorized("c-1", 1, "stripe", "pi_1", 6500, "USD"),
        occurred_at=1_700_000_000_000,
        producer="payment-adapter",
        causation_id="00000000-0000-0000-0000-000000000001",
        message_id="00000000-0000-0000-0000-000000000002",
    )


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda c: c.__name__)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_type_round_trips(cls: type, serde: Serde, data: st.DataObject) -> None:
    envelope = data.draw(envelopes(dataclass_strategy(cls)))
    decoded = serde.decode(serde.encode(envelope, TOPIC), TOPIC)
    assert decoded == envelope
    assert type(decoded.message) is cls


def test_round_trip_keeps_python_types(serde: Serde) -> None:
    started = m.CheckoutStarted(
        "c-2", "t", "cus", "a@example.com", "EUR",
        (m.LineItem("sku-1", 2, 1999), m.LineItem("sku-2", 1, 500)),
        m.Address("1 Main St", "Springfield", "IL", "62701", "US"),
        "stripe", "pm_card_visa", 4498, 1_700_000_000_000,
    )  # fmt: skip
    for message in (
        started,
        m.StepStarted("c-2", m.Step.CALCULATE_TAX, 2, 5),
        m.CompensationStarted("c-2", None, "cancelled by customer"),
    ):
        decoded = serde.decode(
            serde.encode(Envelope.new(message, occurred_at=7, producer="p"), TOPIC), TOPIC
        ).message
        assert decoded == message
        for f in dataclasses.fields(message):
            assert type(getattr(decoded, f.name)) is type(getattr(message, f.name)), f.name
    assert isinstance(decoded, m.CompensationStarted)


def test_tick_has_no_checkout(serde: Serde) -> None:
    tick = Envelope.new(m.Tick(partition=3, now=1_700_000_000_123), occurred_at=1, producer="clock")
    decoded = serde.decode(serde.encode(tick, "checkout.commands"), "checkout.commands")
    assert decoded == tick
    assert decoded.checkout_id == "" and decoded.key == ""


# --- wire formats --------------------------------------------------------------------------


def test_single_object_layout_uses_the_published_schema_fingerprint() -> None:
    data = SingleObjectSerde().encode(sample(), TOPIC)
    published = avro.load_schema(avro.SCHEMA_DIR / "PaymentAuthorized.avsc")
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:10] == crc64_fingerprint(published)


def test_crc64_avro_matches_the_spec_test_vector() -> None:
    # From the Avro spec's test data: fingerprint64 of "null" is 7195948357588979594.
    assert crc64_fingerprint("null") == (7195948357588979594).to_bytes(8, "little")


def test_registry_layout_and_topic_record_subjects(registry: SchemaRegistryClient) -> None:
    data = SchemaRegistrySerde(client=registry).encode(sample(), "checkout.replies")
    assert data[0] == 0
    schema_id = int.from_bytes(data[1:5], "big")
    assert json.loads(registry.get_schema(schema_id).schema_str)["name"] == "PaymentAuthorized"
    assert "checkout.replies-checkout.v1.PaymentAuthorized" in registry.get_subjects()


def test_registry_lookup_only_mode_refuses_unregistered_schemas() -> None:
    client = SchemaRegistryClient.new_client({"url": "mock://lookup-only"})
    with pytest.raises(EncodeError, match="registry refused PaymentAuthorized"):
        SchemaRegistrySerde(client=client, auto_register=False).encode(sample(), TOPIC)
    SchemaRegistrySerde(client=client).encode(sample(), TOPIC)  # registered by CI, say
    data = SchemaRegistrySerde(client=client, auto_register=False).encode(sample(), TOPIC)
    assert SchemaRegistrySerde(client=client).decode(data, TOPIC) == sample()


def test_make_serde_picks_the_registry_only_when_configured() -> None:
    assert isinstance(make_serde(None), SingleObjectSerde)
    assert isinstance(make_serde(""), SingleObjectSerde)
    assert isinstance(make_serde("mock://factory"), SchemaRegistrySerde)


def test_formats_do_not_read_each_other(registry: SchemaRegistryClient) -> None:
    single, reg = SingleObjectSerde(), SchemaRegistrySerde(client=registry)
    with pytest.raises(DecodeError, match="not Confluent wire format"):
        reg.decode(single.encode(sample(), TOPIC), TOPIC)
    with pytest.raises(DecodeError, match="bad marker"):
        single.decode(reg.encode(sample(), TOPIC), TOPIC)


# --- undecodable input ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_raise_decode_error(serde: Serde, data: bytes) -> None:
    # Anything but DecodeError (or a hang, caught by pytest-timeout) fails the test.
    with contextlib.suppress(DecodeError):
        serde.decode(data, TOPIC)


@settings(max_examples=300, deadline=None)
@given(cls=st.sampled_from(MESSAGE_CLASSES), body=st.binary(max_size=300), data=st.data())
def test_random_body_after_a_valid_header_raises_decode_error(
    serde: Serde, cls: type, body: bytes, data: st.DataObject
) -> None:
    # A valid header gets past the cheap checks, so this exercises the Avro reader itself.
    valid = serde.encode(data.draw(envelopes(dataclass_strategy(cls))), TOPIC)
    header = valid[:10] if valid[:2] == MARKER else valid[:5]
    try:
        decoded = serde.decode(header + body, TOPIC)
    except DecodeError:
        return
    assert type(decoded.message) is cls  # random bytes may happen to be a valid record


@settings(max_examples=30, deadline=None)
@given(envelope=ALL_ENVELOPES)
def test_truncated_and_padded_data_raise_decode_error(
    serde: Serde, envelope: Envelope[Any]
) -> None:
    data = serde.encode(envelope, TOPIC)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            serde.decode(data[:cut], TOPIC)
    with pytest.raises(DecodeError, match="unexpected bytes after"):
        serde.decode(data + b"\x00", TOPIC)


def test_decode_error_messages_say_what_was_wrong() -> None:
    serde = SingleObjectSerde()
    data = serde.encode(sample(), TOPIC)
    with pytest.raises(DecodeError, match=r"not Avro single-object encoding \(bad marker"):
        serde.decode(b"\x00\x01" + data[2:], TOPIC)
    with pytest.raises(DecodeError, match="unknown writer schema fingerprint 0x0807060504030201"):
        serde.decode(MARKER + bytes(range(1, 9)) + data[10:], TOPIC)
    with pytest.raises(DecodeError, match="truncated record for PaymentAuthorized"):
        serde.decode(data[:-3], TOPIC)
    with pytest.raises(DecodeError, match="truncated single-object header"):
        serde.decode(data[:6], TOPIC)
    with pytest.raises(DecodeError, match="expected bytes, got NoneType"):
        serde.decode(None, TOPIC)  # type: ignore[arg-type]  # a Kafka tombstone


def test_registry_rejects_unknown_ids_and_foreign_schemas(registry: SchemaRegistryClient) -> None:
    serde = SchemaRegistrySerde(client=registry)
    body = serde.encode(sample(), TOPIC)[5:]
    with pytest.raises(DecodeError, match="unknown schema id 999999"):
        serde.decode(b"\x00" + (999999).to_bytes(4, "big") + body, TOPIC)
    with pytest.raises(DecodeError, match="unknown schema id 999999"):  # cached the 2nd time
        serde.decode(b"\x00" + (999999).to_bytes(4, "big") + body, TOPIC)
    from confluent_kafka.schema_registry import Schema

    foreign = {"type": "record", "name": "Other", "namespace": "x", "fields": []}
    foreign_id = registry.register_schema("t-x.Other", Schema(json.dumps(foreign), "AVRO"))
    with pytest.raises(DecodeError, match="not a message type this reader knows"):
        serde.decode(b"\x00" + foreign_id.to_bytes(4, "big"), TOPIC)
    with pytest.raises(DecodeError, match="truncated Confluent header"):
        serde.decode(b"\x00\x00\x01", TOPIC)


def test_a_record_that_lies_about_its_type_is_rejected() -> None:
    envelope = sample()
    serde = SingleObjectSerde()
    data = serde.encode(envelope, TOPIC)
    forged = data.replace(b"PaymentAuthorized", b"PaymentAuthorizeX")
    with pytest.raises(DecodeError, match="says its type is 'PaymentAuthorizeX'"):
        serde.decode(forged, TOPIC)


# --- encoding errors -----------------------------------------------------------------------


def test_encoding_a_value_avro_cannot_hold_raises_encode_error(serde: Serde) -> None:
    too_big = Envelope.new(m.Tick(partition=0, now=2**63), occurred_at=1, producer="p")
    with pytest.raises(EncodeError, match="cannot encode Tick"):
        serde.encode(too_big, TOPIC)


def test_encoding_a_class_outside_the_message_union_raises_encode_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class NotAMessage:
        checkout_id: str

    envelope: Envelope[Any] = Envelope.new(NotAMessage("c"), occurred_at=1, producer="p")  # type: ignore[type-var]
    with pytest.raises(EncodeError, match="not a message type"):
        SingleObjectSerde().encode(envelope, TOPIC)


# --- published schemas ---------------------------------------------------------------------


def test_published_schemas_match_the_dataclasses() -> None:
    """Drift: the .avsc files are the contract; regenerate with `python -m events.avro --write`."""
    assert avro.drift() == []
    assert avro.main(["--check"]) == 0


def test_every_published_schema_parses_and_starts_with_the_envelope() -> None:
    from fastavro import parse_schema

    for name, path in avro.published().items():
        schema = avro.load_schema(path)
        parse_schema(schema)
        assert schema["name"] == name and schema["namespace"] == avro.NAMESPACE
        assert schema["fields"][0]["name"] == "envelope"
        assert schema["fields"][0]["type"]["name"] == "Envelope"


def test_drift_is_detected(tmp_path: Path) -> None:
    shutil.copytree(avro.SCHEMA_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "Tick.avsc").unlink()
    changed = tmp_path / "PaymentVoided.avsc"
    changed.write_text(changed.read_text().replace('"payment_id"', '"payment_ref"'))
    (tmp_path / "Gone.avsc").write_text("{}")
    problems = avro.drift(tmp_path)
    assert any(p.startswith("Tick: no Tick.avsc") for p in problems)
    assert any(p.startswith("PaymentVoided: PaymentVoided.avsc differs") for p in problems)
    assert any(p.startswith("Gone: Gone.avsc has no message class") for p in problems)
    assert avro.main(["--check", "--dir", str(tmp_path)]) == 1


def test_the_serde_refuses_a_dataclass_that_drifted_from_its_file(tmp_path: Path) -> None:
    shutil.copytree(avro.SCHEMA_DIR, tmp_path, dirs_exist_ok=True)
    changed = tmp_path / "PaymentVoided.avsc"
    changed.write_text(changed.read_text().replace('"payment_id"', '"payment_ref"'))
    (tmp_path / "Tick.avsc").unlink()
    serde = SingleObjectSerde(Contracts(schema_dir=tmp_path))
    with pytest.raises(SchemaDriftError, match=r"PaymentVoided differs from PaymentVoided\.avsc"):
        serde.encode(
            Envelope.new(m.PaymentVoided("c", 1, "pi"), occurred_at=1, producer="p"), TOPIC
        )
    with pytest.raises(SchemaDriftError, match=r"no published schema Tick\.avsc"):
        serde.encode(Envelope.new(m.Tick(0, 1), occurred_at=1, producer="p"), TOPIC)
    assert serde.decode(serde.encode(sample(), TOPIC), TOPIC) == sample()  # others still work


def test_schema_mapping_follows_the_type_hints() -> None:
    schema = avro.derive_schema(m.PaymentDeclined)
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["attempt"]["type"] == "long"
    assert fields["retryable"]["type"] == "boolean"
    assert fields["decline_code"] == {
        "name": "decline_code",
        "type": ["null", "string"],
        "default": None,
    }
    envelope = fields["envelope"]["type"]
    occurred = next(f for f in envelope["fields"] if f["name"] == "occurred_at")
    assert occurred["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    step = avro.derive_schema(m.StepStarted)["fields"][2]
    assert step["type"] == {"type": "enum", "name": "Step", "symbols": [s.value for s in m.Step]}
    order = {f["name"]: f["type"] for f in avro.derive_schema(m.OrderPlaced)["fields"]}
    assert order["items"]["items"]["name"] == "LineItem"
    assert order["shipping_address"]["name"] == "Address"
    signal = {f["name"]: f for f in avro.derive_schema(m.RecordPaymentSignal)["fields"]}
    assert signal["reason"]["default"] is None  # a dataclass default becomes an Avro default


def test_defaults_and_unsupported_types() -> None:
    @dataclasses.dataclass(frozen=True)
    class WithDefaults:
        step: m.Step = m.Step.CALCULATE_TAX
        note: str | None = "n/a"
        items: tuple[m.LineItem, ...] = ()
        count: int = 3

    fields = {f["name"]: f for f in avro.derive_schema(WithDefaults)["fields"]}
    assert fields["step"]["default"] == "calculate_tax"
    assert fields["note"] == {"name": "note", "type": ["string", "null"], "default": "n/a"}
    assert fields["items"]["default"] == []
    assert fields["count"]["default"] == 3

    @dataclasses.dataclass(frozen=True)
    class Bad:
        amount: dict[str, int]

    with pytest.raises(avro.UnsupportedTypeError, match=r"Bad.amount: .* has no Avro mapping"):
        avro.derive_schema(Bad)
