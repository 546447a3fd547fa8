"""The projector on the real broker and PostgreSQL: exactly-once apply, restarts, duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from events.serde import make_serde
from infra.settings import Settings
from projections.metrics import ProjectorMetrics
from projections.projector import Projector
from projections.queries import get_checkout, get_order
from tests.integration.projections.helpers import (
    catch_up,
    new_topics,
    produce_stream,
    projector_config,
    snapshot,
)
from tests.integration.projections.streams import mixed_streams

pytestmark = pytest.mark.integration
SERDE = make_serde(None)
RUNNER = Path(__file__).with_name("run_projector.py")


def _bootstrap(settings: Settings) -> str:
    assert settings.kafka_bootstrap_servers
    return settings.kafka_bootstrap_servers


def test_applies_a_recorded_stream_and_a_redelivery_changes_nothing(
    settings: Settings, database_url: str, unique_id: str
) -> None:
    bootstrap = _bootstrap(settings)
    topics = new_topics(bootstrap)
    stream = mixed_streams(f"co-{unique_id}", 10)
    produce_stream(bootstrap, SERDE, topics, stream)
    registry = CollectorRegistry()
    projector = Projector(  # this one joins a consumer group, as the worker does
        projector_config(bootstrap, database_url, topics, group=True),
        SERDE,
        ProjectorMetrics(registry),
    )
    projector.start()
    try:
        catch_up(projector)
    finally:
        projector.close()
    first = snapshot(database_url)
    assert len(first["checkouts"]) == 10
    assert len(first["applied"]) == len(stream)  # aborted copies were deduplicated
    duplicates = registry.get_sample_value(
        "projection_events_total", {"projection": "checkouts", "outcome": "duplicates"}
    )
    if projector_config(bootstrap, database_url, topics).isolation_level == "read_committed":
        assert not duplicates  # the broker hid the aborted copies
    else:
        assert duplicates and duplicates > 0  # they arrived and were deduplicated by id

    with psycopg.connect(database_url) as conn:
        view = get_checkout(conn, f"co-{unique_id}-0")
        assert view is not None and view.status == "COMPLETED" and view.order_id
        assert [s.status for s in view.steps][:3] == ["succeeded"] * 3
        refunded = get_checkout(conn, f"co-{unique_id}-3")
        assert refunded is not None and refunded.order_id
        order = get_order(conn, refunded.order_id)
        assert order is not None and order.refunded == 500 and order.refundable == order.total - 500
        # Everything again, as a consumer group reset or a lost offset commit would deliver it.
        conn.execute("UPDATE projections.projection_offsets SET next_offset = 0")
        conn.commit()

    again = Projector(projector_config(bootstrap, database_url, topics), SERDE)
    again.start()
    try:
        catch_up(again)
    finally:
        again.close()
    assert again.applied == 0
    assert snapshot(database_url) == first


def test_killed_mid_batch_and_restarted_gives_identical_tables(
    settings: Settings, database_url: str, unique_id: str
) -> None:
    bootstrap = _bootstrap(settings)
    topics = new_topics(bootstrap)
    stream = mixed_streams(f"co-{unique_id}", 15)
    produce_stream(bootstrap, SERDE, topics, stream)

    # Reference: the same stream projected without interruption, into another schema.
    reference = Projector(
        projector_config(bootstrap, database_url, topics, schema="reference"), SERDE
    )
    reference.start()
    try:
        catch_up(reference)
    finally:
        reference.close()

    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen(
        [
            sys.executable,
            str(RUNNER),
            bootstrap,
            database_url,
            topics.checkout_events,
            topics.orders_events,
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        applied = 0
        while time.monotonic() < deadline and applied < 20:
            applied = _applied_count(database_url)
        assert 0 < applied < len(stream), "kill it while it is still applying"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)

    restarted = Projector(projector_config(bootstrap, database_url, topics), SERDE)
    restarted.start()
    try:
        catch_up(restarted)
    finally:
        restarted.close()
    assert snapshot(database_url) == snapshot(database_url, "reference")


def _applied_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM projections.projection_applied_events"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0
