"""Postgres-only properties: the database enforces the invariant itself, failures become
InventoryUnavailable, mixed concurrent traffic neither deadlocks nor drifts, the service and
seed work against the real server."""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import errors as pg_errors

import adapters.inventory.postgres as pg_module
from adapters.inventory.port import InventoryUnavailable, Line, Reservation
from adapters.inventory.postgres import PostgresInventory
from adapters.inventory.seed import StockChange, seed_stock
from adapters.inventory.service import InventoryService
from events.messages import (
    CommitInventory,
    InventoryCommitted,
    InventoryReleased,
    InventoryReleaseFailed,
    InventoryReservationRejected,
    InventoryReserved,
    LineItem,
    ReleaseInventory,
    ReserveInventory,
)
from infra.stock_take import freeze_releases, lift_freeze

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
OPERATOR = StockChange("tests")


def test_check_constraints_refuse_oversell_and_negative_stock(
    pg_inventory: PostgresInventory, database_url: str
) -> None:
    pg_inventory.set_stock({"A": 2}, OPERATOR)
    with psycopg.connect(database_url, autocommit=True) as conn:
        with pytest.raises(pg_errors.CheckViolation):
            conn.execute("UPDATE stock SET reserved = 3 WHERE sku = 'A'")
        with pytest.raises(pg_errors.CheckViolation):
            conn.execute("UPDATE stock SET on_hand = -1, reserved = 0 WHERE sku = 'A'")
    assert isinstance(pg_inventory.reserve("co", "k", [Line("A", 2)], T0), Reservation)
    with pytest.raises(ValueError, match="below the 2 reserved"):
        pg_inventory.set_stock({"A": 1}, OPERATOR)  # below what is reserved
    assert pg_inventory.stock_level("A") == (2, 2)


def test_lock_wait_beyond_budget_is_unavailable_not_a_hang(migrated_database_url: str) -> None:
    database_url = migrated_database_url
    inventory = PostgresInventory.from_url(database_url, lock_timeout_ms=100)
    inventory.set_stock({"A": 5}, OPERATOR)
    with psycopg.connect(database_url) as blocker:
        blocker.execute("SELECT * FROM stock WHERE sku = 'A' FOR UPDATE")
        with pytest.raises(InventoryUnavailable, match="lock timeout"):
            inventory.reserve("co", "k", [Line("A", 1)], T0)
        blocker.rollback()
    # Nothing half-done: the failed transaction left no reservation behind.
    assert inventory.stock_level("A") == (5, 0)
    assert isinstance(inventory.reserve("co", "k", [Line("A", 1)], T0), Reservation)


def test_unreachable_database_gives_a_retryable_reply() -> None:
    with socket_on_free_port() as port:
        down = PostgresInventory.from_url(
            f"postgresql://postgres@127.0.0.1:{port}/nope", connect_timeout_s=1
        )
        with pytest.raises(InventoryUnavailable):
            down.commit("r1")
        reply = InventoryService(down, retries=1, sleep=lambda _: None).handle(
            ReserveInventory("co", 1, "co:reserve:1", (LineItem("A", 1, 100),), T0)
        )
    assert isinstance(reply, InventoryReservationRejected)
    assert reply.retryable


def test_service_over_postgres_with_seeded_stock(pg_inventory: PostgresInventory) -> None:
    levels = seed_stock(pg_inventory, actor="tests")
    sku = min(levels, key=lambda s: levels[s])
    svc = InventoryService(pg_inventory)
    co = f"co-{uuid.uuid4().hex[:8]}"
    items = (LineItem(sku, levels[sku], 500),)
    reply = svc.handle(ReserveInventory(co, 1, f"{co}:reserve:1", items, T0))
    assert isinstance(reply, InventoryReserved)
    assert svc.handle(ReserveInventory(co, 1, f"{co}:reserve:1", items, T0)) == reply
    other = svc.handle(ReserveInventory("co-other", 1, "co-other:reserve:1", items, T0))
    assert other == InventoryReservationRejected("co-other", 1, f"out_of_stock:{sku}", False)
    committed = svc.handle(CommitInventory(co, 1, f"{co}:commit:1", reply.reservation_id))
    assert committed == InventoryCommitted(co, 1, reply.reservation_id)
    assert pg_inventory.stock_level(sku) == (0, 0)


