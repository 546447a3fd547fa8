"""A dedicated localstripe (our launcher: loopback, Idempotency-Key layer, no pickle) for tests
that count every object on the account, so nothing another test made can blur the count."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

from infra.embedded.localstripe import LocalStripe


@contextlib.contextmanager
def running_localstripe() -> Iterator[LocalStripe]:
    with tempfile.TemporaryDirectory(prefix="localstripe-") as tmp:
        peer = LocalStripe(workdir=Path(tmp), api_key=f"sk_test_{secrets.token_hex(12)}")
        peer.start()
        try:
            yield peer
        finally:
            peer.stop()
