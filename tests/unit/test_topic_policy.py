"""The retention contract of every topic (ARCHITECTURE.md §4)."""

from __future__ import annotations

import pytest

from events.topics import (
    ALL_TOPICS,
    CHECKOUT_SNAPSHOTS,
    CHECKOUT_SNAPSHOTS_FINAL,
    FOREVER,
    WORK_RETENTION_MS,
    keeps_forever,
    topic_config,
)


def test_the_record_and_every_dlq_never_delete_and_work_topics_keep_a_week() -> None:
    forever = {t for t in ALL_TOPICS if keeps_forever(t)}
    assert {"checkout.events", "orders.events"} <= forever
    assert all(t in forever for t in ALL_TOPICS if t.endswith(".dlq"))
    for topic in ALL_TOPICS:
        if topic in (CHECKOUT_SNAPSHOTS, CHECKOUT_SNAPSHOTS_FINAL):
            continue  # not a record: see the test below
        config = topic_config(topic)
        assert config["cleanup.policy"] == "delete"  # compaction would drop history
        if topic in forever:
            assert config["retention.ms"] == FOREVER and config["retention.bytes"] == FOREVER
        else:
            assert config["retention.ms"] == WORK_RETENTION_MS
    assert keeps_forever("checkout.commands") is False


@pytest.mark.parametrize("topic", [CHECKOUT_SNAPSHOTS, CHECKOUT_SNAPSHOTS_FINAL])
def test_snapshots_are_compacted_with_segments_the_cleaner_can_reach(topic: str) -> None:
    config = topic_config(topic)
    assert topic in ALL_TOPICS and not keeps_forever(topic)
    assert config["cleanup.policy"] == "compact"
    # The active segment is never compacted: it must roll in minutes, not the default week.
    assert int(config["segment.ms"]) <= 15 * 60 * 1000
    assert float(config["min.cleanable.dirty.ratio"]) <= 0.2
    assert topic + ".dlq" not in ALL_TOPICS
