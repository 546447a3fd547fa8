"""`saga demo`: the engine's main job on the embedded stack, in one process.

Starts the orchestrator and every adapter processor (real adapters: PostgreSQL inventory,
rate-table tax and shipping, Stripe via localstripe), the notifier, the projector and the HTTP
API; sends a handful of checkouts — including a declined card and an out-of-stock item — as a
storefront would (POST /v1/checkouts with an API key), and prints what happened, what the API
answers about each checkout, which emails the inbox received, and the analysts' views.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console
from rich.table import Table

from events import messages as m
from events.envelope import Envelope
from events.serde import Serde, make_serde
from events.topics import CHECKOUT_EVENTS
from infra.bootstrap import ROLES, build_processor, default_services
from infra.embedded.smtp import inbox_at
from infra.settings import Settings
from infra.topics import ensure_topics
from infra.workers.threads import on_threads

TERMINAL = (m.CheckoutCompleted, m.CheckoutFailed, m.CheckoutCancelled, m.CheckoutNeedsAttention)


@dataclass(frozen=True)
class Scenario:
    label: str
    items: tuple[m.LineItem, ...]
    card: str  # a Stripe test token, or a test card number the "storefront" tokenizes
    country: str = "US"


def tokenize(settings: Settings, card: str) -> str:
    """What Stripe.js does in the customer's browser: card number -> PaymentMethod id."""
    if card.startswith("pm_"):
        return card
    import stripe

    assert settings.stripe_api_key  # the embedded stack generates one
    client = stripe.StripeClient(
        settings.stripe_api_key, base_addresses={"api": settings.stripe_api_base or ""}
    )
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    return str(pm.id)


def scenarios(n: int) -> list[Scenario]:
    # SKUs from adapters/inventory/seed_stock.json
    good = Scenario(
        "happy path",
        (m.LineItem("SKU-TSHIRT-BLK-M", 2, 1999), m.LineItem("SKU-MUG-LOGO", 1, 1250)),
        "pm_card_visa",
    )
    special = [
        Scenario("card declined", (m.LineItem("SKU-MUG-LOGO", 1, 1250),), "4000000000000341"),
        Scenario("out of stock", (m.LineItem("SKU-LIMITED-POSTER", 5, 4999),), "pm_card_visa"),
    ]
    return [good] * max(1, n - len(special)) + special[: max(0, n - 1)]


@contextlib.contextmanager
def engine(settings: Settings, services: dict[str, Any] | None = None) -> Iterator[None]:
    """Every role's processor on its own thread; stopped on the way out."""
    services = services if services is not None else default_services(settings)
    # The notifier needs somewhere to send mail: the embedded inbox, or SMTP_URL.
    roles = [
        r
        for r in ROLES
        if r in ("orchestrator", "fulfilment")
        or r in services
        or (r == "notifier" and settings.smtp_url)
    ]
    from infra.workers.projector import build_projector

    processors = [build_processor(r, settings, services=services) for r in roles]
    with on_threads(*processors, build_projector(settings)):
        yield