def test_expiry_sweep_works_in_batches(
    pg_inventory: PostgresInventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_module, "_SWEEP_BATCH", 3)
    pg_inventory.set_stock({"A": 100}, OPERATOR)
    ids = []
    for i in range(8):
        r = pg_inventory.reserve(f"co-{i}", "k", [Line("A", 2)], T0 + i)
        assert isinstance(r, Reservation)
        ids.append(r.id)
    assert pg_inventory.expire(T0 + 6) == sorted(ids[:7])
    assert pg_inventory.stock_level("A") == (100, 2)


def test_mixed_concurrent_traffic_keeps_books_balanced(
    pg_inventory: PostgresInventory, database_url: str
) -> None:
    """Reserve, commit, release and sweeps racing over overlapping SKU sets: no deadlock
    escapes as an error, and stock rows always equal what the reservations say."""
    skus = [f"S{i}" for i in range(5)]
    initial = 40
    pg_inventory.set_stock(dict.fromkeys(skus, initial), OPERATOR)
    stop_sweeping = threading.Event()

    def sweeper() -> int:
        swept = 0
        now = T0
        while not stop_sweeping.is_set():
            now += 5
            swept += len(pg_inventory.expire(now))
        return swept

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(8):
            lines = [Line(rng.choice(skus), rng.randint(1, 3)) for _ in range(rng.randint(1, 4))]
            r = pg_inventory.reserve(f"co-{seed}-{n}", "k", lines, T0 + rng.randint(0, 400))
            if not isinstance(r, Reservation):
                continue
            action = rng.choice(["commit", "release", "commit-then-release", "leave"])
            if action.startswith("commit"):
                pg_inventory.commit(r.id)
            if action.endswith("release"):
                pg_inventory.release(r.id)

    with ThreadPoolExecutor(max_workers=21) as pool:
        sweep = pool.submit(sweeper)
        workers = [pool.submit(worker, seed) for seed in range(20)]
        for w in workers:
            w.result(timeout=120)  # re-raises any error, e.g. an unhandled deadlock
        stop_sweeping.set()
        sweep.result(timeout=60)

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT s.sku, s.on_hand, s.reserved,"
            " COALESCE(SUM(l.quantity) FILTER (WHERE r.status = 'reserved'), 0),"
            " COALESCE(SUM(l.quantity) FILTER (WHERE r.status = 'committed'), 0)"
            " FROM stock s LEFT JOIN reservation_lines l ON l.sku = s.sku"
            " LEFT JOIN reservations r ON r.id = l.reservation_id GROUP BY s.sku ORDER BY s.sku"
        ).fetchall()
    for sku, on_hand, reserved, held, sold in rows:
        assert reserved == held, sku
        assert on_hand == initial - sold, sku
        assert 0 <= reserved <= on_hand, sku


# --- helpers ---------------------------------------------------------------------------


class socket_on_free_port:
    """A bound but never-accepting port: connecting gets refused or times out, both
    'database unreachable'."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def test_a_release_the_warehouse_refuses_is_a_permanent_failure_with_its_reason(
    pg_inventory: PostgresInventory, database_url: str
) -> None:
    """A rule in the database (a stock-take freeze) says no: the reply says why and is not
    retryable, so the saga parks for an operator instead of retrying into the same answer;
    once the rule is lifted the same release goes through."""
    sku = f"FROZEN-{uuid.uuid4().hex[:6]}"
    pg_inventory.set_stock({sku: 5}, OPERATOR)
    svc = InventoryService(pg_inventory)
    co = f"co-{uuid.uuid4().hex[:8]}"
    held = svc.handle(ReserveInventory(co, 1, f"{co}:reserve:1", (LineItem(sku, 2, 500),), T0))
    assert isinstance(held, InventoryReserved)
    freeze_releases(database_url, sku, "annual count")
    try:
        refused = svc.handle(ReleaseInventory(co, 1, f"{co}:release:1", held.reservation_id))
        assert isinstance(refused, InventoryReleaseFailed)
        assert not refused.retryable
        assert refused.reason.startswith("inventory_refused: ")
        assert f"stock of {sku} is frozen (annual count)" in refused.reason
        assert pg_inventory.stock_level(sku) == (5, 2)  # nothing half-done
    finally:
        lift_freeze(database_url, sku)
    released = svc.handle(ReleaseInventory(co, 2, f"{co}:release:2", held.reservation_id))
    assert isinstance(released, InventoryReleased)
    assert pg_inventory.stock_level(sku) == (5, 0)
