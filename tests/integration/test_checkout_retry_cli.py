"""`saga checkouts list` and `saga checkout retry` against a running engine and its projection.

A declined checkout cannot give its stock back (the inventory database refuses every release):
the saga parks in NEEDS_ATTENTION. The operator finds it in the list with the reason, retries
while the cause is still there (the saga really tries: it parks again, and the CLI says so),
fixes the cause, retries again: the stock is released and the checkout ends FAILED for the
reason it was failing. Both acts are in audit_log and in the saga's own history
(CheckoutResumed, who, why)."""

from __future__ import annotations

import threading
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
from events.topics import CHECKOUT_COMMANDS
from infra.bootstrap import build_processor
from infra.cli import app
from infra.embedded.stack import RunningStack
from infra.inspect import read_history
from infra.topics import ensure_topics
from projections.projector import Projector, ProjectorConfig
from tests.integration.kafka_helpers import produce
from tests.integration.scripted_adapters import DECLINED_METHOD, ScriptedWorld
from tests.integration.test_nothing_vanishes import start
from tests.integration.workers import running

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


@pytest.fixture
def engine(
    stack: RunningStack, migrated_database_url: str
) -> Iterator[tuple[ScriptedWorld, dict[str, str]]]:
    settings = stack.settings
    assert settings.kafka_bootstrap_servers
    ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    world = ScriptedWorld(releases_broken=True)
    suffix = uuid.uuid4().hex[:6]
    processors = [
        build_processor(role, settings, services=world.services(), instance_id=suffix)
        for role in ("orchestrator", "inventory", "tax", "shipping", "payment", "notification")
    ]
    projector = Projector(
        ProjectorConfig(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            database_url=migrated_database_url,
            group=f"projector-retry-{suffix}",
            poll_timeout_s=0.05,
            session_timeout_ms=settings.session_timeout_ms,
            isolation_level=settings.kafka_isolation_level,
        ),
        SERDE,
    )
    thread = threading.Thread(target=projector.run, name="projector", daemon=True)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": migrated_database_url,
        "KAFKA_ISOLATION_LEVEL": settings.kafka_isolation_level,
    }
    with running(*processors):
        thread.start()
        try:
            yield world, env
        finally:
            projector.stop()
            thread.join(30)


def saga(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def projected_status(env: dict[str, str], checkout_id: str) -> str | None:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT status FROM projections.checkouts WHERE checkout_id = %s", (checkout_id,)
        ).fetchone()
    return None if row is None else str(row[0])


def wait_for_status(env: dict[str, str], checkout_id: str, status: str) -> None:
    deadline = time.monotonic() + 90
    while (now := projected_status(env, checkout_id)) != status:
        assert time.monotonic() < deadline, f"{checkout_id} is {now}, never {status}"
        time.sleep(0.1)


def test_an_operator_finds_a_parked_checkout_and_resumes_it_once_fixed(
    stack: RunningStack, engine: tuple[ScriptedWorld, dict[str, str]]
) -> None:
    world, env = engine
    checkout_id = f"co-park-{uuid.uuid4().hex[:10]}"
    assert stack.settings.kafka_bootstrap_servers
    envelope = Envelope.new(
        start(checkout_id, payment_method=DECLINED_METHOD), occurred_at=0, producer="shop"
    )
    produce(stack.settings.kafka_bootstrap_servers, CHECKOUT_COMMANDS, SERDE, [envelope])
    wait_for_status(env, checkout_id, "NEEDS_ATTENTION")
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT failure_reason FROM projections.checkouts WHERE checkout_id = %s",
            (checkout_id,),
        ).fetchone()
    # Why it was being rolled back (the decline; on a slow machine the reservation may lapse
    # first): a resumed saga must end FAILED for that same reason.
    assert row is not None and row[0] in ("card_declined", "reservation expired before capture")
    original_failure = row[0]

    listed = saga(env, "checkouts", "list", "--status", "needs_attention", "--limit", "500")
    assert listed.exit_code == 0, listed.output
    assert checkout_id in listed.output and "release_inventory" in listed.output

    # Retried while the database is still broken: the saga tries, and parks again.
    still = saga(env, "checkout", "retry", checkout_id, "--reason", "try once", "--actor", "ops")
    assert still.exit_code == 1, still.output
    assert "parked again" in still.output and "read-only" in still.output
    assert world.released[checkout_id] == 0

    # Fixed, retried: the stock comes back and the checkout ends FAILED for the decline.
    world.releases_broken = False
    fixed = saga(
        env, "checkout", "retry", checkout_id, "--reason", "db writable again", "--actor", "ops"
    )
    assert fixed.exit_code == 0, fixed.output
    assert "is now FAILED" in fixed.output
    assert world.released[checkout_id] == 1

    history = [e.message for e in read_history(env["KAFKA_BOOTSTRAP_SERVERS"], SERDE, checkout_id)]
    resumed = [e for e in history if isinstance(e, m.CheckoutResumed)]
    assert [(r.requested_by, r.reason) for r in resumed] == [
        ("ops", "try once"),
        ("ops", "db writable again"),
    ]
    assert isinstance(history[-1], m.CheckoutFailed)
    assert history[-1].reason == original_failure
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        audit = conn.execute(
            "SELECT actor, after->>'reason' FROM audit_log"
            " WHERE action = 'checkout.retry' AND object = %s ORDER BY id",
            (checkout_id,),
        ).fetchall()
    assert audit == [("ops", "try once"), ("ops", "db writable again")]

    # Not parked any more: refused at once, nothing sent.
    again = saga(env, "checkout", "retry", checkout_id, "--reason", "x")
    assert again.exit_code == 1 and "is FAILED, not parked" in again.output


def test_list_and_retry_mistakes_are_one_line(
    engine: tuple[ScriptedWorld, dict[str, str]],
) -> None:
    _, env = engine
    bogus = saga(env, "checkouts", "list", "--status", "stuck")
    assert bogus.exit_code == 2 and "unknown status STUCK" in bogus.output
    when = saga(env, "checkouts", "list", "--since", "yesterday-ish")
    assert when.exit_code == 2 and "is not a time" in when.output
    unknown = saga(env, "checkout", "retry", "co-nobody", "--reason", "x")
    assert unknown.exit_code == 1 and "unknown checkout co-nobody" in unknown.output
