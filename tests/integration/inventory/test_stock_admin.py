"""Stock changes only by an explicit act (`saga stock set|load`): a worker that starts or
restarts never touches it, so sold units never go back on sale at a deploy."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from adapters.inventory.port import Line, Reservation
from adapters.inventory.seed import DEFAULT_SEED
from infra.adapters_wiring import inventory_service, stock_store
from infra.cli import app
from infra.settings import Settings

pytestmark = pytest.mark.integration


def _saga(database_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_restarting_a_worker_keeps_sold_and_reserved_units(
    settings: Settings, database_url: str
) -> None:
    local = dataclasses.replace(settings, database_url=database_url)
    # The demo's file: workers once re-applied it at every start, undoing every sale.
    code, out = _saga(database_url, "stock", "load", str(DEFAULT_SEED))
    assert code == 0, out
    assert json.loads(DEFAULT_SEED.read_text())["SKU-MUG-LOGO"] == 40

    store = stock_store(local)
    sold = store.reserve("co-sold", "k1", [Line("SKU-MUG-LOGO", 2)], expires_at=10**15)
    assert isinstance(sold, Reservation)
    assert isinstance(store.commit(sold.id), Reservation)
    held = store.reserve("co-held", "k1", [Line("SKU-MUG-LOGO", 3)], expires_at=10**15)
    assert isinstance(held, Reservation)
    before = store.stock_levels()
    assert before["SKU-MUG-LOGO"] == (38, 3)

    for _ in range(3):  # what every adapter worker does at start
        inventory_service(local)
    assert stock_store(local).stock_levels() == before


def test_stock_set_show_and_a_level_below_reserved_is_refused_in_one_line(
    settings: Settings, database_url: str
) -> None:
    local = dataclasses.replace(settings, database_url=database_url)
    assert _saga(database_url, "stock", "set", "SKU-C", "10")[0] == 0
    assert isinstance(
        stock_store(local).reserve("co-1", "k1", [Line("SKU-C", 4)], expires_at=10**15),
        Reservation,
    )
    code, out = _saga(database_url, "stock", "set", "SKU-C", "3")
    assert code == 1 and "refused" in out and "Traceback" not in out
    assert stock_store(local).stock_levels()["SKU-C"] == (10, 4)

    code, out = _saga(database_url, "stock", "show", "SKU-C")
    assert code == 0 and "SKU-C" in out and "10" in out and "6" in out  # available = 10 - 4
    code, out = _saga(database_url, "stock", "show", "SKU-NOPE")
    assert code == 1 and "unknown SKU" in out
    code, out = _saga(database_url, "stock", "load", "/nonexistent/stock.csv")
    assert code == 2 and "cannot load" in out


def _audit_rows(database_url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT actor, command, sku, on_hand_before, on_hand_after, reserved, reason, source"
            " FROM stock_audit ORDER BY id"
        ).fetchall()


def test_every_operator_change_is_audited_in_its_transaction(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    local = dataclasses.replace(settings, database_url=database_url)
    code, out = _saga(database_url, "stock", "set", "SKU-A", "10", "--reason", "first count")
    assert code == 0, out
    me = pwd.getpwuid(os.getuid()).pw_name
    assert _audit_rows(database_url) == [(me, "set", "SKU-A", None, 10, 0, "first count", None)]

    held = stock_store(local).reserve("co-a", "k1", [Line("SKU-A", 4)], expires_at=10**15)
    assert isinstance(held, Reservation)
    stock_file = tmp_path / "count.csv"
    stock_file.write_text("sku,on_hand\nSKU-A,12\nSKU-B,3\n")
    code, out = _saga(
        database_url, "stock", "load", str(stock_file), "--actor", "alice", "--reason", "stock take"
    )
    assert code == 0, out
    rows = _audit_rows(database_url)[1:]
    assert rows == [
        ("alice", "load", "SKU-A", 10, 12, 4, "stock take", str(stock_file.resolve())),
        ("alice", "load", "SKU-B", None, 3, 0, "stock take", str(stock_file.resolve())),
    ]

    # Refused (below the 4 reserved): no level changes, and no audit row claims one did. A load
    # is all or nothing: SKU-B's line in the same file is not applied either.
    stock_file.write_text("sku,on_hand\nSKU-B,9\nSKU-A,3\n")
    code, out = _saga(database_url, "stock", "load", str(stock_file), "--actor", "bob")
    assert code == 1 and "refused" in out and "SKU-A" in out
    assert stock_store(local).stock_levels() == {"SKU-A": (12, 4), "SKU-B": (3, 0)}
    assert len(_audit_rows(database_url)) == 3

    code, out = _saga(database_url, "stock", "history", "SKU-A")
    assert code == 0, out
    assert out.index("alice") < out.index(me)  # newest first
    assert "stock take" in out and "first count" in out and "SKU-B" not in out
    code, out = _saga(database_url, "stock", "history")
    assert code == 0 and "SKU-B" in out and "count.csv" in out
    code, out = _saga(database_url, "stock", "history", "SKU-NEVER")
    assert code == 1 and "no stock changes recorded for SKU-NEVER" in out

    code, out = _saga(database_url, "stock", "show")
    assert code == 0, out
    header = next(line for line in out.splitlines() if "on hand" in line)
    assert "reserved" in header and "available" in header
    sku_a = next(line for line in out.splitlines() if "SKU-A" in line)
    assert [cell.strip() for cell in sku_a.split("│")[2:5]] == ["12", "4", "8"]


def test_a_worker_starting_writes_no_audit_row(settings: Settings, database_url: str) -> None:
    local = dataclasses.replace(settings, database_url=database_url)
    assert _saga(database_url, "stock", "set", "SKU-W", "5", "--actor", "ops")[0] == 0
    for _ in range(2):
        inventory_service(local)
    assert [r[0] for r in _audit_rows(database_url)] == ["ops"]
