"""A fault-injecting HTTP proxy for a payment provider's peer (localstripe): on 127.0.0.1:0 in
front of `upstream`, it forwards every request until an outage is scheduled, then for a window
answers every request with Stripe's 500 (`api_error`), then hangs the connections of writes:
every POST is forwarded and takes effect at the peer but its answer is never sent (the worst
case: the client cannot know whether it charged or captured), while reads are answered, so the
client's reconciliation can see what happened. Hung connections are closed without an answer
when the outage ends. Counters say what each phase served.

The outage starts either at once (`outage()`) or when the proxy has forwarded `creates`
PaymentIntent creations (`outage_after_creates()`), so some checkouts are past authorization and
reach capture during it while the rest authorize into it."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit

PASS, ERROR, HANG = "pass", "error", "hang"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        assert target.hostname and target.port, upstream
        self._upstream = (target.hostname, target.port)
        self.mode = PASS
        self.served: Counter[str] = Counter()  # phase -> requests seen in it
        self.creates = 0  # PaymentIntent creations forwarded with an answer, outside the outage
        self.healed = threading.Event()  # set when the outage is over: hung requests end
        self.started = threading.Event()
        self._lock = threading.Lock()
        self._trigger: tuple[int, float, float] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.healed.set()
        self._server.shutdown()
        self._server.server_close()

    # --- the outage ----------------------------------------------------------------------

    def outage(self, error_s: float, hang_s: float) -> None:
        """500s for `error_s`, then hung connections for `hang_s`, then healthy again."""
        self.started.set()
        threading.Thread(target=self._run_outage, args=(error_s, hang_s), daemon=True).start()

    def outage_after_creates(self, creates: int, error_s: float, hang_s: float) -> None:
        with self._lock:
            self._trigger = (creates, error_s, hang_s)

    def _run_outage(self, error_s: float, hang_s: float) -> None:
        # A timeline, not a wait for a condition: the phases last as long as they are told to.
        self.mode = ERROR
        self.healed.wait(error_s)
        self.mode = HANG
        self.healed.wait(hang_s)
        self.mode = PASS
        self.healed.set()

    def _note_create(self) -> None:
        with self._lock:
            self.creates += 1
            trigger = self._trigger
            if trigger is None or self.creates < trigger[0]:
                return
            self._trigger = None
        self.outage(trigger[1], trigger[2])

    # --- HTTP ----------------------------------------------------------------------------

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return response.status, kept, response.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                mode = proxy.mode
                if mode == ERROR:
                    proxy.served[ERROR] += 1
                    self._answer(500, [("Content-Type", "application/json")], _API_ERROR)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if mode == HANG and self.command == "POST":
                    proxy.served[HANG] += 1
                    proxy._forward(self.command, self.path, headers, body)  # it took effect
                    proxy.healed.wait(120)
                    self.close_connection = True  # and its answer never comes
                    return
                proxy.served[PASS] += 1
                status, kept, answer = proxy._forward(self.command, self.path, headers, body)
                self._answer(status, kept, answer)
                if self.command == "POST" and self.path.rstrip("/") == "/v1/payment_intents":
                    proxy._note_create()

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _handle

        return Handler


_API_ERROR = json.dumps(
    {"error": {"type": "api_error", "code": "api_error", "message": "injected outage"}}
).encode()
