"""InventoryProvider against a shop's external reservation API (httpx).

The REST shape we ask a shop to expose (JSON bodies, times in epoch ms):

    POST /reservations
        Idempotency-Key: <idempotency_key>
        {"checkout_id", "idempotency_key", "lines": [{"sku", "quantity"}], "expires_at"}
      201 (new) or 200 (replay of the same key)  -> <reservation>
      409 {"reason": "out_of_stock" | "unknown_sku" | "invalid_quantity" | "no_lines",
           "sku": <str|null>}
      400 malformed request
    POST /reservations/{id}/commit   200 <reservation> | 404 | 409 {"reason":
                                     "reservation_not_committable"}
    POST /reservations/{id}/release  200 <reservation> | 404          (reserved or committed)
    POST /expiry-sweeps {"now"}      200 {"expired": [<id>, ...]}
    <reservation> = {"id", "checkout_id", "status": "reserved"|"committed"|"released"|"expired",
                     "expires_at", "lines": [{"sku", "quantity"}]}

Semantics are those of `adapters.inventory.port` (idempotency per (checkout_id, key), one
active reservation per checkout, release of committed stock restocks). 429 and 5xx are
transient. This client does not retry: the caller wraps it in `adapters.resilience`, so retries
and the breaker are applied once, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from adapters.inventory.port import (
    InventoryProtocolError,
    InventoryUnavailable,
    Line,
    Rejection,
    RejectionReason,
    Reservation,
    ReservationStatus,
    StockLine,
    normalise_lines,
)


class HttpInventory:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 3.0,
        client: httpx.Client | None = None,
    ) -> None:
        # The socket timeout bounds every request, so a slow shop API cannot stall a worker.
        self._client = client or httpx.Client(base_url=base_url, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def reserve(
        self, checkout_id: str, attempt_key: str, items: Sequence[StockLine], expires_at: int
    ) -> Reservation | Rejection:
        # Validate locally: bad input is our caller's problem, no need to spend a round trip.
        lines = normalise_lines(items)
        if isinstance(lines, Rejection):
            return lines
        body = {
            "checkout_id": checkout_id,
            "idempotency_key": attempt_key,
            "lines": [{"sku": line.sku, "quantity": line.quantity} for line in lines],
            "expires_at": expires_at,
        }
        response = self._post("/reservations", body, headers={"Idempotency-Key": attempt_key})
        if response.status_code in (200, 201):
            return _reservation(_json(response))
        if response.status_code == 409:
            return _rejection(_json(response))
        raise _unexpected(response)

    def commit(self, reservation_id: str) -> Reservation | Rejection:
        return self._transition(reservation_id, "commit")

    def release(self, reservation_id: str) -> Reservation | Rejection:
        return self._transition(reservation_id, "release")

    def expire(self, now: int) -> list[str]:
        response = self._post("/expiry-sweeps", {"now": now})
        if response.status_code != 200:
            raise _unexpected(response)
        expired = _json(response).get("expired")
        if not isinstance(expired, list):
            raise InventoryProtocolError("expiry sweep: 'expired' is not a list")
        return sorted(str(reservation_id) for reservation_id in expired)

    def _transition(self, reservation_id: str, action: str) -> Reservation | Rejection:
        response = self._post(f"/reservations/{reservation_id}/{action}", {})
        if response.status_code == 200:
            return _reservation(_json(response))
        if response.status_code == 404:
            return Rejection(RejectionReason.NOT_FOUND)
        if response.status_code == 409:
            return _rejection(_json(response))
        raise _unexpected(response)

    def _post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        try:
            response = self._client.post(path, json=body, headers=headers)
        except httpx.TransportError as e:  # connect errors, timeouts, resets
            raise InventoryUnavailable(f"inventory api: {type(e).__name__}: {e}") from e
        if response.status_code == 429 or response.status_code >= 500:
            raise InventoryUnavailable(f"inventory api: HTTP {response.status_code}")
        return response


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as e:
        raise InventoryProtocolError(f"HTTP {response.status_code}: body is not JSON") from e
    if not isinstance(body, dict):
        raise InventoryProtocolError(f"HTTP {response.status_code}: body is not an object")
    return body


def _reservation(body: dict[str, Any]) -> Reservation:
    try:
        return Reservation(
            id=str(body["id"]),
            checkout_id=str(body["checkout_id"]),
            status=ReservationStatus(body["status"]),
            expires_at=int(body["expires_at"]),
            lines=tuple(
                sorted(
                    (Line(str(line["sku"]), int(line["quantity"])) for line in body["lines"]),
                    key=lambda line: line.sku,
                )
            ),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InventoryProtocolError(f"malformed reservation: {e!r}") from e


def _rejection(body: dict[str, Any]) -> Rejection:
    try:
        reason = RejectionReason(str(body.get("reason")))
    except ValueError as e:
        raise InventoryProtocolError(f"unknown rejection reason {body.get('reason')!r}") from e
    sku = body.get("sku")
    return Rejection(reason, str(sku) if sku is not None else None)


def _unexpected(response: httpx.Response) -> InventoryProtocolError:
    return InventoryProtocolError(
        f"inventory api: unexpected HTTP {response.status_code}: {response.text[:200]}"
    )
