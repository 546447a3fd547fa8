"""A faust transport whose consumer reads `read_committed` without faust's exactly-once mode.

faust-streaming's aiokafka driver asks for `read_committed` only when the app runs with
`processing_guarantee="exactly_once"`, which also makes every producer transactional (a
transactional id per partition). Analytics is at-least-once with idempotent state (ADR 0018) and
has no transactional id; it still must not count records of aborted transactions, as
checkout.events is written in transactions. So the consumer is created as faust creates it and
its isolation level set before it starts (aiokafka reads it only in `start()`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

READ_COMMITTED = "read_committed"


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        # faust hands over its live set of active partitions, and aiokafka reads an empty set
        # as "every assigned partition". When recovery pauses the changelogs while a fetch
        # waits, the set empties and aiokafka returns (and moves its position past) records of
        # the paused source partitions, which faust then drops; a source partition without a
        # committed offset is never sought back, so those records were lost (issue 17: the
        # restarted app "consumed nothing", ADR 0018). A copy cannot change under the fetch.
        partitions = set(active_partitions)
        if not partitions:
            return {}
        return await super()._fetch_records(
            consumer, partitions, timeout=timeout, max_records=max_records
        )

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Private in aiokafka (0.14) but only read when the fetcher is built in start(); the
        # integration test reading around an aborted transaction fails if that ever changes.
        # The app may ask for read_uncommitted: only the embedded Tansu broker does (ADR 0009).
        consumer._isolation_level = getattr(self.app, "isolation_level", READ_COMMITTED)
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    """Also: a source partition is resumed only once it is sought to its committed offset.

    faust-streaming 0.15.3 ends a recovery (`Recovery.on_recovery_completed`) by resuming the
    stream partitions and only then seeking them to their committed offsets, while its fetcher
    keeps draining (the flow is already on for the changelogs). Records of the source then
    reached the agent before "Worker ready", some a second time after the seek (ADR 0018).
    Upstream fixed the same order in `_resume_streams` (faust-streaming PR 217: seek, then
    resume), not in `on_recovery_completed`.
    """

    _unsought: set[TP]

    def _new_consumer_thread(self) -> ReadCommittedConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        wanted = set(tps)
        streams = {tp for tp in wanted if not self._is_changelog_tp(tp)}
        self._unsought = getattr(self, "_unsought", set()) | streams
        super().resume_partitions(wanted - streams)  # changelogs: recovery reads them now

    async def perform_seek(self) -> None:
        held = set(getattr(self, "_unsought", set()))
        try:
            await super().perform_seek()
        finally:
            # Also when the seek fails or times out (faust cancels it): then as faust would,
            # rather than holding the partitions until the next rebalance.
            self._unsought = getattr(self, "_unsought", set()) - held
            super().resume_partitions(held & set(self.assignment()))


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer


def isolation_of(consumer_thread: Any) -> str:
    """The isolation level the running aiokafka consumer uses (for tests and the status view)."""
    return str(consumer_thread._ensure_consumer()._isolation_level)
