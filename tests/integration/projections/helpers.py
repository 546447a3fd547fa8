"""Shared helpers for projection tests: recorded streams on unique topics, catching up with a
deadline (no sleeps), and table snapshots to compare."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from confluent_kafka import Producer
from psycopg import sql

from events.envelope import Envelope
from events.serde import Serde
from events.topics import CHECKOUT_EVENTS
from infra.embedded.stack import reader_isolation
from infra.processor import producer_config
from infra.settings import load_settings
from projections.apply import Topics
from projections.projector import Projector, ProjectorConfig
from tests.integration.kafka_helpers import fresh_topics

READ_MODELS: dict[str, str] = {
    "checkouts": "checkout_id",
    "checkout_steps": "checkout_id, step",
    "orders": "order_id",
    "order_lines": "order_id, line_no",
    "payments": "payment_id",
    "refunds": "refund_id",
    "daily_revenue": "day, currency",
    "checkout_funnel": "day, stage_order, stage, failure_step, failure_reason",
    "step_latency": "step",
    "projection_parked_events": "message_id",
}


def new_topics(bootstrap: str) -> Topics:
    checkout_events, orders_events = fresh_topics(
        bootstrap, "checkout.events", "orders.events", partitions=3
    )
    return Topics(checkout_events, orders_events)


def produce_stream(
    bootstrap: str,
    serde: Serde,
    topics: Topics,
    stream: Sequence[tuple[str, Envelope[Any]]],
    *,
    chunk: int = 7,
    aborted_every: int = 3,
) -> None:
    """Produce as the orchestrator does: in transactions. Every `aborted_every`-th chunk is
    first sent in a transaction that is flushed and then aborted — the embedded broker shows
    those records to read_committed consumers (ADR 0006) — and then again, committed."""
    producer = Producer(
        producer_config(bootstrap, **{"transactional.id": f"proj-test-{uuid.uuid4().hex[:8]}"})
    )
    producer.init_transactions(30)
    chunks = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    for n, part in enumerate(chunks):
        tries = (False, True) if n % aborted_every == 1 else (True,)
        for commit in tries:
            producer.begin_transaction()
            for topic, env in part:
                target = (
                    topics.checkout_events if topic == CHECKOUT_EVENTS else topics.orders_events
                )
                producer.produce(target, key=env.key.encode(), value=serde.encode(env, topic))
            if commit:
                producer.commit_transaction(30)
            else:
                producer.flush(30)
                producer.abort_transaction(30)
    assert producer.flush(30) == 0


def projector_config(
    bootstrap: str,
    database_url: str,
    topics: Topics,
    *,
    schema: str = "projections",
    group: bool = False,
    **kw: Any,
) -> ProjectorConfig:
    """Manual assignment unless `group`: a consumer group join costs seconds on the broker."""
    if not group:
        kw.setdefault("partitions", all_partitions(topics))
    kw.setdefault("isolation_level", reader_isolation(load_settings()))
    return ProjectorConfig(
        bootstrap_servers=bootstrap,
        database_url=database_url,
        schema=schema,
        group=f"proj-test-{uuid.uuid4().hex[:8]}",
        topics=topics,
        poll_timeout_s=0.05,
        **kw,
    )


def all_partitions(topics: Topics) -> list[tuple[str, int]]:
    return [(t, p) for t in (topics.checkout_events, topics.orders_events) for p in range(3)]


def catch_up(projector: Projector, timeout_s: float = 30) -> None:
    """Step until every assigned partition is applied to its end offset, or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        projector.step()
        positions = projector.positions
        if len(positions) == 6 and not any(projector.lag().values()):
            return
    raise AssertionError(f"projector did not catch up: lag {projector.lag()}")


def snapshot(database_url: str, schema: str = "projections") -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with psycopg.connect(database_url) as conn:
        for table, order in READ_MODELS.items():
            columns = "*"
            if table == "projection_parked_events":
                columns = "message_id, checkout_id, event_type, reason"
            query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                sql.SQL(columns), sql.Identifier(schema, table), sql.SQL(order)
            )
            out[table] = conn.execute(query).fetchall()
        out["applied"] = conn.execute(
            sql.SQL("SELECT message_id, checkout_id, seq FROM {} ORDER BY message_id").format(
                sql.Identifier(schema, "projection_applied_events")
            )
        ).fetchall()
    return out
