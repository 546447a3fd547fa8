"""The operator console in headless Chromium (Debian's package, driven by Playwright; never a
downloaded browser) against the real API (uvicorn on a loopback port) on the embedded stack with
the engine running.

An operator opens the URL `saga console-url` prints, then: finds a declined checkout by id and
sees its timeline with the compensation lane (inventory released); re-drives a dead letter (a
malformed record on checkout.commands); retries a parked saga once its cause is fixed. Each act is
judged in its source of truth: audit_log (actor = the token's subject), the topic the record went
back to (with provenance), and checkout.events (CheckoutResumed). Screenshots go to
docs/console/."""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from typer.testing import CliRunner

from api.app import create_app
from events import messages as m
from events.envelope import Envelope
from events.serde import make_serde
from events.topics import CHECKOUT_COMMANDS
from infra.api_wiring import build_api_deps
from infra.bootstrap import build_processor
from infra.cli import app as saga_cli
from infra.embedded.process import free_port
from infra.embedded.stack import RunningStack
from infra.inspect import read_history
from infra.topics import ensure_topics
from projections.projector import Projector, ProjectorConfig
from tests.e2e.storefront import own_database, poll
from tests.integration.kafka_helpers import produce, read_topic
from tests.integration.scripted_adapters import DECLINED_METHOD, ScriptedWorld
from tests.integration.test_nothing_vanishes import start
from tests.integration.workers import running

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
SERDE = make_serde(None)


@dataclasses.dataclass
class Console:
    base: str
    database_url: str
    bootstrap: str
    world: ScriptedWorld
    env: dict[str, str]


