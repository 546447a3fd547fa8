"""A processor that turns each CancelCheckout into a CheckoutCancelled, run as its own process
so tests can kill it with SIGKILL mid-batch: `python -m tests.integration.copy_worker ...`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from events import messages as m
from events.serde import make_serde
from infra.embedded.stack import reader_isolation
from infra.processor import BaseHandler, Incoming, Output, Processor, ProcessorConfig
from infra.settings import load_settings


class CopyHandler(BaseHandler):
    def __init__(self, out_topic: str, fail_on: str | None = None) -> None:
        self.out_topic = out_topic
        self.fail_on = fail_on

    def handle(self, message: Incoming) -> Sequence[Output]:
        cancel = message.envelope.message
        assert isinstance(cancel, m.CancelCheckout)
        if cancel.reason == self.fail_on:
            raise RuntimeError(f"cannot handle {cancel.checkout_id}")
        out = m.CheckoutCancelled(cancel.checkout_id, reason=cancel.reason)
        envelope = message.envelope.caused(out, 0, producer="copy", occurred_at=message.timestamp)
        return [Output(self.out_topic, envelope)]


def main(argv: list[str]) -> None:
    bootstrap, in_topic, out_topic, group, batch = argv[:5]
    processor = Processor(
        ProcessorConfig(
            name=group,
            topics=[in_topic],
            bootstrap_servers=bootstrap,
            batch_size=int(batch),
            isolation_level=reader_isolation(load_settings()),
        ),
        CopyHandler(out_topic),
        make_serde(None),
    )
    processor.install_signal_handlers()
    processor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
