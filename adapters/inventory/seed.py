"""Operator stock changes: who made one, and levels from a data file (the demo's
seed_stock.json, or a shop's CSV export)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

DEFAULT_SEED = Path(__file__).with_name("seed_stock.json")


@dataclass(frozen=True, slots=True)
class StockChange:
    """Who changes on-hand levels and why: written to `stock_audit` with the change itself."""

    actor: str
    command: Literal["set", "load"] = "set"
    reason: str | None = None
    source: str | None = None  # the file of a `load`

    def __post_init__(self) -> None:
        if not self.actor.strip():
            raise ValueError("a stock change needs an actor")


@dataclass(frozen=True, slots=True)
class StockAuditEntry:
    at_ms: int
    actor: str
    command: str
    sku: str
    on_hand_before: int | None  # None: the SKU was new
    on_hand_after: int
    reserved: int  # held by checkouts when the level changed
    reason: str | None
    source: str | None


class StockWriter(Protocol):
    def set_stock(self, levels: Mapping[str, int], change: StockChange) -> None: ...


def load_stock_file(path: Path) -> dict[str, int]:
    """SKU -> on-hand units. JSON: {"SKU": n, ...} or [{"sku", "on_hand"}, ...];
    CSV: a header with `sku,on_hand`. Raises ValueError naming the bad entry."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            rows = [(row.get("sku"), row.get("on_hand")) for row in csv.DictReader(f)]
    else:
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            rows = list(data.items())
        elif isinstance(data, list):
            rows = [(row.get("sku"), row.get("on_hand")) for row in data]
        else:
            raise ValueError(f"{path}: expected an object or a list")
    levels: dict[str, int] = {}
    for sku, on_hand in rows:
        if not isinstance(sku, str) or not sku.strip():
            raise ValueError(f"{path}: bad sku {sku!r}")
        try:
            count = int(str(on_hand))
        except ValueError:
            raise ValueError(f"{path}: {sku}: on_hand {on_hand!r} is not an integer") from None
        if count < 0:
            raise ValueError(f"{path}: {sku}: on_hand must be >= 0")
        if sku in levels:
            raise ValueError(f"{path}: {sku} listed twice")
        levels[sku] = count
    return levels


def seed_stock(
    target: StockWriter, actor: str, path: Path = DEFAULT_SEED, reason: str | None = None
) -> dict[str, int]:
    """Set on-hand levels from `path` (upsert; existing reservations are kept), audited as a
    `load` by `actor`."""
    levels = load_stock_file(path)
    target.set_stock(levels, StockChange(actor, "load", reason, str(path)))
    return levels
