"""`make demo` as a test: the engine with its real adapters on the embedded stack."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from infra.demo import run_demo
from infra.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_completes_good_checkouts_and_fails_the_bad_ones_cleanly(settings: Settings) -> None:
    out = io.StringIO()
    assert run_demo(settings, 4, Console(file=out, width=200), timeout_s=120)
    text = out.getvalue()
    assert text.count("COMPLETED") == 2
    assert "authorize_payment: Your card was declined." in text
    assert "reserve_inventory: out_of_stock:SKU-LIMITED-POSTER" in text
