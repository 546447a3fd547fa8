"""Topic provisioning: creates the topics of ARCHITECTURE.md §4 with their retention, and checks
existing topics against it (drift is reported, never silently accepted)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from events.topics import ALL_TOPICS, keeps_forever, topic_config


@dataclass(frozen=True, slots=True)
class Drift:
    topic: str
    key: str
    expected: str
    actual: str | None
    # An error when the broker would delete records that are kept forever (the event log, DLQs).
    error: bool

    def __str__(self) -> str:
        return f"{self.topic}: {self.key}={self.actual} (expected {self.expected})"


@dataclass(frozen=True, slots=True)
class TopicReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]
    drift: tuple[Drift, ...] = ()
    fixed: tuple[Drift, ...] = ()
    unchecked: tuple[str, ...] = field(default=())  # the broker would not describe their configs

    @property
    def has_errors(self) -> bool:
        return any(d.error for d in self.drift)


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def ensure_topics(
    bootstrap: str,
    partitions: int,
    replication_factor: int = 1,
    topics: tuple[str, ...] = ALL_TOPICS,
    timeout_s: float = 30,
    *,
    min_insync_replicas: int = 1,
    fix_drift: bool = False,
) -> TopicReport:
    """Create missing topics with their configs; check existing ones. Partition counts are never
    changed: that would move checkouts between partitions and break per-checkout ordering."""
    admin = _admin(bootstrap)
    present = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [t for t in topics if t not in present]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    t,
                    partitions,
                    replication_factor,
                    config=_expected(t, replication_factor, min_insync_replicas),
                )
                for t in missing
            ],
            operation_timeout=timeout_s,
        )
        for topic, future in futures.items():
            try:
                future.result(timeout_s)
                created.append(topic)
            except KafkaException as e:
                if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # lost a race: fine
                    raise
    _wait_for_leaders(admin, topics, timeout_s)
    existing = tuple(t for t in topics if t not in created)
    drift, unchecked = check_topics(admin, existing, replication_factor, min_insync_replicas)
    fixed: tuple[Drift, ...] = ()
    if fix_drift and drift:
        fixed = _fix(admin, drift, timeout_s)
        drift = tuple(d for d in drift if d not in fixed)
    return TopicReport(tuple(created), existing, drift, fixed, unchecked)


def _wait_for_leaders(admin: AdminClient, topics: tuple[str, ...], timeout_s: float) -> None:
    """Until every partition of `topics` has a leader: a topic just created is not yet readable,
    and whoever runs next (a worker, `saga inspect`) would meet NOT_LEADER_FOR_PARTITION."""
    deadline = time.monotonic() + timeout_s
    waiting = set(topics)
    while waiting:
        metadata = admin.list_topics(timeout=timeout_s).topics
        waiting = {
            t
            for t in waiting
            if t not in metadata
            or metadata[t].error is not None
            or not metadata[t].partitions
            or any(p.leader < 0 or p.error is not None for p in metadata[t].partitions.values())
        }
        if not waiting:
            waiting = _offsets_not_served(admin, metadata, set(topics), timeout_s)
        if waiting and time.monotonic() > deadline:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, f"no leader yet for {sorted(waiting)[:5]}")
            )
        if waiting:
            time.sleep(0.05)  # polling the broker's metadata, with the deadline above


def _offsets_not_served(
    admin: AdminClient, metadata: dict, topics: set[str], timeout_s: float
) -> set[str]:
    # The metadata names a leader a moment before that broker serves the partition.
    request = {
        TopicPartition(t, p): OffsetSpec.latest() for t in topics for p in metadata[t].partitions
    }
    failing: set[str] = set()
    for tp, future in admin.list_offsets(request, request_timeout=timeout_s).items():
        try:
            future.result(timeout_s)
        except KafkaException:
            failing.add(tp.topic)
    return failing


def _expected(topic: str, replication_factor: int, min_insync_replicas: int) -> dict[str, str]:
    config = topic_config(topic)
    if replication_factor > 1:
        config["min.insync.replicas"] = str(min(min_insync_replicas, replication_factor))
    return config


def check_topics(
    admin: AdminClient,
    topics: tuple[str, ...],
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
    timeout_s: float = 30,
) -> tuple[tuple[Drift, ...], tuple[str, ...]]:
    if not topics:
        return (), ()
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    drift: list[Drift] = []
    unchecked: list[str] = []
    for resource, future in admin.describe_configs(resources).items():
        topic = resource.name
        try:
            actual = {k: v.value for k, v in future.result(timeout_s).items()}
        except KafkaException:
            unchecked.append(topic)
            continue
        for key, expected in _expected(topic, replication_factor, min_insync_replicas).items():
            if actual.get(key) != expected:
                error = keeps_forever(topic) and key in {
                    "retention.ms",
                    "retention.bytes",
                    "cleanup.policy",
                }
                drift.append(Drift(topic, key, expected, actual.get(key), error))
    return tuple(drift), tuple(unchecked)


def _fix(admin: AdminClient, drift: tuple[Drift, ...], timeout_s: float) -> tuple[Drift, ...]:
    by_topic: dict[str, list[Drift]] = {}
    for d in drift:
        by_topic.setdefault(d.topic, []).append(d)
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(d.key, d.expected, incremental_operation=AlterConfigOpType.SET)
                for d in items
            ],
        )
        for topic, items in by_topic.items()
    ]
    fixed: list[Drift] = []
    for resource, future in admin.incremental_alter_configs(resources).items():
        future.result(timeout_s)  # a refusal is the operator's to see, not to swallow
        fixed.extend(by_topic[resource.name])
    return tuple(fixed)
