"""The retention contract of every topic (ARCHITECTURE.md §4)."""

from __future__ import annotations

from events.topics import ALL_TOPICS, FOREVER, WORK_RETENTION_MS, keeps_forever, topic_config


def test_the_record_and_every_dlq_never_delete_and_work_topics_keep_a_week() -> None:
    forever = {t for t in ALL_TOPICS if keeps_forever(t)}
    assert {"checkout.events", "orders.events"} <= forever
    assert all(t in forever for t in ALL_TOPICS if t.endswith(".dlq"))
    for topic in ALL_TOPICS:
        config = topic_config(topic)
        assert config["cleanup.policy"] == "delete"  # compaction would drop history
        if topic in forever:
            assert config["retention.ms"] == FOREVER and config["retention.bytes"] == FOREVER
        else:
            assert config["retention.ms"] == WORK_RETENTION_MS
    assert keeps_forever("checkout.commands") is False
