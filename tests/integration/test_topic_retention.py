"""Retention is part of the contract: the record and the DLQs never delete, work topics keep a
bounded week, and drift on an existing topic is reported (an error where records would go)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from events.topics import ALL_TOPICS, CHECKOUT_EVENTS, ORDERS_EVENTS, WORK_RETENTION_MS
from infra.settings import Settings
from infra.topics import ensure_topics

pytestmark = pytest.mark.integration


def _configs(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(30)
    return {k: v.value for k, v in entries.items()}


def test_engine_topics_carry_the_contract_retention(settings: Settings) -> None:
    assert settings.kafka_bootstrap_servers
    report = ensure_topics(settings.kafka_bootstrap_servers, settings.partitions)
    assert not report.drift, [str(d) for d in report.drift]
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for topic in (CHECKOUT_EVENTS, ORDERS_EVENTS, f"{CHECKOUT_EVENTS}.dlq"):
        config = _configs(admin, topic)
        assert config["retention.ms"] == "-1" and config["retention.bytes"] == "-1", topic
        assert config["cleanup.policy"] == "delete", topic
    for topic in ("checkout.commands", "checkout.replies", "adapter.payment.requests"):
        assert _configs(admin, topic)["retention.ms"] == WORK_RETENTION_MS, topic
    assert set(ALL_TOPICS) <= set(admin.list_topics(timeout=10).topics)


def test_a_seven_day_default_on_a_kept_topic_is_an_error_and_fix_repairs_it(
    settings: Settings,
) -> None:
    bootstrap = settings.kafka_bootstrap_servers
    assert bootstrap
    kept = f"drift-{uuid.uuid4().hex[:8]}.dlq"
    work = f"drift-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Created by hand, as a cluster's defaults would: a week, on a topic that must keep all.
    for f in admin.create_topics(
        [NewTopic(kept, 1, 1, config={"retention.ms": "604800000"}), NewTopic(work, 1, 1)]
    ).values():
        f.result(30)

    report = ensure_topics(bootstrap, 1, topics=(kept, work))
    assert report.has_errors
    errors = {(d.topic, d.key) for d in report.drift if d.error}
    assert (kept, "retention.ms") in errors and (kept, "retention.bytes") not in errors
    # A work topic on the broker default (a week) matches the contract: nothing reported.
    assert not [d for d in report.drift if d.topic == work]

    fixed = ensure_topics(bootstrap, 1, topics=(kept, work), fix_drift=True)
    assert {d.key for d in fixed.fixed} >= {"retention.ms"} and not fixed.drift
    assert _configs(admin, kept)["retention.ms"] == "-1"
    assert not ensure_topics(bootstrap, 1, topics=(kept, work)).drift
