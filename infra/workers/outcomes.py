"""How a saga ended, read off the events `decide` just produced (saga/ itself neither logs nor
counts): one WARNING line per saga that fails or parks, and `saga_outcomes_total`.

Reasons are the saga's free text ("no reply before the deadline (gave up after 3 attempts)",
a provider's decline message); the metric's `reason` label is a short code from a closed set
so its series stay bounded, and the full text goes in the log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from events import messages as m
from infra.metrics import Metrics
from saga.checkout import PAYMENT_NOT_AUTHORIZED, RESERVATION_LAPSED
from saga.verdicts import ACTION_TIMED_OUT, TIMED_OUT

log = logging.getLogger("infra.workers.orchestrator")

# Every `reason` label value saga_outcomes_total can carry.
REASON_CODES = (
    "none",
    "deadline",
    "action_timeout",
    "reservation_lapsed",
    "payment_not_authorized",
    "retries_exhausted",
    "declined",
    "rejected",
    "cancelled",
    "compensation_exhausted",
    "compensation_refused",
)


def reason_code(reason: str, step: str | None = None) -> str:
    """The closed-set code of a saga failure reason (the text comes from saga/ constants and
    the phrasing of its rules, so it is matched on those)."""
    if ACTION_TIMED_OUT in reason:
        return "action_timeout"
    if TIMED_OUT in reason:
        return "deadline"
    if RESERVATION_LAPSED in reason:
        return "reservation_lapsed"
    if PAYMENT_NOT_AUTHORIZED in reason:
        return "payment_not_authorized"
    if "(gave up after" in reason:
        return "retries_exhausted"
    if step == m.Step.AUTHORIZE_PAYMENT:
        return "declined"
    return "rejected"


@dataclass(frozen=True, slots=True)
class Outcome:
    checkout_id: str
    outcome: str  # completed | failed | cancelled | needs_attention
    step: str  # "" when no step failed (completed, a customer's cancel)
    reason_code: str
    reason: str
    message_id: str  # the event that ended it


def outcome_of(event: Any, message_id: str) -> Outcome | None:
    """The saga outcome an event records, or None for events that end nothing."""
    if isinstance(event, m.CheckoutCompleted):
        return Outcome(event.checkout_id, "completed", "", "none", "", message_id)
    if isinstance(event, m.CheckoutFailed):
        code = reason_code(event.reason, event.step)
        return Outcome(event.checkout_id, "failed", event.step, code, event.reason, message_id)
    if isinstance(event, m.CheckoutCancelled):
        return Outcome(event.checkout_id, "cancelled", "", "cancelled", event.reason, message_id)
    if isinstance(event, m.CheckoutNeedsAttention):
        code = (
            "compensation_refused"
            if "failed permanently" in event.reason
            else ("compensation_exhausted")
        )
        return Outcome(
            event.checkout_id, "needs_attention", event.step, code, event.reason, message_id
        )
    return None


def report(outcome: Outcome, metrics: Metrics) -> None:
    """Count the outcome; a failed or parked saga gets its one WARNING line."""
    metrics.saga_outcomes.labels(outcome.outcome, outcome.step, outcome.reason_code).inc()
    fields = {
        "checkout_id": outcome.checkout_id,
        "message_id": outcome.message_id,
        "outcome": outcome.outcome,
        "step": outcome.step,
        "reason_code": outcome.reason_code,
        "reason": outcome.reason,
    }
    if outcome.outcome == "failed":
        log.warning(
            "saga failed at %s (%s): %s",
            outcome.step,
            outcome.reason_code,
            outcome.reason,
            extra=fields,
        )
    elif outcome.outcome == "needs_attention":
        log.warning(
            "saga parked for an operator at %s (%s): %s",
            outcome.step,
            outcome.reason_code,
            outcome.reason,
            extra=fields,
        )
    elif outcome.outcome == "cancelled":
        log.info("saga cancelled: %s", outcome.reason, extra=fields)
