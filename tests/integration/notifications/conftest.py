"""Email peers: aiosmtpd (a real SMTP server) and a local HTTP server speaking SendGrid's v3
/v3/mail/send contract. Both can be told to fail the next messages transiently or
permanently, the way the real services do."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

SENDGRID_KEY = "SG.test-key"


@dataclass
class Delivered:
    to: str
    subject: str
    body: str
    dedup_id: str  # Message-ID (SMTP) or custom_args.idempotency_key (SendGrid)


@dataclass
class Inbox:
    messages: list[Delivered] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # "transient" | "permanent", in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_failure(self) -> str | None:
        with self.lock:
            return self.failures.pop(0) if self.failures else None

    def add(self, message: Delivered) -> None:
        with self.lock:
            self.messages.append(message)


class _SmtpHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        failure = self.inbox.next_failure()
        if failure == "transient":
            return "451 4.3.0 mailbox temporarily unavailable"
        if failure == "permanent":
            return "550 5.1.1 no such user"
        parsed: Message = message_from_bytes(envelope.content)
        payload = parsed.get_payload(decode=True)
        body = payload.decode() if isinstance(payload, bytes) else str(payload)
        for rcpt in envelope.rcpt_tos:
            self.inbox.add(Delivered(rcpt, str(parsed["Subject"]), body, str(parsed["Message-ID"])))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_peer() -> Iterator[tuple[str, int, Inbox]]:
    inbox = Inbox()
    controller = Controller(_SmtpHandler(inbox), hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield "127.0.0.1", controller.port, inbox
    finally:
        controller.stop()


def _sendgrid_handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any] | None = None) -> None:
            raw = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if status == 202:
                self.send_header("X-Message-Id", f"sg-{len(inbox.messages)}")
            if raw:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/v3/mail/send":
                self._reply(404, {"errors": [{"message": "not found"}]})
                return
            if self.headers.get("Authorization") != f"Bearer {SENDGRID_KEY}":
                self._reply(401, {"errors": [{"message": "authorization required"}]})
                return
            failure = inbox.next_failure()
            if failure == "transient":
                self._reply(429, {"errors": [{"message": "too many requests"}]})
                return
            if failure == "permanent":
                self._reply(400, {"errors": [{"message": "invalid email", "field": "to"}]})
                return
            try:
                body = json.loads(raw)
                (personalization,) = body["personalizations"]
                (content,) = body["content"]
                assert content["type"] == "text/plain"
                assert body["from"]["email"]
                message = Delivered(
                    personalization["to"][0]["email"],
                    body["subject"],
                    content["value"],
                    body["custom_args"]["idempotency_key"],
                )
            except (ValueError, KeyError, TypeError, AssertionError) as e:
                self._reply(400, {"errors": [{"message": f"bad request: {e!r}"}]})
                return
            inbox.add(message)
            self._reply(202)

    return Handler


@pytest.fixture
def sendgrid_api_key() -> str:
    return SENDGRID_KEY


@pytest.fixture
def sendgrid_peer() -> Iterator[tuple[str, Inbox]]:
    inbox = Inbox()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _sendgrid_handler(inbox))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}", inbox
    finally:
        server.shutdown()
        server.server_close()
