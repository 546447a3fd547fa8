"""The embedded broker's cluster id is something Kafka's storage tool accepts."""

from __future__ import annotations

import base64
import re

import pytest

from infra.embedded import kafka


def test_cluster_ids_are_kafka_uuids_never_read_as_an_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Force the draws that broke formatting: a uuid whose text starts with '-' comes first.
    dashed = base64.urlsafe_b64decode("-" + "A" * 21 + "==")
    draws = iter([dashed, bytes(range(16))])

    class FakeUuid:
        def __init__(self, raw: bytes) -> None:
            self.bytes = raw

    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: FakeUuid(next(draws)))
    cluster_id = kafka._cluster_id()
    assert not cluster_id.startswith("-")
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
    assert base64.urlsafe_b64decode(cluster_id + "==") == bytes(range(16))
