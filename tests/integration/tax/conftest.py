from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.tax.taxjar_peer import TaxJarPeer, running_peer


@pytest.fixture
def taxjar_peer() -> Iterator[TaxJarPeer]:
    with running_peer() as peer:
        yield peer
