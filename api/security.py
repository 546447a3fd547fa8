"""FastAPI dependencies for authentication, RBAC and rate limits (declared as OpenAPI security
schemes so the document tells clients, and schemathesis, how to authenticate)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Authenticator, Principal
from api.deps import ApiDeps
from api.errors import ApiError

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="a storefront API key (sk_...) or an HS256 JWT (role: storefront|operator|admin)",
)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="storefront API key")


def get_deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


def client_ip(request: Request) -> str:
    # The socket peer. Behind a load balancer, run uvicorn with --proxy-headers and
    # --forwarded-allow-ips so this is the client, never a spoofable header read by us.
    return request.client.host if request.client else "unknown"


def _limit(deps: ApiDeps, bucket: str) -> None:
    decision = deps.rate_limiter.hit(bucket, deps.now_ms())
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests; retry in {decision.retry_after_s}s",
            headers={"Retry-After": str(decision.retry_after_s)},
        )


def authenticated(
    request: Request,
    deps: Annotated[ApiDeps, Depends(get_deps)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    # Every authentication attempt costs a token of the caller's IP bucket *before* the
    # credential is checked, so guessing keys or tokens is throttled too.
    _limit(deps, f"ip:{client_ip(request)}")
    authenticator = Authenticator(deps.keys, deps.jwt_secret)
    principal = authenticator.authenticate(bearer.credentials if bearer else None, api_key)
    request.state.actor = principal.actor
    return principal


def checkout_caller(
    principal: Annotated[Principal, Depends(authenticated)],
    deps: Annotated[ApiDeps, Depends(get_deps)],
) -> Principal:
    """Authenticated, then limited per API key (or token subject) on the checkout writes."""
    _limit(deps, f"key:{principal.actor}")
    return principal


Caller = Annotated[Principal, Depends(authenticated)]
CheckoutCaller = Annotated[Principal, Depends(checkout_caller)]
Deps = Annotated[ApiDeps, Depends(get_deps)]
