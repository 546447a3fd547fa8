"""`saga dlq list|show|redrive` on the real broker and PostgreSQL, with a running orchestrator.

A cancel that arrived before its checkout existed is dead-lettered (unknown checkout). The
operator finds it in the list with its reason, reads it, and once the checkout exists re-drives
it: the very record goes back onto checkout.commands with provenance headers, the saga applies
it (the checkout ends CANCELLED), the re-drive is in audit_log, and a second re-drive is refused
unless asked for. Mistakes are one line, never a traceback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_EVENTS, dlq
from infra.bootstrap import build_processor
from infra.cli import app
from infra.embedded.stack import RunningStack
from infra.settings import Settings
from infra.topics import ensure_topics
from tests.integration.kafka_helpers import Seen, produce, read_topic
from tests.integration.scripted_adapters import ScriptedWorld
from tests.integration.test_nothing_vanishes import start
from tests.integration.workers import running

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


@pytest.fixture
def engine(
    stack: RunningStack, migrated_database_url: str
) -> Iterator[tuple[Settings, ScriptedWorld, dict[str, str]]]:
    settings = stack.settings
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    # Authorizations wait at the gate, so the checkout is provably in flight when the cancel
    # comes back.
    world = ScriptedWorld(gate_authorizations=True)
    instance = uuid.uuid4().hex[:6]
    processors = [
        build_processor(role, settings, services=world.services(), instance_id=instance)
        for role in ("orchestrator", "inventory", "tax", "shipping", "payment", "notification")
    ]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": migrated_database_url,
        "KAFKA_ISOLATION_LEVEL": settings.kafka_isolation_level,
    }
    with running(*processors):
        try:
            yield settings, world, env
        finally:
            world.authorization_gate.set()


def saga(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def send(settings: Settings, message: Any) -> Envelope[Any]:
    assert settings.kafka_bootstrap_servers
    envelope = Envelope.new(message, occurred_at=int(time.time() * 1000), producer="storefront")
    produce(settings.kafka_bootstrap_servers, CHECKOUT_COMMANDS, SERDE, [envelope])
    return envelope


def records(settings: Settings, topic: str, key: str, until: Any) -> list[Seen]:
    assert settings.kafka_bootstrap_servers

    def mine(found: list[Seen]) -> list[Seen]:
        return [r for r in found if r.key == key.encode()]

    return mine(
        read_topic(
            settings.kafka_bootstrap_servers, topic, timeout_s=90, until=lambda f: until(mine(f))
        )
    )


def test_an_operator_redrives_a_dead_letter_once_its_cause_is_fixed(
    engine: tuple[Settings, ScriptedWorld, dict[str, str]],
) -> None:
    settings, world, env = engine
    checkout_id = f"co-dlq-{uuid.uuid4().hex[:10]}"

    # 1. A cancel for a checkout that does not exist (yet) is dead-lettered with its reason.
    cancel = send(settings, m.CancelCheckout(checkout_id, "customer changed their mind"))
    [dead] = records(settings, dlq(CHECKOUT_COMMANDS), checkout_id, lambda r: len(r) >= 1)
    dead_id = f"{dlq(CHECKOUT_COMMANDS)}:{dead.partition}:{dead.offset}"

    # One checkout's dead letters (the whole DLQ of a shared test broker makes a table too wide
    # for whole ids in an 80-column runner).
    listed = saga(env, "dlq", "list", "--topic", CHECKOUT_COMMANDS, "--key", checkout_id)
    assert listed.exit_code == 0, listed.output
    assert dead_id in listed.output and checkout_id in listed.output
    assert "CancelCheckout" in listed.output  # the reason, folded in a table, is in `show`

    shown = saga(env, "dlq", "show", dead_id)
    assert shown.exit_code == 0, shown.output
    assert f"CancelCheckout for unknown checkout {checkout_id}" in shown.output
    assert cancel.message_id in shown.output  # the decoded envelope
    assert "customer changed their mind" in shown.output

    # 2. The cause goes away: the checkout is started, and is in flight (authorization gated).
    send(settings, start(checkout_id))
    assert world.authorization_requested.wait(60)

    # 3. Re-drive: the same record, back on its topic and partition, with provenance.
    redriven = saga(
        env, "dlq", "redrive", "--id", dead_id, "--reason", "checkout exists now", "--actor", "ops"
    )
    assert redriven.exit_code == 0, redriven.output
    assert "1 re-driven, 0 refused; audited as ops" in redriven.output
    back = records(
        settings,
        CHECKOUT_COMMANDS,
        checkout_id,
        lambda r: any("redrive.source" in x.headers for x in r),
    )
    [again] = [r for r in back if "redrive.source" in r.headers]
    assert again.partition == dead.partition and again.value == dead.value
    assert again.headers["redrive.source"] == dead_id.encode()
    assert again.headers["redrive.by"] == b"ops"
    assert b"unknown checkout" in again.headers["redrive.error"]
    assert not any(name.startswith("dlq.") for name in again.headers)

    # 4. The saga applies it: compensation starts, the gate opens, the checkout ends CANCELLED.
    def cancelled(found: list[Seen]) -> bool:
        types = {type(SERDE.decode(r.value, CHECKOUT_EVENTS).message) for r in found}
        return m.CheckoutCancelled in types

    started = records(
        settings,
        CHECKOUT_EVENTS,
        checkout_id,
        lambda found: any(
            isinstance(SERDE.decode(r.value, CHECKOUT_EVENTS).message, m.CompensationStarted)
            for r in found
        ),
    )
    [compensation] = [
        e
        for e in (SERDE.decode(r.value, CHECKOUT_EVENTS) for r in started)
        if isinstance(e.message, m.CompensationStarted)
    ]
    assert compensation.causation_id == cancel.message_id
    world.authorization_gate.set()
    records(settings, CHECKOUT_EVENTS, checkout_id, cancelled)

    # 5. Audited once; a second re-drive is refused, --all finds nothing new of this one.
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        audit = conn.execute(
            "SELECT actor, after->>'reason' FROM audit_log WHERE action = 'dlq.redrive'"
            " AND object = %s",
            (dead_id,),
        ).fetchall()
    assert audit == [("ops", "checkout exists now")]
    twice = saga(env, "dlq", "redrive", "--id", dead_id, "--reason", "again")
    assert twice.exit_code == 1
    assert "was re-driven by ops" in twice.output and "--again" in twice.output
    pending = saga(env, "dlq", "list", "--pending", "--key", checkout_id)
    assert pending.exit_code == 0 and "no dead letters waiting" in pending.output, pending.output
    everything = saga(env, "dlq", "list", "--key", checkout_id)
    assert dead_id in everything.output and "ops" in everything.output  # re-driven, by whom


def test_operator_mistakes_are_one_line(
    engine: tuple[Settings, ScriptedWorld, dict[str, str]],
) -> None:
    _, _, env = engine
    malformed = saga(env, "dlq", "show", "not-an-id")
    assert malformed.exit_code == 2 and "is not a dead letter id" in malformed.output
    unknown = saga(env, "dlq", "show", f"{dlq(CHECKOUT_COMMANDS)}:0:999999999")
    assert unknown.exit_code == 1 and "no dead letter" in unknown.output
    no_topic = saga(env, "dlq", "list", "--topic", "no.such.topic")
    assert no_topic.exit_code == 1 and "no dead-letter topic no.such.topic.dlq" in no_topic.output
    neither = saga(env, "dlq", "redrive", "--reason", "x")
    assert neither.exit_code == 2 and "--id" in neither.output
    no_kafka = saga({"DATABASE_URL": env["DATABASE_URL"]}, "dlq", "list")
    assert no_kafka.exit_code == 2 and "KAFKA_BOOTSTRAP_SERVERS is not set" in no_kafka.output
