"""Stripe's Idempotency-Key contract in front of localstripe (which ignores the header).

What Stripe documents (docs.stripe.com/idempotency, API v1) and this layer does:

- Only POST requests take part; GET and DELETE are idempotent by definition.
- A key is scoped to the account: here the `Authorization` header (the API key) plus
  `Stripe-Account`, so two keys' worth of tenants never see each other's results.
- The status and body of the first request that began executing are saved and replayed to every
  repeat with the same parameters, 500s included, with the header `Idempotent-Replayed: true`.
- A repeat with other parameters (another endpoint or another parsed form body) is refused with
  400 `idempotency_error`; a repeat while the first is still executing gets 409
  `idempotency_error` (retry later: nothing is saved for it); keys over 255 characters are a 400
  `invalid_request_error`.
- Results are saved only once the endpoint began executing. localstripe answers parameter
  validation failures with 400 before touching its store, so 400s are not saved (nor 401/403
  authentication failures, 429s, or requests matching no route): a repeat runs again, as at
  Stripe. Everything else the endpoint answered (2xx, 402 card declines, 404, 5xx, and an
  exception inside the emulator, saved as Stripe's 500 `api_error`) is saved.
- Keys are pruned 24 h after first use (`ttl_s`); a later reuse executes as a new request. The
  clock is injectable so expiry is testable without waiting.

Memory stays bounded by the requests of the last 24 h: entries are kept in first-use order and
expired ones are dropped from the front on every POST.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
DAY_S = 24 * 3600.0
# Statuses meaning "the endpoint never began executing": Stripe saves nothing for them.
_NOT_EXECUTED = frozenset({400, 401, 403, 429})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Scope = tuple[str, str, str]  # (Authorization, Stripe-Account, Idempotency-Key)
Fingerprint = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class _Saved:
    fingerprint: Fingerprint
    status: int
    body: bytes
    content_type: str
    saved_at: float


class IdempotencyLayer:
    def __init__(self, *, ttl_s: float = DAY_S, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._saved: OrderedDict[Scope, _Saved] = OrderedDict()
        self._in_flight: dict[Scope, Fingerprint] = {}
        self.replays = 0  # answers served from a saved result, for tests and benchmarks

    def __len__(self) -> int:
        return len(self._saved)

    def install(self, app: web.Application) -> None:
        """Outermost middleware, so it sees the response localstripe's own error handling made."""
        app.middlewares.insert(0, self.middleware)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        key = request.headers.get(HEADER)
        if request.method != "POST" or key is None:
            return await handler(request)
        if len(key) > MAX_KEY_LENGTH:
            return _error(
                400,
                "invalid_request_error",
                f"Invalid idempotency key: must be at most {MAX_KEY_LENGTH} characters long.",
            )
        self.prune()
        scope: Scope = (
            request.headers.get("Authorization", ""),
            request.headers.get("Stripe-Account", ""),
            key,
        )
        fingerprint = (request.method, request.path, await _parameters(request))
        saved = self._saved.get(scope)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                return _mismatch(key)
            self.replays += 1
            replay = web.Response(
                status=saved.status, body=saved.body, headers={"Content-Type": saved.content_type}
            )
            replay.headers[REPLAYED] = "true"
            replay.headers[HEADER] = key
            return replay
        running = self._in_flight.get(scope)
        if running is not None:
            if running != fingerprint:
                return _mismatch(key)
            return _error(
                409,
                "idempotency_error",
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still "
                f"going through): {key}. Please try again later.",
            )
        self._in_flight[scope] = fingerprint
        try:
            response = await self._execute(request, handler)
        finally:
            del self._in_flight[scope]
        if response.status not in _NOT_EXECUTED and isinstance(response, web.Response):
            self._saved[scope] = _Saved(
                fingerprint=fingerprint,
                status=response.status,
                body=_body_bytes(response),
                content_type=response.headers.get("Content-Type", "application/json"),
                saved_at=self._clock(),
            )
        response.headers[HEADER] = key
        return response

    @staticmethod
    async def _execute(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # no route matched, or aiohttp refused it: nothing executed, nothing saved
        except Exception:
            # The endpoint began and failed inside the emulator: Stripe saves its 500 too.
            log.exception("localstripe raised inside an idempotent request")
            return _error(500, "api_error", "An unknown error occurred.")

    def prune(self) -> None:
        """Drop keys first used more than `ttl_s` ago (first-use order = expiry order)."""
        cutoff = self._clock() - self._ttl
        while self._saved:
            scope, oldest = next(iter(self._saved.items()))
            if oldest.saved_at > cutoff:
                break
            del self._saved[scope]


async def _parameters(request: web.Request) -> tuple[tuple[str, str], ...]:
    """The request's parameters as a sorted multiset: form fields (Stripe's v1 encoding) or a
    JSON body flattened the same way, plus the query string."""
    raw = await request.read()  # aiohttp caches it: the handler reads the same bytes again
    pairs = list(request.query.items())
    if raw:
        if request.content_type == "application/json":
            try:
                pairs.extend(_flatten(json.loads(raw)))
            except ValueError:
                pairs.append(("", raw.decode("utf-8", "replace")))
        else:
            pairs.extend(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return tuple(sorted(pairs))


def _flatten(value: object, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out.extend(_flatten(v, f"{prefix}[{k}]" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            out.extend(_flatten(v, f"{prefix}[{i}]"))
        return out
    return [(prefix, json.dumps(value) if not isinstance(value, str) else value)]


def _body_bytes(response: web.Response) -> bytes:
    body = response.body
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    return response.text.encode() if response.text is not None else b""


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


def _mismatch(key: str) -> web.Response:
    return _error(
        400,
        "idempotency_error",
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.",
    )