def _serve(application: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    poll(lambda: server.started, bool, timeout_s=30)
    return server, thread


@pytest.fixture(scope="module")
def console(stack: RunningStack) -> Iterator[Console]:
    with own_database(stack, "console") as database:
        settings = dataclasses.replace(stack.settings, database_url=database)
        assert settings.kafka_bootstrap_servers and settings.jwt_secret
        ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
        deps = build_api_deps(settings)  # brings the schema to head
        world = ScriptedWorld()
        suffix = uuid.uuid4().hex[:6]
        processors = [
            build_processor(role, settings, services=world.services(), instance_id=suffix)
            for role in ("orchestrator", "inventory", "tax", "shipping", "payment")
        ]
        projector = Projector(
            ProjectorConfig(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                database_url=database,
                group=f"projector-console-{suffix}",
                poll_timeout_s=0.05,
                session_timeout_ms=settings.session_timeout_ms,
                isolation_level=settings.kafka_isolation_level,
            ),
            SERDE,
        )
        projector_thread = threading.Thread(target=projector.run, name="projector", daemon=True)
        port = free_port()
        env = {
            "JWT_SECRET": settings.jwt_secret,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
        }
        with running(*processors):
            projector_thread.start()
            server, thread = _serve(create_app(deps), port)
            try:
                yield Console(
                    f"http://127.0.0.1:{port}",
                    database,
                    settings.kafka_bootstrap_servers,
                    world,
                    env,
                )
            finally:
                server.should_exit = True
                thread.join(30)
                projector.stop()
                projector_thread.join(30)


def _status(database_url: str, checkout_id: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status FROM projections.checkouts WHERE checkout_id = %s", (checkout_id,)
        ).fetchone()
    return None if row is None else str(row[0])


def _audit(database_url: str, action: str, obj: str) -> list[tuple[str, Any]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT actor, after FROM audit_log WHERE action = %s AND object = %s",
            (action, obj),
        ).fetchall()
    return [(str(a), b) for a, b in rows]


def _declined(c: Console, checkout_id: str) -> None:
    envelope = Envelope.new(
        start(checkout_id, payment_method=DECLINED_METHOD),
        occurred_at=int(time.time() * 1000),
        producer="shop",
    )
    produce(c.bootstrap, CHECKOUT_COMMANDS, SERDE, [envelope])


def test_an_operator_acts_from_the_console(console: Console) -> None:
    # Fails (never skips) without the browser: the Makefile's `make test` installs it.
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} missing: apt-get install -y chromium"
    from playwright.sync_api import Page, expect, sync_playwright

    c = console
    run = uuid.uuid4().hex[:8]
    # 1. A compensated checkout: declined at payment, its stock released.
    compensated = f"co-comp-{run}"
    _declined(c, compensated)
    poll(lambda: _status(c.database_url, compensated), lambda s: s == "FAILED")
    # 2. A parked one: the release keeps failing (the inventory database refuses it).
    c.world.releases_broken = True
    parked = f"co-park-{run}"
    _declined(c, parked)
    poll(lambda: _status(c.database_url, parked), lambda s: s == "NEEDS_ATTENTION")
    # 3. A dead letter: a record on checkout.commands that is no message at all.
    poison_key = f"co-poison-{run}"
    produce_raw(c.bootstrap, poison_key)

    url = CliRunner().invoke(
        saga_cli, ["console-url", "--sub", "ops-alice", "--ttl", "15m"], env=c.env
    )
    assert url.exit_code == 0, url.output
    console_url = url.output.strip()
    assert console_url.startswith(f"{c.base}/console#token=")

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page: Page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: d.accept("fixed in the e2e test"))
            page.goto(console_url)
            expect(page.locator("#who")).to_have_text("ops-alice (operator)")
            # The token left the address bar, and no request carried it in a URL.
            assert "token" not in page.url
            assert not [u for u in requests if "token=" in u]

            # Find the compensated checkout by id; its timeline shows the compensation lane.
            page.fill("#q", compensated)
            page.click("#search-button")
            expect(page.locator("#timeline-id")).to_have_text(compensated)
            expect(page.locator("#timeline-status")).to_have_text("FAILED")
            lane = page.locator('.lane.compensation[data-step="release_inventory"]')
            expect(lane).to_be_visible()
            expect(lane.locator(".bar.succeeded")).to_have_count(1)
            for step in ("reserve_inventory", "calculate_tax", "quote_shipping"):
                expect(page.locator(f'.lane.forward[data-step="{step}"]')).to_be_visible()
            # Declined (or, on a slow machine, the reservation lapsed first): either way the
            # payment lane is there and the saga compensated.
            expect(page.locator('.lane.forward[data-step="authorize_payment"]')).to_be_visible()
            expect(page.locator("#events tbody tr", has_text="CompensationStarted")).to_have_count(
                1
            )
            page.screenshot(path=str(SHOTS / "timeline.png"), full_page=True)

            # Re-drive the dead letter.
            row = page.locator("#dlq tbody tr", has_text=poison_key)
            _refresh_until(page, row)
            dead_letter_id = row.locator("td.id").inner_text()
            row.locator("button[data-redrive]").click()
            expect(page.locator("#flash")).to_have_text(
                re.compile(f"re-drove {re.escape(dead_letter_id)}")
            )
            # Still malformed, the record is dead-lettered again: a new row; this one is done.
            expect(page.locator(f'button[data-redrive="{dead_letter_id}"]')).to_be_disabled()
            page.locator("#dlq-section").screenshot(path=str(SHOTS / "dlq.png"))

            # Fix the cause, then retry the parked saga.
            c.world.releases_broken = False
            parked_row = page.locator("#parked tbody tr", has_text=parked)
            expect(parked_row).to_have_count(1)
            page.locator("#parked-section").screenshot(path=str(SHOTS / "parked.png"))
            parked_row.locator("button[data-retry]").click()
            expect(page.locator("#flash")).to_have_text(re.compile(f"retry sent for {parked}"))
            expect(page.locator("#lag tbody tr").first).to_be_visible(timeout=60_000)
            expect(
                page.locator("#dlq-counts tbody tr", has_text="checkout.commands.dlq")
            ).to_be_visible()
            page.screenshot(path=str(SHOTS / "status.png"), full_page=True)
        finally:
            browser.close()

    # The sources of truth.
    redriven = _audit(c.database_url, "dlq.redrive", dead_letter_id)
    assert [actor for actor, _ in redriven] == ["ops-alice"]
    assert redriven[0][1]["reason"] == "fixed in the e2e test"

    def redriven_back(records: list[Any]) -> list[Any]:
        return [
            r
            for r in records
            if r.key == poison_key.encode()
            and r.headers.get("redrive.source") == dead_letter_id.encode()
        ]

    back = redriven_back(
        read_topic(
            c.bootstrap, CHECKOUT_COMMANDS, until=lambda rs: bool(redriven_back(rs)), timeout_s=90
        )
    )
    assert [r.headers.get("redrive.by") for r in back] == [b"ops-alice"]
    assert back[0].value == b"\x00not a message"  # the very record, unchanged

    retried = _audit(c.database_url, "checkout.retry", parked)
    assert [actor for actor, _ in retried] == ["ops-alice"]
    poll(lambda: _status(c.database_url, parked), lambda s: s == "FAILED")
    history = read_history(c.bootstrap, SERDE, parked)
    resumed = [e.message for e in history if isinstance(e.message, m.CheckoutResumed)]
    assert resumed and resumed[-1].requested_by == "ops-alice"
    assert c.world.released[parked] == 1


def _refresh_until(page: Any, row: Any, timeout_s: float = 60) -> None:
    """The dead letter reaches the DLQ asynchronously: refresh the page's lists until it shows."""
    deadline = time.monotonic() + timeout_s
    while row.count() == 0:
        assert time.monotonic() < deadline, "the dead letter never showed in the console"
        page.click("#refresh")
        page.wait_for_load_state("networkidle")


def produce_raw(bootstrap: str, key: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(
        CHECKOUT_COMMANDS,
        key=key.encode(),
        value=b"\x00not a message",
        headers=[("message_type", b"StartCheckout")],
    )
    assert producer.flush(15) == 0
