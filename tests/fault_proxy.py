"""A fault-injecting HTTP proxy for a payment provider's peer (localstripe): on 127.0.0.1:0 in
front of `upstream`, it forwards every request until an outage is scheduled, then for a window
answers every request with Stripe's 500 (`api_error`), then hangs the connections of writes:
every POST is forwarded and takes effect at the peer but its answer is never sent (the worst
case: the client cannot know whether it charged or captured), while reads are answered, so the
client's reconciliation can see what happened. Hung connections are closed without an answer
when the outage ends. Counters say what each phase served.

The outage starts either at once (`outage()`) or when the proxy has forwarded `creates`
PaymentIntent creations (`outage_after_creates()`), so some checkouts are past authorization and
reach capture during it while the rest authorize into it.

Besides the outage, `random_faults(seed, mix)` injects faults per request, drawn from a seeded
RNG and targeted by operation (`operation_of`: create, capture, cancel, refund, read): Stripe's
500 (`api_error`, not forwarded), 429 (`rate_limit`, not forwarded), a slow answer (forwarded,
answered after a delay) and a timeout (forwarded, so it takes effect, then held past the
client's timeout and closed without an answer). `injected` counts them by (operation, kind).
An outage, while it lasts, overrides the random faults."""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit

PASS, ERROR, HANG = "pass", "error", "hang"
# Random fault kinds (`FaultMix`), as counted in `FaultProxy.injected`.
E500, E429, SLOW, TIMEOUT = "500", "429", "slow", "timeout"
OPERATIONS = ("create", "capture", "cancel", "refund", "read")


def operation_of(method: str, path: str) -> str | None:
    """The Stripe operation a request is, by Stripe's REST paths; None: not one we fault."""
    bare = path.split("?", 1)[0].rstrip("/")
    if method == "GET":
        return "read"
    if method != "POST":
        return None
    if bare == "/v1/payment_intents":
        return "create"
    if bare == "/v1/refunds":
        return "refund"
    found = re.fullmatch(r"/v1/payment_intents/[^/]+/(capture|cancel)", bare)
    return found.group(1) if found else None


@dataclass(frozen=True)
class FaultMix:
    """Probabilities (each in [0, 1], summing to at most 1) of each fault for one operation."""

    e500: float = 0.0
    e429: float = 0.0
    slow: float = 0.0
    timeout: float = 0.0
    slow_s: tuple[float, float] = (0.3, 2.5)  # a slow answer's delay, drawn uniformly
    hold_s: float = 12.0  # a timeout holds the connection this long: past the client's 10 s

    def __post_init__(self) -> None:
        assert 0 <= self.e500 + self.e429 + self.slow + self.timeout <= 1, self

    def draw(self, rng: random.Random) -> str:
        x = rng.random()
        for kind, p in ((E500, self.e500), (E429, self.e429), (SLOW, self.slow)):
            if x < p:
                return kind
            x -= p
        return TIMEOUT if x < self.timeout else PASS


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
        self.injected: Counter[tuple[str, str]] = Counter()  # (operation, kind) -> requests
        self._mix: dict[str, FaultMix] = {}
        self._rng = random.Random(0)
        self._closing = threading.Event()  # set on exit: held connections end
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
        self._closing.set()
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

    # --- random faults -------------------------------------------------------------------

    def random_faults(self, seed: int, mix: dict[str, FaultMix]) -> None:
        """From now on each request of an operation in `mix` draws its fault from `mix[op]`
        with an RNG seeded by `seed` (the draws' order follows the requests' arrival)."""
        with self._lock:
            self._rng = random.Random(seed)
            self._mix = dict(mix)

    def stop_random_faults(self) -> None:
        with self._lock:
            self._mix = {}

    def _draw(self, method: str, path: str) -> tuple[str | None, str, float]:
        op = operation_of(method, path)
        with self._lock:
            mix = self._mix.get(op) if op else None
            if mix is None:
                return op, PASS, 0.0
            kind = mix.draw(self._rng)
            delay = self._rng.uniform(*mix.slow_s) if kind == SLOW else mix.hold_s
            if kind != PASS:
                self.injected[(op or "?", kind)] += 1
        return op, kind, delay

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
                _, fault, delay = proxy._draw(self.command, self.path)
                if fault == E500:
                    self._answer(500, [("Content-Type", "application/json")], _API_ERROR)
                    return
                if fault == E429:
                    self._answer(429, [("Content-Type", "application/json")], _RATE_LIMIT)
                    return
                proxy.served[PASS] += 1
                status, kept, answer = proxy._forward(self.command, self.path, headers, body)
                if fault == TIMEOUT:  # it took effect; the client gives up before the answer
                    proxy._closing.wait(delay)
                    self.close_connection = True
                    return
                if fault == SLOW:
                    proxy._closing.wait(delay)
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


_RATE_LIMIT = json.dumps(
    {
        "error": {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "injected: too many requests",
        }
    }
).encode()
_API_ERROR = json.dumps(
    {"error": {"type": "api_error", "code": "api_error", "message": "injected outage"}}
).encode()
