"""The fleet's group probe (tests/group_probe.py) outlives a child that librdkafka aborts."""

from __future__ import annotations

import os
import signal

from confluent_kafka import ConsumerGroupState

from tests.group_probe import GroupProbe


def test_an_aborted_child_is_counted_answered_as_unknown_and_replaced() -> None:
    probe = GroupProbe("127.0.0.1:9", answer_within_s=5)  # nothing listens: never asked
    try:
        first = probe._running()
        os.kill(first.pid, signal.SIGABRT)
        first.wait(10)
        # The dead child is counted and replaced; its successor finds no broker to answer in
        # time, so the question comes back UNKNOWN, without an exception.
        assert probe.describe("any-group") == (ConsumerGroupState.UNKNOWN, [])
        assert probe.aborts == 1
        second = probe._running()
        assert second.pid != first.pid and second.poll() is None
    finally:
        probe.close()
    assert probe.aborts == 1  # a child we kill ourselves is not an abort
