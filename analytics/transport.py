"""A faust transport whose consumer reads `read_committed` without faust's exactly-once mode.

faust-streaming's aiokafka driver asks for `read_committed` only when the app runs with
`processing_guarantee="exactly_once"`, which also makes every producer transactional (a
transactional id per partition). Analytics is at-least-once with idempotent state (ADR 0018) and
has no transactional id; it still must not count records of aborted transactions, as
checkout.events is written in transactions. So the consumer is created as faust creates it and
its isolation level set before it starts (aiokafka reads it only in `start()`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import aiokafka
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)

READ_COMMITTED = "read_committed"


def _wait_until_served(bootstrap: str, topics: set[str], timeout_s: float) -> set[str]:
    """Until the broker serves every topic with a leader per partition; those still missing."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    missing = set(topics)
    while missing and time.monotonic() < deadline:
        try:
            served = admin.list_topics(timeout=5).topics
        except KafkaException:
            served = {}
        missing = {
            t
            for t in missing
            if t not in served
            or served[t].error is not None
            or not served[t].partitions
            or any(p.leader < 0 for p in served[t].partitions.values())
        }
        if missing:
            time.sleep(0.1)  # polling the broker, with the deadline above
    return missing


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def subscribe(self, topics: Iterable[str]) -> None:
        # faust declares its changelog topics just before it subscribes; a topic the broker
        # does not serve yet is left out of the group's assignment ("Ignoring missing topic")
        # until a metadata refresh minutes later, and every write to that table raises
        # PartitionsMismatch in the agent, which faust restarts past the event: the retention
        # test's first start once counted nothing (ADR 0018). So wait for them first.
        names = set(topics)
        bootstrap = ",".join(f"{u.host}:{u.port}" for u in self.app.conf.broker_consumer)
        missing = await asyncio.to_thread(_wait_until_served, bootstrap, names, 30.0)
        if missing:
            log.warning("subscribing before the broker serves %s", sorted(missing))
        await super().subscribe(names)

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
