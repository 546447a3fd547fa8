"""Topic provisioning: creates the topics of ARCHITECTURE.md §4, idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from events.topics import ALL_TOPICS


@dataclass(frozen=True, slots=True)
class TopicReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]


def ensure_topics(
    bootstrap: str,
    partitions: int,
    replication_factor: int = 1,
    topics: tuple[str, ...] = ALL_TOPICS,
    timeout_s: float = 30,
) -> TopicReport:
    """Create missing topics; existing ones are left as they are (never re-partitioned: that
    would move checkouts between partitions and break per-checkout ordering)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    present = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [t for t in topics if t not in present]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [NewTopic(t, partitions, replication_factor) for t in missing],
            operation_timeout=timeout_s,
        )
        for topic, future in futures.items():
            try:
                future.result(timeout_s)
                created.append(topic)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # lost a race: fine
                    raise
    return TopicReport(tuple(created), tuple(t for t in topics if t not in created))
