"""An adapter processor: adapter.<name>.requests in, typed replies to checkout.replies out.

The service behind it (inventory, tax, shipping, payment, notification) owns breakers, timeouts
and bounded retries, and turns every business or provider failure into a reply; anything it
raises is a bug or an outage, which the runtime retries and finally dead-letters.

Provider calls are slow (tens to hundreds of ms), so a batch is handled concurrently: one lane
per checkout (its commands stay in order), lanes in parallel on a thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from events.topics import CHECKOUT_REPLIES
from infra.processor import BaseHandler, Incoming, Output


class AdapterHandler(BaseHandler):
    def __init__(self, name: str, service: Callable[[Any], Any], concurrency: int = 32) -> None:
        self.name = name
        self._service = service
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"adapter-{name}")

    def handle(self, message: Incoming) -> Sequence[Output]:
        reply = self._service(message.envelope.message)
        if reply is None:
            return []
        envelope = message.envelope.caused(
            reply, 0, producer=f"adapter.{self.name}", occurred_at=message.timestamp
        )
        return [Output(CHECKOUT_REPLIES, envelope)]

    def handle_many(self, messages: list[Incoming]) -> list[Sequence[Output] | BaseException]:
        lanes: dict[str, list[int]] = {}
        for i, message in enumerate(messages):
            lanes.setdefault(message.envelope.key, []).append(i)
        results: list[Sequence[Output] | BaseException] = [() for _ in messages]

        def run_lane(indexes: list[int]) -> None:
            for i in indexes:
                try:
                    results[i] = self.handle(messages[i])
                except Exception as e:  # the runtime counts it and retries or dead-letters
                    results[i] = e

        if len(lanes) == 1:
            run_lane(next(iter(lanes.values())))
        else:
            for future in [self._pool.submit(run_lane, idx) for idx in lanes.values()]:
                future.result()
        return results
