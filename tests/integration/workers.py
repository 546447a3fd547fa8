"""Run processors on threads for a test, and stop them (and wait) on the way out."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from infra.processor import Processor


@contextlib.contextmanager
def running(*processors: Processor) -> Iterator[None]:
    errors: list[BaseException] = []

    def run(p: Processor) -> None:
        try:
            p.run()
        except BaseException as e:  # surfaced to the test below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in processors]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        for p in processors:
            p.stop()
        for t in threads:
            t.join(30)
    assert not errors, f"a processor crashed: {errors[0]!r}"
