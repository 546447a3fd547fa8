"""What one event on checkout.events tells analytics, as facts keyed by their identity.

A window's state is a map fact kind -> identity -> payload. The identity is what the fact is
*about* (a checkout, or one attempt of one step), never the delivery: adding the same event
twice (a redelivery after a crash, a replay of the log) writes the same key with the same
payload, so the state and every number computed from it stay the same (ADR 0018).

Pure: no faust, no clock. Time is the envelope's `occurred_at` (epoch ms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from events import messages as m
from events.envelope import Envelope

# The adapters' markers of a fallback answer (adapters/tax/port.py SOURCE_RATE_TABLE_FALLBACK,
# adapters/shipping/quoting.py FLAT_RATE_CARRIER). Repeated here, not imported: they are part
# of the event contract analytics reads, and analytics depends only on events.
TAX_FALLBACK_SOURCE = "rate_table_fallback"
FLAT_RATE_CARRIER = "flat_rate"


class Kind(StrEnum):
    STARTED = "started"  # checkout_id -> []
    COMPLETED = "completed"  # checkout_id -> [currency, total]
    FAILED = "failed"  # checkout_id -> [step]
    CANCELLED = "cancelled"  # checkout_id -> []
    STEP_OK = "step_ok"  # checkout/step/attempt -> [step]
    STEP_FAILED = "step_failed"  # checkout/step/attempt -> [step]
    LATENCY = "latency"  # checkout/step/attempt -> [step, ms]
    PAYMENT_OK = "payment_ok"  # checkout/attempt -> [provider]
    PAYMENT_DECLINED = "payment_declined"  # checkout/attempt -> [provider]
    TAX = "tax"  # checkout/attempt -> [source]
    SHIPPING = "shipping"  # checkout/attempt -> [carrier]


State = dict[str, dict[str, list[Any]]]
"""A window's facts: JSON-shaped, as faust's table changelog stores it."""


@dataclass(frozen=True, slots=True)
class Fact:
    kind: Kind
    identity: str
    payload: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Observation:
    """The facts of one event, and how the checkout's open step starts change (for latency,
    whose start and end usually fall in different windows)."""

    facts: tuple[Fact, ...] = ()
    start: tuple[str, int] | None = None  # step/attempt -> started at (ms)
    forget_starts: bool = False  # the checkout ended: its open starts are no longer needed


def _attempt(checkout_id: str, step: str, attempt: int) -> str:
    return f"{checkout_id}/{step}/{attempt}"


def observe(envelope: Envelope[Any], starts: Mapping[str, int]) -> Observation:
    """The facts `envelope` carries. `starts` are the checkout's open step starts
    ("step/attempt" -> ms), kept by the caller per checkout."""
    msg = envelope.message
    cid = envelope.checkout_id
    at = envelope.occurred_at
    match msg:
        case m.CheckoutStarted():
            return Observation((Fact(Kind.STARTED, cid),))
        case m.CheckoutCompleted(currency=currency, total=total):
            return Observation((Fact(Kind.COMPLETED, cid, (currency, total)),), forget_starts=True)
        case m.CheckoutFailed(step=step):
            return Observation((Fact(Kind.FAILED, cid, (str(step),)),), forget_starts=True)
        case m.CheckoutCancelled():
            return Observation((Fact(Kind.CANCELLED, cid),), forget_starts=True)
        case m.StepStarted(step=step, attempt=attempt):
            return Observation(start=(f"{step}/{attempt}", at))
        case m.StepSucceeded(step=step, attempt=attempt):
            identity = _attempt(cid, step, attempt)
            facts = [Fact(Kind.STEP_OK, identity, (str(step),))]
            began = starts.get(f"{step}/{attempt}")
            if began is not None and at >= began:
                facts.append(Fact(Kind.LATENCY, identity, (str(step), at - began)))
            return Observation(tuple(facts))
        case (
            m.StepAttemptFailed(step=step, attempt=attempt)
            | m.StepTimedOut(step=step, attempt=attempt)
        ):
            # A timeout and decide's verdict on it name the same attempt: one failure.
            return Observation(
                (Fact(Kind.STEP_FAILED, _attempt(cid, step, attempt), (str(step),)),)
            )
        case m.PaymentAuthorized(provider=provider, attempt=attempt):
            return Observation((Fact(Kind.PAYMENT_OK, f"{cid}/{attempt}", (provider,)),))
        case m.PaymentDeclined(provider=provider, attempt=attempt):
            return Observation((Fact(Kind.PAYMENT_DECLINED, f"{cid}/{attempt}", (provider,)),))
        case m.TaxCalculated(source=source, attempt=attempt):
            return Observation((Fact(Kind.TAX, f"{cid}/{attempt}", (source,)),))
        case m.ShippingQuoted(carrier=carrier, attempt=attempt):
            return Observation((Fact(Kind.SHIPPING, f"{cid}/{attempt}", (carrier,)),))
    return Observation()


def add(state: State | None, facts: tuple[Fact, ...]) -> State:
    """`state` with `facts` in it: a new dict (faust stores what it is given). Re-adding a fact
    already there changes nothing; the first payload seen for an identity is kept."""
    out: State = {kind: dict(found) for kind, found in (state or {}).items()}
    for fact in facts:
        out.setdefault(fact.kind.value, {}).setdefault(fact.identity, list(fact.payload))
    return out


def merge(states: list[State]) -> State:
    """The union of several windows' (or partitions') facts."""
    out: State = {}
    for state in states:
        for kind, found in state.items():
            target = out.setdefault(kind, {})
            for identity, payload in found.items():
                target.setdefault(identity, payload)
    return out
