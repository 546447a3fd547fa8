"""One error shape for every 4xx/5xx: `{"error": code, "reason": text, "request_id": ...}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """Raised by routes and dependencies; rendered by the app's handler. Never carries a
    traceback or a secret to the client: `reason` is written for the caller."""

    def __init__(
        self,
        status: int,
        error: str,
        reason: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self, request_id: str | None) -> dict[str, Any]:
        return {"error": self.error, "reason": self.reason, "request_id": request_id, **self.extra}


def unauthorized(reason: str) -> ApiError:
    # RFC 9110: a 401 names the schemes the client may use.
    return ApiError(
        401, "unauthorized", reason, headers={"WWW-Authenticate": 'Bearer realm="checkout"'}
    )


def forbidden(reason: str) -> ApiError:
    return ApiError(403, "forbidden", reason)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")