@contextlib.contextmanager
def api_server(settings: Settings) -> Iterator[tuple[str, str]]:
    """The HTTP API on a free loopback port, and a fresh storefront API key for it."""
    import threading

    import uvicorn

    from api.app import create_app
    from api.keys import create_api_key
    from infra.api_wiring import build_api_deps

    assert settings.database_url
    deps = build_api_deps(settings)  # creates the api_keys table
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        key = create_api_key(conn, "demo-shop", f"demo-{uuid.uuid4().hex[:6]}")
    server = uvicorn.Server(
        uvicorn.Config(create_app(deps), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(15)


def start(api: httpx.Client, settings: Settings, scenario: Scenario, email: str) -> str:
    """What a storefront does: POST /v1/checkouts with an Idempotency-Key; 202 -> the id."""
    body = {
        "customer": {"id": "cus-demo", "email": email},
        "currency": "USD",
        "items": [
            {"sku": i.sku, "quantity": i.quantity, "unit_amount": i.unit_amount}
            for i in scenario.items
        ],
        "shipping_address": {
            "line1": "1 Market St",
            "city": "San Francisco",
            "state": "CA",
            "postal_code": "94105",
            "country": scenario.country,
        },
        "payment": {"provider": "stripe", "payment_method": tokenize(settings, scenario.card)},
    }
    response = api.post("/v1/checkouts", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/checkouts: {response.status_code} {response.text}")
    return str(response.json()["checkout_id"])


def wait_for_outcomes(
    settings: Settings, serde: Serde, checkout_ids: set[str], timeout_s: float
) -> dict[str, list[Envelope[Any]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"demo-{uuid.uuid4()}",
            "isolation.level": settings.kafka_isolation_level,
            "enable.auto.commit": False,
        }
    )
    meta = consumer.list_topics(CHECKOUT_EVENTS, timeout=10).topics[CHECKOUT_EVENTS]
    consumer.assign([TopicPartition(CHECKOUT_EVENTS, p, 0) for p in meta.partitions])
    history: dict[str, dict[str, Envelope[Any]]] = {c: {} for c in checkout_ids}
    done: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while done != checkout_ids and time.monotonic() < deadline:
            for record in consumer.consume(500, 0.2):
                key = (record.key() or b"").decode()
                if record.error() or key not in history:
                    continue
                envelope = serde.decode(record.value() or b"", CHECKOUT_EVENTS)
                history[key].setdefault(envelope.message_id, envelope)  # dedup (decision 0006)
                if isinstance(envelope.message, TERMINAL):
                    done.add(key)
    finally:
        consumer.close()
    return {c: list(h.values()) for c, h in history.items()}


def run_demo(settings: Settings, n: int, console: Console, timeout_s: float = 120) -> bool:
    assert settings.kafka_bootstrap_servers
    report = ensure_topics(
        settings.kafka_bootstrap_servers, settings.partitions, settings.replication_factor
    )
    console.print(f"topics: {len(report.created)} created, {len(report.existing)} present")
    serde = make_serde(settings.schema_registry_url)
    plan = scenarios(n)
    # The shop stocks its SKUs the way an operator does (`saga stock load`); workers never do.
    from adapters.inventory.seed import seed_stock
    from infra.adapters_wiring import stock_store

    seed_stock(stock_store(settings), actor="demo", reason="demo shop")
    with engine(settings), api_server(settings) as (base_url, key):
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as api:
            started = time.monotonic()
            # One address per run: the inbox may hold mail of earlier runs.
            buyer = f"buyer+{uuid.uuid4().hex[:8]}@example.com"
            ids = {start(api, settings, s, buyer): s for s in plan}
            console.print(f"POST /v1/checkouts x{len(ids)} at {base_url}: all 202 Accepted")
            outcomes = wait_for_outcomes(settings, serde, set(ids), timeout_s)
            elapsed = time.monotonic() - started
            views = wait_for_views(api, outcomes, timeout_s=30)
        emails = wait_for_emails(settings, buyer, expected_emails(outcomes), timeout_s=30)
    table = Table(title=f"{len(ids)} checkouts in {elapsed:.1f}s through the real broker")
    for column in ("checkout", "scenario", "outcome", "total", "events", "GET status", "detail"):
        table.add_column(column)
    all_finished = True
    for checkout_id, scenario in ids.items():
        events = [e.message for e in outcomes[checkout_id]]
        final = next((e for e in reversed(events) if isinstance(e, TERMINAL)), None)
        all_finished &= final is not None
        outcome, total, detail = describe(final)
        api_status = views.get(checkout_id, {}).get("status", "?")
        all_finished &= api_status == outcome
        table.add_row(
            checkout_id, scenario.label, outcome, total, str(len(events)), api_status, detail[:60]
        )
    console.print(table)
    print_emails(console, settings, emails)
    print_analyst_views(console, settings)
    return all_finished


def wait_for_views(
    api: httpx.Client, outcomes: dict[str, list[Envelope[Any]]], timeout_s: float
) -> dict[str, dict[str, Any]]:
    """GET /v1/checkouts/{id} until the projection shows each saga's final status."""
    final = {
        c: describe(
            next((e.message for e in reversed(h) if isinstance(e.message, TERMINAL)), None)
        )[0]
        for c, h in outcomes.items()
    }
    views: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for checkout_id in final:
            views[checkout_id] = api.get(f"/v1/checkouts/{checkout_id}").json()
        if all(views[c].get("status") == status for c, status in final.items()):
            break
        time.sleep(0.2)
    return views


def print_analyst_views(console: Console, settings: Settings) -> None:
    """What an analyst sees in PostgreSQL right after the demo (docs/projections.md)."""
    assert settings.database_url
    queries = {
        "daily_revenue": "SELECT day, currency, gross, refunded, net, order_count"
        " FROM projections.daily_revenue ORDER BY day DESC, currency LIMIT 5",
        "checkout_funnel": "SELECT * FROM projections.checkout_funnel ORDER BY 1 DESC LIMIT 8",
        "step_latency": "SELECT * FROM projections.step_latency ORDER BY 1",
    }
    with psycopg.connect(settings.database_url) as conn:
        for title, sql in queries.items():
            cursor = conn.execute(sql)
            table = Table(title=f"analysts: {title}")
            for column in cursor.description or []:
                table.add_column(column.name)
            for row in cursor.fetchall():
                table.add_row(*("" if v is None else str(v) for v in row))
            console.print(table)


# Terminal event -> the email the notifier sends for it.
_EMAIL_KIND = {
    m.CheckoutCompleted: "order_confirmation",
    m.CheckoutFailed: "checkout_failed",
    m.CheckoutCancelled: "checkout_cancelled",
}


def expected_emails(outcomes: dict[str, list[Envelope[Any]]]) -> Counter[str]:
    expected: Counter[str] = Counter()
    for events in outcomes.values():
        for e in events:
            kind = _EMAIL_KIND.get(type(e.message))
            if kind is not None:
                expected[kind] += 1
    return expected


def wait_for_emails(
    settings: Settings, to: str, expected: Counter[str], timeout_s: float
) -> Counter[str] | None:
    """Emails per kind the embedded inbox got for `to`, once it has every expected one or the
    deadline passed; None when mail goes to an outside server we cannot read."""
    inbox = inbox_at(settings.smtp_url)
    if inbox is None:
        return None
    deadline = time.monotonic() + timeout_s
    while True:
        got = Counter(e.kind for e in inbox.messages() if e.to == to)
        if all(got[k] >= n for k, n in expected.items()) or time.monotonic() >= deadline:
            return got
        time.sleep(0.1)


def print_emails(console: Console, settings: Settings, emails: Counter[str] | None) -> None:
    if not settings.smtp_url:
        console.print("emails: none sent (no SMTP_URL and no embedded inbox)")
    elif emails is None:
        console.print(f"emails: sent through {settings.smtp_url} (not an inbox we can read)")
    else:
        table = Table(title=f"demo inbox {settings.smtp_url}")
        table.add_column("email kind")
        table.add_column("received")
        for kind, count in sorted(emails.items()):
            table.add_row(kind, str(count))
        if not emails:
            table.add_row("-", "0")
        console.print(table)


def describe(final: Any) -> tuple[str, str, str]:
    if isinstance(final, m.CheckoutCompleted):
        major, minor = divmod(final.total, 100)  # display only; USD has two decimals
        return "COMPLETED", f"{major}.{minor:02d} {final.currency}", f"order {final.order_id}"
    if isinstance(final, m.CheckoutFailed):
        return "FAILED", "-", f"{final.step}: {final.reason}"
    if isinstance(final, m.CheckoutCancelled):
        return "CANCELLED", "-", final.reason
    if isinstance(final, m.CheckoutNeedsAttention):
        return "NEEDS_ATTENTION", "-", final.reason
    return "UNFINISHED", "-", "no terminal event before the deadline"
