"""`saga demo`: the engine's main job on the embedded stack, in one process.

Starts the orchestrator and every adapter processor (real adapters: PostgreSQL inventory,
rate-table tax and shipping, Stripe via localstripe) and the notifier, sends a handful of
checkouts — including a declined card and an out-of-stock item — through the real broker, and
prints what happened and which emails the (embedded) inbox received.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table

from events import messages as m
from events.envelope import Envelope
from events.serde import Serde, make_serde
from events.topics import CHECKOUT_COMMANDS, CHECKOUT_EVENTS
from infra.bootstrap import ROLES, build_processor, default_services
from infra.embedded.smtp import inbox_at
from infra.processor import producer_config
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
        if r == "orchestrator" or r in services or (r == "notifier" and settings.smtp_url)
    ]
    with on_threads(*(build_processor(r, settings, services=services) for r in roles)):
        yield


def start(
    settings: Settings,
    serde: Serde,
    scenario: Scenario,
    producer: Producer,
    email: str = "buyer@example.com",
) -> str:
    checkout_id = f"co-{uuid.uuid4().hex[:12]}"
    address = m.Address("1 Market St", "San Francisco", "CA", "94105", scenario.country)
    command = m.StartCheckout(
        checkout_id,
        "demo-shop",
        "cus-demo",
        email,
        "USD",
        scenario.items,
        address,
        "stripe",
        tokenize(settings, scenario.card),
    )
    envelope = Envelope.new(command, occurred_at=int(time.time() * 1000), producer="demo")
    producer.produce(
        CHECKOUT_COMMANDS, key=checkout_id.encode(), value=serde.encode(envelope, CHECKOUT_COMMANDS)
    )
    return checkout_id


def wait_for_outcomes(
    settings: Settings, serde: Serde, checkout_ids: set[str], timeout_s: float
) -> dict[str, list[Envelope[Any]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"demo-{uuid.uuid4()}",
            "isolation.level": "read_committed",
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
    with engine(settings):
        producer = Producer(producer_config(settings.kafka_bootstrap_servers))
        started = time.monotonic()
        # One address per run: the inbox may hold mail of earlier runs.
        buyer = f"buyer+{uuid.uuid4().hex[:8]}@example.com"
        ids = {start(settings, serde, s, producer, buyer): s for s in plan}
        producer.flush(30)
        console.print(f"sent {len(ids)} StartCheckout commands to {CHECKOUT_COMMANDS}")
        outcomes = wait_for_outcomes(settings, serde, set(ids), timeout_s)
        elapsed = time.monotonic() - started
        emails = wait_for_emails(settings, buyer, expected_emails(outcomes), timeout_s=30)
    table = Table(title=f"{len(ids)} checkouts in {elapsed:.1f}s through the real broker")
    for column in ("checkout", "scenario", "outcome", "total", "events", "detail"):
        table.add_column(column)
    all_finished = True
    for checkout_id, scenario in ids.items():
        events = [e.message for e in outcomes[checkout_id]]
        final = next((e for e in reversed(events) if isinstance(e, TERMINAL)), None)
        all_finished &= final is not None
        outcome, total, detail = describe(final)
        table.add_row(checkout_id, scenario.label, outcome, total, str(len(events)), detail[:70])
    console.print(table)
    print_emails(console, settings, emails)
    return all_finished


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
