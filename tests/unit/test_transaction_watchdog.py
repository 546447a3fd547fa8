"""A transaction the producer can neither finish nor abort ends the worker, so its supervisor
starts a clean one (docs/chaos.md, finding 4). The producer is a stand-in: the states it
reproduces (a call that never returns, an abort that fails) are what a real librdkafka producer
was seen in after a broker SIGKILL, and cannot be produced on demand against a live broker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from events.serde import make_serde
from infra.processor import (
    EXIT_TRANSACTION_STUCK,
    BaseHandler,
    Processor,
    ProcessorConfig,
    TransactionStuck,
)

# Nothing listens there: the clients are built but never reach a broker.
NOWHERE = "127.0.0.1:9"


class _FailingProducer:
    """Commit fails with a retriable error, and so does the abort that follows: what a
    producer did after a broker restart."""

    def __init__(self) -> None:
        self.aborts = 0

    def poll(self, *_: Any) -> int:
        return 0

    def begin_transaction(self) -> None:
        return None

    def commit_transaction(self, *_: Any) -> None:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit timed out"))

    def abort_transaction(self, *_: Any) -> None:
        self.aborts += 1
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "abort timed out"))


class _Handler(BaseHandler):
    def __init__(self) -> None:
        self.aborted = 0

    def on_abort(self) -> None:
        self.aborted += 1


def test_a_failed_transaction_renews_the_producer_and_ends_when_none_can_register() -> None:
    handler = _Handler()
    config = ProcessorConfig("p", ["t"], NOWHERE, init_timeout_s=1.0)
    processor = Processor(config, handler, make_serde(None))
    failing = _FailingProducer()
    processor._producer = failing  # type: ignore[assignment]
    try:
        # No broker answers the new producer's init_transactions: nothing is left to retry with.
        with pytest.raises(TransactionStuck, match="a new producer could not register"):
            processor._commit([], [])
        assert failing.aborts == 1  # the old one's transaction was aborted first, best effort
        assert processor._producer is not failing
        assert handler.aborted == 1  # the handler's staged state is dropped, not committed
    finally:
        processor._consumer.close()


class _OutlivedBrokers:
    """Its flush waits through a broker restart: the records go out once the broker is back,
    and the loss is reported from the flush (librdkafka serves callbacks there). A producer in
    that state was seen to hang in send_offsets_to_transaction until the watchdog ended the
    worker (ADR 0022)."""

    def __init__(self, on_error: Any) -> None:
        self._on_error = on_error
        self.sent_offsets = 0
        self.aborts = 0

    def poll(self, *_: Any) -> int:
        return 0

    def begin_transaction(self) -> None:
        return None

    def flush(self, *_: Any) -> int:
        self._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        return 0

    def send_offsets_to_transaction(self, *_: Any) -> None:
        self.sent_offsets += 1

    def abort_transaction(self, *_: Any) -> None:
        self.aborts += 1


def test_a_flush_that_outlived_the_brokers_rewinds_instead_of_sending_the_offsets() -> None:
    handler = _Handler()
    config = ProcessorConfig("p", ["t"], NOWHERE, init_timeout_s=1.0)
    processor = Processor(config, handler, make_serde(None))
    outlived = _OutlivedBrokers(processor._on_producer_error)
    processor._producer = outlived  # type: ignore[assignment]
    try:
        with pytest.raises(TransactionStuck, match="brokers lost while flushing"):
            processor._commit([], [], offsets=[TopicPartition("t", 0, 5)])
        assert outlived.sent_offsets == 0  # the call that hung is never made
        assert outlived.aborts == 1
        assert processor._producer is not outlived  # replaced (no broker here to register it)
        assert handler.aborted == 1
        assert processor._brokers_lost is False  # said of the old producer, not the new one
    finally:
        processor._consumer.close()


def test_a_transaction_that_never_ends_makes_the_worker_exit_for_a_restart() -> None:
    script = textwrap.dedent(
        f"""
        import threading
        from events.serde import make_serde
        from infra.processor import BaseHandler, Processor, ProcessorConfig

        class Hanging:
            def init_transactions(self, *_): pass
            def poll(self, *_): return 0
            def begin_transaction(self):
                threading.Event().wait()  # as librdkafka did after a broker restart

        config = ProcessorConfig("p", ["t"], "{NOWHERE}", stuck_after_s=1.0)
        processor = Processor(config, BaseHandler(), make_serde(None))
        processor._producer = Hanging()
        threading.Thread(target=processor._watch_transactions, daemon=True).start()
        processor._commit([], [])
        """
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_TRANSACTION_STUCK, done.stderr[-2000:]
    assert "TransactionStuck: p: a transaction has not ended in 1s" in done.stderr
    assert "begin_transaction" in done.stderr  # every thread's stack, for the operator
    assert time.monotonic() - began < 30
