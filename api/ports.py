"""What the API needs from the outside world, as small Protocols. `api.wiring` supplies the real
pieces (Kafka, Redis, PostgreSQL); unit tests supply fakes. No implementation lives here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from events.envelope import Envelope


class BrokerUnavailable(Exception):
    """The broker did not acknowledge a write in time; nothing may be assumed written."""


class CommandBus(Protocol):
    def send(self, envelope: Envelope[Any]) -> None:
        """Write to the message's topic, keyed by its key; return only once the broker has
        acknowledged it. Raises BrokerUnavailable otherwise."""
        ...

    def ping(self, timeout_s: float) -> str:
        """A short description of the cluster; raises when unreachable."""
        ...


# --- reads ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepRecord:
    step: str
    status: str
    attempts: int
    started_at: str | None = None  # ISO-8601
    finished_at: str | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class NextActionRecord:
    """What the storefront's client library needs to finish a payment action (3-D Secure)."""

    provider: str
    kind: str | None
    redirect_url: str | None = None
    client_secret: str | None = field(default=None, repr=False)  # sensitive: never log


@dataclass(frozen=True, slots=True)
class CheckoutRecord:
    """A checkout as the read model (projection) sees it."""

    checkout_id: str
    tenant_id: str | None
    status: str
    currency: str
    subtotal: int | None = None
    tax: int | None = None
    shipping: int | None = None
    total: int | None = None
    order_id: str | None = None
    failure_step: str | None = None
    failure_reason: str | None = None
    steps: tuple[StepRecord, ...] = ()
    last_event_id: str | None = None
    last_event_type: str | None = None
    last_event_at: str | None = None
    events_applied: int = 0
    next_action: NextActionRecord | None = None


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_id: str
    checkout_id: str
    tenant_id: str | None
    currency: str
    captured: int
    refunded: int

    @property
    def refundable(self) -> int:
        return max(0, self.captured - self.refunded)


class CheckoutReads(Protocol):
    def checkout(self, checkout_id: str) -> CheckoutRecord | None: ...

    def order(self, order_id: str) -> OrderRecord | None: ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """A checkout the API accepted (recorded before it is produced), so GET can tell
    "accepted, not projected yet" from "unknown"."""

    checkout_id: str
    tenant_id: str
    accepted_at: int  # epoch ms
    request: Mapping[str, Any] = field(default_factory=dict)


class AcceptedCheckouts(Protocol):
    def record(self, accepted: Accepted) -> None: ...

    def get(self, checkout_id: str) -> Accepted | None: ...


# --- idempotency, rate limits, keys, audit ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reservation:
    state: Literal["reserved", "done", "conflict", "pending"]
    result: Mapping[str, Any] | None = None


class IdempotencyStore(Protocol):
    def reserve(self, scope: str, key: str, fingerprint: str) -> Reservation:
        """Atomically claim `key` for `fingerprint` (first caller gets "reserved")."""
        ...

    def complete(
        self, scope: str, key: str, fingerprint: str, result: Mapping[str, Any]
    ) -> None: ...

    def release(self, scope: str, key: str, fingerprint: str) -> None:
        """Drop a reservation that produced nothing, so the client's retry can run again."""
        ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: int = 0


class RateLimiter(Protocol):
    def hit(self, bucket: str, now_ms: int) -> RateDecision:
        """Take one token if there is one."""
        ...

    def check(self, bucket: str, now_ms: int) -> RateDecision:
        """Whether a hit would be allowed now, taking nothing."""
        ...


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    tenant_id: str
    name: str


class KeyStore(Protocol):
    def lookup(self, plaintext: str) -> ApiKey | None:
        """The live key whose hash matches, compared in constant time; None otherwise."""
        ...


class AuditLog(Protocol):
    def record(
        self,
        *,
        actor: str,
        action: str,
        object: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        request_id: str | None,
    ) -> None: ...


WebhookIngest = Callable[[bytes, str], None]
"""(raw payload, Stripe-Signature header) -> None; raises InvalidSignature, or
BrokerUnavailable when the signal could not be handed on (Stripe then retries)."""

ProviderWebhook = Callable[[bytes, Mapping[str, str]], None]
"""Another provider's delivery: (raw payload, the request's headers, lower-cased names) -> None;
the provider's ingest picks its signature and event-id headers. Raises like `WebhookIngest`."""

Probe = Callable[[], str]
"""A readiness check: returns a short detail, raises when the dependency is down."""


# --- operations (the operator console) -------------------------------------------------------


class OperationRefused(Exception):
    """The operator's act was refused (not parked, already re-driven, no reason): nothing
    happened. The message is one line the console shows as is."""


class UnknownObject(Exception):
    """No such checkout or dead letter."""


class OperationsUnavailable(Exception):
    """A service behind the view (broker, PostgreSQL, Redis) did not answer."""


JsonObject = dict[str, Any]


class Operations(Protocol):
    """What the console reads and does; every value is JSON-ready. The real one
    (infra/ops_console.py) shares its code with the `saga` CLI, so a button and a command are
    the same act."""

    def find_checkouts(
        self, *, text: str | None, status: str | None, limit: int
    ) -> list[JsonObject]:
        """Newest first; `text` matches a checkout id (or its prefix) or a customer email."""
        ...

    def timeline(self, checkout_id: str) -> JsonObject | None:
        """Events from checkout.events and the steps as lanes of attempts; None when unknown."""
        ...

    def dead_letters(self) -> list[JsonObject]: ...

    def redrive(self, dead_letter_id: str, *, actor: str, reason: str) -> JsonObject:
        """The same re-drive as `saga dlq redrive`, audited as `actor`."""
        ...

    def retry(self, checkout_id: str, *, actor: str, reason: str) -> JsonObject:
        """The same RetryCheckout as `saga checkout retry`, audited as `actor`."""
        ...

    def status(self) -> JsonObject:
        """Processor lag, dead-letter counts and breaker states, as `saga status` shows them."""
        ...
