"""`make demo` as a test: storefront API -> engine with its real adapters -> projections and
emails, on the embedded stack."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from infra.demo import run_demo
from infra.settings import Settings

pytestmark = pytest.mark.integration


def test_demo_completes_good_checkouts_and_fails_the_bad_ones_cleanly(settings: Settings) -> None:
    out = io.StringIO()
    # True only if every saga finished and GET /v1/checkouts/{id} shows the same final status.
    assert run_demo(settings, 4, Console(file=out, width=250), timeout_s=120)
    text = out.getvalue()
    assert "POST /v1/checkouts x4" in text and "all 202 Accepted" in text
    assert text.count("│ COMPLETED │ 65.00 USD") == 2
    assert "authorize_payment: Your card was declined." in text
    assert "reserve_inventory: out_of_stock:SKU-LIMITED-POSTER" in text
    assert "analysts: daily_revenue" in text and "analysts: checkout_funnel" in text
