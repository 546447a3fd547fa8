"""Stock seed files: JSON object, JSON list, CSV; bad entries named."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.inventory.fake import FakeInventory
from adapters.inventory.seed import DEFAULT_SEED, load_stock_file, seed_stock


def test_demo_seed_file_loads_into_a_provider() -> None:
    fake = FakeInventory()
    levels = seed_stock(fake, actor="tests")
    assert len(levels) >= 3
    assert all(v >= 0 for v in levels.values())
    sku, on_hand = next(iter(levels.items()))
    assert fake.stock_level(sku) == (on_hand, 0)
    assert DEFAULT_SEED.name == "seed_stock.json"


def test_json_list_and_csv_forms(tmp_path: Path) -> None:
    as_list = tmp_path / "s.json"
    as_list.write_text('[{"sku": "A", "on_hand": 2}, {"sku": "B", "on_hand": "7"}]')
    as_csv = tmp_path / "s.csv"
    as_csv.write_text("sku,on_hand\nA,2\nB,7\n")
    assert load_stock_file(as_list) == load_stock_file(as_csv) == {"A": 2, "B": 7}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sku,on_hand\nA,-1\n", "must be >= 0"),
        ("sku,on_hand\nA,x\n", "not an integer"),
        ("sku,on_hand\nA,1\nA,2\n", "listed twice"),
        ("sku,on_hand\n,1\n", "bad sku"),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_stock_file(path)
