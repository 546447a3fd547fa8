"""Run processors on threads in one process (the demo, benchmarks, tests) and stop them all."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Protocol


class Runnable(Protocol):
    """A processor, the projector, or anything with the same run-until-stopped shape."""

    def run(self) -> None: ...

    def stop(self) -> None: ...


@contextlib.contextmanager
def on_threads(*processors: Runnable) -> Iterator[list[BaseException]]:
    """Yields the list of exceptions the processors died of (empty while all are healthy)."""
    errors: list[BaseException] = []

    def run(p: Runnable) -> None:
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
