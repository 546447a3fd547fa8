"""Shared fixtures of the payment integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.payments.razorpay_peer import RazorpayPeer, running_peer


@pytest.fixture(scope="session")
def razorpay_peer() -> Iterator[RazorpayPeer]:
    """One Razorpay contract peer per session; tests isolate by unique checkout ids."""
    with running_peer() as peer:
        yield peer
