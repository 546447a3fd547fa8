"""NotificationService end to end: Postgres ledger + SMTP to aiosmtpd (and SendGrid peer)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from adapters.notifications.http_sender import SendGridSender
from adapters.notifications.sent_log import NotificationKey, PostgresSentLog
from adapters.notifications.service import (
    InMemorySummaries,
    NotificationFailed,
    NotificationService,
)
from adapters.notifications.smtp import SmtpSender
from adapters.notifications.templates import OrderSummary, SummaryLine
from events.messages import NotificationSent, SendNotification

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger(migrated_database_url: str) -> PostgresSentLog:
    log = PostgresSentLog.from_url(migrated_database_url)
    return log


def confirmation(attempt: int = 1) -> SendNotification:
    co = f"co-{uuid.uuid4().hex[:8]}"
    return SendNotification(
        co, attempt, f"{co}:notify:{attempt}", "order_confirmation", f"{co}@example.com", f"o-{co}"
    )


def smtp_service(
    smtp_peer: tuple[str, int, Any], ledger: PostgresSentLog, **kw: Any
) -> NotificationService:
    host, port, _ = smtp_peer
    summaries = InMemorySummaries()
    return NotificationService(
        SmtpSender(host, port, from_address="shop@example.com", timeout_s=5),
        ledger,
        summaries,
        sleep=lambda _: None,
        **kw,
    )


def test_confirmation_is_sent_once_across_redeliveries(
    smtp_peer: tuple[str, int, Any], ledger: PostgresSentLog
) -> None:
    _, _, inbox = smtp_peer
    cmd = confirmation()
    svc = smtp_service(smtp_peer, ledger)
    for _ in range(3):
        assert svc.handle(cmd) == NotificationSent(cmd.checkout_id, 1, "order_confirmation")
    # A fresh service (a restarted worker) sees the ledger too.
    assert smtp_service(smtp_peer, ledger).handle(cmd).kind == "order_confirmation"
    assert [m.to for m in inbox.messages] == [cmd.email]
    assert ledger.status(NotificationKey(cmd.order_id or "", cmd.kind)) == ("sent", 1)


def test_amounts_rendered_in_the_delivered_mail(
    smtp_peer: tuple[str, int, Any], ledger: PostgresSentLog
) -> None:
    _, _, inbox = smtp_peer
    cmd = confirmation()
    svc = smtp_service(smtp_peer, ledger)
    svc._summaries.put(  # type: ignore[attr-defined]
        OrderSummary(
            cmd.checkout_id,
            "EUR",
            cmd.order_id,
            (SummaryLine("SKU-1", 2, 1050),),
            subtotal=2100,
            tax=399,
            shipping=490,
            total=2989,
        )
    )
    svc.handle(cmd)
    (mail,) = inbox.messages
    assert "29.89 EUR" in mail.body and "21.00 EUR" in mail.body


def test_transient_smtp_failures_are_retried(
    smtp_peer: tuple[str, int, Any], ledger: PostgresSentLog
) -> None:
    _, _, inbox = smtp_peer
    inbox.failures.extend(["transient", "transient"])
    cmd = confirmation()
    smtp_service(smtp_peer, ledger, retries=3).handle(cmd)
    assert len(inbox.messages) == 1
    assert ledger.status(NotificationKey(cmd.order_id or "", cmd.kind)) == ("sent", 1)


def test_permanent_smtp_failure_is_recorded_and_never_resent(
    smtp_peer: tuple[str, int, Any], ledger: PostgresSentLog
) -> None:
    _, _, inbox = smtp_peer
    inbox.failures.append("permanent")
    cmd = confirmation()
    svc = smtp_service(smtp_peer, ledger, retries=3)
    for _ in range(2):
        with pytest.raises(NotificationFailed) as failed:
            svc.handle(cmd)
        assert failed.value.permanent
    assert inbox.messages == [] and inbox.failures == []
    assert ledger.status(NotificationKey(cmd.order_id or "", cmd.kind)) == ("failed", 1)


def test_crash_between_send_and_mark_resends_once_at_least_once(
    smtp_peer: tuple[str, int, Any], ledger: PostgresSentLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented trade-off: the window between the provider's accept and mark_sent."""
    _, _, inbox = smtp_peer
    cmd = confirmation()
    svc = smtp_service(smtp_peer, ledger)

    def crash(*_: object) -> None:
        raise SystemExit("worker killed")

    monkeypatch.setattr(ledger, "mark_sent", crash)
    with pytest.raises(SystemExit):
        svc.handle(cmd)
    monkeypatch.undo()
    svc.handle(cmd)  # redelivery after restart: re-sends (same Message-ID) and marks
    svc.handle(cmd)  # any further redelivery: nothing
    assert len(inbox.messages) == 2
    assert inbox.messages[0].dedup_id == inbox.messages[1].dedup_id
    assert ledger.status(NotificationKey(cmd.order_id or "", cmd.kind)) == ("sent", 2)


def test_sendgrid_service_with_429_then_accept(
    sendgrid_peer: tuple[str, Any], sendgrid_api_key: str, ledger: PostgresSentLog
) -> None:
    url, inbox = sendgrid_peer
    inbox.failures.append("transient")
    sender = SendGridSender(sendgrid_api_key, from_address="shop@example.com", base_url=url)
    svc = NotificationService(sender, ledger, InMemorySummaries(), sleep=lambda _: None)
    cmd = confirmation()
    svc.handle(cmd)
    svc.handle(cmd)
    assert len(inbox.messages) == 1
    assert inbox.messages[0].dedup_id == f"{cmd.order_id}:order_confirmation"


def test_ledger_key_is_unique_in_the_database(ledger: PostgresSentLog, database_url: str) -> None:
    key = NotificationKey("o-1", "order_confirmation")
    ledger.claim(key, "co-1", "a@example.com")
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO sent_notifications (subject_id, kind, checkout_id, email, status)"
            " VALUES ('o-1', 'order_confirmation', 'co-1', 'a@example.com', 'pending')"
        )
    assert ledger.status(key) == ("pending", 1)
