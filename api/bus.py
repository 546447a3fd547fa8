"""`KafkaCommandBus`: produce a command and return only once the broker acknowledged it.

One confluent-kafka producer per process (thread-safe), configured by the composition root
(`infra.processor.producer_config`) so keys are hashed with murmur2 exactly like every other
producer (a checkout's commands share its partition). A background thread serves delivery
callbacks; each request waits on its own future.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException, Producer

from api.ports import BrokerUnavailable
from events.envelope import Envelope
from events.serde import Serde
from events.topics import topic_for

DEFAULT_ACK_TIMEOUT_S = 10.0


class KafkaCommandBus:
    def __init__(
        self,
        producer_config: Mapping[str, Any],
        serde: Serde,
        *,
        ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S,
    ) -> None:
        self._serde = serde
        self._ack_timeout = ack_timeout_s
        self.producer = Producer(dict(producer_config))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="api-producer-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def send(self, envelope: Envelope[Any]) -> None:
        topic = topic_for(envelope.message)
        value = self._serde.encode(envelope, topic)
        acked: concurrent.futures.Future[None] = concurrent.futures.Future()

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                acked.set_exception(BrokerUnavailable(f"broker rejected the write: {err}"))
            else:
                acked.set_result(None)

        try:
            self.producer.produce(
                topic,
                key=envelope.key.encode(),
                value=value,
                headers=[("message_type", envelope.type.encode())],
                on_delivery=on_delivery,
            )
        except (BufferError, KafkaException) as e:
            raise BrokerUnavailable(f"producer refused the write: {e}") from e
        try:
            acked.result(timeout=self._ack_timeout + 1)
        except concurrent.futures.TimeoutError as e:
            raise BrokerUnavailable("no broker acknowledgement in time") from e

    def ping(self, timeout_s: float) -> str:
        metadata = self.producer.list_topics(timeout=timeout_s)
        return f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)"

    def close(self, timeout_s: float = 5.0) -> None:
        if self._stop.is_set():
            return
        self.producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout_s)
        # Closed now rather than when collected: a live producer keeps reconnecting (and
        # logging) once the broker it used has gone.
        self.producer.close()
