"""`create_app(deps)`: the storefront HTTP API. Nothing happens at import; the app owns its
metrics registry and closes its dependencies on shutdown."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.deps import ApiDeps
from api.errors import ApiError
from api.metrics import new_metrics
from api.middleware import GuardMiddleware
from api.routes import checkouts, console, health, ops, orders, webhooks

API_VERSION = "1.0.0"


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if parts[0] == "body" else parts
    return ".".join(parts) or "body"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(_request_id(request)), status_code=exc.status, headers=exc.headers)


_HTTP_ERRORS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Framework-raised errors (unparseable JSON, unknown route, wrong method) in our shape."""
    assert isinstance(exc, HTTPException)
    body = {
        "error": _HTTP_ERRORS.get(exc.status_code, "http_error"),
        "reason": str(exc.detail),
        "request_id": _request_id(request),
    }
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for error in exc.errors():
        # Never echo the input back: it may be a card token or an address.
        reason = str(error.get("msg", "invalid"))
        fields.append({"field": _field(tuple(error.get("loc", ()))), "reason": reason})
    route = getattr(request.scope.get("route"), "path", "")
    if route == "/v1/checkouts" and request.method == "POST":
        request.app.state.metrics.checkouts.labels("invalid").inc()
    body = {
        "error": "validation_failed",
        "reason": f"{len(fields)} invalid field(s)",
        "request_id": _request_id(request),
        "fields": fields,
    }
    return JSONResponse(body, status_code=422)


def create_app(deps: ApiDeps) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        deps.close()

    app = FastAPI(
        title="Checkout saga API",
        version=API_VERSION,
        description="Storefront checkouts, status, cancel, admin refunds, Stripe webhooks."
        " Amounts are integer minor units with an ISO-4217 currency.",
        lifespan=lifespan,
    )
    app.state.deps = deps
    app.state.metrics = new_metrics()
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(
        GuardMiddleware, metrics=app.state.metrics, max_body_bytes=deps.max_body_bytes
    )
    for module in (checkouts, orders, webhooks, health, ops, console):
        app.include_router(module.router)
    return app
