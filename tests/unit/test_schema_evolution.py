"""Schema evolution: a v2 of PaymentAuthorized with an added optional field, built in a
temporary schema directory, against the published v1 (what the real code ships)."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from events import avro
from events import messages as m
from events.envelope import Envelope
from events.serde import Contracts, DecodeError, SchemaRegistrySerde, SingleObjectSerde

TOPIC = "checkout.replies"


def _v2_payment_authorized() -> Any:
    """PaymentAuthorized as a later release would declare it: same name, one new optional
    field with a default (the one kind of change that is compatible both ways)."""
    hints = get_type_hints(m.PaymentAuthorized)
    fields: list[Any] = [(f.name, hints[f.name]) for f in dataclasses.fields(m.PaymentAuthorized)]
    fields.append(("risk_score", int | None, dataclasses.field(default=None)))
    return dataclasses.make_dataclass("PaymentAuthorized", fields, frozen=True, slots=True)


PaymentAuthorizedV2 = _v2_payment_authorized()
V2_CLASSES = [PaymentAuthorizedV2 if c is m.PaymentAuthorized else c
              for c in avro.message_classes()]  # fmt: skip


@pytest.fixture
def v2_dir(tmp_path: Path) -> Path:
    """The published v1 files, then the generator run with the v2 class: it must archive v1
    as history/PaymentAuthorized.v1.avsc and publish v2 (the change is compatible)."""
    shutil.copytree(avro.SCHEMA_DIR, tmp_path, dirs_exist_ok=True)
    shutil.rmtree(tmp_path / avro.HISTORY_DIR, ignore_errors=True)
    done = avro.write_schemas(tmp_path, V2_CLASSES)
    assert "archived history/PaymentAuthorized.v1.avsc" in done
    assert "updated PaymentAuthorized.avsc" in done
    return tmp_path


def _v1() -> Envelope[Any]:
    return Envelope.new(
        m.PaymentAuthorized("c-9", 1, "stripe", "pi_9", 1234, "USD"),
        occurred_at=1_700_000_000_000,
        producer="payment-adapter@v1",
        message_id="00000000-0000-0000-0000-0000000000a1",
    )


def _v2(risk_score: int | None = 42) -> Envelope[Any]:
    return Envelope.new(
        PaymentAuthorizedV2("c-9", 1, "stripe", "pi_9", 1234, "USD", risk_score),
        occurred_at=1_700_000_000_000,
        producer="payment-adapter@v2",
        message_id="00000000-0000-0000-0000-0000000000a2",
    )


def test_the_v2_schema_only_adds_an_optional_field(v2_dir: Path) -> None:
    v1 = avro.load_schema(v2_dir / "history" / "PaymentAuthorized.v1.avsc")
    v2 = avro.load_schema(v2_dir / "PaymentAuthorized.avsc")
    assert v1 == avro.load_schema(avro.SCHEMA_DIR / "PaymentAuthorized.avsc")
    assert v2["fields"][:-1] == v1["fields"]
    assert v2["fields"][-1] == {"name": "risk_score", "type": ["null", "long"], "default": None}


def test_single_object_v1_data_decodes_with_the_v2_reader(v2_dir: Path) -> None:
    written = SingleObjectSerde().encode(_v1(), TOPIC)
    decoded = SingleObjectSerde(Contracts(V2_CLASSES, v2_dir)).decode(written, TOPIC)
    assert type(decoded.message) is PaymentAuthorizedV2
    assert decoded.message.risk_score is None  # the field's default
    assert decoded.message.amount == 1234 and decoded.producer == "payment-adapter@v1"


def test_single_object_v2_data_is_unknown_to_a_v1_reader(v2_dir: Path) -> None:
    """The documented limit of single-object encoding: the bytes name the writer schema only by
    fingerprint, and a v1 reader has never seen v2. (The registry solves it: see below.)"""
    written = SingleObjectSerde(Contracts(V2_CLASSES, v2_dir)).encode(_v2(), TOPIC)
    with pytest.raises(DecodeError, match=r"unknown writer schema fingerprint 0x[0-9a-f]{16}"):
        SingleObjectSerde().decode(written, TOPIC)
    # ...while the v2 reader reads both.
    v2_reader = SingleObjectSerde(Contracts(V2_CLASSES, v2_dir))
    assert v2_reader.decode(written, TOPIC) == _v2()


def test_registry_resolves_both_directions(v2_dir: Path) -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://evolution"})
    v1_serde = SchemaRegistrySerde(client=registry)
    v2_serde = SchemaRegistrySerde(client=registry, contracts=Contracts(V2_CLASSES, v2_dir))

    # New writer, old reader: the reader fetches v2 by id and resolves it to its own v1.
    from_v2 = v1_serde.decode(v2_serde.encode(_v2(risk_score=7), TOPIC), TOPIC)
    assert type(from_v2.message) is m.PaymentAuthorized
    assert from_v2.message == m.PaymentAuthorized("c-9", 1, "stripe", "pi_9", 1234, "USD")
    assert from_v2.producer == "payment-adapter@v2"

    # Old writer, new reader: the added field takes its default.
    from_v1 = v2_serde.decode(v1_serde.encode(_v1(), TOPIC), TOPIC)
    assert type(from_v1.message) is PaymentAuthorizedV2
    assert from_v1.message.risk_score is None

    subject = f"{TOPIC}-checkout.v1.PaymentAuthorized"
    assert len(registry.get_versions(subject)) == 2


# --- compatibility checker -----------------------------------------------------------------


def _history_pairs(schema_dir: Path) -> list[tuple[str, Any, Any]]:
    current = avro.published(schema_dir)
    return [(f"{path.name} -> {name}.avsc", avro.load_schema(path),
             avro.load_schema(current[name]))
            for name, _version, path in avro.history(schema_dir) if name in current]  # fmt: skip


def test_every_published_schema_is_compatible_with_its_history(v2_dir: Path) -> None:
    """Over the real schemas/avro (AuthorizePayment has a v1) and the evolved directory."""
    pairs = _history_pairs(avro.SCHEMA_DIR) + _history_pairs(v2_dir)
    assert pairs, "the evolved directory must contribute at least one pair"
    for label, old, new in pairs:
        assert avro.check_compatible(old, new) == [], label


def test_every_current_schema_is_compatible_with_itself() -> None:
    for name, path in avro.published().items():
        schema = avro.load_schema(path)
        assert avro.check_compatible(schema, schema) == [], name


def _changed(field: str, change: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    old = avro.derive_schema(m.StepStarted)
    new = copy.deepcopy(old)
    new["fields"] = [change(f) if f["name"] == field else f for f in new["fields"]]
    new["fields"] = [f for f in new["fields"] if f is not None]
    return old, new


@pytest.mark.parametrize(
    ("case", "field", "change", "expected"),
    [
        ("required field added", "reason", lambda f: f,
         "new reader, old data: StepStarted.added: missing from the writer's data"),
        ("field removed", "deadline_at", lambda f: None,
         "old reader, new data: StepStarted.deadline_at: missing from the writer's data"),
        ("type changed", "attempt", lambda f: {**f, "type": "string"},
         "new reader, old data: StepStarted.attempt: writer type long cannot be read as string"),
        ("enum symbol added", "step",
         lambda f: {**f, "type": {**f["type"], "symbols": [*f["type"]["symbols"], "gift_wrap"]}},
         "old reader, new data: StepStarted.step: reader enum Step lacks symbols ['gift_wrap']"),
    ],
)  # fmt: skip
def test_incompatible_changes_are_reported(case: str, field: str, change: Any,
                                           expected: str) -> None:  # fmt: skip
    old, new = _changed(field, change)
    if case == "required field added":
        new["fields"].append({"name": "added", "type": "string"})
    problems = avro.check_compatible(old, new)
    assert any(p.startswith(expected) for p in problems), problems


def test_compatible_changes_pass() -> None:
    old = avro.derive_schema(m.StepStarted)
    documented, _ = _changed("attempt", lambda f: {**f, "doc": "1-based"})
    optional = copy.deepcopy(old)
    optional["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    with_default = copy.deepcopy(old)
    with_default["fields"].append({"name": "priority", "type": "int", "default": 0})
    for new in (documented, optional, with_default):
        assert avro.check_compatible(old, new) == []


def test_the_generator_refuses_an_incompatible_change(tmp_path: Path) -> None:
    # A copy of the published schemas, history included (it is no longer empty): the refusal
    # must leave it exactly as it was, and the forced write must archive the next version.
    shutil.copytree(avro.SCHEMA_DIR, tmp_path, dirs_exist_ok=True)
    history_before = _tree(tmp_path / avro.HISTORY_DIR)
    next_version = 1 + max(
        (v for name, v, _ in avro.history(tmp_path) if name == "PaymentVoided"), default=0
    )
    hints = get_type_hints(m.PaymentVoided)
    fields: list[Any] = [(f.name, hints[f.name]) for f in dataclasses.fields(m.PaymentVoided)]
    fields.append(("voided_by", str))  # required: old data cannot supply it
    v2 = dataclasses.make_dataclass("PaymentVoided", fields, frozen=True, slots=True)
    classes = [v2 if c is m.PaymentVoided else c for c in avro.message_classes()]
    before = (tmp_path / "PaymentVoided.avsc").read_text()
    with pytest.raises(avro.IncompatibleSchemaError, match="PaymentVoided: incompatible change"):
        avro.write_schemas(tmp_path, classes)
    assert (tmp_path / "PaymentVoided.avsc").read_text() == before
    assert _tree(tmp_path / avro.HISTORY_DIR) == history_before
    avro.write_schemas(tmp_path, classes, allow_incompatible=True)  # an explicit decision
    assert avro.drift(tmp_path, classes) == []
    archived = tmp_path / avro.HISTORY_DIR / f"PaymentVoided.v{next_version}.avsc"
    assert archived.read_text() == before
    assert set(_tree(tmp_path / avro.HISTORY_DIR)) == {*history_before, archived.name}


def _tree(directory: Path) -> dict[str, str]:
    """File name -> content of a (possibly missing) directory."""
    if not directory.exists():
        return {}
    return {p.name: p.read_text() for p in sorted(directory.iterdir())}


# --- AuthorizePayment v1 -> v2 (tenant_id, country appended): the real published change -----


def _authorize_payment_v1() -> Any:
    """AuthorizePayment as released before the routing fields: the dataclass without them."""
    hints = get_type_hints(m.AuthorizePayment)
    fields: list[Any] = [
        (f.name, hints[f.name])
        for f in dataclasses.fields(m.AuthorizePayment)
        if f.name not in ("tenant_id", "country")
    ]
    return dataclasses.make_dataclass("AuthorizePayment", fields, frozen=True, slots=True)


@pytest.fixture
def v1_authorize_dir(tmp_path: Path) -> tuple[Path, list[Any]]:
    """What a v1 producer shipped: the archived AuthorizePayment.v1.avsc as its current file."""
    shutil.copytree(avro.SCHEMA_DIR, tmp_path, dirs_exist_ok=True)
    shutil.rmtree(tmp_path / avro.HISTORY_DIR)
    shutil.copyfile(
        avro.SCHEMA_DIR / avro.HISTORY_DIR / "AuthorizePayment.v1.avsc",
        tmp_path / "AuthorizePayment.avsc",
    )
    v1_cls = _authorize_payment_v1()
    classes = [v1_cls if c is m.AuthorizePayment else c for c in avro.message_classes()]
    return tmp_path, classes


def test_the_published_authorize_payment_only_appended_defaulted_fields() -> None:
    v1 = avro.load_schema(avro.SCHEMA_DIR / avro.HISTORY_DIR / "AuthorizePayment.v1.avsc")
    current = avro.load_schema(avro.SCHEMA_DIR / "AuthorizePayment.avsc")
    assert current["fields"][:-2] == v1["fields"]
    assert current["fields"][-2:] == [
        {"name": "tenant_id", "type": "string", "default": ""},
        {"name": "country", "type": "string", "default": ""},
    ]
    assert avro.check_compatible(v1, current) == []


def test_old_authorize_payment_bytes_decode_into_the_new_class_with_defaults(
    v1_authorize_dir: tuple[Path, list[Any]],
) -> None:
    schema_dir, classes = v1_authorize_dir
    v1_cls = next(c for c in classes if c.__name__ == "AuthorizePayment")
    old = Envelope.new(
        v1_cls("c-7", 2, "c-7:authorize_payment:2", "stripe", "pm_card_visa", "cu-1", 4321, "EUR"),
        occurred_at=1_700_000_000_000,
        producer="orchestrator@v1",
        message_id="00000000-0000-0000-0000-0000000000b1",
    )
    written = SingleObjectSerde(Contracts(classes, schema_dir)).encode(old, "adapter.payment")
    # Today's reader (default contracts: current files + history) knows the v1 fingerprint.
    decoded = SingleObjectSerde().decode(written, "adapter.payment")
    assert type(decoded.message) is m.AuthorizePayment
    assert decoded.message == m.AuthorizePayment(
        "c-7", 2, "c-7:authorize_payment:2", "stripe", "pm_card_visa", "cu-1", 4321, "EUR"
    )
    assert (decoded.message.tenant_id, decoded.message.country) == ("", "")
    assert decoded.producer == "orchestrator@v1"


# --- PaymentActionRequired v1 -> v2 (kind, client_secret appended; issue 13 item 3) -----------


def test_old_payment_action_required_bytes_decode_with_no_kind_and_no_secret(
    tmp_path: Path,
) -> None:
    hints = get_type_hints(m.PaymentActionRequired)
    fields: list[Any] = [
        (f.name, hints[f.name])
        for f in dataclasses.fields(m.PaymentActionRequired)
        if f.name not in ("kind", "client_secret")
    ]
    v1_cls = dataclasses.make_dataclass("PaymentActionRequired", fields, frozen=True, slots=True)
    shutil.copytree(avro.SCHEMA_DIR, tmp_path, dirs_exist_ok=True)
    shutil.rmtree(tmp_path / avro.HISTORY_DIR)
    shutil.copyfile(
        avro.SCHEMA_DIR / avro.HISTORY_DIR / "PaymentActionRequired.v1.avsc",
        tmp_path / "PaymentActionRequired.avsc",
    )
    classes = [v1_cls if c is m.PaymentActionRequired else c for c in avro.message_classes()]
    old = Envelope.new(
        v1_cls("c-8", 1, "stripe", "pi_8", None),
        occurred_at=1_700_000_000_000,
        producer="payment-adapter@v1",
        message_id="00000000-0000-0000-0000-0000000000c1",
    )
    written = SingleObjectSerde(Contracts(classes, tmp_path)).encode(old, TOPIC)
    decoded = SingleObjectSerde().decode(written, TOPIC)
    assert decoded.message == m.PaymentActionRequired("c-8", 1, "stripe", "pi_8", None)
    assert (decoded.message.kind, decoded.message.client_secret) == (None, None)
    v1 = avro.load_schema(avro.SCHEMA_DIR / avro.HISTORY_DIR / "PaymentActionRequired.v1.avsc")
    current = avro.load_schema(avro.SCHEMA_DIR / "PaymentActionRequired.avsc")
    assert current["fields"][:-2] == v1["fields"]
    assert avro.check_compatible(v1, current) == []
