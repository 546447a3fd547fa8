"""Reading checkout.events written by older versions of the saga.

The envelope's `schema_version` on checkout.events is the version of the history's format:
  1  adapter replies, deadlines and webhook signals were recorded as bare facts and `evolve`
     judged them (is this the outstanding attempt? does the amount match? is a timeout worth
     retrying?);
  2  every such judgment is recorded as its own event next to the fact (StepSucceeded,
     StepAttemptFailed, PaymentActionAwaited) and evolve applies facts and verdicts only.
`replay` folds one recorded event of any version: a version-1 fact is followed by the verdicts
the version-1 rules gave it, so old history keeps the meaning it had when it was written.
"""

from __future__ import annotations

from collections.abc import Iterable

from events import messages as m
from events.envelope import SCHEMA_VERSION
from saga import verdicts
from saga.evolve import REPLY_STEP, CheckoutEvent, evolve
from saga.state import SagaState

HISTORY_VERSION = SCHEMA_VERSION
"""What every producer writes on checkout.events today (the envelope's default)."""


def upcast(
    state: SagaState | None, event: CheckoutEvent, version: int
) -> tuple[CheckoutEvent, ...]:
    """`event` as the current format records it: itself, plus any verdict a version-1 reader
    inferred from it."""
    if version >= HISTORY_VERSION or state is None:
        return (event,)
    if isinstance(event, m.StepTimedOut):
        return (event, *verdicts.of_timeout(state, event))
    noted = evolve(state, event)
    if type(event) in REPLY_STEP:
        # Version 1 recorded the 3-D Secure wait itself (PaymentActionAwaited follows): no
        # deadline is asked for here.
        return (
            event,
            *verdicts.of_reply(noted, event, action_deadline=None, late_successes=False),  # type: ignore[arg-type]
        )
    if isinstance(event, m.PaymentSignalRecorded):
        return (event, *verdicts.of_signal(noted, event))
    return (event,)


def replay(state: SagaState | None, event: CheckoutEvent, version: int) -> SagaState:
    """evolve for a recorded event of any history version."""
    for current in upcast(state, event, version):
        state = evolve(state, current)
    assert state is not None  # upcast always yields the event itself
    return state


def replay_all(
    recorded: Iterable[tuple[CheckoutEvent, int]], state: SagaState | None = None
) -> SagaState | None:
    """The fold of `(event, history version)` pairs, oldest first."""
    for event, version in recorded:
        state = replay(state, event, version)
    return state
