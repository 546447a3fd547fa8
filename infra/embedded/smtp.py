"""The demo inbox: an aiosmtpd server on a loopback port that keeps what it receives.

Runs in-process (aiosmtpd serves from its own thread), so the demo and tests can read the
inbox directly (`inbox_at(url)`); with `mbox=True` every message is also appended to
`<workdir>/inbox.mbox`, which any mail client (or `mail -f`) opens.

It behaves like a strict real server in two ways that tests and the demo rely on:
- recipients in the reserved `.invalid` TLD (RFC 2606) are refused with `550 5.1.2` — a
  permanent failure, as a real MTA answers for a domain that does not exist;
- `fail_next("451 4.3.0 ...")` makes the next DATA commands fail with the given replies, the way
  a greylisting or overloaded server answers (transient 4yz) — for failure-path tests.
"""

from __future__ import annotations

import mailbox
import smtplib
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from adapters.notifications.smtp import KIND_HEADER
from infra.embedded.process import ServiceError, free_port, port_open

_RUNNING: dict[str, SmtpInbox] = {}
_RUNNING_LOCK = threading.Lock()


def inbox_at(url: str | None) -> SmtpInbox | None:
    """The embedded inbox serving `url` in this process, if there is one."""
    with _RUNNING_LOCK:
        return _RUNNING.get(url or "")


@dataclass(frozen=True, slots=True)
class ReceivedEmail:
    mail_from: str
    to: str
    subject: str
    kind: str  # the X-Notification-Kind header, "" when absent
    message_id: str
    body: str


@dataclass
class SmtpInbox:
    workdir: Path
    port: int = field(default_factory=free_port)
    name: str = "smtp"
    mbox: bool = True
    _received: list[ReceivedEmail] = field(default_factory=list)
    _failures: deque[str] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def mbox_path(self) -> Path:
        return self.workdir / "inbox.mbox"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        if port_open("127.0.0.1", self.port):
            raise ServiceError(f"smtp: port {self.port} already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        try:
            controller.start()  # returns once the server answers
        except Exception as e:
            raise ServiceError(f"smtp: could not start on port {self.port}: {e}") from e
        self._controller = controller
        with _RUNNING_LOCK:
            _RUNNING[self.url] = self

    def healthy(self) -> bool:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=1) as client:
            return client.noop()[0] == 250

    def stop(self) -> None:
        with _RUNNING_LOCK:
            _RUNNING.pop(self.url, None)
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # --- the inbox ---------------------------------------------------------------------------

    def messages(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._received)

    def count_by_kind(self) -> Counter[str]:
        return Counter(m.kind or "(none)" for m in self.messages())

    def fail_next(self, *replies: str) -> None:
        """The next len(replies) DATA commands are answered with these SMTP replies."""
        with self._lock:
            self._failures.extend(replies)

    def _next_failure(self) -> str | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> None:
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        part = parsed.get_body(("plain",))
        # SMTP transports lines as CRLF; callers compare with the text the sender rendered.
        body = part.get_content().replace("\r\n", "\n") if part is not None else ""
        with self._lock:
            for rcpt in rcpt_tos:
                self._received.append(
                    ReceivedEmail(
                        mail_from,
                        rcpt,
                        str(parsed.get("Subject", "")),
                        str(parsed.get(KIND_HEADER, "")),
                        str(parsed.get("Message-ID", "")),
                        body,
                    )
                )
            if self.mbox:
                box = mailbox.mbox(self.mbox_path)
                try:
                    box.add(content)
                finally:
                    box.close()


class _Handler:
    """aiosmtpd hooks (called on the server's event loop thread)."""

    def __init__(self, inbox: SmtpInbox) -> None:
        self._inbox = inbox

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain == "invalid" or domain.endswith(".invalid"):
            return "550 5.1.2 bad destination system address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        failure = self._inbox._next_failure()
        if failure is not None:
            return failure
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        self._inbox._store(str(envelope.mail_from), list(envelope.rcpt_tos), raw)
        return "250 2.0.0 OK: queued"
