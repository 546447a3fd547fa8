"""Inventory fixtures: the Postgres provider on a fresh database, and a local HTTP contract peer
that speaks the documented reservation API (adapters/inventory/http_provider.py) backed by it."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from adapters.inventory.http_provider import HttpInventory
from adapters.inventory.port import InventoryProvider, Line, Rejection, Reservation
from adapters.inventory.postgres import PostgresInventory


def reservation_json(reservation: Reservation) -> dict[str, Any]:
    return {
        "id": reservation.id,
        "checkout_id": reservation.checkout_id,
        "status": str(reservation.status),
        "expires_at": reservation.expires_at,
        "lines": [{"sku": line.sku, "quantity": line.quantity} for line in reservation.lines],
    }


_TRANSITION = re.compile(r"^/reservations/([^/]+)/(commit|release)$")


def make_peer(backend: InventoryProvider) -> ThreadingHTTPServer:
    """The documented REST shape over any InventoryProvider."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, {"error": "invalid json"})
                return
            if self.path == "/reservations":
                self._reserve(body)
            elif self.path == "/expiry-sweeps":
                self._send(200, {"expired": backend.expire(int(body["now"]))})
            elif match := _TRANSITION.match(self.path):
                reservation_id, action = match.groups()
                result = getattr(backend, action)(reservation_id)
                if isinstance(result, Rejection):
                    status = 404 if result.reason == "reservation_not_found" else 409
                    self._send(status, {"reason": str(result.reason), "sku": result.sku})
                else:
                    self._send(200, reservation_json(result))
            else:
                self._send(404, {"error": "no such route"})

        def _reserve(self, body: dict[str, Any]) -> None:
            try:
                lines = [Line(str(x["sku"]), int(x["quantity"])) for x in body["lines"]]
                key = str(body["idempotency_key"])
                if self.headers.get("Idempotency-Key") != key:
                    raise ValueError("Idempotency-Key header must match idempotency_key")
                args = (str(body["checkout_id"]), key, lines, int(body["expires_at"]))
            except (KeyError, TypeError, ValueError) as e:
                self._send(400, {"error": str(e)})
                return
            result = backend.reserve(*args)
            if isinstance(result, Rejection):
                self._send(409, {"reason": str(result.reason), "sku": result.sku})
            else:
                self._send(201, reservation_json(result))

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the default listen backlog (5) resets concurrent clients

    return Server(("127.0.0.1", 0), Handler)


@pytest.fixture
def pg_inventory(migrated_database_url: str) -> PostgresInventory:
    return PostgresInventory.from_url(migrated_database_url)


@pytest.fixture
def inventory_peer(pg_inventory: PostgresInventory) -> Iterator[str]:
    server = make_peer(pg_inventory)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_inventory(inventory_peer: str) -> Iterator[HttpInventory]:
    # A connection pool big enough for the concurrency test's threads.
    import httpx

    client = httpx.Client(
        base_url=inventory_peer,
        timeout=10.0,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )
    provider = HttpInventory(inventory_peer, client=client)
    yield provider
    provider.close()
