"""The transport's two guards around faust's fetch and seek (ADR 0018, issue 17), on faust's
own classes with only the parent methods they call replaced."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from analytics.transport import ReadCommittedConsumer, ReadCommittedConsumerThread

SOURCE = TP("checkout.events", 1)
CHANGELOG = TP("analytics-minutely-changelog", 1)


def test_an_empty_set_of_active_partitions_fetches_nothing() -> None:
    thread = ReadCommittedConsumerThread.__new__(ReadCommittedConsumerThread)
    # aiokafka would read an empty set as every partition; the consumer here has no fetcher,
    # so reaching it would raise.
    assert asyncio.run(thread._fetch_records(object(), set(), timeout=1.0)) == {}


def test_the_fetch_gets_a_copy_that_faust_cannot_empty_under_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[set[TP]] = []

    async def parent(self: Any, consumer: Any, partitions: set[TP], **_: Any) -> dict[TP, Any]:
        seen.append(partitions)
        live.clear()  # recovery pausing the changelogs while the fetch waits
        return {}

    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "_fetch_records", parent)
    live = {CHANGELOG}
    thread = ReadCommittedConsumerThread.__new__(ReadCommittedConsumerThread)
    asyncio.run(thread._fetch_records(object(), live, timeout=1.0))
    assert seen == [{CHANGELOG}] and seen[0] is not live


class _Recorded:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, seek_fails: bool = False) -> None:
        self.calls: list[tuple[str, set[TP]]] = []

        def resume(consumer: Any, tps: Any) -> None:
            self.calls.append(("resume", set(tps)))

        async def seek(consumer: Any) -> None:
            self.calls.append(("seek", set()))
            if seek_fails:
                raise TimeoutError

        monkeypatch.setattr(faust_aiokafka.Consumer, "resume_partitions", resume)
        monkeypatch.setattr(faust_aiokafka.Consumer, "perform_seek", seek)
        monkeypatch.setattr(faust_aiokafka.Consumer, "assignment", lambda c: {SOURCE, CHANGELOG})
        monkeypatch.setattr(
            faust_aiokafka.Consumer, "_is_changelog_tp", lambda c, tp: tp == CHANGELOG
        )
        self.consumer = ReadCommittedConsumer.__new__(ReadCommittedConsumer)


def test_a_source_partition_is_resumed_only_after_the_seek(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded = _Recorded(monkeypatch)
    recorded.consumer.resume_partitions({SOURCE, CHANGELOG})
    assert recorded.calls == [("resume", {CHANGELOG})]
    asyncio.run(recorded.consumer.perform_seek())
    assert recorded.calls[1:] == [("seek", set()), ("resume", {SOURCE})]


def test_a_failed_seek_still_resumes_the_source_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded = _Recorded(monkeypatch, seek_fails=True)
    recorded.consumer.resume_partitions({SOURCE})
    with pytest.raises(TimeoutError):
        asyncio.run(recorded.consumer.perform_seek())
    assert recorded.calls[-1] == ("resume", {SOURCE})
    with pytest.raises(TimeoutError):
        asyncio.run(recorded.consumer.perform_seek())  # nothing is held twice
    assert recorded.calls[-1] == ("resume", set())
