"""The runtime's PermanentFailure: dead-lettered at once, no retries, the partition flows on.
(With the notifier's tests because the notifier is its first user; it is a runtime test.)"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from events import messages as m
from infra.embedded.stack import RunningStack
from infra.processor import Incoming, Output, PermanentFailure
from tests.integration.copy_worker import CopyHandler
from tests.integration.kafka_helpers import Seen, fresh_topics, produce, read_topic
from tests.integration.test_processor import SERDE, cancels, drive, make

pytestmark = pytest.mark.integration


class RefusesOne(CopyHandler):
    def __init__(self, out_topic: str) -> None:
        super().__init__(out_topic)
        self.calls_for_refused = 0

    def handle(self, message: Incoming) -> Sequence[Output]:
        cancel = message.envelope.message
        assert isinstance(cancel, m.CancelCheckout)
        if cancel.reason == "refused":
            self.calls_for_refused += 1
            raise PermanentFailure(f"{cancel.checkout_id} can never be handled")
        return super().handle(message)


def test_a_permanent_failure_is_dead_lettered_without_retries(stack: RunningStack) -> None:
    bootstrap = stack.settings.kafka_bootstrap_servers
    assert bootstrap
    src, out = fresh_topics(bootstrap, "in", "out", partitions=1)
    refused = cancels(1, reason="refused")
    produce(bootstrap, src, SERDE, cancels(5) + refused + cancels(5))
    handler = RefusesOne(out)
    processor = make(stack, src, handler, max_attempts=5)

    drive(processor, lambda: processor.processed >= 11)

    assert handler.calls_for_refused == 1  # not retried
    assert len(read_topic(bootstrap, out, until=lambda rs: len(rs) >= 10)) == 10

    def one(records: list[Seen]) -> bool:
        return len(records) >= 1

    (dead,) = read_topic(bootstrap, f"{src}.dlq", until=one)
    assert dead.headers["dlq.error"].startswith(b"PermanentFailure (not retried)")
    assert refused[0].message.checkout_id.encode() in dead.headers["dlq.error"]
    assert SERDE.decode(dead.value, src).message == refused[0].message
