"""`saga run --roles`: the combined adapters worker is a choice, never beside the workers it
replaces (two consumer groups on one topic answer every request twice)."""

from __future__ import annotations

from typer.testing import CliRunner

from infra.cli import app
from infra.run_cli import ALL_ROLES


def test_all_runs_one_worker_per_adapter() -> None:
    assert {"inventory", "tax", "shipping", "payment"} <= set(ALL_ROLES)
    assert "adapters" not in ALL_ROLES


def test_the_combined_adapters_beside_one_they_serve_are_refused() -> None:
    result = CliRunner().invoke(app, ["run", "--roles", "orchestrator,adapters,payment"])
    assert result.exit_code == 2, result.output
    assert "adapters already serves payment" in result.output


def test_an_unknown_role_is_named() -> None:
    result = CliRunner().invoke(app, ["run", "--roles", "orchestrator,adaptors"])
    assert result.exit_code == 2, result.output
    assert "unknown role adaptors" in result.output
