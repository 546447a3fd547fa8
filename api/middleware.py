"""The outermost layer of the app, as plain ASGI (so it sees every response, including errors):

- a request id (the caller's `X-Request-ID` if sane, else a new one) on every response;
- security headers;
- a request body limit (413), by Content-Length up front and by counting streamed bytes;
- a catch-all: an unexpected exception becomes `500 {"error": "internal", "request_id"}`; the
  log line names the request id and exception type only (messages of driver errors can hold
  connection strings; the traceback goes to DEBUG);
- request count and latency per route template and status.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

import psycopg
import redis.exceptions
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import ApiMetrics

# Errors that mean "a dependency is unreachable right now", not "this request is wrong".
UNAVAILABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

log = logging.getLogger("api")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
# JSON endpoints load nothing; the console and the API docs set their own policy.
DEFAULT_CSP = b"default-src 'none'; frame-ancestors 'none'"
_OWN_CSP_PREFIXES = ("/docs", "/redoc", "/console")


class BodyTooLarge(Exception):
    pass


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope.get("path", "")
        csp = None if path.startswith(_OWN_CSP_PREFIXES) else DEFAULT_CSP
        status = {"code": 500, "started": False}
        too_large = {"hit": False}
        received = {"bytes": 0}

        def extra_headers() -> list[tuple[bytes, bytes]]:
            out = [*SECURITY_HEADERS, (b"x-request-id", request_id.encode())]
            if csp is not None:
                out.append((b"content-security-policy", csp))
            return out

        async def send_json(code: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            status["code"], status["started"] = code, True
            await send(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                        *extra_headers(),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})

        async def too_large_response() -> None:
            await send_json(
                413,
                {
                    "error": "payload_too_large",
                    "reason": f"request body exceeds {self.max_body} bytes",
                    "request_id": request_id,
                },
            )

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received["bytes"] += len(message.get("body", b""))
                if received["bytes"] > self.max_body:
                    too_large["hit"] = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if too_large["hit"]:
                # The app turned our BodyTooLarge into some error of its own: answer 413 instead.
                if message["type"] == "http.response.start" and not status["started"]:
                    await too_large_response()
                return
            if message["type"] == "http.response.start":
                status["code"], status["started"] = int(message["status"]), True
                message = {**message, "headers": [*message.get("headers", []), *extra_headers()]}
            await send(message)

        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body:
                await too_large_response()
            else:
                await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not status["started"]:
                await too_large_response()
        except Exception as exc:
            if too_large["hit"]:
                if not status["started"]:
                    await too_large_response()
                return
            # A store away (restart, failover) is an operational condition the caller is told
            # to retry, not a bug: paging on it as an error hides real ones.
            unavailable = isinstance(exc, UNAVAILABLE)
            log.log(
                logging.WARNING if unavailable else logging.ERROR,
                "%s request_id=%s path=%s error=%s",
                "backing service unavailable" if unavailable else "unhandled error",
                request_id,
                path,
                type(exc).__name__,
            )
            log.debug("traceback for request_id=%s", request_id, exc_info=True)
            if status["started"]:
                return
            if unavailable:
                # A store we depend on is away (restart, failover): nothing was decided, so the
                # caller may retry the same request (with its Idempotency-Key) shortly.
                await send_json(
                    503,
                    {
                        "error": "unavailable",
                        "reason": f"a backing service is unavailable ({type(exc).__name__}); "
                        "retry shortly",
                        "request_id": request_id,
                    },
                )
                return
            await send_json(
                500, {"error": "internal", "reason": "internal error", "request_id": request_id}
            )
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            labels = (scope.get("method", ""), template, str(status["code"]))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)
