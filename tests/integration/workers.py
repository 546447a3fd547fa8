"""Run processors on threads for a test; a processor that crashed fails the test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from infra.processor import Processor
from infra.workers.threads import on_threads


@contextlib.contextmanager
def running(*processors: Processor) -> Iterator[None]:
    with on_threads(*processors) as errors:
        yield
    assert not errors, f"a processor crashed: {errors[0]!r}"
