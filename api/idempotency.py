"""Run an action at most once per (scope, Idempotency-Key), remembering its result.

Same key + same request → the stored result again. Same key + another request → 409. Two
identical requests at the same moment: one reserves (atomic, in the store) and acts; the other
polls briefly for the winner's result and answers 409 "in progress" if it does not come. If the
action fails the reservation is released, so the client's retry runs it again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError
from api.ports import IdempotencyStore

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft suggests
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Mapping[str, Any]
    replayed: bool


def check_key(key: str | None) -> str:
    if key is None or not key:
        raise ApiError(400, "idempotency_key_required", "send an Idempotency-Key header")
    if not _KEY.match(key):
        raise ApiError(
            400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters"
        )
    return key


def fingerprint(scope: str, body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the *validated* body plus the scope (tenant): key order
    and whitespace do not make two requests different, a changed amount does."""
    canonical = json.dumps(
        {"scope": scope, "body": body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_once(
    store: IdempotencyStore,
    scope: str,
    key: str,
    fp: str,
    action: Callable[[], Mapping[str, Any]],
    *,
    wait_s: float,
) -> Outcome:
    deadline = time.monotonic() + wait_s
    while True:
        reservation = store.reserve(scope, key, fp)
        if reservation.state == "reserved":
            try:
                result = action()
            except BaseException:
                store.release(scope, key, fp)
                raise
            store.complete(scope, key, fp, result)
            return Outcome(result, replayed=False)
        if reservation.state == "done":
            assert reservation.result is not None
            return Outcome(reservation.result, replayed=True)
        if reservation.state == "conflict":
            raise ApiError(
                409,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body",
            )
        if time.monotonic() >= deadline:
            raise ApiError(
                409,
                "request_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        time.sleep(POLL_INTERVAL_S)  # the twin is producing; its result lands in milliseconds
