from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.shipping.easypost_peer import EasyPostPeer, running_peer


@pytest.fixture
def easypost_peer() -> Iterator[EasyPostPeer]:
    with running_peer() as peer:
        yield peer
