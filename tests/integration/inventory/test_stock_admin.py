"""Stock changes only by an explicit act (`saga stock set|load`): a worker that starts or
restarts never touches it, so sold units never go back on sale at a deploy."""

from __future__ import annotations

import dataclasses
import json

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
