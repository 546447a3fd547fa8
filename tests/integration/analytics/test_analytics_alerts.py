"""On the embedded broker: a burst of payment failures in one 5-minute breach window sends
exactly one alert to ops.alerts, however many events and flushes follow, and a restart of the
app does not send it again."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from events import messages as m
from events.envelope import Envelope
from events.serde import Serde
from tests.analytics_stream import T0
from tests.integration.analytics.harness import AnalyticsProcess, produce_in_transaction
from tests.integration.kafka_helpers import read_topic

pytestmark = pytest.mark.integration

PAY = m.Step.AUTHORIZE_PAYMENT


def attempts(run: str, first: int, ok: int, failed: int, at: int) -> list[Envelope[Any]]:
    """Payment attempts of checkouts `first`.., `ok` authorised then `failed` declined."""
    out: list[Envelope[Any]] = []
    for i in range(first, first + ok + failed):
        cid = f"{run}-{i}"
        verdict: Any = (
            m.StepSucceeded(cid, PAY, 1, reference=f"pi_{i}")
            if i < first + ok
            else m.StepAttemptFailed(cid, PAY, 1, "card_declined", False)
        )
        out.append(
            Envelope.new(m.StepStarted(cid, PAY, 1, at + 60_000), occurred_at=at, producer="t")
        )
        out.append(Envelope.new(verdict, occurred_at=at + 500, producer="t"))
    return out


def records_on(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        )
    finally:
        consumer.close()


def test_a_failure_burst_sends_exactly_one_alert(
    analytics: AnalyticsProcess, serde: Serde, unique_id: str
) -> None:
    bootstrap = analytics.settings.kafka_bootstrap_servers or ""
    # 20 authorised and 5 declined in minute 0: 20 % > 5 % over 25 answers (>= 20 samples).
    burst = attempts(unique_id, 0, 20, 5, T0 + 1_000)
    # The burst goes on in minute 3 of the same breach window: still the same alert.
    more = attempts(unique_id, 100, 0, 5, T0 + 3 * 60_000)
    # The next breach window is healthy: no alert for it.
    healthy = attempts(unique_id, 200, 25, 0, T0 + 6 * 60_000)
    analytics.start()
    produce_in_transaction(bootstrap, analytics.source, serde, burst, commit=True)
    analytics.settle(len(burst))
    assert records_on(bootstrap, analytics.alerts) == 1
    produce_in_transaction(bootstrap, analytics.source, serde, more + healthy, commit=True)
    analytics.settle(len(burst) + len(more) + len(healthy))
    assert records_on(bootstrap, analytics.alerts) == 1
    # A restart re-reads nothing it committed, recovers its tables and re-judges every window.
    analytics.kill(signal.SIGTERM)
    analytics.start()
    analytics.wait("ready after the restart", lambda: (analytics.view() or {}).get("ready") is True)
    first = analytics.flushes()
    analytics.wait("two flushes after the restart", lambda: analytics.flushes() >= first + 2)
    assert records_on(bootstrap, analytics.alerts) == 1

    [record] = read_topic(bootstrap, analytics.alerts, until=lambda seen: len(seen) >= 1)
    assert record.key == b"payment_failure_rate_high"
    envelope = serde.decode(record.value, analytics.alerts)
    alert = envelope.message
    assert isinstance(alert, m.OpsAlert)
    assert (alert.alert, alert.dimension, alert.window_start, alert.window_end) == (
        "payment_failure_rate_high",
        "all",
        T0,
        T0 + 300_000,
    )
    # The alert carries the figures of the first flush that saw the breach: the whole burst,
    # or the part of it applied by then once it held the 20 samples the rule needs.
    failed = round(float(alert.value) * alert.samples)
    assert alert.threshold == "0.05"
    assert 20 <= alert.samples <= 25 and 1 <= failed <= 5
    assert alert.value == f"{failed / alert.samples:.4f}"
    assert failed / alert.samples > 0.05
