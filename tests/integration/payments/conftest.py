"""Shared fixtures of the payment integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.payments.paypal_peer import PayPalPeer
from tests.integration.payments.paypal_peer import running_peer as running_paypal_peer
from tests.integration.payments.razorpay_peer import RazorpayPeer, running_peer


@pytest.fixture(scope="session")
def razorpay_peer() -> Iterator[RazorpayPeer]:
    """One Razorpay contract peer per session; tests isolate by unique checkout ids."""
    with running_peer() as peer:
        yield peer


@pytest.fixture(scope="session")
def paypal_peer() -> Iterator[PayPalPeer]:
    """One PayPal contract peer per session; tests isolate by unique checkout ids."""
    with running_paypal_peer() as peer:
        yield peer
