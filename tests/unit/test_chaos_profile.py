"""The chaos suite's pure parts: its profile switch and the fault proxy's draws and routing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.chaos.profile import parse
from tests.chaos.report import Report, percentile
from tests.fault_proxy import E429, E500, PASS, SLOW, TIMEOUT, FaultMix, operation_of


def test_quick_is_the_default_and_fits_make_test() -> None:
    quick = parse({})
    assert quick.name == "quick" and quick.checkouts >= 200 and quick.history_intents == 0
    assert quick.total_s + quick.quiesce_s < 300


def test_long_is_chosen_by_the_switch_and_meets_the_issue() -> None:
    long = parse({"SAGA_CHAOS_PROFILE": "LONG", "SAGA_CHAOS_SEED": "7", "SAGA_CHAOS_REPORT": "/x"})
    assert (long.name, long.seed, long.report_path) == ("long", 7, "/x")
    assert long.checkouts >= 10_000 and long.history_intents >= 10_000 and long.outage_s >= 30


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="SAGA_CHAOS_PROFILE"):
        parse({"SAGA_CHAOS_PROFILE": "soak"})


@pytest.mark.parametrize(
    ("method", "path", "op"),
    [
        ("POST", "/v1/payment_intents", "create"),
        ("POST", "/v1/payment_intents/pi_1/capture", "capture"),
        ("POST", "/v1/payment_intents/pi_1/cancel", "cancel"),
        ("POST", "/v1/refunds", "refund"),
        ("GET", "/v1/payment_intents/pi_1?expand[]=latest_charge", "read"),
        ("POST", "/v1/payment_methods", None),
    ],
)
def test_requests_are_targeted_by_stripe_operation(method: str, path: str, op: str | None) -> None:
    assert operation_of(method, path) == op


def test_fault_draws_follow_the_mix_and_the_seed() -> None:
    mix = FaultMix(e500=0.2, e429=0.2, slow=0.1, timeout=0.1)
    assert [mix.draw(random.Random(3)) for _ in range(5)] == [
        mix.draw(random.Random(3)) for _ in range(5)
    ]  # same seed, same faults
    rng = random.Random(5)
    counts = Counter(mix.draw(rng) for _ in range(20_000))
    for kind, p in ((E500, 0.2), (E429, 0.2), (SLOW, 0.1), (TIMEOUT, 0.1), (PASS, 0.4)):
        assert abs(counts[kind] / 20_000 - p) < 0.02, (kind, counts)
    with pytest.raises(AssertionError):
        FaultMix(e500=0.7, e429=0.7)


def test_percentile_is_nearest_rank_and_the_report_lists_failures() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 99) == 4.0
    report = Report("quick", 1)
    report.check("holds", True, "1 == 1")
    report.check("breaks", False, "1 != 2")
    assert report.failed() == ["breaks: 1 != 2"]
    assert "| breaks | FAIL | 1 != 2 |" in report.render()
