"""An adapter processor: adapter.<name>.requests in, typed replies to checkout.replies out.

The service behind it (inventory, tax, shipping, payment, notification) owns breakers, timeouts
and bounded retries, and turns every business or provider failure into a reply; anything it
raises is a bug or an outage, which the runtime retries and finally dead-letters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from events.topics import CHECKOUT_REPLIES
from infra.processor import BaseHandler, Incoming, Output


class AdapterHandler(BaseHandler):
    def __init__(self, name: str, service: Callable[[Any], Any]) -> None:
        self.name = name
        self._service = service

    def handle(self, message: Incoming) -> Sequence[Output]:
        reply = self._service(message.envelope.message)
        if reply is None:
            return []
        return [
            Output(
                CHECKOUT_REPLIES,
                message.envelope.caused(
                    reply, 0, producer=f"adapter.{self.name}", occurred_at=message.timestamp
                ),
            )
        ]
