"""`/v1/ops/...`: the JSON behind the operator console (operator or admin role). Every act is
audited by the `Operations` port with the caller's JWT subject as the actor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.errors import ApiError, not_found
from api.models import ValidationErrorBody, responses
from api.ports import (
    JsonObject,
    OperationRefused,
    Operations,
    OperationsUnavailable,
    UnknownObject,
)
from api.security import Caller, Deps, Writer

router = APIRouter(prefix="/v1/ops", tags=["operations console"])
T = TypeVar("T")
STATUSES = (
    "PENDING",
    "AWAITING_PAYMENT_ACTION",
    "COMPENSATING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "NEEDS_ATTENTION",
)


class Act(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why; kept in the audit log")


def _ops(deps: Deps) -> Operations:
    if deps.ops is None:
        raise ApiError(503, "unavailable", "operations are not wired in this API")
    return deps.ops


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except UnknownObject as e:
        raise ApiError(404, "not_found", str(e)) from e
    except OperationRefused as e:
        raise ApiError(409, "refused", str(e)) from e
    except OperationsUnavailable as e:
        raise ApiError(503, "unavailable", str(e)) from e


@router.get(
    "/checkouts",
    summary="Search checkouts by id, customer email or status",
    responses=responses(401, 403, 429, 503, s422=ValidationErrorBody),
)
def find_checkouts(
    caller: Caller,
    deps: Deps,
    q: Annotated[str | None, Query(max_length=255)] = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    caller.require("operator", "admin")
    if status is not None and status.upper() not in STATUSES:
        raise ApiError(422, "validation_failed", f"status must be one of {', '.join(STATUSES)}")
    ops = _ops(deps)
    found = _call(
        lambda: ops.find_checkouts(
            text=(q or "").strip() or None, status=status.upper() if status else None, limit=limit
        )
    )
    return {"checkouts": found}


@router.get(
    "/checkouts/{checkout_id}/timeline",
    summary="A checkout's saga, from its events",
    responses=responses(401, 403, 404, 429, 503, s422=ValidationErrorBody),
)
def timeline(
    checkout_id: Annotated[str, Path(max_length=255)], caller: Caller, deps: Deps
) -> JsonObject:
    caller.require("operator", "admin")
    ops = _ops(deps)
    found = _call(lambda: ops.timeline(checkout_id))
    if found is None:
        raise not_found(f"checkout {checkout_id}")
    return found


@router.post(
    "/checkouts/{checkout_id}/retry",
    summary="Resume a parked saga (audited)",
    responses=responses(400, 401, 403, 404, 409, 413, 429, 503, s422=ValidationErrorBody),
)
def retry(
    checkout_id: Annotated[str, Path(max_length=255)], body: Act, caller: Writer, deps: Deps
) -> JsonObject:
    caller.require("operator", "admin")
    ops = _ops(deps)
    return _call(lambda: ops.retry(checkout_id, actor=caller.actor, reason=body.reason))


@router.get(
    "/dlq",
    summary="Dead letters, with their re-drives",
    responses=responses(401, 403, 429, 503, s422=ValidationErrorBody),
)
def dead_letters(caller: Caller, deps: Deps) -> dict[str, Any]:
    caller.require("operator", "admin")
    ops = _ops(deps)
    return {"dead_letters": _call(ops.dead_letters)}


@router.post(
    "/dlq/{dead_letter_id}/redrive",
    summary="Re-drive a dead letter (audited)",
    responses=responses(400, 401, 403, 404, 409, 413, 429, 503, s422=ValidationErrorBody),
)
def redrive(
    dead_letter_id: Annotated[str, Path(max_length=300)], body: Act, caller: Writer, deps: Deps
) -> JsonObject:
    caller.require("operator", "admin")
    ops = _ops(deps)
    return _call(lambda: ops.redrive(dead_letter_id, actor=caller.actor, reason=body.reason))


@router.get(
    "/status",
    summary="Processor lag, dead-letter counts, breaker states",
    responses=responses(401, 403, 429, 503, s422=ValidationErrorBody),
)
def status(caller: Caller, deps: Deps) -> JsonObject:
    caller.require("operator", "admin")
    ops = _ops(deps)
    return _call(ops.status)
