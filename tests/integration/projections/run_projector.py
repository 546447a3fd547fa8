"""A projector in its own process, so a test can SIGKILL it mid-batch.

usage: run_projector.py BOOTSTRAP DATABASE_URL CHECKOUT_EVENTS_TOPIC ORDERS_EVENTS_TOPIC
Tiny batches, and a pause inside each transaction, so the kill lands between a batch's first
write and its commit most of the time.
"""

from __future__ import annotations

import sys
import time
import uuid

from events.serde import make_serde
from infra.embedded.stack import reader_isolation
from infra.settings import load_settings
from projections import projector as projector_module
from projections.apply import Topics
from projections.projector import Projector, ProjectorConfig

_apply = projector_module.apply_records


def _slow_apply(*args: object, **kwargs: object) -> object:
    result = _apply(*args, **kwargs)  # type: ignore[arg-type]
    time.sleep(0.02)  # inside the open transaction: widens the window for the kill
    return result


def main() -> None:
    bootstrap, database_url, checkout_events, orders_events = sys.argv[1:5]
    projector_module.apply_records = _slow_apply  # type: ignore[assignment]
    config = ProjectorConfig(
        bootstrap_servers=bootstrap,
        database_url=database_url,
        group=f"proj-kill-{uuid.uuid4().hex[:8]}",
        topics=Topics(checkout_events, orders_events),
        batch_size=3,
        partitions=[(t, p) for t in (checkout_events, orders_events) for p in range(3)],
        poll_timeout_s=0.05,
        isolation_level=reader_isolation(load_settings()),
    )
    projector = Projector(config, make_serde(None))
    projector.install_signal_handlers()
    projector.run()


if __name__ == "__main__":
    main()
