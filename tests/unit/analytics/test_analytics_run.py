"""`saga run` starts analytics once, whatever the number of worker instances."""

from __future__ import annotations

from infra.supervisor import specs


def test_analytics_is_one_child_beside_the_workers() -> None:
    children = specs(["orchestrator"], [0, 1, 2], api=True, analytics=True)
    names = [c.name for c in children]
    assert names.count("analytics") == 1
    assert next(c for c in children if c.name == "analytics").argv[-1] == "analytics"
    assert "analytics" not in [c.name for c in specs(["orchestrator"], [0], api=True)]
