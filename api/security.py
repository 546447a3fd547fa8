"""FastAPI dependencies for authentication, RBAC and rate limits (declared as OpenAPI security
schemes so the document tells clients, and schemathesis, how to authenticate)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Authenticator, Principal
from api.deps import ApiDeps
from api.errors import ApiError
from api.ports import RateDecision

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


def _refuse(decision: RateDecision, reason: str) -> None:
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"{reason}; retry in {decision.retry_after_s}s",
            headers={"Retry-After": str(decision.retry_after_s)},
        )


def authenticated(
    request: Request,
    deps: Annotated[ApiDeps, Depends(get_deps)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    # Guessing is throttled by what it produces, failures: an IP over its failure budget is
    # refused before its credential is even looked at, while a storefront server polling
    # status with a valid key (many buyers behind one IP) never drains that budget.
    bucket = f"ip:{client_ip(request)}"
    _refuse(deps.auth_failures.check(bucket, deps.now_ms()), "too many failed authentications")
    authenticator = Authenticator(deps.keys, deps.jwt_secret)
    try:
        principal = authenticator.authenticate(bearer.credentials if bearer else None, api_key)
    except ApiError:
        deps.auth_failures.hit(bucket, deps.now_ms())
        raise
    request.state.actor = principal.actor
    return principal


def writer(
    principal: Annotated[Principal, Depends(authenticated)],
    deps: Annotated[ApiDeps, Depends(get_deps)],
) -> Principal:
    """Authenticated, then limited per API key (or token subject): the writes."""
    _refuse(deps.rate_limiter.hit(f"key:{principal.actor}", deps.now_ms()), "too many requests")
    return principal


Caller = Annotated[Principal, Depends(authenticated)]
Writer = Annotated[Principal, Depends(writer)]
Deps = Annotated[ApiDeps, Depends(get_deps)]
