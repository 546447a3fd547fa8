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
    # Counted attempts, for steps neither windowed nor retried until success (capture's entry
    # applies only to a policy that takes it out of retry_until_success).
    return MappingProxyType(
        {
            Step.RESERVE_INVENTORY: 3,
            Step.CALCULATE_TAX: 3,
            Step.QUOTE_SHIPPING: 3,
            # Only a fallback for a policy without a retry window for it (see _retry_windows).
            Step.AUTHORIZE_PAYMENT: 2,
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


def _retry_windows() -> Mapping[Step, int]:
    # A PSP outage (5xx, 429, hanging connections, then our own open breaker) fails every
    # attempt fast: 2 counted attempts with a 0.5 s backoff were spent within ~1 s of a 21 s
    # outage and every checkout in flight was compensated. Authorization is retried by time
    # instead, for at least this long (see may_retry). A retry cannot charge twice:
    # the gateway reconciles against the provider's records before every create, so an
    # earlier attempt that did authorize is adopted. The window plus the 3-D Secure wait stays
    # inside the reservation TTL (checked below), so the stock is still held when it ends.
    # Inventory has no fallback and its store can be away as briefly: a PostgreSQL restart
    # keeps the inventory worker's breaker open for 30 s, and 3 counted attempts 0.5 s apart
    # failed every reservation in flight (docs/chaos.md finding 8). Reserving and committing
    # are idempotent per checkout, so they are retried by time too.
    return MappingProxyType(
        {
            Step.AUTHORIZE_PAYMENT: 3 * MINUTE_MS,
            Step.RESERVE_INVENTORY: MINUTE_MS,
            Step.COMMIT_INVENTORY: MINUTE_MS,
        }
    )


def _retry_until_success() -> frozenset[Step]:
    # Capture runs after every step that can fail has succeeded and the money is authorized:
    # giving up would void a good sale over a provider blip. Retryable failures of it are retried
    # for as long as they stay retryable (backoff capped at backoff_cap_ms, so a long outage costs
    # one call per checkout per 30 s); a definite answer (the authorization lapsed, an invalid
    # request) still fails it and compensates.
    return frozenset({Step.CAPTURE_PAYMENT})


@dataclass(frozen=True, slots=True)
class Policy:
    max_attempts: Mapping[Step, int] = field(default_factory=_max_attempts)
    reply_timeout_ms: Mapping[Step, int] = field(default_factory=_reply_timeouts)
    retry_window_ms: Mapping[Step, int] = field(default_factory=_retry_windows)
    retry_until_success: frozenset[Step] = field(default_factory=_retry_until_success)
    backoff_base_ms: int = 500
    backoff_cap_ms: int = 30 * SECOND_MS
    reservation_ttl_ms: int = 15 * MINUTE_MS
    payment_action_wait_ms: int = 10 * MINUTE_MS  # how long a customer gets for 3-D Secure
    # A compensation (release, void, refund) that keeps failing retryably is retried for this
    # long of backoff waits before the saga is parked. Eight attempts (about a minute) parked
    # 153 sagas of the long chaos run on a flapping breaker, holding funds and stock, and gave up
    # on admin refunds whose last try may have reached the PSP (docs/chaos.md finding 8).
    compensation_retry_window_ms: int = 30 * MINUTE_MS

    def __post_init__(self) -> None:
        # A configuration error, not a business situation: fail at start-up, loudly.
        if self.payment_action_wait_ms >= self.reservation_ttl_ms:
            raise ValueError("payment_action_wait_ms must be shorter than the reservation TTL")
        if self.backoff_base_ms <= 0 or self.backoff_cap_ms < self.backoff_base_ms:
            raise ValueError("need 0 < backoff_base_ms <= backoff_cap_ms")
        # Retrying authorization for its whole window and then waiting for 3-D Secure must end
        # before the reservation lapses, or a late success would find the stock released.
        window = self.retry_window_ms.get(Step.AUTHORIZE_PAYMENT, 0)
        if window + self.payment_action_wait_ms >= self.reservation_ttl_ms:
            raise ValueError(
                "authorize retry window + payment_action_wait_ms must be shorter than the "
                "reservation TTL"
            )

    def attempts_for(self, step: Step) -> int:
        return self.max_attempts.get(step, 3)

    def may_retry_compensation(self, step: Step, checkout_id: str, tries: int) -> bool:
        """Whether a compensation that failed retryably `tries` times gets another attempt:
        while the backoff waits scheduled so far, the next one included, fit in the window
        (counted like `may_retry`, so a replay decides the same)."""
        waited = sum(backoff_ms(self, checkout_id, step, a) for a in range(1, tries + 1))
        return waited <= self.compensation_retry_window_ms

    def compensation_attempts(self, step: Step, checkout_id: str) -> int:
        """How many retryable failures of a compensation park the saga."""
        tries = 1
        while self.may_retry_compensation(step, checkout_id, tries):
            tries += 1
        return tries

    def timeout_for(self, step: Step) -> int:
        return self.reply_timeout_ms.get(step, 30 * SECOND_MS)

    def may_retry(self, step: Step, checkout_id: str, failed_attempt: int) -> bool:
        """Whether a retryable failure of `failed_attempt` of a forward step gets another
        attempt: always for steps retried until success; for windowed steps while the backoff
        waits scheduled so far, the next one included, fit in the window; else while the
        step's attempt count allows.

        The window is counted in scheduled waits, not wall time: decide needs no extra state
        and a replay decides the same. The attempts themselves take time too, so the step keeps
        retrying for at least the window: an outage shorter than the window minus one capped
        backoff is always outlasted."""
        if step in self.retry_until_success:
            return True
        window = self.retry_window_ms.get(step)
        if window is None:
            return failed_attempt < self.attempts_for(step)
        waited = sum(backoff_ms(self, checkout_id, step, a) for a in range(1, failed_attempt + 1))
        return waited <= window


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
