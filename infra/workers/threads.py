"""Run processors on threads in one process (the demo, benchmarks, tests) and stop them all."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from infra.processor import Processor


@contextlib.contextmanager
def on_threads(*processors: Processor) -> Iterator[list[BaseException]]:
    """Yields the list of exceptions the processors died of (empty while all are healthy)."""
    errors: list[BaseException] = []

    def run(p: Processor) -> None:
        try:
            p.run()
        except BaseException as e:  # reported to the caller, never swallowed
            errors.append(e)

    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in processors]
    for t in threads:
        t.start()
    try:
        yield errors
    finally:
        for p in processors:
            p.stop()
        for t in threads:
            t.join(30)
