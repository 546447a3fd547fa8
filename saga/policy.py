"""Retry, backoff and deadline policy of the checkout saga. Pure data plus pure arithmetic."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from events.messages import Step

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS


def _max_attempts() -> Mapping[Step, int]:
    # Capture gets the most attempts: once it is issued the saga is past its point of no return
    # and a capture retry against the same payment is idempotent at the provider.
    return MappingProxyType(
        {
            Step.RESERVE_INVENTORY: 3,
            Step.CALCULATE_TAX: 3,
            Step.QUOTE_SHIPPING: 3,
            Step.AUTHORIZE_PAYMENT: 2,  # every attempt is a new payment intent: keep it low
            Step.COMMIT_INVENTORY: 3,
            Step.CAPTURE_PAYMENT: 5,
        }
    )


def _reply_timeouts() -> Mapping[Step, int]:
    return MappingProxyType(
        {
            Step.RESERVE_INVENTORY: 10 * SECOND_MS,
            Step.CALCULATE_TAX: 10 * SECOND_MS,
            Step.QUOTE_SHIPPING: 10 * SECOND_MS,
            Step.AUTHORIZE_PAYMENT: 30 * SECOND_MS,
            Step.COMMIT_INVENTORY: 10 * SECOND_MS,
            Step.CAPTURE_PAYMENT: 30 * SECOND_MS,
            Step.RELEASE_INVENTORY: 10 * SECOND_MS,
            Step.VOID_PAYMENT: 30 * SECOND_MS,
            Step.REFUND_PAYMENT: 30 * SECOND_MS,
        }
    )


@dataclass(frozen=True, slots=True)
class Policy:
    max_attempts: Mapping[Step, int] = field(default_factory=_max_attempts)
    reply_timeout_ms: Mapping[Step, int] = field(default_factory=_reply_timeouts)
    backoff_base_ms: int = 500
    backoff_cap_ms: int = 30 * SECOND_MS
    reservation_ttl_ms: int = 15 * MINUTE_MS
    payment_action_wait_ms: int = 10 * MINUTE_MS  # how long a customer gets for 3-D Secure
    compensation_max_attempts: int = 8

    def __post_init__(self) -> None:
        # A configuration error, not a business situation: fail at start-up, loudly.
        if self.payment_action_wait_ms >= self.reservation_ttl_ms:
            raise ValueError("payment_action_wait_ms must be shorter than the reservation TTL")
        if self.backoff_base_ms <= 0 or self.backoff_cap_ms < self.backoff_base_ms:
            raise ValueError("need 0 < backoff_base_ms <= backoff_cap_ms")

    def attempts_for(self, step: Step) -> int:
        return self.max_attempts.get(step, 3)

    def timeout_for(self, step: Step) -> int:
        return self.reply_timeout_ms.get(step, 30 * SECOND_MS)


DEFAULT_POLICY = Policy()


def backoff_ms(policy: Policy, checkout_id: str, step: Step, failed_attempt: int) -> int:
    """Delay before the attempt after `failed_attempt`: capped exponential with "equal jitter".

    The jitter spreads retries of many sagas that failed together (a provider outage) but is a
    hash of (checkout_id, step, attempt), not a random draw, so replaying the saga decides the
    same retry time."""
    exponent = max(0, failed_attempt - 1)
    ceiling = min(policy.backoff_cap_ms, policy.backoff_base_ms * 2 ** min(exponent, 32))
    half = ceiling // 2
    digest = hashlib.sha256(f"{checkout_id}:{step}:{failed_attempt}".encode()).digest()
    return half + int.from_bytes(digest[:8], "big") % (ceiling - half + 1)
