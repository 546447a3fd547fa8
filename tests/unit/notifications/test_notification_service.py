"""NotificationService: dedup per (order, kind), retries on transient errors only."""

from __future__ import annotations

import uuid

import pytest

from adapters.notifications.port import OutgoingEmail, PermanentSendError, TransientSendError
from adapters.notifications.sent_log import InMemorySentLog, NotificationKey
from adapters.notifications.service import (
    InMemorySummaries,
    NotificationFailed,
    NotificationService,
)
from adapters.notifications.templates import OrderSummary, SummaryLine
from events.messages import NotificationSent, SendNotification


class ScriptedSender:
    name = "scripted"

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.delivered: list[OutgoingEmail] = []

    def send(self, email: OutgoingEmail) -> str | None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(email)
        return f"msg-{self.calls}"


def command(kind: str = "order_confirmation", attempt: int = 1) -> SendNotification:
    co = f"co-{uuid.uuid4().hex[:8]}"
    key = f"{co}:notify:{attempt}"
    return SendNotification(co, attempt, key, kind, "a@example.com", f"ord-{co}")


def make(sender: ScriptedSender, **kw: object) -> tuple[NotificationService, InMemorySentLog]:
    log = InMemorySentLog()
    svc = NotificationService(
        sender,
        log,
        InMemorySummaries(),
        sleep=lambda _: None,
        **kw,  # type: ignore[arg-type]
    )
    return svc, log


def test_sends_once_even_when_redelivered() -> None:
    sender = ScriptedSender()
    svc, log = make(sender)
    cmd = command()
    assert svc.handle(cmd) == NotificationSent(cmd.checkout_id, 1, "order_confirmation")
    assert svc.handle(cmd) == NotificationSent(cmd.checkout_id, 1, "order_confirmation")
    # A later attempt of the same (order, kind) does not send either.
    again = SendNotification(cmd.checkout_id, 2, "k2", cmd.kind, cmd.email, cmd.order_id)
    assert svc.handle(again) == NotificationSent(cmd.checkout_id, 2, "order_confirmation")
    assert len(sender.delivered) == 1
    assert log.rows[NotificationKey(cmd.order_id or "", cmd.kind)]["status"] == "sent"


def test_other_kind_for_same_order_is_another_email() -> None:
    sender = ScriptedSender()
    svc, _ = make(sender)
    cmd = command()
    svc.handle(cmd)
    failed = SendNotification(cmd.checkout_id, 1, "k", "checkout_failed", cmd.email, cmd.order_id)
    svc.handle(failed)
    assert [e.subject.split()[0] for e in sender.delivered] == ["Order", "We"]


def test_transient_errors_retry_with_backoff_then_send() -> None:
    sender = ScriptedSender(TransientSendError("451"), TransientSendError("503"))
    svc, _ = make(sender, retries=3)
    svc.handle(command())
    assert sender.calls == 3 and len(sender.delivered) == 1


def test_transient_exhaustion_is_retryable_and_redelivery_sends() -> None:
    sender = ScriptedSender(*[TransientSendError("down")] * 3)
    svc, log = make(sender, retries=2)
    cmd = command()
    with pytest.raises(NotificationFailed) as failed:
        svc.handle(cmd)
    assert not failed.value.permanent
    assert sender.calls == 3
    assert log.rows[NotificationKey(cmd.order_id or "", cmd.kind)]["status"] == "pending"
    svc.handle(cmd)  # the provider is back
    assert len(sender.delivered) == 1


def test_permanent_error_is_not_retried_and_not_resent() -> None:
    sender = ScriptedSender(PermanentSendError("550 no such user"))
    svc, log = make(sender, retries=5)
    cmd = command()
    with pytest.raises(NotificationFailed) as failed:
        svc.handle(cmd)
    assert failed.value.permanent and "550" in failed.value.reason
    assert sender.calls == 1
    with pytest.raises(NotificationFailed):
        svc.handle(cmd)
    assert sender.calls == 1
    assert log.rows[NotificationKey(cmd.order_id or "", cmd.kind)]["status"] == "failed"


def test_unknown_kind_is_permanent_and_sends_nothing() -> None:
    sender = ScriptedSender()
    svc, log = make(sender)
    with pytest.raises(NotificationFailed, match="unknown notification kind"):
        svc.handle(command(kind="newsletter"))
    assert sender.calls == 0 and log.rows == {}


def test_amounts_come_from_the_summary() -> None:
    sender = ScriptedSender()
    summaries = InMemorySummaries()
    cmd = command()
    summaries.put(
        OrderSummary(
            cmd.checkout_id,
            "JPY",
            cmd.order_id,
            (SummaryLine("SKU-1", 3, 400),),
            subtotal=1200,
            tax=0,
            shipping=500,
            total=1700,
        )
    )
    NotificationService(sender, InMemorySentLog(), summaries).handle(cmd)
    (email,) = sender.delivered
    assert "1700 JPY" in email.body and "1200 JPY" in email.body
    assert email.to == "a@example.com"
    assert email.idempotency_key == f"{cmd.order_id}:order_confirmation"
