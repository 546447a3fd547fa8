"""A processor that lives through a broker SIGKILL and restart goes on processing, in the same
process, with a new producer (docs/chaos.md, finding 4: the first transaction of a producer that
lived through the restart hung in send_offsets_to_transaction). The broker is this test's own,
started on a directory of its own, so killing it disturbs no other test."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.serde import make_serde
from infra.embedded.kafka import KafkaBroker
from infra.processor import Processor, ProcessorConfig
from tests.integration.copy_worker import CopyHandler
from tests.integration.kafka_helpers import Seen, fresh_topics, produce, read_topic
from tests.integration.test_processor import cancels

pytestmark = pytest.mark.integration
SERDE = make_serde(None)


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(Path(tmp_path_factory.mktemp("own-kafka")))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_a_processor_goes_on_after_the_broker_is_killed_and_restarted(
    own_broker: KafkaBroker,
) -> None:
    bootstrap = own_broker.url
    src, out = fresh_topics(bootstrap, "in", "out")
    processor = Processor(
        # The watchdog (which would end this test's whole process) is kept out of the way:
        # without the new producer the copy hangs and read_topic's deadline says so.
        ProcessorConfig(
            name=f"g-{uuid.uuid4().hex[:8]}",
            topics=[src],
            bootstrap_servers=bootstrap,
            stuck_after_s=600,
        ),
        CopyHandler(out),
        SERDE,
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            processor.run(until=stop.is_set)
        except BaseException as e:  # surfaced below, never lost with the thread
            errors.append(e)

    before, after = cancels(50), cancels(50)
    produce(bootstrap, src, SERDE, before)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        read_topic(bootstrap, out, until=lambda rs: len(rs) >= len(before), timeout_s=60)
        first = processor._producer
        assert own_broker._proc is not None
        own_broker._proc.kill()  # no shutdown at all: the log is recovered on the next start
        own_broker._proc.wait(30)
        own_broker.stop()
        own_broker.start()
        produce(bootstrap, src, SERDE, after)
        wanted = {e.message.checkout_id for e in before + after}

        def all_copied(records: list[Seen]) -> bool:
            return wanted <= {SERDE.decode(r.value, out).checkout_id for r in records}

        read_topic(bootstrap, out, until=all_copied, timeout_s=90)
        assert errors == [] and worker.is_alive()  # the same process, not a restart
        assert processor._producer is not first  # it started over with a new producer
    finally:
        stop.set()
        worker.join(30)
    assert errors == []
